"""The sandbox: Stripe, Xero and HubSpot on one loopback port, plus its own two endpoints.

    with Sandbox(data, limits="documented", fail_rate=0.2, seed=7) as sandbox:
        base_url = sandbox.url("xero")            # http://127.0.0.1:PORT/xero
        ...run the adapters...
        effects = [e["effect"] for e in sandbox.journal]

One request, in order: the face checks it at arrival (credentials, then the rate windows,
counted at that moment, and Xero's 5 in flight) and may refuse it; `latency_ms` passes (for
refusals too); unless refused, the seeded RNG decides a fault (5xx, a timeout that then drops, or a dropped
connection), before the write is applied or, for writes, sometimes after it (so the retry
meets the idempotency record, as with the real providers); the face answers under the one
lock; the journal records every write with its effect.

    GET /_sandbox/health     {"status": "ok", "providers": [...]}
    GET /_sandbox/journal    the journal as a JSON list
    GET /_sandbox/traffic    per provider: requests, 429s, the most in any documented window

Every provider request (the token endpoints aside) is logged with its arrival time and final
status, so that a run can be held to the documented limits afterwards (`Sandbox.traffic`).
"""

from __future__ import annotations

import gc
import random
import signal
import socket
import sys
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, Self, get_args
from urllib.parse import parse_qs, urlsplit

from connector.sandbox.common import (
    JournalEntry,
    Request,
    Response,
    exact,
    new_uuid,
    payload_of,
    token,
)
from connector.sandbox.datafile import check_data, read_data
from connector.sandbox.hubspot_api import HubSpotFace
from connector.sandbox.quickbooks_api import QuickBooksFace
from connector.sandbox.stripe_api import StripeFace
from connector.sandbox.xero_api import XeroFace

PROVIDERS = ("stripe", "xero", "hubspot", "quickbooks")
FAULTS = ("500", "502", "503", "timeout", "drop")
Limits = Literal["documented", "off"]
LIMIT_MODES: tuple[Limits, ...] = get_args(Limits)
Face = StripeFace | XeroFace | HubSpotFace | QuickBooksFace

# The shortest window of each provider's documented per-account limit, in seconds: Stripe
# 25 or 100 a second, Xero 60 a minute per tenant, HubSpot 100 or 190 per 10 s, QuickBooks
# 500 a minute per realm. `Sandbox.traffic` reports the most requests that arrived in any one.
DOCUMENTED_WINDOWS: dict[str, float] = {"stripe": 1.0, "xero": 60.0, "hubspot": 10.0, "quickbooks": 60.0}


@dataclass(frozen=True)
class Traffic:
    """What arrived for one provider: every request (refused ones included), those answered
    429, and the most that arrived in any `window` seconds (sliding, refusals included)."""

    requests: int
    rate_limited: int
    window: float
    busiest: int

    @property
    def rate_limited_share(self) -> float:
        return self.rate_limited / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "rate_limited": self.rate_limited,
            "window": self.window,
            "busiest": self.busiest,
        }


