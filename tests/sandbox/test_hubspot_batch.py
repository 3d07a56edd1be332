"""The HubSpot face's batch endpoints: update (200, or 207 listing the refused inputs), create
(all or nothing), read by `idProperty`, one rate-limit count per batch, one journal effect per
input; and `effect_counts` counting batches per item."""

from __future__ import annotations

from support.e2e import effect_counts, write_counts
from support.openapi import check_response
from support.sandbox_books import INVOICE_JPY, INVOICE_USD, book
from support.sandbox_harness import check_hubspot_error, effects, hubspot, running, xero

NOTE_TIME = "2024-01-05T10:00:00.000Z"


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _note(key: str, body: str = "Reminder sent") -> dict:
    return {
        "properties": {"hs_timestamp": NOTE_TIME, "hs_note_body": body, "ar_action_key": key},
        "associations": [
            {"to": {"id": "300"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}]}
        ],
    }


def _note_count(sandbox) -> int:
    return len(sandbox.faces["hubspot"].objects["notes"])


def test_batch_update_applies_every_input_and_answers_200():
    with running(book()) as sandbox, hubspot(sandbox) as client:
        answer = client.post(
            "/crm/v3/objects/deals/batch/update",
            json={
                "inputs": [{"id": "300", "properties": {"amount": "5"}}, {"id": "301", "properties": {"amount": "6"}}]
            },
        )
        read = client.get("/crm/v3/objects/deals/301", params={"properties": "amount"}).json()
    assert answer.status_code == 200
    body = answer.json()
    check_response("hubspot", "POST", "/crm/v3/objects/deals/batch/update", body)
    assert body["status"] == "COMPLETE" and "errors" not in body
    assert [(r["id"], r["properties"]["amount"]) for r in body["results"]] == [("300", "5"), ("301", "6")]
    assert read["properties"]["amount"] == "6"
    assert effects(sandbox, "hubspot") == ["updated deals 300: amount; updated deals 301: amount"]


def test_batch_update_with_some_inputs_refused_answers_207_and_applies_the_rest():
    with running(book()) as sandbox, hubspot(sandbox) as client:
        answer = client.post(
            "/crm/v3/objects/deals/batch/update",
            json={
                "inputs": [
                    {"id": "300", "properties": {"amount": "5"}},
                    {"id": "999", "properties": {"amount": "6"}},
                    {"id": "302", "properties": {"hs_object_id": "1"}},
                ]
            },
        )
        kept = client.get("/crm/v3/objects/deals/302", params={"properties": "amount"}).json()
    assert answer.status_code == 207
    body = answer.json()
    check_response("hubspot", "POST", "/crm/v3/objects/deals/batch/update", body, status=207)
    assert [r["id"] for r in body["results"]] == ["300"] and body["results"][0]["properties"]["amount"] == "5"
    assert body["numErrors"] == 2
    missing, read_only = body["errors"]
    assert missing["category"] == "OBJECT_NOT_FOUND" and missing["context"]["ids"] == ["999"]
    assert missing["context"]["id"] == ["999"] and missing["status"] == "error"
    assert read_only["category"] == "VALIDATION_ERROR" and read_only["context"]["ids"] == ["302"]
    assert kept["properties"]["amount"] == "1002"
    [effect] = effects(sandbox, "hubspot")
    parts = effect.split("; ")
    assert parts[0] == "updated deals 300: amount" and [p.split(":")[0] for p in parts[1:]] == ["rejected"] * 2


def test_batch_update_with_every_input_refused_is_a_207_without_results():
    with running(book()) as sandbox, hubspot(sandbox) as client:
        answer = client.post(
            "/crm/v3/objects/deals/batch/update", json={"inputs": [{"id": "998", "properties": {"amount": "1"}}]}
        )
        twice = client.post(
            "/crm/v3/objects/deals/batch/update",
            json={
                "inputs": [{"id": "300", "properties": {"amount": "1"}}, {"id": "300", "properties": {"amount": "2"}}]
            },
        )
    assert answer.status_code == 207
    assert answer.json()["results"] == [] and answer.json()["numErrors"] == 1
    assert twice.status_code == 400 and "Duplicate IDs" in twice.json()["message"]


