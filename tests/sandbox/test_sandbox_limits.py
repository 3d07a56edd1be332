"""Documented rate limits: 429 with Retry-After for a client that ignores them, none for one
that honours them (through our own RateLimiter)."""

from __future__ import annotations

import json
import threading

import pytest

from connector.http.ratelimit import RateLimiter
from connector.sandbox.common import Request
from support.openapi import check_response
from support.sandbox_books import book
from support.sandbox_harness import TENANT, check_hubspot_error, hubspot, running, stripe, xero


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_stripe_test_keys_get_25_per_second_then_429():
    clock = FakeClock()
    with running(book(), limits="documented", clock=clock) as sandbox, stripe(sandbox) as client:
        statuses = [client.get("/v1/customers").status_code for _ in range(26)]
        refused = client.get("/v1/customers")
        clock.now += 1.0
        after_a_second = client.get("/v1/customers").status_code
    assert statuses[:25] == [200] * 25 and statuses[25] == 429
    assert refused.headers["Retry-After"] == "1" and refused.json()["error"]["code"] == "rate_limit"
    check_response("stripe", "GET", "/v1/customers", refused.json(), status=429)
    assert after_a_second == 200


def test_stripe_live_keys_get_100_per_second():
    clock = FakeClock()
    with running(book(), limits="documented", clock=clock) as sandbox, stripe(sandbox, key="sk_live_x") as client:
        statuses = [client.get("/v1/customers", params={"limit": 1}).status_code for _ in range(101)]
    assert statuses.count(200) == 100 and statuses[-1] == 429


def test_a_client_honouring_its_limiter_never_sees_a_429_and_one_ignoring_it_does():
    limiter = RateLimiter.from_spec({"default": [(25, 1)]})
    with running(book(), limits="documented") as sandbox, stripe(sandbox) as client:
        honoured = []
        for _ in range(60):
            with limiter.acquire():
                honoured.append(client.get("/v1/customers", params={"limit": 1}).status_code)
        ignored = [client.get("/v1/customers", params={"limit": 1}).status_code for _ in range(40)]
    assert set(honoured) == {200}
    assert 429 in ignored


def test_xero_60_per_minute_per_tenant():
    clock = FakeClock()
    with (
        running(book(), limits="documented", clock=clock) as sandbox,
        xero(sandbox) as client,
        xero(sandbox, tenant="other") as other,
    ):
        statuses = [client.get("/Accounts").status_code for _ in range(60)]
        refused = client.get("/Accounts")
        other_tenant = other.get("/Accounts").status_code
        clock.now += 60
        later = client.get("/Accounts")
    assert set(statuses) == {200}
    assert refused.status_code == 429 and refused.headers["X-Rate-Limit-Problem"] == "minute"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert other_tenant == 200
    assert later.status_code == 200 and later.headers["X-MinLimit-Remaining"] == "59"


def test_xero_daily_limit_answers_a_long_retry_after():
    clock = FakeClock()
    with running(book(), limits="documented", clock=clock) as sandbox, xero(sandbox) as client:
        client.get("/Accounts")
        day = sandbox.faces["xero"].day[TENANT]
        day.arrivals.extend([clock.now] * 4999)
        clock.now += 120
        refused = client.get("/Accounts")
    assert refused.status_code == 429 and refused.headers["X-Rate-Limit-Problem"] == "day"
    assert int(refused.headers["Retry-After"]) > 80_000


def test_xero_five_requests_in_flight_at_most():
    """Seven requests for one tenant, all in flight together: five are served, two refused.
    Each request's latency lasts until all seven have arrived, so they overlap for certain,
    however slowly the machine starts the threads."""
    with running(book(), limits="documented", latency_ms=1) as sandbox:
        face = sandbox.faces["xero"]
        arrivals, all_arrived = [], threading.Event()
        admit = face.begin

        def begin(request):
            answer = admit(request)
            arrivals.append(request)
            if len(arrivals) == 7:
                all_arrived.set()
            return answer

        face.begin = begin
        sandbox._latency = lambda request: all_arrived.wait(30)
        statuses, problems = [], []

        def call():
            with xero(sandbox) as client:
                answer = client.get("/Accounts")
            statuses.append(answer.status_code)
            problems.append(answer.headers.get("X-Rate-Limit-Problem"))

        threads = [threading.Thread(target=call) for _ in range(7)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert all_arrived.is_set()
    assert statuses.count(200) == 5 and statuses.count(429) == 2
    assert problems.count("concurrent") == 2


def _stripe_list():
    return Request("GET", "/v1/customers", {"limit": ["1"]}, {"authorization": "Bearer sk_test_sandbox"})


def _hubspot_search():
    body = json.dumps(
        {"filterGroups": [], "sorts": ["hs_object_id"], "properties": [], "limit": 1, "after": "0"}
    ).encode()
    return Request(
        "POST",
        "/crm/v3/objects/deals/search",
        {},
        {"authorization": "Bearer pat-na1-x", "content-type": "application/json"},
        body,
    )


@pytest.mark.parametrize(
    ("provider", "request_of", "limit"), [("stripe", _stripe_list, 25), ("hubspot", _hubspot_search, 4)]
)
def test_a_request_counts_against_the_limit_when_it_arrives_not_when_it_is_answered(provider, request_of, limit):
    """A client at the documented pace: a full window's requests at t=0, answered 0.3 s late
    (a slow, loaded sandbox), then the next one at t=1 s, answered at once. It is within the
    limit when sent, so it is served."""
    clock = FakeClock(1_800_000_000.0)
    start = clock.now
    with running(book(), limits="documented", latency_ms=1, clock=clock) as sandbox:
        late = {"by": 0.3}

        def latency(request):
            clock.now += late["by"]

        sandbox._latency = latency
        first = []
        for _ in range(limit):
            clock.now = start  # they all arrive together, at t=0
            first.append(sandbox.dispatch(request_of(), provider).response.status)
        late["by"] = 0.0
        clock.now = start + 1.0
        next_window = sandbox.dispatch(request_of(), provider).response
    assert first == [200] * limit
    assert next_window.status == 200


def test_hubspot_search_four_per_second_and_190_per_ten_seconds():
    clock = FakeClock()
    search = {"filterGroups": [], "sorts": ["hs_object_id"], "properties": [], "limit": 1, "after": "0"}
    with running(book(), limits="documented", clock=clock) as sandbox, hubspot(sandbox) as client:
        searches = [client.post("/crm/v3/objects/deals/search", json=search) for _ in range(5)]
        clock.now += 1
        reads = [client.get("/crm/v3/objects/deals/300").status_code for _ in range(186)]
        general = client.get("/crm/v3/objects/deals/300")
    assert [s.status_code for s in searches] == [200] * 4 + [429]
    refused = searches[-1]
    assert refused.json()["policyName"] == "SECONDLY" and refused.headers["Retry-After"] == "1"
    check_hubspot_error(refused.json())
    assert searches[0].headers["X-HubSpot-RateLimit-Secondly-Remaining"] == "3"
    assert set(reads) == {200}  # 4 searches + 186 reads = 190
    assert general.status_code == 429 and general.json()["policyName"] == "TEN_SECONDLY_ROLLING"


def test_limits_off_never_refuses():
    with running(book(), limits="off") as sandbox, stripe(sandbox) as client:
        assert {client.get("/v1/customers").status_code for _ in range(60)} == {200}