def busiest_window(arrivals: list[float], window: float) -> int:
    """The most of the sorted `arrivals` that lie less than `window` seconds apart."""
    most, first = 0, 0
    for last, moment in enumerate(arrivals):
        while moment - arrivals[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most


@dataclass
class SandboxState:
    """The live collections behind each face (read them under `Sandbox.lock` if requests
    may be running): `stripe["invoices"][id]`, `xero["Invoices"][id]`,
    `hubspot["notes"][id]`."""

    stripe: dict[str, dict[str, dict[str, Any]]]
    xero: dict[str, dict[str, dict[str, Any]]]
    hubspot: dict[str, dict[str, dict[str, Any]]]


@dataclass
class Fault:
    kind: str  # one of FAULTS
    after: bool  # the write was applied before the fault


@dataclass
class Outcome:
    response: Response | None  # None: drop the connection
    delay_s: float = 0.0


class Sandbox:
    def __init__(
        self,
        data: dict[str, Any] | None = None,
        *,
        latency_ms: float = 0,
        limits: Limits = "documented",
        fail_rate: float = 0.0,
        seed: int = 0,
        fault_delay_s: float = 2.0,
        token_ttl_s: int = 1800,
        refresh_grace_s: float = 0,
        search_delay_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limits not in ("documented", "off"):
            raise ValueError(f"limits must be 'documented' or 'off', not {limits!r}")
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be between 0 and 1, not {fail_rate}")
        if search_delay_s < 0:
            raise ValueError(f"search_delay_s cannot be negative, not {search_delay_s}")
        self.latency_s = max(0.0, latency_ms / 1000)
        self.limits = limits
        self.fail_rate = fail_rate
        self.seed = seed
        self.fault_delay_s = fault_delay_s
        self.token_ttl_s = token_ttl_s
        # Xero lets a spent refresh token be used again for 30 minutes when its answer was
        # lost; 0 (the default) refuses it at once, the strictest reading.
        self.refresh_grace_s = refresh_grace_s
        # HubSpot's search index trails writes: a created object shows in search this long after.
        self.search_delay_s = search_delay_s
        self.clock = clock
        self.lock = threading.RLock()
        self._rng = random.Random(seed)
        self._journal: list[JournalEntry] = []
        # Per provider: each request's arrival time (8 bytes apiece), and the 429s among them.
        self._arrivals: dict[str, array[float]] = {name: array("d") for name in PROVIDERS}
        self._rate_limited: Counter[str] = Counter()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url: str | None = None
        self.faces: dict[str, Face] = {}
        self.load_data(data or {})

    # ------------------------------------------------------------ data and state

    def load_data(self, data: dict[str, Any]) -> None:
        """Replace every face's data (the providers' own shapes; see docs/sandbox.md)."""
        check_data(data)  # SandboxDataError (a ValueError) naming the place
        data = exact(data)
        credentials = data.get("credentials") or {}
        on = self.limits == "documented"
        faces: dict[str, Face] = {
            "stripe": StripeFace(self.clock, limits=on, credentials=credentials.get("stripe")),
            "xero": XeroFace(self.clock, limits=on, credentials=credentials.get("xero"), token_ttl_s=self.token_ttl_s),
            "hubspot": HubSpotFace(
                self.clock,
                limits=on,
                credentials=credentials.get("hubspot"),
                token_ttl_s=self.token_ttl_s,
                search_delay_s=self.search_delay_s,
            ),
            "quickbooks": QuickBooksFace(
                self.clock, limits=on, credentials=credentials.get("quickbooks"), token_ttl_s=self.token_ttl_s
            ),
        }
        for name, face in faces.items():
            face.load(data.get(name) or {})
            oauth = getattr(face, "oauth", None)
            if oauth is not None:
                oauth.grace_s = self.refresh_grace_s
        with self.lock:
            self.faces = faces

    @property
    def state(self) -> SandboxState:
        return SandboxState(self.faces["stripe"].objects, self.faces["xero"].objects, self.faces["hubspot"].objects)

    @property
    def journal(self) -> list[dict[str, Any]]:
        with self.lock:
            return [entry.as_dict() for entry in self._journal]

    def traffic(self, windows: dict[str, float] | None = None) -> dict[str, Traffic]:
        """Per provider that was called: its requests, its 429s and the most requests in any
        window of `windows[provider]` seconds (default: DOCUMENTED_WINDOWS)."""
        windows = {**DOCUMENTED_WINDOWS, **(windows or {})}
        with self.lock:
            arrivals = {name: sorted(times) for name, times in self._arrivals.items() if times}
            refused = dict(self._rate_limited)
        return {
            name: Traffic(len(times), refused.get(name, 0), windows[name], busiest_window(times, windows[name]))
            for name, times in arrivals.items()
        }

    # ------------------------------------------------------------ lifecycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; returns the base URL (`http://HOST:PORT`)."""
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        server = _Server((host, port), _Handler)
        server.sandbox = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="sandbox", daemon=True)
        self._thread.start()
        bound_host, bound_port = server.server_address[:2]
        assert isinstance(bound_host, str)  # an AF_INET server: bytes are for AF_UNIX sockets
        self.base_url = f"http://{bound_host}:{bound_port}"
        return self.base_url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def url(self, provider: str) -> str:
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")
        if self.base_url is None:
            raise RuntimeError("start the sandbox first")
        return f"{self.base_url}/{provider}"

    def __enter__(self) -> Self:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ one request

    def dispatch(self, request: Request, provider: str, before_write: Callable[[], None] = lambda: None) -> Outcome:
        """Answer one provider request (`request.path` without the provider prefix)."""
        face = self.faces[provider]
        request.request_id = _request_id(provider)
        arrived = self.clock()
        outcome: Outcome | None = None
        write = request.is_write and not request.path.endswith(("/search", "/batch/read"))
        begin = getattr(face, "begin", None)
        with self.lock:
            early = begin(request) if begin else None
        try:
            outcome = self._answer(provider, face, request, early, write)
            return outcome
        finally:
            if not request.path.startswith("/oauth/"):
                with self.lock:
                    self._arrivals[provider].append(arrived)
                    if outcome is not None and outcome.response is not None and outcome.response.status == 429:
                        self._rate_limited[provider] += 1
            end = getattr(face, "end", None)
            if end is not None:
                with self.lock:
                    end(request)

    def _answer(self, provider: str, face: Face, request: Request, early: Response | None, write: bool) -> Outcome:
        self._latency(request)
        if early is not None:
            return self._finish(provider, request, early, write)
        with self.lock:
            fault = self._draw_fault(request, write)
            if fault is not None and not fault.after:
                self._record(provider, request, 0, f"fault: {fault.kind} before applying", write)
                return self._faulted(provider, fault, request)
            response = face.handle(request)
            if fault is None:
                return self._finish(provider, request, response, write)
            response.effect = f"{response.effect or 'answered'}; then fault: {fault.kind}"
            self._finish(provider, request, response, write)
            return self._faulted(provider, fault, request)

    def _latency(self, request: Request) -> None:
        """The `latency_ms` every provider request waits, outside the lock (a seam for tests)."""
        if self.latency_s:
            time.sleep(self.latency_s)

    def _draw_fault(self, request: Request, write: bool) -> Fault | None:
        if not self.fail_rate or request.path.startswith("/oauth/"):
            return None
        if self._rng.random() >= self.fail_rate:
            return None
        kind = self._rng.choice(FAULTS)
        after = write and self._rng.random() < 0.5
        return Fault(kind, after)

    def _faulted(self, provider: str, fault: Fault, request: Request) -> Outcome:
        if fault.kind == "drop":
            return Outcome(None)
        if fault.kind == "timeout":
            return Outcome(None, delay_s=self.fault_delay_s)
        status = int(fault.kind)
        message = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}[status]
        body: dict[str, Any]
        if provider == "stripe":
            body = {"error": {"type": "api_error", "message": f"{message} (sandbox fault)"}}
        elif provider == "xero":
            body = {"Title": message, "Status": status, "Detail": "sandbox fault"}
        elif provider == "quickbooks":
            body = {
                "Fault": {
                    "Error": [{"Message": message, "Detail": "sandbox fault", "code": str(status)}],
                    "type": "SystemFault",
                }
            }
        else:
            body = {
                "status": "error",
                "message": f"{message} (sandbox fault)",
                "correlationId": request.request_id,
                "category": "INTERNAL_ERROR",
            }
        return Outcome(self._stamp(provider, request, Response(status, body)))

    def _finish(self, provider: str, request: Request, response: Response, write: bool) -> Outcome:
        with self.lock:
            self._record(
                provider, request, response.status, response.effect or _default_effect(response), write, response
            )
            response.encoded()  # now, under the lock: a list's body holds live records
        return Outcome(self._stamp(provider, request, response))

    def _record(
        self, provider: str, request: Request, status: int, effect: str, write: bool, response: Response | None = None
    ) -> None:
        if not write and not (response is not None and response.redacted):
            return
        payload = response.journal_payload if response is not None and response.redacted else payload_of(request)
        self._journal.append(
            JournalEntry(
                provider,
                request.method,
                request.path,
                request.header("idempotency-key"),
                payload,
                effect,
                status,
                self.clock(),
                request.request_id,
            )
        )

    @staticmethod
    def _stamp(provider: str, request: Request, response: Response) -> Response:
        name = {
            "stripe": "Request-Id",
            "xero": "Xero-Correlation-Id",
            "hubspot": "X-HubSpot-Correlation-Id",
            "quickbooks": "intuit_tid",
        }[provider]
        response.headers.setdefault(name, request.request_id)
        return response

    def admin(self, path: str) -> Response:
        if path == "/_sandbox/health":
            return Response(
                200, {"status": "ok", "providers": list(PROVIDERS), "limits": self.limits, "fail_rate": self.fail_rate}
            )
        if path == "/_sandbox/journal":
            return Response(200, self.journal)
        if path == "/_sandbox/traffic":
            return Response(200, {name: t.as_dict() for name, t in self.traffic().items()})
        return Response(404, {"error": f"no sandbox endpoint {path}"})


