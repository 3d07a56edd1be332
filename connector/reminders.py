"""Dunning around the pure policy: build the cases from what is stored, decide, and turn each
reminder into the actions its channel needs. Skips are audit-logged (once a day per invoice
and reason) so `connector explain` shows why an invoice was not chased.

Channels: `ledger_email` (the ledger emails its invoice), `gateway_email` (the gateway emails
its invoice), `crm_task` (a task for a person on the customer's CRM company), `crm_note`.
An email goes for the most overdue invoice of the reminder; when the customer has a CRM
company, a note there lists every invoice of the reminder, so the account team sees the one
consolidated message. A late fee is never applied by us: it becomes a CRM task for a person.
Escalation sets the invoices' collections flag and creates a CRM task.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connector.config import Config
from connector.dunning import Case, DunningPolicy, Reminder, Skip, plan_reminders
from connector.errors import ConfigError
from connector.model import Action, Customer, Money
from connector.writeback import gather_facts
from providers.registry import Registry
from state import outbox
from state.bookkeeping import audit
from state.store import Store
from state.tables import table

ACTOR = "dunning"


class CustomerDunning(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[dict[str, Any]] | None = None
    pause: bool = False


class ConnectionDunning(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[dict[str, Any]]


class DunningSection(BaseModel):
    """`[dunning]` in connector.toml: `steps`, per-connection overrides (for the customers known
    in that connection, e.g. one ledger per legal entity) and per-customer overrides by id or
    exact name. The most specific wins: customer, then connection, then the default."""

    model_config = ConfigDict(extra="forbid")

    steps: list[dict[str, Any]] | None = None
    connections: dict[str, ConnectionDunning] = Field(default_factory=dict)
    customers: dict[str, CustomerDunning] = Field(default_factory=dict)


def dunning_section(config: Config) -> DunningSection:
    raw = config.dunning
    try:
        section = DunningSection.model_validate(raw)
        policies = [section.steps] + [c.steps for c in section.connections.values()]
        policies += [c.steps for c in section.customers.values()]
        for steps in policies:
            if steps is not None:
                DunningPolicy.model_validate({"steps": steps})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(f"dunning.{where}: {message}") from None
    return section


def policy_chooser(section: DunningSection) -> Any:
    default = DunningPolicy.model_validate({"steps": section.steps}) if section.steps else DunningPolicy.default()
    by_connection = {name: DunningPolicy.model_validate({"steps": c.steps}) for name, c in section.connections.items()}

    def policy_for(customer: Customer) -> DunningPolicy:
        override = section.customers.get(customer.id or "") or section.customers.get(customer.name)
        if override and override.steps:
            return DunningPolicy.model_validate({"steps": override.steps})
        for name, policy in by_connection.items():  # in the order the config names them
            if any(ref.system == name for ref in customer.refs):
                return policy
        return default

    return policy_for


@dataclass
class DunningPlan:
    reminders: list[Reminder] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    actions: list[tuple[Action, str, str, str]] = field(default_factory=list)


def already_reminded(store: Store) -> set[tuple[str, int]]:
    """(customer, step) pairs reminded before: the audit log keeps every reminder decided."""
    log = table("audit_log")
    query = sa.select(log.c.subject_id, log.c.inputs).where(log.c.actor == ACTOR, log.c.action == "reminder")
    found = set()
    with store.session() as session:
        for subject, inputs in session.execute(query):
            step = (inputs or {}).get("step") if isinstance(inputs, dict) else None
            if subject and step is not None:
                found.add((str(subject), int(step)))
    return found


def build_plan(config: Config, store: Store, as_of: date, registry: Registry | None = None) -> DunningPlan:
    section = dunning_section(config)
    facts = gather_facts(config, store, registry, as_of)
    customers = {c.id: c for c in store.list_customers() if c.id}
    for key, override in section.customers.items():
        for customer in customers.values():
            if override.pause and key in (customer.id, customer.name):
                customers[customer.id or ""] = customer.model_copy(update={"paused": True})
    pending: dict[str, Money] = {}
    for allocation in facts.allocations:
        current = pending.get(allocation.invoice_id)
        pending[allocation.invoice_id] = allocation.amount if current is None else current + allocation.amount
    credit = unapplied_credit(store, facts)
    cases = []
    for invoice_id, invoice in facts.invoices.items():
        customer = customers.get(invoice.customer_id or "")
        position = facts.positions[invoice_id]
        if customer is None or position.status not in ("open", "partially_paid"):
            continue  # nothing to chase; not worth a skip in the audit log every day
        cases.append(Case(invoice=invoice, position=position, customer=customer,
                          pending_payment=pending.get(invoice_id),
                          unapplied_credit=credit.get((customer.id or "", invoice.currency))))
    reminders, skips = plan_reminders(cases, policy_chooser(section), already_reminded(store), as_of)
    plan = DunningPlan(reminders=reminders, skips=skips)
    for reminder in reminders:
        plan.actions.extend(_actions(reminder, facts, customers, as_of))
    return plan


def unapplied_credit(store: Store, facts: Any) -> dict[tuple[str, str], Money]:
    """Per customer and currency: money received and not applied to any invoice (overpayments)."""
    from connector.model import PaymentApplication
    from state import reconciliation as decisions

    with store.session() as session:
        applied = [s.allocation for s in decisions.load_allocations(session, status="applied")]
    by_payment: dict[str, list[Any]] = defaultdict(list)
    for allocation in applied:
        by_payment[allocation.payment_id].append(allocation)
    credit: dict[tuple[str, str], Money] = {}
    for payment_id, payment in facts.payments.items():
        if not payment.customer_id or payment.status in ("failed", "pending"):
            continue
        try:
            left = PaymentApplication(payment=payment, allocations=by_payment.get(payment_id, [])).unapplied
        except ValidationError:
            continue  # over-allocated: a data problem `connector drift` and `explain` show
        if left.amount > 0:
            key = (payment.customer_id, left.currency)
            credit[key] = left if key not in credit else credit[key] + left
    return credit


def _actions(reminder: Reminder, facts: Any, customers: dict[str, Customer], as_of: date) -> list[tuple[Action, str, str, str]]:
    customer = customers[reminder.customer_id]
    tag = {"dunning_step": reminder.step.days, "dunning_customer": reminder.customer_id}
    crm = [r for r in customer.refs if _kind(facts, r.system) == "crm" and r.object_type == "customer"]
    out: list[tuple[Action, str, str, str]] = []
    first = reminder.invoices[0]
    label = f"{customer.name}, step {reminder.step.days:+d} ({reminder.step.tone})"
    channel = reminder.step.channel
    if channel in ("crm_task", "crm_note") and not crm:
        channel = "ledger_email"  # no CRM company for this customer: the ledger emails instead
    if channel in ("ledger_email", "gateway_email"):
        wanted = "ledger" if channel == "ledger_email" else "gateway"
        views = [v for v in facts.invoice_views.get(first, []) if v.kind == wanted and v.object_type == "invoice"]
        if not views and wanted == "gateway":  # not in the gateway: the ledger emails it
            views = [v for v in facts.invoice_views.get(first, []) if v.kind == "ledger" and v.object_type == "invoice"]
        for view in views[:1]:
            action = Action(connection=view.system, kind="send_invoice", target=view.ref, payload=tag)
            out.append((action, "customer", reminder.customer_id, f"reminder {label}: {view.system} emails {view.remote_id}"))
    for ref in crm[:1]:
        kind = "create_task" if channel == "crm_task" or reminder.escalate else "create_note"
        payload = {**tag, "company_id": ref.remote_id, "body": reminder.text,
                   "subject": f"{'Collections' if reminder.escalate else 'Payment reminder'}: {customer.name}",
                   "due": as_of.isoformat()}
        out.append((Action(connection=ref.system, kind=kind, payload=payload), "customer", reminder.customer_id,
                    f"reminder {label}: {kind.replace('_', ' ')} on {ref.system} company {ref.remote_id}"))
        for invoice_id, fee in reminder.late_fees:
            number = facts.invoices[invoice_id].number or invoice_id
            fee_payload = {**tag, "company_id": ref.remote_id, "subject": f"Late fee {fee} on {number}?",
                           "body": f"Policy step {reminder.step.days:+d} proposes a late fee of {fee} on {number}. "
                                   "Apply it in the ledger if you agree; the connector never applies fees itself.",
                           "due": as_of.isoformat(), "invoice": invoice_id}
            out.append((Action(connection=ref.system, kind="create_task", payload=fee_payload), "invoice", invoice_id,
                        f"late fee {fee} on {number}: task for a person on {ref.system}"))
    return out


def _kind(facts: Any, system: str) -> str:
    for views in facts.invoice_views.values():
        for view in views:
            if view.system == system:
                return str(view.kind)
    return "unknown"


def queue(config: Config, store: Store, as_of: date, registry: Registry | None = None) -> DunningPlan:
    """Plan reminders, queue their actions, flag escalated invoices, audit the skips."""
    plan = build_plan(config, store, as_of, registry)
    with store.session() as session:
        outbox.add_planned(session, plan.actions)
        invoices = table("invoices")
        for reminder in plan.reminders:
            if reminder.escalated_invoices:  # only those that reached the escalation step themselves
                session.execute(
                    sa.update(invoices).where(invoices.c.id.in_(list(reminder.escalated_invoices))).values(in_collections=True)
                )
            audit(session, ACTOR, "reminder", "customer", reminder.customer_id,
                  {"step": reminder.step.days, "invoices": list(reminder.invoices), "channel": reminder.step.channel},
                  reminder.text)
        _audit_skips(session, plan.skips, as_of)
    return plan


def _audit_skips(session: Any, skips: list[Skip], as_of: date) -> None:
    log = table("audit_log")
    seen = defaultdict(set)
    query = sa.select(log.c.subject_id, log.c.inputs).where(log.c.actor == ACTOR, log.c.action == "reminder_skipped")
    for subject, inputs in session.execute(query):
        data = inputs if isinstance(inputs, dict) else {}
        seen[subject].add((data.get("code"), data.get("as_of")))
    for skip in skips:
        if (skip.code, as_of.isoformat()) in seen[skip.invoice_id]:
            continue
        audit(session, ACTOR, "reminder_skipped", "invoice", skip.invoice_id,
              {"code": skip.code, "as_of": as_of.isoformat(), "customer": skip.customer_id}, skip.reason)
