"""`connector serve`: ticks, health and metrics, one worker on SQLite, shutdown on SIGTERM,
and several workers on PostgreSQL sharing a tick without doing any unit twice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import date, timedelta

import httpx
import pytest

from conftest_db import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema
from connector.config import load_config
from connector.errors import UsageError
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.service.listener import Listener
from connector.service.loop import Service
from e2e_support import write_counts, sync_sandbox, with_credentials
from state import units
from state.store import open_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def book():
    return with_credentials(generate(7, "small", today=date.today()).data)


def setup_config(sandbox, directory, database_url=None):
    store, _ = sync_sandbox(sandbox, directory, streams=["(none)"], database_url=database_url)
    return load_config(str(directory / "connector.toml")), store


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_two_ticks_pull_reconcile_and_write_back_with_metrics_moving(book, tmp_path):
    with Sandbox(book, limits="off") as sandbox:
        config, store = setup_config(sandbox, tmp_path)
        service = Service(config, store, timedelta(seconds=2))
        listener = Listener(service, "127.0.0.1", 0)
        listener.start()
        before = httpx.get(listener.address + "/metrics").text
        worker = threading.Thread(target=service.run, kwargs={"max_ticks": 2})
        worker.start()
        worker.join(120)
        after = httpx.get(listener.address + "/metrics").text
        assert httpx.get(listener.address + "/healthz").status_code == 200
        ready = httpx.get(listener.address + "/readyz")
        listener.close()
        journal = list(sandbox.journal)
    assert not worker.is_alive()
    assert metric(before, "connector_records_pulled_total") == 0
    assert metric(after, "connector_records_pulled_total") > 100
    assert metric(after, 'connector_actions_total{connection="ledger"') > 0
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert any(e["method"] == "PUT" and e["path"].startswith("/Payments") for e in journal)
    with store.session() as session:
        rows = units.units(session)
    pulls = [r for r in rows if r["kind"] == "pull"]
    assert pulls and all(r["done_tick"] == r["due_tick"] and r["last_error"] is None for r in pulls)
    store.close()


def test_a_second_worker_on_one_sqlite_file_is_refused(book, tmp_path):
    with Sandbox(book, limits="off") as sandbox:
        config, store = setup_config(sandbox, tmp_path)
        first = Service(config, store, timedelta(hours=1))
        runner = threading.Thread(target=first.run)
        runner.start()
        time.sleep(1.0)
        second = Service(config, store, timedelta(hours=1), worker=f"{socket.gethostname()}:1")
        with pytest.raises(UsageError, match="one worker per SQLite file"):
            second.run(max_ticks=1)
        first.stop.set()
        first.wake.set()
        runner.join(60)
    store.close()


def serve(config_path, *extra, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "connector", "--config", str(config_path), "serve", "--listen", "127.0.0.1:0", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
    )


def test_sigterm_stops_the_service_cleanly_with_exit_0(book, tmp_path):
    with Sandbox(book, limits="off", latency_ms=20) as sandbox:
        config, store = setup_config(sandbox, tmp_path)
        store.close()
        process = serve(tmp_path / "connector.toml", "--every", "1h")
        first = process.stderr.readline()  # "serving every ...": the signal handlers are in place
        assert b"serving every" in first, first
        time.sleep(1.0)  # mid-tick: pulling with 20 ms per request
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()[-800:]
    assert b"stopped" in err
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    with store.session() as session:
        rows = units.units(session)
    assert all(r["owner"] is None for r in rows if r["kind"] == "pull")  # no lease left behind
    store.close()


def test_four_workers_on_postgresql_run_every_unit_once_per_tick(book, tmp_path):
    postgres_url_or_fail()
    with temporary_pg_schema() as schema, Sandbox(book, limits="off", latency_ms=20) as sandbox:
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        config, store = setup_config(sandbox, tmp_path, url)
        config_path = tmp_path / "connector.toml"
        workers = [serve(config_path, "--every", "1h", "--max-ticks", "1") for _ in range(4)]
        results = [w.communicate(timeout=300) for w in workers]
        assert all(w.returncode == 0 for w in workers), [r[1].decode()[-500:] for r in results]
        journal = list(sandbox.journal)
        with store.session() as session:
            rows = units.units(session)
        store.close()
    pulls = [r for r in rows if r["kind"] == "pull"]
    assert pulls and all(r["runs"] == 1 for r in pulls), [(r["unit"], r["runs"]) for r in pulls if r["runs"] != 1]
    assert next(r for r in rows if r["unit"] == "reconcile")["runs"] == 1
    writes = write_counts(journal)
    assert writes and max(writes.values()) == 1, {k: v for k, v in writes.items() if v > 1}


def test_a_worker_killed_mid_run_loses_nothing(book, tmp_path):
    postgres_url_or_fail()
    with temporary_pg_schema() as schema, Sandbox(book, limits="off", latency_ms=40) as sandbox:
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        config, store = setup_config(sandbox, tmp_path, url)
        config_path = tmp_path / "connector.toml"
        args = ("--every", "1h", "--max-ticks", "1", "--lease", "3s")
        workers = [serve(config_path, *args) for _ in range(3)]
        assert b"serving every" in workers[0].stderr.readline()
        time.sleep(1.5)
        workers[0].kill()  # SIGKILL mid-run: its unit's lease must run out before anyone retakes it
        for worker in workers[1:]:
            worker.communicate(timeout=300)
        workers[0].communicate(timeout=30)
        time.sleep(3.5)
        finisher = serve(config_path, *args)  # the next run (or tick) picks up what the dead one held
        _, err = finisher.communicate(timeout=300)
        assert finisher.returncode == 0, err.decode()[-500:]
        journal = list(sandbox.journal)
        with store.session() as session:
            rows = units.units(session)
        store.close()
    pulls = [r for r in rows if r["kind"] == "pull"]
    assert all(r["done_tick"] == r["due_tick"] and r["owner"] is None for r in pulls), [
        (r["unit"], r["due_tick"], r["done_tick"], r["owner"]) for r in pulls if r["done_tick"] != r["due_tick"]]
    writes = write_counts(journal)
    assert writes and max(writes.values()) == 1, {k: v for k, v in writes.items() if v > 1}
