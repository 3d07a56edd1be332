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
- a reversal not sent yet whose write has an allocation behind it again is cancelled;
- money that left (`connector.reconcile.reversals.money_left`: a payment refunded, failed, or
  disputed and withdrawn) is taken back by the automatic plan too, with no one to ask: a ledger
  payment we recorded for it that no allocation stands behind any more gets its `delete_payment`
  (audit-logged with the refund's or the dispute's reason); one the ledger cannot delete, and
  an invoice we marked paid in the gateway that the book has owed again, get a task for a
  person and a gap, once. The gateway fee we booked stays (Stripe keeps its fee on
  a refund and on a dispute) unless the charge failed. Such a reversal carries why the money
  left (payload `money_left`) and is cancelled if the money is back before it is sent (a
  dispute won); once sent, a won dispute has the reconciliation apply the payment again and the
  plan record it again (`after_reversals`).

Dunning's reminders (payload tagged `dunning_*`) and the tasks filed here are not write-back
writes: a settlement never touches them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal

from connector.config import Config
from connector.connections import check_scope, system_ranks
from connector.errors import UsageError
from connector.model import Action, Ref
from connector.money import Money
from connector.providers.registry import Registry, installed
from connector.reconcile.reversals import money_left, why_money_left
from connector.reconcile.types import LEDGER_RULE
from connector.state import linking as state_linking
from connector.state import outbox, records
from connector.state import reconciliation as decisions
from connector.state.bookkeeping import audit, audit_entries
from connector.state.plan_inputs import NO_CUSTOMER, set_plan_digests
from connector.state.store import Store
from connector.writeback.facts import (
    REVERSAL_OF,
    Around,
    LedgerLinks,
    gather_facts,
    last_reminders,
    ledger_payment_links,
    live,
    taken_back,
)
from connector.writeback.plan import Facts, PlannedAction, SystemView, plan_all
from connector.writeback.unchanged import digest_customers, forgotten, plan_salt, weigh
from connector.writeback.unchanged import to_store as digests_to_store

WRITEBACK_KINDS = ("record_payment", "record_fee", "mark_paid", "void_invoice", "update_properties")
MONEY_KINDS = ("record_payment", "record_fee", "mark_paid")
REVERSAL_KINDS = sorted(set(REVERSAL_OF.values()))
REVERSE_PREFIX = "reverse: "
MONEY_LEFT = "money_left"  # payload of a reversal queued because money left: why it left
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
    derived_count: int = 0  # how many were derived (`derived` may not keep them)
    unchanged_customers: int = 0  # customers not planned again: nothing they are planned from moved
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
    part: Around | None = None,
) -> Settlement:
    """Bring the outbox in line with the allocations `session` holds (see the module's doc).
    `payments` and `invoices` are what the decision touched: only their sent writes are taken
    back (a write some other change left without backing is not this decision's to undo).
    Of the whole book, or of `part` only (`settle_decision`): its writes are derived, and only
    the unsent writes of its invoices and payments can be cancelled."""
    registry = registry or installed()
    day = today or date.today()
    result = Settlement()
    facts = gather_facts(config, store, registry, day, session=session, around=part)
    backing = Backing(facts, facts.applied)
    scope = sorted({*payments, *invoices})
    sent = [e for e in outbox.entries(session, states=("done",), subject_ids=scope) if is_writeback(e)] if scope else []
    taken_back = set(facts.reversed.values())
    backing.know_sent([e for e in sent if e.id not in taken_back])
    refusals: list[Gap] = []
    changed = False
    # a write finance already knows it cannot take back (its gap is recorded) is not refused
    # again: a later decision about the same records goes through
    acknowledged = gapped_actions(session) if reverse else set()
    marked: list[tuple[outbox.OutboxEntry, str]] = []
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
    else:
        changed, marked = _reverse_money_that_left(config, store, session, registry, facts, backing, actor, day, result)
    changed = _withdraw_backed_reversals(session, actor, cause, backing, result) or changed
    if changed:
        facts = gather_facts(config, store, registry, day, session=session, around=part)
    result.derived = plan_all(facts, day)
    result.derived_count = len(result.derived)
    derived_keys = {p.action.idempotency_key for p in result.derived}
    if reverse:
        for entry in sent:
            if entry.action.kind == "mark_paid" and entry.id not in acknowledged and not _still_paid(entry, facts):
                refusals.append(_irreversible(entry, facts, backing, registry, config))
        _refuse_while_sending(session, scope, derived_keys)
    for entry, why in marked:  # the money that paid an invoice we marked paid in the gateway left
        if not _still_paid(entry, facts):
            _hand_over(
                config,
                store,
                session,
                registry,
                actor,
                day,
                result,
                _irreversible(entry, facts, backing, registry, config),
                why,
            )
    if refusals and not force:
        raise UsageError(refusals[0].reason + ", or rerun with --force to keep the decision and file a task")
    for gap in refusals:
        gap = _file_task(config, store, session, registry, gap, day, result)
        record_gap(session, actor, gap)
        result.gaps.append(gap)
    result.queued += outbox.add_planned(
        session, [(p.action, p.subject_type, p.subject_id, p.summary) for p in result.derived]
    ) + len(outbox.replan_settled(session, sorted(derived_keys)))
    if part is None:
        _cancel_not_derived(session, actor, cause, derived_keys, result)
    else:
        _cancel_not_derived_of(session, actor, cause, derived_keys, result, part)
    return result


