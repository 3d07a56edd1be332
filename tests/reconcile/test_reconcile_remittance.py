"""Invoice numbers read from messy remittance text."""

from __future__ import annotations

import pytest

from connector.reconcile import mentions, number_keys, reconcile
from support.reconcile_cases import inv, pairs, pay


@pytest.mark.parametrize(
    "text",
    [
        "INV-0042",
        "inv 42",
        "#42",
        "INV0042",
        "Invoice #42",
        "invoice no. 42",
        "Payment INV-42 thx",
        "RE: inv-0042 / ACME Corp",
        "Rechnung 42",
        "paid on 2024-03-05 for INV 0042 (1,250.00)",
    ],
)
def test_messy_remittance_forms_find_the_invoice(text):
    invoices = [inv("i42", "1250.00", number="INV-0042"), inv("i43", "1250.00", number="INV-0043")]
    result = reconcile(invoices, [pay("p1", "1250.00", remittance=text)])
    assert pairs(result) == [("p1", "i42", "1250.00")]
    assert result.applied[0].rule == "remittance_number"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Invoice #42 + #43", ["42", "43"]),
        ("Invoices 42, 43 and 44", ["42", "43", "44"]),
        ("INV-0042, 0043", ["42", "43"]),
        ("inv 42 & 43", ["42", "43"]),
        ("INV-2024-001", ["2024|1"]),
    ],
)
def test_lists_of_numbers_are_read_in_order(text, expected):
    found = mentions(text)
    assert [m.numeric_key for m in found] == expected
    assert all(m.strength == "marked" for m in found)


def test_dates_and_amounts_are_not_read_as_numbers():
    assert mentions("paid 12/03/2024 amount 1,250.00 and 3.125 KWD on 2024-03-05") == []


def test_number_keys_ignore_case_punctuation_and_leading_zeros():
    assert number_keys("INV-0042") == number_keys("inv 42") == number_keys("INV0042") == ("INV|42", "42")
    assert number_keys("0042") == ("42", "42")


def test_a_bare_number_counts_only_when_one_open_invoice_can_mean_it():
    invoices = [inv("i42", "300.00", number="INV-0042"), inv("i9", "100.00", number="INV-0009")]
    result = reconcile(invoices, [pay("p1", "300.00", remittance="42")])
    assert pairs(result) == [("p1", "i42", "300.00")]

    two_series = [inv("i42", "300.00", number="INV-0042"), inv("s42", "200.00", number="SO-42")]
    result = reconcile(two_series, [pay("p1", "250.00", remittance="42")])
    assert result.applied == []


def test_a_bare_number_equal_to_the_amount_is_not_an_invoice_number():
    invoices = [
        inv("i500", "80.00", number="INV-0500"),
        inv("i2", "500.00", number="INV-0002"),
        inv("i3", "500.00", number="INV-0003"),
    ]
    result = reconcile(invoices, [pay("p1", "500.00", remittance="500")])
    assert result.applied == []
    assert "i500" not in {i for c in result.proposals[0].candidates for i in c.invoice_ids}


def test_a_purchase_order_number_matches_the_invoice_reference():
    invoices = [inv("i1", "700.00", number="INV-0001"), inv("i2", "700.00", number="INV-0002")]
    payments = [pay("p1", "700.00", remittance="PO 7781")]
    result = reconcile(invoices, payments, references={"i2": ["PO-7781"]})
    assert pairs(result) == [("p1", "i2", "700.00")]
    # a PO number is never read as an invoice number
    result = reconcile([inv("i1", "700.00", number="7781"), inv("i2", "700.00")], payments)
    assert result.applied == []


def test_a_number_of_another_customers_invoice_is_only_proposed():
    invoices = [inv("i1", "100.00", number="INV-0042", customer="c2"), inv("i2", "90.00")]
    result = reconcile(invoices, [pay("p1", "100.00", remittance="INV-0042")])
    assert result.applied == []
    best = result.proposals[0].candidates[0]
    assert best.invoice_ids == ("i1",) and "another customer" in best.reason


def test_a_marked_number_applies_when_the_payer_is_unknown():
    invoices = [inv("i1", "100.00", number="INV-0042", customer="c2")]
    result = reconcile(invoices, [pay("p1", "100.00", customer=None, remittance="INV-0042")])
    assert pairs(result) == [("p1", "i1", "100.00")]


@pytest.mark.parametrize("text", ["inv 37/38", "Invoices 37/38", "INV 0037/0038", "inv 37-38", "#37/38"])
def test_numbers_joined_by_a_slash_or_dash_after_an_invoice_word_pay_each_invoice(text):
    invoices = [
        inv("i37", "100.00", number="INV-0037"),
        inv("i38", "50.00", number="INV-0038"),
        inv("i39", "150.00", number="INV-0039"),
    ]
    result = reconcile(invoices, [pay("p1", "150.00", remittance=text)])
    assert pairs(result) == [("p1", "i37", "100.00"), ("p1", "i38", "50.00")]
    assert result.applied[0].rule == "remittance_number"


def test_a_dashed_invoice_number_that_exists_stays_one_number():
    invoices = [
        inv("i1", "420.00", number="INV-2024-0042"),
        inv("i2024", "420.00", number="INV-2024"),
        inv("i42", "420.00", number="INV-0042"),
    ]
    result = reconcile(invoices, [pay("p1", "420.00", remittance="inv 2024-0042")])
    assert pairs(result) == [("p1", "i1", "420.00")]
    slashed = [inv("s1", "420.00", number="2024/0042"), inv("s42", "420.00", number="0042")]
    result = reconcile(slashed, [pay("p1", "420.00", remittance="Invoice 2024/0042")])
    assert pairs(result) == [("p1", "s1", "420.00")]
