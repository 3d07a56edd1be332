"""Canonical records for the state tests, valid by construction."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from connector.model import Customer, Invoice, InvoiceLine, Payment, Ref
from connector.money import Money

SYSTEM = "ledger"


def ref(remote_id: str, object_type: str = "invoice", system: str = SYSTEM) -> Ref:
    return Ref(
        system=system,
        object_type=object_type,  # type: ignore[arg-type]
        remote_id=remote_id,
        remote_updated_at=datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
    )


def invoice(
    remote_id: str,
    line_amounts: tuple[str, ...] = ("100.00", "23.45"),
    currency: str = "USD",
    *,
    tax: str = "0",
    paid: str = "0",
    number: str | None = None,
    customer_id: str | None = None,
) -> Invoice:
    lines = [
        InvoiceLine(
            description=f"line {n}",
            quantity=Decimal("2.5"),
            unit_price=Decimal(amount) / Decimal("2.5"),
            amount=Money.of(amount, currency),
        )
        for n, amount in enumerate(line_amounts, start=1)
    ]
    subtotal = sum((line.amount for line in lines), Money.zero(currency))
    tax_money = Money.of(tax, currency)
    return Invoice(
        number=number or f"INV-{remote_id}",
        customer_id=customer_id,
        currency=currency,
        issue_date=date(2024, 5, 1),
        due_date=date(2024, 5, 31),
        lines=lines,
        subtotal=subtotal,
        tax=tax_money,
        total=subtotal + tax_money,
        amount_paid=Money.of(paid, currency),
        amount_credited=Money.zero(currency),
        refs=[ref(remote_id)],
    )


def customer(remote_id: str, name: str = "Acme Ltd") -> Customer:
    return Customer(
        name=name,
        emails=["ap@acme.example"],
        payment_terms_days=30,
        credit_limit=Money.of("5000.00", "EUR"),
        refs=[ref(remote_id, "customer")],
    )


def payment(remote_id: str, amount: str = "123.45", currency: str = "USD") -> Payment:
    return Payment(
        amount=Money.of(amount, currency),
        received_at=datetime(2024, 6, 2, 9, 15, tzinfo=UTC),
        method="card",
        remittance=f"INV-{remote_id}",
        fee=Money.of("3.88", currency),
        payout_id="po_1",
        refs=[ref(remote_id, "payment", system="gateway")],
    )
