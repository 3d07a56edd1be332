"""The listener under abuse, over real sockets on loopback: bodies too large (declared or
chunked), bodies and heads that crawl, malformed Content-Length, a burst of valid webhooks, and
random paths that must not grow /metrics.

Every loop is bounded by a count or a deadline and stops by itself.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta

import httpx
import pytest
import sqlalchemy as sa
from webhooks.signing import stripe_signed

from connector.config import load_config
from connector.demo import demo_config
from connector.logs import configure_logging
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.service.listener import Limits, Listener
from connector.service.loop import Service
from connector.state.store import open_store
from support.e2e import sync_sandbox, with_credentials

STRIPE_SECRET = "whsec_listener_abuse_tests"
MB = 1024 * 1024


class _Nowhere:
    """demo_config wants a sandbox's URLs; nothing here is ever called."""

    def url(self, provider: str) -> str:
        return f"http://127.0.0.1:9/{provider}"


@pytest.fixture
def service(tmp_path, monkeypatch):
    monkeypatch.setenv("T_STRIPE_SECRET", STRIPE_SECRET)
    text = demo_config(_Nowhere()).replace("sqlite:///connector.db", f"sqlite:///{tmp_path / 'state.db'}")
    text = text.replace('provider = "stripe"\n', 'provider = "stripe"\nwebhook_secret = "env:T_STRIPE_SECRET"\n')
    (tmp_path / "connector.toml").write_text(text)
    config = load_config(str(tmp_path / "connector.toml"))
    store = open_store(config.database_url)
    yield Service(config, store, timedelta(hours=1))
    store.close()


@pytest.fixture
def serve(service) -> Iterator:
    """`serve(limits)` starts a listener; each is closed at the end, within a bounded time."""
    started: list[Listener] = []

    def start(limits: Limits | None = None) -> Listener:
        listener = Listener(service, "127.0.0.1", 0, limits=limits)
        listener.start()
        started.append(listener)
        return listener

    yield start
    for listener in started:
        began = time.monotonic()
        listener.close()
        assert time.monotonic() - began < listener.limits.shutdown_timeout + 2


@pytest.fixture
def json_logs(monkeypatch) -> Iterator[io.StringIO]:
    """The service's logging as `connector --log-format json` sets it up, into a buffer that also
    takes anything printed to sys.stderr (a raw traceback would land there)."""
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    root = logging.getLogger()
    level = root.level
    configure_logging(verbosity=0, log_format="json")
    yield buffer
    for handler in [h for h in root.handlers if getattr(h, "_connector", False)]:
        root.removeHandler(handler)
    root.setLevel(level)


def endpoint(listener: Listener) -> tuple[str, int]:
    host, port = listener.address.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def exchange(listener: Listener, data: bytes, *, wait: float = 5.0) -> bytes:
    """Send `data` on a new connection; what comes back until the server closes it (or `wait`)."""
    with socket.create_connection(endpoint(listener), timeout=wait) as sock:
        sock.sendall(data)
        answer = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            answer += chunk
    return answer


def with_content_length(length: str) -> bytes:
    return f"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def head_of(answer: bytes) -> str:
    return answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()


def stripe_event(event_id: str) -> tuple[bytes, dict[str, str]]:
    event = {
        "id": event_id,
        "object": "event",
        "type": "invoice.paid",
        "created": int(time.time()),
        "data": {"object": {"id": f"in_{event_id}", "object": "invoice"}},
    }
    return stripe_signed(event, STRIPE_SECRET)


def stored_events(service: Service) -> list[str]:
    with service.store.session() as session:
        rows = session.execute(sa.text("SELECT event_id FROM webhook_events WHERE provider = 'stripe'"))
        return [row[0] for row in rows]


# bodies ---------------------------------------------------------------------------------------


def test_a_declared_50_mb_body_is_answered_413_before_the_client_sends_it(serve, service):
    listener = serve()
    event_body, headers = stripe_event("evt_big")
    head = "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 52428800\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(endpoint(listener), timeout=5) as sock:
        sock.sendall(head.encode() + event_body + b" " * (64 * 1024))  # the headers and a little body
        answer = sock.recv(65536)
        # The server has closed: the rest of the 50 MB has nowhere to go. Sending stops with an
        # error long before 50 MB (what is sent is the kernel's buffers, never read).
        sent, refused = 0, None
        while sent < 50 * MB:
            try:
                sent += sock.send(b" " * (256 * 1024))
            except OSError as exc:  # BrokenPipe or ConnectionReset
                refused = exc
                break
    assert status_of(answer) == 413
    assert "connection: close" in head_of(answer)
    assert refused is not None and sent < 16 * MB, sent
    assert stored_events(service) == []


