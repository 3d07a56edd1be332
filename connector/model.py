"""The canonical model: one shape for customers, invoices and payments from every system.

Providers' mappings produce these records; the state store keeps them; the engine decides on
them. Facts are stored, derived values are not: an invoice's balance, its status after
payments, days past due and aging bucket come from `invoice_position()` with an explicit
as-of date, the one place that computes them.

This module imports nothing of ours but `connector.money` and `connector.errors`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connector.money import Money, money_sum, normalise_currency
from connector.unchecked import builder

System = str  # a connection name ("ledger", "gateway", ...) or provider name
ObjectType = Literal[
    "customer",
    "contact",
    "invoice",
    "deal",
    "payment",
    "payment_intent",
    "credit_note",
    "refund",
    "payout",
    "balance_transaction",
    "bank_transaction",
    "dispute",
]
InvoiceStatus = Literal["draft", "open", "partially_paid", "paid", "void", "uncollectible"]
PaymentStatus = Literal["pending", "succeeded", "failed", "refunded", "partially_refunded"]
# A payment whose money left since it was received (in full or in part): a gateway invoice it
# paid is rightly owed again in the book.
MONEY_LEFT: tuple[PaymentStatus, ...] = ("failed", "refunded", "partially_refunded")
# A chargeback on a payment: "inquiry" withdraws nothing (Stripe's warning_* statuses), "open"
# has the disputed money withdrawn while it is contested, "lost" keeps it withdrawn for good,
# "won" gives it back.
DisputeStatus = Literal["inquiry", "open", "won", "lost"]
DISPUTE_WITHDRAWN: tuple[DisputeStatus, ...] = ("open", "lost")
AgingBucket = Literal["current", "1-30", "31-60", "61-90", "90+"]
ActionState = Literal["planned", "in_flight", "done", "failed", "cancelled"]
ActionKind = Literal[
    "record_payment",
    "record_fee",
    "mark_paid",
    "void_invoice",
    "send_invoice",
    "update_properties",
    "create_note",
    "create_task",
    "delete_payment",
    "delete_fee",
]

AGING_BUCKETS: tuple[AgingBucket, ...] = ("current", "1-30", "31-60", "61-90", "90+")


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Ref(_Record):
    """Where a canonical record lives in one system."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: System = Field(min_length=1)
    object_type: ObjectType
    remote_id: str = Field(min_length=1)
    remote_updated_at: datetime | None = None


class Customer(_Record):
    id: str | None = None
    name: str
    emails: list[str] = Field(default_factory=list)
    billing_contact: str | None = None
    payment_terms_days: int | None = Field(default=None, ge=0)
    credit_limit: Money | None = None
    paused: bool = False
    refs: list[Ref] = Field(default_factory=list)


class InvoiceLine(_Record):
    description: str = ""
    quantity: Decimal = Decimal(1)
    unit_price: Decimal | None = None
    amount: Money
    tax: Money | None = None

    @field_validator("quantity", "unit_price", mode="before")
    @classmethod
    def _no_float(cls, value: Any) -> Any:
        if isinstance(value, float):
            raise ValueError("must be given as Decimal, int or str, not float")
        return value


class PaymentPlan(_Record):
    """Agreed instalments; an invoice on a plan whose instalments are on time is not chased."""

    instalments: list[tuple[date, Money]]