def test_more_than_100_inputs_are_refused_and_nothing_is_done():
    inputs = [{"id": "300", "properties": {"amount": str(i)}} for i in range(101)]
    with running(book()) as sandbox, hubspot(sandbox) as client:
        update = client.post("/crm/v3/objects/deals/batch/update", json={"inputs": inputs})
        create = client.post(
            "/crm/v3/objects/notes/batch/create", json={"inputs": [_note(f"k{i}") for i in range(101)]}
        )
        amount = client.get("/crm/v3/objects/deals/300", params={"properties": "amount"}).json()["properties"]["amount"]
        notes = _note_count(sandbox)
    for refused in (update, create):
        assert refused.status_code == 400 and refused.json()["category"] == "VALIDATION_ERROR"
        check_hubspot_error(refused.json())
    assert amount == "1000" and notes == 0


def test_batch_create_makes_every_note_and_journals_each():
    with running(book(), search_delay_s=30) as sandbox, hubspot(sandbox) as client:
        answer = client.post("/crm/v3/objects/notes/batch/create", json={"inputs": [_note("k1"), _note("k2")]})
        by_key = client.get("/crm/v3/objects/notes/k2", params={"idProperty": "ar_action_key"})
        searched = client.post("/crm/v3/objects/notes/search", json={"filterGroups": [], "limit": 10}).json()
        links = client.post(
            "/crm/v4/associations/notes/deals/batch/read", json={"inputs": [{"id": by_key.json()["id"]}]}
        )
    assert answer.status_code == 201
    body = answer.json()
    check_response("hubspot", "POST", "/crm/v3/objects/notes/batch/create", body, status=201)
    ids = [r["id"] for r in body["results"]]
    assert [r["properties"]["ar_action_key"] for r in body["results"]] == ["k1", "k2"]
    assert by_key.status_code == 200 and by_key.json()["id"] == ids[1]
    assert searched["total"] == 0  # the search index trails the creates, as after single ones
    assert links.json()["results"][0]["to"][0]["toObjectId"] == 300
    assert effects(sandbox, "hubspot") == [f"created note {ids[0]}; created note {ids[1]}"]


def test_batch_create_repeating_a_unique_key_is_refused_whole_and_creates_nothing():
    with running(book()) as sandbox, hubspot(sandbox) as client:
        first = client.post(
            "/crm/v3/objects/tasks", json={"properties": {"hs_timestamp": NOTE_TIME, "ar_action_key": "k1"}}
        )
        before = len(sandbox.faces["hubspot"].objects["tasks"])
        tasks = [{"properties": {"hs_timestamp": NOTE_TIME, "ar_action_key": key}} for key in ("k0", "k1", "k2")]
        existing = client.post("/crm/v3/objects/tasks/batch/create", json={"inputs": tasks})
        same_twice = client.post("/crm/v3/objects/tasks/batch/create", json={"inputs": [tasks[0], tasks[0]]})
        after = len(sandbox.faces["hubspot"].objects["tasks"])
    assert existing.status_code == 409
    assert existing.json()["category"] == "CONFLICT"
    assert f"Existing ID: {first.json()['id']}" in existing.json()["message"]
    check_hubspot_error(existing.json())
    assert same_twice.status_code == 400 and same_twice.json()["category"] == "VALIDATION_ERROR"
    assert after == before == 1
    assert [e.split(":")[0] for e in effects(sandbox, "hubspot")[1:]] == ["rejected", "rejected"]


