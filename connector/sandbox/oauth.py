"""OAuth2 token endpoints (`{prefix}/oauth/token`) with rotating refresh tokens, and the
bearer check of the API behind them.

- `grant_type=refresh_token` spends the refresh token and answers a new access token
  (`expires_in` seconds) and a NEW refresh token; the spent one is refused with
  `invalid_grant` from then on, as Xero and HubSpot do.
- Client credentials come as HTTP Basic (Xero) or form fields (HubSpot); both are accepted.
- Without credentials in the data file any non-empty client id, any unspent refresh token and
  any non-empty bearer are accepted. With credentials, only the named client and refresh
  token, and on the API only access tokens issued here (and unexpired) or named ones.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import unquote_plus

from connector.sandbox.common import Clock, Request, Response, token


class OAuthIssuer:
    def __init__(
        self, provider: str, clock: Clock, *, ttl_s: int = 1800, credentials: dict[str, Any] | None = None
    ) -> None:
        self.provider = provider
        self.clock = clock
        self.ttl_s = ttl_s
        self.credentials: dict[str, Any] = credentials or {}
        # spent refresh token -> (when, the refresh token issued for it)
        self.spent: dict[str, tuple[float, str]] = {}
        self.grace_s: float = 0
        self.refresh_tokens: set[str] = set()
        self.access_tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        if credentials:
            for name in ("refresh_token", "refresh_tokens"):
                value = credentials.get(name)
                self.refresh_tokens.update([value] if isinstance(value, str) else value or [])
            for name in ("access_token", "access_tokens"):
                value = credentials.get(name)
                for item in [value] if isinstance(value, str) else value or []:
                    self.access_tokens[item] = float("inf")

    @property
    def strict(self) -> bool:
        return bool(self.credentials)

    def bearer_ok(self, bearer: str | None) -> bool:
        if not bearer:
            return False
        if not self.strict:
            return True
        expiry = self.access_tokens.get(bearer)
        return expiry is not None and expiry > self.clock()

    def token_endpoint(self, request: Request) -> Response:
        form = {k: v[-1] for k, v in request.form().items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = _basic(request.header("authorization"))
        if basic:
            client_id, client_secret = basic
        grant = form.get("grant_type")
        journal = {"grant_type": grant, "client_id": client_id}
        if not client_id:
            return self._error(401, "invalid_client", "client authentication failed", journal)
        if self.strict and (
            client_id != self.credentials.get("client_id") or client_secret != self.credentials.get("client_secret")
        ):
            return self._error(401, "invalid_client", "client authentication failed", journal)
        if grant != "refresh_token":
            return self._error(400, "unsupported_grant_type", f"grant_type {grant!r} is not supported here", journal)
        refresh = form.get("refresh_token") or ""
        known = refresh in self.refresh_tokens if self.strict else bool(refresh)
        spent = self.spent.get(refresh)
        if spent is not None and self.clock() - spent[0] < self.grace_s:
            # within the grace period the lost answer's refresh token is handed out again
            access, new_refresh = token("sbx_at_"), spent[1]
        elif spent is not None or not known:
            return self._error(400, "invalid_grant", "the refresh token is invalid, expired or already used", journal)
        else:
            access, new_refresh = token("sbx_at_"), token("sbx_rt_")
            self.spent[refresh] = (self.clock(), new_refresh)
            self.refresh_tokens.discard(refresh)
        self.refresh_tokens.add(new_refresh)
        self.access_tokens[access] = self.clock() + self.ttl_s
        body = {
            "access_token": access,
            "refresh_token": new_refresh,
            "expires_in": self.ttl_s,
            "token_type": "Bearer",
        }
        return Response(
            200, body, effect="issued access token; refresh token rotated", journal_payload=journal, redacted=True
        )

    def _error(self, status: int, code: str, message: str, journal: dict[str, Any]) -> Response:
        body: dict[str, Any] = {"error": code, "error_description": message}
        if self.provider == "hubspot":  # HubSpot's own fields beside the RFC 6749 ones
            body.update(status="BAD_REFRESH_TOKEN" if code == "invalid_grant" else "BAD_CLIENT", message=message)
        return Response(status, body, effect=f"rejected: {code}", journal_payload=journal, redacted=True)


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except ValueError:
        return None
    return unquote_plus(user), unquote_plus(password)


def bearer_of(request: Request) -> str | None:
    header = request.header("authorization") or ""
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None
