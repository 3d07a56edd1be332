"""HubSpot batch writes: batch/update per object type with 207 partial answers, and notes or
tasks made once per action key through batch/read by the unique key property and batch/create."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from connector.errors import InvalidRequestError, NotFoundError
from connector.model import Action, ObjectType, Ref
from connector.providers.base import ActionResult
from support.hubspot_fakes import API, make_provider

KEY = "ar_action_key"


def update(object_type: ObjectType, remote_id: str, **properties: Any) -> Action:
    return Action(
        connection="crm",
        kind="update_properties",
        target=Ref(system="hubspot", object_type=object_type, remote_id=remote_id),
        payload={"properties": properties},
    )


def note(text: str, company: str = "501") -> Action:
    return Action(
        connection="crm",
        kind="create_note",
        payload={"body": text, "company_id": company, "timestamp": "2026-02-03T10:00:00Z"},
    )


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


@pytest.fixture
def hubspot():
    made = make_provider(action_key_setup="assume")
    yield made
    made.close()


def test_update_one_request_per_object_type_and_a_second_for_a_repeated_id(hubspot):
    actions = [
        update("deal", "1", amount_outstanding="10.00"),
        update("invoice", "7", hs_custom="a"),
        update("deal", "2", amount_outstanding="0"),
        update("deal", "1", amount_outstanding="5.00"),  # the same deal again: a later request
    ]
    with respx.mock(assert_all_called=True) as router:
        deals = router.post(f"{API}/crm/v3/objects/deals/batch/update").mock(
            side_effect=lambda request: httpx.Response(
                200, json={"status": "COMPLETE", "results": [{"id": i["id"]} for i in body(request)["inputs"]]}
            )
        )
        invoices = router.post(f"{API}/crm/v3/objects/invoices/batch/update").mock(
            return_value=httpx.Response(200, json={"status": "COMPLETE", "results": [{"id": "7"}]})
        )
        results = hubspot.apply_batch(actions, "batch-1")

    assert [[i["id"] for i in body(c.request)["inputs"]] for c in deals.calls] == [["1", "2"], ["1"]]
    assert invoices.call_count == 1
    first_deal = body(deals.calls[0].request)["inputs"][0]
    assert first_deal["properties"] == {hubspot.settings.amount_outstanding_property: "10.00"}
    assert [r.remote_id for r in results] == ["1", "7", "2", "1"]


def test_update_207_refuses_the_inputs_its_errors_name(hubspot):
    actions = [
        update("deal", "1", x="1"),
        update("deal", "2", x="2"),
        update("deal", "3", x="3"),
        update("payment", "9", x="9"),
    ]
    multi = {
        "status": "COMPLETE",
        "results": [{"id": "1"}],
        "numErrors": 2,
        "errors": [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": "Could not get some DEAL objects",
                "context": {"ids": ["2"]},
            },
            {
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": "Property x is read-only",
                "context": {"id": ["3"]},
            },
        ],
    }
    with respx.mock(assert_all_called=True) as router:
        router.post(f"{API}/crm/v3/objects/deals/batch/update").mock(return_value=httpx.Response(207, json=multi))
        results = hubspot.apply_batch(actions, "batch-2")

    assert isinstance(results[0], ActionResult)
    assert isinstance(results[1], NotFoundError)
    assert isinstance(results[2], InvalidRequestError) and "read-only" in results[2].message
    assert isinstance(results[3], InvalidRequestError)  # not a target an update can have: never sent


class Notes:
    """Notes HubSpot-side: batch/read by the unique key property (archived ones only with
    archived=true), batch/create that refuses the whole batch (409) when a key exists."""

    def __init__(self, router: respx.Router) -> None:
        self.live: dict[str, dict[str, Any]] = {}
        self.archived: dict[str, dict[str, Any]] = {}
        self.reads: list[httpx.Request] = []
        self.creates: list[list[str]] = []
        self.made_behind_our_back: list[str] = []  # created just before our next create arrives
        router.post(f"{API}/crm/v3/objects/notes/batch/read").mock(side_effect=self.read)
        router.post(f"{API}/crm/v3/objects/notes/batch/create").mock(side_effect=self.create)

    def make(self, key: str, archived: bool = False) -> dict[str, Any]:
        made = {"id": str(900 + len(self.live) + len(self.archived)), "properties": {KEY: key}}
        (self.archived if archived else self.live)[key] = made
        return made

    def read(self, request: httpx.Request) -> httpx.Response:
        self.reads.append(request)
        asked = body(request)
        assert asked["idProperty"] == KEY
        held = self.archived if request.url.params.get("archived") == "true" else self.live
        keys = [i["id"] for i in asked["inputs"]]
        found = [held[k] for k in keys if k in held]
        missing = [k for k in keys if k not in held]
        if not missing:
            return httpx.Response(200, json={"status": "COMPLETE", "results": found})
        error = {"status": "error", "category": "OBJECT_NOT_FOUND", "message": "not found", "context": {"ids": missing}}
        return httpx.Response(207, json={"status": "COMPLETE", "results": found, "errors": [error]})

    def create(self, request: httpx.Request) -> httpx.Response:
        for key in self.made_behind_our_back:
            self.make(key)
        self.made_behind_our_back = []
        keys = [i["properties"][KEY] for i in body(request)["inputs"]]
        self.creates.append(keys)
        if any(k in self.live or k in self.archived for k in keys):
            return httpx.Response(409, json={"status": "error", "category": "CONFLICT", "message": "already exists"})
        return httpx.Response(201, json={"status": "COMPLETE", "results": [self.make(k) for k in keys]})


def test_create_found_keys_are_replays_and_the_rest_made_in_one_request(hubspot):
    actions = [note("a"), note("b"), note("c")]
    with respx.mock(assert_all_called=True) as router:
        notes = Notes(router)
        notes.make(actions[0].idempotency_key)
        notes.make(actions[2].idempotency_key, archived=True)
        results = hubspot.apply_batch(actions, "batch-3")

    assert [r.replayed for r in results] == [True, False, True]
    assert notes.creates == [[actions[1].idempotency_key]]
    assert len(notes.reads) == 2 and notes.reads[1].url.params["archived"] == "true"
    assert body(notes.reads[1])["inputs"] == [{"id": actions[1].idempotency_key}, {"id": actions[2].idempotency_key}]


def test_create_refused_whole_by_a_key_made_meanwhile_reads_again_and_creates_the_rest(hubspot):
    actions = [note("a"), note("b"), note("c")]
    with respx.mock(assert_all_called=True) as router:
        notes = Notes(router)
        notes.made_behind_our_back = [actions[1].idempotency_key]  # a lost earlier request made it
        results = hubspot.apply_batch(actions, "batch-4")

    keys = [a.idempotency_key for a in actions]
    assert notes.creates == [keys, [keys[0], keys[2]]]
    assert [r.replayed for r in results] == [False, True, False]
    assert len({r.remote_id for r in results}) == 3


def test_create_refused_for_another_reason_raises(hubspot):
    with respx.mock(assert_all_called=True) as router:
        router.post(f"{API}/crm/v3/objects/notes/batch/read").mock(
            return_value=httpx.Response(200, json={"status": "COMPLETE", "results": []})
        )
        router.post(f"{API}/crm/v3/objects/notes/batch/create").mock(
            return_value=httpx.Response(400, json={"status": "error", "category": "VALIDATION_ERROR", "message": "bad"})
        )
        with pytest.raises(InvalidRequestError):
            hubspot.apply_batch([note("a")], "batch-5")


def test_create_207_maps_its_errors_to_the_refused_inputs(hubspot):
    actions = [note("a"), note("b")]
    made = {"id": "77", "properties": {KEY: actions[0].idempotency_key}}
    error = {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": f"hs_note_body too long for {actions[1].idempotency_key}",
        "context": {},
    }
    with respx.mock(assert_all_called=True) as router:
        router.post(f"{API}/crm/v3/objects/notes/batch/read").mock(
            return_value=httpx.Response(200, json={"status": "COMPLETE", "results": []})
        )
        router.post(f"{API}/crm/v3/objects/notes/batch/create").mock(
            return_value=httpx.Response(207, json={"status": "COMPLETE", "results": [made], "errors": [error]})
        )
        results = hubspot.apply_batch(actions, "batch-6")

    assert isinstance(results[0], ActionResult) and results[0].remote_id == "77" and not results[0].replayed
    assert isinstance(results[1], InvalidRequestError) and "too long" in results[1].message


def test_search_mode_goes_one_by_one():
    hubspot = make_provider(action_key_setup="search")
    actions = [note("a"), note("b")]
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{API}/crm/v3/objects/notes/search").mock(
            return_value=httpx.Response(200, json={"total": 0, "results": []})
        )
        single = router.post(f"{API}/crm/v3/objects/notes").mock(
            side_effect=lambda request: httpx.Response(201, json={"id": str(len(single.calls)), **body(request)})
        )
        batch = router.post(f"{API}/crm/v3/objects/notes/batch/create")
        results = hubspot.apply_batch(actions, "batch-7")
    hubspot.close()

    assert single.call_count == 2 and batch.call_count == 0
    assert [r.remote_id for r in results] == ["0", "1"]
