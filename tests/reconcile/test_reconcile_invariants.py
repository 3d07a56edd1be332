"""Factories for the reconciliation tests, the invariant check every test can call, and the
tests of the invariants themselves (currencies, exactness, bounds, determinism)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from connector.model import Allocation, Invoice, Payment
from connector.money import Money, currency_exponent
from connector.reconcile import ReconcileResult, reconcile

RECEIVED = datetime(2024, 3, 1, 12, tzinfo=UTC)


def inv(
    invoice_id: str,
    total: str,
    *,
    currency: str = "USD",
    customer: str | None = "c1",
    number: str | None = None,
    paid: str = "0",
    due: date = date(2024, 1, 31),
    issued: date | None = None,
    status: str = "open",
) -> Invoice:
    return Invoice(
        id=invoice_id,
        number=number,
        customer_id=customer,
        currency=currency,
        issue_date=issued or due - timedelta(days=30),
        due_date=due,
        subtotal=Money.of(total, currency),
        tax=Money.zero(currency),
        total=Money.of(total, currency),
        amount_paid=Money.of(paid, currency),
        amount_credited=Money.zero(currency),
        status=status,  # type: ignore[arg-type]
    )


def pay(
    payment_id: str,
    amount: str,
    *,
    currency: str = "USD",
    customer: str | None = "c1",
    remittance: str | None = None,
    status: str = "succeeded",
    refunded: str | None = None,
    received: datetime = RECEIVED,
) -> Payment:
    return Payment(
        id=payment_id,
        amount=Money.of(amount, currency),
        customer_id=customer,
        remittance=remittance,
        status=status,  # type: ignore[arg-type]
        amount_refunded=Money.of(refunded, currency) if refunded is not None else None,
        received_at=received,
    )


def alloc(payment_id: str, invoice_id: str, amount: str, *, currency: str = "USD", manual: bool = False) -> Allocation:
    return Allocation(
        payment_id=payment_id,
        invoice_id=invoice_id,
        amount=Money.of(amount, currency),
        rule="manual" if manual else "exact_amount_unique",
        confidence=Decimal(1) if manual else Decimal("0.95"),
        confirmed_by="ana@finance" if manual else None,
    )


def pairs(result: ReconcileResult) -> list[tuple[str, str, str]]:
    return [(a.payment_id, a.invoice_id, str(a.amount.amount)) for a in result.applied]


def check_invariants(
    invoices: Sequence[Invoice],
    payments: Sequence[Payment],
    result: ReconcileResult,
    existing: Iterable[Allocation] = (),
) -> None:
    """No allocation beyond a payment or an invoice balance, no mixed currency, exact amounts."""
    invoice_by_id = {i.id: i for i in invoices}
    payment_by_id = {p.id: p for p in payments}
    taken_back = defaultdict(lambda: Decimal(0))
    for reversal in result.reversals:
        taken_back[id(reversal.allocation)] += reversal.amount.amount
    on_invoice: dict[str, Decimal] = defaultdict(Decimal)
    on_payment: dict[str, Decimal] = defaultdict(Decimal)
    for allocation in existing:
        net = allocation.amount.amount - taken_back[id(allocation)]
        on_invoice[allocation.invoice_id] += net
        on_payment[allocation.payment_id] += net
    for allocation in result.applied:
        invoice = invoice_by_id[allocation.invoice_id]
        payment = payment_by_id[allocation.payment_id]
        assert allocation.amount.currency == invoice.currency == payment.amount.currency
        exponent = allocation.amount.amount.as_tuple().exponent
        assert exponent == -currency_exponent(invoice.currency)
        assert allocation.amount.amount > 0
        on_invoice[invoice.id] += allocation.amount.amount
        on_payment[payment.id] += allocation.amount.amount
    for invoice_id, total in on_invoice.items():
        invoice = invoice_by_id.get(invoice_id)
        if invoice is not None:
            owed = invoice.total.amount - invoice.amount_paid.amount - invoice.amount_credited.amount
            assert total <= owed, f"invoice {invoice_id} over-allocated: {total} > {owed}"
    for payment_id, total in on_payment.items():
        payment = payment_by_id[payment_id]
        assert total <= payment.collected.amount, f"payment {payment_id} over-allocated"
        if payment_id in result.unapplied:
            assert total + result.unapplied[payment_id].amount == payment.collected.amount


# Tests --------------------------------------------------------------------------------------


def test_currencies_never_mix_even_with_equal_amounts_and_numbers():
    invoices = [inv("i-usd", "100.00", number="INV-0042")]
    payments = [
        pay("p-eur", "100.00", currency="EUR", remittance="INV-0042"),
    ]
    result = reconcile(invoices, payments, links={"p-eur": ["i-usd"]})
    assert result.applied == []
    assert result.proposals == []
    assert result.unapplied == {"p-eur": Money.of("100.00", "EUR")}
    assert result.unmatched == ["p-eur"]


def test_jpy_amounts_stay_whole_yen():
    invoices = [inv("i1", "10000", currency="JPY", number="INV-1"), inv("i2", "5000", currency="JPY", number="INV-2")]
    payments = [pay("p1", "12500", currency="JPY", remittance="INV-1, INV-2")]
    result = reconcile(invoices, payments)
    assert pairs(result) == [("p1", "i1", "10000"), ("p1", "i2", "2500")]
    check_invariants(invoices, payments, result)


def test_kwd_amounts_are_exact_to_the_fils():
    invoices = [inv("i1", "1.235", currency="KWD", number="INV-7"), inv("i2", "2.001", currency="KWD", customer="c1")]
    payments = [pay("p1", "3.236", currency="KWD"), pay("p2", "1.234", currency="KWD", remittance="INV-7")]
    result = reconcile(invoices, payments)
    assert pairs(result) == [("p2", "i1", "1.234")]
    # the subset 1.235 + 2.001 no longer sums to 3.236 once p2 paid 1.234 of INV-7
    assert result.unapplied["p1"] == Money.of("3.236", "KWD")
    check_invariants(invoices, payments, result)


def test_output_is_the_same_whatever_the_input_order():
    rng = random.Random(7)
    invoices, payments = _random_book(rng, customers=20, count=200)
    first = reconcile(invoices, payments)
    for _ in range(3):
        rng.shuffle(invoices)
        rng.shuffle(payments)
        again = reconcile(invoices, payments)
        assert again.model_dump() == first.model_dump()


def test_random_books_never_break_the_invariants():
    for seed in range(8):
        rng = random.Random(seed)
        invoices, payments = _random_book(rng, customers=5, count=80)
        result = reconcile(invoices, payments)
        check_invariants(invoices, payments, result)
        for proposal in result.proposals:
            assert proposal.candidates
            confidences = [c.confidence for c in proposal.candidates]
            assert confidences == sorted(confidences, reverse=True)


def _random_book(rng: random.Random, *, customers: int, count: int) -> tuple[list[Invoice], list[Payment]]:
    currencies = ("USD", "EUR", "JPY", "KWD")
    invoices = []
    for n in range(count):
        currency = rng.choice(currencies)
        units = rng.choice([1000, 2500, 10000, rng.randint(100, 100000)])
        invoices.append(
            inv(
                f"i{n}",
                str(Money.from_minor(units, currency).amount),
                currency=currency,
                customer=f"c{rng.randrange(customers)}",
                number=f"INV-{n:04d}",
                due=date(2024, 1, 1) + timedelta(days=rng.randrange(90)),
            )
        )
    payments = []
    for n in range(count):
        target = rng.choice(invoices)
        units = Money.of(target.total.amount, target.currency).to_minor()
        units = rng.choice([units, units // 2, units + 7, units * 2, units - 3])
        remittance = rng.choice([None, f"INV-{rng.randrange(count):04d}", f"#{rng.randrange(count)}", "thanks"])
        payments.append(
            pay(
                f"p{n}",
                str(Money.from_minor(max(units, 1), target.currency).amount),
                currency=target.currency,
                customer=rng.choice([target.customer_id, None]),
                remittance=remittance,
                received=RECEIVED + timedelta(hours=rng.randrange(500)),
            )
        )
    return invoices, payments
