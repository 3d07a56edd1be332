"""One rate budget per provider account: the stored windows' arithmetic, one limiter per
account for every unit of a process, and a 429's Retry-After pausing the whole account."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from connector.errors import RateLimitDeferred, StopRequested
from connector.http.budget import (
    LOG_LIMIT,
    SHARED_JITTER,
    SLOTS,
    AccountBudget,
    Grant,
    WindowSpec,
    counted,
    held_past,
    lease_owner,
    take_stored,
)
from connector.http.provider_http import ProviderHttp
from connector.http.ratelimit import STOPPING, RateLimiter, shared_limiter
from connector.http.retry import RetryPolicy


def take(windows, specs, now, *, leases=None, in_flight=None, paused_until=None, margin=0.0):
    return take_stored(
        windows,
        {} if leases is None else leases,
        specs,
        now=now,
        margin=margin,
        paused_until=paused_until,
        in_flight=in_flight,
        lease_seconds=60.0,
    )


def test_a_stored_minute_window_lets_60_through_then_waits_for_the_oldest_to_leave():
    minute = WindowSpec("default/60", 60, 60.0)
    windows: dict = {}
    grants = [take(windows, [minute], 1000.0 + i * 0.5) for i in range(61)]
    assert all(g.wait == 0 and g.at == 1000.0 + i * 0.5 for i, g in enumerate(grants[:60]))
    # the first holds its place until 1060.25 (SHARED_JITTER past its window); now 1030.0
    assert grants[60].wait == pytest.approx(30.25)
    assert counted(windows["default/60"]) == 60  # the refused request was not counted
    assert take(windows, [minute], 1060.2).wait > 0
    assert take(windows, [minute], 1060.25).wait == 0


def test_stored_windows_hold_each_request_a_little_past_the_window():
    assert held_past(WindowSpec("default/60", 60, 60.0), 0.05) == SHARED_JITTER
    assert held_past(WindowSpec("default/1", 25, 1.0), 0.0) == pytest.approx(0.15)  # at most 15 % of it
    assert held_past(WindowSpec("default/1", 25, 1.0), 0.2) == 0.2  # the limiter's margin, if more
    second = WindowSpec("default/1", 1, 1.0)
    windows: dict = {}
    assert take(windows, [second], 10.0, margin=0.05).wait == 0
    assert take(windows, [second], 11.0, margin=0.05).wait == pytest.approx(0.15)


def test_a_daily_allowance_is_counted_in_slots_and_never_undercounted():
    day = WindowSpec("default/86400", 5000, 86400.0)
    assert day.requests > LOG_LIMIT
    windows: dict = {}
    start = 1_800_000_000.0
    for i in range(5000):
        assert take(windows, [day], start + i * 10.0).wait == 0  # 5,000 over ~14 hours
    assert len(windows["default/86400"]["slots"]) <= SLOTS + 1
    refused = take(windows, [day], start + 50_000.0)
    # the first slot leaves once all of it is a day old: not before the first request is
    assert refused.wait >= start + 86400.0 - (start + 50_000.0)
    assert counted(windows["default/86400"]) == 5000


def test_nothing_is_counted_while_the_account_is_paused_or_its_slots_in_flight_are_taken():
    minute = WindowSpec("default/60", 60, 60.0)
    windows: dict = {}
    leases: dict = {}
    assert take(windows, [minute], 5.0, paused_until=7.5).wait == pytest.approx(2.5)
    first = take(windows, [minute], 8.0, leases=leases, in_flight=1)
    assert first.wait == 0 and first.lease in leases
    assert take(windows, [minute], 8.1, leases=leases, in_flight=1).wait > 0
    assert counted(windows["default/60"]) == 1
    # a lease that is never given back (a killed worker) frees itself
    assert take(windows, [minute], 8.0 + 61.0, leases=leases, in_flight=1).wait == 0


def test_a_lease_names_the_worker_that_holds_it():
    minute = WindowSpec("default/60", 60, 60.0)
    named = take_stored(
        {},
        {},
        [minute],
        now=1.0,
        margin=0.0,
        paused_until=None,
        in_flight=5,
        lease_seconds=60.0,
        owner="worker-7.example:4242",
    )
    assert named.lease is not None and lease_owner(named.lease) == "worker-7.example:4242"
    unnamed = take({}, [minute], 1.0, in_flight=5)  # as stored before leases named their worker
    assert unnamed.lease is not None and lease_owner(unnamed.lease) is None


class MemoryBudgets:
    """A BudgetStore in memory: what a second worker on the same database would see."""

    def __init__(self, *, keeps_all: bool = True) -> None:
        self.now = 0.0
        self.windows: dict[str, dict] = {}
        self.leases: dict[str, dict] = {}
        self.paused: dict[str, float] = {}
        self._keeps_all = keeps_all
        self.taken = 0

    @property
    def scope(self):
        return self

    def keeps(self, per_seconds: float) -> bool:
        return self._keeps_all or per_seconds >= 3600

    def keeps_in_flight(self) -> bool:
        return self._keeps_all

    def take(self, account, windows, *, margin, in_flight):
        grant = take_stored(
            self.windows.setdefault(account, {}),
            self.leases.setdefault(account, {}),
            windows,
            now=self.now,
            margin=margin,
            paused_until=self.paused.get(account),
            in_flight=in_flight,
            lease_seconds=60.0,
        )
        self.taken += grant.wait <= 0
        return grant

    def release(self, account, lease):
        self.leases[account].pop(lease, None)

    def pause(self, account, seconds):
        self.paused[account] = max(self.paused.get(account, 0.0), self.now + seconds)


def test_every_unit_of_a_process_gets_its_accounts_one_limiter():
    store = MemoryBudgets(keeps_all=False)
    spec = {"default": [(60, 60), (5000, 86400)]}
    first = shared_limiter(RateLimiter.from_spec(spec, concurrency=5), store, "xero:tenant A")
    second = shared_limiter(RateLimiter.from_spec(spec, concurrency=5), store, "xero:tenant A")
    other = shared_limiter(RateLimiter.from_spec(spec, concurrency=5), store, "xero:tenant B")
    assert first is second and first is not other
    assert first.budget == AccountBudget(store, "xero:tenant A")
    # the minute stays in memory, the day goes to the store (SQLite's split)
    with first.acquire():
        pass
    assert set(store.windows["xero:tenant A"]) == {"default/86400"}


def test_two_workers_limiters_share_one_window_through_the_store():
    store = MemoryBudgets()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        store.now += seconds

    budget = AccountBudget(store, "stripe:key k test")
    one, two = (RateLimiter.from_spec({"default": [(3, 1)]}, margin=0, sleep=sleep).sharing(budget) for _ in range(2))
    for limiter in (one, two, one):
        with limiter.acquire():
            pass
    assert sleeps == []
    with two.acquire():  # the fourth request of the second: the window is the account's
        pass
    assert sum(sleeps) == pytest.approx(1.15)  # the window and 15 % of it, in naps of at most 1 s
    assert store.taken == 4


def test_a_429_with_retry_after_pauses_the_whole_account_for_every_limiter_of_it():
    store = MemoryBudgets()
    budget = AccountBudget(store, "xero:tenant A")
    answers = iter([httpx.Response(429, headers={"Retry-After": "3600"}), httpx.Response(200, json={})])
    http = ProviderHttp(
        "xero",
        base_url="https://xero.test",
        rate_limiter=RateLimiter.from_spec({"default": [(60, 60)]}).sharing(budget),
        retry=RetryPolicy(max_attempts=1, sleep=lambda _s: None),
        transport=httpx.MockTransport(lambda request: next(answers)),
    )
    with pytest.raises(RateLimitDeferred):
        http.request("GET", "/Invoices")
    other_worker = RateLimiter.from_spec({"default": [(60, 60)]}, sleep=lambda _s: None).sharing(budget)
    with pytest.raises(RateLimitDeferred, match="spent for 3600 s"), other_worker.acquire():
        pass
    assert store.take(budget.account, [], margin=0.0, in_flight=None) == Grant(wait=3600.0)


def test_a_stop_ends_the_wait_for_a_slot_without_sending() -> None:
    """SIGTERM sets STOPPING: a request waiting out Xero's minute gives up at once instead of
    sleeping through the stop (the write is handed back, the process exits in seconds)."""
    limiter = RateLimiter.from_spec({"default": [(1, 60)]})
    with limiter.acquire():
        pass
    started = time.monotonic()
    stopper = threading.Timer(0.2, STOPPING.set)
    stopper.start()
    try:
        with pytest.raises(StopRequested, match="not sent"), limiter.acquire():
            raise AssertionError("a second request went out within the minute")
    finally:
        stopper.join()
        STOPPING.clear()
    assert time.monotonic() - started < 5
