"""Remittance text read like a clerk: lists and ranges, numbers that are something else,
purchase orders and gateway numbers matched as references, and the periods a line names."""

from __future__ import annotations

import random

import pytest

from connector.reconcile import NumberIndex, reconcile
from connector.reconcile.remittance import Period, mentions, periods
from support.reconcile_cases import inv, pairs, pay


def read(text: str, numbers: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
    """(numeric key, strength, source) of each invoice number read in `text`, with the
    lists and ranges expanded against a book holding `numbers`."""
    index = NumberIndex()
    for n, number in enumerate(numbers):
        index.add(f"i{n}", number)
    return [(m.numeric_key, m.strength, m.source) for m in index.expand(mentions(text)) if not m.reference]


def invoice_numbers(text: str) -> list[str]:
    return [key for key, _, _ in read(text)]


# Lists and ranges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected, source",
    [
        ("42, 43 & 44", ["42", "43", "44"], "list"),
        ("Invoices 42, 43 and 44", ["42", "43", "44"], "list"),
        ("Rechnungen 42, 43 und 44", ["42", "43", "44"], "list"),
        ("42-45", ["42", "43", "44", "45"], "range"),
        ("42 – 45", ["42", "43", "44", "45"], "range"),
        ("42 to 45", ["42", "43", "44", "45"], "range"),
        ("42 through 45", ["42", "43", "44", "45"], "range"),
        ("42 bis 45", ["42", "43", "44", "45"], "range"),
        ("factures 42 à 45", ["42", "43", "44", "45"], "range"),
        ("INV-0042 to INV-0045", ["42", "43", "44", "45"], "range"),
        ("INV-0042-0045", ["42", "43", "44", "45"], "range"),
        ("#42-#45", ["42", "43", "44", "45"], "range"),
        ("INV-0042-45", ["42", "43", "44", "45"], "range"),  # the far end's last digits
        ("INV-0098-01", ["98", "99", "100", "101"], "range"),
        ("10, 11, 12 & 13", ["10", "11", "12", "13"], "list"),
    ],
)
def test_lists_and_ranges_name_every_invoice_in_them(text, expected, source):
    assert read(text) == [(key, "marked", source) for key in expected]


@pytest.mark.parametrize(
    "text, not_read",
    [
        ("inv 42-100", "43"),  # 59 numbers: not a range
        ("inv 45-42", "43"),  # backwards
        ("INV-0042 to SO-0045", "43"),  # the ends are of two series
        ("2026-03-01 to 2026-03-31", "2"),  # a date range
        ("March 1 to 15", "2"),  # days of a month
        ("2-3 days", "2"),
        ("10-20%", "11"),
    ],
)
def test_what_only_looks_like_a_range_is_not_expanded(text, not_read):
    assert not_read not in invoice_numbers(text)


def test_a_range_or_list_keeps_the_invoice_prefix():
    found = mentions("INV-0042 to INV-0044")
    assert [(m.text, m.full_key) for m in found] == [("0042", "INV|42"), ("0043", "INV|43"), ("0044", "INV|44")]


def test_a_dashed_number_an_invoice_has_stays_one_number():
    assert read("INV-2024-0042", numbers=("INV-2024-0042",)) == [("2024|42", "marked", "single")]
    assert read("INV-0042-0045", numbers=("INV-0042-0045",)) == [("42|45", "marked", "single")]
    # with no such invoice, the dashed digits are read as the numbers they join
    assert invoice_numbers("INV-0042-0045") == ["42", "43", "44", "45"]


def test_a_single_number_is_single():
    assert read("Invoice 42") == [("42", "marked", "single")]


def test_a_range_in_the_remittance_pays_each_invoice():
    invoices = [inv(f"i{n}", "100.00", number=f"INV-{n:04d}") for n in range(41, 47)]
    result = reconcile(invoices, [pay("p1", "400.00", remittance="Invoices 42 to 45")])
    assert pairs(result) == [("p1", f"i{n}", "100.00") for n in range(42, 46)]


