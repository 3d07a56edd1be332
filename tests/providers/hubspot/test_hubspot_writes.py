import httpx
import pytest
import respx

from connector.errors import InvalidRequestError
from connector.model import Action, Ref
from support.hubspot_fakes import API, body_of, fixture, make_provider


def action(kind, payload, target=None):
    return Action(connection="crm", kind=kind, target=target, payload=payload)


class FakeEngagements:
    """Notes (or tasks) HubSpot-side: creates keep state, search answers from it, and a
    POST can be made to time out after HubSpot has stored the object."""

    def __init__(self, object_type, template, key_property="ar_action_key"):
        self.object_type = object_type
        self.template = template
        self.key_property = key_property
        self.created = []
        self.time_out_next_create = False

    def search(self, request):
        body = body_of(request)
        (flt,) = body["filterGroups"][0]["filters"]
        assert flt == {"propertyName": self.key_property, "operator": "EQ", "value": flt["value"]}
        hits = [c for c in self.created if c["properties"][self.key_property] == flt["value"]]
        return httpx.Response(200, json={"total": len(hits), "results": hits[: body["limit"]]})

    def create(self, request):
        body = body_of(request)
        made = {
            **self.template,
            "id": str(11001 + len(self.created)),
            "properties": {**self.template["properties"], **body["properties"]},
        }
        self.created.append(made)
        self.last_body = body
        if self.time_out_next_create:
            self.time_out_next_create = False
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(201, json=made)

    def mount(self):
        respx.post(f"{API}/crm/v3/objects/{self.object_type}/search").mock(side_effect=self.search)
        respx.post(f"{API}/crm/v3/objects/{self.object_type}").mock(side_effect=self.create)
        return self


NOTE = {"company_id": "5001", "body": "Reminder: INV-1001 is 10 days overdue.", "subject": "Reminder 1"}


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
def test_the_same_note_applied_twice_is_created_once():
    fake = FakeEngagements("notes", fixture("note_created.json")).mount()
    provider = make_provider()
    first = provider.apply(action("create_note", NOTE))
    second = provider.apply(action("create_note", NOTE))
    assert len(fake.created) == 1
    assert second.replayed and second.remote_id == first.remote_id


@respx.mock
def test_a_note_whose_create_timed_out_is_found_and_not_created_again():
    fake = FakeEngagements("notes", fixture("note_created.json")).mount()
    fake.time_out_next_create = True  # HubSpot stored it; we never heard back
    result = make_provider().apply(action("create_note", NOTE))
    assert len(fake.created) == 1
    assert result.remote_id == "11001" and result.replayed


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
