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
    already_reminded      a reminder of the invoice's step was sent for it
    reminder_queued       a reminder of the invoice's step is queued for it, not sent yet
    reminder_dropped      today's reminder of the invoice's step was cancelled or parked
                          after failing; the next one is planned tomorrow

Sent reminders are keyed `(customer id, step days, invoice id)`, the step being the one the
invoice itself had reached: an invoice not yet reminded at its step is reminded even when the
customer had that step's reminder for another invoice. A customer gets at most one reminder
per run, at the highest step among its not-yet-reminded invoices, listing all of them.

Payment plans are built here too (`payment_plan`, `plan_from_terms`), so the CLI and the
plans read from a CRM split and date instalments the same way.
"""

from __future__ import annotations

import calendar
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
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
    "reminder_queued",
    "reminder_dropped",
]
# (customer id, step days, invoice id): the invoice had that step's reminder.
ReminderKey = tuple[str, int, str]


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
                    f"day {step.days} appears twice (steps {seen[step.days]} and {index}); each step needs its own day"
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
    # (invoice id, the step the invoice itself has reached): what the reminder is recorded as.
    invoice_steps: tuple[tuple[str, int], ...] = ()


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
    return paid >= _due_before(plan, as_of, paid.currency)


def _due_before(plan: PaymentPlan, as_of: date, currency: str) -> Money:
    return money_sum((amount for when, amount in plan.instalments if when < as_of), currency)


def plan_reminders(
    cases: Sequence[Case],
    policy_for: Callable[[Customer], DunningPolicy],
    already: Collection[ReminderKey],
    as_of: date,
    queued: Collection[ReminderKey] = (),
    dropped: Collection[ReminderKey] = (),
) -> tuple[list[Reminder], list[Skip]]:
    """The reminders to send on `as_of` (one per customer at most) and every invoice skipped.

    `already` holds the `(customer id, step days, invoice id)` reminders sent; `queued` those
    planned and not sent yet (they are not planned twice); `dropped` those planned for
    `as_of` and then cancelled or parked after failing (planned again the next day)."""
    skips: list[Skip] = []
    remindable: dict[str, list[_Due]] = defaultdict(list)
    customers: dict[str, Customer] = {}
    policies: dict[str, DunningPolicy] = {}
    for case in cases:
        if case.position.as_of != as_of:
            raise ValueError(f"position of {_label(case.invoice)} is as of {case.position.as_of}, not {as_of}")
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
        fresh = []
        for due in dues:
            key = (customer_id, due.step.days, _id(due.case.invoice))
            words = f"the day {due.step.days:+d} ({due.step.tone}) reminder for {_label(due.case.invoice)}"
            if key in already:
                skips.append(_skip(due.case, "already_reminded", f"{customers[customer_id].name} already had {words}"))
            elif key in queued:
                skips.append(
                    _skip(
                        due.case,
                        "reminder_queued",
                        f"{words[0].upper()}{words[1:]} is queued for {customers[customer_id].name}, "
                        "not sent yet (`connector apply` sends it, `connector actions cancel` drops it)",
                    )
                )
            elif key in dropped:
                skips.append(
                    _skip(
                        due.case,
                        "reminder_dropped",
                        f"{words[0].upper()}{words[1:]} to {customers[customer_id].name} was cancelled "
                        f"or parked after failing on {as_of}; it is not counted as sent, and the next "
                        "one is planned from tomorrow",
                    )
                )
            else:
                fresh.append(due)
        if not fresh:
            continue
        step = max((due.step for due in fresh), key=lambda step: step.days)
        reminders.append(_reminder(customer_id, customers[customer_id], step, fresh))
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
            return "payment_plan_on_time", f"{label} is on a payment plan: {_plan_words(plan, paid, as_of)}"
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
        return (
            f"{label} is due on {due_date}; the first reminder is on day {first:+d} "
            f"({due_date + timedelta(days=first)})"
        )
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
            covered.append(
                _skip(
                    due.case,
                    "covered_by_credit",
                    f"{_label(due.case.invoice)}: the customer's unapplied credit "
                    f"of {left} covers its balance of {balance}",
                )
            )
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
    late_fees = (
        tuple((_id(due.case.invoice), _percent_of(due.case.position.balance, percent)) for due in reached)
        if percent is not None
        else ()
    )
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
        invoice_steps=tuple((_id(due.case.invoice), due.step.days) for due in dues),
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
    lines = [
        f"{step.tone.capitalize()} reminder to {customer.name} (day "
        f"{step.days:+d}, {step.channel}): {count}, {total} open"
    ]
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


# Payment plans ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Every:
    """How far apart instalments fall: a number of calendar months, or of days."""

    months: int = 0
    days: int = 0

    def __post_init__(self) -> None:
        if (self.months > 0) == (self.days > 0) or self.months < 0 or self.days < 0:
            raise ValueError("give a positive number of months or of days")

    def nth(self, first: date, index: int) -> date:
        """The date of instalment `index` (0 is `first`). A month later keeps the day of the
        month, or the month's last day when it is shorter (31 January -> 28 February)."""
        if self.days:
            return first + timedelta(days=self.days * index)
        month = first.month - 1 + self.months * index
        year, month = first.year + month // 12, month % 12 + 1
        return date(year, month, min(first.day, calendar.monthrange(year, month)[1]))

    def __str__(self) -> str:
        if self.months:
            return "monthly" if self.months == 1 else f"every {self.months} months"
        if self.days == 7:
            return "weekly"
        return "fortnightly" if self.days == 14 else f"every {self.days} days"


