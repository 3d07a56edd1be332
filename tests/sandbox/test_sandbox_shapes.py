"""Every kind of sandbox answer validates against the providers' own OpenAPI documents."""

from __future__ import annotations

import pytest

from connector.sandbox.common import loads
from support.openapi import check_response
from support.sandbox_books import INVOICE_BILL, INVOICE_JPY, INVOICE_USD, book
from support.sandbox_harness import check_hubspot_error, hubspot, running, stripe, xero

STRIPE_LISTS = [
    "customers",
    "invoices",
    "charges",
    "payment_intents",
    "refunds",
    "payouts",
    "balance_transactions",
    "events",
]


@pytest.fixture(scope="module")
def sandbox():
    with running(book()) as sandbox:
        yield sandbox


@pytest.mark.parametrize("collection", STRIPE_LISTS)
def test_stripe_lists_match_the_document(sandbox, collection):
    with stripe(sandbox) as client:
        answer = client.get(f"/v1/{collection}", params={"limit": 100})
    assert answer.status_code == 200 and answer.headers["Request-Id"].startswith("req_")
    body = answer.json()
    assert body["data"], f"the book has {collection}"
    check_response("stripe", "GET", f"/v1/{collection}", body)


def test_stripe_retrieve_expand_and_errors_match_the_document(sandbox):
    with stripe(sandbox) as client:
        invoice = client.get("/v1/invoices/in_0000").json()
        check_response("stripe", "GET", "/v1/invoices/in_0000", invoice)
        charge = client.get("/v1/charges/ch_0001", params={"expand[]": "balance_transaction"}).json()
        assert charge["balance_transaction"]["fee"] == 180
        check_response("stripe", "GET", "/v1/charges/ch_0001", charge)
        charges = client.get("/v1/charges", params={"expand[]": "data.balance_transaction"}).json()
        check_response("stripe", "GET", "/v1/charges", charges)
        lines = client.get("/v1/invoices/in_0000/lines").json()
        check_response("stripe", "GET", "/v1/invoices/in_0000/lines", lines)
        missing = client.get("/v1/invoices/in_nope")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"
        check_response("stripe", "GET", "/v1/invoices/in_nope", missing.json(), status=404)
        bad_limit = client.get("/v1/invoices", params={"limit": 101})
        assert bad_limit.status_code == 400
        check_response("stripe", "GET", "/v1/invoices", bad_limit.json(), status=400)


def test_stripe_invoice_writes_match_the_document(sandbox):
    with stripe(sandbox) as client:
        sent = client.post("/v1/invoices/in_0001/send")
        check_response("stripe", "POST", "/v1/invoices/in_0001/send", sent.json())
        paid = client.post("/v1/invoices/in_0001/pay", data={"paid_out_of_band": "true"})
        check_response("stripe", "POST", "/v1/invoices/in_0001/pay", paid.json())
        voided = client.post("/v1/invoices/in_0002/void")
        check_response("stripe", "POST", "/v1/invoices/in_0002/void", voided.json())
        refused = client.post("/v1/invoices/in_0001/void")
        assert refused.status_code == 400
        check_response("stripe", "POST", "/v1/invoices/in_0001/void", refused.json(), status=400)
        events = client.get("/v1/events", params={"type": "invoice.*", "limit": 100}).json()
    check_response("stripe", "GET", "/v1/events", events)
    assert {"invoice.sent", "invoice.paid", "invoice.voided", "invoice.updated"} <= {e["type"] for e in events["data"]}


@pytest.mark.parametrize("collection", ["Contacts", "Invoices", "CreditNotes", "Payments", "Accounts"])
def test_xero_lists_match_the_document(sandbox, collection):
    params = {"page": "1"} if collection != "Accounts" else {}
    with xero(sandbox) as client:
        answer = client.get(f"/{collection}", params=params)
    assert answer.status_code == 200 and answer.headers["Xero-Correlation-Id"]
    body = answer.json()
    assert body["Status"] == "OK" and body["DateTimeUTC"].startswith("/Date(")
    assert ("pagination" in body) == (collection != "Accounts")
    check_response("xero", "GET", f"/{collection}", body)


