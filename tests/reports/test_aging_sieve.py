"""`aging` (and `aging --as-of`) reads whole only the records that can count on its day: the receivables the book's
figures may leave owing (`history.receivables_on`) and the payments whose cash may sit
unapplied (`history.payments_unsettled_on`). On random books (three currencies, partial and
over-payments, refunds, disputes, failed payments, credit notes, allocations made and payments
received after the day) the report a batch at a time equals the one from the whole book, on
every day around the book's, and the sieves leave aside nothing that counts."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from connector.model import Allocation, CreditNote, Customer, Invoice, Payment, Ref
from connector.money import Money
from connector.reconcile.history import (
    aged_streamed,
    aging_streamed,
    customer_balances,
    customers_by_id,
    invoice_listing,
    load_book,
    payment_listing,
)
from connector.reconcile.run import invoice_allocations, without_withdrawn
from connector.reconcile.types import LEDGER_RULE
from connector.reports import CustomerBalances, aging_report
from connector.reports.as_at import aging_at, book_at
from connector.state import history
from connector.state import reconciliation as decisions
from connector.state.store import open_store
from support.databases import database_url_on

CURRENCIES = ("USD", "JPY", "KWD")
FIRST = date(2024, 1, 1)


def _money(rng: random.Random, currency: str, most: int) -> Money:
    return Money.from_minor(rng.randint(0, most), currency)


def _random_book(store, rng: random.Random, monkeypatch) -> None:
    customers = [
        Customer(
            id=f"c{n}", name=f"Customer {n}", refs=[Ref(system="ledger", object_type="customer", remote_id=f"C{n}")]
        )
        for n in range(6)
    ]
    store.store_page("ledger", "contacts", "customer", customers, None, rank=3)
    invoices, payments = [], []
    for n in range(60):
        currency = rng.choice(CURRENCIES)
        total = Money.from_minor(rng.randint(1, 50_000), currency)
        one_short = total - Money.from_minor(1, currency)  # owing the smallest unit there is
        paid = rng.choice([Money.zero(currency), total, one_short, _money(rng, currency, total.to_minor())])
        credited = rng.choice([Money.zero(currency), _money(rng, currency, (total - paid).to_minor())])
        issued = None if rng.random() < 0.05 else FIRST + timedelta(days=rng.randint(0, 200))
        if rng.random() < 0.05:  # issued ahead of today (a ledger's dating)
            issued = date.today() + timedelta(days=rng.randint(1, 30))
        invoices.append(
            Invoice(
                id=f"i{n}",
                number=f"INV-{n}",
                customer_id=f"c{rng.randrange(6)}",
                currency=currency,
                issue_date=issued,
                due_date=None if issued is None else issued + timedelta(days=rng.choice([0, 14, 30])),
                subtotal=total,
                tax=Money.zero(currency),
                total=total,
                amount_paid=paid,
                amount_credited=credited,
                status=rng.choice(["open", "open", "paid", "void", "draft", "uncollectible"]),
                in_collections=rng.random() < 0.1,
                refs=[Ref(system="ledger", object_type="invoice", remote_id=f"L{n}")],
            )
        )
    kinds: dict[str, dict[str, Any]] = {f"L{n}": {"kind": "ledger"} for n in range(60)}
    store.store_page("ledger", "invoices", "invoice", invoices, None, rank=3, extras=kinds)
    for n in range(50):
        currency = rng.choice(CURRENCIES)
        amount = Money.from_minor(rng.randint(0, 40_000), currency)
        refunded = rng.choice([None, None, _money(rng, currency, amount.to_minor() + 1)])
        disputed = rng.random() < 0.1
        payments.append(
            Payment(
                id=f"p{n}",
                amount=amount,
                received_at=datetime.combine(
                    rng.choice([FIRST + timedelta(days=rng.randint(0, 220))] * 19 + [date.today() + timedelta(days=1)]),
                    datetime.min.time(),
                    UTC,
                )
                + timedelta(hours=rng.randint(0, 23)),
                customer_id=f"c{rng.randrange(6)}",
                status=rng.choice(["succeeded", "succeeded", "succeeded", "failed", "pending", "refunded"]),
                amount_refunded=refunded,
                dispute_status=rng.choice(["inquiry", "open", "lost", "won"]) if disputed else None,
                amount_disputed=_money(rng, currency, amount.to_minor()) if disputed else None,
                refs=[Ref(system="ledger", object_type="payment", remote_id=f"P{n}")],
            )
        )
    store.store_page(
        "ledger", "payments", "payment", payments, None, rank=3, extras={f"P{n}": {"kind": "ledger"} for n in range(50)}
    )
    notes = []
    for n in range(6):
        target = rng.choice(invoices)
        total = Money.from_minor(rng.randint(1, 5_000), target.currency)
        notes.append(
            CreditNote(
                number=f"CN-{n}",
                currency=target.currency,
                issue_date=FIRST + timedelta(days=rng.randint(0, 220)),
                total=total,
                remaining=rng.choice([Money.zero(target.currency), total]),
                status=rng.choice(["open", "applied", "void"]),
                refs=[Ref(system="ledger", object_type="credit_note", remote_id=f"CN{n}")],
            )
        )
        kinds[f"CN{n}"] = {"kind": "ledger", "hints": {"allocated_invoices": [target.refs[0].remote_id]}}
    store.store_page("ledger", "credit_notes", "credit_note", notes, None, rank=3, extras=kinds)
    # allocations: each payment to one or two invoices of its currency, made on a random day
    for payment in payments:
        same = [i for i in invoices if i.currency == payment.amount.currency]
        for target in rng.sample(same, k=min(len(same), rng.choice([0, 1, 1, 2]))):
            rule = rng.choice([LEDGER_RULE, "remittance_number", "manual"])
            made = datetime.combine(FIRST + timedelta(days=rng.randint(0, 240)), datetime.min.time(), UTC)
            monkeypatch.setattr(decisions, "utcnow", lambda made=made: made)
            short = payment.amount - Money.from_minor(1, payment.amount.currency)  # a unit left unapplied
            share = rng.choice(
                [payment.amount, short, _money(rng, payment.amount.currency, max(payment.amount.to_minor(), 1))]
            )
            allocation = Allocation(
                payment_id=str(payment.id),
                invoice_id=str(target.id),
                amount=share,
                rule=rule,
                confidence=Decimal(1),
                reason="random book",
            )
            with store.session() as session:
                decisions.save_allocations(session, [allocation], "applied")
    monkeypatch.undo()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    with database_url_on(request.param, tmp_path) as url:
        yield url


@pytest.mark.parametrize("seed", range(6))
def test_aging_from_the_sieved_records_is_the_whole_books_on_every_day(database_url, seed, monkeypatch):
    store = open_store(database_url)
    try:
        _random_book(store, random.Random(seed), monkeypatch)
        customers = customers_by_id(store)
        book = load_book(store)
        for day in (
            FIRST - timedelta(days=1),
            FIRST + timedelta(days=45),
            FIRST + timedelta(days=130),
            date(2024, 8, 28),
            date.today(),
        ):
            then = book_at(book, day)
            with store.session() as session:
                receivables = history.receivables_on(session, day, LEDGER_RULE)
                unsettled = set(history.payments_unsettled_on(session, day, LEDGER_RULE))
            noted = {i for n in book.credit_notes for i in n.invoice_ids}
            settled = {r.id for r in receivables if r.settled and r.id not in noted}
            # the sieve leaves aside only what owes nothing on the day, and has cash left on none
            for invoice in then.invoices:
                if invoice.invoice.id in settled:
                    assert invoice.position.balance.is_zero or invoice.position.aging_bucket is None, (day, invoice)
            assert set(then.payments) <= unsettled, day
            assert aging_streamed(store, customers, day, batch=7) == aging_at(book, customers, day), day
            # today's figures aged on the day (`aging --as-of`): every allocation counts
            today = without_withdrawn(store, store.list_receivables())
            whole = aging_report(today, customers, invoice_allocations(store, today), day)
            assert aged_streamed(store, customers, day, batch=7) == whole, day
        # `customers list`: each customer's balance and unapplied cash from the sieved records
        # equal those summed over every row of `invoices list` and `payments list`
        every = CustomerBalances()
        for row in invoice_listing(store, customers, date.today()):
            every.add_invoice(row)
        for row in payment_listing(store, customers):
            every.add_payment(row)
        sieved = customer_balances(store, customers, date.today(), batch=7)
        for customer_id in customers:
            assert sieved.balance(customer_id) == every.balance(customer_id), customer_id
            assert sieved.unapplied(customer_id) == every.unapplied(customer_id), customer_id
        assert any(every.balance(c) for c in customers) and any(every.unapplied(c) for c in customers)
    finally:
        store.close()


def test_an_allocation_in_another_currency_or_made_after_the_day_keeps_the_invoice_read(tmp_path):
    """The sieve weighs minor units only in one currency, and only what is dated by the day."""
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        usd = Money.of("100.00", "USD")
        invoices = [
            Invoice(
                id=f"i{n}",
                number=f"INV-{n}",
                currency="USD",
                issue_date=date(2024, 1, 1),
                subtotal=usd,
                tax=Money.zero("USD"),
                total=usd,
                amount_paid=Money.zero("USD"),
                amount_credited=Money.zero("USD"),
                refs=[Ref(system="ledger", object_type="invoice", remote_id=f"L{n}")],
            )
            for n in range(3)
        ]
        store.store_page(
            "ledger",
            "invoices",
            "invoice",
            invoices,
            None,
            rank=3,
            extras={f"L{n}": {"kind": "ledger"} for n in range(3)},
        )
        payments = [
            Payment(
                id=id_,
                amount=amount,
                received_at=datetime(2024, 1, 2, tzinfo=UTC),
                refs=[Ref(system="ledger", object_type="payment", remote_id=id_.upper())],
            )
            for id_, amount in (("yen", Money.of("10000", "JPY")), ("dollars", usd))
        ]
        store.store_page("ledger", "payments", "payment", payments, None, rank=3)
        with store.session() as session:
            decisions.save_allocations(  # made today
                session,
                [
                    Allocation(
                        payment_id=payment.id,
                        invoice_id=invoice_id,
                        amount=payment.amount,
                        rule="manual",
                        confidence=Decimal(1),
                        reason="by hand",
                    )
                    for payment, invoice_id in zip(payments, ("i0", "i1"), strict=True)
                ],
                "applied",
            )
        with store.session() as session:
            on_the_day = {r.id: r.settled for r in history.receivables_on(session, date(2024, 1, 31), LEDGER_RULE)}
            today = {r.id: r.settled for r in history.receivables_on(session, date.today(), LEDGER_RULE)}
        assert on_the_day == {"i0": False, "i1": False, "i2": False}
        assert today == {"i0": False, "i1": True, "i2": False}
    finally:
        store.close()
