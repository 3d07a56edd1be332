"""Who may use the workbench: the holder of its token, from the same origin.

    GET /?token=T     the token, once, as in the URL `connector ui` prints (as Jupyter does):
                      answered with a session cookie (HttpOnly, SameSite=Strict) and a redirect
                      to the same page without the token, so it stays out of history and logs
    any request       needs that cookie; without it 401, whatever the path
    a state change    (POST) also needs the session's CSRF token in the form (`csrf`), and an
                      Origin, when the browser sends one, equal to the page's own
    every request     a Host the workbench answers to (on loopback: 127.0.0.1, localhost or
                      ::1 with its port; a DNS-rebinding page is refused with 400), and a body
                      of at most `MAX_BODY` bytes (413)

The session cookie and the CSRF token are derived from the token (HMAC), so nothing is kept
per session and the token itself never leaves in an answer.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "connector_ui"
SESSION = "connector.ui.session"  # the scope's key for the request's session nonce
ACCESS = "connector.ui.access"  # the scope's key for the `Access` (the pages derive CSRF tokens)
MAX_BODY = 16 * 1024  # bytes: a decision's form is a few hundred
MIN_TOKEN = 16  # characters of a token given in the environment

SECURITY_HEADERS = {
    # nothing from anywhere but the connector itself; no script at all
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # not no-referrer: with it a browser sends "Origin: null" on the page's own forms
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def new_token() -> str:
    return secrets.token_urlsafe(32)


class Access:
    """The token, and the session cookie and CSRF token derived from it."""

    def __init__(self, token: str, *, hosts: Collection[str] | None = None) -> None:
        self._key = token.encode()
        self.hosts = None if hosts is None else frozenset(h.lower() for h in hosts)

    def token_matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._key)

    def _mac(self, purpose: str, nonce: str) -> str:
        return hmac.new(self._key, f"{purpose}:{nonce}".encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        nonce = secrets.token_hex(16)
        return f"{nonce}.{self._mac('session', nonce)}"

    def session_nonce(self, cookie: str | None) -> str | None:
        """The nonce of a session cookie this token made, else None."""
        nonce, _, mac = (cookie or "").partition(".")
        if not nonce or not hmac.compare_digest(mac, self._mac("session", nonce)):
            return None
        return nonce

    def csrf(self, nonce: str) -> str:
        return self._mac("csrf", nonce)

    def csrf_matches(self, nonce: str, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.csrf(nonce).encode())


def loopback_hosts(port: int) -> list[str]:
    """The Host headers a loopback listener answers to."""
    return [f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")]


def refusal(status: int, message: str) -> Response:
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Workbench</title></head>'
        f"<body><p>{message}</p></body></html>"
    )
    return HTMLResponse(page, status, headers=SECURITY_HEADERS)


UNAUTHORISED = (
    "401: this workbench needs its token. Open the URL that <code>connector ui</code> printed "
    "(with <code>?token=</code>)."
)


class Guard:
    """The outermost layer of the workbench: the Host, the body size, the token or session,
    the security headers of every answer. CSRF is checked where a form is read (`pages`)."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        answer = self._refuse(scope, headers)
        if answer is not None:
            await answer(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                own = {k.lower() for k, _ in ((k.decode(), v) for k, v in message.get("headers", []))}
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k not in own]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)

    def _refuse(self, scope: Scope, headers: Headers) -> Response | None:
        """The answer to a request that goes no further, or None (the session noted in scope)."""
        host = headers.get("host", "").lower()
        if self.access.hosts is not None and host not in self.access.hosts:
            return refusal(400, "400: this workbench does not answer to that host name.")
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return refusal(413, f"413: a request body is at most {MAX_BODY} bytes here.")
        if "transfer-encoding" in headers:
            return refusal(411, "411: send the form with a Content-Length.")
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        given = query.pop("token", None)
        if given is not None and scope["method"] in ("GET", "HEAD") and self.access.token_matches(given):
            # the token once, then the session cookie: the page again, without the token
            path = scope["path"]  # the whole path, under a mount too
            location = path + (f"?{urlencode(query)}" if query else "")
            redirect = RedirectResponse(location, 303, headers=SECURITY_HEADERS)
            redirect.set_cookie(
                COOKIE,
                self.access.new_session(),
                path=scope.get("root_path") or "/",
                httponly=True,
                samesite="strict",
                secure=scope.get("scheme") == "https",
            )
            return redirect
        nonce = self.access.session_nonce(_cookie(headers))
        if nonce is None:
            return refusal(401, UNAUTHORISED)
        if scope["method"] not in ("GET", "HEAD"):
            origin = headers.get("origin")
            if origin is not None and urlsplit(origin).netloc.lower() != host:
                return refusal(403, "403: a change must come from the workbench's own page.")
            if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                return refusal(403, "403: a change must come from the workbench's own page.")
        scope[SESSION], scope[ACCESS] = nonce, self.access
        return None


def _cookie(headers: Headers) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None
