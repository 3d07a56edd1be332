"""Read a provider's answer once: its request id, its own error message, and the typed error
it stands for. The retry policy decides *whether* to try again; this module decides *what* a
final failed answer means.

    401, 403                    AuthenticationError
    404                         NotFoundError
    400.. with an idempotency   IdempotencyError   (Stripe `error.type = idempotency_error`)
      error type or code
    429                         RateLimitError, or RateLimitDeferred when Retry-After is
                                longer than the deferral threshold or the answer says a
                                daily allowance is spent (HubSpot `policyName: DAILY`)
    other 4xx                   InvalidRequestError
    5xx                         ProviderUnavailableError
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import httpx

from connector.errors import (
    AuthenticationError,
    IdempotencyError,
    InvalidRequestError,
    NotFoundError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitDeferred,
    RateLimitError,
)
from connector.redaction import redact

# Stripe, generic, Xero, HubSpot, QuickBooks: the first one present wins.
DEFAULT_REQUEST_ID_HEADERS: tuple[str, ...] = (
    "Request-Id",
    "X-Request-Id",
    "Xero-Correlation-Id",
    "X-HubSpot-Correlation-Id",
    "intuit_tid",
)

_MAX_MESSAGE = 300


def request_id(response: httpx.Response, header_names: Sequence[str]) -> str | None:
    """The provider's id for this exchange (quote it to their support), if it sent one."""
    for name in header_names:
        value: str | None = response.headers.get(name)  # httpx types Headers.get as Any
        if value:
            return value
    return None


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a `Retry-After` value: delta-seconds or an HTTP-date. None when
    absent or unreadable; never negative."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def daily_limit_spent(response: httpx.Response) -> bool:
    """A 429 that no wait within a run will cure: HubSpot's daily allowance (`policyName:
    "DAILY"`, which resets at midnight in the account's time zone and comes without a
    Retry-After). Retrying it only spends the run's time; the stream is deferred instead."""
    if response.status_code != 429:
        return False
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, httpx.ResponseNotRead):
        return False
    return isinstance(body, dict) and str(body.get("policyName", "")).upper() == "DAILY"


def provider_message(response: httpx.Response) -> tuple[str, str | None]:
    """(message, code) from the provider's error body, redacted.

    Knows Stripe `{"error": {"message", "code", "type"}}`, Xero `{"Message", "Detail", "Type"}`,
    HubSpot `{"message", "category"}` (429s add `policyName`) and OAuth `{"error",
    "error_description"}`; anything else falls back to a short piece of the body or the reason
    phrase.
    """
    body: Any
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, httpx.ResponseNotRead):
        body = None
    message: str | None = None
    code: str | None = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # Stripe
            message = error.get("message")
            code = error.get("code") or error.get("type")
        elif isinstance(error, str):  # OAuth token endpoint
            code = error
            message = body.get("error_description") or error
        if message is None:
            parts = [body.get(key) for key in ("Message", "Detail", "message")]
            texts = [str(part) for part in parts if part]
            message = " - ".join(dict.fromkeys(texts)) or None
            code = code or body.get("Type") or body.get("policyName") or body.get("category")
    if message is None:
        text = _body_text(response)
        message = text if text and not text.lstrip().startswith("<") else response.reason_phrase
    message = " ".join(str(message).split())[:_MAX_MESSAGE]
    return redact(message or f"HTTP {response.status_code}"), (redact(str(code)) if code else None)


def _body_text(response: httpx.Response) -> str:
    try:
        return response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        return ""


def error_for_response(
    response: httpx.Response,
    *,
    provider: str,
    request_id_headers: Sequence[str] = DEFAULT_REQUEST_ID_HEADERS,
    defer_after: float = float("inf"),
    attempts: int = 1,
    now: Callable[[], float] = time.time,
) -> ProviderError | None:
    """The typed error a failed answer stands for, or None for a success (status < 400)."""
    status = response.status_code
    if status < 400:
        return None
    message, code = provider_message(response)
    where = f"{response.request.method} {response.request.url.path}"
    text = f"{where}: {message}"
    if attempts > 1:
        text += f" (after {attempts} attempts)"
    kw: dict[str, Any] = {
        "provider": provider,
        "http_status": status,
        "request_id": request_id(response, request_id_headers),
        "code": code,
    }
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
        if daily_limit_spent(response) and (retry_after is None or retry_after > defer_after):
            return RateLimitDeferred(
                f"{text}; the provider's daily limit is spent, resume on a later run",
                retry_after=retry_after,
                **kw,
            )
        if retry_after is not None and retry_after > defer_after:
            return RateLimitDeferred(
                f"{text}; the provider asks us to wait {retry_after:.0f} s, resume on a later run",
                retry_after=retry_after,
                **kw,
            )
        return RateLimitError(text, retry_after=retry_after, **kw)
    if status in (401, 403):
        return AuthenticationError(text, **kw)
    if status >= 500:
        return ProviderUnavailableError(text, **kw)
    if status == 404:
        return NotFoundError(text, **kw)
    if code and "idempotency" in code.lower():
        return IdempotencyError(text, **kw)
    return InvalidRequestError(text, **kw)


def decode_json(response: httpx.Response, *, provider: str) -> Any:
    """The JSON body with every non-integer number as a Decimal, never a float: Xero sends
    amounts as JSON numbers (`1500.25`), and a float would round them before they become
    Money. A body that is not JSON is a ProviderError naming the provider."""

    try:
        return json.loads(response.content or b"null", parse_float=Decimal)
    except ValueError:
        raise ProviderError(
            "answered with a body that is not JSON",
            provider=provider,
            http_status=response.status_code,
        ) from None
