"""The kit's side of the wire: every request a provider makes under test goes through one
`KitServer`, which logs it, injects the failures a check needs (a 429, a 401, a page served
again) and hands the rest to the provider's API: a stateful fake the partner wrote, the
recorded answers of a fixtures directory (`RecordedApi`), or our sandbox (`sandbox_api`).

    KitServer.__call__(request)
        injected answer? -> it          (one 429 with Retry-After, one 401)
        token endpoint?  -> the kit's own rotating OAuth server, or the API's
        loop mode?       -> the first answer of this path again (a provider that does not
                            notice it is served the same page must raise PaginationLoopError)
        otherwise        -> the API
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx

from connector.http import dumps_exact
from connector.sandbox.common import Request
from connector.sandbox.server import Sandbox
from connector.testing.config import KitConfig, Route

Api = Callable[[httpx.Request], httpx.Response]


class KitAbort(Exception):
    """Raised into the provider when a read goes on too long, or no answer was recorded."""


@dataclass
class Event:
    kind: str  # "api", "token", "save"
    request: httpx.Request | None = None
    response: httpx.Response | None = None
    tokens: dict[str, Any] | None = None
    injected: bool = False


@dataclass
class RecordingTokenStore:
    """A `TokenStore` that remembers every save, in the order of the wire (`events`)."""

    events: list[Event] = field(default_factory=list)
    saved: list[dict[str, Any]] = field(default_factory=list)

    def load(self, connection: str) -> dict[str, Any] | None:
        return dict(self.saved[-1]) if self.saved else None

    def save(self, connection: str, tokens: dict[str, Any]) -> None:
        self.saved.append(dict(tokens))
        self.events.append(Event("save", tokens=dict(tokens)))


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    content = b"" if body is None else dumps_exact(body).encode()
    base = {"Content-Type": "application/json"} if body is not None else {}
    return httpx.Response(status, content=content, headers={**base, **(headers or {})})


class KitServer:
    def __init__(self, api: Api, config: KitConfig, *, token_url: str | None = None) -> None:
        self.api = api
        self.config = config
        self.token_url = _strip(token_url) if token_url else None
        self.store = RecordingTokenStore()
        self.events = self.store.events
        self.injections: list[tuple[Callable[[httpx.Request], bool], httpx.Response]] = []
        self.loop_mode = False
        self._first: dict[tuple[str, str], httpx.Response] = {}
        self._issued = itertools.count(1)
        self._refresh_tokens: set[str] = set()

    # -- what the checks look at ---------------------------------------------------------

    @property
    def api_events(self) -> list[Event]:
        return [e for e in self.events if e.kind == "api"]

    def is_read(self, request: httpx.Request) -> bool:
        return request.method == "GET" or any(re.search(p, request.url.path) for p in self.config.read_only)

    def inject(self, response: httpx.Response, when: Callable[[httpx.Request], bool] | None = None) -> None:
        """Answer the next API request (that `when` accepts) with `response`, once."""
        self.injections.append((when or (lambda request: True), response))

    # -- the wire --------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.token_url and _strip(str(request.url)) == self.token_url:
            answer = self._token(request) if self.config.token_endpoint == "kit" else self.api(request)
            self.events.append(Event("token", request, answer))
            return answer
        if len(self.api_events) >= self.config.max_requests:
            raise KitAbort(
                f"the provider made more than {self.config.max_requests} requests in one check "
                f"(last: {request.method} {request.url}); it does not stop"
            )
        for index, (when, answer) in enumerate(self.injections):
            if when(request):
                del self.injections[index]
                self.events.append(Event("api", request, answer, injected=True))
                return answer
        key = (request.method, request.url.path)
        if self.loop_mode and self.is_read(request) and key in self._first:
            answer = _copy(self._first[key])
        else:
            answer = self.api(request)
            if self.is_read(request) and key not in self._first:
                answer.read()
                self._first[key] = _copy(answer)
        self.events.append(Event("api", request, answer))
        return answer

    def _token(self, request: httpx.Request) -> httpx.Response:
        """A token endpoint that rotates refresh tokens: the one spent stops working."""
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        spent = form.get("refresh_token", "")
        if form.get("grant_type") != "refresh_token" or not spent or spent in self._refresh_tokens:
            return json_response(400, {"error": "invalid_grant"})
        self._refresh_tokens.add(spent)
        n = next(self._issued)
        return json_response(
            200,
            {
                "access_token": f"kit-access-{n}",
                "refresh_token": f"kit-refresh-{n}",
                "expires_in": 3600,
                "token_type": "Bearer",
            },
        )


def _strip(url: str) -> str:
    return url.split("?", 1)[0].rstrip("/")


def _copy(response: httpx.Response) -> httpx.Response:
    return httpx.Response(response.status_code, content=response.content, headers=response.headers)


class RecordedApi:
    """Recorded answers (routes of kit.toml) as an API: matched on method, path, and the
    params and headers a route names; writes that repeat an idempotency key get the first
    answer again, as the real providers do."""

    def __init__(self, routes: list[Route], *, base_path: str = "") -> None:
        self.routes = routes
        self.base_path = base_path.rstrip("/")
        self._served: dict[int, int] = {}
        self._replays: dict[str, httpx.Response] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if self.base_path and path.startswith(self.base_path):
            path = path[len(self.base_path) :] or "/"
        params = request.url.params
        candidates = [
            (len(r.params) + len(r.headers), i, r)
            for i, r in enumerate(self.routes)
            if r.method == request.method
            and (r.path == path or (r.path.startswith("^") and re.search(r.path, path)))
            and all(params.get(k) == v for k, v in r.params.items())
            and all(request.headers.get(k) == v for k, v in r.headers.items())
        ]
        if not candidates:
            query = f"?{request.url.query.decode()}" if request.url.query else ""
            raise KitAbort(
                f"no recorded answer for {request.method} {path}{query}: record it and add a "
                "[[routes]] entry to kit.toml (see docs/plugins.md)"
            )
        best = max(c[0] for c in candidates)
        same = [c for c in candidates if c[0] == best]
        first_index = same[0][1]
        turn = self._served.get(first_index, 0)
        self._served[first_index] = turn + 1
        route = same[min(turn, len(same) - 1)][2]
        key = _idempotency_key(request)
        if request.method != "GET" and key and key in self._replays:
            return _copy(self._replays[key])
        answer = json_response(route.status, route.response, route.response_headers)
        if request.method != "GET" and key:
            self._replays[key] = _copy(answer)
        return answer


def _idempotency_key(request: httpx.Request) -> str | None:
    key: str | None = request.headers.get("Idempotency-Key") or request.url.params.get("requestid")  # httpx: Any
    return key


def sandbox_api(data: dict[str, Any] | None = None, **options: Any) -> Callable[[], Api]:
    """Our sandbox (stateful Stripe, Xero and HubSpot) as the API, in process: point the
    settings' `base_url` at `http://sandbox.kit/<provider>` (any host: nothing leaves the
    process). Returns a factory: each check gets a fresh sandbox with `data`."""

    def make() -> Api:
        return _SandboxApi(Sandbox(data or {}, **{"limits": "off", **options}))

    return make


class _SandboxApi:
    """One sandbox as an Api: called with each request; `sandbox` is the one answering."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def __call__(self, request: httpx.Request) -> httpx.Response:
        provider, _, rest = request.url.path.lstrip("/").partition("/")
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = parse_qs(request.url.query.decode(), keep_blank_values=True)
        outcome = self.sandbox.dispatch(Request(request.method, "/" + rest, query, headers, request.read()), provider)
        if outcome.response is None:
            raise httpx.ConnectError("the sandbox dropped the connection", request=request)
        answer = outcome.response
        body_headers = {"Content-Type": "application/json"} if answer.body is not None else {}
        return httpx.Response(answer.status, content=answer.encoded(), headers={**body_headers, **answer.headers})
