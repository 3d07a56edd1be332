"""Plan and apply: the writes each system needs, queued in the outbox and sent exactly once.

Apply takes one action at a time: claim it (committed), send it with its idempotency key
(Stripe and Xero replay their first answer to a repeated key; HubSpot looks the key up before
creating), then record the answer and mark it done in one transaction. A crash between the
provider's answer and our commit leaves the action claimed; the next run takes it over and
the resend is answered from the provider's idempotency record, so the effect happens once.
A failed action keeps its error and is retried with backoff on later runs, up to
`MAX_ATTEMPTS`; then it is parked for a person (`connector actions list --failed`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from connector import failpoints
from connector.config import Config
from connector.errors import ConnectorError, InvalidRequestError, ProviderError, RateLimitDeferred, UsageError
from connector.link_engine import system_ranks
from connector.model import invoice_position
from connector.plan import Facts, PlannedAction, SystemView, plan_all
from connector.reconcile_engine import LEDGER_RULE
from connector.sync import first_line, open_provider
from providers.base import Provider
from providers.registry import Registry
from state import linking as state_linking
from state import outbox
from state import reconciliation as decisions
from state.bookkeeping import audit
from state.records import utcnow
from state.store import Store
from state.tables import table

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
LEASE = timedelta(minutes=10)
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2))
# How long a connection's writes wait after a deferral that named no time (Retry-After).
DEFERRAL_WITHOUT_TIME = timedelta(hours=1)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead_local_workers(workers: list[str]) -> list[str]:
    """Claims of processes on this host that no longer exist: safe to take over at once."""
    host = socket.gethostname()
    dead = []
    for worker in workers:
        name, _, pid = worker.rpartition(":")
        if name != host or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            dead.append(worker)
        except PermissionError:
            pass
    return dead


# Plan -------------------------------------------------------------------------------------


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


def plan(config: Config, store: Store, registry: Registry | None = None, today: date | None = None) -> list[PlannedAction]:
    """Derive the actions (status and payments, then reminders) and queue the new ones;
    returns everything derived."""
    from connector.reminders import queue as queue_reminders

    day = today or date.today()
    derived = plan_all(gather_facts(config, store, registry, day), day)
    with store.session() as session:
        added = outbox.add_planned(session, [(p.action, p.subject_type, p.subject_id, p.summary) for p in derived])
    reminders = queue_reminders(config, store, day, registry)
    derived += [PlannedAction(a, t, i, s) for a, t, i, s in reminders.actions]
    logger.info("planned %d actions (%d new)", len(derived), added)
    return derived


# Apply ------------------------------------------------------------------------------------


@dataclass
class Deferral:
    until: datetime
    reason: str
    actions: int = 0  # handed back unsent in this run


@dataclass
class ApplyReport:
    done: list[outbox.OutboxEntry] = field(default_factory=list)
    replayed: int = 0
    failed: list[tuple[outbox.OutboxEntry, str]] = field(default_factory=list)
    parked: list[tuple[outbox.OutboxEntry, str]] = field(default_factory=list)
    # connection -> its writes wait: a daily rate limit is spent (no attempt is counted)
    deferred: dict[str, Deferral] = field(default_factory=dict)

    def per_system(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for entry in self.done:
            out[entry.action.connection][entry.action.kind] += 1
        return {k: dict(v) for k, v in out.items()}


def apply(
    config: Config, store: Store, registry: Registry | None = None, *, only: list[str] | None = None,
    batch: int = 20, worker: str | None = None,
) -> ApplyReport:
    """Send every action that is due, until none is left for this worker."""
    worker = worker or worker_id()
    report = ApplyReport()
    providers: dict[str, Provider] = {}
    try:
        while True:
            with store.session() as session:
                dead = _dead_local_workers(outbox.in_flight_workers(session))
                claimed = outbox.claim(session, worker, lease=LEASE, limit=batch, connections=only, dead_workers=dead,
                                       skip_connections=list(report.deferred))
            if not claimed:
                return report
            for entry in claimed:
                deferral = report.deferred.get(entry.action.connection)
                if deferral is not None:
                    _hand_back(store, entry, worker, deferral)
                else:
                    _send(config, store, registry, providers, entry, worker, report)
    finally:
        for provider in providers.values():
            provider.close()


def _send(config: Config, store: Store, registry: Registry | None, providers: dict[str, Provider],
          entry: outbox.OutboxEntry, worker: str, report: ApplyReport) -> None:
    action = entry.action
    context = {"connection": action.connection, "action_id": entry.id}
    try:
        provider = providers.get(action.connection)
        if provider is None:
            provider = providers[action.connection] = open_provider(config.connection(action.connection), store, registry)
        result = provider.apply(action)
    except RateLimitDeferred as exc:
        # The connection's allowance is spent for hours (Xero's 5,000 calls a day): this and
        # every later write to it wait until then, none of them counted as a failed attempt,
        # so a large backlog is not parked action by action for a person.
        wait = timedelta(seconds=exc.retry_after) if exc.retry_after else DEFERRAL_WITHOUT_TIME
        deferral = report.deferred[action.connection] = Deferral(utcnow() + wait, first_line(exc, 500))
        with store.session() as session:
            # the rest of its queue waits too, for every worker, not only for this run
            waiting = outbox.defer_connection(session, action.connection, _waits_note(deferral), not_before=deferral.until)
            audit(session, "apply", "connection_deferred", "connection", action.connection,
                  {"until": deferral.until.isoformat(), "action": entry.id, "waiting": waiting}, deferral.reason)
        logger.warning("writes to %s wait until %s: %s", action.connection, deferral.until.isoformat(timespec="minutes"),
                       deferral.reason, extra=context)
        _hand_back(store, entry, worker, deferral)
        return
    except (ProviderError, ConnectorError) as exc:
        message = first_line(exc, 500)
        permanent = isinstance(exc, InvalidRequestError) or not isinstance(exc, ProviderError)
        retry_at = None if permanent or entry.attempts >= MAX_ATTEMPTS else utcnow() + BACKOFF[min(entry.attempts, len(BACKOFF)) - 1]
        with store.session() as session:
            outbox.fail(session, entry.id, worker, message, retry_at=retry_at)
            audit(session, "apply", "action_failed", "action", str(entry.id),
                  {"kind": action.kind, "connection": action.connection, "attempt": entry.attempts}, message)
        (report.failed if retry_at else report.parked).append((entry, message))
        logger.warning("action %s failed: %s", entry.id, message, extra=context)
        return
    failpoints.hit("after_send")  # crash tests: the provider answered, nothing committed yet
    answer = {"remote_id": result.remote_id, "replayed": result.replayed, "response": result.response}
    with store.session() as session:
        if outbox.complete(session, entry.id, worker, answer):
            audit(session, "apply", action.kind, entry.subject_type or "action", entry.subject_id,
                  {"action": entry.id, "connection": action.connection, "key": action.idempotency_key,
                   "remote_id": result.remote_id, "replayed": result.replayed}, entry.summary)
            report.done.append(entry)
            report.replayed += int(result.replayed)


def _waits_note(deferral: Deferral) -> str:
    return f"waits until {deferral.until.isoformat(timespec='minutes')}: {deferral.reason}"


def _hand_back(store: Store, entry: outbox.OutboxEntry, worker: str, deferral: Deferral) -> None:
    with store.session() as session:
        if outbox.release(session, entry.id, worker, _waits_note(deferral), not_before=deferral.until):
            deferral.actions += 1


def _state_of(session: Any, action_id: int) -> str:
    found = outbox.entries(session, ids=[action_id])
    if not found:
        raise UsageError(f"no action #{action_id}")
    return str(found[0].action.state)


def retry(store: Store, action_id: int) -> bool:
    """Queue a failed (parked) or waiting action again, its attempts from zero; False when
    its state forbids it; UsageError when there is no such action."""
    with store.session() as session:
        _state_of(session, action_id)
        return outbox.set_state(session, action_id, "planned", from_states=("failed", "planned"))


def cancel(store: Store, action_id: int, user: str) -> bool:
    with store.session() as session:
        _state_of(session, action_id)
        changed = outbox.set_state(session, action_id, "cancelled", from_states=("planned", "failed"))
        if changed:
            audit(session, user, "cancel", "action", str(action_id), None, None)
        return changed


def state_of(store: Store, action_id: int) -> str:
    """The action's state; UsageError when there is no such action."""
    with store.session() as session:
        return _state_of(session, action_id)


def pending(store: Store, only: list[str] | None = None) -> list[outbox.OutboxEntry]:
    with store.session() as session:
        return outbox.entries(session, states=("planned", "in_flight"), connections=only)


__all__ = ["ApplyReport", "Deferral", "apply", "cancel", "gather_facts", "last_reminders", "pending", "plan", "retry", "state_of",
           "worker_id"]