# Numbers that are not invoice numbers -------------------------------------------------------

NOT_INVOICE_NUMBERS = [
    # percentages
    "50%",
    "50 %",
    "50 percent",
    "50 pct",
    "50% deposit",
    # quantities
    "3 x",
    "3x",
    "x3",
    "qty 3",
    "Qty: 3",
    "3 licences",
    "3 licenses",
    "3 seats",
    "3 users",
    "3 units",
    "3 pcs",
    "3 hours",
    "12 months",
    # years
    "2026",
    "FY2026",
    "FY26",
    "FY 2026",
    "2025-2026",
    # quarters and halves
    "Q3",
    "Q3 2026",
    "Q3/2026",
    "Q3 26",
    "3rd quarter",
    "H1",
    "H2 2026",
    "Q3 subscription (Jul-Sep)",
    # dates
    "5 March 2026",
    "March 5th",
    "March 5th, 2026",
    "5th of March",
    "05/03",
    "5.3.",
    "5. März 2026",
    "le 5 mars 2026",
    "5 de marzo de 2026",
    "5 may 2026",
    "2026-03",
    "2026-03-05",
    "05.03.2026",
    # amounts
    "EUR 2,000",
    "$2000",
    "$ 2000",
    "2000 EUR",
    "2000 €",
    "USD2000",
    "2.000,00",
    "2'000.00",
    "2 000,00",
    "1,250.00",
]


@pytest.mark.parametrize("text", NOT_INVOICE_NUMBERS)
def test_numbers_that_are_something_else_are_not_invoice_numbers(text):
    assert invoice_numbers(text) == []


@pytest.mark.parametrize("noise", NOT_INVOICE_NUMBERS)
def test_an_invoice_number_next_to_other_numbers_is_still_read(noise):
    assert invoice_numbers(f"INV-0042 {noise}") == ["42"]
    assert invoice_numbers(f"{noise} - invoice #42") == ["42"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("INV-0042", ["42"]),
        ("INV0042", ["42"]),
        ("inv 42", ["42"]),
        ("#42", ["42"]),
        ("#0042", ["42"]),
        ("No. 42", ["42"]),
        ("Nr. 0042", ["42"]),
        ("Rechnung Nr. 42", ["42"]),
        ("Ref No. 42", ["42"]),
        ("Invoice 2026", ["2026"]),  # a year-like number after an invoice word is a number
        ("Invoice 42 of 12 March 2026", ["42"]),
        ("Invoice 42 for 3 licences at 50% off", ["42"]),
        ("inv 5/6", ["5", "6"]),  # a list after an invoice word ...
        ("5/6", []),  # ... and a day and month alone
        ("Invoice 5 March", []),  # an invoice of 5 March
        ("fattura 42", ["42"]),
        ("factuur 42", ["42"]),
    ],
)
def test_invoice_numbers_in_the_ledgers_formats_are_read(text, expected):
    assert invoice_numbers(text) == expected


def test_a_plain_number_is_still_a_bare_number():
    assert read("42") == [("42", "bare", "single")]


DATES_AND_AMOUNTS = [
    "{y:04d}-{m:02d}-{d:02d}",
    "{d:02d}/{m:02d}/{y:04d}",
    "{d}.{m}.{y:04d}",
    "{d:02d}.{m:02d}.{yy:02d}",
    "{d} {month} {y}",
    "{month} {d}th, {y}",
    "{d}. {monat} {y}",
    "le {d} {mois} {y}",
    "{d:02d}/{m:02d}",
    "{d}.{m}.",
    "EUR {thousands:,}.{cents:02d}",
    "${units}",
    "{units} EUR",
    "€ {units}",
    "{thousands:,}.{cents:02d}",
    "{units}.{cents:02d}",
    "{units},{cents:02d} EUR",
]
MONTH_NAMES = ["January", "February", "March", "April", "May", "June", "July", "August", "September"]
MONATE = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September"]
MOIS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre"]


