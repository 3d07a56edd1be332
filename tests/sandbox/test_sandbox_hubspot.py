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


# Unique values, reads by idProperty, the properties API and the search index's delay -------


def _note(key, company="101", body="Reminder INV-0001"):
    return {
        "properties": {"hs_timestamp": "2024-03-10T10:00:00.000Z", "hs_note_body": body, "ar_action_key": key},
        "associations": [
            {"to": {"id": company}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 190}]}
        ],
    }


def _key_search(client, object_type, key):
    filters = [{"propertyName": "ar_action_key", "operator": "EQ", "value": key}]
    return _search(client, object_type, filters, sorts=["hs_object_id"], properties=["ar_action_key"]).json()


def test_the_portal_starts_with_the_action_key_property_requiring_unique_values():
    with running(book()) as sandbox, hubspot(sandbox) as client:
        notes = client.get("/crm/v3/properties/notes/ar_action_key")
        tasks = client.get("/crm/v3/properties/tasks/ar_action_key").json()
        missing = client.get("/crm/v3/properties/deals/ar_action_key")
        listed = client.get("/crm/v3/properties/notes").json()
    assert notes.status_code == 200
    for definition in (notes.json(), tasks):
        assert definition["hasUniqueValue"] is True
        assert (definition["type"], definition["fieldType"], definition["groupName"]) == ("string", "text", "ar_sync")
    assert [p["name"] for p in listed["results"]] == ["ar_action_key"]
    assert missing.status_code == 404
    check_hubspot_error(missing.json())


def test_a_second_note_with_the_same_key_is_refused_with_the_existing_id():
    with running(book()) as sandbox, hubspot(sandbox) as client:
        first = client.post("/crm/v3/objects/notes", json=_note("ar-1")).json()
        again = client.post("/crm/v3/objects/notes", json=_note("ar-1", body="other words"))
        other = client.post("/crm/v3/objects/notes", json=_note("ar-2"))
    assert again.status_code == 409
    check_hubspot_error(again.json())
    assert again.json()["category"] == "CONFLICT"
    assert again.json()["message"] == f"Note already exists. Existing ID: {first['id']}"
    assert again.json()["errors"][0]["in"] == "ar_action_key"
    assert other.status_code == 201
    assert len(sandbox.state.hubspot["notes"]) == 2
    assert effects(sandbox) == [
        f"created note {first['id']}",
        f"rejected: Note already exists. Existing ID: {first['id']}",
        f"created note {other.json()['id']}",
    ]


def test_a_patch_cannot_take_a_key_another_task_holds():
    task = {"properties": {"hs_timestamp": "2024-03-10T10:00:00.000Z", "hs_task_subject": "Call", "ar_action_key": ""}}
    with running(book()) as sandbox, hubspot(sandbox) as client:
        one = client.post("/crm/v3/objects/tasks", json={"properties": {**task["properties"], "ar_action_key": "k1"}})
        two = client.post("/crm/v3/objects/tasks", json={"properties": {**task["properties"], "ar_action_key": "k2"}})
        taken = client.patch(f"/crm/v3/objects/tasks/{two.json()['id']}", json={"properties": {"ar_action_key": "k1"}})
        moved = client.patch(f"/crm/v3/objects/tasks/{two.json()['id']}", json={"properties": {"ar_action_key": "k3"}})
        freed = client.post("/crm/v3/objects/tasks", json={"properties": {**task["properties"], "ar_action_key": "k2"}})
    assert taken.status_code == 409 and f"Existing ID: {one.json()['id']}" in taken.json()["message"]
    assert moved.status_code == 200 and freed.status_code == 201  # k2 was given up


