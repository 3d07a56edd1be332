"""Balances as they stood at the end of a day, on a hand-made book with payments, allocations and
credit notes on both sides of the day, in USD, JPY and KWD.

Day D = 2024-09-30. Hand-computed figures:
- Acme (USD): INV-1 100.00 due 08-31, paid by a ledger payment received 10-03: owed 100.00 on D,
  30 days late (1-30). INV-2 300.00 due 10-05; a card payment of 350.00 received 09-20 was
  applied to it on 10-02: on D INV-2 owes 300.00 (current) and 350.00 sits unapplied. INV-3
  issued 10-02 does not exist yet. INV-4 80.00 due 07-31: 50.00 paid per the ledger with no
  payment we know (counts from issue) and 30.00 credited by CN-1 of 09-25: settled on D, but
  on 09-24 it owed 30.00, 55 days late. CN-2 (20.00, unallocated, 09-28) is unapplied credit.
  USD on D: current 300.00, 1-30 100.00, total 400.00, unapplied 350.00, credit 20.00, net 30.00.
- Kaisha (JPY): INV-J1 50000 due 06-30, paid 20000 on 09-15 and 10000 on 10-10 (ledger): owes
  30000 on D, 92 days late (90+); 5000 received 09-29 unapplied: net 25000.
- Gulf (KWD): INV-K1 1.250 due 09-30, 0.500 of a payment of 09-10 applied on 09-12: owes 0.750,
  current; 2.000 received 10-01 is not there yet: net 0.750.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from connector.model import Allocation, CreditNote, Customer, Invoice, Payment
from connector.money import Money
from connector.reports import aging_report
from connector.reports.as_at import (
    Book,
    BookAt,
    CustomerCredit,
    DatedAllocation,
    aging_at,
    aging_of,
    book_at,
    cash_at,
    credit_at,
    invoices_at,
    positions_at,
)

D = date(2024, 9, 30)


def invoice(id_, customer, currency, total, *, issued, due, paid="0", credited="0", number=None):
    def m(v):
        return Money.of(v, currency)

    return Invoice(
        id=id_,
        number=number or id_.upper(),
        customer_id=customer,
        currency=currency,
        issue_date=issued,
        due_date=due,
        subtotal=m(total),
        tax=m("0"),
        total=m(total),
        amount_paid=m(paid),
        amount_credited=m(credited),
    )


def payment(id_, customer, currency, value, received):
    return Payment(
        id=id_,
        amount=Money.of(value, currency),
        received_at=datetime(*received, 14, 0, tzinfo=UTC),
        customer_id=customer,
    )


def alloc(payment_id, invoice_id, currency, value, rule="remittance_number"):
    return Allocation(
        id=f"al-{payment_id}-{invoice_id}",
        payment_id=payment_id,
        invoice_id=invoice_id,
        amount=Money.of(value, currency),
        rule=rule,
        confidence=Decimal(1),
        reason="test",
    )


def note(number, total, remaining, issued, customer, invoices=()):
    return CustomerCredit(
        CreditNote(
            number=number,
            currency="USD",
            issue_date=issued,
            total=Money.of(total, "USD"),
            remaining=Money.of(remaining, "USD"),
        ),
        customer,
        tuple(invoices),
    )


CUSTOMERS = {
    "acme": Customer(id="acme", name="Acme"),
    "kaisha": Customer(id="kaisha", name="株式会社カイシャ"),
    "gulf": Customer(id="gulf", name="شركة الخليج"),
}


@pytest.fixture
def book():
    return Book(
        invoices=[
            invoice("inv-1", "acme", "USD", "100.00", issued=date(2024, 8, 1), due=date(2024, 8, 31), paid="100.00"),
            invoice("inv-2", "acme", "USD", "300.00", issued=date(2024, 9, 5), due=date(2024, 10, 5)),
            invoice("inv-3", "acme", "USD", "50.00", issued=date(2024, 10, 2), due=date(2024, 11, 1)),
            invoice(
                "inv-4",
                "acme",
                "USD",
                "80.00",
                issued=date(2024, 7, 1),
                due=date(2024, 7, 31),
                paid="50.00",
                credited="30.00",
            ),
            invoice("inv-j1", "kaisha", "JPY", "50000", issued=date(2024, 6, 1), due=date(2024, 6, 30), paid="30000"),
            invoice("inv-k1", "gulf", "KWD", "1.250", issued=date(2024, 9, 1), due=date(2024, 9, 30)),
        ],
        payments=[
            payment("p1", "acme", "USD", "100.00", (2024, 10, 3)),
            payment("g1", "acme", "USD", "350.00", (2024, 9, 20)),
            payment("pj1", "kaisha", "JPY", "20000", (2024, 9, 15)),
            payment("pj2", "kaisha", "JPY", "10000", (2024, 10, 10)),
            payment("pj3", "kaisha", "JPY", "5000", (2024, 9, 29)),
            payment("pk1", "gulf", "KWD", "0.500", (2024, 9, 10)),
            payment("pk2", "gulf", "KWD", "2.000", (2024, 10, 1)),
        ],
        recorded=[
            alloc("p1", "inv-1", "USD", "100.00", rule="ledger_record"),
            alloc("pj1", "inv-j1", "JPY", "20000", rule="ledger_record"),
            alloc("pj2", "inv-j1", "JPY", "10000", rule="ledger_record"),
        ],
        applied=[
            DatedAllocation(alloc("g1", "inv-2", "USD", "300.00"), datetime(2024, 10, 2, 8, 0, tzinfo=UTC)),
            DatedAllocation(alloc("pk1", "inv-k1", "KWD", "0.500"), datetime(2024, 9, 12, 8, 0, tzinfo=UTC)),
        ],
        credit_notes=[
            note("CN-1", "30.00", "0", date(2024, 9, 25), "acme", ["inv-4"]),
            note("CN-2", "20.00", "20.00", date(2024, 9, 28), "acme"),
        ],
    )


def test_each_invoice_owes_what_it_owed_at_the_end_of_the_day(book):
    positions = positions_at(book, D)
    assert "inv-3" not in positions  # issued after the day
    assert positions["inv-1"].balance == Money.of("100.00", "USD")
    assert (positions["inv-1"].days_past_due, positions["inv-1"].aging_bucket) == (30, "1-30")
    assert positions["inv-2"].balance == Money.of("300.00", "USD") and positions["inv-2"].aging_bucket == "current"
    assert positions["inv-4"].balance.is_zero and positions["inv-4"].status == "paid"
    assert positions["inv-j1"].balance == Money.of("30000", "JPY") and positions["inv-j1"].aging_bucket == "90+"
    assert positions["inv-k1"].balance == Money.of("0.750", "KWD")
    assert str(positions["inv-k1"].balance.amount) == "0.750"


def test_a_credit_note_counts_from_its_own_date(book):
    before = positions_at(book, date(2024, 9, 24))
    assert before["inv-4"].balance == Money.of("30.00", "USD")
    assert (before["inv-4"].days_past_due, before["inv-4"].aging_bucket) == (55, "31-60")


def test_cash_received_by_the_day_and_not_applied_by_then_is_unapplied(book):
    then = book_at(book, D)
    assert then.unapplied == {
        ("acme", "USD"): Money.of("350.00", "USD"),
        ("kaisha", "JPY"): Money.of("5000", "JPY"),
    }
    assert then.credit == {("acme", "USD"): Money.of("20.00", "USD")}
    later = book_at(book, date(2024, 10, 2))
    assert later.unapplied[("acme", "USD")] == Money.of("50.00", "USD")  # 350 less the 300 applied on 10-02
    assert later.unapplied[("gulf", "KWD")] == Money.of("2.000", "KWD")


def test_aging_as_at_has_the_hand_computed_rows_and_totals_per_currency(book):
    report = aging_at(book, CUSTOMERS, D)
    rows = {(r["customer"]["name"], r["currency"]): r for r in report["customers"]}
    acme = rows[("Acme", "USD")]
    assert (acme["current"], acme["1-30"], acme["total"]) == ("300.00", "100.00", "400.00")
    assert (acme["unapplied"], acme["credit"], acme["net"], acme["invoices"]) == ("350.00", "20.00", "30.00", 2)
    kaisha = rows[("株式会社カイシャ", "JPY")]
    assert (kaisha["90+"], kaisha["total"], kaisha["unapplied"], kaisha["net"]) == ("30000", "30000", "5000", "25000")
    gulf = rows[("شركة الخليج", "KWD")]
    assert (gulf["current"], gulf["unapplied"], gulf["net"]) == ("0.750", "0.000", "0.750")
    totals = {t["currency"]: t for t in report["totals"]}
    assert (totals["USD"]["total"], totals["USD"]["unapplied"], totals["USD"]["net"]) == ("400.00", "350.00", "30.00")
    assert (totals["JPY"]["total"], totals["JPY"]["net"]) == ("30000", "25000")
    assert (totals["KWD"]["total"], totals["KWD"]["net"]) == ("0.750", "0.750")
    assert report["as_of"] == report["as_at"] == "2024-09-30"


def test_aging_as_at_keeps_the_shape_of_aging_json(book):
    today = aging_report(book.invoices, CUSTOMERS, {}, D)
    report = aging_at(book, CUSTOMERS, D)
    assert set(today) <= set(report)
    assert set(today["customers"][0]) | {"unapplied", "credit", "net"} == set(report["customers"][0])
    assert [d["currency"] for d in report["dso"]] == ["JPY", "KWD", "USD"]


def test_a_customer_with_only_unapplied_cash_has_a_row_owed_to_them(book):
    report = aging_at(book, CUSTOMERS, date(2024, 10, 31))
    rows = {(r["customer"]["name"], r["currency"]): r for r in report["customers"]}
    gulf = rows[("شركة الخليج", "KWD")]
    # INV-K1 is still owed 0.750 (due 09-30, 31 days late); 2.000 received 10-01 is unapplied
    assert (gulf["31-60"], gulf["unapplied"], gulf["net"]) == ("0.750", "2.000", "-1.250")


def test_worst_first_and_top_n_never_compare_two_currencies(book):
    extra = Book(
        invoices=[
            *book.invoices,
            invoice("inv-b", "beta", "USD", "900.00", issued=date(2024, 9, 1), due=date(2024, 9, 20)),
            invoice("inv-g", "gamma", "USD", "10.00", issued=date(2024, 5, 1), due=date(2024, 6, 1)),
        ],
        payments=book.payments,
        recorded=book.recorded,
        applied=book.applied,
        credit_notes=book.credit_notes,
    )
    customers = {**CUSTOMERS, "beta": Customer(id="beta", name="Beta"), "gamma": Customer(id="gamma", name="Gamma")}
    by_total = aging_at(extra, customers, D, sort="total")
    assert [(r["customer"]["name"], r["currency"]) for r in by_total["customers"]] == [
        ("株式会社カイシャ", "JPY"),
        ("شركة الخليج", "KWD"),
        ("Beta", "USD"),
        ("Acme", "USD"),
        ("Gamma", "USD"),
    ]
    oldest = aging_at(extra, customers, D, sort="oldest")
    usd = [r["customer"]["name"] for r in oldest["customers"] if r["currency"] == "USD"]
    # Gamma's 10.00 is 90+ late; Beta's 900.00 and Acme's 100.00 are in 1-30: more first
    assert usd == ["Gamma", "Beta", "Acme"]
    top = aging_at(extra, customers, D, sort="total", top=1)
    assert [(r["customer"]["name"], r["currency"]) for r in top["customers"]] == [
        ("株式会社カイシャ", "JPY"),
        ("شركة الخليج", "KWD"),
        ("Beta", "USD"),
    ]
    assert top["customer_rows"] == 5 and {t["currency"]: t["total"] for t in top["totals"]}["USD"] == "1310.00"


@pytest.mark.parametrize("size", [1, 2, 100])
def test_the_book_taken_a_batch_at_a_time_ages_as_the_whole_book(book, size):
    """What `aging` reads a batch at a time (invoices with their allocations and their payments'
    days; payments with their allocations) makes the report the whole book makes, whatever the
    batches, on every day around D: unapplied cash and credit, credit notes and late payments."""

    def batches(items):
        return [items[n : n + size] for n in range(0, len(items), size)]

    paid_on = {p.id: p.received_at.date() for p in book.payments if p.id}
    for day in (date(2024, 9, 24), D, date(2024, 10, 2), date(2024, 12, 31)):
        then = BookAt(day=day)
        for chunk in batches(list(book.payments)):
            ids = {p.id for p in chunk}
            recorded = [a for a in book.recorded if a.payment_id in ids]
            applied = [d for d in book.applied if d.allocation.payment_id in ids]
            cash_at(then, chunk, recorded, applied)
        credit_at(then, book.credit_notes)
        invoices = []
        for chunk in batches(list(book.invoices)):
            ids = {i.id for i in chunk}
            recorded = [a for a in book.recorded if a.invoice_id in ids]
            applied = [d for d in book.applied if d.allocation.invoice_id in ids]
            notes = [n for n in book.credit_notes if ids & set(n.invoice_ids)]
            days = {
                p: paid_on[p] for p in {a.payment_id for a in recorded} | {d.allocation.payment_id for d in applied}
            }
            invoices += invoices_at(chunk, day, recorded, applied, notes, days)
        whole = book_at(book, day)
        assert (then.unapplied, then.credit, then.payments) == (whole.unapplied, whole.credit, whole.payments)
        assert invoices == whole.invoices
        for sort, top in (("name", None), ("total", 1)):
            assert aging_of(iter(invoices), then, CUSTOMERS, sort=sort, top=top) == aging_at(
                book, CUSTOMERS, day, sort=sort, top=top
            )