_EVERY_WORDS = {
    "month": Every(months=1),
    "monthly": Every(months=1),
    "quarter": Every(months=3),
    "quarterly": Every(months=3),
    "week": Every(days=7),
    "weekly": Every(days=7),
    "fortnight": Every(days=14),
    "fortnightly": Every(days=14),
    "biweekly": Every(days=14),
    "bi-weekly": Every(days=14),
}
_EVERY_COUNTED = re.compile(r"^(\d+)\s*(d|days?|w|weeks?|m|months?)$")


def parse_every(text: str) -> Every:
    """`month`, `week`, `fortnight`, `quarter` (or `monthly`, ...), or a count with a unit:
    `14d`, `14 days`, `2w`, `2 weeks`, `2m`, `2 months`."""
    words = text.strip().lower()
    if words in _EVERY_WORDS:
        return _EVERY_WORDS[words]
    counted = _EVERY_COUNTED.match(words)
    if counted and int(counted.group(1)) > 0:
        number, unit = int(counted.group(1)), counted.group(2)[0]
        return Every(months=number) if unit == "m" else Every(days=number * (7 if unit == "w" else 1))
    raise ValueError(f"{text.strip()!r} is not a period like month, week, fortnight, 14d or 2 months")


def split_in_instalments(amount: Money, count: int, first: date, every: Every) -> list[tuple[date, Money]]:
    """`amount` in `count` instalments from `first`: equal shares rounded once to the minor
    unit, the last one taking what rounding left (100.00 in 3: 33.33, 33.33, 33.34)."""
    if count < 1:
        raise ValueError("a plan needs at least one instalment")
    if amount.to_minor() < count:
        raise ValueError(f"{amount} cannot be split in {count} instalments of at least one minor unit")
    share = Money.of(amount.amount / count, amount.currency)
    if share * (count - 1) > amount:  # rounding up would leave the last one negative
        share = Money.from_minor(amount.to_minor() // count, amount.currency)
    shares = [share] * (count - 1) + [amount - share * (count - 1)]
    return [(every.nth(first, index), value) for index, value in enumerate(shares)]


def payment_plan(
    balance: Money,
    count: int,
    first: date,
    every: Every,
    *,
    paid_before: Money | None = None,
    agreed_on: date | None = None,
) -> PaymentPlan:
    """A plan for what is still owed. What was paid before the plan is its first entry (dated
    the day it was agreed), so that the plan adds up to the invoice's total and only money paid
    since counts towards the instalments."""
    entries = split_in_instalments(balance, count, first, every)
    if paid_before is not None and not paid_before.is_zero:
        entries.insert(0, (min(agreed_on or first, first), paid_before))
    return PaymentPlan(instalments=entries)


_TERMS = re.compile(
    r"^\s*(\d+)\s*(?:x\s*)?(monthly|quarterly|weekly|fortnightly|bi-?weekly)\s+instal+ments?\s*$", re.IGNORECASE
)


def plan_from_terms(text: str, total: Money, first: date) -> PaymentPlan:
    """A plan stated in words, as a CRM property holds it ("3 monthly instalments"): the
    invoice's `total` in that many instalments, the first on `first` (its due date).
    ValueError when the words are not understood."""
    found = _TERMS.match(text)
    if not found:
        raise ValueError(f"{text.strip()!r} is not understood as a plan like '3 monthly instalments'")
    count = int(found.group(1))
    if count < 1:
        raise ValueError(f"{text.strip()!r}: a plan needs at least one instalment")
    return PaymentPlan(instalments=split_in_instalments(total, count, first, parse_every(found.group(2).lower())))


def _plan_words(plan: PaymentPlan, paid: Money, as_of: date) -> str:
    """Why a plan on time protects its invoice, in words that change when what is due changes
    (an instalment's date passes, a payment arrives), not every day: the audit log records the
    skip again only when its reason changes."""
    due = _due_before(plan, as_of, paid.currency)
    passed = [when for when, _ in plan.instalments if when < as_of]
    if passed:
        words = f"{paid} paid so far covers the {due} due by {max(passed)}"
    else:
        words = f"{paid} paid so far; no instalment was due yet"
    owed = Money.zero(paid.currency)
    for when, amount in sorted(plan.instalments):
        owed += amount
        if owed > paid:
            return f"{words}; next: {owed - paid} by {when}"
    return words