class Invoice(_Record):
    """An invoice as the source of truth states it. `amount_paid` and `amount_credited` are
    the system's own figures; `status` is the system's status (void and draft matter; paid or
    open are recomputed from amounts by `invoice_position`)."""

    id: str | None = None
    number: str | None = None
    customer_id: str | None = None
    currency: str
    issue_date: date | None = None
    due_date: date | None = None
    lines: list[InvoiceLine] = Field(default_factory=list)
    subtotal: Money
    tax: Money
    total: Money
    amount_paid: Money
    amount_credited: Money
    status: InvoiceStatus = "open"
    disputed: bool = False
    promise_to_pay: date | None = None
    payment_plan: PaymentPlan | None = None
    in_collections: bool = False
    refs: list[Ref] = Field(default_factory=list)

    @field_validator("currency", mode="before")
    @classmethod
    def _currency(cls, value: Any) -> str:
        return normalise_currency(value)

    @model_validator(mode="before")
    @classmethod
    def _default_zero_amounts(cls, data: Any) -> Any:
        if isinstance(data, dict) and "currency" in data:
            for name in ("tax", "amount_paid", "amount_credited"):
                if data.get(name) is None:
                    data = {**data, name: {"amount": "0", "currency": data["currency"]}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Invoice:
        amounts = {
            "subtotal": self.subtotal,
            "tax": self.tax,
            "total": self.total,
            "amount_paid": self.amount_paid,
            "amount_credited": self.amount_credited,
        }
        for index, line in enumerate(self.lines):
            amounts[f"lines.{index}.amount"] = line.amount
            if line.tax is not None:
                amounts[f"lines.{index}.tax"] = line.tax
        for name, value in amounts.items():
            if value.currency != self.currency:
                raise ValueError(f"{name}: currency {value.currency} differs from invoice {self.currency}")
            if value.is_negative:
                raise ValueError(f"{name}: negative amount {value} on an invoice")
        if self.subtotal + self.tax != self.total:
            raise ValueError(f"total: {self.total} is not subtotal {self.subtotal} + tax {self.tax}")
        if self.lines:
            lines_sum = money_sum((line.amount for line in self.lines), self.currency)
            if lines_sum != self.subtotal:
                raise ValueError(f"subtotal: {self.subtotal} is not the sum of the lines {lines_sum}")
        if self.amount_paid + self.amount_credited > self.total:
            raise ValueError(
                f"amount_paid: paid {self.amount_paid} and credited {self.amount_credited} exceed total {self.total}"
            )
        if self.issue_date and self.due_date and self.due_date < self.issue_date:
            raise ValueError(f"due_date: {self.due_date} is before issue_date {self.issue_date}")
        return self


class Payment(_Record):
    id: str | None = None
    amount: Money
    received_at: datetime
    method: str | None = None
    customer_id: str | None = None
    payer: str | None = None
    remittance: str | None = None
    fee: Money | None = None
    payout_id: str | None = None
    status: PaymentStatus = "succeeded"
    amount_refunded: Money | None = None
    # The payment's latest dispute (chargeback), if any: its status, the amount it contests,
    # the gateway's reason ("fraudulent") and when it was opened or, once won or lost, closed.
    dispute_status: DisputeStatus | None = None
    amount_disputed: Money | None = None
    dispute_reason: str | None = None
    disputed_at: datetime | None = None
    refs: list[Ref] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Payment:
        if self.amount.is_negative:
            raise ValueError(f"amount: negative payment amount {self.amount}")
        for name in ("fee", "amount_refunded", "amount_disputed"):
            value: Money | None = getattr(self, name)
            if value is None:
                continue
            if value.currency != self.amount.currency:
                raise ValueError(f"{name}: currency {value.currency} differs from {self.amount.currency}")
            if value.is_negative:
                raise ValueError(f"{name}: negative amount {value}")
        if self.amount_refunded is not None and self.amount_refunded > self.amount:
            raise ValueError(f"amount_refunded: {self.amount_refunded} exceeds the payment {self.amount}")
        if self.amount_disputed is not None and self.amount_disputed > self.amount:
            raise ValueError(f"amount_disputed: {self.amount_disputed} exceeds the payment {self.amount}")
        if self.dispute_status is not None and self.amount_disputed is None:
            raise ValueError(f"amount_disputed: a payment with a dispute ({self.dispute_status}) needs its amount")
        return self

    @property
    def net(self) -> Money:
        """What reaches the bank: amount less the gateway fee."""
        return self.amount - self.fee if self.fee is not None else self.amount

    @property
    def withdrawn(self) -> Money:
        """What a dispute took out of the payment: the amount disputed while the dispute is
        open and once it is lost; nothing for an inquiry or a won dispute."""
        if self.dispute_status in DISPUTE_WITHDRAWN and self.amount_disputed is not None:
            return self.amount_disputed
        return Money.zero(self.amount.currency)

    @property
    def collected(self) -> Money:
        """What the payment still pays after refunds and what a dispute withdrew (never below
        zero: money refunded and disputed is not taken twice); failed and pending payments
        pay nothing."""
        zero = Money.zero(self.amount.currency)
        if self.status in ("failed", "pending"):
            return zero
        kept = self.amount - (self.amount_refunded or zero) - self.withdrawn
        return zero if kept.is_negative else kept


class Contact(_Record):
    """A person at a customer (HubSpot contact, Xero contact person)."""

    id: str | None = None
    name: str = ""
    email: str | None = None
    phone: str | None = None
    refs: list[Ref] = Field(default_factory=list)


class CreditNote(_Record):
    """Credit given to a customer; `remaining` is what is not yet applied to invoices."""

    id: str | None = None
    number: str | None = None
    currency: str
    issue_date: date | None = None
    total: Money
    remaining: Money
    status: Literal["draft", "open", "applied", "void"] = "open"
    refs: list[Ref] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> CreditNote:
        for name in ("total", "remaining"):
            value: Money = getattr(self, name)
            if value.currency != self.currency:
                raise ValueError(f"{name}: currency {value.currency} differs from {self.currency}")
            if value.is_negative:
                raise ValueError(f"{name}: negative amount {value}")
        if self.remaining > self.total:
            raise ValueError(f"remaining: {self.remaining} exceeds total {self.total}")
        return self


class Refund(_Record):
    """Money returned against a payment; it reverses that payment's allocations."""

    id: str | None = None
    amount: Money
    created_at: datetime
    status: Literal["pending", "succeeded", "failed", "canceled"] = "succeeded"
    reason: str | None = None
    refs: list[Ref] = Field(default_factory=list)


class Payout(_Record):
    """A gateway's transfer of collected funds to the bank."""

    id: str | None = None
    amount: Money
    arrival_date: date | None = None
    status: Literal["pending", "in_transit", "paid", "failed", "canceled"] = "pending"
    refs: list[Ref] = Field(default_factory=list)


class BalanceTransaction(_Record):
    """A gateway ledger line: gross amount, its fee and net, tied to a payment and a payout."""

    id: str | None = None
    amount: Money
    fee: Money
    net: Money
    kind: str
    created_at: datetime
    refs: list[Ref] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> BalanceTransaction:
        if self.amount - self.fee != self.net:
            raise ValueError(f"net: {self.net} is not amount {self.amount} less fee {self.fee}")
        return self


class Allocation(_Record):
    """Part of a payment applied to an invoice, with the rule that made it and who confirmed."""

    id: str | None = None
    payment_id: str
    invoice_id: str
    amount: Money
    rule: str
    confidence: Decimal = Field(ge=0, le=1)
    reason: str = ""
    confirmed_by: str | None = None

    @field_validator("amount")
    @classmethod
    def _positive(cls, value: Money) -> Money:
        if value.amount <= 0:
            raise ValueError(f"an allocation must be positive, got {value}")
        return value


class PaymentApplication(_Record):
    """A payment with its allocations: the check that they never exceed what it collected."""

    payment: Payment
    allocations: list[Allocation]

    @model_validator(mode="after")
    def _within_payment(self) -> PaymentApplication:
        currency = self.payment.amount.currency
        for index, allocation in enumerate(self.allocations):
            if allocation.amount.currency != currency:
                raise ValueError(
                    f"allocations.{index}.amount: currency {allocation.amount.currency} "
                    f"differs from the payment's {currency}"
                )
        allocated = money_sum((a.amount for a in self.allocations), currency)
        if allocated > self.payment.collected:
            raise ValueError(f"allocations: {allocated} allocated exceeds the payment's {self.payment.collected}")
        return self

    @property
    def unapplied(self) -> Money:
        allocated = money_sum((a.amount for a in self.allocations), self.payment.amount.currency)
        return self.payment.collected - allocated


class Action(_Record):
    """A planned write to one provider. The idempotency key is derived from the content, so
    deriving the same action twice gives the same key (and the outbox keeps one)."""

    connection: str = Field(min_length=1)
    kind: ActionKind
    target: Ref | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    state: ActionState = "planned"
    idempotency_key: str = ""

    @model_validator(mode="after")
    def _derive_key(self) -> Action:
        expected = action_key(self.connection, self.kind, self.target, self.payload)
        if not self.idempotency_key:
            object.__setattr__(self, "idempotency_key", expected)
        elif self.idempotency_key != expected:
            raise ValueError("idempotency_key: does not match the action's content")
        return self


def action_key(connection: str, kind: str, target: Ref | None, payload: dict[str, Any]) -> str:
    """A short deterministic key: fits Stripe (255), Xero (128) and QuickBooks (50 chars)."""
    content = {
        "connection": connection,
        "kind": kind,
        "target": None if target is None else [target.system, target.object_type, target.remote_id],
        "payload": payload,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return "ar-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


# Derived values ---------------------------------------------------------------------------


class InvoicePosition(BaseModel):
    """Everything about an invoice that depends on payments and on the date."""

    model_config = ConfigDict(frozen=True)

    as_of: date
    balance: Money
    status: InvoiceStatus
    days_past_due: int
    aging_bucket: AgingBucket | None  # None once nothing is owed


_position = builder(InvoicePosition, "as_of", "balance", "status", "days_past_due", "aging_bucket")


def aging_bucket(days_past_due: int) -> AgingBucket:
    if days_past_due <= 0:
        return "current"
    if days_past_due <= 30:
        return "1-30"
    if days_past_due <= 60:
        return "31-60"
    if days_past_due <= 90:
        return "61-90"
    return "90+"


# The statuses an invoice keeps whatever its balance (any other is open, partly paid or paid
# by what is settled of its total).
FIXED_STATUSES = ("void", "draft", "uncollectible")


def invoice_position(invoice: Invoice, as_of: date, allocations: Iterable[Allocation] = ()) -> InvoicePosition:
    """Balance, status, days past due and aging bucket of `invoice` on `as_of`.

    `allocations` are payments we applied that the invoice's own `amount_paid` does not yet
    include (a gateway payment not yet recorded in the ledger); they lower the balance too.
    """
    currency = invoice.currency
    extra = money_sum((a.amount for a in allocations), currency)
    settled = invoice.amount_paid + invoice.amount_credited + extra
    owed, status, days, bucket = standing(invoice.total.amount, settled.amount, invoice.status, invoice.due_date, as_of)
    balance = invoice.total - settled if owed else Money.zero(currency)
    return _position(as_of, balance, status, days, bucket)  # every value made here, valid by construction


Amount = TypeVar("Amount", int, Decimal)


def standing(
    total: Amount, settled: Amount, status: InvoiceStatus, due_date: date | None, as_of: date
) -> tuple[Amount | int, InvoiceStatus, int, AgingBucket | None]:
    """The rule of `invoice_position` on plain amounts (minor units, or a Money's Decimal):
    (balance, status, days past due, aging bucket) of an invoice of `total` of which `settled`
    is paid or credited (its own figures and the allocations it does not count yet), stored
    with `status`, due on `due_date`. The balance is `total - settled`, or 0 when that is not
    above nothing or the invoice is void. A report reading a book's figures in minor units
    applies it without building the invoice."""
    balance = total - settled
    if status in FIXED_STATUSES:
        pass
    elif balance <= 0:
        status = "paid"
    elif settled == 0:
        status = "open"
    else:
        status = "partially_paid"
    owed = status in ("open", "partially_paid", "uncollectible")
    days = (as_of - due_date).days if owed and due_date else 0
    days = max(days, 0)
    return (balance if balance > 0 and status != "void" else 0), status, days, (aging_bucket(days) if owed else None)


class InvoiceFigures(NamedTuple):
    """An invoice as a listing shows it, amounts in minor units of `currency`, without its lines:
    read straight from the store for a report of the whole book (`state.listing`), or taken
    from a built invoice (`figures_of`). `refs`: (system, object type, remote id) of each
    system's record of it, in that order."""

    id: str | None
    number: str | None
    customer_id: str | None
    currency: str
    issue_date: date | None
    due_date: date | None
    total: int
    amount_paid: int
    amount_credited: int
    status: InvoiceStatus
    disputed: bool
    promise_to_pay: date | None
    in_collections: bool
    payment_plan: bool
    refs: tuple[tuple[str, str, str], ...]


def figures_of(invoice: Invoice) -> InvoiceFigures:
    """What a listing shows of a built invoice."""
    return InvoiceFigures(
        invoice.id,
        invoice.number,
        invoice.customer_id,
        invoice.currency,
        invoice.issue_date,
        invoice.due_date,
        invoice.total.to_minor(),
        invoice.amount_paid.to_minor(),
        invoice.amount_credited.to_minor(),
        invoice.status,
        invoice.disputed,
        invoice.promise_to_pay,
        invoice.in_collections,
        invoice.payment_plan is not None,
        tuple((r.system, r.object_type, r.remote_id) for r in invoice.refs),
    )
