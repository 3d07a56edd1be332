import dataclasses

import httpx
import pytest
import respx

from connector.errors import InvalidRequestError
from connector.model import Action, Ref
from support.hubspot_fakes import API, body_of, fixture, make_provider


def action(kind, payload, target=None):
    return Action(connection="crm", kind=kind, target=target, payload=payload)


class FakeEngagements:
    """Notes (or tasks) HubSpot-side, as HubSpot keeps them: a key property that requires
    unique values is checked when an object is written (a second create with the same key is
    refused, 409 CONFLICT or, as integrators report for custom properties, 400), the object
    holding a key is read by that property (`?idProperty=`), and the search index lags: it
    sees an object only once `index_caught_up` says so (never, by default). A create can
    time out after HubSpot stored the object (`time_out_next_create`): the answer is lost."""

    def __init__(self, object_type, template, key_property="ar_action_key", *, unique=True, refusal=409):
        self.object_type = object_type
        self.template = template
        self.key_property = key_property
        self.unique = unique
        self.refusal = refusal
        self.created = []
        self.refused = 0
        self.time_out_next_create = False
        self.index_caught_up = False
        self.last_body = None

    def search(self, request):
        body = body_of(request)
        (flt,) = body["filterGroups"][0]["filters"]
        assert flt == {"propertyName": self.key_property, "operator": "EQ", "value": flt["value"]}
        indexed = self.created if self.index_caught_up else []
        hits = [c for c in indexed if c["properties"][self.key_property] == flt["value"]]
        return httpx.Response(200, json={"total": len(hits), "results": hits[: body["limit"]]})

    def holder(self, key):
        return next((c for c in self.created if c["properties"].get(self.key_property) == key), None)

    def create(self, request):
        body = body_of(request)
        self.last_body = body
        existing = self.holder(body["properties"].get(self.key_property))
        if self.unique and existing is not None:
            self.refused += 1
            if self.refusal == 409:
                return httpx.Response(
                    409,
                    json={
                        "status": "error",
                        "message": f"Note already exists. Existing ID: {existing['id']}",
                        "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
                        "category": "CONFLICT",
                    },
                )
            return httpx.Response(
                400,
                json={
                    "status": "error",
                    "message": f"Property values were not valid: {self.key_property} already has that value",
                    "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
                    "category": "VALIDATION_ERROR",
                },
            )
        made = {
            **self.template,
            "id": str(11001 + len(self.created)),
            "properties": {**self.template["properties"], **body["properties"]},
        }
        self.created.append(made)
        if self.time_out_next_create:
            self.time_out_next_create = False
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(201, json=made)

    def read(self, request, value):
        params = request.url.params
        if params.get("idProperty") != self.key_property or not self.unique:
            return httpx.Response(
                400,
                json={
                    "status": "error",
                    "message": f"Unable to perform read by non-unique property {params.get('idProperty')}",
                    "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
                    "category": "VALIDATION_ERROR",
                },
            )
        found = self.holder(value)
        archived = params.get("archived") == "true"
        if found is None or bool(found.get("archived")) != archived:
            return httpx.Response(
                404,
                json={
                    "status": "error",
                    "message": "Object not found",
                    "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
                    "category": "OBJECT_NOT_FOUND",
                },
            )
        wanted = params.get("properties", "").split(",")
        return httpx.Response(200, json={**found, "properties": {k: found["properties"][k] for k in wanted}})

    def definition(self, request):
        return httpx.Response(
            200,
            json={
                "name": self.key_property,
                "label": "AR action key",
                "type": "string",
                "fieldType": "text",
                "groupName": "ar_sync",
                "description": "",
                "options": [],
                "hasUniqueValue": self.unique,
            },
        )

    def mount(self, *, definition=True):
        kind = self.object_type
        respx.post(f"{API}/crm/v3/objects/{kind}/search").mock(side_effect=self.search)
        respx.post(f"{API}/crm/v3/objects/{kind}").mock(side_effect=self.create)
        respx.get(url__regex=rf"{API}/crm/v3/objects/{kind}/(?P<value>[^/?]+)").mock(side_effect=self.read)
        if definition:
            respx.get(f"{API}/crm/v3/properties/{kind}/{self.key_property}").mock(side_effect=self.definition)
        return self


