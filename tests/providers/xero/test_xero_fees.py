"""Gateway fees booked in Xero as spend money from the clearing account to the fee account."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
import respx

from connector.errors import ConfigError
from connector.http import dumps_exact
from connector.model import Action, Ref
from support.openapi import check_response
from support.xero_fakes import API


def fee_action(amount="2.90", currency="USD"):
    return Action(
        connection="ledger",
        kind="record_fee",
        target=Ref(system="gateway", object_type="payment", remote_id="ch_3Fee"),
        payload={
            "amount": amount,
            "currency": currency,
            "date": "2026-11-20",
            "reference": "ch_3Fee",
            "description": "gateway fee on ch_3Fee",
        },
    )


def answer(body):
    booked = dict(
        body["BankTransactions"][0], BankTransactionID="5f8b1b4e-1f0a-4c1e-9b4e-2b7f8e0c1a11", Status="AUTHORISED"
    )
    return {
        "Id": "8a2c3e4f-0000-4000-8000-000000000001",
        "Status": "OK",
        "ProviderName": "test",
        "DateTimeUTC": "/Date(1795000000000)/",
        "BankTransactions": [booked],
    }


def test_a_fee_is_spend_money_from_the_clearing_account_with_an_idempotency_key(make_xero):
    provider = make_xero(payment_account_code="615", fee_account_code="404")
    sent = []
    with respx.mock(assert_all_called=False) as router:

        def respond(request):
            body = json.loads(request.content, parse_float=Decimal)
            sent.append((request, body))
            return httpx.Response(200, content=dumps_exact(answer(body)), headers={"Content-Type": "application/json"})

        router.put(f"{API}/BankTransactions").mock(side_effect=respond)
        result = provider.apply(fee_action())
    request, body = sent[0]
    assert request.headers["Idempotency-Key"] == fee_action().idempotency_key
    booked = body["BankTransactions"][0]
    assert booked["Type"] == "SPEND" and booked["BankAccount"] == {"Code": "615"}
    assert booked["LineItems"][0]["AccountCode"] == "404" and booked["LineItems"][0]["UnitAmount"] == Decimal("2.90")
    assert result.remote_id == "5f8b1b4e-1f0a-4c1e-9b4e-2b7f8e0c1a11"
    check_response("xero", "PUT", "/BankTransactions", json.loads(dumps_exact(answer(body))))  # the document's shape


def test_a_fee_in_kwd_goes_out_exact_to_the_fils(make_xero):
    provider = make_xero(payment_account_code="615", fee_account_code="404")
    with respx.mock(assert_all_called=False) as router:
        seen = []
        router.put(f"{API}/BankTransactions").mock(
            side_effect=lambda r: (
                seen.append(r.content),
                httpx.Response(200, content=dumps_exact(answer(json.loads(r.content, parse_float=Decimal)))),
            )[1]
        )
        provider.apply(fee_action("1.235", "KWD"))
    assert b'"UnitAmount":1.235' in seen[0]


def test_without_a_fee_account_the_fee_is_refused_naming_the_key(make_xero):
    with pytest.raises(ConfigError, match="fee_account_code"):
        make_xero(payment_account_code="615").apply(fee_action())
