"""Plain-value dunning cases for the pure policy's tests: customers, invoices, cases, a run."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal

from connector.dunning.policy import (
    Case,
    DunningPolicy,
    Reminder,
    Skip,
    plan_reminders,
)
from connector.model import Allocation, Customer, Invoice, invoice_position
from connector.money import Money

AS_OF = date(2026, 3, 1)


def customer(id: str = "c1", name: str = "Acme Ltd", paused: bool = False) -> Customer:
    return Customer(id=id, name=name, paused=paused)


def invoice(
    id: str,
    total: str,
    currency: str = "USD",
    *,
    overdue: int = 10,
    paid: str = "0",
    customer_id: str = "c1",
    **extra,
) -> Invoice:
    """An invoice `overdue` days past its due date on AS_OF (negative: due in that many days)."""
    amount = Money.of(total, currency)
    return Invoice(
        id=id,
        number=id.upper(),
        customer_id=customer_id,
        currency=currency,
        due_date=AS_OF - timedelta(days=overdue),
        subtotal=amount,
        tax=Money.zero(currency),
        total=amount,
        amount_paid=Money.of(paid, currency),
        **extra,
    )


def case(
    inv: Invoice,
    who: Customer | None = None,
    *,
    pending: str | None = None,
    credit: str | None = None,
    as_of: date = AS_OF,
) -> Case:
    """A case as the engine builds it: the pending gateway payment is in the position too."""
    currency = inv.currency
    allocations = (
        [
            Allocation(
                payment_id="p-" + (inv.id or ""),
                invoice_id=inv.id or "",
                amount=Money.of(pending, currency),
                rule="remittance_number",
                confidence=Decimal(1),
            )
        ]
        if pending is not None
        else []
    )
    return Case(
        invoice=inv,
        position=invoice_position(inv, as_of, allocations),
        customer=who or customer(inv.customer_id or "c1"),
        pending_payment=Money.of(pending, currency) if pending is not None else None,
        unapplied_credit=Money.of(credit, currency) if credit is not None else None,
    )


def run(
    cases: Iterable[Case],
    *,
    already: Iterable[tuple[str, int, str]] = (),
    queued: Iterable[tuple[str, int, str]] = (),
    as_of: date = AS_OF,
    policy: DunningPolicy | None = None,
) -> tuple[list[Reminder], list[Skip]]:
    """`already`: (customer, step, invoice) reminders sent; `queued`: planned, not sent yet."""
    chosen = policy or DunningPolicy.default()
    return plan_reminders(list(cases), lambda _customer: chosen, set(already), as_of, queued=set(queued))


def codes(skips: list[Skip]) -> dict[str, str]:
    return {skip.invoice_id: skip.code for skip in skips}