def test_a_chunked_body_is_answered_413_once_it_passes_the_limit(serve):
    listener = serve()
    head = b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n" % (64 * 1024) + b"y" * (64 * 1024) + b"\r\n"
    with socket.create_connection(endpoint(listener), timeout=5) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        sock.sendall(head)
        sock.setblocking(False)
        sent, pending, answer = 0, b"", b""
        deadline = time.monotonic() + 20
        while sent < 50 * MB and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                answer = sock.recv(65536)
                break
            if writable:
                pending = pending or chunk
                try:
                    written = sock.send(pending)
                except OSError:  # closed under our feet: the answer is already here
                    continue
                sent, pending = sent + written, pending[written:]
    assert status_of(answer) == 413
    assert "connection: close" in head_of(answer)
    # The answer came after the limit (1 MB) and the buffers in between, not after 50 MB.
    assert MB < sent < 16 * MB, sent


def test_a_body_that_crawls_is_answered_408(serve):
    listener = serve(Limits(body_timeout=0.5))
    began = time.monotonic()
    answer = exchange(listener, b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
    assert status_of(answer) == 408
    assert "connection: close" in head_of(answer)
    assert time.monotonic() - began < 3


def test_a_webhook_over_a_lowered_limit_is_refused_and_one_under_it_taken(serve, service):
    listener = serve(Limits(webhook_body=2048))
    small, small_headers = stripe_event("evt_small")
    large, large_headers = stripe_event("evt_large" + "x" * 4096)
    url = listener.address + "/webhooks/stripe"
    assert httpx.post(url, content=small, headers=small_headers).status_code == 200
    assert httpx.post(url, content=large, headers=large_headers).status_code == 413
    assert stored_events(service) == ["evt_small"]


# malformed requests -------------------------------------------------------------------------


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", "5, 6"])
def test_a_bad_content_length_is_answered_400_in_one_json_log_line(serve, json_logs, length):
    listener = serve()
    answer = exchange(listener, with_content_length(length))
    healthy = httpx.get(listener.address + "/healthz")
    assert status_of(answer) == 400
    assert healthy.status_code == 200
    lines = [line for line in json_logs.getvalue().splitlines() if line.strip()]
    assert lines, "the refusal is logged"
    for line in lines:
        entry = json.loads(line)  # every line is JSON: no raw traceback, no uvicorn text format
        assert "exception" not in entry
    assert "Traceback" not in json_logs.getvalue()


# slow clients -------------------------------------------------------------------------------


@pytest.mark.slow
def test_150_slow_connections_neither_starve_healthz_nor_stay_open(serve):
    """150 request heads that crawl: /healthz is answered while every one of them is still held
    open (a starved server would answer only once they are dropped), and each is closed at its
    deadline. Counted in answers, not timed: a loaded machine slows both sides alike."""
    head_timeout = 3.0
    listener = serve(Limits(head_timeout=head_timeout))
    slow = [socket.create_connection(endpoint(listener), timeout=5) for _ in range(150)]
    answered_while_all_open = 0
    try:
        with httpx.Client(timeout=10.0) as probe:
            probe.get(listener.address + "/healthz")  # the client's own first-use costs, before the crawl
            for sock in slow:
                sock.sendall(b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n")
                sock.setblocking(False)
            open_ = set(range(len(slow)))
            began = time.monotonic()
            while open_ and time.monotonic() - began < 4 * head_timeout:  # a header byte every 0.2 s on each
                for i in list(open_):
                    try:
                        slow[i].send(b"X")
                        if slow[i].recv(1) == b"":
                            open_.discard(i)
                    except BlockingIOError:
                        pass  # nothing to read: still open
                    except OSError:
                        open_.discard(i)  # closed by the server
                all_open = len(open_) == len(slow)
                assert probe.get(listener.address + "/healthz").status_code == 200
                answered_while_all_open += all_open
                time.sleep(0.2)
            closed_after = time.monotonic() - began
    finally:
        for sock in slow:
            sock.close()
    assert answered_while_all_open >= 3, answered_while_all_open
    # The request heads never completed: each connection is closed at its deadline.
    assert not open_, f"{len(open_)} slow connections still open"
    assert head_timeout - 0.5 < closed_after < 3 * head_timeout


# load -----------------------------------------------------------------------------------------


def _post_all(listener: Listener, deliveries: list[tuple[bytes, dict[str, str]]]) -> list[int]:
    """Each delivery on its own connection, all released at once."""
    host, port = endpoint(listener)
    gate = threading.Barrier(len(deliveries))
    statuses: list[int] = [0] * len(deliveries)

    def post(i: int) -> None:
        body, headers = deliveries[i]
        connection = http.client.HTTPConnection(host, port, timeout=30)
        try:
            gate.wait(timeout=30)
            connection.request("POST", "/webhooks/stripe", body=body, headers=headers)
            statuses[i] = connection.getresponse().status
        except OSError as exc:
            statuses[i] = -1
            print(f"delivery {i}: {exc!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(deliveries))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses


@pytest.mark.slow
def test_200_concurrent_signed_webhooks_are_all_answered_and_each_stored_once(serve, service):
    listener = serve()
    ids = [f"evt_burst_{i:03d}" for i in range(200)]
    deliveries = [stripe_event(event_id) for event_id in ids]
    first = _post_all(listener, deliveries)
    again = _post_all(listener, deliveries)  # the providers' retries, as concurrent
    assert first == [200] * 200
    assert again == [200] * 200
    stored = stored_events(service)
    assert sorted(stored) == ids  # every event, and each once


@pytest.mark.slow
def test_3000_unknown_webhook_paths_do_not_grow_metrics(serve):
    listener = serve()
    with httpx.Client(base_url=listener.address) as client:
        client.post("/webhooks/warm-up")  # the two series of unknown paths exist from here on
        client.post("/webhooks/stripe/warm-up")
        before = client.get("/metrics").text
        answers = {client.post(f"/webhooks/{uuid.uuid4().hex}").status_code for _ in range(2000)}
        answers |= {client.post(f"/webhooks/stripe/{uuid.uuid4().hex}").status_code for _ in range(1000)}
        after = client.get("/metrics").text
    assert answers == {404}
    assert abs(len(after) - len(before)) <= 16  # counters grew ("1.0" -> "2001.0"), series did not
    assert 'connector_webhooks_total{outcome="unknown",provider="unknown"} 2001.0' in after
    assert 'connector_webhooks_total{outcome="unknown",provider="stripe"} 1001.0' in after


# the command line -----------------------------------------------------------------------------


def test_a_webhook_limit_under_1024_bytes_is_a_usage_error(run_cli):
    result = run_cli("serve", "--webhook-max-bytes", "10")
    assert result.exit_code == 2
    assert "--webhook-max-bytes" in result.stderr and result.stderr.strip().count("\n") == 0


@pytest.mark.slow
def test_connector_serve_with_json_logs_answers_abuse_in_json_lines_only(tmp_path):
    """The real command, its logging set up by `--log-format json`: uvicorn's lines and the
    listener's refusals are JSON, nothing prints a traceback, and SIGTERM stops it."""
    book = with_credentials(generate(7, "small", today=date.today()).data)
    with Sandbox(book, limits="off") as sandbox:
        store, _ = sync_sandbox(sandbox, tmp_path, streams=["(none)"])
        store.close()
        command = [sys.executable, "-m", "connector", "--config", str(tmp_path / "connector.toml")]
        command += ["--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--every", "1h"]
        process = subprocess.Popen(
            [*command, "--webhook-max-bytes", "2048"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            first = process.stderr.readline().decode()  # "serving every 1h; listener on http://...:PORT ..."
            found = re.search(r"listener on (http://[\d.]+:\d+)", first)
            assert found, first
            address = found.group(1)
            host, port = address.removeprefix("http://").split(":")
            answers = []
            for length in ("-1", "abc"):
                with socket.create_connection((host, int(port)), timeout=5) as sock:
                    sock.sendall(with_content_length(length))
                    answers.append(status_of(sock.recv(4096)))
            answers.append(httpx.post(address + "/webhooks/stripe", content=b"{}" * 2048).status_code)
            answers.append(httpx.get(address + "/healthz").status_code)
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=120)
    assert answers == [400, 400, 413, 200]
    assert process.returncode == 0
    lines = [line for line in err.decode().splitlines() if line.strip() and line != "stopped"]
    entries = [json.loads(line) for line in lines]  # every log line is JSON
    assert "Traceback" not in err.decode()
    messages = [(e["logger"], e["message"]) for e in entries]
    assert messages.count(("uvicorn.error", "Invalid HTTP request received.")) == 2
    assert any("(413)" in message for _, message in messages)
