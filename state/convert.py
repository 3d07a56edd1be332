"""Canonical records to rows and back: the one place that turns Money into minor units.

Rows are plain dicts keyed by column name, ready for set-based INSERTs; reading goes the
other way from SQLAlchemy row mappings. Money becomes (minor units, currency) and comes back
exact; non-money decimals (quantity, unit price) travel as decimal strings.

Records read back are built without pydantic's validation (`connector.unchecked`): the store
wrote them from validated models (validation happens at the edges: mapping and decisions), and
at a book's size validating them again on every read was most of the cost of reading. A test
holds every record read equal to the same record validated (`tests/state/test_state_records.py`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import RowMapping

from connector.model import Customer, Invoice, InvoiceLine, Payment, PaymentPlan, Ref
from connector.money import Money
from connector.unchecked import builder


def minor(money: Money | None) -> int | None:
    return None if money is None else money.to_minor()


def money(units: int | None, currency: str | None) -> Money | None:
    if units is None or currency is None:
        return None
    return money_of(units, currency)


def money_of(units: int, currency: str) -> Money:
    """Money of a NOT NULL amount column."""
    return Money.from_minor(int(units), currency)


def decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def customer_row(customer: Customer, now: datetime) -> dict[str, Any]:
    limit = customer.credit_limit
    return {
        "id": customer.id,
        "name": customer.name,
        "emails": list(customer.emails),
        "billing_contact": customer.billing_contact,
        "payment_terms_days": customer.payment_terms_days,
        "credit_limit_minor": minor(limit),
        "credit_limit_currency": limit.currency if limit else None,
        "paused": customer.paused,
        "created_at": now,
        "updated_at": now,
    }


_CUSTOMER_FIELDS = ("id", "name", "emails", "billing_contact", "payment_terms_days", "credit_limit", "paused", "refs")
_build_customer = builder(Customer, *_CUSTOMER_FIELDS)


def customer_from(row: RowMapping, refs: list[Ref]) -> Customer:
    return _build_customer(
        row["id"],
        row["name"],
        row["emails"] or [],
        row["billing_contact"],
        row["payment_terms_days"],
        money(row["credit_limit_minor"], row["credit_limit_currency"]),
        row["paused"],
        refs,
    )


def invoice_row(invoice: Invoice, now: datetime) -> dict[str, Any]:
    plan = invoice.payment_plan
    return {
        "id": invoice.id,
        "number": invoice.number,
        "customer_id": invoice.customer_id,
        "currency": invoice.currency,
        "issue_date": invoice.issue_date,
        "due_date": invoice.due_date,
        "subtotal_minor": minor(invoice.subtotal),
        "tax_minor": minor(invoice.tax),
        "total_minor": minor(invoice.total),
        "amount_paid_minor": minor(invoice.amount_paid),
        "amount_credited_minor": minor(invoice.amount_credited),
        "status": invoice.status,
        "disputed": invoice.disputed,
        "promise_to_pay": invoice.promise_to_pay,
        # JSON keeps amounts as decimal strings, never floats
        "payment_plan": plan.model_dump(mode="json") if plan else None,
        "in_collections": invoice.in_collections,
        "lines": line_values(invoice),
        "created_at": now,
        "updated_at": now,
    }


def line_values(invoice: Invoice) -> list[dict[str, Any]]:
    """The invoice's lines as its `lines` column keeps them, in order (JSON: amounts in minor
    units of the invoice's currency, quantities and prices as decimal text, never floats)."""
    return [
        {
            "description": line.description,
            "quantity": decimal_text(line.quantity),
            "unit_price": decimal_text(line.unit_price),
            "amount_minor": minor(line.amount),
            "tax_minor": minor(line.tax),
        }
        for line in invoice.lines
    ]


_build_line = builder(InvoiceLine, "description", "quantity", "unit_price", "amount", "tax")


def lines_from(values: list[dict[str, Any]] | None, currency: str) -> list[InvoiceLine]:
    """An invoice's lines from its `lines` column (NULL: none)."""
    lines = []
    for value in values or ():
        unit_price = value["unit_price"]
        lines.append(
            _build_line(
                value["description"],
                Decimal(value["quantity"]),
                None if unit_price is None else Decimal(unit_price),
                money_of(value["amount_minor"], currency),
                money(value["tax_minor"], currency),
            )
        )
    return lines


