"""The dunning policy: who is reminded of what, on which day, and why others are not.

Pure: cases in, reminders and skips out. The engine gathers the cases (each open invoice with
its position, customer, pending gateway money and unapplied credit) and turns the decisions
into outbox actions; nothing here reads or writes anything.

An invoice's step is the latest step of its customer's policy whose `days` (relative to the
due date) it has reached. An invoice is never reminded when one of the rules below holds; the
first that holds, in this order, is recorded as a `Skip` with its code:

    paid_or_void          the ledger shows it paid, void, draft or uncollectible
    payment_pending       gateway money not yet in the ledger covers the ledger's balance
    disputed              the customer disputes it
    payment_plan_on_time  it is on a payment plan whose instalments are paid so far
    promise_to_pay        the customer promised to pay by a date not yet passed
    customer_paused       finance paused reminders for the customer
    not_due_yet           no step has been reached yet (or it has no due date)
    covered_by_credit     the customer's unapplied credit in that currency covers it
    already_reminded      the customer already had the reminder of this step

A customer gets at most one reminder per step: the highest step among its remindable invoices,
listing all of them, unless `(customer id, step days)` is in `already`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connector.model import (
    Customer,
    Invoice,
    InvoicePosition,
    PaymentPlan,
    invoice_position,
)
from connector.money import Money, money_sum

Channel = Literal["ledger_email", "gateway_email", "crm_task", "crm_note"]
SkipCode = Literal[
    "paid_or_void",
    "payment_pending",
    "disputed",
    "payment_plan_on_time",
    "promise_to_pay",
    "customer_paused",
    "not_due_yet",
    "covered_by_credit",
    "already_reminded",
]


class Step(BaseModel):
    """One reminder step, `days` relative to the due date (-3 before it, 30 past it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    days: int
    tone: str = Field(min_length=1)
    channel: Channel
    # Of the open balance; the engine proposes it as a planned action, never applies it silently.
    late_fee_percent: Decimal | None = Field(default=None, gt=0, le=100)
    escalate: bool = False


class DunningPolicy(BaseModel):
    """A connection's (or one customer's) reminder steps, sorted by `days`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: list[Step] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _unique_sorted(cls, steps: list[Step]) -> list[Step]:
        seen: dict[int, int] = {}
        for index, step in enumerate(steps):
            if step.days in seen:
                raise ValueError(
                    f"day {step.days} appears twice (steps {seen[step.days]} and {index}); "
                    "each step needs its own day"
                )
            seen[step.days] = index
        return sorted(steps, key=lambda step: step.days)

    @classmethod
    def default(cls) -> DunningPolicy:
        return cls(
            steps=[
                Step(days=-3, tone="friendly", channel="gateway_email"),
                Step(days=1, tone="reminder", channel="ledger_email"),
                Step(days=7, tone="reminder", channel="ledger_email"),
                Step(days=14, tone="firm", channel="ledger_email"),
                Step(days=30, tone="final", channel="ledger_email", late_fee_percent=Decimal(2)),
                Step(days=45, tone="collections", channel="crm_task", escalate=True),
            ]
        )

    def step_for(self, days_from_due: int) -> Step | None:
        """The latest step reached `days_from_due` days after the due date; None before the first."""
        reached = [step for step in self.steps if step.days <= days_from_due]
        return reached[-1] if reached else None


@dataclass(frozen=True)
class Case:
    """One open invoice as dunning sees it.

    `position` comes from `invoice_position(invoice, as_of, allocations)` with the applied
    allocations the ledger does not hold yet, so its balance is what is still owed;
    `pending_payment` is what those allocations add up to. `unapplied_credit` is the
    customer's unapplied cash in the invoice's currency (the same figure on each of its cases).
    """

    invoice: Invoice
    position: InvoicePosition
    customer: Customer
    pending_payment: Money | None = None
    unapplied_credit: Money | None = None

    def __post_init__(self) -> None:
        for name in ("pending_payment", "unapplied_credit"):
            value: Money | None = getattr(self, name)
            if value is not None and value.currency != self.invoice.currency:
                raise ValueError(
                    f"{name}: currency {value.currency} differs from invoice "
                    f"{_label(self.invoice)} in {self.invoice.currency}"
                )

    @property
    def customer_id(self) -> str:
        return self.customer.id or self.invoice.customer_id or self.customer.name


@dataclass(frozen=True)
class Reminder:
    customer_id: str
    step: Step
    invoices: tuple[str, ...]  # invoice ids, most overdue first
    balances: dict[str, Money] = field(hash=False)  # open per currency, never summed across
    late_fees: tuple[tuple[str, Money], ...]  # (invoice id, proposed fee)
    escalate: bool
    text: str
    # The listed invoices that reached the escalation step themselves: those go to collections.
    escalated_invoices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skip:
    invoice_id: str
    customer_id: str
    code: SkipCode
    reason: str


def instalments_on_time(plan: PaymentPlan, paid: Money, as_of: date) -> bool:
    """Whether `paid` covers every instalment dated before `as_of`.

    An instalment falls behind the day after its date, as an invoice is overdue the day after
    it is due; one due on `as_of` itself can still be paid that day.
    """
    due = money_sum((amount for when, amount in plan.instalments if when < as_of), paid.currency)
    return paid >= due


def plan_reminders(
    cases: Sequence[Case],
    policy_for: Callable[[Customer], DunningPolicy],
    already: set[tuple[str, int]],
    as_of: date,
) -> tuple[list[Reminder], list[Skip]]:
    """The reminders to send on `as_of` (one per customer at most) and every invoice skipped."""
    skips: list[Skip] = []
    remindable: dict[str, list[_Due]] = defaultdict(list)
    customers: dict[str, Customer] = {}
    policies: dict[str, DunningPolicy] = {}
    for case in cases:
        if case.position.as_of != as_of:
            raise ValueError(
                f"position of {_label(case.invoice)} is as of {case.position.as_of}, not {as_of}"
            )
        customer_id = case.customer_id
        customers.setdefault(customer_id, case.customer)
        protected = _protection(case, as_of)
        if protected is not None:
            skips.append(_skip(case, *protected))
            continue
        if customer_id not in policies:
            policies[customer_id] = policy_for(customers[customer_id])
        due = _due(case, policies[customer_id], as_of)
        if isinstance(due, _Due):
            remindable[customer_id].append(due)
        else:
            skips.append(_skip(case, "not_due_yet", due))

    reminders = []
    for customer_id in sorted(remindable):
        dues = sorted(remindable[customer_id], key=_most_overdue_first)
        dues, covered = _without_covered(dues)
        skips.extend(covered)
        if not dues:
            continue
        step = max((due.step for due in dues), key=lambda step: step.days)
        if (customer_id, step.days) in already:
            skips.extend(
                _skip(due.case, "already_reminded",
                      f"{customers[customer_id].name} already had the day {step.days:+d} "
                      f"({step.tone}) reminder that covers {_label(due.case.invoice)}")
                for due in dues
            )
            continue
        reminders.append(_reminder(customer_id, customers[customer_id], step, dues))
    order = {_id(case.invoice): _case_order(case, as_of) for case in cases}
    skips.sort(key=lambda skip: (skip.customer_id, order[skip.invoice_id]))
    return reminders, skips


# Decisions on one invoice -----------------------------------------------------------------


@dataclass(frozen=True)
class _Due:
    case: Case
    days_from_due: int
    step: Step


def _protection(case: Case, as_of: date) -> tuple[SkipCode, str] | None:
    """The first never-remind rule that holds for the case, with a reason a person understands."""
    invoice, label = case.invoice, _label(case.invoice)
    in_ledger = invoice_position(invoice, as_of)
    if in_ledger.status not in ("open", "partially_paid"):
        return "paid_or_void", f"{label} is {_STATUS_WORDS.get(in_ledger.status, in_ledger.status)}"
    pending = case.pending_payment
    if pending is not None and not pending.is_zero and pending >= in_ledger.balance:
        return "payment_pending", (
            f"{label}: payment of {pending} is seen in the gateway but not yet in the ledger; "
            f"it covers the balance of {in_ledger.balance}"
        )
    if invoice.disputed:
        return "disputed", f"{label} is disputed"
    plan = invoice.payment_plan
    if plan is not None:
        paid = invoice.total - case.position.balance
        if instalments_on_time(plan, paid, as_of):
            return "payment_plan_on_time", (
                f"{label} is on a payment plan of {len(plan.instalments)} instalments and "
                f"{paid} paid so far keeps it on time"
            )
    if invoice.promise_to_pay is not None and invoice.promise_to_pay >= as_of:
        return "promise_to_pay", f"{label}: the customer promised to pay by {invoice.promise_to_pay}"
    if case.customer.paused:
        return "customer_paused", f"{label}: finance paused reminders for {case.customer.name}"
    return None


def _due(case: Case, policy: DunningPolicy, as_of: date) -> _Due | str:
    """The step the invoice has reached, or why it has reached none."""
    label, due_date = _label(case.invoice), case.invoice.due_date
    if due_date is None:
        return f"{label} has no due date, so no reminder step applies"
    days = (as_of - due_date).days
    step = policy.step_for(days)
    if step is None:
        first = policy.steps[0].days
        return (f"{label} is due on {due_date}; the first reminder is on day {first:+d} "
                f"({due_date + timedelta(days=first)})")
    return _Due(case, days, step)


def _without_covered(dues: list[_Due]) -> tuple[list[_Due], list[Skip]]:
    """Spend each currency's unapplied credit on the most overdue invoices it covers in full."""
    credit: dict[str, Money] = {}
    for due in dues:
        offered = due.case.unapplied_credit
        if offered is not None and offered > credit.get(offered.currency, Money.zero(offered.currency)):
            credit[offered.currency] = offered
    kept, covered = [], []
    for due in dues:
        balance = due.case.position.balance
        left = credit.get(balance.currency)
        if left is not None and left >= balance:
            credit[balance.currency] = left - balance
            covered.append(_skip(due.case, "covered_by_credit",
                                 f"{_label(due.case.invoice)}: the customer's unapplied credit "
                                 f"of {left} covers its balance of {balance}"))
        else:
            kept.append(due)
    return kept, covered


# The reminder -----------------------------------------------------------------------------


def _reminder(customer_id: str, customer: Customer, step: Step, dues: list[_Due]) -> Reminder:
    currencies = sorted({due.case.invoice.currency for due in dues})
    balances = {
        currency: money_sum((d.case.position.balance for d in dues if d.case.invoice.currency == currency), currency)
        for currency in currencies
    }
    # Only invoices that reached the step themselves: no fee or collections for a younger one.
    reached = [due for due in dues if due.days_from_due >= step.days]
    percent = step.late_fee_percent
    late_fees = tuple(
        (_id(due.case.invoice), _percent_of(due.case.position.balance, percent)) for due in reached
    ) if percent is not None else ()
    escalated = tuple(_id(due.case.invoice) for due in reached) if step.escalate else ()
    return Reminder(
        customer_id=customer_id,
        step=step,
        invoices=tuple(_id(due.case.invoice) for due in dues),
        balances=balances,
        late_fees=late_fees,
        escalate=step.escalate,
        text=_text(customer, step, dues, balances, late_fees, escalated),
        escalated_invoices=escalated,
    )


def _text(
    customer: Customer,
    step: Step,
    dues: list[_Due],
    balances: dict[str, Money],
    late_fees: tuple[tuple[str, Money], ...],
    escalated: tuple[str, ...],
) -> str:
    count = f"{len(dues)} invoice{'s' if len(dues) != 1 else ''}"
    total = " and ".join(str(balance) for balance in balances.values())
    lines = [f"{step.tone.capitalize()} reminder to {customer.name} (day {step.days:+d}, {step.channel}): {count}, {total} open"]
    for due in dues:
        invoice, position = due.case.invoice, due.case.position
        line = f"- {_label(invoice)}: {position.balance}"
        if position.balance != invoice.total:
            line += f" of {invoice.total}"
        line += f", {_overdue_words(due.days_from_due)}"
        pending = due.case.pending_payment
        if pending is not None and not pending.is_zero:
            line += f" (payment of {pending} pending, not yet in the ledger)"
        lines.append(line)
    labels = {_id(due.case.invoice): _label(due.case.invoice) for due in dues}
    if late_fees:
        fees = ", ".join(f"{labels[invoice_id]} {fee}" for invoice_id, fee in late_fees)
        lines.append(f"Late fee of {step.late_fee_percent}% proposed (not applied): {fees}")
    if escalated:
        lines.append(f"Escalated to collections: {', '.join(labels[i] for i in escalated)}")
    return "\n".join(lines)


def _overdue_words(days_from_due: int) -> str:
    if days_from_due > 0:
        return f"{days_from_due} day{'s' if days_from_due != 1 else ''} overdue"
    if days_from_due == 0:
        return "due today"
    return f"due in {-days_from_due} day{'s' if days_from_due != -1 else ''}"


def _percent_of(balance: Money, percent: Decimal) -> Money:
    # One rounding, by Money, to the currency's minor unit (whole yen, fils).
    return Money.of(balance.amount * percent / 100, balance.currency)


# Small helpers ----------------------------------------------------------------------------

_STATUS_WORDS = {"paid": "paid", "void": "void", "draft": "a draft", "uncollectible": "written off as uncollectible"}


def _id(invoice: Invoice) -> str:
    return invoice.id or invoice.number or "?"


def _label(invoice: Invoice) -> str:
    return invoice.number or invoice.id or "?"


def _case_order(case: Case, as_of: date) -> tuple[int, str]:
    """Most overdue first, then by number; an invoice without a due date last."""
    due_date = case.invoice.due_date
    days = (as_of - due_date).days if due_date is not None else -(10**9)
    return (-days, _label(case.invoice))


def _most_overdue_first(due: _Due) -> tuple[int, str]:
    return (-due.days_from_due, _label(due.case.invoice))


def _skip(case: Case, code: SkipCode, reason: str) -> Skip:
    return Skip(invoice_id=_id(case.invoice), customer_id=case.customer_id, code=code, reason=reason)
