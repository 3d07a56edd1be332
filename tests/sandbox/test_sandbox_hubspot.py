"""The HubSpot face: search filters and sorts, paging, the 10,000 ceiling, writes."""

from __future__ import annotations

import pytest

from connector.providers.hubspot.provider import HubSpotProvider
from connector.providers.hubspot.settings import HubSpotSettings
from support.sandbox_books import T0, book, hubspot_object
from support.sandbox_harness import check_hubspot_error, effects, hubspot, running


def _search(
    client, object_type, filters, *, sorts=("hs_lastmodifieddate",), after="0", limit=100, properties=("dealname",)
):
    body = {
        "filterGroups": [{"filters": list(filters)}] if filters else [],
        "sorts": list(sorts),
        "properties": list(properties),
        "limit": limit,
        "after": after,
    }
    return client.post(f"/crm/v3/objects/{object_type}/search", json=body)


def test_filters_compare_dates_numbers_and_tokens():
    with running(book()) as sandbox, hubspot(sandbox) as client:
        since = (T0 + 101) * 1000
        newer = _search(
            client, "deals", [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(since)}]
        ).json()
        amount = _search(client, "deals", [{"propertyName": "amount", "operator": "LT", "value": "1001.5"}]).json()
        token = _search(
            client,
            "deals",
            [
                {"propertyName": "dealname", "operator": "CONTAINS_TOKEN", "value": "deal"},
                {"propertyName": "ar_invoice_number", "operator": "EQ", "value": "inv-0002"},
            ],
        ).json()
        has = _search(client, "deals", [{"propertyName": "closedate", "operator": "HAS_PROPERTY"}]).json()
        neq = _search(client, "deals", [{"propertyName": "dealname", "operator": "NEQ", "value": "Deal 1"}]).json()
    assert [r["id"] for r in newer["results"]] == ["301", "302"] and newer["total"] == 2
    assert [r["id"] for r in amount["results"]] == ["300", "301"]
    assert [r["id"] for r in token["results"]] == ["302"]
    assert has["total"] == 0 and has["results"] == []
    assert [r["id"] for r in neq["results"]] == ["300", "302"]


def test_sorts_in_the_documents_form_and_the_guides_form():
    with running(book()) as sandbox, hubspot(sandbox) as client:
        strings = _search(client, "deals", [], sorts=["-hs_lastmodifieddate"]).json()
        objects = _search(
            client, "deals", [], sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}]
        ).json()
    assert [r["id"] for r in strings["results"]] == ["302", "301", "300"]
    assert objects["results"] == strings["results"]


