"""Plain-value books for the pure matcher's tests, and the invariants every result keeps."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from connector.model import Allocation, Invoice, Payment
from connector.money import Money, currency_exponent
from connector.reconcile import ReconcileResult

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
    taken_back: dict[int, Decimal] = defaultdict(Decimal)
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
        on_invoice[allocation.invoice_id] += allocation.amount.amount
        on_payment[allocation.payment_id] += allocation.amount.amount
    for invoice_id, total in on_invoice.items():
        booked = invoice_by_id.get(invoice_id)
        if booked is not None:
            owed = booked.total.amount - booked.amount_paid.amount - booked.amount_credited.amount
            assert total <= owed, f"invoice {invoice_id} over-allocated: {total} > {owed}"
    for payment_id, total in on_payment.items():
        payment = payment_by_id[payment_id]
        assert total <= payment.collected.amount, f"payment {payment_id} over-allocated"
        if payment_id in result.unapplied:
            assert total + result.unapplied[payment_id].amount == payment.collected.amount