def test_batch_read_by_id_property_finds_and_names_the_missing():
    with running(book()) as sandbox, hubspot(sandbox) as client:
        made = client.post("/crm/v3/objects/notes/batch/create", json={"inputs": [_note("k1"), _note("k2")]}).json()
        ask = {"idProperty": "ar_action_key", "properties": ["ar_action_key"], "propertiesWithHistory": []}
        found = client.post("/crm/v3/objects/notes/batch/read", json={**ask, "inputs": [{"id": "k1"}, {"id": "k2"}]})
        partly = client.post("/crm/v3/objects/notes/batch/read", json={**ask, "inputs": [{"id": "k2"}, {"id": "k9"}]})
        by_id = client.post("/crm/v3/objects/deals/batch/read", json={"properties": [], "inputs": [{"id": "300"}]})
        not_unique = client.post(
            "/crm/v3/objects/notes/batch/read", json={**ask, "idProperty": "hs_note_body", "inputs": [{"id": "x"}]}
        )
        journal = len(sandbox.journal)
    assert found.status_code == 200
    check_response("hubspot", "POST", "/crm/v3/objects/notes/batch/read", found.json())
    assert [r["id"] for r in found.json()["results"]] == [r["id"] for r in made["results"]]
    assert found.json()["results"][0]["properties"]["ar_action_key"] == "k1"
    assert partly.status_code == 207
    check_response("hubspot", "POST", "/crm/v3/objects/notes/batch/read", partly.json(), status=207)
    assert [r["properties"]["ar_action_key"] for r in partly.json()["results"]] == ["k2"]
    [error] = partly.json()["errors"]
    assert error["category"] == "OBJECT_NOT_FOUND" and error["context"]["ids"] == ["k9"]
    assert by_id.status_code == 200 and by_id.json()["results"][0]["id"] == "300"
    assert not_unique.status_code == 400
    assert journal == 1  # reads are not journalled; the create is


def test_a_batch_counts_once_against_the_rate_limit():
    clock = FakeClock()
    with running(book(), limits="documented", clock=clock) as sandbox, hubspot(sandbox) as client:
        created = client.post(
            "/crm/v3/objects/notes/batch/create", json={"inputs": [_note(f"k{i}") for i in range(100)]}
        )
        updated = client.post(
            "/crm/v3/objects/deals/batch/update", json={"inputs": [{"id": "300", "properties": {"amount": "1"}}]}
        )
        reads = [client.get("/crm/v3/objects/deals/300").status_code for _ in range(188)]
        over = client.get("/crm/v3/objects/deals/300")
    assert created.status_code == 201 and len(created.json()["results"]) == 100
    assert created.headers["X-HubSpot-RateLimit-Remaining"] == "189"
    assert updated.headers["X-HubSpot-RateLimit-Remaining"] == "188"
    assert set(reads) == {200}  # 2 batches + 188 reads = 190
    assert over.status_code == 429


def test_effect_counts_count_batches_per_item_and_replays_not_at_all():
    with running(book()) as sandbox, hubspot(sandbox) as client, xero(sandbox) as ledger:
        face = sandbox.faces["hubspot"]
        with sandbox.lock:  # a portal whose key is not unique: a second batch makes k1 again
            face.define_property("notes", {**face.properties["notes"]["ar_action_key"], "hasUniqueValue": False})
        client.post("/crm/v3/objects/notes/batch/create", json={"inputs": [_note("k1"), _note("k2")]})
        client.post("/crm/v3/objects/notes/batch/create", json={"inputs": [_note("k1")]})
        client.post(
            "/crm/v3/objects/deals/batch/update", json={"inputs": [{"id": "300", "properties": {"amount": "1"}}]}
        )
        payments = {
            "Payments": [
                {
                    "Invoice": {"InvoiceID": invoice},
                    "Account": {"Code": "090"},
                    "Amount": "10",
                    "Reference": "r1",
                    "Date": "2024-01-05",
                }
                for invoice in (INVOICE_USD, INVOICE_JPY)
            ]
        }
        for key in ("batch-a", "batch-a", "batch-b"):  # sent, replayed, sent again under a new key
            answer = ledger.put("/Payments", json=payments, headers={"Idempotency-Key": key})
            assert answer.status_code == 200, answer.text
        journal = list(sandbox.journal)
    counts = effect_counts(journal)
    assert counts["hubspot POST /crm/v3/objects/notes k1"] == 2
    assert counts["hubspot POST /crm/v3/objects/notes k2"] == 1
    assert counts[f"xero PUT /Payments {INVOICE_USD} r1 10"] == 2  # the replay counts nothing
    assert counts[f"xero PUT /Payments {INVOICE_JPY} r1 10"] == 2
    assert not [key for key in counts if "batch" in key]
    writes = write_counts(journal)
    assert writes["hubspot PATCH /crm/v3/objects/deals/300 "] == 1
    assert writes["hubspot POST /crm/v3/objects/notes k1"] == 2