def test_xero_writes_and_errors_match_the_document(sandbox):
    with xero(sandbox) as client:
        one = client.get(f"/Invoices/{INVOICE_JPY}").json()
        check_response("xero", "GET", f"/Invoices/{INVOICE_JPY}", one)
        body = {
            "Payments": [
                {"Invoice": {"InvoiceID": INVOICE_JPY}, "Account": {"Code": "090"}, "Amount": 100, "Date": "2024-01-05"}
            ]
        }
        created = client.put("/Payments", json=body)
        assert created.status_code == 200
        check_response("xero", "PUT", "/Payments", created.json())
        too_much = {
            "Payments": [
                {
                    "Invoice": {"InvoiceID": INVOICE_USD},
                    "Account": {"Code": "090"},
                    "Amount": 99999,
                    "Date": "2024-01-05",
                }
            ]
        }
        summarized = client.put("/Payments", json=too_much)
        assert summarized.status_code == 400
        check_response("xero", "PUT", "/Payments", summarized.json(), status=400)
        per_item = client.put("/Payments", params={"summarizeErrors": "false"}, json=too_much)
        assert per_item.status_code == 200 and per_item.json()["Payments"][0]["ValidationErrors"]
        check_response("xero", "PUT", "/Payments", per_item.json())
        emailed = client.post(f"/Invoices/{INVOICE_USD}/Email", json={})
        assert emailed.status_code == 204 and emailed.content == b""
        refused = client.post(f"/Invoices/{INVOICE_BILL}/Email", json={})
        assert refused.status_code == 400
        check_response("xero", "POST", f"/Invoices/{INVOICE_BILL}/Email", refused.json(), status=400)


def test_hubspot_answers_match_the_document(sandbox):
    search = {
        "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}]}],
        "sorts": ["hs_lastmodifieddate"],
        "properties": ["dealname", "amount"],
        "limit": 2,
        "after": "0",
    }
    with hubspot(sandbox) as client:
        found = client.post("/crm/v3/objects/deals/search", json=search)
        assert found.headers["X-HubSpot-Correlation-Id"]
        check_response("hubspot", "POST", "/crm/v3/objects/deals/search", found.json())
        listed = client.get("/crm/v3/objects/companies", params={"limit": 1, "properties": "name"})
        check_response("hubspot", "GET", "/crm/v3/objects/companies", listed.json())
        one = client.get("/crm/v3/objects/deals/300", params={"associations": "companies"})
        assert one.json()["associations"]["companies"]["results"][0]["id"] == "101"
        check_response("hubspot", "GET", "/crm/v3/objects/deals/300", one.json())
        patched = client.patch("/crm/v3/objects/deals/300", json={"properties": {"ar_payment_status": "paid"}})
        check_response("hubspot", "PATCH", "/crm/v3/objects/deals/300", patched.json())
        note = client.post(
            "/crm/v3/objects/notes",
            json={
                "properties": {"hs_timestamp": "2024-03-10T10:00:00.000Z", "hs_note_body": "Reminder"},
                "associations": [
                    {
                        "to": {"id": "101"},
                        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 190}],
                    }
                ],
            },
        )
        assert note.status_code == 201
        check_response("hubspot", "POST", "/crm/v3/objects/notes", note.json(), status=201)
        missing = client.get("/crm/v3/objects/deals/999999")
        assert missing.status_code == 404
        check_hubspot_error(missing.json())
        refused = client.post(
            "/crm/v3/objects/tasks", json={"properties": {"hs_task_subject": "Call"}, "associations": []}
        )
        assert refused.status_code == 400
        check_hubspot_error(refused.json())


def test_journal_is_served_as_json(sandbox):
    import httpx

    answer = httpx.get(f"{sandbox.base_url}/_sandbox/journal")
    assert answer.status_code == 200
    entries = loads(answer.content)
    assert [e["effect"] for e in entries] == [e["effect"] for e in sandbox.journal]
    assert {"provider", "method", "path", "idempotency_key", "payload", "effect"} <= set(entries[0])
    assert httpx.get(f"{sandbox.base_url}/_sandbox/health").json()["status"] == "ok"