NOTE = {"company_id": "5001", "body": "Reminder: INV-1001 is 10 days overdue.", "subject": "Reminder 1"}
NOTE_KEY = action("create_note", NOTE).idempotency_key


@respx.mock
def test_update_properties_patches_the_deal_with_the_configured_property_names():
    route = respx.patch(f"{API}/crm/v3/objects/deals/9001").mock(
        return_value=httpx.Response(200, json=fixture("deal_patched.json"))
    )
    provider = make_provider(payment_status_property="x_status")
    result = provider.apply(
        action(
            "update_properties",
            {
                "properties": {
                    "amount_outstanding": {"amount": "500.25", "currency": "USD"},
                    "payment_status": "partially_paid",
                    "days_overdue": 12,
                    "last_reminder": "2024-03-10",
                }
            },
            Ref(system="crm", object_type="deal", remote_id="9001"),
        )
    )
    assert body_of(route.calls[0].request) == {
        "properties": {
            "ar_amount_outstanding": "500.25",
            "x_status": "partially_paid",
            "ar_days_overdue": "12",
            "ar_last_reminder": "2024-03-10",
        }
    }
    assert result.remote_id == "9001" and not result.replayed


@respx.mock
def test_update_properties_on_an_invoice_is_retried_after_a_503_because_patch_is_idempotent():
    route = respx.patch(f"{API}/crm/v3/objects/invoices/3001").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json={**fixture("deal_patched.json"), "id": "3001"})]
    )
    result = make_provider().apply(
        action(
            "update_properties",
            {"properties": {"payment_status": "paid"}},
            Ref(system="crm", object_type="invoice", remote_id="3001"),
        )
    )
    assert route.call_count == 2 and result.remote_id == "3001"


def test_update_properties_refuses_a_target_it_cannot_write():
    with pytest.raises(InvalidRequestError, match="needs a target"):
        make_provider().apply(
            action(
                "update_properties", {"properties": {"a": "b"}}, Ref(system="crm", object_type="payment", remote_id="1")
            )
        )


@respx.mock
def test_create_note_associates_it_with_the_company_and_stores_our_action_key():
    fake = FakeEngagements("notes", fixture("note_created.json")).mount()
    act = action("create_note", NOTE)
    result = make_provider().apply(act)
    assert result.remote_id == "11001" and not result.replayed
    assert fake.last_body["associations"] == [
        {"to": {"id": "5001"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 190}]}
    ]
    props = fake.last_body["properties"]
    assert props["ar_action_key"] == act.idempotency_key
    assert props["hs_timestamp"] == "2024-03-10T10:00:00.000Z"
    assert props["hs_note_body"].endswith(NOTE["body"])


@respx.mock
def test_a_create_is_one_request_after_the_key_property_is_checked_once():
    """No search before a create: the key property's unique values are the guard. The
    property is read once per object type, not once per note."""
    FakeEngagements("notes", fixture("note_created.json")).mount()
    provider = make_provider()
    provider.apply(action("create_note", NOTE))
    provider.apply(action("create_note", {**NOTE, "body": "Second reminder"}))
    sent = [(c.request.method, c.request.url.path) for c in respx.calls]
    assert sent == [
        ("GET", "/crm/v3/properties/notes/ar_action_key"),
        ("POST", "/crm/v3/objects/notes"),
        ("POST", "/crm/v3/objects/notes"),
    ]


