"""Canonical records to rows and back: the one place that turns Money into minor units.

Rows are plain dicts keyed by column name, ready for set-based INSERTs; reading goes the
other way from SQLAlchemy row mappings. Money becomes (minor units, currency) and comes back
exact; non-money decimals (quantity, unit price) travel as decimal strings.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import RowMapping

from connector.model import Customer, Invoice, InvoiceLine, Payment, PaymentPlan, Ref
from connector.money import Money


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


def customer_from(row: RowMapping, refs: list[Ref]) -> Customer:
    return Customer(
        id=row["id"],
        name=row["name"],
        emails=row["emails"] or [],
        billing_contact=row["billing_contact"],
        payment_terms_days=row["payment_terms_days"],
        credit_limit=money(row["credit_limit_minor"], row["credit_limit_currency"]),
        paused=row["paused"],
        refs=refs,
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
        "created_at": now,
        "updated_at": now,
    }


def line_rows(invoice: Invoice) -> list[dict[str, Any]]:
    return [
        {
            "invoice_id": invoice.id,
            "line_no": number,
            "description": line.description,
            "quantity": decimal_text(line.quantity),
            "unit_price": decimal_text(line.unit_price),
            "currency": invoice.currency,
            "amount_minor": minor(line.amount),
            "tax_minor": minor(line.tax),
        }
        for number, line in enumerate(invoice.lines, start=1)
    ]


def line_from(row: RowMapping) -> InvoiceLine:
    unit_price = row["unit_price"]
    return InvoiceLine(
        description=row["description"],
        quantity=Decimal(row["quantity"]),
        unit_price=None if unit_price is None else Decimal(unit_price),
        amount=money_of(row["amount_minor"], row["currency"]),
        tax=money(row["tax_minor"], row["currency"]),
    )


def invoice_from(row: RowMapping, lines: list[InvoiceLine], refs: list[Ref]) -> Invoice:
    cur = row["currency"]
    plan = row["payment_plan"]
    return Invoice(
        id=row["id"],
        number=row["number"],
        customer_id=row["customer_id"],
        currency=cur,
        issue_date=row["issue_date"],
        due_date=row["due_date"],
        lines=lines,
        subtotal=money_of(row["subtotal_minor"], cur),
        tax=money_of(row["tax_minor"], cur),
        total=money_of(row["total_minor"], cur),
        amount_paid=money_of(row["amount_paid_minor"], cur),
        amount_credited=money_of(row["amount_credited_minor"], cur),
        status=row["status"],
        disputed=row["disputed"],
        promise_to_pay=row["promise_to_pay"],
        payment_plan=None if plan is None else PaymentPlan.model_validate(plan),
        in_collections=row["in_collections"],
        refs=refs,
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


def payment_from(row: RowMapping, refs: list[Ref]) -> Payment:
    cur = row["currency"]
    return Payment(
        id=row["id"],
        amount=money_of(row["amount_minor"], cur),
        received_at=row["received_at"],
        method=row["method"],
        customer_id=row["customer_id"],
        payer=row["payer"],
        remittance=row["remittance"],
        fee=money(row["fee_minor"], cur),
        payout_id=row["payout_id"],
        status=row["status"],
        amount_refunded=money(row["amount_refunded_minor"], cur),
        dispute_status=row["dispute_status"],
        amount_disputed=money(row["amount_disputed_minor"], cur),
        dispute_reason=row["dispute_reason"],
        disputed_at=row["disputed_at"],
        refs=refs,
    )


def ref_from(row: RowMapping) -> Ref:
    return Ref(
        system=row["system"],
        object_type=row["object_type"],
        remote_id=row["remote_id"],
        remote_updated_at=row["remote_updated_at"],
    )