def settle_decision(
    config: Config,
    store: Store,
    session: Any,
    *,
    actor: str,
    cause: str,
    force: bool = False,
    payments: Collection[str] = (),
    invoices: Collection[str] = (),
    registry: Registry | None = None,
    today: date | None = None,
) -> Settlement:
    """What `settle(reverse=True)` does for a finance decision about `payments` and
    `invoices`, reading only the part of the book the decision can move (`_decision_part`),
    not all of it: the writes of the invoices whose allocations it changed, of the payments
    whose allocations it changed, and of what their sent writes and the reversals waiting
    stand on. Writes elsewhere that no longer follow from the book (a sync since the last
    plan) are not this decision's: the next plan settles them. On a book the plan has
    settled, both settle the decision alike (a test holds them equal)."""
    registry = registry or installed()
    check_scope(config, store)
    part = _decision_part(config, store, session, registry, payments, invoices)
    return settle(
        config,
        store,
        session,
        actor=actor,
        cause=cause,
        reverse=True,
        force=force,
        payments=payments,
        invoices=invoices,
        registry=registry,
        today=today,
        part=part,
    )


def _decision_part(
    config: Config,
    store: Store,
    session: Any,
    registry: Registry,
    payments: Collection[str],
    invoices: Collection[str],
) -> Around:
    """The part of the book a decision about `payments` and `invoices` moves: those payments,
    every payment allocated to those invoices (whatever the allocation's status now), the
    payments of their sent writes (which a reversal may take back), and what
    `_around_payments` adds to them (every invoice those payments touch, the reversals
    waiting)."""
    scope = sorted({*payments, *invoices})
    sent = [e for e in outbox.entries(session, states=("done",), subject_ids=scope) if is_writeback(e)] if scope else []
    seed = set(payments) | _payments_written(session, sent)
    if invoices:
        seed |= {s.allocation.payment_id for s in decisions.load_allocations(session, invoice_ids=sorted(invoices))}
    links = ledger_payment_links(config, store, session, registry)
    # the days reminded as the whole book says them (a message names its invoices)
    return replace(_around_payments(session, links, seed, invoices), reminded=last_reminders(session))


PLAN_BATCH = 1000  # receivables a part of the automatic plan reads at a time


