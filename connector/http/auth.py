"""Credentials on requests, as `httpx.Auth` objects that never show a secret.

`BearerAuth` carries a static API key or private-app token (Stripe, HubSpot private apps).
`OAuthTokenManager` carries an OAuth2 access token and spends the refresh token when needed
(Xero, HubSpot OAuth apps, QuickBooks):

- the access token is used as is until it is within its margin of expiry, or the provider
  answers 401; then the refresh token is spent. The margin is `skew` seconds, or a fifth of
  the token's lifetime when that is shorter: a token that lives 30 s is used for 24 s, not
  refreshed before every request because it is always "within 60 s of expiry";
- tokens in the `TokenStore` win over the configured ones (they are newer);
- the refresh answer (with its rotated refresh token, and the one it replaced as the previous
  refresh token) is saved through the `TokenStore` *before* the new access token is used: if
  saving fails, the new token is not used and the error propagates, so we never run on a token
  set that only lives in memory;
- one lock per connection name for the whole process, and the store's `refresh_guard` across
  processes (a PostgreSQL advisory lock; a file lock beside a SQLite file); whoever waited
  reloads the stored tokens and uses them when they are fresh, so no two threads or processes
  spend the same refresh token;
- a 401 costs exactly one refresh and one retry of the request.

What an answer of the token endpoint says about the refresh token that was sent:

    200                          spent and replaced: saved, then used
    429, connection refused      not spent: tried again with the shared retry policy
    5xx                          tried again with backoff; neither Xero nor HubSpot documents
                                 that a 5xx leaves it unspent, so a last 5xx says it *may*
                                 have been spent (Xero takes a spent one again for 30 minutes)
    lost (a timeout or a broken  may have been spent: not sent again in this run
      connection after sending)
    400 invalid_grant            refused: the store is read again (another process may have
                                 refreshed), then its previous refresh token is tried, and
                                 only then is re-authorisation asked for

An answer lost, or a last 5xx, leaves the connection unusable for the run: this manager
refuses every later request, and so does every manager of the connection in this process for
`LOST_ANSWER_HOLD_S` while the store still holds the refresh token that was sent (the service
pulls each stream with its own manager). The next attempt reads the store, spends the stored
refresh token (Xero hands out the lost answer's tokens again within its grace period), then
the previous one, and only then asks for re-authorisation.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Generator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from pydantic import SecretStr

from connector import failpoints
from connector.errors import AuthenticationError, ProviderUnavailableError, RateLimitError
from connector.http.client import build_client
from connector.http.responses import parse_retry_after, provider_message
from connector.http.retry import RetryPolicy, retry_policy
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


MARGIN_SHARE = 0.2
"""The largest share of an access token's lifetime spent as its refresh margin."""

LOST_ANSWER_HOLD_S = 600.0
"""How long after a token answer was lost the other managers of the connection in this
process refuse to send the same refresh token again: the rest of the run."""

# Raised before a byte of the request left: the refresh token cannot have been spent.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@dataclass(frozen=True)
class _LostAnswer:
    """A token answer this process never got: a fingerprint of the refresh token that was
    sent, when (`time.monotonic()`), and what to tell whoever would send it again."""

    sent: str
    at: float
    message: str
    http_status: int | None


