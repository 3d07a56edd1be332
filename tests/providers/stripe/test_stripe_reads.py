import json

import httpx
import pytest

from connector.errors import PaginationLoopError, RateLimitDeferred
from connector.providers.stripe.cursor import decode, encode
from support.stripe_fakes import NOW, fixture, make_provider

STREAM_COUNTS = {
    "customers": 3,
    "invoices": 4,
    "charges": 4,
    "payment_intents": 6,
    "refunds": 1,
    "payouts": 1,
    "credit_notes": 1,
    "balance_transactions": 5,
}
USD, JPY = "in_1OBa9zLkdIwHu7ixUSD00001", "in_1OBaA1LkdIwHu7ixJPY00001"


def read_all(provider, stream, cursor=None):
    return list(provider.read(stream, cursor))


def ids(pages):
    return [r["id"] for page in pages for r in page.records]


@pytest.mark.parametrize("stream", sorted(STREAM_COUNTS))
def test_first_run_lists_every_object_and_ends_on_a_catch_up_cursor(stripe_fake, provider, stream):
    pages = read_all(provider, stream)
    assert len(ids(pages)) == STREAM_COUNTS[stream]
    state = decode(pages[-1].cursor, stream=stream)
    assert "list" not in state
    assert ("created" in state) == (stream == "balance_transactions")


def test_invoices_first_run_anchors_on_the_newest_invoice_event(stripe_fake, provider):
    pages = read_all(provider, "invoices")
    assert decode(pages[-1].cursor, stream="invoices") == {
        "events": {"after": "evt_1OBaH4LkdIwHu7ixEVT00004", "at": 1_700_000_400, "checked": NOW - 300}
    }
    anchor = stripe_fake.gets("/v1/events")[0]
    assert anchor.url.params["type"] == "invoice.*" and anchor.url.params["limit"] == "1"


def test_requests_carry_the_pinned_version_and_the_key_as_bearer(stripe_fake, provider):
    read_all(provider, "customers")
    request = stripe_fake.requests[0]
    assert request.headers["Stripe-Version"] == "2023-08-16"
    assert request.headers["Authorization"].startswith("Bearer sk_test_")


def test_pages_follow_starting_after_and_each_cursor_resumes_where_it_stopped(stripe_fake):
    provider = make_provider(page_size=2, full_pull_windows=1)  # one sequential list
    pages = read_all(provider, "invoices")
    assert [len(p.records) for p in pages] == [2, 2]
    first = decode(pages[0].cursor, stream="invoices")
    assert first["list"]["starting_after"] == pages[0].records[-1]["id"]
    resumed = read_all(provider, "invoices", pages[0].cursor)
    assert ids(resumed) == ids(pages[1:])
    assert resumed[-1].cursor == pages[-1].cursor


def test_incremental_read_brings_updates_from_events_oldest_first(stripe_fake, provider):
    cursor = read_all(provider, "invoices")[-1].cursor
    usd = dict(stripe_fake.find("invoices", USD), amount_paid=10000, amount_remaining=9440)
    stripe_fake.add_event("evt_1OBaJ1LkdIwHu7ixNEW00001", "invoice.updated", NOW - 50, dict(usd, amount_paid=7000))
    stripe_fake.add_event("evt_1OBaJ2LkdIwHu7ixNEW00002", "invoice.updated", NOW - 40, usd)
    stripe_fake.add_event(
        "evt_1OBaJ3LkdIwHu7ixNEW00003", "invoiceitem.created", NOW - 30, {"id": "ii_x", "object": "invoiceitem"}
    )
    pages = read_all(provider, "invoices", cursor)
    records = [r for p in pages for r in p.records]
    assert [(r["id"], r["amount_paid"]) for r in records] == [(USD, 10000)]  # newest state, once
    assert decode(pages[-1].cursor, stream="invoices")["events"]["after"] == "evt_1OBaJ2LkdIwHu7ixNEW00002"
    assert not stripe_fake.gets(f"/v1/invoices/{USD}")  # same API version: the event's copy is used


def test_an_event_rendered_in_another_api_version_is_re_read(stripe_fake, provider):
    cursor = encode({"events": {"after": "evt_1OBaH2LkdIwHu7ixEVT00002", "at": NOW - 1000}})
    pages = read_all(provider, "invoices", cursor)  # evt ...04 is an invoice.updated of 2022-11-15
    assert ids(pages) == [JPY]
    assert stripe_fake.gets(f"/v1/invoices/{JPY}")
    assert pages[0].records[0]["amount_paid"] == 0  # the object as it is now, in our version


def test_a_quiet_stream_keeps_its_cursor(stripe_fake, provider):
    cursor = read_all(provider, "invoices")[-1].cursor
    pages = read_all(provider, "invoices", cursor)
    assert [p.records for p in pages] == [[]] and pages[0].cursor == cursor


