"""/readyz follows the database: unready while PostgreSQL cannot be reached, ready again when
it returns. The database "goes away" behind a loopback TCP relay this test owns."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import httpx
import pytest

from connector.config import Config
from connector.service.listener import Listener
from connector.service.loop import Service
from connector.state.store import open_store
from support.databases import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema

pytestmark = pytest.mark.slow


class Relay:
    """127.0.0.1:random -> PostgreSQL; `cut()` drops every connection and refuses new ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.sockets: list[socket.socket] = []
        self.alive = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.server.settimeout(0.2)
        while self.alive:
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            if not self.open.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target, timeout=5)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        self.open.clear()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self.sockets.clear()

    def restore(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.alive = False
        self.cut()
        self.server.close()


def test_readyz_turns_unready_when_the_database_goes_away_and_ready_when_it_returns():
    postgres_url_or_fail()
    relay = Relay(("127.0.0.1", 5432))
    try:
        with temporary_pg_schema() as schema:
            url = (
                POSTGRES_URL.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}") + f"?options=-csearch_path%3D{schema}"
            )
            store = open_store(url, connect_args={"connect_timeout": 2})
            config = Config(path=None, database_url=url, connections={})
            service = Service(config, store, timedelta(hours=1))
            listener = Listener(service, "127.0.0.1", 0)
            listener.start()
            ready = lambda: httpx.get(listener.address + "/readyz", timeout=30)  # noqa: E731
            assert ready().status_code == 200
            relay.cut()
            down = ready()
            assert down.status_code == 503 and "database unreachable" in down.text
            assert httpx.get(listener.address + "/healthz").status_code == 200  # alive all the same
            relay.restore()
            deadline = time.monotonic() + 30
            while ready().status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert ready().status_code == 200
            listener.close()
            store.close()
    finally:
        relay.close()
