"""What the write-back plan is decided from: every stored invoice, payment, allocation and
system view, the day each invoice was last reminded, and the writes taken back, gathered in one
read of the store (or of the caller's transaction, so that a decision's settlement sees the
allocations it has just changed)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from connector.config import Config
from connector.connections import check_scope, system_ranks
from connector.model import Allocation, Invoice, Payment, invoice_position
from connector.money import Money
from connector.providers.registry import Registry
from connector.reconcile.types import LEDGER_RULE, MONEY_STATUSES
from connector.state import linking as state_linking
from connector.state import outbox, records
from connector.state import reconciliation as decisions
from connector.state.reminders import reminder_messages
from connector.state.store import Store
from connector.writeback.plan import PLAN_VIEW_FIELDS, Facts, FieldsRead, SystemView

# The kinds of system whose views of an invoice a reminders plan reads (`Around.for_reminders`).
REMINDING_KINDS = ("ledger", "gateway")
# A sent write is taken back by one of these (its payload names it: `reverses`).
REVERSAL_OF = {"record_payment": "delete_payment", "record_fee": "delete_fee"}


def gather_facts(
    config: Config,
    store: Store,
    registry: Registry | None = None,
    today: date | None = None,
    *,
    session: Any = None,
    customer_ids: Sequence[str] | None = None,
    around: Around | None = None,
    taken: TakenBack | None = None,
) -> Facts:
    """The facts as stored, or as `session` (a transaction not committed yet) sees them: of the
    whole book, of the customers of `customer_ids` only (`_customers`), or of a part of the
    book (`Around`). `taken`: `taken_back` as read once for several parts, else read here."""
    check_scope(config, store)  # the writes planned from these facts go to the config's connections
    day = today or date.today()
    if around is not None and taken is None:
        taken = around.taken
    if session is not None:
        return _gather(config, store, session, registry, day, customer_ids, around, taken)
    with store.session() as own:
        return _gather(config, store, own, registry, day, customer_ids, around, taken)


LedgerLinks = Mapping[tuple[str, str], Sequence[str]]


@dataclass(frozen=True)
class TakenBack:
    """The sent writes a reversal takes back (not cancelled): their keys, each with the write's
    id (`keys`); the ledger payments being (or already) deleted, by remote id (`withdrawn`), and
    the payments those are views of (`payments`: a part of the book reads them too)."""

    keys: dict[str, int]
    withdrawn: frozenset[str]
    payments: frozenset[str]


@dataclass(frozen=True)
class Around:
    """A part of the book to gather the facts of: these receivables and these payments, every
    applied allocation on those invoices or of those payments, the payments of those
    allocations, the ledger payments being withdrawn, and every payment a ledger records on one
    of these invoices (`ledger_links`, from `ledger_payment_links`: a payment entered by hand
    that no allocation names is one). The day each invoice was last reminded: `reminded`
    (`last_reminders` of the whole book, read once for every part), else from the reminder
    messages of `customer_ids`. The writes taken back: `taken`, else read."""

    invoice_ids: Sequence[str]
    payment_ids: Sequence[str] = ()
    customer_ids: Sequence[str] = ()
    ledger_links: LedgerLinks = field(default_factory=dict)
    reminded: Mapping[str, date] | None = None
    taken: TakenBack | None = None  # `taken_back` as read once for every part, else read here
    # Only what a reminders plan weighs (`connector.dunning.run.build_plan`), which writes no
    # payment and no CRM property: the invoices' views in the ledgers and gateways (the systems
    # that email an invoice and hold its payments) without their content (where each lives:
    # system, type, id; `data` empty), the payments themselves only of `payment_ids`, the
    # views of payments only of those the ledger may hold beside an allocation of ours (the
    # payments of the connector's allocations read) or being withdrawn, and not what the CRM
    # holds since our writes (`crm_sent`, `sent_updates` empty).
    for_reminders: bool = False


def ledger_payment_links(
    config: Config, store: Store, session: Any, registry: Registry | None = None
) -> dict[tuple[str, str], list[str]]:
    """(ledger system, invoice remote id) -> the payments whose view in that ledger is on that
    invoice, for `Around.ledger_links`: one read of two fields of each ledger payment view."""
    ledgers = [name for name, (kind, _) in system_ranks(config, registry).items() if kind == "ledger"]
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for system, invoice, payment_id in state_linking.payment_invoice_links(session, ledgers):
        found[(system, invoice)].append(payment_id)
    return dict(found)


@dataclass
class _Read:
    invoices: dict[str, Invoice]
    payments: dict[str, Payment]
    applied: list[Allocation]
    invoice_rows: list[dict[str, Any]]
    payment_rows: list[dict[str, Any]]
    fields: bool = False  # the views hold `PLAN_VIEW_FIELDS` only (else whole)


def _whole_book(store: Store, session: Any) -> _Read:
    return _Read(
        invoices={i.id: i for i in store.list_receivables(session=session) if i.id},
        payments={p.id: p for p in store.list_payments(session=session) if p.id},
        applied=[s.allocation for s in decisions.load_allocations(session, status="applied")],
        invoice_rows=state_linking.ref_views(session, "invoice"),
        payment_rows=state_linking.ref_views(session, "payment"),
    )


def _customers(store: Store, session: Any, customer_ids: Sequence[str]) -> Around:
    """The part of the book the facts of the customers of `customer_ids` read: their
    receivables and their payments (through the customer indexes). The positions, the pending
    payments and the unapplied credit of those customers are then the ones the whole book gives
    (a test holds the reminders plan equal)."""
    return Around(
        invoice_ids=[k.id for k in store.receivable_keys(session=session, customer_ids=customer_ids)],
        payment_ids=[payment_id for payment_id, _ in records.payment_keys(session, customer_ids)],
        customer_ids=customer_ids,
    )


def _neighbourhood(
    store: Store, session: Any, around: Around, taken: TakenBack, systems: Mapping[str, tuple[str, int]]
) -> _Read:
    """What the facts of `around` read, and only that (through the invoice, payment and
    allocation indexes): the receivables (without lines or refs: where each lives is in its
    views) and their views, the payments and every view of them."""
    invoice_ids, own = list(around.invoice_ids), list(around.payment_ids)
    stored = {
        s.allocation.id: s for s in decisions.load_allocations(session, status="applied", invoice_ids=invoice_ids)
    }
    if own:
        stored.update(
            (s.allocation.id, s) for s in decisions.load_allocations(session, status="applied", payment_ids=own)
        )
    applied = [s.allocation for s in sorted(stored.values(), key=lambda s: (s.created_at, s.allocation.id or ""))]
    if not invoice_ids:
        invoice_rows = []
    elif around.for_reminders:
        where = [name for name, (kind, _) in systems.items() if kind in REMINDING_KINDS]
        invoice_rows = state_linking.ref_views(
            session, "invoice", entity_ids=invoice_ids, systems=where, with_data=False
        )
    else:
        invoice_rows = state_linking.ref_views(session, "invoice", entity_ids=invoice_ids, fields=PLAN_VIEW_FIELDS)
    recorded = {
        payment_id
        for row in invoice_rows
        for payment_id in around.ledger_links.get((row["system"], row["remote_id"]), ())
    }
    payment_ids = sorted(set(own) | {a.payment_id for a in applied} | taken.payments | recorded)
    whole_payments, viewed = payment_ids, payment_ids
    if around.for_reminders:
        whole_payments = sorted(own)
        extra = {a.payment_id for a in applied if a.rule != LEDGER_RULE}
        viewed = sorted(extra | taken.payments | recorded)
    return _Read(
        invoices={
            i.id: i
            for i in store.list_receivables(session=session, ids=invoice_ids, with_lines=False, with_refs=False)
            if i.id
        },
        payments={p.id: p for p in store.list_payments(session=session, ids=whole_payments) if p.id},
        applied=applied,
        invoice_rows=invoice_rows,
        payment_rows=(
            state_linking.ref_views(session, "payment", entity_ids=viewed, fields=PLAN_VIEW_FIELDS) if viewed else []
        ),
        fields=True,
    )


def _gather(
    config: Config,
    store: Store,
    session: Any,
    registry: Registry | None,
    today: date,
    customer_ids: Sequence[str] | None,
    around: Around | None,
    taken: TakenBack | None,
) -> Facts:
    systems = system_ranks(config, registry)
    taken = taken if taken is not None else taken_back(session)
    withdrawn = taken.withdrawn
    if customer_ids is not None:
        around = _customers(store, session, customer_ids)
    read = _whole_book(store, session) if around is None else _neighbourhood(store, session, around, taken, systems)
    invoices, payments, applied = read.invoices, read.payments, read.applied
    invoice_rows, payment_rows = read.invoice_rows, read.payment_rows
    targets = None if around is None else {(r["system"], r["object_type"], r["remote_id"]) for r in invoice_rows}
    crm_sent: dict[tuple[str, str, str], dict[str, str]] = {}
    sent_updates: dict[str, int] = {}
    if around is None or not around.for_reminders:
        crm_sent, sent_updates = sent_crm_values(session, invoice_rows, targets)
    if around is not None and around.reminded is not None:
        reminded = {i: around.reminded[i] for i in invoices if i in around.reminded}
    else:
        reminded = last_reminders(session, None if around is None else around.customer_ids)

    def views(rows: list[dict[str, Any]]) -> dict[str, list[SystemView]]:
        out: dict[str, list[SystemView]] = defaultdict(list)
        for row in rows:
            kind = systems.get(row["system"], ("unknown", 0))[0]
            data = FieldsRead.of(row["data"], PLAN_VIEW_FIELDS) if read.fields else row["data"]
            out[row["entity_id"]].append(SystemView(row["system"], kind, row["object_type"], row["remote_id"], data))
        return out

    invoice_views = views(invoice_rows)
    payment_views = views(payment_rows)
    ledger_payments_on: dict[tuple[str, str], list[SystemView]] = defaultdict(list)
    for entity_views in payment_views.values():
        for view in entity_views:
            invoice_remote = ((view.data.get("_sync") or {}).get("links") or {}).get("invoice")
            if view.kind == "ledger" and invoice_remote:
                ledger_payments_on[(view.system, str(invoice_remote))].append(view)
    extra = [a for a in applied if a.rule != LEDGER_RULE]
    held = _held_by_ledger(invoice_views, payment_views, withdrawn)
    by_invoice: dict[str, list[Any]] = defaultdict(list)
    for allocation in extra:
        if (allocation.payment_id, allocation.invoice_id) not in held:
            by_invoice[allocation.invoice_id].append(allocation)
    positions = {
        i: invoice_position(
            _without_withdrawn(inv, invoice_views.get(i, []), ledger_payments_on, withdrawn),
            today,
            by_invoice.get(i, []),
        )
        for i, inv in invoices.items()
    }
    fee_ledgers = frozenset(
        name
        for name, connection in config.connections.items()
        if getattr(connection.settings, "fee_account_code", None) and systems.get(name, ("", 0))[0] == "ledger"
    )
    return Facts(
        invoices=invoices,
        positions=positions,
        invoice_views=invoice_views,
        payments=payments,
        payment_views=payment_views,
        allocations=extra,
        ledger_payments_on=dict(ledger_payments_on),
        fee_ledgers=fee_ledgers,
        last_reminders=reminded,
        reversed=taken.keys,
        withdrawn=withdrawn,
        crm_sent=crm_sent,
        sent_updates=sent_updates,
        applied=applied,
    )


def sent_crm_values(
    session: Any, rows: list[dict[str, Any]], targets: Collection[tuple[str, str, str]] | None = None
) -> tuple[dict[tuple[str, str, str], dict[str, str]], dict[str, int]]:
    """What the CRM holds since our last writes: per record (system, object type, remote id),
    the properties our done `update_properties` wrote after the record was last read (a sync
    has not read them back yet), the later write winning; and the key of every done update
    with its outbox id (the same content sent again later needs a key of its own). Of every
    record, or of those of `targets` only."""
    seen = {(r["system"], r["object_type"], r["remote_id"]): r.get("seen_at") for r in rows}
    written: dict[tuple[str, str, str], dict[str, str]] = {}
    keys: dict[str, int] = {}
    if targets is not None and not targets:
        return written, keys
    aimed = None if targets is None else {(s, t, r) for s, t, r in targets}
    for entry in outbox.write_facts(session, states=("done",), kinds=("update_properties",), targets=aimed):
        keys[entry.idempotency_key] = entry.id
        record = entry.target
        properties = entry.payload.get("properties")
        if record is None or not isinstance(properties, dict):
            continue
        read = seen.get(record)
        if read is not None and entry.updated_at <= read:
            continue  # a sync read the record after this write: its view says what the CRM holds
        written.setdefault(record, {}).update({str(k): str(v) for k, v in properties.items() if v is not None})
    return written, keys


def taken_back(session: Any) -> TakenBack:
    """The sent writes a reversal takes back (not cancelled) and the ledger payments being (or
    already) deleted, with the payments they are views of (`TakenBack`)."""
    reversals = [
        e for e in outbox.entries(session, kinds=sorted(set(REVERSAL_OF.values()))) if e.action.state != "cancelled"
    ]
    originals = {int(e.action.payload["reverses"]) for e in reversals if "reverses" in e.action.payload}
    keys = {e.action.idempotency_key: e.id for e in outbox.entries(session, ids=sorted(originals))} if originals else {}
    deleted: dict[tuple[str, str], set[str]] = defaultdict(set)  # (system, object type) -> remote ids
    for e in reversals:
        if e.action.kind == "delete_payment" and e.action.target:
            deleted[(e.action.target.system, e.action.target.object_type)].add(e.action.target.remote_id)
    payments = {
        entity_id
        for (system, object_type), remote_ids in deleted.items()
        for entity_id in records.existing_entity_ids(session, system, object_type, sorted(remote_ids)).values()
        if entity_id
    }
    return TakenBack(
        keys=keys,
        withdrawn=frozenset(remote_id for remote_ids in deleted.values() for remote_id in remote_ids),
        payments=frozenset(payments),
    )


def live(view: SystemView) -> bool:
    """Whether the system still holds the record (not deleted, not failed)."""
    return not (view.data.get("_sync") or {}).get("deleted") and view.data.get("status") != "failed"


def _held_by_ledger(
    invoice_views: dict[str, list[SystemView]], payment_views: dict[str, list[SystemView]], withdrawn: frozenset[str]
) -> set[tuple[str, str]]:
    """(payment, invoice) of each payment a ledger holds as money on that invoice: its amount
    is in the invoice's `amount_paid`, so an allocation of ours of that pair (one reconciliation
    has not retired yet, or a second part the write-back never writes) adds nothing to it."""
    ledger_invoices = {
        (v.system, v.remote_id): invoice_id
        for invoice_id, views in invoice_views.items()
        for v in views
        if v.kind == "ledger"
    }
    held = set()
    for payment_id, views in payment_views.items():
        for view in views:
            if view.kind != "ledger" or view.remote_id in withdrawn or (view.data.get("_sync") or {}).get("deleted"):
                continue
            if view.data.get("status") not in (None, *MONEY_STATUSES):
                continue  # as reconciliation reads a ledger part (`connector.reconcile.run._ledger_part`)
            link = ((view.data.get("_sync") or {}).get("links") or {}).get("invoice")
            invoice_id = ledger_invoices.get((view.system, str(link))) if link else None
            if invoice_id is not None:
                held.add((payment_id, invoice_id))
    return held


def _without_withdrawn(
    invoice: Invoice,
    views: list[SystemView],
    ledger_payments_on: dict[tuple[str, str], list[SystemView]],
    withdrawn: frozenset[str],
) -> Invoice:
    """The invoice as the ledger will hold it once the payments we are deleting there are gone
    (until the next sync reads the ledger without them)."""
    if not withdrawn:
        return invoice
    paid = invoice.amount_paid
    for ledger in (v for v in views if v.kind == "ledger"):
        for payment in ledger_payments_on.get((ledger.system, ledger.remote_id), []):
            amount = payment.data.get("amount") or {}
            if payment.remote_id in withdrawn and live(payment) and amount.get("currency") == invoice.currency:
                paid = paid - Money.of(amount["amount"], invoice.currency)
    if paid == invoice.amount_paid:
        return invoice
    return invoice.model_copy(update={"amount_paid": max(paid, Money.zero(invoice.currency))})


def last_reminders(session: Any, customer_ids: Sequence[str] | None = None) -> dict[str, date]:
    """Per invoice, the day its latest reminder went out (the day the action carrying it was
    done). Dunning queues each reminder's actions tagged with the customer and the step: the
    message (an email, or a CRM note or task when the channel is the CRM) names the invoices it
    reminds of (`dunning_role` "message", `dunning_invoices`); the other actions (a note beside
    an email, an escalation or late-fee task for a person) do not count, nor do cancelled or
    parked ones. Of every customer's invoices, or of those of `customer_ids`."""
    out: dict[str, date] = {}
    for message in reminder_messages(session, customer_ids):
        if message.state != "done" or not message.customer:
            continue
        when = message.updated_at
        day = (when.astimezone() if when.tzinfo else when).date()  # the local day, as `today` is
        for invoice_id in message.invoices:
            if invoice_id not in out or out[invoice_id] < day:
                out[invoice_id] = day
    return out