@pytest.mark.parametrize("shape", DATES_AND_AMOUNTS)
def test_dates_and_amounts_never_produce_invoice_numbers(shape):
    rng = random.Random(shape)
    for _ in range(200):
        m = rng.randint(1, 9)
        values = {
            "d": rng.randint(1, 28),
            "m": m,
            "y": rng.randint(1995, 2035),
            "yy": rng.randint(0, 99),
            "month": MONTH_NAMES[m - 1],
            "monat": MONATE[m - 1],
            "mois": MOIS[m - 1],
            "thousands": rng.randint(1000, 9_999_999),
            "units": rng.randint(1, 99_999),
            "cents": rng.randint(0, 99),
        }
        text = shape.format(**values)
        assert invoice_numbers(text) == [], text
        assert invoice_numbers(f"paid INV-0042 {text}") == ["42"], text


# Purchase orders, references and the gateway's numbers --------------------------------------


def _book() -> NumberIndex:
    index = NumberIndex()
    index.add("i184", "INV-0184", ["PO-2026-0214"])
    index.add("i214", "INV-0214")
    index.add("i4711", "4711")
    index.add("i7", "INV-0007", ["PO-4711", "ABC-12"])
    index.add("i12", "INV-0012")
    return index


@pytest.mark.parametrize(
    "text, expected",
    [
        ("PO#2026-0214", ["i184"]),
        ("PO 2026-0214", ["i184"]),
        ("PO-2026-0214", ["i184"]),
        ("P.O. 4711", ["i7"]),
        ("purchase order 4711", ["i7"]),
        ("your order 4711", ["i7"]),
        ("order no 4711", ["i7"]),
        ("ref PO-4711", ["i7"]),
        ("your ref ABC-12", ["i7"]),
        ("Referenz ABC-12", ["i7"]),
        ("customer 4711", ["i7"]),
        ("your ref XYZ-12", []),  # another reference with the same digits is not it
    ],
)
def test_purchase_orders_and_references_match_only_the_invoice_references(text, expected):
    index = _book()
    found = mentions(text)
    assert found and all(m.reference for m in found)
    ids = [i for m in index.expand(found) for i in index.lookup(m)[0]]
    assert ids == expected
    assert index.lookup(found[0])[1] == "reference"  # never "number": not INV-0214, 4711 or INV-0012


def test_a_purchase_order_number_pays_the_invoice_that_quotes_it():
    invoices = [
        inv("i184", "900.00", number="INV-0184"),
        inv("i214", "900.00", number="INV-0214"),
        inv("i2026", "900.00", number="INV-2026"),
    ]
    result = reconcile(
        invoices, [pay("p1", "900.00", remittance="PO#2026-0214")], references={"i184": ["PO-2026-0214"]}
    )
    assert pairs(result) == [("p1", "i184", "900.00")]


@pytest.mark.parametrize(
    "remittance, wrong",
    [("Q3 subscription (Jul-Sep)", "i3"), ("50% deposit", "i50"), ("3 licences", "i3"), ("FY2026 fees", "i2026")],
)
def test_a_period_or_quantity_does_not_pay_the_invoice_with_that_number(remittance, wrong):
    invoices = [
        inv("i3", "300.00", number="INV-0003"),
        inv("i50", "300.00", number="INV-0050"),
        inv("i2026", "300.00", number="INV-2026"),
        inv("i9", "300.00", number="INV-0009"),
    ]
    result = reconcile(invoices, [pay("p1", "300.00", remittance=remittance)])
    assert wrong not in {invoice for _, invoice, _ in pairs(result)}