@respx.mock
@pytest.mark.parametrize("refusal", [409, 400])
def test_a_replay_after_a_lost_answer_returns_the_note_made_before_the_index_sees_it(refusal):
    """The first create timed out after HubSpot stored the note; the search index has not
    taken it in (it never does here). The HTTP layer sends the create again (safe with a
    unique key): HubSpot refuses the duplicate, and the adapter answers with the stored note,
    read by its key. One note, whatever the refusal's status."""
    fake = FakeEngagements("notes", fixture("note_created.json"), refusal=refusal).mount()
    fake.time_out_next_create = True
    result = make_provider().apply(action("create_note", NOTE))
    assert len(fake.created) == 1 and fake.refused == 1
    assert result.remote_id == "11001" and result.replayed
    assert not any(c.request.url.path.endswith("/search") for c in respx.calls)
    read = next(c.request for c in respx.calls if c.request.url.path == f"/crm/v3/objects/notes/{NOTE_KEY}")
    assert read.url.params["idProperty"] == "ar_action_key"


@respx.mock
def test_a_replay_by_a_new_process_after_a_crash_before_our_commit_creates_nothing():
    """The note was made and the process died before it recorded so: the next run's
    provider (nothing remembered) sends the same action again, seconds later, while search
    still does not see the note."""
    fake = FakeEngagements("notes", fixture("note_created.json")).mount()
    first = make_provider().apply(action("create_note", NOTE))
    again = make_provider().apply(action("create_note", NOTE))
    assert len(fake.created) == 1
    assert again.replayed and again.remote_id == first.remote_id == "11001"


@respx.mock
def test_a_refusal_that_is_no_duplicate_is_raised_as_it_is():
    FakeEngagements("notes", fixture("note_created.json")).mount()
    respx.post(f"{API}/crm/v3/objects/notes").mock(
        return_value=httpx.Response(
            400,
            json={
                "status": "error",
                "message": "Property values were not valid: hs_timestamp is required",
                "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
                "category": "VALIDATION_ERROR",
            },
        )
    )
    with pytest.raises(InvalidRequestError, match="hs_timestamp is required"):
        make_provider().apply(action("create_note", NOTE))


@respx.mock
def test_a_note_deleted_after_we_made_it_is_not_made_again():
    fake = FakeEngagements("notes", fixture("note_created.json")).mount()
    first = make_provider().apply(action("create_note", NOTE))
    fake.created[0]["archived"] = True  # someone deleted it; HubSpot still holds its key
    again = make_provider().apply(action("create_note", NOTE))
    assert len(fake.created) == 1 and again.replayed and again.remote_id == first.remote_id


@respx.mock
def test_a_missing_key_property_is_created_with_unique_values_in_its_group():
    fake = FakeEngagements("tasks", fixture("task_created.json")).mount(definition=False)
    respx.get(f"{API}/crm/v3/properties/tasks/ar_action_key").mock(
        return_value=httpx.Response(404, json={"status": "error", "message": "no such property", "category": "x"})
    )
    group = respx.post(f"{API}/crm/v3/properties/tasks/groups").mock(
        return_value=httpx.Response(409, json={"status": "error", "message": "exists", "category": "x"})
    )
    made = respx.post(f"{API}/crm/v3/properties/tasks").mock(side_effect=fake.definition)
    make_provider().apply(action("create_task", {"company_id": "5001", "subject": "Call Acme"}))
    assert body_of(group.calls[0].request) == {"name": "ar_sync", "label": "AR sync", "displayOrder": -1}
    created = body_of(made.calls[0].request)
    assert created["name"] == "ar_action_key" and created["hasUniqueValue"] is True
    assert (created["type"], created["fieldType"], created["groupName"]) == ("string", "text", "ar_sync")
    assert len(fake.created) == 1


@respx.mock
def test_a_key_property_without_unique_values_stops_notes_with_what_to_do():
    fake = FakeEngagements("notes", fixture("note_created.json"), unique=False).mount()
    provider = make_provider()
    for _ in range(2):
        with pytest.raises(InvalidRequestError, match="does not require unique values.*action_key_setup"):
            provider.apply(action("create_note", NOTE))
    assert fake.created == []
    assert [c.request.method for c in respx.calls] == ["GET"]  # read once, remembered


