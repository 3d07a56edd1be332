from __future__ import annotations

import threading
import time

import httpx
import pytest

from connector.errors import RateLimitDeferred
from connector.http import ROUND_TRIP, Limit, ProviderHttp, RateLimiter
from support.http_fakes import BASE, FakeClock


def limiter(spec, clock: FakeClock, **kw) -> RateLimiter:
    """The exact windows (no margin) unless a test asks for one: the margin has its own tests."""
    kw.setdefault("margin", 0)
    return RateLimiter.from_spec(spec, clock=clock.now, sleep=clock.sleep, **kw)


def run_in_threads(target, count: int) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_requests_beyond_the_limit_are_spaced_by_the_window(clock) -> None:
    rl = limiter({"default": [(2, 1)]}, clock)
    sent = []
    for _ in range(5):
        with rl.acquire():
            sent.append(clock.now())
    start = sent[0]
    assert [t - start for t in sent] == [0, 0, 1, 1, 2]


def test_every_limit_of_a_bucket_applies(clock) -> None:
    rl = limiter({"default": [(60, 60), (100, 86400)]}, clock)
    for _ in range(61):
        with rl.acquire():
            pass
    assert clock.sleeps == [60]


def test_a_request_drawing_two_buckets_counts_in_both(clock) -> None:
    rl = limiter({"default": [(5, 10)], "search": [(4, 1)]}, clock)
    for _ in range(5):
        with rl.acquire("search", "default"):
            pass
    assert clock.sleeps == [1]  # the 5th search waits for the search bucket
    with rl.acquire("default"):  # general bucket already holds 5 in 10 s
        pass
    assert clock.sleeps == [1, 9]


def test_exhausted_daily_bucket_raises_deferred_instead_of_sleeping(clock) -> None:
    rl = limiter({"default": [(60, 60), (3, 86400)]}, clock, provider="xero")
    for _ in range(3):
        with rl.acquire():
            pass
    with pytest.raises(RateLimitDeferred) as raised:
        with rl.acquire():
            pass
    assert raised.value.retry_after == pytest.approx(86400)
    assert raised.value.provider == "xero"
    assert clock.sleeps == []


def test_server_hint_pauses_a_bucket(clock) -> None:
    rl = limiter({"default": [(60, 60)]}, clock)
    rl.pause("default", 30)
    with rl.acquire():
        pass
    assert clock.sleeps == [30]


def test_unknown_bucket_names_the_known_ones(clock) -> None:
    rl = limiter({"default": [(1, 1)], "search": [(4, 1)]}, clock)
    with pytest.raises(ValueError, match="known: default, search"):
        with rl.acquire("serach"):
            pass


def test_a_counted_request_holds_its_place_for_the_margin_past_its_window() -> None:
    clock = FakeClock(start=0.0)
    rl = limiter({"default": [(2, 1)]}, clock, margin=0.25)
    sent = []
    for _ in range(5):
        with rl.acquire():
            sent.append(clock.now())
    assert sent == [0, 0, 1.25, 1.25, 2.5]


def test_by_default_a_window_is_widened_by_a_few_tens_of_milliseconds() -> None:
    clock = FakeClock(start=0.0)
    rl = RateLimiter.from_spec({"default": [(60, 60)]}, clock=clock.now, sleep=clock.sleep)
    for _ in range(61):
        with rl.acquire():
            pass
    assert len(clock.sleeps) == 1
    assert 60.01 <= clock.sleeps[0] <= 60.1


def arrivals_in_any_window(arrivals: list[float], seconds: float) -> int:
    """The most arrivals a provider counting them in a sliding window sees in one window."""
    arrivals = sorted(arrivals)
    return max(sum(1 for other in arrivals if first <= other < first + seconds) for first in arrivals)


@pytest.mark.parametrize("margin, crowded", [(0, True), (0.05, False)])
def test_a_request_arriving_late_by_less_than_the_margin_does_not_crowd_the_providers_window(margin, crowded) -> None:
    # HubSpot searches, 4 per second, counted by the provider when they arrive: the first is
    # held up 40 ms between our count and its arrival (a busy core, a slow network), the rest
    # arrive the moment we count them.
    clock = FakeClock(start=0.0)
    rl = limiter({"search": [(4, 1)]}, clock, margin=margin)
    arrivals = []
    for n in range(8):
        with rl.acquire("search"):
            arrivals.append(clock.now() + (0.04 if n == 0 else 0.0))
    assert (arrivals_in_any_window(arrivals, 1) > 4) is crowded


def test_the_margin_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="margin"):
        RateLimiter.from_spec({"default": [(1, 1)]}, margin=-0.01)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Limit(0, 1)


def test_concurrency_is_bounded_across_threads() -> None:
    rl = RateLimiter.from_spec({"default": []}, concurrency=2)
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal in_flight, peak
        with rl.acquire():
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            time.sleep(0.02)
            with lock:
                in_flight -= 1

    run_in_threads(work, 8)
    assert peak == 2


def test_provider_http_bounds_concurrent_requests_across_threads(policy) -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.02)
        with lock:
            in_flight -= 1
        return httpx.Response(200, json={})

    http = ProviderHttp(
        "xero",
        base_url=BASE,
        retry=policy,
        transport=httpx.MockTransport(answer),
        rate_limiter=RateLimiter.from_spec({"default": [(1000, 60)]}, concurrency=3),
    )
    run_in_threads(lambda: http.request("GET", "/Invoices"), 10)
    assert peak == 3


def test_provider_http_draws_from_the_named_buckets(clock, policy) -> None:
    http = ProviderHttp(
        "hubspot",
        base_url=BASE,
        retry=policy,
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json={})),
        rate_limiter=limiter({"default": [(100, 10)], "search": [(4, 1)]}, clock),
    )
    for _ in range(5):
        http.request("POST", "/crm/v3/objects/deals/search", json={}, bucket=("search", "default"))
    assert clock.sleeps == [1]


def test_provider_http_reports_a_spent_daily_limit_under_its_own_name(clock, policy) -> None:
    http = ProviderHttp(
        "xero",
        base_url=BASE,
        retry=policy,
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json={})),
        rate_limiter=limiter({"default": [(1, 86400)]}, clock),
    )
    http.request("GET", "/Invoices")
    with pytest.raises(RateLimitDeferred) as raised:
        http.request("GET", "/Invoices")
    assert raised.value.provider == "xero"


def test_a_response_tells_its_round_trip_without_the_wait_for_a_slot(policy) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        time.sleep(0.03)
        return httpx.Response(200, json={})

    http = ProviderHttp(
        "stripe",
        base_url=BASE,
        retry=policy,
        transport=httpx.MockTransport(answer),
        rate_limiter=RateLimiter.from_spec({"default": [(1, 0.3)]}, margin=0),
    )
    http.request("GET", "/v1/customers")
    started = time.perf_counter()
    second = http.request("GET", "/v1/customers")  # waits ~0.3 s for its slot first
    assert time.perf_counter() - started >= 0.25
    assert 0.03 <= second.extensions[ROUND_TRIP] < 0.2