def test_after_pages_through_every_result_and_ends():
    deals = [hubspot_object(1000 + i, {"dealname": f"D{i}"}, modified=T0 + i // 3) for i in range(25)]
    with running({"hubspot": {"deals": deals}}) as sandbox, hubspot(sandbox) as client:
        ids, after = [], "0"
        while True:
            page = _search(client, "deals", [], after=after, limit=10).json()
            ids += [r["id"] for r in page["results"]]
            if "paging" not in page:
                break
            after = page["paging"]["next"]["after"]
    assert ids == [str(1000 + i) for i in range(25)]


def test_search_stops_at_ten_thousand_results_like_hubspot():
    deals = [hubspot_object(5000 + i, {"dealname": f"D{i}"}, modified=T0 + i) for i in range(10_050)]
    with running({"hubspot": {"deals": deals}}) as sandbox, hubspot(sandbox) as client:
        last = _search(client, "deals", [], after="9800", limit=200).json()
        beyond = _search(client, "deals", [], after="10000", limit=200)
    assert last["total"] == 10_050 and len(last["results"]) == 200
    assert last["paging"]["next"]["after"] == "10000"
    assert beyond.status_code == 400
    check_hubspot_error(beyond.json())
    assert beyond.json()["category"] == "VALIDATION_ERROR"


def test_a_page_never_reaches_past_the_ten_thousandth_result():
    deals = [hubspot_object(5000 + i, {"dealname": f"D{i}"}, modified=T0 + i) for i in range(10_050)]
    with running({"hubspot": {"deals": deals}}) as sandbox, hubspot(sandbox) as client:
        straddling = _search(client, "deals", [], after="9990", limit=30).json()
        beyond = _search(client, "deals", [], after=straddling["paging"]["next"]["after"], limit=30)
    assert [r["id"] for r in straddling["results"]] == [str(5000 + i) for i in range(9990, 10_000)]
    assert straddling["total"] == 10_050
    assert straddling["paging"]["next"]["after"] == "10000"  # the ceiling, not the end: a new query is needed
    assert beyond.status_code == 400


@pytest.mark.parametrize("spread", ["seven per timestamp", "one timestamp for all"])
def test_the_adapter_reads_every_record_of_a_book_past_the_ceiling_exactly_once(spread):
    """The real adapter's search windows against the sandbox: 10,500 companies, more than one
    query may return, each read once (by time windows, or by object id when they all share
    one modified date)."""
    step = 7 if spread == "seven per timestamp" else 100_000
    companies = [hubspot_object(20_000 + i, {"name": f"Company {i}"}, modified=T0 + i // step) for i in range(10_500)]
    with running({"hubspot": {"companies": companies}}) as sandbox:
        settings = HubSpotSettings(base_url=sandbox.url("hubspot"), access_token="pat-na1-sandbox", page_size=200)
        provider = HubSpotProvider(settings, connection="crm", rate_limiter=None)
        try:
            pages = list(provider.read("companies", None))
        finally:
            provider.close()
    ids = [record["id"] for page in pages for record in page.records]
    assert len(ids) == len(set(ids)) == 10_500
    assert set(ids) == {c["id"] for c in companies}
    assert any("10000-result limit" in note for page in pages for note in page.notes)


def test_an_error_carries_the_correlation_id_of_its_header():
    with running(book()) as sandbox, hubspot(sandbox) as client:
        missing = client.get("/crm/v3/objects/deals/999999")
        refused = _search(client, "deals", [], limit=500)
    with running(book(), limits="documented", clock=lambda: float(T0)) as sandbox, hubspot(sandbox) as client:
        search = {"filterGroups": [], "sorts": ["hs_object_id"], "properties": [], "limit": 1, "after": "0"}
        too_many = [client.post("/crm/v3/objects/deals/search", json=search) for _ in range(5)][-1]  # 4 per second
    for answer in (missing, refused, too_many):
        assert answer.status_code in (404, 400, 429)
        assert answer.json()["correlationId"] == answer.headers["X-HubSpot-Correlation-Id"]
    assert too_many.status_code == 429


def test_limit_above_two_hundred_is_refused():
    with running(book()) as sandbox, hubspot(sandbox) as client:
        assert _search(client, "deals", [], limit=201).status_code == 400


def test_a_patch_bumps_the_modified_date_so_incremental_search_sees_it():
    with running(book()) as sandbox, hubspot(sandbox) as client:
        client.patch("/crm/v3/objects/deals/300", json={"properties": {"ar_amount_outstanding": "12.50"}})
        since = int((sandbox.clock() - 60) * 1000)
        changed = _search(
            client,
            "deals",
            [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(since)}],
            properties=["ar_amount_outstanding"],
        ).json()
    assert [r["id"] for r in changed["results"]] == ["300"]
    assert changed["results"][0]["properties"]["ar_amount_outstanding"] == "12.50"
    assert effects(sandbox) == ["updated deals 300: ar_amount_outstanding"]


def test_a_created_note_is_found_afterwards_with_its_association():
    with running(book()) as sandbox, hubspot(sandbox) as client:
        created = client.post(
            "/crm/v3/objects/notes",
            json={
                "properties": {
                    "hs_timestamp": "2024-03-10T10:00:00.000Z",
                    "hs_note_body": "Reminder INV-0001",
                    "ar_action_key": "ar-77",
                },
                "associations": [
                    {
                        "to": {"id": "101"},
                        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 190}],
                    }
                ],
            },
        ).json()
        found = _search(
            client,
            "notes",
            [{"propertyName": "ar_action_key", "operator": "EQ", "value": "ar-77"}],
            properties=["hs_note_body"],
        ).json()
        links = client.post(
            "/crm/v4/associations/notes/companies/batch/read", json={"inputs": [{"id": created["id"]}]}
        ).json()
    assert [r["id"] for r in found["results"]] == [created["id"]]
    assert links["results"][0]["to"][0]["toObjectId"] == 101
    assert effects(sandbox) == [f"created note {created['id']}"]


def test_deal_associations_from_the_data_are_readable_in_v4():
    with running(book()) as sandbox, hubspot(sandbox) as client:
        links = client.post(
            "/crm/v4/associations/deals/companies/batch/read", json={"inputs": [{"id": "300"}, {"id": "301"}]}
        ).json()
    assert [r["from"]["id"] for r in links["results"]] == ["300", "301"]
    assert links["results"][0]["to"][0]["associationTypes"][0]["typeId"] == 341


def test_list_pages_and_archived():
    deals = [hubspot_object(700 + i, {"dealname": f"D{i}"}, modified=T0) for i in range(5)]
    deals[4]["archived"] = True
    with running({"hubspot": {"deals": deals}}) as sandbox, hubspot(sandbox) as client:
        first = client.get("/crm/v3/objects/deals", params={"limit": 3}).json()
        second = client.get(
            "/crm/v3/objects/deals", params={"limit": 3, "after": first["paging"]["next"]["after"]}
        ).json()
        archived = client.get("/crm/v3/objects/deals", params={"archived": "true"}).json()
    assert [r["id"] for r in first["results"] + second["results"]] == ["700", "701", "702", "703"]
    assert "paging" not in second
    assert [r["id"] for r in archived["results"]] == ["704"]


def test_a_bearer_is_required():
    import httpx

    with running(book()) as sandbox:
        answer = httpx.post(f"{sandbox.url('hubspot')}/crm/v3/objects/deals/search", json={})
    assert answer.status_code == 401
    check_hubspot_error(answer.json())
