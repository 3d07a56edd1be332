"""The trap book: deterministic, in the providers' own shapes, every trap labelled and its truth
consistent."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import pytest

from connector.money import currency_exponent
from connector.sandbox.generator import dumps, generate
from connector.sandbox.generator_traps import EXPECTED, ORDINARY, TRAPS, expected_of, generate_traps
from support.openapi import check_response

SEEDS = (3, 11, 29)


@pytest.fixture(scope="module", params=SEEDS)
def scenario(request):
    return generate_traps(request.param)


@pytest.fixture(scope="module")
def wire():
    # As it goes over the wire: Decimal amounts become JSON numbers.
    return json.loads(dumps(generate_traps(3).data))


def test_the_same_seed_gives_the_same_book_byte_for_byte():
    first, again = generate_traps(5), generate_traps(5)
    assert dumps(first.data) == dumps(again.data)
    assert json.dumps(first.truth) == json.dumps(again.truth)
    assert dumps(generate_traps(6).data) != dumps(first.data)


def test_every_trap_is_in_the_book_several_times(scenario):
    traps = Counter(p["trap"] for p in scenario.truth["payments"])
    assert set(traps) == {*TRAPS, ORDINARY}
    assert all(traps[t] >= 4 for t in TRAPS), traps
    assert 170 <= len(scenario.truth["payments"]) <= 230
    # about half ordinary, so the figures are realistic
    assert 0.4 <= traps[ORDINARY] / len(scenario.truth["payments"]) <= 0.6
    assert scenario.size == "traps" and scenario.truth["summary"]["traps"] == dict(sorted(traps.items()))


def test_every_label_and_currency_is_there(scenario):
    payments = scenario.truth["payments"]
    assert {p["expected"] for p in payments} == set(EXPECTED)
    assert {p["currency"] for p in payments} == {"USD", "EUR", "JPY", "KWD"}
    applied = {p["currency"] for p in payments if p["expected"] == "apply" and p["trap"] != ORDINARY}
    assert {"USD", "JPY", "KWD"} <= applied


def test_money_adds_up_for_every_payment(scenario):
    for p in scenario.truth["payments"]:
        places = Decimal(1).scaleb(-currency_exponent(p["currency"]))
        amounts = [p["amount"], p["refunded"], p["unallocated"], *(a["amount"] for a in p["allocations"])]
        assert all(Decimal(a) == Decimal(a).quantize(places) for a in amounts), p
        allocated = sum((Decimal(a["amount"]) for a in p["allocations"]), Decimal(0))
        assert allocated + Decimal(p["refunded"]) + Decimal(p["unallocated"]) == Decimal(p["amount"]), p
        if p["currency"] == "KWD" and p["stripe_charge_id"]:
            assert p["amount"].endswith("0")  # Stripe's last KWD digit


def test_labels_agree_with_the_allocations(scenario):
    for p in scenario.truth["payments"]:
        assert p["expected"] == expected_of(p)
        if p["expected"] in ("credit", "none"):
            assert p["allocations"] == [], p
        else:
            assert p["allocations"], p
        if p["expected"] == "propose":
            assert p["candidates"], p
            named = {a["invoice_number"] for a in p["allocations"]}
            assert named <= set(p["candidates"]), p
        if p["expected"] == "credit":
            assert p["unallocated"] == p["amount"]
        if p["expected"] == "none":
            assert p["refunded"] == p["amount"]


def test_invoices_of_the_truth_exist_and_balance(scenario):
    invoices = {i["number"]: i for i in scenario.truth["invoices"]}
    xero = {i["InvoiceNumber"]: i for i in scenario.data["xero"]["Invoices"]}
    assert invoices.keys() == xero.keys()
    paid: Counter[str] = Counter()
    for p in scenario.truth["payments"]:
        for a in p["allocations"]:
            assert xero[a["invoice_number"]]["InvoiceID"] == a["xero_invoice_id"]
            if a["currency"] == invoices[a["invoice_number"]]["currency"]:
                paid[a["invoice_number"]] += Decimal(a["amount"])
    for number, invoice in invoices.items():
        assert Decimal(invoice["paid"]) == paid[number], number
        assert Decimal(invoice["total"]) - Decimal(invoice["credited"]) - Decimal(invoice["paid"]) == Decimal(
            invoice["balance"]
        )


def test_traps_show_what_their_name_says(scenario):
    payments = scenario.truth["payments"]
    invoices = {i["number"]: i for i in scenario.truth["invoices"]}
    charges = {c["id"]: c for c in scenario.data["stripe"]["charges"]}
    disputes = {d["charge"]: d for d in scenario.data["stripe"]["disputes"]}
    for p in payments:
        trap, charge = p["trap"], charges.get(p["stripe_charge_id"] or "")
        if trap == "cross_currency":
            assert p["currency"] == "EUR" and invoices[p["allocations"][0]["invoice_number"]]["currency"] != "EUR"
        if trap == "amount_typo":
            named = p["candidates"][1]
            assert sorted(named) != named and sorted(named) == sorted(p["allocations"][0]["invoice_number"])
            assert invoices[named]["total"] != p["amount"] and invoices[p["candidates"][0]]["total"] == p["amount"]
        if trap in ("dispute_lost", "dispute_won"):
            dispute = disputes[p["stripe_charge_id"]]
            assert charge is not None and charge["disputed"] is True
            assert dispute["status"] == trap.removeprefix("dispute_")
            categories = [t["reporting_category"] for t in dispute["balance_transactions"]]
            assert categories == (["dispute"] if trap == "dispute_lost" else ["dispute", "dispute_reversal"])
        if trap == "dispute_lost":
            number = charge and next(i for i in scenario.data["stripe"]["invoices"] if i["charge"] == charge["id"])
            assert number and invoices[number["number"]]["balance"] == invoices[number["number"]]["total"]
        if trap == "charge_failed":
            assert charge is not None and charge["status"] == "failed" and charge["balance_transaction"] is None
    kinds = {e["type"] for e in scenario.data["stripe"]["events"]}
    assert {"charge.dispute.created", "charge.dispute.closed", "charge.failed"} <= kinds
    groups = [c for c in scenario.data["xero"]["Contacts"] if c["ContactGroups"]]
    assert groups and all(g["ContactGroups"][0]["Status"] == "ACTIVE" for g in groups)
    assert any("hs_parent_company_id" in c["properties"] for c in scenario.data["hubspot"]["companies"])


def test_ordinary_books_are_labelled_too():
    """The scorer reads any book: an ordinary one's payments get their label from the truth."""
    labels = Counter(expected_of(p) for p in generate(7, "small").truth["payments"])
    assert labels["apply"] > 30 and labels["propose"] >= 1 and labels["none"] >= 1


