"""The Xero face: paging, If-Modified-Since, where, .NET dates, payments, email, idempotency."""

from __future__ import annotations

from decimal import Decimal

import httpx

from connector.sandbox.common import loads, parse_dotnet_date
from support.sandbox_books import (
    ACCOUNT_BANK,
    INVOICE_JPY,
    INVOICE_KWD,
    INVOICE_USD,
    T0,
    book,
    xero_invoice,
)
from support.sandbox_harness import TENANT, effects, running, xero


def _payment(invoice: str, amount: str, **extra) -> str:
    # Written by hand so the amount goes out digit for digit, as the adapter sends it.
    account = extra.get("account", '{"Code": "090"}')
    return (
        f'{{"Payments": [{{"Invoice": {{"InvoiceID": "{invoice}"}}, "Account": {account}, "Amount": {amount}, '
        '"Date": "2024-01-05", "Reference": "inv 1"}]}'
    )


def _put(client: httpx.Client, body: str, **headers: str) -> httpx.Response:
    return client.put(
        "/Payments",
        params={"summarizeErrors": "false"},
        content=body,
        headers={"Content-Type": "application/json", **headers},
    )


def test_pages_end_and_cover_every_record():
    invoices = [
        xero_invoice(f"e0000000-0000-4000-8000-{i:012d}", f"INV-{i}", total="10.00", currency="USD", updated=T0 + i)
        for i in range(25)
    ]
    with running({"xero": {"Invoices": invoices}}) as sandbox, xero(sandbox) as client:
        pages, page = [], 1
        while True:
            body = client.get("/Invoices", params={"page": page, "pageSize": 10, "order": "UpdatedDateUTC ASC"}).json()
            pages.append([i["InvoiceNumber"] for i in body["Invoices"]])
            if len(body["Invoices"]) < 10:
                break
            page += 1
    assert [len(p) for p in pages] == [10, 10, 5]
    assert body["pagination"] == {"page": 3, "pageSize": 10, "pageCount": 3, "itemCount": 25}
    assert [n for page in pages for n in page] == [f"INV-{i}" for i in range(25)]


def test_if_modified_since_keeps_records_updated_at_or_after_it():
    with running(book()) as sandbox, xero(sandbox) as client:
        since = client.get("/Invoices", headers={"If-Modified-Since": "2023-11-14T22:18:20Z"}).json()  # T0 + 300
        rfc = client.get("/Invoices", headers={"If-Modified-Since": "Tue, 14 Nov 2023 22:18:20 GMT"}).json()
        no_zone = client.get("/Invoices", headers={"If-Modified-Since": "2023-11-14T22:18:20"})
    assert [i["InvoiceNumber"] for i in since["Invoices"]] == ["INV-0003", "BILL-9"]
    assert rfc["Invoices"] == since["Invoices"]
    assert no_zone.status_code == 400 and no_zone.json()["Type"] == "ValidationException"


def test_where_and_order_filter_and_sort():
    with running(book()) as sandbox, xero(sandbox) as client:
        sales = client.get("/Invoices", params={"where": 'Type=="ACCREC"', "order": "UpdatedDateUTC DESC"}).json()[
            "Invoices"
        ]
        authorised = client.get(
            "/Invoices", params={"where": 'Type=="ACCREC" AND Status=="AUTHORISED" && CurrencyCode=="USD"'}
        ).json()["Invoices"]
        unknown = client.get("/Invoices", params={"where": "Total.Round(2) > 5 OR x"})
    assert [i["InvoiceNumber"] for i in sales] == ["INV-0003", "INV-0002", "INV-0001"]
    assert [i["InvoiceNumber"] for i in authorised] == ["INV-0001"]
    assert unknown.status_code == 400 and "where" in unknown.json()["Message"]


def test_archived_contacts_only_with_include_archived():
    with running(book()) as sandbox, xero(sandbox) as client:
        active = client.get("/Contacts").json()["Contacts"]
        every = client.get("/Contacts", params={"includeArchived": "true"}).json()["Contacts"]
    assert [c["Name"] for c in active] == ["Acme Ltd"]
    assert len(every) == 2


def test_dates_are_dotnet_and_amounts_keep_their_digits():
    with running(book()) as sandbox, xero(sandbox) as client:
        raw = client.get(f"/Invoices/{INVOICE_KWD}").content
    invoice = loads(raw)["Invoices"][0]
    assert invoice["UpdatedDateUTC"] == f"/Date({(T0 + 300) * 1000}+0000)/"
    assert parse_dotnet_date(invoice["UpdatedDateUTC"]) == T0 + 300
    assert invoice["Total"] == Decimal("12.345") and b'"Total":12.345' in raw


