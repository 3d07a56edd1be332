"""Collections states finance sets by hand: a dispute, a promise to pay, a pause, a payment
plan. Each is written with its audit entry and a note queued on the customer's CRM company,
so the account team sees what finance did; `connector.dunning.states` never overwrites it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from connector.actors import current_user
from connector.dunning.policy import Every, payment_plan
from connector.errors import UsageError
from connector.lookup import find_invoice
from connector.model import Action, Invoice, PaymentPlan
from connector.reconcile.decisions import invoice_balance
from connector.reports import match_customers
from connector.state import outbox
from connector.state.bookkeeping import audit
from connector.state.records import set_finance_owned
from connector.state.store import Store


def _crm_note(store: Store, session: Any, customer_id: str | None, subject_type: str, subject_id: str, body: str,
              crm_systems: Sequence[str]) -> int:
    """Queue a note on the customer's CRM company, so the account team sees what finance did."""

    if not customer_id:
        return 0
    customer = store.get_customer(customer_id, session=session)
    planned = []
    for ref in customer.refs if customer else []:
        if ref.system in crm_systems and ref.object_type == "customer":
            action = Action(connection=ref.system, kind="create_note", payload={"company_id": ref.remote_id, "body": body})
            planned.append((action, subject_type, subject_id, f"note on {ref.system} company {ref.remote_id}: {body}"))
    return outbox.add_planned(session, planned)


def set_dispute(store: Store, token: str, *, disputed: bool, reason: str, user: str | None, crm_systems: Sequence[str]) -> Invoice:
    user = current_user(user)
    invoice = find_invoice(store, token)
    with store.session() as session:
        set_finance_owned(session, "invoice", [invoice.id or ""], disputed=disputed)
        audit(session, user, "dispute" if disputed else "dispute_cleared", "invoice", invoice.id, {"number": invoice.number}, reason or None)
        verb = "disputed" if disputed else "no longer disputed"
        _crm_note(store, session, invoice.customer_id, "invoice", invoice.id or "",
                  f"{invoice.number or invoice.id} is {verb} (by {user}{': ' + reason if reason else ''}); reminders {'stop' if disputed else 'resume'}",
                  crm_systems)
    return invoice


def set_promise(store: Store, token: str, *, promised: date | None, user: str | None, reason: str, crm_systems: Sequence[str]) -> Invoice:
    user = current_user(user)
    invoice = find_invoice(store, token)
    with store.session() as session:
        set_finance_owned(session, "invoice", [invoice.id or ""], promise_to_pay=promised)
        audit(session, user, "promise", "invoice", invoice.id, {"number": invoice.number, "date": promised}, reason or None)
        what = f"promised to pay by {promised}" if promised else "promise to pay cleared"
        _crm_note(store, session, invoice.customer_id, "invoice", invoice.id or "",
                  f"{invoice.number or invoice.id}: {what} (recorded by {user}); no reminder before then", crm_systems)
    return invoice


def set_pause(store: Store, token: str, *, paused: bool, user: str | None, reason: str, crm_systems: Sequence[str]) -> Any:
    user = current_user(user)
    customer = store.get_customer(token)
    if customer is None:
        found = match_customers(store.list_customers(), token)
        if len(found) != 1:
            names = ", ".join(f"{c.name} ({c.id})" for c in found[:5])
            raise UsageError(f"{token!r} matches {len(found)} customers{': ' + names if names else ''}; give one id")
        customer = found[0]
    with store.session() as session:
        set_finance_owned(session, "customer", [customer.id or ""], paused=paused)
        audit(session, user, "pause" if paused else "resume", "customer", customer.id, {"name": customer.name}, reason or None)
        _crm_note(store, session, customer.id, "customer", customer.id or "",
                  f"Dunning {'paused' if paused else 'resumed'} for {customer.name} by {user}{': ' + reason if reason else ''}",
                  crm_systems)
    return customer


def set_payment_plan(
    store: Store, token: str, *, count: int | None, every: Every | None, first: date | None, user: str | None,
    reason: str, crm_systems: Sequence[str], today: date | None = None,
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
        set_finance_owned(session, "invoice", [invoice.id or ""],
                          payment_plan=plan.model_dump(mode="json") if plan else None)
        audit(session, user, "payment_plan" if plan else "payment_plan_cleared", "invoice", invoice.id,
              {"number": label, "plan": plan.model_dump(mode="json") if plan else None,
               "every": str(every) if plan else None}, reason or None)
        _crm_note(store, session, invoice.customer_id, "invoice", invoice.id or "",
                  f"{label}: {words} (recorded by {user}{': ' + reason if reason else ''}); "
                  + ("no reminder while it is paid on time" if plan else "reminders follow the policy again"),
                  crm_systems)
    return invoice, plan


def describe_plan(plan: PaymentPlan, paid_before: int = 0) -> str:
    """The instalments in words; the first `paid_before` entries (what was paid before the
    plan) are named apart."""
    before, rest = plan.instalments[:paid_before], plan.instalments[paid_before:]
    text = f"{len(rest)} instalment{'s' if len(rest) != 1 else ''}: " + ", ".join(f"{m} by {d}" for d, m in rest)
    if before:
        text += f" ({', '.join(str(m) for _, m in before)} paid before the plan)"
    return text