def settle_in_parts(
    config: Config,
    store: Store,
    session: Any,
    *,
    actor: str,
    cause: str,
    registry: Registry | None = None,
    today: date | None = None,
    batch: int = PLAN_BATCH,
    keep: bool = True,
    only_changed: bool = False,
) -> Settlement:
    """What `settle(reverse=False)` with nothing in scope does (the automatic plan), reading the
    book a part at a time in `session`, never all of it. First the money that left: the
    payments whose money left and the ones whose reversals wait, with every invoice they were
    allocated to, written on or name (`_money_left_around`), read together. Then the writes,
    `batch` receivables at a time, a customer's together, each part with its own neighbourhood
    (`facts.Around`): an invoice's writes depend on its views, the allocations on it and their
    payments, the ledger's payments on it, the writes taken back and the days it was reminded
    (these two read once for every part), all of which the part has. Last, the unsent writes
    no part derived are cancelled, as `settle` does. A test holds both equal. `keep=False`: the writes derived are
    queued and counted (`derived_count`), not kept (a large book derives hundreds of
    thousands). Each customer planned keeps a digest of what its writes were derived from,
    read just before its part's facts (`unchanged.digest_customers`). `only_changed`: the
    customers whose digest is the one stored are not planned again, and their unsent writes
    stay, as a whole-book plan would have derived them again (`unchanged.weigh`)."""
    check_scope(config, store)  # before anything is read: a book with nothing to plan included
    registry = registry or installed()
    day = today or date.today()
    result = Settlement()
    links = ledger_payment_links(config, store, session, registry)
    around = _money_left_around(session, links)
    if around.payment_ids:
        facts = gather_facts(config, store, registry, day, session=session, around=around)
        backing = Backing(facts, facts.applied)
        changed, marked = _reverse_money_that_left(config, store, session, registry, facts, backing, actor, day, result)
        changed = _withdraw_backed_reversals(session, actor, cause, backing, result) or changed
        if changed:
            facts = gather_facts(config, store, registry, day, session=session, around=around)
        for entry, why in marked:
            if not _still_paid(entry, facts):
                gap = _irreversible(entry, facts, backing, registry, config)
                _hand_over(config, store, session, registry, actor, day, result, gap, why)
    derived_keys: set[str] = set()
    reminded, taken = last_reminders(session), taken_back(session)  # once, after the reversals
    shared = replace(Around(invoice_ids=[]), ledger_links=links, reminded=reminded, taken=taken)
    by_customer = _receivables_by_customer(session)
    salt = plan_salt(config, registry, day, taken, session)
    cleared = dict.fromkeys(forgotten(session, by_customer))
    kept: frozenset[tuple[str, str]] = frozenset()
    if only_changed:  # which customers' inputs moved since their last plan
        unchanged = weigh(session, salt, by_customer, shared, batch=batch)
        by_customer = {c: ids for c, ids in by_customer.items() if c not in unchanged.clean}
        kept, result.unchanged_customers = unchanged.kept, len(unchanged.clean)
    digests: dict[str, str] = {}
    payments_of: dict[str, set[str]] = {}
    for customers, part in _in_parts(by_customer, batch, shared):
        # the digests stored are those read just before the part's facts: a change stored by
        # another writer after them makes the next pass plan the customer again
        digest_customers(session, salt, {c: by_customer[c] for c in customers}, shared, digests, payments_of)
        facts = gather_facts(config, store, registry, day, session=session, around=part)
        planned = plan_all(facts, day)
        result.derived_count += len(planned)
        if keep:
            result.derived += planned
        derived_keys.update(p.action.idempotency_key for p in planned)
        result.queued += outbox.add_planned(
            session, [(p.action, p.subject_type, p.subject_id, p.summary) for p in planned]
        )
    result.queued += len(outbox.replan_settled(session, sorted(derived_keys)))
    _cancel_not_derived(session, actor, cause, derived_keys, result, kept)
    set_plan_digests(session, {**cleared, **digests_to_store(digests, payments_of)})
    return result


def _cancel_not_derived(
    session: Any,
    actor: str,
    cause: str,
    derived: Collection[str],
    result: Settlement,
    kept: Collection[tuple[str, str]] = frozenset(),
) -> None:
    """Cancel every write-back write not sent yet that no longer follows (its key is not among
    the `derived`, and its subject not among those `kept`), audit-logged with `cause`. Only the
    unsent writes' keys and subjects are read, then the few that no longer follow."""
    unsent = outbox.unsent_keys(session, WRITEBACK_KINDS)
    stale = [
        action_id
        for action_id, key, subject_type, subject_id in unsent
        if key not in derived and (subject_type, subject_id) not in kept
    ]
    for start in range(0, len(stale), 1000):
        for entry in outbox.entries(session, ids=stale[start : start + 1000]):
            if is_writeback(entry) and outbox.cancel_unsent(session, entry.id, cause):
                _audit_cancel(session, actor, cause, entry)
                result.cancelled.append(entry)


