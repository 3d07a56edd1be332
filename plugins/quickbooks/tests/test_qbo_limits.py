"""The client-side limiter is set to Intuit's per-realm limits: 500 requests a minute and 10
in flight, one limiter per connection (realm)."""

from __future__ import annotations

import threading
from contextlib import ExitStack

import pytest
from qbo_support import provider, settings


def _fake_time(limiter) -> list[float]:
    """Drive the limiter's sliding window by hand: its sleeps advance its clock."""
    now = [1_000.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter._clock = lambda: now[0]
    limiter._sleep = sleep
    return waits


def test_the_defaults_are_intuits_per_realm_limits():
    qbo = settings()
    assert (qbo.calls_per_minute, qbo.max_concurrent) == (500, 10)
    limiter = provider().http.rate_limiter
    assert repr(limiter) == "<RateLimiter {'default': [(500, 60.0)]} concurrency=10 margin=0.05>"


def test_500_requests_a_minute_go_at_once_and_the_501st_waits_for_the_window():
    limiter = provider().http.rate_limiter
    waits = _fake_time(limiter)
    for _ in range(500):
        with limiter.acquire():
            pass
    assert waits == []
    with limiter.acquire():
        pass
    # the window plus the limiter's margin against late arrival (margin=0.05 in its repr)
    assert waits == [pytest.approx(60.0 + 0.05)]


def test_the_11th_request_in_flight_waits_for_a_slot():
    limiter = provider().http.rate_limiter
    _fake_time(limiter)
    entered = threading.Event()

    def eleventh() -> None:
        with limiter.acquire():
            entered.set()

    with ExitStack() as held:
        for _ in range(10):
            held.enter_context(limiter.acquire())
        worker = threading.Thread(target=eleventh, daemon=True)
        worker.start()
        assert not entered.wait(0.3), "an 11th request went out with 10 in flight"
    assert entered.wait(5), "the 11th request never got the slot freed for it"
    worker.join(5)


def test_lower_limits_from_the_settings_reach_the_limiter_and_each_realm_has_its_own():
    shared = provider(calls_per_minute=120, max_concurrent=3)
    assert repr(shared.http.rate_limiter) == "<RateLimiter {'default': [(120, 60.0)]} concurrency=3 margin=0.05>"
    other = provider(realm_id="4620816365257778210")
    assert other.http.rate_limiter is not provider().http.rate_limiter
