"""The service's HTTP listener: `/healthz`, `/readyz`, `/metrics` and the providers' webhooks.

- `/healthz`: the process is alive (200).
- `/readyz`: the database answers, no unit has been failing longer than the threshold, and
  no due unit has waited to start longer than its schedule allows (`Service.overdue`: the
  loop is stuck, or no worker is left to take a dead one's unit over) (200, else 503 with the
  reasons as JSON).
- `/metrics`: Prometheus exposition.
- `/ui/`: the finance workbench (`connector serve --ui`, connector/workbench), behind its token.
- `POST /webhooks/stripe|xero|hubspot[/CONNECTION]`: verified with the connection's
  `webhook_secret` (constant-time compare), stored once by event id, answered at once (Xero
  wants an answer within 5 s, with no body), and the affected streams are pulled right away
  (incrementally, from their cursors).

A small Starlette app served by uvicorn in a thread of its own, within `Limits`:

    connection  the listen backlog; at most `concurrency` connections and requests at once
                (uvicorn answers 503 above); a request head must arrive within `head_timeout`
                (uvicorn has no such deadline: `_head_deadline`); an idle kept-alive
                connection closes after `keep_alive`
    body        each route's limit (`_BodyLimit`; webhooks `webhook_body`, others `body`),
                refused with 413 from the Content-Length before a byte is read, or as soon as a
                chunked body passes it; a body must arrive within `body_timeout` (408);
                a response to a request whose body was not read closes the connection, so the
                rest is never read (`_Guard`)
    errors      h11 answers a malformed request (a Content-Length of -1 or "abc") with 400
                before the app sees it; an unexpected error is one log line and a 500
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ParamSpec, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from connector import webhooks
from connector.config import Connection
from connector.service.loop import Service
from connector.state import units as work

logger = logging.getLogger("connector.service")

JSON = "application/json"

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """How much the listener takes from its clients, and for how long."""

    webhook_body: int = 1024 * 1024  # bytes of a webhook's body (the providers send a few KB)
    body: int = 64 * 1024  # bytes of any other request's body (none takes one today)
    body_timeout: float = 10.0  # seconds to receive a whole body, from the first read
    head_timeout: float = 10.0  # seconds to receive a request line and headers
    keep_alive: int = 5  # seconds an idle kept-alive connection stays open
    concurrency: int = 512  # connections and requests at once; above, 503
    backlog: int = 2048  # connections the kernel queues before the listener accepts them
    threads: int = 8  # threads doing the database work of webhooks and /readyz
    shutdown_timeout: int = 5  # seconds requests in flight get to finish on close()


class Listener:
    def __init__(
        self,
        service: Service,
        host: str,
        port: int,
        *,
        failing_threshold: timedelta = timedelta(minutes=30),
        public_url: str | None = None,
        limits: Limits | None = None,
        ui: ASGIApp | None = None,
    ) -> None:
        self.service = service
        self.ui = ui  # the finance workbench (connector.workbench), mounted at /ui/ when given
        self.failing_threshold = failing_threshold
        # The public URL is joined with the request's path ("/webhooks/..."): a trailing slash
        # would sign "...//webhooks/hubspot", which HubSpot never called.
        self.public_url = public_url.rstrip("/") if public_url else None
        self.limits = limits or Limits()
        self.providers = frozenset(c.provider for c in service.config.connections.values())
        # Bound here, so that a busy port fails the constructor (`connector serve` says so) and
        # connections queue in the backlog until the server thread accepts them.
        host = host.removeprefix("[").removesuffix("]")  # "[::1]" as in a URL
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = _bind(family, host, port, self.limits.backlog)
        bound_host, bound_port = self.socket.getsockname()[:2]
        shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
        self._address = f"http://{shown}:{bound_port}"
        self._pool = ThreadPoolExecutor(self.limits.threads, thread_name_prefix="listener-db")
        self.app = self._app()
        config = uvicorn.Config(
            self.app,
            http=_head_deadline(self.limits.head_timeout),
            ws="none",
            lifespan="off",
            log_config=None,  # uvicorn's loggers go through connector.logs (text or JSON)
            proxy_headers=False,
            server_header=False,
            limit_concurrency=self.limits.concurrency,
            backlog=self.limits.backlog,
            timeout_keep_alive=self.limits.keep_alive,
            timeout_graceful_shutdown=self.limits.shutdown_timeout,
        )
        self.server = _Server(config)
        self.thread = threading.Thread(target=self._serve, name="listener", daemon=True)

    @property
    def address(self) -> str:
        return self._address

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        """Stop accepting, give the requests in flight `shutdown_timeout` to finish, stop."""
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(self.limits.shutdown_timeout + 5)
            if self.thread.is_alive():
                logger.warning("listener: still stopping after %s s; left behind", self.limits.shutdown_timeout + 5)
        self.socket.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _serve(self) -> None:
        try:
            self.server.run(sockets=[self.socket])
        except Exception as exc:
            logger.error("listener stopped: %s: %s", type(exc).__name__, exc)

    # the app ----------------------------------------------------------------------------------

    def _app(self) -> Starlette:
        routes: list[BaseRoute] = [
            Route("/healthz", self._healthz),
            Route("/readyz", self._readyz),
            Route("/metrics", self._metrics),
            Route(
                "/webhooks/{rest:path}",
                self._webhook,
                methods=["POST"],
                middleware=[Middleware(_BodyLimit, limit=self.limits.webhook_body)],
            ),
        ]
        if self.ui is not None:
            routes += [Route("/ui", _to_ui), Mount("/ui", app=self.ui)]
        app = Starlette(
            routes=routes,
            middleware=[Middleware(_Guard, limits=self.limits)],
            exception_handlers={HTTPException: _http_error},
        )
        app.router.redirect_slashes = False  # a provider does not follow a redirect of its POST
        return app

    async def _healthz(self, request: Request) -> Response:
        return Response(b'{"status": "ok"}', media_type=JSON)

    async def _readyz(self, request: Request) -> Response:
        ready, problems = await self._in_pool(self.readiness)
        answer = json.dumps({"ready": ready, "problems": problems}).encode()
        return Response(answer, 200 if ready else 503, media_type=JSON)

    async def _metrics(self, request: Request) -> Response:
        return Response(self.service.metrics.exposition(), media_type="text/plain; version=0.0.4")

    async def _webhook(self, request: Request) -> Response:
        parts = [p for p in request.path_params["rest"].split("/") if p]
        if len(parts) not in (1, 2):
            return Response(b'{"error": "not found"}', 404, media_type=JSON)
        provider, name = parts[0], parts[1] if len(parts) == 2 else None
        if self.connection(provider, name) is None:  # answered before a byte of the body is read
            status, answer = self._no_connection(provider)
            return Response(answer, status, media_type=JSON)
        body = await request.body()  # within the route's limit and the body timeout (_Guard)
        # The request target exactly as sent (HubSpot signs it, query string included).
        target = (request.scope.get("raw_path") or request.scope["path"].encode()).decode("latin-1")
        if request.scope["query_string"]:
            target += "?" + request.scope["query_string"].decode("latin-1")
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, answer = await self._in_pool(self.webhook, provider, name, "POST", target, headers, body)
        return Response(answer, status, media_type=JSON)

    async def _in_pool(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Database work, off the event loop, at most `Limits.threads` at once."""
        bound = functools.partial(call, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, bound)

    # checks -----------------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, list[str]]:
        problems = []
        try:
            self.service.store.ping()
            with self.service.store.session() as session:
                rows = work.units(session)
        except Exception as exc:  # any database failure means not ready
            return False, [f"database unreachable: {type(exc).__name__}"]
        limit = datetime.now(UTC) - self.failing_threshold
        for row in rows:
            since = row.get("failing_since")
            if since is not None and since < limit:
                problems.append(f"{row['unit']} failing since {since.isoformat()}: {row.get('last_error')}")
        problems += self.service.overdue(rows)
        return not problems, problems

    def connection(self, provider: str, name: str | None) -> Connection | None:
        """The connection a webhook path names: the provider's first, or the one named."""
        for connection in self.service.config.connections.values():
            if connection.provider == provider and name in (None, connection.name):
                return connection
        return None

    def webhook(
        self, provider: str, connection_name: str | None, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        metrics = self.service.metrics
        connection = self.connection(provider, connection_name)
        if connection is None:
            return self._no_connection(provider)
        secret = connection.settings.webhook_secret
        base = self.public_url or f"http://{headers.get('host', 'localhost')}"
        request = webhooks.WebhookRequest(
            method=method, url=base + path, headers=headers, body=body, received_at=time.time()
        )
        try:
            events = webhooks.intake(provider, request, secret.get_secret_value() if secret else None)
        except webhooks.WebhookRejected as exc:
            metrics.count_webhook(provider, "rejected", self.providers)
            context = {"company": connection.company, "connection": connection.name}
            logger.warning("webhook rejected: %s", exc.reason, extra=context)
            return 401, b""
        fresh = []
        with self.service.store.session() as session:
            for event in events:
                if work.store_event(
                    session,
                    provider,
                    event.event_id,
                    connection.name,
                    event.stream,
                    event.object_id,
                    event.raw,
                    company=connection.company,
                ):
                    fresh.append(event)
        for stream in sorted({s for e in fresh for s in e.streams if s}):
            self.service.due_now(connection.name, stream)
        metrics.count_webhook(provider, "accepted", self.providers)
        return 200, b""

    def _no_connection(self, provider: str) -> tuple[int, bytes]:
        self.service.metrics.count_webhook(provider, "unknown", self.providers)
        return 404, b'{"error": "no connection for this provider"}'


async def _to_ui(request: Request) -> Response:
    return RedirectResponse("/ui/", 308)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's 404 and 405, as JSON like every other answer."""
    assert isinstance(exc, HTTPException)
    body = json.dumps({"error": exc.detail.lower()}).encode()
    return Response(body, exc.status_code, headers=exc.headers, media_type=JSON)


# bounds -------------------------------------------------------------------------------------


class _Refused(Exception):
    """A request the listener will not take: answered with `status`, logged with the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class _Body:
    """The request body as the app reads it: up to the route's limit, within the body timeout."""

    def __init__(self, scope: Scope, receive: Receive, limits: Limits) -> None:
        self._receive = receive
        self.limit = limits.body  # the route's own, once routed (_BodyLimit)
        self.timeout = limits.body_timeout
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        # h11 has answered 400 to anything but digits (uvicorn passes on its normalised value).
        self.declared = int(length) if length is not None and length.isdigit() else None
        self.done = "transfer-encoding" not in headers and not self.declared  # nothing (more) to read
        self.received = 0
        self.deadline: float | None = None

    def check_declared(self) -> None:
        if self.declared is not None and self.declared > self.limit:
            raise _Refused(413, f"a body of {self.declared} bytes is over the limit of {self.limit}")

    async def receive(self) -> Message:
        if self.done:
            return await self._receive()
        self.check_declared()
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.timeout
        try:
            async with asyncio.timeout(self.deadline - now):
                message = await self._receive()
        except TimeoutError:
            raise _Refused(408, f"the body did not arrive within {self.timeout:g} s") from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                raise _Refused(413, f"the body passed the limit of {self.limit} bytes")
            self.done = not message.get("more_body", False)
        return message


_BODY = "connector.body"  # the scope's key for the request's _Body


class _Guard:
    """The outermost middleware of the app: bounds every request's body (`_Body`), answers a
    refusal, closes a connection whose request body was not read (uvicorn would read and drop
    the rest of it to keep the connection), and makes an unexpected error one log line."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = scope[_BODY] = _Body(scope, receive, self.limits)
        started = False

        async def send_closing(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if not body.done:
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        request = f"{scope['method']} {scope['path']}"
        try:
            await self.app(scope, body.receive, send_closing)
        except _Refused as exc:
            logger.warning("listener: refused %s (%s): %s", request, exc.status, exc)
            if not started:
                await _answer(send_closing, exc.status, json.dumps({"error": str(exc)}).encode())
        except ClientDisconnect:
            logger.info("listener: the client of %s went away", request)
        except Exception as exc:
            debug = logger.isEnabledFor(logging.DEBUG)
            logger.error("listener: %s failed: %s: %s", request, type(exc).__name__, exc, exc_info=debug)
            if not started:
                await _answer(send_closing, 500, b'{"error": "internal error"}')


class _BodyLimit:
    """A route's body limit, in place of `Limits.body`: a body declared larger is refused
    before the endpoint runs."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = scope.get(_BODY)
        if isinstance(body, _Body):
            body.limit = self.limit
            body.check_declared()
        await self.app(scope, receive, send)


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _head_deadline(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a deadline for each request's head. uvicorn times out only
    an idle kept-alive connection: one sending its request line and headers a byte at a time
    would hold its connection (and its place under `Limits.concurrency`) for ever."""

    class HeadDeadline(H11Protocol):
        head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.wait_for_head()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.answering():
                self.stop_waiting()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self.wait_for_head()  # the next request's, on a kept-alive connection

        def connection_lost(self, exc: Exception | None) -> None:
            self.stop_waiting()
            super().connection_lost(exc)

        def answering(self) -> bool:
            """A request's head has arrived and its answer is not complete yet."""
            return self.cycle is not None and not self.cycle.response_complete

        def wait_for_head(self) -> None:
            self.stop_waiting()
            if not self.answering() and not self.transport.is_closing():
                self.head_timer = self.loop.call_later(seconds, self.head_timed_out)

        def stop_waiting(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

        def head_timed_out(self) -> None:
            self.head_timer = None
            if not self.answering() and not self.transport.is_closing():
                logger.info("listener: closed a connection whose request did not arrive within %g s", seconds)
                self.transport.close()

    return HeadDeadline


def _bind(family: socket.AddressFamily, host: str, port: int, backlog: int) -> socket.socket:
    # proto=IPPROTO_TCP, not 0 (socket.create_server's): asyncio sets TCP_NODELAY only on
    # connections whose socket says TCP, and without it every answer, written as head then
    # body, waits for the client's delayed ACK (40 ms a request on keep-alive).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The service has its own SIGTERM/SIGINT handling (and uvicorn's thread is not the
        # main one, where a handler could be installed anyway).
        yield