def _cancel_not_derived_of(
    session: Any, actor: str, cause: str, derived: Collection[str], result: Settlement, part: Around
) -> None:
    """`_cancel_not_derived` for the writes of `part` only: of its invoices, and of its
    payments (a fee), whose every allocation's invoice the part holds."""
    held = {("invoice", i) for i in part.invoice_ids} | {("payment", p) for p in part.payment_ids}
    subjects = sorted({subject for _, subject in held})
    stale = [
        entry
        for start in range(0, len(subjects), 1000)
        for entry in outbox.entries(
            session, states=("planned", "failed"), kinds=WRITEBACK_KINDS, subject_ids=subjects[start : start + 1000]
        )
        if (entry.subject_type, entry.subject_id) in held and entry.action.idempotency_key not in derived
    ]
    for entry in sorted(stale, key=lambda e: e.id):
        if is_writeback(entry) and outbox.cancel_unsent(session, entry.id, cause):
            _audit_cancel(session, actor, cause, entry)
            result.cancelled.append(entry)


def _receivables_by_customer(session: Any) -> dict[str, list[str]]:
    """The book's receivables by customer, in order of customer (those without one last, under
    `NO_CUSTOMER`), each customer's by id."""
    by_customer: dict[str | None, list[str]] = defaultdict(list)
    for key in records.receivable_keys(session):
        by_customer[key.customer_id].append(key.id)
    return {
        NO_CUSTOMER if c is None else c: by_customer[c] for c in sorted(by_customer, key=lambda c: (c is None, c or ""))
    }


def _in_parts(
    by_customer: Mapping[str, Sequence[str]], batch: int, shared: Around
) -> Iterator[tuple[list[str], Around]]:
    """The receivables of `by_customer`, about `batch` at a time, each customer's in one part
    (in its order), as the parts of `settle_in_parts`: the part's customers, and the part with
    what `shared` reads once for all."""
    customers: list[str] = []
    invoice_ids: list[str] = []
    for customer in by_customer:
        customers.append(customer)
        invoice_ids += by_customer[customer]
        if len(invoice_ids) >= batch:
            yield customers, replace(shared, invoice_ids=invoice_ids)
            customers, invoice_ids = [], []
    if invoice_ids:
        yield customers, replace(shared, invoice_ids=invoice_ids)


def _money_left_around(session: Any, links: LedgerLinks) -> Around:
    """The part of the book the automatic plan's reversals read (`_reverse_money_that_left`,
    `_withdraw_backed_reversals`): every payment whose money left (a sieve on the payments'
    own columns, which keeps all of them), with what `_around_payments` adds."""
    return _around_payments(session, links, set(records.payments_money_left(session)))


def _around_payments(
    session: Any, links: LedgerLinks, payment_ids: set[str], invoice_ids: Collection[str] = ()
) -> Around:
    """`invoice_ids` and `payment_ids`, with every payment a reversal not sent yet is about,
    and every invoice those payments are allocated to (whatever the allocation's status),
    were written on (their sent payments in a ledger) or name (their views' invoice), so that
    what backs each of their writes is read whole."""
    payment_ids = set(payment_ids)
    waiting = [e for e in outbox.entries(session, states=("planned", "failed"), kinds=REVERSAL_KINDS) if is_reversal(e)]
    originals = outbox.entries(session, ids=[int(w.action.payload["reverses"]) for w in waiting]) if waiting else []
    payment_ids |= _payments_written(session, originals)
    if not payment_ids:
        return Around(invoice_ids=sorted(invoice_ids), ledger_links=links)
    payments = sorted(payment_ids)
    invoices = set(invoice_ids)
    invoices |= {s.allocation.invoice_id for s in decisions.load_allocations(session, payment_ids=payments)}
    views = state_linking.ref_views(session, "payment", entity_ids=payments)
    named = {
        (view["system"], str(link))
        for view in views
        if (link := ((view["data"].get("_sync") or {}).get("links") or {}).get("invoice"))
    }
    # what the payments' sent writes name them by: our id, or the gateway's (`Backing.payment_of`)
    names = set(payments) | {view["remote_id"] for view in views}
    for written in outbox.sent_money_writes(session):
        if (written.payment if written.kind == "record_fee" else written.reference) in names and written.invoice:
            invoices.add(written.invoice)
    if named:
        known = records.refs_known_as(session, {(system, remote) for system, remote in named})
        invoices |= {
            str(r["entity_id"])
            for r in known
            if r["entity_kind"] == "invoice" and r["entity_id"] and (r["system"], r["remote_id"]) in named
        }
    return Around(invoice_ids=sorted(invoices), payment_ids=payments, ledger_links=links)


