"""Generated objects hold against the providers' own OpenAPI documents (tests/contract/specs/)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from connector.sandbox.generator import dumps, generate
from support.openapi import check_response


@pytest.fixture(scope="module")
def book():
    # As it goes over the wire: Decimal amounts become JSON numbers.
    return json.loads(dumps(generate(21, "small").data))


def sample(objects: list, count: int = 8) -> list:
    """A spread of objects: the first, the last and some between (every scenario shows early)."""
    assert objects
    step = max(1, len(objects) // count)
    return objects[::step][:count] + objects[-1:]


STRIPE = {
    "customers": "/v1/customers",
    "invoices": "/v1/invoices",
    "charges": "/v1/charges",
    "payment_intents": "/v1/payment_intents",
    "refunds": "/v1/refunds",
    "payouts": "/v1/payouts",
    "balance_transactions": "/v1/balance_transactions",
    "events": "/v1/events",
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", STRIPE)
def test_stripe_objects_match_the_stripe_document(book, kind):
    objects = book["stripe"][kind]
    check_response(
        "stripe",
        "GET",
        STRIPE[kind],
        {"object": "list", "data": sample(objects), "has_more": False, "url": STRIPE[kind]},
    )


def test_stripe_document_rejects_a_broken_charge(book):
    """The check is real: a charge with its amount as a string does not pass."""
    broken = dict(book["stripe"]["charges"][0], amount=str(book["stripe"]["charges"][0]["amount"]))
    with pytest.raises(AssertionError):
        check_response(
            "stripe",
            "GET",
            "/v1/charges",
            {"object": "list", "data": [broken], "has_more": False, "url": "/v1/charges"},
        )


@pytest.mark.parametrize("kind", ["Contacts", "Invoices", "CreditNotes", "Payments", "Accounts"])
def test_xero_objects_match_the_xero_document(book, kind):
    check_response("xero", "GET", f"/{kind}", {kind: sample(book["xero"][kind])})


@pytest.mark.parametrize("kind", ["companies", "contacts", "deals", "invoices"])
def test_hubspot_objects_match_the_hubspot_document(book, kind):
    check_response("hubspot", "GET", f"/crm/v3/objects/{kind}", {"results": sample(book["hubspot"][kind])})


def test_xero_amounts_go_out_as_exact_numbers():
    invoice = generate(21, "small").data["xero"]["Invoices"][0]
    text = dumps(invoice)
    assert f'"Total": {invoice["Total"]}' in text
    assert json.loads(text, parse_float=Decimal)["Total"] == invoice["Total"]
