"""A full pull splits the created range into windows read side by side on one connection."""

import copy
from collections import Counter
from itertools import pairwise

import httpx
import pytest
import respx
from stripe_contract import assert_documented
from stripe_fakes import NOW, FakeStripe, fixture, make_provider

from connector.errors import RateLimitDeferred
from providers.stripe.cursor import decode

DAY = 86400
START = NOW - 120 * DAY


def seed_customers(fake, count=240, every=12 * 3600):
    template = fixture("customers.json")["data"][0]
    for i in range(count):
        fake.put("customers", dict(copy.deepcopy(template), id=f"cus_full{i:05d}", created=START + i * every))
    fake.add_event("evt_1OBaZ1LkdIwHu7ixANCHOR01", "customer.updated", NOW - 100, template)


@pytest.fixture
def big():
    with respx.mock(assert_all_called=False) as router:
        fake = FakeStripe(router, empty=True)
        seed_customers(fake)
        yield fake
    assert_documented(fake.requests)


def window_requests(fake, path="/v1/customers"):
    """The window reads (the probes ask for one object)."""
    return [r for r in fake.gets(path) if r.url.params.get("limit") != "1"]


def bounds(request):
    q = request.url.params
    return (int(q["created[gte]"]) if "created[gte]" in q else None, int(q["created[lt]"]) if "created[lt]" in q else None)


def test_windows_cover_the_range_once_each_object_comes_once_and_reads_overlap(big):
    big.delay = 0.02
    provider = make_provider(page_size=10, full_pull_windows=8)
    pages = list(provider.read("customers", None))

    # The events position is noted before anything is listed.
    assert big.requests[0].url.path == "/v1/events"
    # Every object exactly once.
    seen = Counter(r["id"] for p in pages for r in p.records)
    assert len(seen) == 240 and set(seen.values()) == {1}
    # The windows: contiguous, open below and above, each read from its first page.
    firsts = sorted({bounds(r) for r in window_requests(big) if "starting_after" not in r.url.params},
                    key=lambda b: -1 if b[0] is None else b[0])
    assert len(firsts) == 8
    assert firsts[0][0] is None and firsts[-1][1] is None
    assert all(a[1] == b[0] for a, b in pairwise(firsts))
    assert firsts[1][0] <= START + 30 * DAY  # the range was found: no window is the whole account
    for request in window_requests(big):  # each page of a window keeps its window's filters
        assert bounds(request) in firsts
    # Several windows were read at once on the one connection.
    assert big.max_in_flight > 1
    # Only the last page carries the cursor: the events position from before the pull.
    assert all(p.cursor is None for p in pages[:-1])
    assert decode(pages[-1].cursor, stream="customers") == {"events": {"after": "evt_1OBaZ1LkdIwHu7ixANCHOR01", "at": NOW - 100, "checked": NOW - 300}}
    assert all(len(p.records) <= 10 for p in pages)


def test_start_date_bounds_the_first_window_and_older_objects_are_not_read(big):
    provider = make_provider(page_size=50, full_pull_windows=4, start_date="2023-10-01")
    start = 1_696_118_400  # 2023-10-01T00:00:00Z
    pages = list(provider.read("customers", None))
    ids = [r["id"] for p in pages for r in p.records]
    expected = [o["id"] for o in big.objects["customers"] if o["created"] >= start]
    assert sorted(ids) == sorted(expected) and len(expected) < 240
    assert all(bounds(r)[0] is not None and bounds(r)[0] >= start for r in big.gets("/v1/customers"))


def test_an_empty_account_ends_at_once_on_the_cursor(big):
    big.objects["customers"] = []
    pages = list(make_provider().read("customers", None))
    assert [p.records for p in pages] == [[]] and decode(pages[0].cursor, stream="customers")["events"]


def test_one_window_is_enough_for_a_small_range(stripe_fake, provider):
    # The fixture's customers lie within a few hours: fewer windows, the same objects.
    pages = list(provider.read("customers", None))
    assert sorted(r["id"] for p in pages for r in p.records) == sorted(o["id"] for o in stripe_fake.objects["customers"])


def test_credit_notes_have_no_created_filter_so_they_are_one_list(stripe_fake, provider):
    pages = list(provider.read("credit_notes", None))
    assert len(pages) == 1 and all("created[gte]" not in r.url.params for r in stripe_fake.gets("/v1/credit_notes"))


def test_a_long_rate_limit_in_one_window_defers_the_pull_without_moving_the_cursor(big):
    def deferral(request):
        if request.url.path == "/v1/customers" and "created[lt]" not in request.url.params and request.url.params.get("limit") != "1":
            return httpx.Response(429, json=fixture("error_rate_limit.json"), headers={"Retry-After": "3600"})
        return None

    big.intercept = deferral
    provider = make_provider(page_size=10, full_pull_windows=8)
    pages = []
    with pytest.raises(RateLimitDeferred):
        pages.extend(provider.read("customers", None))
    assert all(p.cursor is None for p in pages)  # the next run starts the full pull again


def test_a_failing_window_stops_the_others_and_raises(big):
    from connector.errors import AuthenticationError

    def revoked(request):
        if request.url.path == "/v1/customers" and request.url.params.get("limit") == "10":
            return httpx.Response(401, json={"error": {"type": "invalid_request_error", "message": "Expired API Key"}})
        return None

    big.intercept = revoked
    with pytest.raises(AuthenticationError):
        list(make_provider(page_size=10).read("customers", None))


def test_a_consumer_that_stops_early_leaves_no_worker_running(big):
    import threading

    big.delay = 0.01
    reader = make_provider(page_size=10).read("customers", None)
    next(reader)
    reader.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("stripe-customers")]
