"""Fixtures of the HTTP layer tests; the fakes live in `http_fakes`."""

from __future__ import annotations

import pytest

from connector.http import RetryPolicy
from support.http_fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def policy(clock: FakeClock) -> RetryPolicy:
    """Three attempts, no jitter (waits are predictable), time from the fake clock."""
    return RetryPolicy(
        max_attempts=3,
        backoff_initial=1.0,
        backoff_max=8.0,
        jitter=0.0,
        sleep=clock.sleep,
        clock=clock.now,
    )
