"""Credentials on requests, as `httpx.Auth` objects that never show a secret.

`BearerAuth` carries a static API key or private-app token (Stripe, HubSpot private apps).
`OAuthTokenManager` carries an OAuth2 access token and spends the refresh token when needed
(Xero, HubSpot OAuth apps, QuickBooks):

- the configured access token is used as is until it is within `skew` seconds of expiry, or
  the provider answers 401; then the refresh token is spent;
- tokens in the `TokenStore` win over the configured ones (they are newer);
- the refresh answer (with its rotated refresh token) is saved through the `TokenStore`
  *before* the new access token is used: if saving fails, the new token is not used and the
  error propagates, so we never run on a token set that only lives in memory;
- one lock per connection name for the whole process, and a re-check after taking it, so two
  threads (or two managers of one connection) never spend the same refresh token twice;
- a 401 costs exactly one refresh and one retry of the request.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Generator
from contextlib import nullcontext
from typing import Any, Literal

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from pydantic import SecretStr

from connector.errors import AuthenticationError, ProviderUnavailableError
from connector.http.client import build_client
from connector.http.responses import provider_message
from connector.http.tokens import GuardedTokenStore, TokenStore
from connector.redaction import register_secret

ClientAuthMethod = Literal["basic", "post"]
_AUTHLIB_METHODS = {"basic": "client_secret_basic", "post": "client_secret_post"}

_locks_guard = threading.Lock()
_connection_locks: dict[str, threading.Lock] = {}


def connection_lock(connection: str) -> threading.Lock:
    """The process-wide lock that serialises token refreshes of one connection."""
    with _locks_guard:
        return _connection_locks.setdefault(connection, threading.Lock())


def _reveal(value: str | SecretStr | None) -> str | None:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    register_secret(value)
    return value


class BearerAuth(httpx.Auth):
    """`Authorization: Bearer <token>` for a static API key; the key is registered for
    redaction and kept out of the repr."""

    def __init__(self, token: str | SecretStr) -> None:
        secret = _reveal(token)
        if not secret:
            raise ValueError("BearerAuth needs a non-empty token")
        self._header = f"Bearer {secret}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "<BearerAuth ***>"


class OAuthTokenManager(httpx.Auth):
    """OAuth2 bearer auth with refresh-token rotation for one connection. Thread-safe.

    `client_auth="basic"` sends the client credentials as HTTP Basic (Xero, QuickBooks);
    `"post"` as form fields `client_id` / `client_secret` (HubSpot). `expires_at` is epoch
    seconds. Without a `token_store` rotated tokens live only in memory: fine for tests, lost
    on restart in production.
    """

    def __init__(
        self,
        *,
        connection: str,
        token_url: str,
        client_id: str,
        client_secret: str | SecretStr,
        refresh_token: str | SecretStr,
        access_token: str | SecretStr | None = None,
        expires_at: float | None = None,
        token_store: TokenStore | None = None,
        client_auth: ClientAuthMethod = "basic",
        provider: str = "oauth",
        skew: float = 60.0,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30,
    ) -> None:
        if client_auth not in _AUTHLIB_METHODS:
            raise ValueError(f"client_auth must be 'basic' or 'post', not {client_auth!r}")
        self.connection = connection
        self.provider = provider
        self.token_url = token_url
        self._client_auth = ClientAuth(client_id, _reveal(client_secret), _AUTHLIB_METHODS[client_auth])
        self._store = token_store
        self._skew = skew
        self._clock = clock
        self._lock = connection_lock(connection)
        self._loaded = token_store is None
        self._tokens: dict[str, Any] = {
            "access_token": _reveal(access_token),
            "refresh_token": _reveal(refresh_token),
            "expires_at": expires_at,
        }
        # The token endpoint is another host: its own small client, same transport seam.
        self._http = build_client(base_url="", timeout=timeout, transport=transport)

    # -- what httpx calls --------------------------------------------------------------

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            token = self.refresh(stale=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    # -- public ------------------------------------------------------------------------

    def access_token(self) -> str:
        """A usable access token, refreshing first when it is missing or about to expire."""
        if not self._loaded:
            with self._lock:
                self._load_stored()
        tokens = self._tokens
        if self._usable(tokens):
            return str(tokens["access_token"])
        return self.refresh(stale=tokens.get("access_token"))

    def refresh(self, *, stale: str | None) -> str:
        """Spend the refresh token unless someone already replaced the `stale` access token.
        Returns the access token to use."""
        store = self._store
        with (
            self._lock,
            store.refresh_guard(self.connection) if isinstance(store, GuardedTokenStore) else nullcontext(),
        ):
            # Across processes too (PostgreSQL): whoever waited here reloads first, and uses
            # the tokens another worker just refreshed instead of spending a dead token.
            self._load_stored()
            current = self._tokens
            if current.get("access_token") != stale and self._usable(current):
                return str(current["access_token"])
            fresh = self._request_tokens(current["refresh_token"])
            if self._store is not None:
                self._store.save(self.connection, dict(fresh))  # durable first ...
            self._tokens = fresh  # ... then used
            return str(fresh["access_token"])

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"<OAuthTokenManager {self.connection!r} token_url={self.token_url!r}>"

    # -- inside the lock ---------------------------------------------------------------

    def _load_stored(self) -> None:
        self._loaded = True
        if self._store is None:
            return
        stored = self._store.load(self.connection)
        if stored and stored.get("refresh_token"):
            for key in ("access_token", "refresh_token"):
                register_secret(stored.get(key))
            self._tokens = {
                "access_token": stored.get("access_token"),
                "refresh_token": stored["refresh_token"],
                "expires_at": stored.get("expires_at"),
            }

    def _usable(self, tokens: dict[str, Any]) -> bool:
        if not tokens.get("access_token"):
            return False
        expires_at = tokens.get("expires_at")
        return expires_at is None or self._clock() < float(expires_at) - self._skew

    def _request_tokens(self, refresh_token: str) -> dict[str, Any]:
        # authlib builds the grant body and client authentication; we send it ourselves
        # because authlib's OAuth2Client swaps its in-memory token before its update hook
        # runs (we must persist first), has no lock in its sync client, and its httpx
        # integration is deprecated in authlib 1.9.
        body = prepare_token_request("refresh_token", refresh_token=refresh_token)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        url, headers, body = self._client_auth.prepare("POST", self.token_url, headers, body)
        try:
            response = self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ProviderUnavailableError(
                f"token endpoint unreachable ({type(exc).__name__}); the refresh token was not spent, try again later",
                provider=self.provider,
            ) from None
        if response.status_code != 200:
            raise self._refusal(response)
        try:
            answer = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            answer = {}
        access = answer.get("access_token") if isinstance(answer, dict) else None
        if not access:
            raise AuthenticationError(
                "token endpoint answered without an access token",
                provider=self.provider,
                http_status=response.status_code,
            )
        rotated = answer.get("refresh_token") or refresh_token
        register_secret(access)
        register_secret(rotated)
        expires_in = answer.get("expires_in")
        return {
            "access_token": access,
            "refresh_token": rotated,
            "expires_at": self._clock() + float(expires_in) if expires_in else None,
            "token_type": answer.get("token_type", "Bearer"),
        }

    def _refusal(self, response: httpx.Response) -> Exception:
        message, code = provider_message(response)
        if response.status_code >= 500:
            return ProviderUnavailableError(
                f"token endpoint failed: {message}",
                provider=self.provider,
                http_status=response.status_code,
                code=code,
            )
        if code == "invalid_grant":
            message = (
                f"the refresh token was refused ({message}); re-authorise the connection "
                f"{self.connection!r}: its stored refresh token is no longer valid"
            )
        else:
            message = f"token refresh failed: {message}"
        return AuthenticationError(message, provider=self.provider, http_status=response.status_code, code=code)