def test_an_object_is_read_by_a_unique_property_in_the_documents_shape():
    from support.openapi import check_response

    with running(book()) as sandbox, hubspot(sandbox) as client:
        created = client.post("/crm/v3/objects/notes", json=_note("ar-77")).json()
        query = {"idProperty": "ar_action_key", "properties": "ar_action_key,hs_note_body"}
        found = client.get("/crm/v3/objects/notes/ar-77", params=query)
        nobody = client.get("/crm/v3/objects/notes/ar-78", params=query)
        not_unique = client.get("/crm/v3/objects/notes/hello", params={"idProperty": "hs_note_body"})
    assert found.status_code == 200
    check_response("hubspot", "GET", "/crm/v3/objects/notes/ar-77", found.json(), query=query)
    assert found.json()["id"] == created["id"]
    assert found.json()["properties"]["ar_action_key"] == "ar-77"
    assert nobody.status_code == 404 and not_unique.status_code == 400
    for refused in (nobody, not_unique):
        check_hubspot_error(refused.json())


def test_properties_and_groups_are_created_like_hubspot_does():
    with running(book()) as sandbox, hubspot(sandbox) as client:
        spec = {"name": "x_key", "label": "X key", "type": "string", "fieldType": "text", "groupName": "x_group"}
        no_group = client.post("/crm/v3/properties/notes", json={**spec, "hasUniqueValue": True})
        group = client.post("/crm/v3/properties/notes/groups", json={"name": "x_group", "label": "X"})
        group_again = client.post("/crm/v3/properties/notes/groups", json={"name": "x_group", "label": "X"})
        made = client.post("/crm/v3/properties/notes", json={**spec, "hasUniqueValue": True})
        made_again = client.post("/crm/v3/properties/notes", json={**spec, "hasUniqueValue": True})
        unique_date = client.post(
            "/crm/v3/properties/notes",
            json={**spec, "name": "x_when", "type": "date", "fieldType": "date", "hasUniqueValue": True},
        )
        incomplete = client.post("/crm/v3/properties/notes", json={"name": "x_half"})
        archived = client.delete("/crm/v3/properties/notes/ar_action_key")
        archived_again = client.delete("/crm/v3/properties/notes/ar_action_key")
        free_again = [
            client.post("/crm/v3/objects/notes", json={"properties": {"hs_timestamp": "1", "ar_action_key": "b"}})
            for _ in range(2)
        ]
        first = client.post("/crm/v3/objects/notes", json={"properties": {"hs_timestamp": "1", "x_key": "a"}})
        second = client.post("/crm/v3/objects/notes", json={"properties": {"hs_timestamp": "1", "x_key": "a"}})
    assert no_group.status_code == 400 and incomplete.status_code == 400 and unique_date.status_code == 400
    assert group.status_code == 201 and group_again.status_code == 409
    assert made.status_code == 201 and made.json()["hasUniqueValue"] is True and made_again.status_code == 409
    for refused in (no_group, group_again, made_again, unique_date, incomplete):
        check_hubspot_error(refused.json())
    assert first.status_code == 201 and second.status_code == 409
    assert "created property notes.x_key (unique values)" in effects(sandbox)
    assert archived.status_code == 204 and archived_again.status_code == 404
    assert [r.status_code for r in free_again] == [201, 201]  # an archived property no longer binds


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_search_sees_a_created_note_only_after_the_search_delay():
    clock = _Clock(float(T0))
    with running(book(), search_delay_s=30, clock=clock) as sandbox, hubspot(sandbox) as client:
        created = client.post("/crm/v3/objects/notes", json=_note("ar-5")).json()
        at_once = _key_search(client, "notes", "ar-5")
        by_key = client.get("/crm/v3/objects/notes/ar-5", params={"idProperty": "ar_action_key"})
        by_id = client.get(f"/crm/v3/objects/notes/{created['id']}")
        listed = client.get("/crm/v3/objects/notes").json()
        clock.now += 29.9
        still = _key_search(client, "notes", "ar-5")
        clock.now += 0.1
        later = _key_search(client, "notes", "ar-5")
    assert at_once == {"total": 0, "results": []} and still["total"] == 0
    assert by_key.status_code == 200 and by_id.status_code == 200
    assert [r["id"] for r in listed["results"]] == [created["id"]]
    assert [r["id"] for r in later["results"]] == [created["id"]] and later["total"] == 1


