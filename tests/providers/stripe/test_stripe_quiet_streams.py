"""A stream with no event for weeks: its cursor notes when the events feed was last read, so
it keeps catching up with a request or two instead of reading the whole stream every run
(Stripe keeps events 30 days; the newest event of a quiet stream is older than that)."""

import httpx

from connector.providers.stripe.cursor import decode, encode
from support.stripe_fakes import NOW, make_provider

DAY = 86400
USD = "in_1OBa9zLkdIwHu7ixUSD00001"
NEWEST_INVOICE_EVENT = ("evt_1OBaH4LkdIwHu7ixEVT00004", 1_700_000_400)
STREAMS = (
    "customers",
    "invoices",
    "charges",
    "payment_intents",
    "refunds",
    "payouts",
    "credit_notes",
    "balance_transactions",
)


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def read_all(provider, stream, cursor=None):
    return list(provider.read(stream, cursor))


def test_newest_event_40_days_old_but_checked_yesterday_reads_incrementally(stripe_fake):
    later = NEWEST_INVOICE_EVENT[1] + 40 * DAY
    stripe_fake.prune_events(later - 30 * DAY)  # Stripe has forgotten the event we follow
    provider = make_provider(clock=Clock(later))
    event, at = NEWEST_INVOICE_EVENT
    cursor = encode({"events": {"after": event, "at": at, "checked": later - DAY}})

    pages = read_all(provider, "invoices", cursor)

    assert [p.records for p in pages] == [[]] and not any(p.notes for p in pages)  # no full pull
    assert len(stripe_fake.requests) == 1  # one request: events created since the check
    assert stripe_fake.requests[0].url.params["created[gte]"] == str(later - DAY)
    assert "ending_before" not in stripe_fake.requests[0].url.params  # the pruned event is not followed
    state = decode(pages[-1].cursor, stream="invoices")
    assert state["events"]["checked"] == later - 300  # checked again now (less the overlap)

    # Something happens: the next run brings it, from the same kind of request.
    usd = dict(stripe_fake.find("invoices", USD), amount_paid=10000)
    stripe_fake.add_event("evt_1OBaQ1LkdIwHu7ixQUIET001", "invoice.updated", later - 60, usd)
    pages = read_all(provider, "invoices", pages[-1].cursor)
    assert [r["id"] for p in pages for r in p.records] == [USD]
    assert not any(p.notes for p in pages)
    assert decode(pages[-1].cursor, stream="invoices")["events"] == {
        "after": "evt_1OBaQ1LkdIwHu7ixQUIET001",
        "at": later - 60,
        "checked": later - 300,
    }


def test_a_since_position_checked_recently_reads_incrementally(stripe_fake):
    later = NOW + 40 * DAY
    provider = make_provider(clock=Clock(later))
    cursor = encode({"events": {"since": NOW - DAY, "checked": later - 2 * DAY}})
    pages = read_all(provider, "invoices", cursor)
    assert [p.records for p in pages] == [[]] and not any(p.notes for p in pages)
    assert [r.url.params["created[gte]"] for r in stripe_fake.requests] == [str(later - 2 * DAY)]
    assert decode(pages[-1].cursor, stream="invoices")["events"] == {"since": NOW - DAY, "checked": later - 300}


def test_a_position_whose_last_check_is_past_retention_reads_everything_with_a_note(stripe_fake):
    later = NOW + 45 * DAY
    provider = make_provider(clock=Clock(later))
    event, at = NEWEST_INVOICE_EVENT
    cursor = encode({"events": {"after": event, "at": at, "checked": later - 31 * DAY}})
    pages = read_all(provider, "invoices", cursor)
    assert len([r for p in pages for r in p.records]) == 4  # the whole stream
    assert f"saved position (epoch {later - 31 * DAY}) is older than Stripe keeps events" in pages[0].notes[0]


def test_an_old_cursor_without_a_check_still_reads_and_past_retention_starts_over(stripe_fake, provider):
    event, at = NEWEST_INVOICE_EVENT
    recent = read_all(provider, "invoices", encode({"events": {"after": event, "at": at}}))
    assert [p.records for p in recent] == [[]] and not recent[0].notes
    assert decode(recent[-1].cursor, stream="invoices")["events"]["checked"] == NOW - 300  # gains a check
    old = read_all(provider, "invoices", encode({"events": {"after": event, "at": NOW - 40 * DAY}}))
    assert len([r for p in old for r in p.records]) == 4 and "older than Stripe keeps events" in old[0].notes[0]


def test_a_pruned_event_answered_as_a_400_resource_missing_starts_over(stripe_fake, provider):
    def pruned(request: httpx.Request) -> httpx.Response | None:
        if request.url.params.get("ending_before") == "evt_gone":
            return httpx.Response(
                400,
                json={
                    "error": {
                        "type": "invalid_request_error",
                        "code": "resource_missing",
                        "param": "ending_before",
                        "message": "No such event: 'evt_gone'",
                    }
                },
            )
        return None

    stripe_fake.intercept = pruned
    pages = read_all(provider, "invoices", encode({"events": {"after": "evt_gone", "at": NOW - DAY}}))
    assert len([r for p in pages for r in p.records]) == 4 and pages[0].notes


def test_successive_no_change_runs_cost_at_most_two_requests_per_stream_for_months(stripe_fake):
    clock = Clock(NOW)
    provider = make_provider(clock=clock)
    cursors = {stream: read_all(provider, stream)[-1].cursor for stream in STREAMS}  # the first, full run
    # Runs 20, 40 and 60 days later, with no change in between: by the second of them every
    # event of the account is older than Stripe keeps (and pruned).
    for days in (20, 40, 60):
        clock.now = NOW + days * DAY
        stripe_fake.prune_events(clock.now - 30 * DAY)
        for stream in STREAMS:
            before = len(stripe_fake.requests)
            pages = read_all(provider, stream, cursors[stream])
            assert len(stripe_fake.requests) - before <= 2, (
                days,
                stream,
                [str(r.url) for r in stripe_fake.requests[before:]],
            )
            assert not any(p.records or p.notes for p in pages), (days, stream)
            cursors[stream] = pages[-1].cursor
    provider.close()