def _payments_written(session: Any, entries: Sequence[outbox.OutboxEntry]) -> set[str]:
    """The payments (our ids) whose money writes these are: a fee's subject; a ledger
    payment's reference, our id or the gateway's (`Backing.payment_of`)."""
    found = {e.subject_id for e in entries if e.action.kind == "record_fee" and e.subject_id}
    references = {str(e.action.payload.get("reference")) for e in entries if e.action.kind == "record_payment"}
    if references:
        known = records.refs_known_as(session, {(None, r) for r in references})
        found |= {str(r["entity_id"]) for r in known if r["entity_kind"] == "payment" and r["entity_id"]}
        found |= set(records.payments_received(session, sorted(references)))
    return found


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
        # ledger payments (remote ids) whose ledger_record is applied for all they hold: one
        # reduced because money left (a partial refund, a dispute) backs none of them
        self.held: set[str] = set()
        recorded: dict[tuple[str, str], Money] = {}
        for allocation in applied:
            if allocation.rule == LEDGER_RULE:
                recorded[(allocation.payment_id, allocation.invoice_id)] = allocation.amount
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
        on_pair: dict[tuple[str, str], list[SystemView]] = defaultdict(list)
        for payment_id, views in facts.payment_views.items():
            for view in views:
                link = ((view.data.get("_sync") or {}).get("links") or {}).get("invoice")
                invoice_id = ledger_invoices.get((view.system, str(link))) if link else None
                if view.kind == "ledger" and live(view) and invoice_id is not None:
                    on_pair[(payment_id, invoice_id)].append(view)
        for pair, views in on_pair.items():
            if pair in recorded and _covers(recorded[pair], views):
                self.held.update(v.remote_id for v in views)
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


def _covers(recorded: Money, views: Sequence[SystemView]) -> bool:
    """Whether the ledger record's allocation is all the ledger payments hold (a view that
    says no amount counts as covered)."""
    held = Money.zero(recorded.currency)
    for view in views:
        amount = view.data.get("amount") or {}
        if amount.get("amount") is None or amount.get("currency") != recorded.currency:
            continue
        held += Money.of(amount["amount"], recorded.currency)
    return recorded >= held


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


def _reverse_money_that_left(
    config: Config,
    store: Store,
    session: Any,
    registry: Registry,
    facts: Facts,
    backing: Backing,
    actor: str,
    day: date,
    result: Settlement,
) -> tuple[bool, list[tuple[outbox.OutboxEntry, str]]]:
    """The automatic plan's reversals (see the module's doc): each sent money write of a payment
    whose money left, that nothing stands behind any more, is taken back or, where the ledger
    cannot, handed to a person (once: its gap is remembered). Returns whether any was queued,
    and the gateway's mark-paid writes on the invoices those payments paid, each with why its
    money left (whether the invoice is still paid is known once the reversals are planned)."""
    left = {payment_id: p for payment_id, p in facts.payments.items() if money_left(p)}
    if not left:
        return False, []
    taken_back, acknowledged = set(facts.reversed.values()), gapped_actions(session)
    sent = [
        e
        for e in outbox.entries(session, states=("done",), kinds=sorted(REVERSAL_OF))
        if is_writeback(e) and e.id not in taken_back and backing.payment_of(e) in left
    ]
    backing.know_sent(sent)
    paid_by: dict[str, str] = {}  # invoice id -> why the money of a payment that paid it left
    for entry in sent:
        if entry.action.kind == "record_payment" and entry.subject_id:
            paid_by[entry.subject_id] = why_money_left(left[backing.payment_of(entry) or ""])
    invoice_of_view = _invoice_of_view(facts)
    for payment_id, payment in sorted(left.items()):
        for invoice_id in _invoices_named(facts, invoice_of_view, payment_id):
            paid_by.setdefault(invoice_id, why_money_left(payment))
    marked = [
        (e, paid_by[e.subject_id or ""])
        for e in (
            outbox.entries(session, states=("done",), kinds=("mark_paid",), subject_ids=sorted(paid_by))
            if paid_by
            else []
        )
        if is_writeback(e) and e.id not in acknowledged
    ]
    by_cause: dict[str, list[PlannedAction]] = defaultdict(list)
    for entry in sent:
        payment = left[backing.payment_of(entry) or ""]
        if entry.action.kind == "record_fee" and payment.status != "failed":
            continue  # the gateway kept its fee: the booking stays true
        if entry.id in acknowledged or backing.holds(entry):
            continue
        why = why_money_left(payment)
        reversal = _reversal(entry, facts, backing)
        action = reversal.action  # tagged: the reversal no longer follows once the money is back
        tagged = Action(
            connection=action.connection,
            kind=action.kind,
            target=action.target,
            payload={**action.payload, MONEY_LEFT: why},
        )
        reversal = replace(reversal, action=tagged)
        if _can_apply(config, registry, entry.action.connection, reversal.action.kind):
            by_cause[why].append(reversal)
            result.reversals.append(reversal)
            continue
        _hand_over(
            config,
            store,
            session,
            registry,
            actor,
            day,
            result,
            _irreversible(entry, facts, backing, registry, config),
            why,
        )
    queued = [_queue_reversals(session, actor, why, planned) for why, planned in sorted(by_cause.items())]
    return any(queued), marked