def test_without_a_search_delay_a_created_note_is_searchable_at_once():
    with running(book()) as sandbox, hubspot(sandbox) as client:
        client.post("/crm/v3/objects/notes", json=_note("ar-6"))
        assert _key_search(client, "notes", "ar-6")["total"] == 1


def test_a_negative_search_delay_is_refused():
    from connector.sandbox import Sandbox

    with pytest.raises(ValueError, match="search_delay_s"):
        Sandbox({}, search_delay_s=-1)


def _adapter(sandbox, **settings):
    from connector.http import RetryPolicy

    return HubSpotProvider(
        HubSpotSettings(base_url=sandbox.url("hubspot"), access_token="pat-na1-sandbox", **settings),
        connection="crm",
        rate_limiter=None,
        retry=RetryPolicy(max_attempts=3, backoff_initial=0.0, backoff_max=0.0, jitter=0.0),
    )


def _note_action(company="101"):
    from connector.model import Action

    return Action(connection="crm", kind="create_note", payload={"company_id": company, "body": "INV-0001 is late"})


def test_the_adapter_on_a_fresh_portal_creates_the_key_property_then_never_makes_a_second_note():
    """A portal without the key property, an index 30 s behind: the adapter creates the
    property (unique values, in its group) at first use; a second process replaying the same
    action right away is refused by HubSpot's unique check and gets the first note back."""
    with running(book(), search_delay_s=30) as sandbox:
        face = sandbox.faces["hubspot"]
        for object_type in ("notes", "tasks"):
            assert face.archive_property(object_type, "ar_action_key")
            del face.property_groups[object_type]["ar_sync"]
        first = _adapter(sandbox).apply(_note_action())
        again = _adapter(sandbox).apply(_note_action())
        definition = sandbox.faces["hubspot"].properties["notes"]["ar_action_key"]
    assert not first.replayed and again.replayed and again.remote_id == first.remote_id
    assert len(sandbox.state.hubspot["notes"]) == 1
    assert definition["hasUniqueValue"] is True and definition["groupName"] == "ar_sync"
    assert [e for e in effects(sandbox) if not e.startswith("rejected")] == [
        "created property group notes.ar_sync",
        "created property notes.ar_action_key (unique values)",
        f"created note {first.remote_id}",
    ]


def test_the_search_fallback_against_a_lagging_index_makes_the_note_twice():
    """The old way, for comparison (action_key_setup = "search", the key property not
    unique): the replay's search does not see the note made a moment ago."""
    with running(book(), search_delay_s=30) as sandbox:
        preset = sandbox.faces["hubspot"].properties["notes"]["ar_action_key"]
        sandbox.faces["hubspot"].define_property("notes", {**preset, "hasUniqueValue": False})
        _adapter(sandbox, action_key_setup="search").apply(_note_action())
        _adapter(sandbox, action_key_setup="search").apply(_note_action())
    assert len(sandbox.state.hubspot["notes"]) == 2


def test_sandbox_serve_passes_search_delay(monkeypatch):
    from click.testing import CliRunner

    from connector.cli import demo_commands

    seen = {}
    monkeypatch.setattr(demo_commands, "serve", lambda *args, **kw: seen.update(kw))
    ok = CliRunner().invoke(demo_commands.sandbox_group, ["serve", "--search-delay", "30"])
    negative = CliRunner().invoke(demo_commands.sandbox_group, ["serve", "--search-delay", "-1"])
    assert ok.exit_code == 0, ok.output
    assert seen["search_delay_s"] == 30.0
    assert negative.exit_code != 0 and "--search-delay cannot be negative" in str(negative.exception)
