"""The Xero face deletes what was written, as Xero does: a payment (its amount goes back to the
invoice) and a spend money transaction (a gateway fee); a reconciled one is refused."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx

from connector.sandbox.common import loads
from support.openapi import check_response
from support.sandbox_books import INVOICE_KWD, INVOICE_USD, book
from support.sandbox_harness import effects, running, xero


def pay(client: httpx.Client, invoice: str, amount: str) -> dict:
    body = (
        f'{{"Payments": [{{"Invoice": {{"InvoiceID": "{invoice}"}}, "Account": {{"Code": "090"}}, '
        f'"Amount": {amount}, "Date": "2024-01-05", "Reference": "ch_1"}}]}}'
    )
    answer = client.put(
        "/Payments", params={"summarizeErrors": "false"}, content=body, headers={"Content-Type": "application/json"}
    )
    return loads(answer.content)["Payments"][0]


def delete_payment(
    client: httpx.Client, payment_id: str, key: str | None = None, body: object = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"/Payments/{payment_id}", json=body or {"Status": "DELETED"}, headers=headers)


def invoice(client: httpx.Client, ident: str) -> dict:
    return loads(client.get(f"/Invoices/{ident}").content)["Invoices"][0]


def book_fee(client: httpx.Client) -> dict:
    body = {
        "BankTransactions": [
            {
                "Type": "SPEND",
                "Contact": {"Name": "Stripe"},
                "BankAccount": {"Code": "090"},
                "Date": "2024-01-05",
                "Reference": "ch_1",
                "CurrencyCode": "USD",
                "LineAmountTypes": "NoTax",
                "LineItems": [{"Description": "fee", "Quantity": 1, "UnitAmount": 2.9, "AccountCode": "200"}],
            }
        ]
    }
    return loads(client.put("/BankTransactions", json=body).content)["BankTransactions"][0]


def test_deleting_a_payment_gives_its_amount_back_and_reopens_a_paid_invoice():
    with running(book()) as sandbox, xero(sandbox) as client:
        payment = pay(client, INVOICE_KWD, "12.345")
        assert invoice(client, INVOICE_KWD)["Status"] == "PAID"
        answer = delete_payment(client, payment["PaymentID"], key="ar-reverse-1")
        after = invoice(client, INVOICE_KWD)
        listed = client.get("/Payments", headers={"If-Modified-Since": "2024-01-01T00:00:00Z"}).json()["Payments"]
        changed = client.get("/Invoices", headers={"If-Modified-Since": "2024-01-01T00:00:00Z"}).json()["Invoices"]
    body = loads(answer.content)
    assert answer.status_code == 200 and body["Payments"][0]["Status"] == "DELETED"
    check_response("xero", "POST", f"/Payments/{payment['PaymentID']}", json.loads(answer.content))
    assert (after["Status"], after["AmountDue"], after["AmountPaid"]) == ("AUTHORISED", Decimal("12.345"), 0)
    assert "FullyPaidOnDate" not in after and after["Payments"] == []
    assert [(p["PaymentID"], p["Status"]) for p in listed] == [(payment["PaymentID"], "DELETED")]
    assert [i["InvoiceID"] for i in changed] == [INVOICE_KWD], "an incremental read sees the invoice change"
    assert effects(sandbox, "xero")[-1] == f"deleted payment {payment['PaymentID']} (12.345 off invoice {INVOICE_KWD})"


def test_a_repeated_idempotency_key_replays_the_delete_and_a_second_delete_is_refused():
    with running(book()) as sandbox, xero(sandbox) as client:
        payment = pay(client, INVOICE_USD, "100.00")
        first = delete_payment(client, payment["PaymentID"], key="ar-reverse-1")
        again = delete_payment(client, payment["PaymentID"], key="ar-reverse-1")
        other_key = delete_payment(client, payment["PaymentID"], key="ar-reverse-2")
        after = invoice(client, INVOICE_USD)
    assert again.status_code == 200 and again.json()["Payments"] == first.json()["Payments"]
    assert other_key.status_code == 400
    assert other_key.json()["Elements"][0]["ValidationErrors"] == [{"Message": "This payment has been deleted already"}]
    assert after["AmountDue"] == Decimal("1500.00"), "the amount came back once"
    journal = effects(sandbox, "xero")
    assert sum(e.startswith("deleted payment") for e in journal) == 1 and "replayed" in journal


def test_a_reconciled_payment_or_one_of_a_batch_is_refused_and_nothing_changes():
    with running(book()) as sandbox, xero(sandbox) as client:
        reconciled = pay(client, INVOICE_USD, "100.00")
        batched = pay(client, INVOICE_USD, "50.00")
        sandbox.faces["xero"].objects["Payments"][reconciled["PaymentID"]]["IsReconciled"] = True
        sandbox.faces["xero"].objects["Payments"][batched["PaymentID"]]["BatchPaymentID"] = "b5400000-0000-4000-8000-1"
        refused = delete_payment(client, reconciled["PaymentID"])
        in_batch = delete_payment(client, batched["PaymentID"])
        after = invoice(client, INVOICE_USD)
    assert refused.status_code == 400 and refused.json()["Type"] == "ValidationException"
    assert "reconciled" in refused.json()["Elements"][0]["ValidationErrors"][0]["Message"]
    check_response("xero", "POST", f"/Payments/{reconciled['PaymentID']}", refused.json(), status=400)
    assert "batch payment" in in_batch.json()["Elements"][0]["ValidationErrors"][0]["Message"]
    assert after["AmountDue"] == Decimal("1350.00")
    assert effects(sandbox, "xero")[-2:] == [
        "rejected: Payment cannot be deleted as it has been reconciled",
        "rejected: Payments made as part of a batch payment cannot be deleted individually",
    ]


def test_a_payment_update_other_than_deleting_it_is_refused():
    with running(book()) as sandbox, xero(sandbox) as client:
        payment = pay(client, INVOICE_USD, "100.00")
        amount = delete_payment(client, payment["PaymentID"], body={"Status": "DELETED", "Amount": 1})
        documented = delete_payment(client, payment["PaymentID"], body={"Payments": [{"Status": "DELETED"}]})
    assert amount.status_code == 400 and "Only Status" in json.dumps(amount.json())
    assert documented.status_code == 200, "the document's own example body is accepted too"


def test_a_fee_is_deleted_by_setting_its_bank_transaction_deleted():
    with running(book()) as sandbox, xero(sandbox) as client:
        fee = book_fee(client)
        ident = fee["BankTransactionID"]
        body = {"BankTransactions": [{**fee, "Status": "DELETED"}]}
        answer = client.post(f"/BankTransactions/{ident}", json=json.loads(json.dumps(body, default=str)))
        held = client.get(f"/BankTransactions/{ident}").json()["BankTransactions"][0]
        again = client.post(f"/BankTransactions/{ident}", json={"BankTransactions": [{"Status": "DELETED"}]})
    assert answer.status_code == 200 and held["Status"] == "DELETED"
    check_response("xero", "POST", f"/BankTransactions/{ident}", json.loads(answer.content))
    assert again.status_code == 400
    assert effects(sandbox, "xero")[1] == f"deleted bank transaction {ident} (SPEND 2.9)"
    assert held["BankAccount"] == {"Code": "090"}


def test_a_reconciled_fee_is_refused():
    with running(book()) as sandbox, xero(sandbox) as client:
        fee = book_fee(client)
        sandbox.faces["xero"].objects["BankTransactions"][fee["BankTransactionID"]]["IsReconciled"] = True
        refused = client.post(
            f"/BankTransactions/{fee['BankTransactionID']}", json={"BankTransactions": [{"Status": "DELETED"}]}
        )
        held = client.get(f"/BankTransactions/{fee['BankTransactionID']}").json()["BankTransactions"][0]
    assert refused.status_code == 400 and "reconciled" in json.dumps(refused.json())
    assert held["Status"] == "AUTHORISED"
