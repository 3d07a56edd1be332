"""The sandbox's traffic report: per provider, the requests that arrived, those answered 429,
and the most that arrived in any window of the provider's documented limit."""

from __future__ import annotations

from connector.sandbox.server import busiest_window
from support.sandbox_books import book
from support.sandbox_harness import running, stripe, xero


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_busiest_window_counts_arrivals_less_than_a_window_apart():
    assert busiest_window([], 60.0) == 0
    assert busiest_window([0.0, 59.9, 60.0, 61.0, 119.95], 60.0) == 3  # 60.0, 61.0, 119.95
    assert busiest_window([0.0, 0.0, 0.0], 1.0) == 3


def test_traffic_reports_requests_429s_and_the_busiest_window_per_provider():
    clock = FakeClock()
    with running(book(), limits="documented", clock=clock) as sandbox:
        with stripe(sandbox) as client:
            statuses = [client.get("/v1/customers", params={"limit": 1}).status_code for _ in range(27)]
            clock.now += 5.0
            client.get("/v1/customers", params={"limit": 1})
        with xero(sandbox) as client:
            client.get("/Accounts")
        traffic = sandbox.traffic()
        served = sandbox.admin("/_sandbox/traffic").body
    assert statuses.count(429) == 2
    assert set(traffic) == {"stripe", "xero"}
    assert (traffic["stripe"].requests, traffic["stripe"].rate_limited, traffic["stripe"].busiest) == (28, 2, 27)
    assert traffic["stripe"].window == 1.0 and traffic["xero"].window == 60.0
    assert traffic["xero"].rate_limited_share == 0.0 and traffic["xero"].busiest == 1
    assert served["stripe"] == {"requests": 28, "rate_limited": 2, "window": 1.0, "busiest": 27}
