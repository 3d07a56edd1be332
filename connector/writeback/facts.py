"""What the write-back plan is decided from: every stored invoice, payment, allocation and
system view, and the day each invoice was last reminded, gathered in one read of the store."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date
from typing import Any

import sqlalchemy as sa

from connector.config import Config
from connector.connections import system_ranks
from connector.model import invoice_position
from connector.providers.registry import Registry
from connector.reconcile.types import LEDGER_RULE
from connector.state import linking as state_linking
from connector.state import reconciliation as decisions
from connector.state.store import Store
from connector.state.tables import table
from connector.writeback.plan import Facts, SystemView


def gather_facts(config: Config, store: Store, registry: Registry | None = None, today: date | None = None) -> Facts:
    systems = system_ranks(config, registry)
    today = today or date.today()
    with store.session() as session:
        invoices = {i.id: i for i in store.list_invoices(session=session) if i.id}
        payments = {p.id: p for p in store.list_payments(session=session) if p.id}
        applied = [s.allocation for s in decisions.load_allocations(session, status="applied")]
        invoice_rows = state_linking.ref_views(session, "invoice")
        payment_rows = state_linking.ref_views(session, "payment")
    extra = [a for a in applied if a.rule != LEDGER_RULE]
    by_invoice: dict[str, list[Any]] = defaultdict(list)
    for allocation in extra:
        by_invoice[allocation.invoice_id].append(allocation)
    positions = {i: invoice_position(inv, today, by_invoice.get(i, [])) for i, inv in invoices.items()}

    def views(rows: list[dict[str, Any]]) -> dict[str, list[SystemView]]:
        out: dict[str, list[SystemView]] = defaultdict(list)
        for row in rows:
            kind = systems.get(row["system"], ("unknown", 0))[0]
            out[row["entity_id"]].append(SystemView(row["system"], kind, row["object_type"], row["remote_id"], row["data"]))
        return out

    payment_views = views(payment_rows)
    ledger_payments_on: dict[tuple[str, str], list[SystemView]] = defaultdict(list)
    for entity, entity_views in payment_views.items():
        for view in entity_views:
            invoice_remote = ((view.data.get("_sync") or {}).get("links") or {}).get("invoice")
            if view.kind == "ledger" and invoice_remote:
                ledger_payments_on[(view.system, str(invoice_remote))].append(view)
    fee_ledgers = frozenset(
        name for name, connection in config.connections.items()
        if getattr(connection.settings, "fee_account_code", None) and systems.get(name, ("", 0))[0] == "ledger"
    )
    with store.session() as session:
        reminded = last_reminders(session)
    return Facts(
        invoices=invoices, positions=positions, invoice_views=views(invoice_rows), payments=payments,
        payment_views=payment_views, allocations=extra, ledger_payments_on=dict(ledger_payments_on),
        fee_ledgers=fee_ledgers, last_reminders=reminded,
    )


def last_reminders(session: Any) -> dict[str, date]:
    """Per invoice, the day its latest reminder went out (the day the action carrying it was
    done). Dunning queues each reminder's actions tagged with the customer and the step: the
    message (an email, or a CRM note or task when the channel is the CRM) names the invoices it
    reminds of (`dunning_role` "message", `dunning_invoices`); the other actions (a note beside
    an email, an escalation or late-fee task for a person) do not count. Actions queued before
    those tags are matched with the reminder the audit log recorded for the customer and step:
    the email counts, or without one the CRM note or task. Cancelled or parked ones never count."""
    actions = table("outbox_actions")
    out: dict[str, date] = {}

    def reminded(invoice_ids: Any, when: Any) -> None:
        day = (when.astimezone() if when.tzinfo else when).date()  # the local day, as `today` is
        for invoice_id in invoice_ids:
            if invoice_id not in out or out[invoice_id] < day:
                out[invoice_id] = day

    legacy: dict[tuple[str, int], list[tuple[str, str, Any]]] = defaultdict(list)
    query = sa.select(actions.c.kind, actions.c.state, actions.c.updated_at, actions.c.payload).where(
        actions.c.subject_type == "customer")
    for kind, state, updated_at, payload in session.execute(query):
        payload = json.loads(payload) if isinstance(payload, str) else payload
        if not isinstance(payload, dict) or payload.get("dunning_step") is None or not payload.get("dunning_customer"):
            continue  # not a reminder (a note finance queued about a dispute, a pause)
        role = payload.get("dunning_role")
        if role is None:
            legacy[(str(payload["dunning_customer"]), int(payload["dunning_step"]))].append((kind, state, updated_at))
        elif role == "message" and state == "done":
            reminded([str(i) for i in payload.get("dunning_invoices") or []], updated_at)
    if legacy:
        log = table("audit_log")
        listed: dict[tuple[str, int], set[str]] = defaultdict(set)
        query = sa.select(log.c.subject_id, log.c.inputs).where(log.c.actor == "dunning", log.c.action == "reminder")
        for customer, inputs in session.execute(query):
            inputs = json.loads(inputs) if isinstance(inputs, str) else inputs
            if customer and isinstance(inputs, dict) and inputs.get("step") is not None:
                listed[(str(customer), int(inputs["step"]))].update(str(i) for i in inputs.get("invoices") or [])
        for key, queued in legacy.items():
            emails = [a for a in queued if a[0] == "send_invoice"]
            done = [updated for _, state, updated in emails or queued if state == "done"]
            if done and key in listed:
                reminded(listed[key], max(done))
    return out