def _request_id(provider: str) -> str:
    return token("req_", 7) if provider == "stripe" else new_uuid()


def _default_effect(response: Response) -> str:
    return "answered" if response.status < 400 else f"rejected: HTTP {response.status}"


# ---------------------------------------------------------------- HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-request (a killed process, a dropped connection) is
        # part of what the sandbox is for; anything else is a sandbox bug worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            return
        super().handle_error(request, client_address)

    allow_reuse_address = True
    request_queue_size = 128
    sandbox: Sandbox


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _read_body(self) -> bytes | None:
        """The request's body; None when the client went away before sending all of it (a
        process killed mid-request): like a real server, the sandbox then does nothing, where
        acting on the part it got would store a different request under its idempotency key."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                line = self.rfile.readline()
                if not line.endswith(b"\n"):
                    return None
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    return None
                chunks.append(chunk)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        return body if len(body) == length else None

    def _serve(self) -> None:
        sandbox = self.server.sandbox
        body = self._read_body()
        if body is None:
            self.close_connection = True
            return
        split = urlsplit(self.path)
        path = split.path
        if path.startswith("/_sandbox/"):
            self._write(sandbox.admin(path))
            return
        provider, _, rest = path.lstrip("/").partition("/")
        if provider not in PROVIDERS:
            served = ", ".join(f"/{p}" for p in PROVIDERS[:-1]) + f" and /{PROVIDERS[-1]}"
            self._write(Response(404, {"error": f"no provider at /{provider}; the sandbox serves {served}"}))
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = Request(self.command, "/" + rest, parse_qs(split.query, keep_blank_values=True), headers, body)
        outcome = sandbox.dispatch(request, provider)
        if outcome.delay_s:
            time.sleep(outcome.delay_s)
        if outcome.response is None:
            self._drop()
            return
        self._write(outcome.response)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _write(self, response: Response) -> None:
        payload = response.encoded()
        self.send_response(response.status)
        if response.body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        # Head and body in one write: two small writes meet Nagle and delayed ACKs (40 ms).
        # typeshed leaves out the handler's private _headers_buffer (bytes lines, joined by flush_headers)
        self._headers_buffer.append(b"\r\n" + payload)  # type: ignore[attr-defined]
        self.flush_headers()


# ---------------------------------------------------------------- the CLI's entry


class ListenError(OSError):
    """The sandbox cannot listen where it was asked to (port in use, unknown host...)."""


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    data: dict[str, Any] | str | Path | None = None,
    latency_ms: float = 0,
    limits: Limits = "documented",
    fail_rate: float = 0.0,
    *,
    seed: int = 0,
    search_delay_s: float = 0.0,
    echo: Callable[[str], None] = print,
) -> None:
    """Serve until SIGINT or SIGTERM, printing the base URL of each provider.

    Raises SandboxDataError for data that cannot be used and ListenError when the address
    cannot be bound, each with a one-line message."""
    sandbox = Sandbox(
        read_data(data),
        latency_ms=latency_ms,
        limits=limits,
        fail_rate=fail_rate,
        seed=seed,
        search_delay_s=search_delay_s,
    )
    # This process serves the book until it stops: the collector need not walk it again (on a
    # large book a full collection pauses every request for seconds).
    gc.freeze()
    try:
        sandbox.start(host, port)
    except OSError as exc:  # EADDRINUSE, EACCES, an unknown host (gaierror)...
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for provider in PROVIDERS:
            echo(f"{provider:8} {sandbox.url(provider)}")
        echo(f"journal  {sandbox.base_url}/_sandbox/journal")
        delay = f", HubSpot search delay {search_delay_s:g} s" if search_delay_s else ""
        echo(f"limits {limits}, fail rate {fail_rate}, latency {latency_ms} ms{delay}; Ctrl-C stops")
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sandbox.stop()