def _invoice_of_view(facts: Facts) -> dict[tuple[str, str], str]:
    """(system, remote id) of each stored invoice view -> our invoice id."""
    return {(v.system, v.remote_id): i for i, views in facts.invoice_views.items() for v in views}


def _invoices_named(facts: Facts, invoice_of_view: dict[tuple[str, str], str], payment_id: str) -> set[str]:
    """The invoices the payment's own records name (a charge's gateway invoice, a ledger
    payment's invoice); `invoice_of_view` from `_invoice_of_view`."""
    out = set()
    for view in facts.payment_views.get(payment_id, []):
        link = ((view.data.get("_sync") or {}).get("links") or {}).get("invoice")
        found = invoice_of_view.get((view.system, str(link))) if link else None
        if found is not None:
            out.add(found)
    return out


def _hand_over(
    config: Config,
    store: Store,
    session: Any,
    registry: Registry,
    actor: str,
    day: date,
    result: Settlement,
    gap: Gap,
    why: str,
) -> None:
    """Money left, and a write of ours that the system cannot take back still says it is there:
    a task for a person and a gap for `drift`, with why the money left."""
    gap = replace(gap, reason=f"{why}: {gap.reason}")
    gap = _file_task(config, store, session, registry, gap, day, result, decided="The money left")
    record_gap(session, actor, gap)
    result.gaps.append(gap)


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
    waiting = [e for e in outbox.entries(session, states=("planned", "failed"), kinds=REVERSAL_KINDS) if is_reversal(e)]
    if not waiting:
        return False
    originals = {e.id: e for e in outbox.entries(session, ids=[int(w.action.payload["reverses"]) for w in waiting])}
    backing.know_sent([o for o in originals.values() if o.action.state == "done"])
    withdrawn = False
    for entry in waiting:
        original = originals.get(int(entry.action.payload["reverses"]))
        if original is None:
            continue
        why = cause if backing.holds(original) else _money_back(entry, original, backing)
        if why is not None and outbox.cancel_unsent(session, entry.id, why):
            _audit_cancel(session, actor, why, entry)
            result.cancelled.append(entry)
            withdrawn = True
    return withdrawn


def _money_back(reversal: outbox.OutboxEntry, original: outbox.OutboxEntry, backing: Backing) -> str | None:
    """Why a reversal the automatic plan queued because money left no longer follows: the
    money came back before it was sent (a dispute won, a payment that succeeded after all)."""
    if MONEY_LEFT not in reversal.action.payload:
        return None
    payment = backing.facts.payments.get(backing.payment_of(original) or "")
    if payment is None or money_left(payment):
        return None
    return f"the money is back (the reversal followed from: {reversal.action.payload[MONEY_LEFT]})"


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
    config: Config,
    store: Store,
    session: Any,
    registry: Registry,
    gap: Gap,
    day: date,
    result: Settlement,
    *,
    decided: str = "Finance kept its decision",
) -> Gap:
    """A task for a person on the customer's company in the company's CRM, if it has one.
    `decided`: what stands that the write contradicts (finance's decision, money that left)."""
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
            "body": f"{gap.reason}. {decided}; the connector cannot take this write back.",
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
        settled = settle_decision(
            self.config,
            self.store,
            session,
            actor=actor,
            cause=cause,
            force=self.force,
            payments=payments,
            invoices=invoices,
            registry=self.registry,
        )
        self.settlements.append(settled)
        return settled


__all__ = [
    "Gap",
    "Settlement",
    "Settler",
    "is_reversal",
    "is_writeback",
    "record_gap",
    "settle",
    "settle_decision",
    "settle_in_parts",
]
