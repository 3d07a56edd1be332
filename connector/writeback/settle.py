"""Settlement: after a decision changed the allocations, the outbox follows from them, in the
decision's own transaction.

The write-back plan is derived again from what the transaction sees. Then:
- a write not sent yet (planned, or parked after failing) that no longer follows is cancelled,
  audit-logged by the decision's actor: "no longer follows from <cause>"; one a settlement
  cancelled is planned again when a later decision makes it follow again;
- a finance decision (`reverse=True`; never the automatic plan) that leaves a money write already
  sent without the allocation behind it takes it back: a payment or a fee the ledger can delete
  gets a `delete_payment` / `delete_fee` reversal (summary `reverse: ...`, payload
  `{"reverses": <the sent write's id>, ...}`); one it cannot take back (an invoice the gateway
  marked paid: Stripe has no un-pay; a payment in a ledger without deletes) refuses the decision
  in one line, unless forced: then a task for a person goes to the company's CRM and the
  difference is recorded as a gap (audit action `gap`) for `drift` to report until resolved;
- a reversal not sent yet whose write has an allocation behind it again is cancelled.

Dunning's reminders (payload tagged `dunning_*`) and the tasks filed here are not write-back
writes: a settlement never touches them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal

from connector.config import Config
from connector.connections import system_ranks
from connector.errors import UsageError
from connector.model import Action, Ref
from connector.money import Money
from connector.providers.registry import Registry, installed
from connector.reconcile.types import LEDGER_RULE
from connector.state import outbox
from connector.state import reconciliation as decisions
from connector.state.bookkeeping import audit, audit_entries
from connector.state.store import Store
from connector.writeback.facts import REVERSAL_OF, gather_facts, live
from connector.writeback.plan import Facts, PlannedAction, plan_all

WRITEBACK_KINDS = ("record_payment", "record_fee", "mark_paid", "void_invoice", "update_properties")
MONEY_KINDS = ("record_payment", "record_fee", "mark_paid")
REVERSE_PREFIX = "reverse: "
GapKind = Literal["irreversible_write", "unwritten_decision"]


def is_writeback(entry: outbox.OutboxEntry) -> bool:
    """A write the write-back plan derives (not a reminder, not a reversal, not a task)."""
    return entry.action.kind in WRITEBACK_KINDS and not any(str(k).startswith("dunning_") for k in entry.action.payload)


def is_reversal(entry: outbox.OutboxEntry) -> bool:
    return entry.action.kind in REVERSAL_OF.values() and "reverses" in entry.action.payload


@dataclass(frozen=True)
class Gap:
    """A difference between a decision and what a system holds, recorded for `drift`."""

    kind: GapKind
    action: int  # the outbox action that was (or will not be) written
    connection: str
    subject_type: str
    subject_id: str
    invoice: str | None
    payment: str | None
    amount: Money
    reason: str
    task: str | None = None  # where a person was asked to act, if anywhere


@dataclass
class Settlement:
    derived: list[PlannedAction] = field(default_factory=list)
    queued: int = 0  # writes newly queued (or planned again)
    cancelled: list[outbox.OutboxEntry] = field(default_factory=list)  # unsent writes that no longer follow
    reversals: list[PlannedAction] = field(default_factory=list)  # planned now to take sent writes back
    gaps: list[Gap] = field(default_factory=list)


def record_gap(session: Any, actor: str, gap: Gap) -> None:
    """The audit entry `drift` reads: action `gap`, with what differs and where."""
    audit(
        session,
        actor,
        "gap",
        gap.subject_type,
        gap.subject_id,
        {
            "gap": gap.kind,
            "action": gap.action,
            "connection": gap.connection,
            "invoice": gap.invoice,
            "payment": gap.payment,
            "amount": str(gap.amount.amount),
            "currency": gap.amount.currency,
            "task": gap.task,
        },
        gap.reason,
    )


def settle(
    config: Config,
    store: Store,
    session: Any,
    *,
    actor: str,
    cause: str,
    reverse: bool,
    force: bool = False,
    payments: Collection[str] = (),
    invoices: Collection[str] = (),
    registry: Registry | None = None,
    today: date | None = None,
) -> Settlement:
    """Bring the outbox in line with the allocations `session` holds (see the module's doc).
    `payments` and `invoices` are what the decision touched: only their sent writes are taken
    back (a write some other change left without backing is not this decision's to undo)."""
    registry = registry or installed()
    day = today or date.today()
    result = Settlement()
    facts = gather_facts(config, store, registry, day, session=session)
    backing = Backing(facts, [s.allocation for s in decisions.load_allocations(session, status="applied")])
    scope = sorted({*payments, *invoices})
    sent = [e for e in outbox.entries(session, states=("done",), subject_ids=scope) if is_writeback(e)] if scope else []
    taken_back = set(facts.reversed.values())
    backing.know_sent([e for e in sent if e.id not in taken_back])
    refusals: list[Gap] = []
    changed = False
    # a write finance already knows it cannot take back (its gap is recorded) is not refused
    # again: a later decision about the same records goes through
    acknowledged = gapped_actions(session) if reverse else set()
    if reverse:
        for entry in sent:
            if entry.id in taken_back or entry.action.kind not in REVERSAL_OF or backing.holds(entry):
                continue
            if entry.id in acknowledged:
                continue
            reversal = _reversal(entry, facts, backing)
            if _can_apply(config, registry, entry.action.connection, reversal.action.kind):
                result.reversals.append(reversal)
            else:
                refusals.append(_irreversible(entry, facts, backing, registry, config))
        changed = _queue_reversals(session, actor, cause, result.reversals)
    changed = _withdraw_backed_reversals(session, actor, cause, backing, result) or changed
    if changed:
        facts = gather_facts(config, store, registry, day, session=session)
    result.derived = plan_all(facts, day)
    derived_keys = {p.action.idempotency_key for p in result.derived}
    if reverse:
        for entry in sent:
            if entry.action.kind == "mark_paid" and entry.id not in acknowledged and not _still_paid(entry, facts):
                refusals.append(_irreversible(entry, facts, backing, registry, config))
        _refuse_while_sending(session, scope, derived_keys)
    if refusals and not force:
        raise UsageError(refusals[0].reason + ", or rerun with --force to keep the decision and file a task")
    for gap in refusals:
        gap = _file_task(config, store, session, registry, gap, day, result)
        record_gap(session, actor, gap)
        result.gaps.append(gap)
    result.queued = outbox.add_planned(
        session, [(p.action, p.subject_type, p.subject_id, p.summary) for p in result.derived]
    ) + len(outbox.replan_settled(session, sorted(derived_keys)))
    for entry in outbox.entries(session, states=("planned", "failed")):
        if is_writeback(entry) and entry.action.idempotency_key not in derived_keys:
            if outbox.cancel_unsent(session, entry.id, cause):
                _audit_cancel(session, actor, cause, entry)
                result.cancelled.append(entry)
    return result


# What stands behind a sent write ------------------------------------------------------------


class Backing:
    """Which sent money writes still have an applied allocation behind them.

    - a payment recorded in the ledger: the ledger's own record of it (`ledger_record`, once a
      sync read it back) is applied, or the allocations of its payment to its invoice not yet in
      the ledger cover every such payment sent and not taken back;
    - a fee: its payment is still applied somewhere."""

    def __init__(self, facts: Facts, applied: Sequence[Any]) -> None:
        self.facts = facts
        self.pending: dict[tuple[str, str], Money] = {}
        self.paying = {a.payment_id for a in applied}
        self.held: set[str] = set()  # ledger payments (remote ids) whose ledger_record is applied
        recorded = {(a.payment_id, a.invoice_id) for a in applied if a.rule == LEDGER_RULE}
        for allocation in applied:
            if allocation.rule == LEDGER_RULE:
                continue
            pair = (allocation.payment_id, allocation.invoice_id)
            self.pending[pair] = self.pending[pair] + allocation.amount if pair in self.pending else allocation.amount
        ledger_invoices = {
            (v.system, v.remote_id): invoice_id
            for invoice_id, views in facts.invoice_views.items()
            for v in views
            if v.kind == "ledger"
        }
        for payment_id, views in facts.payment_views.items():
            for view in views:
                link = ((view.data.get("_sync") or {}).get("links") or {}).get("invoice")
                invoice_id = ledger_invoices.get((view.system, str(link))) if link else None
                if view.kind == "ledger" and live(view) and (payment_id, invoice_id) in recorded:
                    self.held.add(view.remote_id)
        self.by_reference = {p: p for p in facts.payments}
        for payment_id, views in facts.payment_views.items():
            for view in views:
                if view.kind == "gateway":
                    self.by_reference.setdefault(view.remote_id, payment_id)
        self._sent: dict[tuple[str, str], list[outbox.OutboxEntry]] = defaultdict(list)

    def know_sent(self, entries: Sequence[outbox.OutboxEntry]) -> None:
        """The sent payments not taken back, per payment and invoice (the pair's allocations
        must cover them all)."""
        for entry in entries:
            if entry.action.kind == "record_payment":
                self._sent[self.pair(entry)].append(entry)

    def payment_of(self, entry: outbox.OutboxEntry) -> str | None:
        if entry.action.kind == "record_fee":
            return entry.subject_id
        return self.by_reference.get(str(entry.action.payload.get("reference")))

    def pair(self, entry: outbox.OutboxEntry) -> tuple[str, str]:
        return (self.payment_of(entry) or "", entry.subject_id or "")

    def holds(self, entry: outbox.OutboxEntry) -> bool:
        kind = entry.action.kind
        if kind == "record_payment":
            if remote_id(entry) in self.held:
                return True
            pair = self.pair(entry)
            sent = self._sent.get(pair, [])
            if all(e.id != entry.id for e in sent):
                sent = [*sent, entry]
            unheld = [e for e in sent if remote_id(e) not in self.held]
            owed = sum((_amount(e) for e in unheld[1:]), _amount(unheld[0]))
            covered = self.pending.get(pair)
            return covered is not None and covered.currency == owed.currency and covered >= owed
        if kind == "record_fee":
            return (entry.subject_id or "") in self.paying
        return True


def remote_id(entry: outbox.OutboxEntry) -> str:
    """The id the provider gave the record a sent write created (a Xero PaymentID)."""
    return str((entry.result or {}).get("remote_id") or "")


def _amount(entry: outbox.OutboxEntry) -> Money:
    payload = entry.action.payload
    return Money.of(payload["amount"], payload["currency"])


def _label(facts: Facts, invoice_id: str | None) -> str:
    invoice = facts.invoices.get(invoice_id or "")
    return (invoice.number if invoice else None) or invoice_id or "?"


def _reversal(entry: outbox.OutboxEntry, facts: Facts, backing: Backing) -> PlannedAction:
    action, connection = entry.action, entry.action.connection
    amount = _amount(entry)
    if action.kind == "record_payment":
        reverse = Action(
            connection=connection,
            kind="delete_payment",
            target=Ref(system=connection, object_type="payment", remote_id=remote_id(entry)),
            payload={
                "reverses": entry.id,
                "amount": str(amount.amount),
                "currency": amount.currency,
                "reference": action.payload.get("reference"),
            },
        )
        summary = (
            f"{REVERSE_PREFIX}{_label(facts, entry.subject_id)}: delete payment {amount} "
            f"(reference {action.payload.get('reference')}) recorded in {connection} by #{entry.id}"
        )
        return PlannedAction(reverse, "invoice", entry.subject_id or "", summary)
    reverse = Action(
        connection=connection,
        kind="delete_fee",
        target=Ref(system=connection, object_type="bank_transaction", remote_id=remote_id(entry)),
        payload={"reverses": entry.id, "amount": str(amount.amount), "currency": amount.currency},
    )
    summary = (
        f"{REVERSE_PREFIX}delete fee {amount} on {action.payload.get('reference')} "
        f"booked in {connection} by #{entry.id}"
    )
    return PlannedAction(reverse, "payment", backing.payment_of(entry) or "", summary)


def _can_apply(config: Config, registry: Registry, connection: str, kind: str) -> bool:
    configured = config.connections.get(connection)
    return configured is not None and kind in registry.get(configured.provider).actions


def gapped_actions(session: Any) -> set[int]:
    """The outbox ids of the writes a recorded gap is about."""
    out = set()
    for entry in audit_entries(session, actions={"gap"}):
        action = (entry.inputs or {}).get("action") if isinstance(entry.inputs, dict) else None
        if isinstance(action, int) or (isinstance(action, str) and action.isdigit()):
            out.add(int(action))
    return out


def _still_paid(entry: outbox.OutboxEntry, facts: Facts) -> bool:
    position = facts.positions.get(entry.subject_id or "")
    return position is None or position.status == "paid"


def _irreversible(entry: outbox.OutboxEntry, facts: Facts, backing: Backing, registry: Registry, config: Config) -> Gap:
    """The write the decision cannot take back, with the one-line reason and what to do."""
    action, connection = entry.action, entry.action.connection
    configured = config.connections.get(connection)
    provider = registry.get(configured.provider).name if configured else connection
    if action.kind == "mark_paid":
        position = facts.positions.get(entry.subject_id or "")
        label = _label(facts, entry.subject_id)
        owed = position.balance if position else Money.zero(facts.invoices[entry.subject_id or ""].currency)
        return Gap(
            "irreversible_write",
            entry.id,
            connection,
            "invoice",
            entry.subject_id or "",
            entry.subject_id,
            None,
            owed,
            f"{label} was marked paid in {connection} by action #{entry.id} and {provider} cannot un-pay an "
            f"invoice: void or refund it in {connection} by hand",
        )
    amount = _amount(entry)
    payment = backing.payment_of(entry)
    if action.kind == "record_fee":
        what, subject = f"the fee of {amount} on {action.payload.get('reference')} was booked", ("payment", payment)
        invoice = None
    else:
        what, subject = (
            f"the payment of {amount} on {_label(facts, entry.subject_id)} was recorded",
            (
                "invoice",
                entry.subject_id,
            ),
        )
        invoice = entry.subject_id
    return Gap(
        "irreversible_write",
        entry.id,
        connection,
        subject[0],
        subject[1] or "",
        invoice,
        payment,
        amount,
        f"{what} in {connection} by action #{entry.id} and {provider} cannot delete it: delete it in "
        f"{connection} by hand",
    )


def _queue_reversals(session: Any, actor: str, cause: str, reversals: list[PlannedAction]) -> bool:
    if not reversals:
        return False
    outbox.add_planned(session, [(p.action, p.subject_type, p.subject_id, p.summary) for p in reversals])
    outbox.replan_settled(session, [p.action.idempotency_key for p in reversals])
    for planned in reversals:
        audit(
            session,
            actor,
            "plan_reversal",
            "action",
            str(planned.action.payload["reverses"]),
            {
                "kind": planned.action.kind,
                "connection": planned.action.connection,
                "key": planned.action.idempotency_key,
            },
            f"{planned.summary}; follows from {cause}",
        )
    return True


def _withdraw_backed_reversals(session: Any, actor: str, cause: str, backing: Backing, result: Settlement) -> bool:
    """Cancel the reversals not sent yet whose write stands again (matched back before the
    reversal went out)."""
    waiting = [e for e in outbox.entries(session, states=("planned", "failed")) if is_reversal(e)]
    if not waiting:
        return False
    originals = {e.id: e for e in outbox.entries(session, ids=[int(w.action.payload["reverses"]) for w in waiting])}
    backing.know_sent([o for o in originals.values() if o.action.state == "done"])
    withdrawn = False
    for entry in waiting:
        original = originals.get(int(entry.action.payload["reverses"]))
        if original is not None and backing.holds(original) and outbox.cancel_unsent(session, entry.id, cause):
            _audit_cancel(session, actor, cause, entry)
            result.cancelled.append(entry)
            withdrawn = True
    return withdrawn


def _refuse_while_sending(session: Any, scope: Sequence[str], derived: set[str]) -> None:
    """A money write of the decision's records being sent right now cannot be stopped: the
    decision waits for it (a crashed sender's claim runs out after its lease)."""
    if not scope:
        return
    for entry in outbox.entries(session, states=("in_flight",), subject_ids=scope):
        if entry.action.kind in MONEY_KINDS and is_writeback(entry) and entry.action.idempotency_key not in derived:
            raise UsageError(
                f"action #{entry.id} ({entry.action.kind}) is being sent right now; "
                "run this decision again once `connector apply` has finished it"
            )


def _audit_cancel(session: Any, actor: str, cause: str, entry: outbox.OutboxEntry) -> None:
    audit(
        session,
        actor,
        "cancel",
        "action",
        str(entry.id),
        {"kind": entry.action.kind, "connection": entry.action.connection, "key": entry.action.idempotency_key},
        outbox.SETTLED_NOTE + cause,
    )


def _file_task(
    config: Config, store: Store, session: Any, registry: Registry, gap: Gap, day: date, result: Settlement
) -> Gap:
    """A task for a person on the customer's company in the company's CRM, if it has one."""
    crms = {name for name, (kind, _) in system_ranks(config, registry).items() if kind == "crm"}
    facts_invoice = store.get_invoice(gap.invoice, session=session) if gap.invoice else None
    payment = store.list_payments(ids=[gap.payment], session=session) if gap.payment else []
    customer_id = facts_invoice.customer_id if facts_invoice else (payment[0].customer_id if payment else None)
    customer = store.get_customer(customer_id, session=session) if customer_id else None
    company = next(
        (r for r in (customer.refs if customer else []) if r.system in crms and r.object_type == "customer"), None
    )
    if company is None:
        return gap
    action = Action(
        connection=company.system,
        kind="create_task",
        payload={
            "company_id": company.remote_id,
            "subject": f"Undo by hand: {gap.reason.split(':', 1)[0]}",
            "body": f"{gap.reason}. Finance kept its decision; the connector cannot take this write back.",
            "due": day.isoformat(),
            "gap": gap.kind,
            "action": gap.action,
        },
    )
    where = f"task on {company.system} company {company.remote_id}"
    result.queued += outbox.add_planned(
        session, [(action, gap.subject_type, gap.subject_id, f"gap of #{gap.action}: {where}")]
    )
    return replace(gap, task=where)


class Settler:
    """Settles finance's decisions (`reverse=True`) for `connector.reconcile.decisions`, which
    decides in its own transaction and calls this before it commits; keeps each settlement."""

    def __init__(self, config: Config, store: Store, *, force: bool = False, registry: Registry | None = None) -> None:
        self.config, self.store, self.force, self.registry = config, store, force, registry
        self.settlements: list[Settlement] = []

    def __call__(
        self, session: Any, *, actor: str, cause: str, payments: Collection[str], invoices: Collection[str]
    ) -> Settlement:
        settled = settle(
            self.config,
            self.store,
            session,
            actor=actor,
            cause=cause,
            reverse=True,
            force=self.force,
            payments=payments,
            invoices=invoices,
            registry=self.registry,
        )
        self.settlements.append(settled)
        return settled


__all__ = ["Gap", "Settlement", "Settler", "is_reversal", "is_writeback", "record_gap", "settle"]