STRIPE = {
    "customers": "/v1/customers",
    "invoices": "/v1/invoices",
    "charges": "/v1/charges",
    "payment_intents": "/v1/payment_intents",
    "refunds": "/v1/refunds",
    "payouts": "/v1/payouts",
    "balance_transactions": "/v1/balance_transactions",
    "events": "/v1/events",
    "disputes": "/v1/disputes",
}


def unusual(book: dict, kind: str) -> list:
    """The objects the trap book adds to an ordinary book's kinds, and a few ordinary ones."""
    objects = book["stripe"][kind]
    odd = [
        o
        for o in objects
        if o.get("disputed")
        or o.get("status") in ("failed", "requires_payment_method")
        or o.get("type") in ("adjustment", "charge.dispute.created", "charge.dispute.closed", "charge.failed")
        or "-" in str(o.get("number") or "INV").removeprefix("INV-")
    ]
    return odd[:12] + objects[:3]


@pytest.mark.parametrize("kind", STRIPE)
def test_stripe_objects_match_the_stripe_document(wire, kind):
    objects = unusual(wire, kind)
    assert objects
    check_response(
        "stripe", "GET", STRIPE[kind], {"object": "list", "data": objects, "has_more": False, "url": STRIPE[kind]}
    )


def test_xero_contacts_in_groups_match_the_xero_document(wire):
    grouped = [c for c in wire["xero"]["Contacts"] if c["ContactGroups"]][:10]
    check_response("xero", "GET", "/Contacts", {"Contacts": grouped})
    check_response("xero", "GET", "/Invoices", {"Invoices": wire["xero"]["Invoices"][:20]})


def test_hubspot_subsidiaries_match_the_hubspot_document(wire):
    subsidiaries = [c for c in wire["hubspot"]["companies"] if "hs_parent_company_id" in c["properties"]]
    check_response("hubspot", "GET", "/crm/v3/objects/companies", {"results": subsidiaries})
