"""The retry policy of every provider call, built with tenacity in one function.

Tried again: 429, 5xx, timeouts and transport errors, and any error answer that Stripe marks
`Stripe-Should-Retry: true`. Never tried again: other 4xx, and anything marked
`Stripe-Should-Retry: false`. Waits are exponential with jitter, except that a `Retry-After`
(seconds or HTTP-date) is honoured exactly. A `Retry-After` longer than `defer_after` is not
slept on at all: the answer goes straight back so that the caller raises `RateLimitDeferred`.

A write without an idempotency key might be done twice if it is re-sent after the provider saw
it, so non-idempotent calls are only re-sent when the provider cannot have acted on them: 429,
connection failures, and Stripe's explicit `Stripe-Should-Retry: true`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import tenacity

from connector.http.responses import daily_limit_spent, parse_retry_after
from connector.redaction import RedactingFilter, redact

logger = logging.getLogger("connector.http")
logger.addFilter(RedactingFilter())

# Raised before a byte reached the provider: safe to re-send even a non-idempotent write.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Attempts include the first; `max_elapsed` bounds the time spent
    including the next wait; `defer_after` is the longest `Retry-After` we sleep on (Xero's
    daily limit asks for ~18 hours). `sleep` and `clock` (for HTTP-date `Retry-After`) are
    injectable so tests never wait."""

    max_attempts: int = 5
    max_elapsed: float = 300.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    jitter: float = 1.0
    defer_after: float = 900.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time


def retry_policy(
    policy: RetryPolicy | None = None, *, idempotent: bool = True, label: str = "request"
) -> tenacity.Retrying:
    """A fresh tenacity `Retrying` for one call: `retrying(send)` where `send()` returns an
    `httpx.Response` (any status) or raises an httpx transport error.

    When the budget runs out the last response is returned (the caller turns it into a typed
    error) or the last transport error re-raised. One `Retrying` per call keeps threads apart.
    """
    policy = policy or RetryPolicy()
    # Spelled out rather than wait_exponential_jitter, whose arguments changed name in 9.x.
    backoff = tenacity.wait_exponential(
        multiplier=policy.backoff_initial, max=policy.backoff_max
    ) + tenacity.wait_random(0, policy.jitter)

    def retry_after(state: tenacity.RetryCallState) -> float | None:
        if state.outcome is None or state.outcome.failed:
            return None
        response: httpx.Response = state.outcome.result()
        return parse_retry_after(response.headers.get("Retry-After"), now=policy.clock)

    def should_retry(state: tenacity.RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None:
            return False
        if outcome.failed:
            error = outcome.exception()
            if isinstance(error, _NOT_SENT):
                return True
            return idempotent and isinstance(error, httpx.TransportError)
        response: httpx.Response = outcome.result()
        status = response.status_code
        if status < 400:
            return False
        hint = response.headers.get("Stripe-Should-Retry", "").lower()
        if hint == "false":
            return False
        wait = retry_after(state)
        if wait is not None and wait > policy.defer_after:
            return False
        if (wait is None or wait > policy.defer_after) and daily_limit_spent(response):
            return False
        if hint == "true" or status == 429:
            return True
        return idempotent and status >= 500

    def wait(state: tenacity.RetryCallState) -> float:
        honoured = retry_after(state)
        return honoured if honoured is not None else backoff(state)

    def log_retry(state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        if outcome is None:
            return
        if outcome.failed:
            why = type(outcome.exception()).__name__
        else:
            why = f"HTTP {outcome.result().status_code}"
        logger.info(  # routine: a retry that works is not worth a warning; a give-up is an error
            "%s",
            redact(
                f"{label}: {why}; attempt {state.attempt_number} of {policy.max_attempts}, "
                f"next in {state.upcoming_sleep:.1f} s"
            ),
        )

    return tenacity.Retrying(
        retry=should_retry,
        wait=wait,
        stop=tenacity.stop_after_attempt(policy.max_attempts) | tenacity.stop_before_delay(policy.max_elapsed),
        sleep=policy.sleep,
        before_sleep=log_retry,
        retry_error_callback=_last_outcome,
        reraise=True,
    )


def _last_outcome(state: tenacity.RetryCallState) -> httpx.Response:
    """Give up with the last answer (or raise the last transport error), not a RetryError."""
    assert state.outcome is not None
    response: httpx.Response = state.outcome.result()
    return response
