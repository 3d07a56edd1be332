import json
from decimal import Decimal

import pytest

from connector.errors import ConfigError, InvalidRequestError
from connector.model import Action, Ref
from support.xero_fakes import fixture, records

INVOICE_ID = "0e64a623-c2a1-446a-93ed-eb897f118cbc"


def payment_action(amount="749.75", currency="USD", invoice=INVOICE_ID, **payload):
    return Action(
        connection="ledger",
        kind="record_payment",
        target=Ref(system="ledger", object_type="invoice", remote_id=invoice),
        payload={
            "amount": amount,
            "currency": currency,
            "date": "2026-01-31",
            "reference": "ar-sync gateway pi_3Nv",
            **payload,
        },
    )


@pytest.fixture
def ledger(fake_xero):
    fake_xero.data["Invoices"] = records("invoices.json") + records("invoices_fx.json")
    return fake_xero


def test_record_payment_puts_the_payment_on_the_configured_account_with_the_idempotency_key(ledger, make_xero):
    action = payment_action()
    result = make_xero().apply(action)

    put = [r for r in ledger.requests if r.method == "PUT"][0]
    assert put.url.path == "/api.xro/2.0/Payments"
    assert put.headers["Idempotency-Key"] == action.idempotency_key
    assert put.url.params["summarizeErrors"] == "false"
    body = json.loads(put.content, parse_float=Decimal)
    assert body == {
        "Payments": [
            {
                "Invoice": {"InvoiceID": INVOICE_ID},
                "Account": {"Code": "090"},
                "Amount": Decimal("749.75"),
                "Date": "2026-01-31",
                "Reference": "ar-sync gateway pi_3Nv",
            }
        ]
    }
    assert b'"Amount":749.75' in put.content  # a JSON number, digit for digit
    assert result.remote_id == "e59c07cd-fed1-4a3d-9bcb-000000000001" and not result.replayed
    assert result.response["Payments"][0]["Amount"] == Decimal("749.75")


def test_the_same_payment_sent_twice_is_recorded_once(ledger, make_xero):
    provider = make_xero()
    first = provider.apply(payment_action())
    second = provider.apply(payment_action())
    assert len(ledger.payments_made) == 1
    assert first.remote_id == second.remote_id


def test_three_decimal_and_zero_decimal_amounts_go_out_exactly(ledger, make_xero):
    provider = make_xero()
    provider.apply(payment_action("2.125", "KWD", invoice="7e8f9a0b-1c2d-4e3f-8a4b-5c6d7e8f9a0b"))
    provider.apply(payment_action("5000", "JPY", invoice="5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"))
    bodies = [r.content for r in ledger.requests if r.method == "PUT"]
    assert b'"Amount":2.125' in bodies[0]
    assert b'"Amount":5000,' in bodies[1]


def test_a_payment_without_the_account_code_setting_is_refused_naming_the_key(ledger, make_xero):
    with pytest.raises(ConfigError, match="payment_account_code"):
        make_xero(payment_account_code=None).apply(payment_action())
    assert ledger.requests == []


@pytest.mark.parametrize(
    ("amount", "currency", "reason"),
    [
        ("0", "USD", "above zero"),
        ("-5.00", "USD", "above zero"),
        ("12.345", "USD", "not an exact amount"),
        ("12.5", "JPY", "not an exact amount"),
    ],
)
def test_an_amount_that_cannot_be_a_payment_is_refused_before_anything_is_sent(
    ledger, make_xero, amount, currency, reason
):
    with pytest.raises(InvalidRequestError, match=reason):
        make_xero().apply(payment_action(amount, currency))
    assert ledger.requests == []


def test_a_payment_in_another_currency_than_the_invoice_is_refused(ledger, make_xero):
    with pytest.raises(InvalidRequestError, match="is in USD, the payment in EUR"):
        make_xero().apply(payment_action("749.75", "EUR"))
    assert ledger.payments_made == []
    assert [r.method for r in ledger.requests] == ["GET"]


def test_an_answer_in_another_currency_is_reported(ledger, make_xero):
    def booked_in_nzd(payment):
        answer = fixture("payment_created.json")
        answer["Payments"][0]["Invoice"]["CurrencyCode"] = "NZD"
        return answer

    ledger.payment_answer = booked_in_nzd
    with pytest.raises(InvalidRequestError, match="booked in NZD, not USD"):
        make_xero().apply(payment_action())


def test_xero_validation_errors_are_reported_with_xeros_message(ledger, make_xero):
    ledger.payment_answer = lambda payment: fixture("payment_refused.json")
    with pytest.raises(InvalidRequestError, match="exceeds the amount outstanding"):
        make_xero().apply(payment_action("5000.00"))


def test_send_invoice_emails_it_once_per_idempotency_key(ledger, make_xero):
    action = Action(
        connection="ledger",
        kind="send_invoice",
        target=Ref(system="ledger", object_type="invoice", remote_id=INVOICE_ID),
        payload={"reason": "reminder 1"},
    )
    provider = make_xero()
    first = provider.apply(action)
    provider.apply(action)
    posts = [r for r in ledger.requests if r.method == "POST"]
    assert posts[0].url.path == f"/api.xro/2.0/Invoices/{INVOICE_ID}/Email"
    assert posts[0].headers["Idempotency-Key"] == action.idempotency_key
    assert posts[0].content == b"{}"
    assert ledger.emails_sent == [INVOICE_ID]
    assert first.remote_id == INVOICE_ID
