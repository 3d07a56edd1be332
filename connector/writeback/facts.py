"""What the write-back plan is decided from: every stored invoice, payment, allocation and
system view, and the day each invoice was last reminded, gathered in one read of the store."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from connector.config import Config
from connector.connections import check_scope, system_ranks
from connector.model import invoice_position
from connector.providers.registry import Registry
from connector.reconcile.types import LEDGER_RULE
from connector.state import linking as state_linking
from connector.state import reconciliation as decisions
from connector.state.reminders import reminder_messages
from connector.state.store import Store
from connector.writeback.plan import Facts, SystemView


def gather_facts(config: Config, store: Store, registry: Registry | None = None, today: date | None = None) -> Facts:
    check_scope(config, store)  # the writes planned from these facts go to the config's connections
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
            out[row["entity_id"]].append(
                SystemView(row["system"], kind, row["object_type"], row["remote_id"], row["data"])
            )
        return out

    payment_views = views(payment_rows)
    ledger_payments_on: dict[tuple[str, str], list[SystemView]] = defaultdict(list)
    for entity_views in payment_views.values():
        for view in entity_views:
            invoice_remote = ((view.data.get("_sync") or {}).get("links") or {}).get("invoice")
            if view.kind == "ledger" and invoice_remote:
                ledger_payments_on[(view.system, str(invoice_remote))].append(view)
    fee_ledgers = frozenset(
        name
        for name, connection in config.connections.items()
        if getattr(connection.settings, "fee_account_code", None) and systems.get(name, ("", 0))[0] == "ledger"
    )
    with store.session() as session:
        reminded = last_reminders(session)
    return Facts(
        invoices=invoices,
        positions=positions,
        invoice_views=views(invoice_rows),
        payments=payments,
        payment_views=payment_views,
        allocations=extra,
        ledger_payments_on=dict(ledger_payments_on),
        fee_ledgers=fee_ledgers,
        last_reminders=reminded,
    )


def last_reminders(session: Any) -> dict[str, date]:
    """Per invoice, the day its latest reminder went out (the day the action carrying it was
    done). Dunning queues each reminder's actions tagged with the customer and the step: the
    message (an email, or a CRM note or task when the channel is the CRM) names the invoices it
    reminds of (`dunning_role` "message", `dunning_invoices`); the other actions (a note beside
    an email, an escalation or late-fee task for a person) do not count, nor do cancelled or
    parked ones."""
    out: dict[str, date] = {}
    for message in reminder_messages(session):
        if message.state != "done" or not message.customer:
            continue
        when = message.updated_at
        day = (when.astimezone() if when.tzinfo else when).date()  # the local day, as `today` is
        for invoice_id in message.invoices:
            if invoice_id not in out or out[invoice_id] < day:
                out[invoice_id] = day
    return out