_INVOICE_FIELDS = (
    "id",
    "number",
    "customer_id",
    "currency",
    "issue_date",
    "due_date",
    "lines",
    "subtotal",
    "tax",
    "total",
    "amount_paid",
    "amount_credited",
    "status",
    "disputed",
    "promise_to_pay",
    "payment_plan",
    "in_collections",
    "refs",
)
_build_invoice = builder(Invoice, *_INVOICE_FIELDS)
_INVOICE_MONEY = ("subtotal", "tax", "total", "amount_paid", "amount_credited")
# The columns `invoice_from` reads of an invoice's row (its lines aside): its fields, each
# amount in minor units; not the bookkeeping columns (digest, source, when stored).
INVOICE_COLUMNS = tuple(
    f"{name}_minor" if name in _INVOICE_MONEY else name for name in _INVOICE_FIELDS if name not in ("lines", "refs")
)


def invoice_from(row: RowMapping, lines: list[InvoiceLine], refs: list[Ref]) -> Invoice:
    cur = row["currency"]
    plan = row["payment_plan"]
    return _build_invoice(
        row["id"],
        row["number"],
        row["customer_id"],
        cur,
        row["issue_date"],
        row["due_date"],
        lines,
        money_of(row["subtotal_minor"], cur),
        money_of(row["tax_minor"], cur),
        money_of(row["total_minor"], cur),
        money_of(row["amount_paid_minor"], cur),
        money_of(row["amount_credited_minor"], cur),
        row["status"],
        row["disputed"],
        row["promise_to_pay"],
        None if plan is None else PaymentPlan.model_validate(plan),  # finance's, rare: checked
        row["in_collections"],
        refs,
    )


def payment_row(payment: Payment, now: datetime) -> dict[str, Any]:
    return {
        "id": payment.id,
        "currency": payment.amount.currency,
        "amount_minor": minor(payment.amount),
        "received_at": payment.received_at,
        "method": payment.method,
        "customer_id": payment.customer_id,
        "payer": payment.payer,
        "remittance": payment.remittance,
        "fee_minor": minor(payment.fee),
        "payout_id": payment.payout_id,
        "status": payment.status,
        "amount_refunded_minor": minor(payment.amount_refunded),
        "dispute_status": payment.dispute_status,
        "amount_disputed_minor": minor(payment.amount_disputed),
        "dispute_reason": payment.dispute_reason,
        "disputed_at": payment.disputed_at,
        "created_at": now,
        "updated_at": now,
    }


_PAYMENT_FIELDS = (
    "id",
    "amount",
    "received_at",
    "method",
    "customer_id",
    "payer",
    "remittance",
    "fee",
    "payout_id",
    "status",
    "amount_refunded",
    "dispute_status",
    "amount_disputed",
    "dispute_reason",
    "disputed_at",
    "refs",
)
_build_payment = builder(Payment, *_PAYMENT_FIELDS)
_PAYMENT_MONEY = ("amount", "fee", "amount_refunded", "amount_disputed")
# The columns `payment_from` reads of a payment's row: the currency, its fields, each amount in
# minor units.
PAYMENT_COLUMNS = (
    "currency",
    *(f"{name}_minor" if name in _PAYMENT_MONEY else name for name in _PAYMENT_FIELDS if name != "refs"),
)


def payment_from(row: RowMapping, refs: list[Ref]) -> Payment:
    cur = row["currency"]
    return _build_payment(
        row["id"],
        money_of(row["amount_minor"], cur),
        row["received_at"],
        row["method"],
        row["customer_id"],
        row["payer"],
        row["remittance"],
        money(row["fee_minor"], cur),
        row["payout_id"],
        row["status"],
        money(row["amount_refunded_minor"], cur),
        row["dispute_status"],
        money(row["amount_disputed_minor"], cur),
        row["dispute_reason"],
        row["disputed_at"],
        refs,
    )


_build_ref = builder(Ref, "system", "object_type", "remote_id", "remote_updated_at")


def ref_of(system: str, object_type: str, remote_id: str, remote_updated_at: datetime | None) -> Ref:
    return _build_ref(system, object_type, remote_id, remote_updated_at)
