import json

import httpx
import pytest
import respx

from connector.errors import RateLimitDeferred
from connector.providers.hubspot.search import SearchCursor, epoch_ms
from support.hubspot_fakes import API, FakeSearch, body_of, fixture, make_provider, record


@respx.mock
def test_companies_full_pull_follows_after_to_the_end_from_epoch_zero():
    route = respx.post(f"{API}/crm/v3/objects/companies/search").mock(
        side_effect=[
            httpx.Response(200, json=fixture("companies_search_page1.json")),
            httpx.Response(200, json=fixture("companies_search_page2.json")),
        ]
    )
    pages = list(make_provider().read("companies", None))
    assert [[r["id"] for r in p.records] for p in pages] == [["5001", "5002"], ["5003"]]
    first, second = (body_of(c.request) for c in route.calls)
    assert first["filterGroups"] == [
        {"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}]}
    ]
    assert first["sorts"] == ["hs_lastmodifieddate"] and first["after"] == "0" and first["limit"] == 100
    assert "name" in first["properties"] and "domain" in first["properties"]
    assert second["after"] == "2"
    assert json.loads(pages[-1].cursor) == {"since": epoch_ms("2024-03-03T08:15:00.000Z")}
    assert route.call_count == 2  # no request after the last page


@respx.mock
def test_contacts_search_on_lastmodifieddate_and_resume_from_the_cursor_with_overlap():
    route = respx.post(f"{API}/crm/v3/objects/contacts/search").mock(
        return_value=httpx.Response(200, json=fixture("contacts_search.json"))
    )
    cursor = SearchCursor(since=epoch_ms("2024-03-04T09:00:00.000Z")).dump()
    pages = list(make_provider(search_lookback_seconds=60).read("contacts", cursor))
    body = body_of(route.calls[0].request)
    (flt,) = body["filterGroups"][0]["filters"]
    assert flt["propertyName"] == "lastmodifieddate" and flt["operator"] == "GTE"
    assert int(flt["value"]) == epoch_ms("2024-03-04T08:59:00.000Z")  # cursor less the lookback
    assert body["sorts"] == ["lastmodifieddate"]
    assert json.loads(pages[0].cursor)["since"] == epoch_ms("2024-03-05T09:00:00.000Z")


@respx.mock
def test_deals_get_their_primary_company_from_the_associations_api():
    respx.post(f"{API}/crm/v3/objects/deals/search").mock(
        return_value=httpx.Response(200, json=fixture("deals_search.json"))
    )
    assoc = respx.post(f"{API}/crm/v4/associations/deals/companies/batch/read").mock(
        return_value=httpx.Response(200, json=fixture("associations_deals_companies.json"))
    )
    (page,) = list(make_provider(read_associations=True).read("deals", None))
    assert body_of(assoc.calls[0].request) == {"inputs": [{"id": i} for i in ("9001", "9002", "9003", "9004")]}
    companies = {r["id"]: r.get("associations", {}).get("companies", {}).get("results") for r in page.records}
    assert companies["9001"][0]["id"] == "5001"  # Primary first, then the other company
    assert [c["id"] for c in companies["9001"]] == ["5001", "5009"]
    assert companies["9004"] is None


@respx.mock
def test_archived_deals_come_from_the_list_endpoint_after_the_search():
    respx.post(f"{API}/crm/v3/objects/deals/search").mock(
        return_value=httpx.Response(200, json=fixture("search_empty.json"))
    )
    listed = respx.get(f"{API}/crm/v3/objects/deals").mock(
        return_value=httpx.Response(200, json=fixture("deals_archived.json"))
    )
    cursor = SearchCursor(since=epoch_ms("2024-03-01T00:00:00.000Z")).dump()
    pages = list(make_provider(read_archived=True).read("deals", cursor))
    assert [r["id"] for p in pages for r in p.records] == ["9005"]
    assert pages[-1].records[0]["archived"] is True
    assert pages[-1].cursor == cursor  # archived pages never move the cursor
    assert listed.calls[0].request.url.params["archived"] == "true"


@respx.mock
def test_archived_before_the_cursor_are_not_yielded_again():
    respx.post(f"{API}/crm/v3/objects/deals/search").mock(
        return_value=httpx.Response(200, json=fixture("search_empty.json"))
    )
    respx.get(f"{API}/crm/v3/objects/deals").mock(return_value=httpx.Response(200, json=fixture("deals_archived.json")))
    cursor = SearchCursor(since=epoch_ms("2024-04-01T00:00:00.000Z")).dump()
    assert [p.records for p in make_provider(read_archived=True).read("deals", cursor)] == []


@respx.mock
def test_25000_results_are_read_past_the_10000_cap_each_exactly_once():
    base = epoch_ms("2024-01-01T00:00:00.000Z")
    # 25,000 deals, five per millisecond: windows end in the middle of a timestamp.
    records = [record(100_000 + n, base + n // 5) for n in range(25_000)]
    fake = FakeSearch(records)
    respx.post(f"{API}/crm/v3/objects/deals/search").mock(side_effect=fake)
    pages = list(make_provider(page_size=200).read("deals", None))
    ids = [r["id"] for p in pages for r in p.records]
    assert len(ids) == 25_000 and len(set(ids)) == 25_000
    windows = [b for b in fake.bodies if b["after"] == "0"]
    assert len(windows) >= 3  # the cap forced new windows
    assert any("10000-result limit" in note for p in pages for note in p.notes)
    cursors = [json.loads(p.cursor)["since"] for p in pages]
    assert cursors == sorted(cursors)  # the cursor only moves forward


@respx.mock
def test_more_than_10000_records_with_one_timestamp_are_walked_by_object_id():
    stamp = epoch_ms("2024-01-01T00:00:00.000Z")
    records = [record(500_000 + n, stamp) for n in range(12_000)] + [record(1, stamp + 5)]
    fake = FakeSearch(records)
    respx.post(f"{API}/crm/v3/objects/deals/search").mock(side_effect=fake)
    pages = list(make_provider(page_size=200).read("deals", None))
    ids = [r["id"] for p in pages for r in p.records]
    assert len(ids) == 12_001 and len(set(ids)) == 12_001
    tie = [b for b in fake.bodies if b["sorts"] == ["hs_object_id"]]
    assert tie and tie[0]["filterGroups"][0]["filters"][0]["operator"] == "EQ"
    # A tie cursor resumes the walk by id, without re-reading the ids before it.
    tie_cursor = next(p.cursor for p in pages if "tie_id" in json.loads(p.cursor))
    fake.bodies.clear()
    resumed = [r["id"] for p in make_provider(page_size=200).read("deals", tie_cursor) for r in p.records]
    assert set(resumed) < set(ids) and "1" in resumed and len(set(resumed)) == len(resumed)


@respx.mock
def test_a_daily_limit_429_propagates_as_deferred_with_the_last_cursor_saved_before():
    respx.post(f"{API}/crm/v3/objects/companies/search").mock(
        side_effect=[
            httpx.Response(200, json=fixture("companies_search_page1.json")),
            httpx.Response(429, headers={"Retry-After": "36000"}, json=fixture("error_429.json")),
        ]
    )
    reader = make_provider().read("companies", None)
    first = next(reader)
    assert first.cursor is not None
    with pytest.raises(RateLimitDeferred):
        next(reader)


def test_a_cursor_that_is_not_ours_is_refused():
    with pytest.raises(ValueError, match="not a HubSpot search cursor"):
        list(make_provider().read("deals", "page=3"))


@respx.mock
def test_crm_invoices_are_searched_by_last_modified_with_their_company_attached():
    search = respx.post(f"{API}/crm/v3/objects/invoices/search").mock(
        return_value=httpx.Response(200, json=fixture("invoices_search.json"))
    )
    assoc = respx.post(f"{API}/crm/v4/associations/invoices/companies/batch/read").mock(
        return_value=httpx.Response(
            200,
            json={
                "status": "COMPLETE",
                "results": [
                    {
                        "from": {"id": "3001"},
                        "to": [
                            {
                                "toObjectId": 5001,
                                "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 180, "label": None}],
                            }
                        ],
                    },
                ],
            },
        )
    )
    (page,) = list(make_provider(read_associations=True).read("invoices", None))

    body = body_of(search.calls[0].request)
    assert body["filterGroups"][0]["filters"][0]["propertyName"] == "hs_lastmodifieddate"
    assert body["sorts"] == ["hs_lastmodifieddate"]
    for needed in (
        "hs_number",
        "hs_currency",
        "hs_amount_billed",
        "hs_balance_due",
        "hs_due_date",
        "hs_invoice_status",
    ):
        assert needed in body["properties"], needed
    assert body_of(assoc.calls[0].request) == {"inputs": [{"id": i} for i in ("3001", "3002", "3003", "3004")]}
    assert [r["id"] for r in page.records] == ["3001", "3002", "3003", "3004"]
    by_id = {r["id"]: r for r in page.records}
    assert by_id["3001"]["associations"]["companies"]["results"] == [{"id": "5001", "type": "invoice_to_company"}]
    assert "associations" not in by_id["3002"]
    assert json.loads(page.cursor) == {"since": epoch_ms("2024-03-09T13:00:00.000Z")}


@respx.mock
def test_the_daily_limit_without_retry_after_defers_the_stream_at_once():
    daily = {**fixture("error_429.json"), "policyName": "DAILY", "message": "You have reached your daily limit."}
    route = respx.post(f"{API}/crm/v3/objects/companies/search").mock(
        side_effect=[
            httpx.Response(200, json=fixture("companies_search_page1.json")),
            httpx.Response(429, json=daily),
        ]
    )
    waits: list[float] = []
    reader = make_provider(waits).read("companies", None)
    assert next(reader).cursor is not None
    with pytest.raises(RateLimitDeferred, match="daily limit is spent"):
        next(reader)
    assert route.call_count == 2 and waits == []  # no retries spent on a limit that lasts until midnight
