"""A full pull splits the created range into windows, by work as the pages come, read side by
side on one connection."""

import copy
from collections import Counter

import httpx
import pytest
import respx

from connector.errors import RateLimitDeferred
from connector.providers.stripe.cursor import decode
from support.stripe_contract import assert_documented
from support.stripe_fakes import NOW, FakeStripe, fixture, make_provider

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


def list_requests(fake, path="/v1/customers"):
    return fake.gets(path)


def bounds(request):
    q = request.url.params
    return (
        int(q["created[gte]"]) if "created[gte]" in q else None,
        int(q["created[lt]"]) if "created[lt]" in q else None,
    )


def test_windows_split_by_work_read_each_object_once_side_by_side_without_probes(big):
    big.delay = 0.02
    # An object far older than the rest: the oldest window stays open below, so it is read.
    template = fixture("customers.json")["data"][0]
    big.put("customers", dict(copy.deepcopy(template), id="cus_full_ancient", created=1_300_000_000))
    provider = make_provider(page_size=10, full_pull_windows=8)
    pages = list(provider.read("customers", None))

    # The events position is noted before anything is listed.
    assert big.requests[0].url.path == "/v1/events"
    # Every object exactly once.
    seen = Counter(r["id"] for p in pages for r in p.records)
    assert len(seen) == 241 and set(seen.values()) == {1}
    requests = list_requests(big)
    # No `limit=1` probe: every request asks for a page, the first the newest, unfiltered.
    assert all(r.url.params["limit"] == "10" for r in requests)
    assert bounds(requests[0]) == (None, None) and "starting_after" not in requests[0].url.params
    # 25 pages' worth plus the windows' partial last pages (29-32 here, by thread timing); the
    # probe chain before made it 41.
    assert len(requests) <= 36
    # The pull was split: windows below the first page, several read at once.
    assert any(bounds(r)[1] is not None for r in requests)
    assert any(bounds(r)[0] is None and bounds(r)[1] is not None for r in requests)  # open below
    assert big.max_in_flight > 1
    # Only the last page carries the cursor: the events position from before the pull.
    assert all(p.cursor is None for p in pages[:-1])
    assert decode(pages[-1].cursor, stream="customers") == {
        "events": {"after": "evt_1OBaZ1LkdIwHu7ixANCHOR01", "at": NOW - 100, "checked": NOW - 300}
    }
    assert all(len(p.records) <= 10 for p in pages)


def test_a_stream_of_one_page_costs_one_list_request():
    with respx.mock(assert_all_called=False) as router:
        fake = FakeStripe(router, empty=True)
        seed_customers(fake, count=7)
        pages = list(make_provider(page_size=10, full_pull_windows=8).read("customers", None))
    assert_documented(fake.requests)
    assert sorted(r["id"] for p in pages for r in p.records) == [f"cus_full{i:05d}" for i in range(7)]
    assert [r.url.path for r in fake.requests] == ["/v1/events", "/v1/customers"]
    assert bounds(fake.requests[1]) == (None, None)
    assert decode(pages[-1].cursor, stream="customers")["events"]["after"] == "evt_1OBaZ1LkdIwHu7ixANCHOR01"


def test_an_object_created_during_the_pull_comes_with_the_catch_up(big):
    template = fixture("customers.json")["data"][0]
    late = dict(copy.deepcopy(template), id="cus_full_late", created=NOW + 5)
    first = []

    def create_after_the_first_page(request):
        if request.url.path == "/v1/customers" and not first:
            first.append(request)
            big.put("customers", late)
            big.add_event("evt_1OBaZ1LkdIwHu7ixLATE0001", "customer.created", NOW + 5, late)
        return None

    big.intercept = create_after_the_first_page
    provider = make_provider(page_size=10, full_pull_windows=8)
    pages = list(provider.read("customers", None))
    seen = Counter(r["id"] for p in pages for r in p.records)
    assert set(seen.values()) == {1} and len(seen) >= 240
    after = [r["id"] for p in provider.read("customers", pages[-1].cursor) for r in p.records]
    assert set(seen) | set(after) == {o["id"] for o in big.objects["customers"]}
    assert "cus_full_late" in after


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
    assert sorted(r["id"] for p in pages for r in p.records) == sorted(
        o["id"] for o in stripe_fake.objects["customers"]
    )


def test_credit_notes_have_no_created_filter_so_they_are_one_list(stripe_fake, provider):
    pages = list(provider.read("credit_notes", None))
    assert len(pages) == 1 and all("created[gte]" not in r.url.params for r in stripe_fake.gets("/v1/credit_notes"))


def test_a_long_rate_limit_in_one_window_defers_the_pull_without_moving_the_cursor(big):
    def deferral(request):
        # A window split off below the first page, once some pages are out.
        if request.url.path == "/v1/customers" and "created[lt]" in request.url.params:
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


def full_pull_at(big, *, rate, delay, page_size=20):
    big.delay = delay
    provider = make_provider(
        page_size=page_size, full_pull_windows=8, requests_per_second=rate, endpoint_requests_per_second=rate
    )
    seen = Counter(r["id"] for p in provider.read("customers", None) for r in p.records)
    assert len(seen) == 240 and set(seen.values()) == {1}
    return list_requests(big)


def windows_read(requests):
    """Each window's first request is the one without `starting_after`."""
    return sum("starting_after" not in r.url.params for r in requests)


def test_a_fast_round_trip_reads_only_as_many_windows_as_keep_the_limit_busy(big):
    # 20 requests/s at ~20 ms a round trip: two windows keep the limit busy (20 x 0.02 x 1.5,
    # rounded up, plus one). One per worker (eight) reads no faster, and each window ends in a
    # partial page: 14 windows and 37-41 requests here.
    requests = full_pull_at(big, rate=20, delay=0.02, page_size=8)
    assert big.max_in_flight <= 3
    assert windows_read(requests) <= 9
    assert len(requests) <= 30 + 6  # 30 pages' worth, plus the windows' partial last pages


def test_a_slow_round_trip_reads_more_windows_side_by_side(big):
    # 25 requests/s at ~200 ms a round trip: one window would make 5 a second; up to
    # `full_pull_windows` are read at once.
    full_pull_at(big, rate=25, delay=0.2)
    assert big.max_in_flight >= 4


def test_only_the_closed_window_with_most_left_splits_so_the_work_goes_out_in_few_big_parts():
    from connector.providers.stripe.provider import _Window, _Windows

    def page(newest, span=90, size=10):
        return [{"created": newest - span * i // (size - 1)} for i in range(size)]

    windows = _Windows(workers=4, rate=25)
    windows.timed(1.0)  # slow requests: all four workers wanted
    large, small = _Window(gte=1_000_000, lt=2_000_000, span=90), _Window(gte=2_000_000, lt=2_010_000, span=90)
    windows.start(large)
    windows.start(small)

    # ~99 pages left in the small one, ~11,000 in the large one: the small one goes on alone.
    assert windows.split(small, page(2_009_000)) == []
    parts = windows.split(large, page(1_999_000))
    # The large one is cut in three (itself and the two free workers), evenly in created time.
    assert [(p.gte, p.lt) for p in parts] == [(1_000_000, 1_332_970), (1_332_970, 1_665_940)]
    assert large.gte == 1_665_940 and large.lt == 2_000_000
    assert windows.split(small, page(2_008_900)) == []  # no worker free

    for window in (large, *parts):
        windows.finish(window)
    # Alone now, the small one shares what it has left with the free workers.
    assert len(windows.split(small, page(2_008_800))) == 3