_lost_guard = threading.Lock()
_lost_answers: dict[str, _LostAnswer] = {}


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class _Refused(Exception):
    """The token endpoint refused the refresh token (`invalid_grant`): try the next one.
    `after` is the 5xx an earlier attempt of the same request got (it may have spent it)."""

    def __init__(self, message: str, code: str | None, http_status: int, after: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.after = after


class _AnswerLost(Exception):
    """The request left and no answer came back (raised out of the retry loop, not retried)."""

    def __init__(self, cause: httpx.TransportError) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


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
    on restart in production. `retry` is the policy for the token endpoint's 429s, 5xx and
    refused connections; `lost_answer_hold` how long a lost answer of another manager of the
    connection in this process keeps this one from sending the same refresh token.
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
        retry: RetryPolicy | None = None,
        lost_answer_hold: float = LOST_ANSWER_HOLD_S,
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
        self._retry = retry or RetryPolicy(clock=clock)
        self._hold = lost_answer_hold
        self._lock = connection_lock(connection)
        self._loaded = token_store is None
        self._configured_refresh = _reveal(refresh_token)
        self._broken: _LostAnswer | None = None
        self._tokens: dict[str, Any] = {}
        self._tokens = self._with_lifetime(
            {
                "access_token": _reveal(access_token),
                "refresh_token": _reveal(refresh_token),
                "expires_at": expires_at,
                "previous_refresh_token": None,
            }
        )
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
        if self._broken is not None:
            raise self._unusable(self._broken)
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
            if self._broken is not None:
                raise self._unusable(self._broken)
            # Across processes too: whoever waited here reloads first, and uses the tokens
            # another worker just refreshed instead of spending a dead token.
            self._load_stored()
            current = self._tokens
            if current.get("access_token") != stale and self._usable(current):
                return str(current["access_token"])
            fresh = self._spend()
            if fresh is None:  # another process refreshed meanwhile: its tokens are loaded
                return str(self._tokens["access_token"])
            failpoints.hit("token_answered")  # crash tests: the provider has answered, nothing is saved
            if store is not None:
                try:
                    store.save(self.connection, _storable(fresh))  # durable first ...
                except Exception as exc:
                    # spent, and its successor only in memory: a state like a lost answer's
                    what = f"the rotated tokens could not be saved ({type(exc).__name__})"
                    self._lose(fresh["spent"], what, None, spent=True)
                    raise
            self._tokens = fresh  # ... then used
            with _lost_guard:
                _lost_answers.pop(self.connection, None)
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
            for key in ("access_token", "refresh_token", "previous_refresh_token"):
                register_secret(stored.get(key))
            self._tokens = self._with_lifetime(
                {
                    "access_token": stored.get("access_token"),
                    "refresh_token": stored["refresh_token"],
                    "expires_at": stored.get("expires_at"),
                    "previous_refresh_token": stored.get("previous_refresh_token"),
                }
            )

    def _with_lifetime(self, tokens: dict[str, Any]) -> dict[str, Any]:
        """`tokens` with the lifetime its margin is cut from: known for the access token in
        hand (the store may round its expiry); for one issued elsewhere (configured, or
        stored by another process) what is left of it when first seen, since it lived at
        least that long."""
        expires_at = tokens.get("expires_at")
        lifetime: float | None = None
        if expires_at is not None:
            known = self._tokens
            if tokens.get("access_token") and known.get("access_token") == tokens.get("access_token"):
                lifetime = known.get("lifetime")
            if lifetime is None:
                lifetime = max(0.0, float(expires_at) - self._clock())
        return {**tokens, "lifetime": lifetime}

    def _usable(self, tokens: dict[str, Any]) -> bool:
        if not tokens.get("access_token"):
            return False
        expires_at = tokens.get("expires_at")
        if expires_at is None:
            return True
        lifetime = tokens.get("lifetime")
        margin = self._skew if lifetime is None else min(self._skew, MARGIN_SHARE * float(lifetime))
        return self._clock() < float(expires_at) - margin

    def _spend(self) -> dict[str, Any] | None:
        """Spend the stored refresh token. Refused, read the store again and use what another
        process stored meanwhile, or spend the newer refresh token it holds; else the previous
        one; else the configured one when it is another (a re-authorised connection's). The new
        token set, or None when fresh tokens turned up in the store."""
        tried: list[tuple[str, str]] = []  # (which, refresh token)
        refusals: list[_Refused] = []
        while True:
            tokens = self._tokens
            spent = {token for _, token in tried}
            if tried and tokens["refresh_token"] not in spent and self._usable(tokens):
                return None
            candidates = [
                ("stored", tokens["refresh_token"]),
                ("previous", tokens.get("previous_refresh_token")),
                ("configured", self._configured_refresh),
            ]
            untried = [(which, token) for which, token in candidates if token and token not in spent]
            if not untried:
                raise self._reauthorise(refusals, [which for which, _ in tried])
            which, refresh_token = untried[0]
            self._refuse_if_lost(refresh_token)
            tried.append((which, refresh_token))
            try:
                return self._request_tokens(refresh_token, previous=tokens.get("previous_refresh_token"))
            except _Refused as refused:
                refusals.append(refused)
            self._load_stored()

    def _request_tokens(self, refresh_token: str, *, previous: str | None) -> dict[str, Any]:
        # authlib builds the grant body and client authentication; we send it ourselves
        # because authlib's OAuth2Client swaps its in-memory token before its update hook
        # runs (we must persist first), has no lock in its sync client, and its httpx
        # integration is deprecated in authlib 1.9.
        body = prepare_token_request("refresh_token", refresh_token=refresh_token)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        url, headers, body = self._client_auth.prepare("POST", self.token_url, headers, body)
        failed: list[int] = []  # the 5xx of attempts tried again

        def send() -> httpx.Response:
            try:
                response = self._http.post(url, content=body, headers=headers)
            except _NOT_SENT:
                raise  # tried again by the policy
            except httpx.TransportError as exc:
                raise _AnswerLost(exc) from None  # not tried again: it may have been spent
            if response.status_code >= 500:
                failed.append(response.status_code)
            return response

        try:
            response: httpx.Response = retry_policy(self._retry, label=f"{self.provider} token refresh")(send)
        except _AnswerLost as lost:
            raise self._lose(
                refresh_token, f"the token endpoint's answer was lost ({type(lost.cause).__name__} after sending)", None
            ) from None
        except httpx.HTTPError as exc:
            if failed:
                raise self._lose(
                    refresh_token, f"the token endpoint failed (HTTP {failed[-1]}), then was unreachable", failed[-1]
                ) from None
            raise ProviderUnavailableError(
                f"token endpoint unreachable ({type(exc).__name__}); the refresh token was not spent, try again later",
                provider=self.provider,
            ) from None
        status = response.status_code
        if status == 200:
            return self._issued(response, refresh_token, previous)
        message, code = provider_message(response)
        if status >= 500 or (status == 429 and failed):
            # A 5xx does not say whether the grant was processed before the failure, and
            # neither Xero nor HubSpot documents that it was not.
            raise self._lose(
                refresh_token,
                f"the token endpoint failed ({message}; HTTP {failed[-1]}, {len(failed)} time(s))",
                failed[-1],
            )
        if status == 429:
            raise RateLimitError(
                f"the token endpoint limits our requests ({message}); the refresh token was not spent",
                retry_after=parse_retry_after(response.headers.get("Retry-After"), now=self._clock),
                provider=self.provider,
                http_status=status,
                code=code,
            )
        if code == "invalid_grant" or _bad_refresh_token(response):
            raise _Refused(message, code or "invalid_grant", status, failed[-1] if failed else None)
        raise AuthenticationError(
            f"token refresh failed: {message}", provider=self.provider, http_status=status, code=code
        )

    def _issued(self, response: httpx.Response, refresh_token: str, previous: str | None) -> dict[str, Any]:
        try:
            answer = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            answer = {}
        access = answer.get("access_token") if isinstance(answer, dict) else None
        if not access:
            raise self._lose(refresh_token, "the token endpoint answered 200 without an access token", 200)
        rotated = answer.get("refresh_token") or refresh_token
        register_secret(access)
        register_secret(rotated)
        expires_in = answer.get("expires_in")
        return {
            "access_token": access,
            "refresh_token": rotated,
            "expires_at": self._clock() + float(expires_in) if expires_in else None,
            "token_type": answer.get("token_type", "Bearer"),
            # kept for the next attempt in case this one's successor is ever refused
            "previous_refresh_token": refresh_token if rotated != refresh_token else previous,
            "lifetime": float(expires_in) if expires_in else None,
            "spent": refresh_token,
        }

    # -- an uncertain refresh token ----------------------------------------------------

    def _lose(self, sent: str, what: str, http_status: int | None, *, spent: bool = False) -> ProviderUnavailableError:
        """The refresh token `sent` may have been (`spent`: was) spent and its successor is not
        in the store: stop using the connection for the run, here and in every manager of it
        in this process."""
        lost = _LostAnswer(
            sent=_fingerprint(sent),
            at=time.monotonic(),
            message=(
                f"{what}: the refresh token {'was' if spent else 'may have been'} spent, "
                f"so this run stops using the connection "
                f"{self.connection!r}. The next run reads the stored tokens again and tries the stored refresh token "
                "(Xero takes a spent one again for 30 minutes when its answer was lost), then the previous one; "
                "only if both are refused is re-authorisation needed"
            ),
            http_status=http_status,
        )
        self._broken = lost
        with _lost_guard:
            _lost_answers[self.connection] = lost
        return self._unusable(lost)

    def _refuse_if_lost(self, refresh_token: str) -> None:
        """Refuse to send a refresh token whose answer another manager of this process lost
        less than `lost_answer_hold` ago (the store still holds it: nobody saved since)."""
        with _lost_guard:
            lost = _lost_answers.get(self.connection)
        if lost is None or lost.sent != _fingerprint(refresh_token) or time.monotonic() - lost.at >= self._hold:
            return
        self._broken = lost
        raise self._unusable(lost)

    def _unusable(self, lost: _LostAnswer) -> ProviderUnavailableError:
        return ProviderUnavailableError(
            lost.message, provider=self.provider, http_status=lost.http_status, code="refresh_token_uncertain"
        )

    def _reauthorise(self, refusals: list[_Refused], tried: list[str]) -> AuthenticationError:
        first = refusals[0]
        message = f"the refresh token was refused ({first.message})"
        others = {
            "stored": "the one another process stored meanwhile",
            "previous": "the previous refresh token",
            "configured": "the one in the connection's settings",
        }
        also = [others[which] for which in dict.fromkeys(tried[1:])]
        if also:
            message += f"; so {'was' if len(also) == 1 else 'were'} {' and '.join(also)}"
        after = next((r.after for r in refusals if r.after), None)
        if after:
            message += f"; an earlier attempt that failed with HTTP {after} may have spent it"
        message += (
            f"; re-authorise the connection {self.connection!r}: its stored refresh token is no longer valid "
            "(put the new refresh token in its settings)"
        )
        return AuthenticationError(message, provider=self.provider, http_status=first.http_status, code=first.code)


def _storable(tokens: dict[str, Any]) -> dict[str, Any]:
    """What a `TokenStore` keeps of a token set (the lifetime is ours, in memory)."""
    keys = ("access_token", "refresh_token", "expires_at", "token_type", "previous_refresh_token")
    return {key: tokens.get(key) for key in keys}


def _bad_refresh_token(response: httpx.Response) -> bool:
    """HubSpot says `{"status": "BAD_REFRESH_TOKEN"}` where RFC 6749 says `invalid_grant`."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(body, dict) and body.get("status") == "BAD_REFRESH_TOKEN"