def test_a_gateway_number_is_matched_whole_among_numbers_and_references():
    index = NumberIndex()
    index.add("ledger", "INV-0042", ["A1B2C3D4-0042"])  # the ledger's invoice, known to the gateway
    index.add("other42", "42")
    index.add("gateway", "Z9Y8X7W6-0017")
    (found,) = mentions("Payment for A1B2C3D4-0042, thanks")
    assert found.text == "A1B2C3D4-0042"
    assert index.lookup(found) == (["ledger"], "reference")
    assert index.lookup(mentions("invoice #Z9Y8X7W6-0017")[0]) == (["gateway"], "number")
    # its last digits alone are not an invoice number
    assert "42" not in {m.numeric_key for m in mentions("A1B2C3D4-0042")}
    # a prefix of digits only, or of letters only, is the same kind of number
    index.add("digits", "INV-0099", ["31415926-0003"])
    index.add("letters", "INV-0098", ["ABCDEFGH-0003"])
    assert index.lookup(mentions("Payment 31415926-0003")[0]) == (["digits"], "reference")
    assert index.lookup(mentions("Payment ABCDEFGH-0003")[0]) == (["letters"], "reference")


def test_a_gateway_number_in_the_remittance_pays_the_ledger_invoice():
    invoices = [inv("i42", "120.00", number="INV-0042"), inv("i43", "120.00", number="INV-0043")]
    payments = [pay("p1", "120.00", remittance="A1B2C3D4-0043")]
    result = reconcile(invoices, payments, references={"i43": ["A1B2C3D4-0043"]})
    assert pairs(result) == [("p1", "i43", "120.00")]


# Periods ------------------------------------------------------------------------------------


def months_of(text: str) -> list[tuple[list[int], int | None]]:
    return [(sorted(p.months), p.year) for p in periods(text)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("for March", [([3], None)]),
        ("Mar 2026", [([3], 2026)]),
        ("Sept 2026", [([9], 2026)]),
        ("März", [([3], None)]),
        ("Rechnung Mai 2026", [([5], 2026)]),
        ("mars 2026", [([3], 2026)]),
        ("marzo", [([3], None)]),
        ("maart", [([3], None)]),
        ("agosto 2026", [([8], 2026)]),
        ("Jul-Sep", [([7, 8, 9], None)]),
        ("July to September", [([7, 8, 9], None)]),
        ("Jul–Sep 2026", [([7, 8, 9], 2026)]),
        ("Nov-Feb", [([1, 2, 11, 12], None)]),
        ("Q1", [([1, 2, 3], None)]),
        ("Q3 2026", [([7, 8, 9], 2026)]),
        ("Q3/2026", [([7, 8, 9], 2026)]),
        ("Q3 26", [([7, 8, 9], 2026)]),
        ("Q4", [([10, 11, 12], None)]),
        ("H1", [([1, 2, 3, 4, 5, 6], None)]),
        ("H2 2026", [([7, 8, 9, 10, 11, 12], 2026)]),
        ("1st quarter", [([1, 2, 3], None)]),
        ("3. Quartal 2026", [([7, 8, 9], 2026)]),
        ("second half", [([7, 8, 9, 10, 11, 12], None)]),
        ("Q3 subscription (Jul-Sep)", [([7, 8, 9], None), ([7, 8, 9], None)]),
        ("payment for May", [([5], None)]),
        ("March subscription", [([3], None)]),
        ("June retainer", [([6], None)]),
        ("May 2026", [([5], 2026)]),
        ("May 5", [([5], None)]),
        ("April and May", [([4], None), ([5], None)]),
        ("5 may 2026", [([5], 2026)]),
        ("Jan 2026", [([1], 2026)]),
    ],
)
def test_periods_are_read_in_every_language(text, expected):
    assert months_of(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "we may pay later",
        "May the invoice be paid",
        "march on",
        "March",  # alone, with nothing to say it is a month
        "Jan Smith",
        "payment may 2026",  # lower-case English "may" next to a year only: a verb
        "decimal",
        "Marathon",
        "sept licences",
        "Q5",
        "H3",
        "Mars bars",
        "INV-0042",
    ],
)
def test_ordinary_words_are_not_periods(text):
    assert periods(text) == []


def test_a_period_keeps_the_words_it_was_read_from():
    assert periods("Retainer Jul–Sep 2026, thanks") == [Period(frozenset({7, 8, 9}), 2026, "Jul–Sep 2026")]
    assert periods(None) == [] and periods("") == []