@respx.mock
def test_a_token_without_schema_scopes_is_told_about_assume():
    FakeEngagements("notes", fixture("note_created.json")).mount(definition=False)
    respx.get(f"{API}/crm/v3/properties/notes/ar_action_key").mock(
        return_value=httpx.Response(
            403, json={"status": "error", "message": "missing scopes", "category": "MISSING_SCOPES"}
        )
    )
    with pytest.raises(InvalidRequestError, match='action_key_setup = "assume"'):
        make_provider().apply(action("create_note", NOTE))


@respx.mock
def test_assume_trusts_the_property_and_never_calls_the_properties_api():
    fake = FakeEngagements("notes", fixture("note_created.json")).mount(definition=False)
    fake.time_out_next_create = True
    result = make_provider(action_key_setup="assume").apply(action("create_note", NOTE))
    assert result.replayed and len(fake.created) == 1
    assert not any("/properties/" in c.request.url.path for c in respx.calls)


@respx.mock
def test_the_search_fallback_finds_what_the_index_has_taken_in():
    fake = FakeEngagements("notes", fixture("note_created.json"), unique=False).mount()
    fake.index_caught_up = True
    provider = make_provider(action_key_setup="search")
    first = provider.apply(action("create_note", NOTE))
    second = provider.apply(action("create_note", NOTE))
    assert len(fake.created) == 1
    assert second.replayed and second.remote_id == first.remote_id
    assert not any("/properties/" in c.request.url.path for c in respx.calls)


@respx.mock
def test_the_search_fallback_makes_a_second_note_while_the_index_lags():
    """Why the fallback is only a fallback: a note made moments ago is not in search yet, so
    a replay makes another one. The unique key (the default) has no such window."""
    fake = FakeEngagements("notes", fixture("note_created.json"), unique=False).mount()
    make_provider(action_key_setup="search").apply(action("create_note", NOTE))
    make_provider(action_key_setup="search").apply(action("create_note", NOTE))
    assert len(fake.created) == 2


@respx.mock
def test_a_note_whose_create_timed_out_is_found_by_the_search_fallback_once_indexed():
    fake = FakeEngagements("notes", fixture("note_created.json"), unique=False).mount()
    fake.time_out_next_create = True  # HubSpot stored it; we never heard back
    waits = []

    def catch_up(seconds):
        waits.append(seconds)
        fake.index_caught_up = True  # the settle wait lets the index take it in

    provider = make_provider(action_key_setup="search")
    provider.http.retry = dataclasses.replace(provider.http.retry, sleep=catch_up)
    result = provider.apply(action("create_note", NOTE))
    assert len(fake.created) == 1
    assert result.remote_id == "11001" and result.replayed
    assert waits == [2.0]


@respx.mock
def test_create_task_is_due_on_its_date_and_idempotent():
    fake = FakeEngagements("tasks", fixture("task_created.json")).mount()
    payload = {
        "company_id": "5001",
        "subject": "Call Acme about INV-1001",
        "body": "30 days overdue",
        "due": "2024-03-20",
        "priority": "high",
    }
    provider = make_provider()
    first = provider.apply(action("create_task", payload))
    again = provider.apply(action("create_task", payload))
    assert len(fake.created) == 1 and again.replayed and again.remote_id == first.remote_id
    props = fake.last_body["properties"]
    assert props["hs_timestamp"] == "2024-03-20T00:00:00.000Z"
    assert props["hs_task_status"] == "NOT_STARTED" and props["hs_task_priority"] == "HIGH"
    assert fake.last_body["associations"][0]["types"][0]["associationTypeId"] == 192


def test_a_note_without_a_company_is_refused_before_any_request():
    with pytest.raises(InvalidRequestError, match="company_id"):
        make_provider().apply(action("create_note", {"body": "hello"}))
