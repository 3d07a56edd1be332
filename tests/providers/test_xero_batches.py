"""Xero batch writes: several payments (or fees) in one PUT, each answer element read back to
its own action by identity, and a body that is byte-identical on a resend."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from connector.errors import InvalidRequestError, NotFoundError
from connector.http import RetryPolicy, dumps_exact
from connector.model import Action, Ref
from connector.providers.base import ActionResult
from connector.providers.xero import XeroProvider, XeroSettings
from support.xero_fakes import API, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, TENANT

INVOICES = {
    "USD": "11111111-1111-4111-8111-111111111111",
    "JPY": "22222222-2222-4222-8222-222222222222",
    "KWD": "33333333-3333-4333-8333-333333333333",
    "EUR": "44444444-4444-4444-8444-444444444444",
}
BILL = "55555555-5555-4555-8555-555555555555"


def provider() -> XeroProvider:
    return XeroProvider(
        XeroSettings(
            tenant_id=TENANT,
            client_id=CLIENT_ID,
            client_secret=SecretStr(CLIENT_SECRET),
            refresh_token=SecretStr(REFRESH_TOKEN),
            access_token=SecretStr("at-configured-1d9e"),
            payment_account_code="090",
            fee_account_code="404",
        ),
        connection="ledger",
        retry=RetryPolicy(sleep=lambda seconds: None, jitter=0),
    )


def payment(invoice_id: str, amount: str, currency: str, reference: str) -> Action:
    return Action(
        connection="ledger",
        kind="record_payment",
        target=Ref(system="xero", object_type="invoice", remote_id=invoice_id),
        payload={"amount": amount, "currency": currency, "date": "2026-02-03", "reference": reference},
    )


def fee(amount: str, reference: str) -> Action:
    return Action(
        connection="ledger",
        kind="record_fee",
        payload={"amount": amount, "currency": "USD", "date": "2026-02-03", "reference": reference},
    )


def answer(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, content=dumps_exact(body).encode(), headers={"Content-Type": "application/json"})


class FakeLedger:
    """Invoices by id, and PUT /Payments and /BankTransactions that answer every element in
    request order (or in reverse, `reverse=True`), replaying the first answer to a key."""

    def __init__(self, router: respx.Router) -> None:
        self.invoices = {
            ident: {"InvoiceID": ident, "Type": "ACCREC", "CurrencyCode": currency}
            for currency, ident in INVOICES.items()
        }
        self.invoices[BILL] = {"InvoiceID": BILL, "Type": "ACCPAY", "CurrencyCode": "USD"}
        self.reverse = False
        self.refuse_reference: str | None = None
        self.bodies: list[bytes] = []
        self.invoice_reads: list[httpx.Request] = []
        self.replays: dict[str, tuple[bytes, httpx.Response]] = {}
        self.made = 0
        router.get(API + "/Invoices").mock(side_effect=self.read_invoices)
        router.put(API + "/Payments").mock(side_effect=self.put("Payments", "PaymentID", self.pay))
        router.put(API + "/BankTransactions").mock(
            side_effect=self.put("BankTransactions", "BankTransactionID", self.book)
        )

    def read_invoices(self, request: httpx.Request) -> httpx.Response:
        self.invoice_reads.append(request)
        wanted = request.url.params["IDs"].split(",")
        return answer(200, {"Invoices": [self.invoices[i] for i in wanted if i in self.invoices]})

    def put(self, items_key: str, id_key: str, make: Any) -> Any:
        def serve(request: httpx.Request) -> httpx.Response:
            assert request.url.params["summarizeErrors"] == "false"
            self.bodies.append(request.content)
            key = request.headers["Idempotency-Key"]
            if key in self.replays:
                first_body, first_answer = self.replays[key]
                if first_body != request.content:
                    return answer(
                        400, {"Message": f"Idempotency-Key '{key}' was already used with a different request"}
                    )
                return first_answer
            elements = json.loads(request.content, parse_float=Decimal)[items_key]
            answered = [make(element, id_key) for element in elements]
            response = answer(200, {"Status": "OK", items_key: answered[::-1] if self.reverse else answered})
            self.replays[key] = (request.content, response)
            return response

        return serve

    def pay(self, element: dict[str, Any], id_key: str) -> dict[str, Any]:
        if element.get("Reference") == self.refuse_reference:
            return {
                **element,
                "StatusAttributeString": "ERROR",
                "ValidationErrors": [{"Message": "Payment amount exceeds the amount outstanding on this document"}],
            }
        self.made += 1
        invoice = self.invoices[element["Invoice"]["InvoiceID"]]
        return {
            **element,
            id_key: f"e59c07cd-fed1-4a3d-9bcb-{self.made:012d}",
            "StatusAttributeString": "OK",
            "Invoice": {"InvoiceID": invoice["InvoiceID"], "CurrencyCode": invoice["CurrencyCode"]},
        }

    def book(self, element: dict[str, Any], id_key: str) -> dict[str, Any]:
        if element.get("Reference") == self.refuse_reference:
            return {**element, "StatusAttributeString": "ERROR", "ValidationErrors": [{"Message": "Account not found"}]}
        self.made += 1
        total = sum(Decimal(line["UnitAmount"]) * Decimal(line["Quantity"]) for line in element["LineItems"])
        return {**element, id_key: f"bt-{self.made}", "Total": total, "StatusAttributeString": "OK"}


@pytest.fixture
def ledger():
    with respx.mock(assert_all_called=False) as router:
        yield FakeLedger(router)


@pytest.fixture
def xero():
    made = provider()
    yield made
    made.close()


def mixed_payments() -> list[Action]:
    return [
        payment(INVOICES["USD"], "1250.50", "USD", "PAY-1"),
        payment(INVOICES["JPY"], "150000", "JPY", "PAY-2"),
        payment(INVOICES["KWD"], "12.345", "KWD", "PAY-3"),
    ]


def test_declares_fifty_per_batch(xero):
    assert xero.batch_limit("record_payment") == 50
    assert xero.batch_limit("record_fee") == 50


def test_one_put_for_several_payments_and_a_resend_sends_the_same_bytes(ledger, xero):
    actions = mixed_payments()
    first = xero.apply_batch(actions, "batch-key-1")
    again = xero.apply_batch(mixed_payments(), "batch-key-1")

    assert len(ledger.invoice_reads) == 2  # one invoice check per batch
    assert ledger.invoice_reads[0].url.params["IDs"] == ",".join([INVOICES["USD"], INVOICES["JPY"], INVOICES["KWD"]])
    assert len(ledger.bodies) == 2 and ledger.bodies[0] == ledger.bodies[1]
    text = ledger.bodies[0].decode()
    # amounts digit for digit: no float, no rounding, JPY without and KWD with 3 decimals
    assert '"Amount":1250.50' in text and '"Amount":150000,' in text and '"Amount":12.345' in text
    assert ledger.made == 3  # the resend was replayed, not made again
    assert all(isinstance(result, ActionResult) for result in first)
    assert [r.remote_id for r in first] == [r.remote_id for r in again]
    assert first[2].response["Payments"][0]["Amount"] == Decimal("12.345")


def test_a_refused_element_is_that_action_alone(ledger, xero):
    ledger.refuse_reference = "PAY-2"
    results = xero.apply_batch(mixed_payments(), "batch-key-2")

    assert isinstance(results[0], ActionResult) and isinstance(results[2], ActionResult)
    assert isinstance(results[1], InvalidRequestError)
    assert "amount outstanding" in results[1].message


def test_invoice_check_refuses_an_item_without_sending_it(ledger, xero):
    actions = [
        payment(INVOICES["USD"], "10", "USD", "PAY-1"),
        payment(INVOICES["EUR"], "10", "USD", "PAY-2"),  # the invoice is in EUR
        payment(BILL, "10", "USD", "PAY-3"),  # a bill, not a sales invoice
        payment("66666666-6666-4666-8666-666666666666", "10", "USD", "PAY-4"),  # Xero does not know it
        payment(INVOICES["KWD"], "1.2345", "KWD", "PAY-5"),  # not an amount of KWD: never a payment
        payment(INVOICES["JPY"], "700", "JPY", "PAY-6"),
    ]
    results = xero.apply_batch(actions, "batch-key-3")

    sent = json.loads(ledger.bodies[0])["Payments"]
    assert [p["Reference"] for p in sent] == ["PAY-1", "PAY-6"]
    assert isinstance(results[0], ActionResult) and isinstance(results[5], ActionResult)
    assert isinstance(results[1], InvalidRequestError) and "EUR" in results[1].message
    assert isinstance(results[2], InvalidRequestError) and "ACCPAY" in results[2].message
    assert isinstance(results[3], NotFoundError)
    assert isinstance(results[4], InvalidRequestError) and "exact" in results[4].message


def test_nothing_sent_when_every_item_is_refused(ledger, xero):
    results = xero.apply_batch([payment(BILL, "10", "USD", "PAY-1")], "batch-key-4")
    assert ledger.bodies == [] and isinstance(results[0], InvalidRequestError)


def test_answers_in_another_order_are_matched_by_identity(ledger, xero):
    ledger.reverse = True
    actions = mixed_payments()
    results = xero.apply_batch(actions, "batch-key-5")

    for action, result in zip(actions, results, strict=True):
        assert isinstance(result, ActionResult)
        (element,) = result.response["Payments"]
        assert element["Reference"] == action.payload["reference"]
        assert element["Invoice"]["InvoiceID"] == action.target.remote_id


def test_the_single_path_still_records_one_payment(xero):
    with respx.mock(assert_all_called=True) as router:
        invoice = INVOICES["KWD"]
        router.get(f"{API}/Invoices/{invoice}").mock(
            return_value=answer(200, {"Invoices": [{"InvoiceID": invoice, "Type": "ACCREC", "CurrencyCode": "KWD"}]})
        )
        put = router.put(API + "/Payments").mock(
            return_value=answer(
                200,
                {"Payments": [{"PaymentID": "p-1", "Amount": Decimal("12.345"), "Invoice": {"CurrencyCode": "KWD"}}]},
            )
        )
        result = xero.apply(payment(invoice, "12.345", "KWD", "PAY-1"))
    assert result.remote_id == "p-1"
    assert b'"Amount":12.345' in put.calls[0].request.content


def test_fees_in_one_put_matched_by_reference_and_total(ledger, xero):
    ledger.reverse = True
    ledger.refuse_reference = "FEE-2"
    actions = [fee("1.25", "FEE-1"), fee("0.30", "FEE-2"), fee("-1", "FEE-3"), fee("2.90", "FEE-4")]
    results = xero.apply_batch(actions, "batch-key-6")
    again = xero.apply_batch(actions, "batch-key-6")

    assert len(ledger.bodies) == 2 and ledger.bodies[0] == ledger.bodies[1]
    sent = json.loads(ledger.bodies[0])["BankTransactions"]
    assert [t["Reference"] for t in sent] == ["FEE-1", "FEE-2", "FEE-4"]  # FEE-3 cannot be a fee
    assert '"UnitAmount":0.30' in ledger.bodies[0].decode()
    assert isinstance(results[0], ActionResult) and isinstance(results[3], ActionResult)
    assert results[0].response["BankTransactions"][0]["Reference"] == "FEE-1"
    assert results[3].response["BankTransactions"][0]["Reference"] == "FEE-4"
    assert isinstance(results[1], InvalidRequestError) and "Account not found" in results[1].message
    assert isinstance(results[2], InvalidRequestError)
    assert [getattr(r, "remote_id", None) for r in again] == [getattr(r, "remote_id", None) for r in results]