def test_events_pages_walk_forward_with_ending_before(stripe_fake):
    provider = make_provider(page_size=1)
    cursor = encode({"events": {"after": "evt_1OBaH1LkdIwHu7ixEVT00001", "at": NOW - 1000}})
    pages = read_all(provider, "invoices", cursor)
    afters = [decode(p.cursor, stream="invoices")["events"]["after"] for p in pages]
    assert afters == ["evt_1OBaH2LkdIwHu7ixEVT00002", "evt_1OBaH4LkdIwHu7ixEVT00004"]
    assert [r.url.params.get("ending_before") for r in stripe_fake.gets("/v1/events")] == [
        "evt_1OBaH1LkdIwHu7ixEVT00001",
        "evt_1OBaH2LkdIwHu7ixEVT00002",
    ]


def test_deleted_draft_invoice_comes_back_marked_deleted(stripe_fake, provider):
    cursor = read_all(provider, "invoices")[-1].cursor
    draft = dict(fixture("invoices.json")["data"][3], id="in_1OBaK1LkdIwHu7ixDRAFT001", status="draft")
    stripe_fake.add_event("evt_1OBaK1LkdIwHu7ixDEL00001", "invoice.deleted", NOW - 10, draft)
    records = [r for p in read_all(provider, "invoices", cursor) for r in p.records]
    assert [(r["id"], r["deleted"]) for r in records] == [("in_1OBaK1LkdIwHu7ixDRAFT001", True)]


def test_deleted_customer_comes_back_marked_deleted(stripe_fake, provider):
    cursor = read_all(provider, "customers")[-1].cursor
    gone = fixture("customers.json")["data"][0]
    stripe_fake.add_event("evt_1OBaK2LkdIwHu7ixDEL00002", "customer.deleted", NOW - 10, gone)
    records = [r for p in read_all(provider, "customers", cursor) for r in p.records]
    assert records[0]["id"] == gone["id"] and records[0]["deleted"] is True


def test_charges_are_always_re_read_with_their_balance_transaction(stripe_fake, provider):
    cursor = read_all(provider, "charges")[-1].cursor
    charge = stripe_fake.find("charges", "ch_3OBaB1LkdIwHu7ix0USD0001")
    stripe_fake.add_event(
        "evt_1OBaL1LkdIwHu7ixCHG00001",
        "charge.updated",
        NOW - 10,
        dict(charge, balance_transaction="txn_3OBaB1LkdIwHu7ix0USD0001"),
    )
    stripe_fake.add_event(
        "evt_1OBaL2LkdIwHu7ixCHG00002", "charge.dispute.created", NOW - 5, {"id": "dp_1", "object": "dispute"}
    )
    records = [r for p in read_all(provider, "charges", cursor) for r in p.records]
    assert [r["id"] for r in records] == ["ch_3OBaB1LkdIwHu7ix0USD0001"]
    assert records[0]["balance_transaction"]["fee"] == 175
    get = stripe_fake.gets("/v1/charges/ch_3OBaB1LkdIwHu7ix0USD0001")[0]
    assert get.url.params["expand[]"] == "balance_transaction"


def test_charge_refunded_event_brings_that_charges_refunds(stripe_fake, provider):
    cursor = read_all(provider, "refunds")[-1].cursor
    charge = stripe_fake.find("charges", "ch_3OBaB1LkdIwHu7ix0JPY0001")
    stripe_fake.add_event("evt_1OBaM1LkdIwHu7ixRFD00001", "charge.refunded", NOW - 10, charge)
    records = [r for p in read_all(provider, "refunds", cursor) for r in p.records]
    assert [r["id"] for r in records] == ["re_3OBaB1LkdIwHu7ix0JPY0001"]
    assert stripe_fake.gets("/v1/refunds")[-1].url.params["charge"] == "ch_3OBaB1LkdIwHu7ix0JPY0001"


def test_a_cursor_without_an_anchor_event_finds_the_oldest_events_first(stripe_fake):
    provider = make_provider(page_size=2)
    cursor = encode({"events": {"since": 1_700_000_050}})
    pages = read_all(provider, "invoices", cursor)
    # invoice events since then, oldest first: 01 (USD finalized), then 02 (USD paid), 04 (JPY)
    assert ids(pages) == [USD, USD, JPY]
    assert [r.url.params.get("starting_after") for r in stripe_fake.gets("/v1/events")][:2] == [
        None,
        "evt_1OBaH2LkdIwHu7ixEVT00002",
    ]
    assert decode(pages[-1].cursor, stream="invoices")["events"]["after"] == "evt_1OBaH4LkdIwHu7ixEVT00004"


def test_a_cursor_older_than_event_retention_starts_over_with_a_note(stripe_fake, provider):
    cursor = encode({"events": {"after": "evt_1OBaH1LkdIwHu7ixEVT00001", "at": NOW - 40 * 86400}})
    pages = read_all(provider, "invoices", cursor)
    assert len(ids(pages)) == 4 and "older than Stripe keeps events" in pages[0].notes[0]


