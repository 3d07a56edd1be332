"""The scenario generator: deterministic, internally consistent, every feature in `small`."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import date
from decimal import Decimal

import pytest

from connector.money import currency_exponent
from connector.sandbox.generator import SIZES, dumps, generate, load_data

BUCKETS = {"current", "1-30", "31-60", "61-90", "90+"}


@pytest.fixture(scope="module")
def small():
    return generate(7, "small")


@pytest.fixture(scope="module")
def medium():
    return generate(11, "medium")


def minor(text: str | Decimal, currency: str) -> int:
    value = Decimal(text).scaleb(currency_exponent(currency))
    assert value == value.to_integral_value(), (text, currency)
    return int(value)


def walk(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)
    else:
        yield value


def test_same_seed_size_and_day_give_the_same_book():
    first, second = generate(3, "small"), generate(3, "small")
    assert dumps(first.data) == dumps(second.data)
    assert dumps(first.truth) == dumps(second.truth)
    assert dumps(generate(4, "small").data) != dumps(first.data)
    assert dumps(generate(3, "small", today=date(2027, 3, 1)).data) != dumps(first.data)


def test_unknown_size_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="small, medium, large"):
        generate(1, "huge")  # type: ignore[arg-type]


def test_money_is_never_a_float(small):
    assert not any(isinstance(v, float) for v in walk(small.data))
    assert not any(isinstance(v, float) for v in walk(small.truth))


@pytest.mark.parametrize("book", ["small", "medium"])
def test_xero_invoices_add_up(book, request):
    data = request.getfixturevalue(book).data["xero"]
    payments = Counter()
    for payment in data["Payments"]:
        payments[payment["Invoice"]["InvoiceID"]] += payment["Amount"]
    credits = Counter()
    for note in data["CreditNotes"]:
        assert note["Total"] == note["SubTotal"] + note["TotalTax"]
        assert note["RemainingCredit"] == note["Total"] - sum(a["Amount"] for a in note["Allocations"])
        for allocation in note["Allocations"]:
            credits[allocation["Invoice"]["InvoiceID"]] += allocation["Amount"]
    for inv in data["Invoices"]:
        lines = inv["LineItems"]
        assert inv["Type"] == "ACCREC" and inv["InvoiceNumber"].startswith("INV-")
        assert all(li["LineAmount"] == li["UnitAmount"] * li["Quantity"] for li in lines)
        assert inv["SubTotal"] == sum(li["LineAmount"] for li in lines)
        assert inv["TotalTax"] == sum(li["TaxAmount"] for li in lines)
        assert inv["Total"] == inv["SubTotal"] + inv["TotalTax"]
        assert inv["AmountPaid"] == payments[inv["InvoiceID"]] == sum(p["Amount"] for p in inv["Payments"])
        assert inv["AmountCredited"] == credits[inv["InvoiceID"]]
        assert inv["AmountDue"] == inv["Total"] - inv["AmountPaid"] - inv["AmountCredited"] >= 0
        assert inv["Status"] == ("PAID" if inv["AmountDue"] == 0 else "AUTHORISED")
        assert inv["Date"].startswith("/Date(") and inv["DueDate"].endswith("+0000)/")


@pytest.mark.parametrize("book", ["small", "medium"])
def test_stripe_amounts_follow_the_currency_exponent_and_each_other(book, request):
    scenario = request.getfixturevalue(book)
    stripe = scenario.data["stripe"]
    xero = {i["InvoiceNumber"]: i for i in scenario.data["xero"]["Invoices"]}
    charges = {c["id"]: c for c in stripe["charges"]}
    for inv in stripe["invoices"]:
        currency = inv["currency"].upper()
        assert inv["total"] == minor(xero[inv["number"]]["Total"], currency)
        assert (
            inv["total"]
            == inv["subtotal"] + (inv["tax"] or 0)
            == sum(li["amount"] for li in inv["lines"]["data"]) + (inv["tax"] or 0)
        )
        assert inv["amount_remaining"] == inv["amount_due"] - inv["amount_paid"]
        if inv["status"] == "paid":
            assert inv["amount_paid"] == inv["amount_due"] and inv["paid"]
            assert inv["paid_out_of_band"] == (inv["charge"] is None)
            if inv["charge"]:
                charge = charges[inv["charge"]]
                assert charge["invoice"] == inv["id"] and charge["amount"] == inv["amount_paid"]
        else:
            assert inv["status"] == "open" and inv["amount_paid"] == 0 and not inv["paid"]
    amounts = [
        (o["currency"], o[k])
        for kind in ("invoices", "charges", "refunds", "payouts", "balance_transactions")
        for o in stripe[kind]
        for k in ("amount", "total", "fee", "net")
        if k in o
    ]
    assert {c for c, _ in amounts} == {"usd", "eur", "jpy", "kwd"}
    for currency, amount in amounts:
        assert isinstance(amount, int)
        if currency == "kwd":
            assert amount % 10 == 0, "Stripe requires the last of KWD's three digits to be 0"
    for txn in stripe["balance_transactions"]:
        assert txn["net"] == txn["amount"] - txn["fee"] == txn["amount"] - sum(f["amount"] for f in txn["fee_details"])
    for charge in stripe["charges"]:
        assert charge["amount_refunded"] == sum(r["amount"] for r in stripe["refunds"] if r["charge"] == charge["id"])
        assert charge["refunded"] == (charge["amount_refunded"] == charge["amount"])
    jpy = [x for x in xero.values() if x["CurrencyCode"] == "JPY"]
    assert jpy and all(x["Total"] == x["Total"].to_integral_value() for x in jpy)
    kwd = next(x for x in xero.values() if x["CurrencyCode"] == "KWD")
    assert next(i for i in stripe["invoices"] if i["number"] == kwd["InvoiceNumber"])["total"] == int(
        kwd["Total"] * 1000
    )


def test_payouts_pay_out_the_net_of_their_balance_transactions(small):
    txns = {t["id"]: t for t in small.data["stripe"]["balance_transactions"]}
    payouts = {p["id"]: p for p in small.data["stripe"]["payouts"]}
    assert payouts
    for entry in small.truth["payouts"]:
        payout = payouts[entry["id"]]
        assert payout["amount"] == sum(txns[t]["net"] for t in entry["balance_transactions"]) > 0
        assert minor(entry["amount"], entry["currency"]) == payout["amount"]
        assert txns[payout["balance_transaction"]]["amount"] == -payout["amount"]


def test_hubspot_objects_have_string_properties_and_numeric_ids(small):
    for kind, objects in small.data["hubspot"].items():
        assert objects, kind
        for obj in objects:
            assert obj["id"].isdigit() and obj["properties"]["hs_object_id"] == obj["id"]
            assert all(isinstance(v, str) for v in obj["properties"].values())
            assert obj["archived"] is False and obj["updatedAt"] >= obj["createdAt"]
    numbers = {i["InvoiceNumber"] for i in small.data["xero"]["Invoices"]}
    assert {d["properties"]["ar_invoice_number"] for d in small.data["hubspot"]["deals"]} <= numbers


def test_small_book_has_every_feature(small):
    summary = small.truth["summary"]
    assert 15 <= summary["customers"] <= 25 and 50 <= summary["invoices"] <= 70
    assert set(summary["buckets"]) == BUCKETS | {"settled"}
    assert set(summary["currencies"]) == {"USD", "EUR", "JPY", "KWD"}
    assert set(summary["invoice_scenarios"]) >= {
        "open",
        "card_invoice",
        "bank_full",
        "bank_partial",
        "card_partial",
        "card_text",
        "card_po",
        "bank_po",
        "overpay",
        "overpay_refunded",
        "duplicate_refunded",
        "multi_bank",
        "multi_card",
        "ambiguous",
        "credit_note",
        "disputed",
        "promise",
        "plan",
    }
    assert set(summary["stripe_links"]) == {"metadata", "number_only", "none"}
    assert set(summary["customer_systems"]) == {"xero+stripe+hubspot", "xero+stripe", "xero+hubspot"}
    assert summary["payment_methods"]["card"] and summary["payment_methods"]["bank_transfer"]
    for label in (
        "paused_customers",
        "multi_invoice_payments",
        "overpayments",
        "refunded_payments",
        "undeterminable_payments",
        "disputed",
        "promises_to_pay",
        "payment_plans",
        "payouts",
    ):
        assert summary[label] >= 1, label
    remittances = " | ".join(p["remittance"] or "" for p in small.truth["payments"])
    for form in ("INV-", "inv ", "Invoice #", "+", "PO", "instalment"):
        assert form.lower() in remittances.lower(), form
    xero_only = [p for p in small.truth["payments"] if p["method"] == "bank_transfer"]
    assert all(p["xero_payment_ids"] and p["stripe_charge_id"] is None for p in xero_only)
    assert small.data["stripe"]["events"], "recent changes appear as Stripe events"
    assert {"090", "615"} <= {a["Code"] for a in small.data["xero"]["Accounts"]}


def test_open_invoices_sit_in_the_bucket_their_due_date_gives(small):
    today = small.today
    for inv in small.truth["invoices"]:
        overdue = (today - date.fromisoformat(inv["due_date"])).days
        if Decimal(inv["balance"]) == 0:
            assert inv["bucket"] is None
        else:
            expected = (
                "current"
                if overdue <= 0
                else "1-30"
                if overdue <= 30
                else "31-60"
                if overdue <= 60
                else ("61-90" if overdue <= 90 else "90+")
            )
            assert inv["bucket"] == expected and inv["days_past_due"] == overdue


@pytest.mark.parametrize("book", ["small", "medium"])
def test_truth_covers_every_payment_and_never_allocates_more_than_it_received(book, request):
    scenario = request.getfixturevalue(book)
    truth, data = scenario.truth, scenario.data
    charges = {c["id"] for c in data["stripe"]["charges"]}
    xero_payments = {p["PaymentID"]: p for p in data["xero"]["Payments"]}
    assert {p["stripe_charge_id"] for p in truth["payments"]} - {None} == charges
    assert {i for p in truth["payments"] for i in p["xero_payment_ids"]} == set(xero_payments)
    invoices = {i["xero_invoice_id"]: i for i in truth["invoices"]}
    paid = Counter()
    for payment in truth["payments"]:
        currency = payment["currency"]
        exponent = currency_exponent(currency)
        for field in ("amount", "refunded", "unallocated"):
            assert Decimal(payment[field]).as_tuple().exponent == -exponent
        shares = [Decimal(a["amount"]) for a in payment["allocations"]]
        assert all(a["currency"] == currency and Decimal(a["amount"]) > 0 for a in payment["allocations"])
        assert sum(shares) + Decimal(payment["refunded"]) + Decimal(payment["unallocated"]) == Decimal(
            payment["amount"]
        )
        assert sum(shares) <= Decimal(payment["amount"])
        assert truth["determinable"][payment["id"]] is payment["determinable"]
        for allocation in payment["allocations"]:
            invoice = invoices[allocation["xero_invoice_id"]]
            assert invoice["number"] == allocation["invoice_number"] and invoice["currency"] == currency
            paid[allocation["xero_invoice_id"]] += Decimal(allocation["amount"])
        ids = payment["xero_payment_ids"]
        if ids:  # what Xero recorded for it agrees with the truth
            recorded = sorted((xero_payments[i]["Invoice"]["InvoiceID"], xero_payments[i]["Amount"]) for i in ids)
            assert recorded == sorted((a["xero_invoice_id"], Decimal(a["amount"])) for a in payment["allocations"])
        if payment["stripe_charge_id"]:
            charge = next(c for c in data["stripe"]["charges"] if c["id"] == payment["stripe_charge_id"])
            assert charge["amount"] == minor(payment["amount"], currency)
            assert charge["amount_refunded"] == minor(payment["refunded"], currency)
    for invoice in truth["invoices"]:
        assert Decimal(invoice["paid"]) == paid[invoice["xero_invoice_id"]]
        assert (
            Decimal(invoice["balance"])
            == Decimal(invoice["total"]) - Decimal(invoice["credited"]) - Decimal(invoice["paid"])
            >= 0
        )


def test_an_undeterminable_payment_could_be_either_of_two_equal_invoices(small):
    payment = next(p for p in small.truth["payments"] if not p["determinable"])
    candidates = [i for i in small.truth["invoices"] if i["number"] in payment["candidates"]]
    assert len(candidates) == 2 and len({i["total"] for i in candidates}) == 1
    assert candidates[0]["total"] == payment["amount"]
    charge = next(c for c in small.data["stripe"]["charges"] if c["id"] == payment["stripe_charge_id"])
    assert charge["invoice"] is None and "INV" not in (charge["description"] or "")


def test_stripe_invoices_link_to_xero_by_metadata_or_by_number(small):
    xero = {i["InvoiceID"]: i for i in small.data["xero"]["Invoices"]}
    stripe = {i["id"]: i for i in small.data["stripe"]["invoices"]}
    for inv in small.truth["invoices"]:
        if inv["stripe_invoice_id"] is None:
            continue
        mirrored = stripe[inv["stripe_invoice_id"]]
        assert mirrored["number"] == xero[inv["xero_invoice_id"]]["InvoiceNumber"]
        linked = mirrored["metadata"].get("xero_invoice_id")
        assert linked == (inv["xero_invoice_id"] if inv["links"]["stripe"] == "metadata" else None)


def test_written_files_read_back_exactly(small, tmp_path):
    small.write(tmp_path / "book.json", tmp_path / "truth.json")
    data = load_data(tmp_path / "book.json")
    assert dumps(data) == dumps(json.loads(dumps(small.data), parse_float=Decimal))
    assert json.loads((tmp_path / "truth.json").read_text()) == small.truth
    invoice = data["xero"]["Invoices"][0]
    assert invoice["Total"] == small.data["xero"]["Invoices"][0]["Total"]


def test_medium_book_generates_quickly():
    started = time.perf_counter()
    scenario = generate(5, "medium")
    assert time.perf_counter() - started < 5
    assert len(scenario.data["xero"]["Invoices"]) == SIZES["medium"][1]
