"""Reconciliation around the pure matcher: read what is stored, decide, store the decisions.

Payments the ledger already holds are applied as the ledger says (rule `ledger_record`): the
ledger's own `amount_paid` already counts them, so they never go through the matcher and never
lower a balance twice. Every other payment (a card payment the ledger has not recorded yet) goes
through `connector.reconcile.reconcile` with its explicit links (the gateway invoice it paid),
the invoices' own references (PO numbers) and what finance decided before (manual matches,
rejections).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from connector import __version__
from connector.config import Config
from connector.connections import check_scope, system_ranks
from connector.linking import relations
from connector.model import Allocation, Invoice, InvoiceFigures, Payment
from connector.money import Money
from connector.providers.registry import Registry
from connector.reconcile import MANUAL_RULE, ReconcileConfig, reconcile
from connector.reconcile.book import ToMatch
from connector.reconcile.reversals import why_money_left
from connector.reconcile.types import LEDGER_RULE, MONEY_STATUSES, PAYABLE, Proposal
from connector.state import linking as state_linking
from connector.state import reconciliation as decisions
from connector.state import records as state_records
from connector.state.bookkeeping import AuditItem, audit, audit_each
from connector.state.store import Store


@dataclass
class ReconcileSummary:
    applied: list[Allocation] = field(default_factory=list)  # new this run
    ledger: int = 0  # allocations the ledger itself records
    proposals: list[dict[str, Any]] = field(default_factory=list)
    reversed: int = 0
    unmatched: list[str] = field(default_factory=list)


def _ledger_systems(config: Config, registry: Registry | None) -> set[str]:
    return {name for name, (kind, _) in system_ranks(config, registry).items() if kind == "ledger"}


def _views(
    session: Any,
    kind: str,
    linked_to: Collection[tuple[str, str]] | None = None,
    entity_ids: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    rows = state_linking.ref_views(session, kind, linked_to=linked_to, entity_ids=entity_ids)
    return [_with_sync(row) for row in rows]


def _with_sync(row: dict[str, Any]) -> dict[str, Any]:
    """A view row with its `_sync` part (links, hints, deleted) at hand as `sync`."""
    data = row["data"] if isinstance(row["data"], dict) else json.loads(row["data"])
    row["sync"] = data.get("_sync") or {}
    return row


# What reconciliation reads of each invoice view: its reference (a PO number) and its number.
INVOICE_FIELDS = (("_sync", "hints", "reference"), ("number",))
# Of each payment view: the invoice it links to, the ledger invoice its hints name, and what a
# ledger payment records (amount, currency, status, deleted): `_part`'s arguments.
PAYMENT_FIELDS = (
    ("_sync", "links", "invoice"),
    ("_sync", "hints", "ledger_invoice_id"),
    ("amount", "amount"),
    ("amount", "currency"),
    ("status",),
    ("_sync", "deleted"),
)


def run_reconciliation(
    config: Config,
    store: Store,
    *,
    settings: ReconcileConfig | None = None,
    registry: Registry | None = None,
    full: bool = False,
) -> ReconcileSummary:
    """Reconcile the stored book: the ledger's records first (of the payments whose inputs
    moved since a run made them; `full`: of every payment, whatever their digests say), then
    the matcher over the payments it can still move; store and audit what it decided."""
    check_scope(config, store)
    ledgers = _ledger_systems(config, registry)
    summary = ReconcileSummary()
    # Read before the run's own session: a parent may pay its subsidiaries' invoices, and the
    # reasons name customers, not their ids.
    related = relations.load_related(store)
    customer_names = relations.customer_names(store)
    with store.session() as session:
        # What the book is listed by, not the book: the invoices themselves reach the matcher a
        # batch at a time (`_receivables`), each kept there only as the little it matches on.
        numbers = {key.id: key.number for key in store.receivable_keys(session=session)}
        # What the views say here, a batch at a time and extracted by the database (decoding
        # every view whole was most of this command's time; holding them, its memory).
        # (system, remote id) -> canonical id of the invoices (not the deals) a payment view
        # may name; each canonical id kept once, as the receivables' list holds it
        by_remote: dict[tuple[str, str], str] = {}
        receivables = list(numbers)
        ids = {invoice_id: invoice_id for invoice_id in receivables}
        # Read in the order the database finds them (SQLite walked the refs' unique index for
        # the refs' order: 5.7 -> 3.2 s for the invoices' of the large book, 4.1 -> 1.4 s for
        # the payments'), each value kept with its ref's place and put in the refs' order below.
        found: dict[str, list[tuple[RefKey, str]]] = defaultdict(list)
        for system, object_type, remote_id, entity, *values in state_linking.each_ref_fields(
            session, "invoice", INVOICE_FIELDS, ordered=False
        ):
            entity = ids.get(entity, entity)
            if object_type == "invoice":
                by_remote[(system, remote_id)] = entity
            # The invoice's references (a PO number), and the numbers the other systems give
            # it (the gateway's "A1B2C3D4-0042"): a remittance may quote any of them.
            for value in values:
                if value and str(value) != numbers.get(entity):
                    found[entity].append(((system, object_type, remote_id), str(value)))
        references = {entity: _unique(values) for entity, values in in_ref_order(found).items()}
        del found

        reversed_parts = decisions.reversed_ledger_payments(session)
        ledger_parts: dict[str, list[tuple[RefKey, LedgerPart]]] = defaultdict(list)
        named_invoices: dict[str, list[tuple[RefKey, str]]] = defaultdict(list)
        for row in state_linking.each_ref_fields(session, "payment", PAYMENT_FIELDS, ordered=False):
            system, object_type, remote_id, entity, target, named, amount, currency, status, deleted = row
            place = (system, object_type, remote_id)
            invoice_id = by_remote.get((system, str(target))) if target else None
            if system in ledgers:
                ledger_parts[entity].append(
                    (place, _part(system, remote_id, invoice_id, amount, currency, status, deleted, reversed_parts))
                )
                continue
            for ledger in ledgers:
                linked = by_remote.get((ledger, str(named))) if named else None
                if linked:
                    named_invoices[entity].append((place, linked))
            if invoice_id:
                named_invoices[entity].append((place, invoice_id))
        parts = in_ref_order(ledger_parts)
        links = {entity: _unique(invoices) for entity, invoices in in_ref_order(named_invoices).items()}
        del by_remote, ids, numbers, ledger_parts, named_invoices

        rejected = {
            (s.allocation.payment_id, s.allocation.invoice_id)
            for s in decisions.load_allocations(session, status="rejected")
        }
        summary.ledger, in_ledger, pending = _take_ledger_records(session, store, parts, full=full)
        del parts

        # Payments the ledger records are its allocations (above): the matcher sees the others,
        # those it can still apply or take money back from (a payment applied in full whose
        # money stayed has nothing for it to do: reading every payment was most of a run).
        outside = store.list_payments(
            session=session,
            ids=[
                payment_id
                for payment_id in state_records.payments_to_match(session, PAYABLE, other_than=LEDGER_RULE)
                if payment_id not in in_ledger
            ],
            with_refs=False,
        )
        result = reconcile(
            _receivables(session, receivables),
            outside,
            links={k: v for k, v in links.items() if v},
            allocations=pending,
            rejected=rejected,
            held=held_payments(rejected) | {p.id for p in outside if p.id and p.dispute_status == "open"},
            references=dict(references),
            config=settings or config.reconcile,
            related=related,
            customer_names=customer_names,
        )
        for reversal in result.reversals:
            allocation = reversal.allocation
            if reversal.remove:
                decisions.delete_allocations(session, [allocation.id or ""])
            else:
                decisions.reduce_allocation(session, allocation.id or "", allocation.amount - reversal.amount)
        audit_each(
            session,
            [
                ("reconcile", "reverse", "allocation", r.allocation.id, {"payment": r.allocation.payment_id}, r.reason)
                for r in result.reversals
            ],
        )
        summary.reversed = len(result.reversals)
        decisions.save_allocations(session, result.applied, "applied")
        audit_each(
            session,
            [
                (
                    allocation.rule,
                    "allocate",
                    "payment",
                    allocation.payment_id,
                    {
                        "invoice": allocation.invoice_id,
                        "amount": str(allocation.amount),
                        "confidence": str(allocation.confidence),
                    },
                    allocation.reason,
                )
                for allocation in result.applied
            ],
        )
        summary.applied = list(result.applied)
        summary.proposals = [_proposal_row(p) for p in result.proposals]
        _audit_proposals(session, decisions.load_proposals(session), summary.proposals)
        decisions.replace_open_proposals(session, summary.proposals)
        summary.unmatched = list(result.unmatched)
    return summary


@dataclass(frozen=True)
class LedgerPart:
    """One ledger payment recording (a part of) a canonical payment against one invoice: a
    card payment written back as one ledger payment per invoice it paid has several."""

    system: str
    remote_id: str
    invoice_id: str | None
    amount: Money | None  # None: the ledger's view gives none (the payment's own amount then)
    live: bool  # money on its invoice: not deleted in the ledger, not being reversed by us


RefKey = tuple[str, str, str]  # a ref's system, object type and remote id: the refs' order
V = TypeVar("V")


def in_ref_order(placed: Mapping[str, list[tuple[RefKey, V]]]) -> dict[str, list[V]]:
    """Per record, its values in the order of the refs they came from, and the records in the
    order of their first such ref: what reading the refs in their order would have built."""
    first = sorted(placed.items(), key=lambda item: min(place for place, _ in item[1]))
    return {entity: [value for _, value in sorted(values, key=lambda pair: pair[0])] for entity, values in first}


def _unique(values: Iterable[V]) -> list[V]:
    """`values` without repeats, each where it first came."""
    return list(dict.fromkeys(values))


def _ledger_part(view: dict[str, Any], invoice_id: str | None, reversed_parts: set[tuple[str, str]]) -> LedgerPart:
    data = view["data"] if isinstance(view["data"], dict) else {}
    raw = data.get("amount")
    amount, currency = (raw.get("amount"), raw.get("currency")) if isinstance(raw, dict) else (None, None)
    return _part(
        view["system"],
        view["remote_id"],
        invoice_id,
        amount,
        currency,
        data.get("status"),
        view["sync"].get("deleted"),
        reversed_parts,
    )


def _part(
    system: str,
    remote_id: str,
    invoice_id: str | None,
    amount: Any,
    currency: Any,
    status: Any,
    deleted: Any,
    reversed_parts: set[tuple[str, str]],
) -> LedgerPart:
    """A ledger payment's part from what its view says: `deleted` as the view holds it (JSON
    true, or as a database reads it: 1, "true")."""
    live = (
        deleted not in (True, 1, "true")
        and (status is None or status in MONEY_STATUSES)
        and (system, remote_id) not in reversed_parts
    )
    # str: a decimal string as views hold it; a JSON number as its shortest text, never a float
    money = Money.of(str(amount), currency) if amount is not None else None
    return LedgerPart(system, remote_id, invoice_id, money, live)


def held_payments(rejected: set[tuple[str, str]]) -> set[str]:
    """Payments finance unmatched or rejected somewhere: a rule proposes them, never applies
    them, until finance decides (an undone match is not re-made by a rule)."""
    return {payment_id for payment_id, _ in rejected}


def _apply_ledger_records(
    session: Any, payments: list[Payment], parts: dict[str, list[LedgerPart]], applied: list[Allocation]
) -> int:
    """Allocations the ledger records itself: one per payment and invoice, of what the live
    ledger payments recording it on that invoice add up to (a charge split over invoices has
    one ledger payment per invoice, each its own amount). An allocation whose ledger payments
    are gone (deleted in the ledger, or being reversed at finance's request) goes with them; so
    does what a refund or a dispute took out of the payment (they pay at most `collected`).
    Returns how many were made or changed."""
    by_id = {p.id: p for p in payments}
    have: dict[str, dict[str, list[Allocation]]] = defaultdict(lambda: defaultdict(list))
    for allocation in applied:
        if allocation.rule == LEDGER_RULE:
            have[allocation.payment_id][allocation.invoice_id].append(allocation)
    new, gone, changed = [], [], 0
    left: dict[str, str] = {}  # allocation id -> why money that left took (part of) it back
    for payment_id, found in parts.items():
        payment = by_id.get(payment_id)
        counts = payment is not None and payment.status in MONEY_STATUSES
        # money that left (a refund, a dispute) pays nothing, whatever the ledger still holds
        kept = payment.collected if payment is not None else None
        wanted: dict[str, list[LedgerPart]] = defaultdict(list)
        for part in found:
            if part.invoice_id:
                wanted[part.invoice_id].append(part)
        # on an invoice none of its ledger payments names now (one edited onto another invoice)
        recorded = have.get(payment_id, {})
        gone += [a for invoice_id, made in recorded.items() if invoice_id not in wanted for a in made]
        for invoice_id, on_invoice in sorted(wanted.items()):
            live = [p for p in on_invoice if p.live] if counts else []
            amount = _sum_parts(live, payment) if payment is not None and live else None
            existing = recorded.get(invoice_id, [])
            allocation_id = decisions.allocation_id(payment_id, invoice_id, LEDGER_RULE)
            if payment is not None and amount is not None and kept is not None and kept.currency == amount.currency:
                if kept < amount:
                    left[allocation_id] = why_money_left(payment)
                amount = min(amount, kept)
                kept -= amount
            if amount is None or amount.amount <= 0:
                gone += existing
                continue
            if [(a.id, a.amount) for a in existing] == [(allocation_id, amount)]:
                continue
            gone += [a for a in existing if a.id != allocation_id]
            changed += 1
            reduced = [a for a in existing if a.id == allocation_id and a.amount > amount]
            if reduced and allocation_id in left:
                audit(
                    session,
                    "reconcile",
                    "reverse",
                    "allocation",
                    allocation_id,
                    {"payment": payment_id, "invoice": invoice_id, "amount": str(amount)},
                    f"{left[allocation_id]}: allocation to invoice {invoice_id} reduced to {amount}",
                )
            systems = sorted({p.system for p in live})
            new.append(
                Allocation(
                    id=allocation_id,
                    payment_id=payment_id,
                    invoice_id=invoice_id,
                    amount=amount,
                    rule=LEDGER_RULE,
                    confidence=Decimal(1),
                    reason=f"recorded in {', '.join(systems)} against this invoice"
                    + (f" ({len(live)} ledger payments)" if len(live) > 1 else ""),
                    confirmed_by=systems[0],
                )
            )
    if gone:
        decisions.delete_allocations(session, [a.id or "" for a in gone])
        audit_each(
            session,
            [
                (
                    "reconcile",
                    "reverse",
                    "allocation",
                    allocation.id,
                    {
                        "payment": allocation.payment_id,
                        "invoice": allocation.invoice_id,
                        "amount": str(allocation.amount),
                    },
                    f"{left[allocation.id]}: allocation to invoice {allocation.invoice_id} removed"
                    if allocation.id in left
                    else "the ledger no longer holds this payment on this invoice (deleted, or being reversed)",
                )
                for allocation in gone
            ],
        )
    decisions.save_allocations(session, new, "applied")
    return changed


# Payments read at a time by `_take_ledger_records`, with their ledger allocations.
LEDGER_BATCH = 1000


def _take_ledger_records(
    session: Any, store: Store, parts: dict[str, list[LedgerPart]], *, full: bool = False
) -> tuple[int, set[str], list[Allocation]]:
    """The ledger's own records made allocations (`_apply_ledger_records`, `LEDGER_BATCH`
    payments and their ledger allocations at a time) and ours that they now hold retired
    (`_retire_superseded`), for the payments of `parts`: how many ledger allocations were made
    or changed, the payments a live ledger payment records, and our applied allocations left after
    (the ones not the ledger's own)."""
    made = 0
    ids = list(parts)
    for start in range(0, len(ids), LEDGER_BATCH):
        chunk = ids[start : start + LEDGER_BATCH]
        # Only the payments whose inputs or ledger records moved since a run made them: for
        # the others it would make what they hold (the same inputs give the same records).
        stored = state_records.ledger_digest_inputs(session, chunk)
        recorded = decisions.allocation_keys(session, chunk, rule=LEDGER_RULE)
        moved = [
            p
            for p in chunk
            if full or p not in stored or stored[p][1] != _ledger_digest(stored[p][0], parts[p], recorded.get(p, []))
        ]
        if not moved:
            continue
        payments = store.list_payments(session=session, ids=moved, with_refs=False)
        held = decisions.load_allocations(session, status="applied", payment_ids=moved, rule=LEDGER_RULE)
        made += _apply_ledger_records(session, payments, {p: parts[p] for p in moved}, [s.allocation for s in held])
        recorded = decisions.allocation_keys(session, moved, rule=LEDGER_RULE)
        state_records.set_ledger_digests(
            session,
            {p: _ledger_digest(stored[p][0], parts[p], recorded.get(p, [])) for p in moved if p in stored},
        )
    in_ledger = {payment_id: live for payment_id, found in parts.items() if (live := [p for p in found if p.live])}
    ours = decisions.load_allocations(session, status="applied", other_than=LEDGER_RULE)
    return made, set(in_ledger), _retire_superseded(session, in_ledger, ours)


# Bumped when how the ledger's records are made from their inputs changes (with the
# connector's version, in every digest): every payment's are made again.
LEDGER_RECORDS_RULES = "1"


def _ledger_digest(facts: tuple[Any, ...], parts: list[LedgerPart], recorded: list[tuple[Any, ...]]) -> str:
    """What a payment's ledger records follow from (its own `LEDGER_FACTS`, its ledger payments'
    parts in their order) and what they are (its ledger-record allocations), as one digest:
    stored once a run made them, the same digest later means a run would change nothing."""
    text = "\x1e".join(
        (
            f"{LEDGER_RECORDS_RULES}|{__version__}",
            *(str(value) for value in facts),
            *(f"p\x1f{p.system}\x1f{p.remote_id}\x1f{p.invoice_id}\x1f{p.amount}\x1f{p.live}" for p in parts),
            *("a\x1f" + "\x1f".join(str(value) for value in allocation) for allocation in recorded),
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _receivables(session: Any, ids: list[str]) -> Iterator[ToMatch]:
    """What the matcher's book takes of each receivable of `ids` (its row's figures, and its
    lines' descriptions where something is owed: a remittance may quote what they bill), read
    `LEDGER_BATCH` at a time as the book takes them in, without building the invoices."""
    for start in range(0, len(ids), LEDGER_BATCH):
        for row in state_records.receivables_to_match(session, ids[start : start + LEDGER_BATCH]):
            yield ToMatch._make(row)


def take_ledger_records(config: Config, store: Store, registry: Registry | None = None) -> int:
    """Reconciliation's first step alone, for the payments we applied that the ledger may hold
    now (we recorded them there, or someone entered them): the ledger's record becomes their
    allocation and ours is retired. Run after every link, so that once a sync has read our
    write back no report, plan or reminder counts that money twice (the ledger's amount paid
    and our allocation) before the next reconciliation; returns how many ledger allocations
    were made or changed. It reads only those payments' views, not the book's."""
    check_scope(config, store)
    ledgers = _ledger_systems(config, registry)
    with store.session() as session:
        stored = decisions.load_allocations(session, status="applied", other_than=LEDGER_RULE)
        ours = sorted({s.allocation.payment_id for s in stored})
        del stored
        views = [v for v in _views(session, "payment", entity_ids=ours) if v["system"] in ledgers] if ours else []
        if not views:
            return 0
        named = {(v["system"], str(_invoice_link(v))) for v in views if _invoice_link(v)}
        by_remote = {
            (ref["system"], ref["remote_id"]): str(ref["entity_id"])
            for ref in state_records.refs_known_as(session, named)
            if ref["entity_kind"] == "invoice" and ref["object_type"] == "invoice" and ref["entity_id"] is not None
        }
        among = {(v["system"], v["remote_id"]) for v in views}
        reversed_parts = decisions.reversed_ledger_payments(session, among=among)
        parts: dict[str, list[LedgerPart]] = defaultdict(list)
        for view in views:
            target = _invoice_link(view)
            invoice_id = by_remote.get((view["system"], str(target))) if target else None
            parts[view["entity_id"]].append(_ledger_part(view, invoice_id, reversed_parts))
        made, _, _ = _take_ledger_records(session, store, parts)
    return made


def _sum_parts(parts: list[LedgerPart], payment: Payment) -> Money:
    total = Money.zero(payment.amount.currency)
    for part in parts:
        total += part.amount if part.amount is not None else payment.amount
    return total


def _retire_superseded(
    session: Any, in_ledger: dict[str, list[LedgerPart]], stored: list[decisions.StoredAllocation]
) -> list[Allocation]:
    """Once the ledger holds a payment we had allocated (we wrote it back, or someone entered
    it), the ledger's record is the allocation: ours would lower the balance a second time.
    Every live ledger payment recording the payment counts (a split has one per invoice)."""
    applied = [s.allocation for s in stored]
    recorded = {(payment_id, part.invoice_id) for payment_id, found in in_ledger.items() for part in found}
    superseded = [a for a in applied if a.rule != LEDGER_RULE and (a.payment_id, a.invoice_id) in recorded]
    if superseded:
        decisions.delete_allocations(session, [a.id or "" for a in superseded])
        audit_each(
            session,
            [
                (
                    "reconcile",
                    "superseded",
                    "allocation",
                    allocation.id,
                    {
                        "payment": allocation.payment_id,
                        "invoice": allocation.invoice_id,
                        "amount": str(allocation.amount),
                    },
                    "the ledger now records this payment itself",
                )
                for allocation in superseded
            ],
        )
    gone = {a.id for a in superseded}
    return [a for a in applied if a.id not in gone]


def _proposal_row(proposal: Proposal) -> dict[str, Any]:
    candidates = [
        {
            "invoice_ids": list(c.invoice_ids),
            "amounts": [str(a.amount) for a in c.amounts],
            "currency": proposal.amount.currency,
            "rule": c.rule,
            "confidence": str(c.confidence),
            "reason": c.reason,
        }
        for c in proposal.candidates
    ]
    return {
        "id": decisions.proposal_id(proposal.payment_id, candidates),
        "payment_id": proposal.payment_id,
        "currency": proposal.amount.currency,
        "amount_minor": proposal.amount.to_minor(),
        "candidates": candidates,
        "note": proposal.note,
    }


def _audit_proposals(session: Any, before: list[dict[str, Any]], after: list[dict[str, Any]]) -> None:
    """A proposal is written to the audit log when it first appears and when a later run drops
    it undecided (the payment or the invoices changed): the open proposals are replaced on every
    run, and this keeps what finance was once shown in `connector explain`."""
    old = {p["id"]: p for p in before}
    new = {p["id"] for p in after}
    proposed: list[AuditItem] = [
        (
            "reconcile",
            "propose",
            "proposal",
            proposal["id"],
            _proposal_inputs(proposal),
            f"proposed to finance: {_proposal_text(proposal)}",
        )
        for proposal in after
        if proposal["id"] not in old
    ]
    dropped: list[AuditItem] = [
        (
            "reconcile",
            "supersede",
            "proposal",
            proposal_id,
            _proposal_inputs(proposal),
            f"no longer proposed (a later run decided otherwise): {_proposal_text(proposal)}",
        )
        for proposal_id, proposal in old.items()
        if proposal_id not in new
    ]
    audit_each(session, proposed + dropped)


def _proposal_inputs(proposal: dict[str, Any]) -> dict[str, Any]:
    return {
        "payment": proposal["payment_id"],
        "invoices": sorted({i for c in proposal["candidates"] for i in c["invoice_ids"]}),
        "currency": proposal["currency"],
    }


def _proposal_text(proposal: dict[str, Any]) -> str:
    best = proposal["candidates"][0] if proposal["candidates"] else None
    note = f" ({proposal['note']})" if proposal.get("note") else ""
    if best is None:
        return f"payment {proposal['payment_id']}{note}"
    shares = " + ".join(f"{a} to {i}" for i, a in zip(best["invoice_ids"], best["amounts"], strict=True))
    more = len(proposal["candidates"]) - 1
    return (
        f"payment {proposal['payment_id']}: {shares} {best['currency']} by {best['rule']} "
        f"({best['confidence']}): {best['reason']}" + (f" (+{more} other candidate(s))" if more else "") + note
    )


def invoice_allocations(
    store: Store, invoices: list[Invoice], *, neighbourhood: bool = False
) -> dict[str, list[Allocation]]:
    """Applied allocations not yet in the ledger, per invoice: what `invoice_position` adds
    to the ledger's own `amount_paid` (ledger records are already in it). With
    `neighbourhood`, only those of `invoices` are read (through the invoice index), not the
    whole book's: the same lists for those invoices."""
    ids = sorted({i.id for i in invoices if i.id}) if neighbourhood else None
    with store.session() as session:
        # not the ledger's own records, read only to be dropped: most of a book's allocations
        stored = decisions.load_allocations(session, status="applied", invoice_ids=ids, other_than=LEDGER_RULE)
    return not_in_ledger(stored)


def not_in_ledger(stored: Iterable[decisions.StoredAllocation]) -> dict[str, list[Allocation]]:
    """Per invoice, the applied allocations of `stored` that are not the ledger's own records,
    in their order: what `invoice_position` adds to the ledger's `amount_paid`."""
    out: dict[str, list[Allocation]] = defaultdict(list)
    for s in stored:
        if s.status == "applied" and s.allocation.rule != LEDGER_RULE:
            out[s.allocation.invoice_id].append(s.allocation)
    return out


def ledger_withdrawn(store: Store, invoice_ids: Collection[str] | None = None) -> dict[str, Money]:
    """Per invoice, what the ledger's `amount_paid` (as last synced) still counts that no
    longer pays it: ledger payments the ledger still holds whose money left (a refund, a failed
    charge, an open or lost dispute) or that finance took back, until the reversal reaches the
    ledger and a sync reads it. The reports add it back to the balance, so the invoice shows
    open as soon as reconciliation took its allocation back, not only after the next sync.

    Given `invoice_ids`, the same figures for those invoices alone, read from their
    neighbourhood (`_neighbourhood`) instead of the whole book."""
    with store.session() as session:
        if invoice_ids is not None:
            return _withdrawn(*_neighbourhood(store, session, invoice_ids))
        return _withdrawn(*_money_left(store, session))


_WithdrawnReads = tuple[
    list[dict[str, Any]],  # payment views
    dict[tuple[str, str], str],  # (system, remote id) -> the invoice of that system it names
    set[tuple[str, str]],  # (system, remote id) of the ledger payments being reversed
    list[Allocation],  # applied allocations
    dict[str | None, Payment],  # payments by id
]


def _money_left(store: Store, session: Any) -> _WithdrawnReads:
    """What `_withdrawn` reads of the whole book that can count: a ledger payment's view counts
    only when finance is reversing it or its payment collects less than its amount, so only the
    views of the payments the database finds short (`payments_short`, a sieve `_withdrawn`
    tests exactly) and of the payments being reversed are read and decoded, with those
    payments and their allocations; not the book's every payment view."""
    reversed_parts = decisions.reversed_ledger_payments(session)
    ids = set(state_records.payments_short(session))
    if reversed_parts:
        ids |= {
            str(ref["entity_id"])
            for ref in state_records.refs_known_as(session, reversed_parts)
            if ref["entity_kind"] == "payment" and ref["entity_id"] is not None
        }
    if not ids:
        return [], {}, reversed_parts, [], {}
    views = _views(session, "payment", entity_ids=ids)
    paying = sorted({str(v["entity_id"]) for v in views})
    recorded = [s.allocation for s in decisions.load_allocations(session, status="applied", payment_ids=paying)]
    payments: dict[str | None, Payment] = {p.id: p for p in store.list_payments(session=session, ids=paying)}
    named = {(v["system"], str(link)) for v in views if (link := _invoice_link(v))}
    return views, _invoices_named(session, named), reversed_parts, recorded, payments


def _invoices_named(session: Any, places: Collection[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(system, remote id) -> the invoice each of `places` names, as the whole book's map of
    remote ids (`entities_by_remote`) has it (of two object types with one remote id in a
    system, the last in order wins), looked up for those places alone."""
    named: dict[tuple[str, str], str] = {}
    for ref in state_records.refs_known_as(session, places):
        if ref["entity_kind"] == "invoice" and ref["entity_id"] is not None:
            named[(ref["system"], ref["remote_id"])] = ref["entity_id"]
    return named


def _neighbourhood(store: Store, session: Any, invoice_ids: Collection[str]) -> _WithdrawnReads:
    """What `_withdrawn` reads of the book about `invoice_ids`, and nothing else: the remote ids
    their systems give them (each kept only if it names one of them, as the whole book's map of
    remote ids would have it), the payment views of those systems that link to one of them
    (sieved by `linked_to` in the database, then tested here), and those payments, their
    reversals and the invoices' allocations."""
    wanted = set(invoice_ids)
    own = {
        (r.system, r.remote_id)
        for refs in state_records.refs_for(session, "invoice", sorted(wanted)).values()
        for r in refs
    }
    invoices = {place: entity for place, entity in _invoices_named(session, own).items() if entity in wanted}
    sieved = _views(session, "payment", linked_to=set(invoices)) if invoices else []
    views = [v for v in sieved if (v["system"], str(_invoice_link(v))) in invoices]
    reversed_parts = decisions.reversed_ledger_payments(session, among={(v["system"], v["remote_id"]) for v in views})
    stored = decisions.load_allocations(session, status="applied", invoice_ids=sorted(wanted))
    payments = {p.id: p for p in store.list_payments(session=session, ids=sorted({v["entity_id"] for v in views}))}
    return views, invoices, reversed_parts, [s.allocation for s in stored], payments


def _invoice_link(view: dict[str, Any]) -> Any:
    """The remote id of the invoice (in the view's own system) a payment's view says it pays."""
    return view["sync"].get("links", {}).get("invoice")


def _withdrawn(
    views: list[dict[str, Any]],
    invoices: dict[tuple[str, str], str],
    reversed_parts: set[tuple[str, str]],
    recorded: list[Allocation],
    payments: dict[str | None, Payment],
) -> dict[str, Money]:
    held: dict[tuple[str, str], Money] = {}
    for view in views:
        data = view["data"] if isinstance(view["data"], dict) else {}
        raw, target = data.get("amount"), _invoice_link(view)
        if view["sync"].get("kind") != "ledger" or view["sync"].get("deleted") or not target:
            continue
        if data.get("status") not in (None, *MONEY_STATUSES) or not isinstance(raw, dict) or raw.get("amount") is None:
            continue
        payment = payments.get(view["entity_id"])
        reversing = (view["system"], view["remote_id"]) in reversed_parts
        if not reversing and (payment is None or payment.collected >= payment.amount):
            continue  # the money is still there: the ledger's record stands
        invoice_id = invoices.get((view["system"], str(target)))
        if invoice_id is None:
            continue
        key = (view["entity_id"], invoice_id)
        amount = Money.of(raw["amount"], raw["currency"])
        held[key] = held[key] + amount if key in held else amount
    if not held:
        return {}
    kept: dict[tuple[str, str], Money] = {}
    for allocation in recorded:
        key = (allocation.payment_id, allocation.invoice_id)
        if allocation.rule == LEDGER_RULE and key in held:
            kept[key] = kept[key] + allocation.amount if key in kept else allocation.amount
    out: dict[str, Money] = {}
    for key, amount in sorted(held.items()):
        gone = amount - kept[key] if key in kept else amount
        if not gone.is_negative and not gone.is_zero:
            invoice_id = key[1]
            out[invoice_id] = out[invoice_id] + gone if invoice_id in out else gone
    return out


def without_withdrawn(store: Store, invoices: list[Invoice], *, neighbourhood: bool = False) -> list[Invoice]:
    """`invoices` with `amount_paid` less what `ledger_withdrawn` finds: the figures the
    reports show, so an invoice whose payment's money left reads open at once. With
    `neighbourhood`, only what touches `invoices` is read (for a few of them, as `explain`
    has), not the whole book: the same figures."""
    withdrawn = ledger_withdrawn(store, [i.id for i in invoices if i.id] if neighbourhood else None)
    return less_withdrawn(invoices, withdrawn)


def less_withdrawn(invoices: list[Invoice], withdrawn: Mapping[str, Money]) -> list[Invoice]:
    """`invoices` with `amount_paid` less `withdrawn` (`ledger_withdrawn`'s figures, read once
    for a report that walks the book a batch at a time)."""
    if not withdrawn:
        return invoices
    out = []
    for invoice in invoices:
        gone = withdrawn.get(invoice.id or "")
        if gone is not None and gone.currency == invoice.currency:
            invoice = invoice.model_copy(update={"amount_paid": _paid_less(invoice.amount_paid, gone)})
        out.append(invoice)
    return out


def figures_less_withdrawn(figures: list[InvoiceFigures], withdrawn: Mapping[str, Money]) -> list[InvoiceFigures]:
    """`less_withdrawn` of invoices read as a listing shows them (`state.listing`)."""
    if not withdrawn:
        return figures
    out = []
    for invoice in figures:
        gone = withdrawn.get(invoice.id or "")
        if gone is not None and gone.currency == invoice.currency:
            paid = _paid_less(Money.from_minor(invoice.amount_paid, invoice.currency), gone)
            invoice = invoice._replace(amount_paid=paid.to_minor())
        out.append(invoice)
    return out


def _paid_less(paid: Money, gone: Money) -> Money:
    """What a ledger's `amount_paid` still counts once `gone` left it: never below nothing."""
    kept = paid - gone
    return Money.zero(kept.currency) if kept.is_negative else kept


__all__ = [
    "LEDGER_RULE",
    "MANUAL_RULE",
    "LedgerPart",
    "ReconcileSummary",
    "figures_less_withdrawn",
    "held_payments",
    "invoice_allocations",
    "ledger_withdrawn",
    "less_withdrawn",
    "not_in_ledger",
    "take_ledger_records",
    "run_reconciliation",
    "without_withdrawn",
]
