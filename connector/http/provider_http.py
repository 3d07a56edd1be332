"""`ProviderHttp`: the one object an adapter holds to talk to its provider.

OAuth token in hand -> rate limiter -> send (with auth) -> retry per policy -> response,
or a typed error

http = ProviderHttp("stripe", base_url=settings.base_url, auth=BearerAuth(settings.api_key),
                    rate_limiter=RateLimiter.from_spec({"default": [(100, 1)]}),
                    request_id_headers=("Request-Id",))
invoice = http.request("GET", "/v1/invoices/in_1").json()
http.request("POST", "/v1/invoices/in_1/pay", data={"paid_out_of_band": "true"},
             idempotency_key=action.idempotency_key)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import httpx

from connector.errors import ProviderUnavailableError, RateLimitDeferred
from connector.http.auth import OAuthTokenManager
from connector.http.client import build_client
from connector.http.jsonbody import dumps_exact
from connector.http.ratelimit import RateLimiter
from connector.http.responses import DEFAULT_REQUEST_ID_HEADERS, error_for_response, parse_retry_after
from connector.http.retry import RetryPolicy, retry_policy
from connector.redaction import redact

logger = logging.getLogger("connector.http")

IdempotencyHook = Callable[[httpx.Request, str], None]
"""Puts an idempotency key on a built request (the same request object is re-sent on retry)."""

Auth = httpx.Auth | Callable[[httpx.Request], httpx.Request]

ROUND_TRIP = "connector.round_trip"
"""The key in a response's `extensions` of its round trip in seconds: sent to read in full,
the wait for a rate-limit slot not included."""

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

ResponseObserver = Callable[[str, int], None]
"""Told (provider, HTTP status) of every answer a provider gives, retried ones included."""

_observers: list[ResponseObserver] = []


def observe_responses(observer: ResponseObserver) -> Callable[[], None]:
    """Register `observer` for every provider answer in this process (the service counts
    429s and errors for its metrics); returns the function that unregisters it. An observer
    that raises is logged and never breaks the request."""
    _observers.append(observer)

    def remove() -> None:
        if observer in _observers:
            _observers.remove(observer)

    return remove


def _tell_observers(provider: str, status: int) -> None:
    for observer in list(_observers):
        try:
            observer(provider, status)
        except Exception:
            logger.warning("a response observer failed", exc_info=True)


def idempotency_header(name: str = "Idempotency-Key") -> IdempotencyHook:
    """Send the key in a header: Stripe and Xero use `Idempotency-Key` (the default)."""

    def put(request: httpx.Request, key: str) -> None:
        request.headers[name] = key

    return put


def idempotency_param(name: str = "requestid") -> IdempotencyHook:
    """Send the key as a query parameter: QuickBooks uses `requestid`."""

    def put(request: httpx.Request, key: str) -> None:
        request.url = request.url.copy_set_param(name, key)

    return put


class ProviderHttp:
    """Rate-limited, retried, typed-error HTTP for one provider connection. Thread-safe:
    share one instance among the threads that fetch windows of the same connection.

    - `auth`: an `httpx.Auth` (`BearerAuth`, `OAuthTokenManager`) or a function that adds
      headers to a request. Secrets live only there.
    - `rate_limiter`: the connection's `RateLimiter`; None sends unlimited (tests, sandboxes)
      and ignores `bucket`. A 429's `Retry-After` pauses all of it (`pause_account`).
    - `retry`: a `RetryPolicy` (attempts, time budget, backoff, deferral threshold, sleep).
    - `request_id_headers`: the header(s) naming the provider's request id, first wins.
    - `idempotency`: where an idempotency key goes (`idempotency_header()` by default,
      `idempotency_param("requestid")` for QuickBooks).
    - `headers`: sent on every request (API version, tenant id); never credentials.
    - `transport` / `client`: a test double or sandbox transport, or a ready client.
    """

    def __init__(
        self,
        provider: str,
        *,
        base_url: str,
        auth: Auth | None = None,
        rate_limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        request_id_headers: Sequence[str] = DEFAULT_REQUEST_ID_HEADERS,
        idempotency: IdempotencyHook | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.provider = provider
        self.rate_limiter = rate_limiter
        self.retry = retry or RetryPolicy()
        self.request_id_headers = tuple(request_id_headers)
        self._auth = auth
        # Providers count a request when it arrives. A token round trip between counting it in
        # our limiter and sending it makes it arrive late, and a later request then lands less
        # than a window after it (HubSpot's fifth search got a 429 that way): the access token
        # is fetched, or refreshed when due, before the request takes its slot. The token
        # endpoint has its own client and takes no slot of the API's limiter.
        self._token_in_hand = auth.access_token if isinstance(auth, OAuthTokenManager) else None
        self._idempotency = idempotency or idempotency_header()
        self._client = client or build_client(base_url=base_url, timeout=timeout, headers=headers, transport=transport)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        bucket: str | Sequence[str] = "default",
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send one request and return its successful (< 400) response, or raise a
        `ProviderError` subclass (see `connector.http.responses` for which).

        `bucket` names the rate-limit bucket(s) the request draws from, e.g.
        `("search", "default")` for a HubSpot search. `idempotency_key` is sent on every
        attempt. `idempotent` says whether re-sending after a timeout or 5xx is safe: by
        default yes for GET/HEAD/OPTIONS/PUT/DELETE and for any request with an
        idempotency key; pass True for read-only POSTs such as searches.
        """
        method = method.upper()
        content = None
        if json is not None:
            # Our own encoder: Decimals go out as exact numbers, floats are refused.
            content = dumps_exact(json).encode()
            headers = {**dict(headers or {}), "Content-Type": "application/json"}
        request = self._client.build_request(method, path, params=params, content=content, data=data, headers=headers)
        if idempotency_key is not None:
            self._idempotency(request, idempotency_key)
        if idempotent is None:
            idempotent = method in _SAFE_METHODS or idempotency_key is not None
        buckets = (bucket,) if isinstance(bucket, str) else tuple(bucket)
        label = f"{self.provider} {method} {request.url.path}"

        def send() -> httpx.Response:
            if self._token_in_hand is not None:
                self._token_in_hand()  # the auth flow then finds it usable: no round trip
            limit = self.rate_limiter.acquire(*buckets) if self.rate_limiter else nullcontext()
            with limit:
                sent = time.perf_counter()
                response = self._client.send(request, auth=self._auth)
                # The round trip alone (no wait for a slot), read in full: what a caller needs
                # to tell how many requests to keep in flight. (httpx's `elapsed` is set only
                # when a streamed body closes, so not for a mock transport's ready-made one.)
                response.extensions[ROUND_TRIP] = time.perf_counter() - sent
            if response.status_code == 429 and self.rate_limiter is not None:
                # The provider counts per account: every unit and worker of it waits, not
                # just this request (a shared budget tells the others).
                wait = parse_retry_after(response.headers.get("Retry-After"), now=self.retry.clock)
                if wait:
                    self.rate_limiter.pause_account(wait)
            if _observers:
                _tell_observers(self.provider, response.status_code)
            return response

        retrying = retry_policy(self.retry, idempotent=idempotent, label=label)
        try:
            response: httpx.Response = retrying(send)
        except RateLimitDeferred as exc:
            if exc.provider == self.provider:
                raise
            raise RateLimitDeferred(exc.message, provider=self.provider, retry_after=exc.retry_after) from None
        except httpx.HTTPError as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise ProviderUnavailableError(
                redact(f"{label}: {type(exc).__name__} after {attempts} attempt(s): {exc}"),
                provider=self.provider,
            ) from exc
        error = error_for_response(
            response,
            provider=self.provider,
            request_id_headers=self.request_id_headers,
            defer_after=self.retry.defer_after,
            attempts=retrying.statistics.get("attempt_number", 1),
            now=self.retry.clock,
        )
        if error is not None:
            logger.debug("%s", redact(str(error)))
            raise error
        return response

    def close(self) -> None:
        """Close the connection pool (and the token endpoint's, for OAuth)."""
        self._client.close()
        close_auth = getattr(self._auth, "close", None)
        if callable(close_auth):
            close_auth()

    def __enter__(self) -> ProviderHttp:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ProviderHttp {self.provider!r} {self._client.base_url}>"
