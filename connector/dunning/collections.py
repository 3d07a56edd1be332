"""Collections states finance sets by hand: a dispute, a promise to pay, a pause, a payment
plan. Each is written with its audit entry and a note queued on the customer's CRM company,
so the account team sees what finance did; `connector.dunning.states` never overwrites it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from connector.actors import current_user
from connector.dunning.policy import Every, payment_plan
from connector.errors import UsageError
from connector.lookup import find_invoice
from connector.model import Action, Customer, Invoice, PaymentPlan
from connector.reconcile.decisions import invoice_balance
from connector.reports import match_customers
from connector.state import outbox
from connector.state.bookkeeping import audit
from connector.state.records import set_finance_owned
from connector.state.store import Store


@dataclass(frozen=True)
class _Change:
    """One collections state finance sets: the record, the columns, the audit entry and the
    note the account team reads in the CRM."""

    kind: str  # "invoice" | "customer"
    record_id: str
    customer_id: str | None
    values: dict[str, Any]
    action: str  # the audit action (FINANCE_SET in connector.dunning.states reads it)
    inputs: dict[str, Any]
    note: str


def _record(store: Store, session: Any, change: _Change, user: str, reason: str, crm_systems: Sequence[str]) -> None:
    """Set the columns, audit-log the decision and queue the note, in the caller's transaction."""
    set_finance_owned(session, change.kind, [change.record_id], **change.values)
    audit(session, user, change.action, change.kind, change.record_id, change.inputs, reason or None)
    _crm_note(store, session, change.customer_id, change.kind, change.record_id, change.note, crm_systems)


def _crm_note(
    store: Store,
    session: Any,
    customer_id: str | None,
    subject_type: str,
    subject_id: str,
    body: str,
    crm_systems: Sequence[str],
) -> int:
    """Queue a note on the customer's CRM company, so the account team sees what finance did."""
    if not customer_id:
        return 0
    customer = store.get_customer(customer_id, session=session)
    planned = []
    for ref in customer.refs if customer else []:
        if ref.system in crm_systems and ref.object_type == "customer":
            action = Action(
                connection=ref.system, kind="create_note", payload={"company_id": ref.remote_id, "body": body}
            )
            planned.append((action, subject_type, subject_id, f"note on {ref.system} company {ref.remote_id}: {body}"))
    return outbox.add_planned(session, planned)


def _by(user: str, reason: str) -> str:
    return f"{user}{': ' + reason if reason else ''}"


def set_dispute(
    store: Store, token: str, *, disputed: bool, reason: str, user: str | None, crm_systems: Sequence[str]
) -> Invoice:
    user = current_user(user)
    invoice = find_invoice(store, token)
    verb = "disputed" if disputed else "no longer disputed"
    change = _Change(
        "invoice",
        invoice.id or "",
        invoice.customer_id,
        {"disputed": disputed},
        "dispute" if disputed else "dispute_cleared",
        {"number": invoice.number},
        f"{invoice.number or invoice.id} is {verb} (by {_by(user, reason)}); "
        f"reminders {'stop' if disputed else 'resume'}",
    )
    with store.session() as session:
        _record(store, session, change, user, reason, crm_systems)
    return invoice


def set_promise(
    store: Store, token: str, *, promised: date | None, user: str | None, reason: str, crm_systems: Sequence[str]
) -> Invoice:
    user = current_user(user)
    invoice = find_invoice(store, token)
    what = f"promised to pay by {promised}" if promised else "promise to pay cleared"
    change = _Change(
        "invoice",
        invoice.id or "",
        invoice.customer_id,
        {"promise_to_pay": promised},
        "promise",
        {"number": invoice.number, "date": promised},
        f"{invoice.number or invoice.id}: {what} (recorded by {user}); no reminder before then",
    )
    with store.session() as session:
        _record(store, session, change, user, reason, crm_systems)
    return invoice


def set_pause(
    store: Store, token: str, *, paused: bool, user: str | None, reason: str, crm_systems: Sequence[str]
) -> Customer:
    user = current_user(user)
    customer = store.get_customer(token)
    if customer is None:
        found = match_customers(store.list_customers(), token)
        if len(found) != 1:
            names = ", ".join(f"{c.name} ({c.id})" for c in found[:5])
            raise UsageError(f"{token!r} matches {len(found)} customers{': ' + names if names else ''}; give one id")
        customer = found[0]
    change = _Change(
        "customer",
        customer.id or "",
        customer.id,
        {"paused": paused},
        "pause" if paused else "resume",
        {"name": customer.name},
        f"Dunning {'paused' if paused else 'resumed'} for {customer.name} by {_by(user, reason)}",
    )
    with store.session() as session:
        _record(store, session, change, user, reason, crm_systems)
    return customer


def set_payment_plan(
    store: Store,
    token: str,
    *,
    count: int | None,
    every: Every | None,
    first: date | None,
    user: str | None,
    reason: str,
    crm_systems: Sequence[str],
    today: date | None = None,
) -> tuple[Invoice, PaymentPlan | None]:
    """Put INVOICE on a payment plan (what it still owes in `count` instalments from `first`,
    `every` apart), or take it off one (count None). No reminder goes out while the
    instalments are paid on time; a plan behind schedule is reminded at the invoice's step."""

    user = current_user(user)
    today = today or date.today()
    invoice = find_invoice(store, token)
    label = invoice.number or invoice.id or "?"
    plan, before = None, 0
    with store.session() as session:
        if count is not None and every is not None:
            owed = invoice_balance(session, invoice, today)
            if owed.is_zero:
                raise UsageError(f"{label} owes nothing: no plan needed")
            paid_before = invoice.total - owed
            try:
                plan = payment_plan(owed, count, first or today, every, paid_before=paid_before, agreed_on=today)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            before = 0 if paid_before.is_zero else 1
        words = f"payment plan of {describe_plan(plan, before)}" if plan else "payment plan cleared"
        stored = plan.model_dump(mode="json") if plan else None
        change = _Change(
            "invoice",
            invoice.id or "",
            invoice.customer_id,
            {"payment_plan": stored},
            "payment_plan" if plan else "payment_plan_cleared",
            {"number": label, "plan": stored, "every": str(every) if plan else None},
            f"{label}: {words} (recorded by {_by(user, reason)}); "
            + ("no reminder while it is paid on time" if plan else "reminders follow the policy again"),
        )
        _record(store, session, change, user, reason, crm_systems)
    return invoice, plan


def describe_plan(plan: PaymentPlan, paid_before: int = 0) -> str:
    """The instalments in words; the first `paid_before` entries (what was paid before the
    plan) are named apart."""
    before, rest = plan.instalments[:paid_before], plan.instalments[paid_before:]
    text = f"{len(rest)} instalment{'s' if len(rest) != 1 else ''}: " + ", ".join(f"{m} by {d}" for d, m in rest)
    if before:
        text += f" ({', '.join(str(m) for _, m in before)} paid before the plan)"
    return text