def test_a_payment_lowers_amount_due_and_appears_in_payments():
    with running(book()) as sandbox, xero(sandbox) as client:
        answer = _put(client, _payment(INVOICE_USD, "500.10"))
        payment = loads(answer.content)["Payments"][0]
        invoice = loads(client.get(f"/Invoices/{INVOICE_USD}").content)["Invoices"][0]
        listed = client.get("/Payments", params={"where": 'PaymentType=="ACCRECPAYMENT"'}).json()["Payments"]
        changed = client.get("/Invoices", headers={"If-Modified-Since": "2024-01-01T00:00:00Z"}).json()["Invoices"]
    assert answer.status_code == 200 and payment["Amount"] == Decimal("500.10")
    assert (invoice["AmountDue"], invoice["AmountPaid"], invoice["Status"]) == (
        Decimal("999.90"),
        Decimal("500.10"),
        "AUTHORISED",
    )
    assert [p["PaymentID"] for p in listed] == [payment["PaymentID"]]
    assert [i["InvoiceID"] for i in changed] == [INVOICE_USD], "the payment bumped UpdatedDateUTC"
    assert payment["Account"]["AccountID"] == ACCOUNT_BANK
    assert effects(sandbox, "xero") == [f"created payment {payment['PaymentID']}"]


def test_paying_the_rest_marks_the_invoice_paid_in_zero_and_three_decimal_currencies():
    with running(book()) as sandbox, xero(sandbox) as client:
        _put(client, _payment(INVOICE_JPY, "5000"))
        _put(client, _payment(INVOICE_KWD, "12.345", account=f'{{"AccountID": "{ACCOUNT_BANK}"}}'))
        jpy = loads(client.get(f"/Invoices/{INVOICE_JPY}").content)["Invoices"][0]
        kwd = loads(client.get(f"/Invoices/{INVOICE_KWD}").content)["Invoices"][0]
    assert (jpy["Status"], jpy["AmountDue"]) == ("PAID", 0) and jpy["FullyPaidOnDate"].startswith("/Date(")
    assert (kwd["Status"], kwd["AmountDue"], kwd["AmountPaid"]) == ("PAID", Decimal("0.000"), Decimal("12.345"))


def test_refused_payments_change_nothing():
    with running(book()) as sandbox, xero(sandbox) as client:
        too_much = _put(client, _payment(INVOICE_USD, "1500.01")).json()["Payments"][0]
        no_account = _put(client, _payment(INVOICE_USD, "1.00", account='{"Code": "999"}')).json()["Payments"][0]
        summarized = client.put(
            "/Payments", content=_payment(INVOICE_USD, "1500.01"), headers={"Content-Type": "application/json"}
        )
        invoice = client.get(f"/Invoices/{INVOICE_USD}").json()["Invoices"][0]
        payments = client.get("/Payments").json()["Payments"]
    assert too_much["ValidationErrors"] == [
        {"Message": "Payment amount exceeds the amount outstanding on this document"}
    ]
    assert "999" in no_account["ValidationErrors"][0]["Message"]
    assert summarized.status_code == 400 and summarized.json()["Elements"][0]["ValidationErrors"]
    assert invoice["AmountDue"] == 1500 and payments == []
    assert all(e.startswith("rejected: ") for e in effects(sandbox, "xero"))


def test_an_idempotency_key_replays_the_payment_instead_of_recording_it_twice():
    with running(book()) as sandbox, xero(sandbox) as client:
        first = _put(client, _payment(INVOICE_USD, "100.00"), **{"Idempotency-Key": "ar-pay-1"})
        again = _put(client, _payment(INVOICE_USD, "100.00"), **{"Idempotency-Key": "ar-pay-1"})
        other = _put(client, _payment(INVOICE_USD, "200.00"), **{"Idempotency-Key": "ar-pay-1"})
        invoice = loads(client.get(f"/Invoices/{INVOICE_USD}").content)["Invoices"][0]
    assert again.json()["Payments"] == first.json()["Payments"]
    assert other.status_code == 400
    assert invoice["AmountDue"] == Decimal("1400.00")
    journal = effects(sandbox, "xero")
    assert sum(e.startswith("created payment") for e in journal) == 1 and journal[1] == "replayed"


def test_emailing_an_invoice_records_sent_to_contact():
    with running(book()) as sandbox, xero(sandbox) as client:
        answer = client.post(f"/Invoices/{INVOICE_USD}/Email", json={})
        invoice = client.get(f"/Invoices/{INVOICE_USD}").json()["Invoices"][0]
    assert answer.status_code == 204 and invoice["SentToContact"] is True
    assert effects(sandbox, "xero") == [f"emailed invoice {INVOICE_USD}"]


def test_bearer_and_tenant_are_required():
    with running(book()) as sandbox:
        url = f"{sandbox.url('xero')}/Invoices"
        no_token = httpx.get(url, headers={"xero-tenant-id": TENANT})
        no_tenant = httpx.get(url, headers={"Authorization": "Bearer t"})
    assert no_token.status_code == 401 and no_tenant.status_code == 403
    assert no_token.headers["Xero-Correlation-Id"]