def test_a_pruned_anchor_event_starts_over_with_a_note(stripe_fake, provider):
    cursor = encode({"events": {"after": "evt_gone", "at": NOW - 86400}})
    pages = read_all(provider, "invoices", cursor)
    assert len(ids(pages)) == 4 and pages[0].notes


def test_balance_transactions_catch_up_by_creation_time_with_overlap(stripe_fake, provider):
    cursor = read_all(provider, "balance_transactions")[-1].cursor
    assert decode(cursor, stream="balance_transactions") == {"created": {"gte": NOW - 300}}
    new = dict(fixture("balance_transactions.json")["data"][0], id="txn_new", created=NOW - 300)
    stripe_fake.put("balance_transactions", new)
    pages = read_all(provider, "balance_transactions", cursor)
    assert ids(pages) == ["txn_new"]  # same second as the cursor: not skipped
    assert stripe_fake.gets("/v1/balance_transactions")[-1].url.params["created[gte]"] == str(NOW - 300)


def test_invoice_with_more_lines_than_embedded_gets_all_its_lines(stripe_fake, provider):
    usd = stripe_fake.find("invoices", USD)
    usd["lines"]["has_more"] = True
    stripe_fake.extra_lines[USD] = usd["lines"]["data"] + fixture("invoice_lines.json")["data"]
    records = {r["id"]: r for p in read_all(provider, "invoices") for r in p.records}
    lines = records[USD]["lines"]
    assert [line["description"] for line in lines["data"]] == ["Torque wrench", "Socket set", "Shipping and handling"]
    assert lines["has_more"] is False


def test_429_with_retry_after_then_success(stripe_fake):
    slept = []
    provider = make_provider()
    provider.http.retry = type(provider.http.retry)(sleep=slept.append)
    stripe_fake.failures.append(
        httpx.Response(429, json=fixture("error_rate_limit.json"), headers={"Retry-After": "2"})
    )
    assert len(ids(read_all(provider, "customers"))) == 3
    assert slept == [2.0]


def test_5xx_then_success(stripe_fake, provider):
    stripe_fake.failures.append(httpx.Response(500, json={"error": {"type": "api_error", "message": "boom"}}))
    stripe_fake.failures.append(httpx.Response(503, text="unavailable"))
    assert len(ids(read_all(provider, "payouts"))) == 1


def test_a_long_rate_limit_wait_is_deferred_out_of_the_read_after_the_pages_so_far(stripe_fake):
    provider = make_provider(page_size=2, full_pull_windows=1)
    reader = provider.read("invoices", None)
    first = next(reader)  # anchor + first page
    stripe_fake.failures.append(
        httpx.Response(429, json=fixture("error_rate_limit.json"), headers={"Retry-After": "3600"})
    )
    with pytest.raises(RateLimitDeferred):
        next(reader)
    assert decode(first.cursor, stream="invoices")["list"]["starting_after"]


def test_a_repeated_pagination_cursor_is_a_loop_not_a_hang(stripe_fake, provider):
    page = {"object": "list", "url": "/v1/payouts", "has_more": True, "data": fixture("payouts.json")["data"]}
    stripe_fake.failures.extend([httpx.Response(200, json=page), httpx.Response(200, json=page)])
    with pytest.raises(PaginationLoopError):
        list(provider._list(provider_streams()["payouts"], None, None, {"events": {"since": NOW}}))


def provider_streams():
    from connector.providers.stripe.streams import STREAMS

    return STREAMS


def test_a_foreign_cursor_is_refused(provider):
    from connector.errors import ConfigError

    with pytest.raises(ConfigError):
        list(provider.read("invoices", json.dumps({"page": 3})))


def test_payment_intents_catch_up_from_payment_intent_events(stripe_fake, provider):
    cursor = read_all(provider, "payment_intents")[-1].cursor
    assert stripe_fake.gets("/v1/events")[0].url.params["type"] == "payment_intent.*"
    waiting = dict(
        stripe_fake.find("payment_intents", "pi_3OBaBBLkdIwHu7ix0OPEN0001"),
        status="succeeded",
        amount_received=3000000,
        latest_charge="ch_3OBaZ1LkdIwHu7ix0JPY0002",
    )
    stripe_fake.put("payment_intents", waiting)
    stripe_fake.add_event("evt_1OBaN1LkdIwHu7ixPI000001", "payment_intent.succeeded", NOW - 10, waiting)
    stripe_fake.add_event(
        "evt_1OBaN2LkdIwHu7ixCH000001",
        "charge.succeeded",
        NOW - 9,
        stripe_fake.find("charges", "ch_3OBaB1LkdIwHu7ix0USD0001"),
    )
    records = [r for p in read_all(provider, "payment_intents", cursor) for r in p.records]
    assert [(r["id"], r["status"]) for r in records] == [("pi_3OBaBBLkdIwHu7ix0OPEN0001", "succeeded")]
    assert not stripe_fake.gets("/v1/payment_intents/pi_3OBaBBLkdIwHu7ix0OPEN0001")  # the event's copy, same version
