"""Reconciliation around the pure matcher: read what is stored, decide, store the decisions.

Payments the ledger already holds are applied as the ledger says (rule `ledger_record`): the
ledger's own `amount_paid` already counts them, so they never go through the matcher and never
lower a balance twice. Every other payment (a card payment the ledger has not recorded yet) goes
through `connector.reconcile.reconcile` with its explicit links (the gateway invoice it paid),
the invoices' own references (PO numbers) and what finance decided before (manual matches,
rejections).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from connector.config import Config
from connector.connections import check_scope, system_ranks
from connector.model import Allocation, Invoice, Payment
from connector.money import Money
from connector.providers.registry import Registry
from connector.reconcile import MANUAL_RULE, ReconcileConfig, reconcile
from connector.reconcile.types import LEDGER_RULE, MONEY_STATUSES, Proposal
from connector.state import linking as state_linking
from connector.state import reconciliation as decisions
from connector.state.bookkeeping import audit
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


def _views(session: Any, kind: str) -> list[dict[str, Any]]:
    rows = state_linking.ref_views(session, kind)
    for row in rows:
        data = row["data"] if isinstance(row["data"], dict) else json.loads(row["data"])
        row["sync"] = data.get("_sync") or {}
    return rows


def run_reconciliation(
    config: Config, store: Store, *, settings: ReconcileConfig | None = None, registry: Registry | None = None
) -> ReconcileSummary:
    check_scope(config, store)
    ledgers = _ledger_systems(config, registry)
    summary = ReconcileSummary()
    with store.session() as session:
        invoices = store.list_invoices(session=session)
        payments = store.list_payments(session=session)
        invoice_views, payment_views = _views(session, "invoice"), _views(session, "payment")
        by_remote = {(v["system"], v["object_type"], v["remote_id"]): v["entity_id"] for v in invoice_views}
        references: dict[str, list[str]] = defaultdict(list)
        for view in invoice_views:
            reference = view["sync"].get("hints", {}).get("reference")
            if reference:
                references[view["entity_id"]].append(str(reference))

        reversed_parts = decisions.reversed_ledger_payments(session)
        parts: dict[str, list[LedgerPart]] = defaultdict(list)
        links: dict[str, list[str]] = defaultdict(list)
        for view in payment_views:
            payment_links, hints = view["sync"].get("links", {}), view["sync"].get("hints", {})
            target = payment_links.get("invoice")
            invoice_id = by_remote.get((view["system"], "invoice", str(target))) if target else None
            if view["system"] in ledgers:
                parts[view["entity_id"]].append(_ledger_part(view, invoice_id, reversed_parts))
                continue
            for hint in ("ledger_invoice_id",):
                named = hints.get(hint)
                for ledger in ledgers:
                    found = by_remote.get((ledger, "invoice", str(named))) if named else None
                    if found and found not in links[view["entity_id"]]:
                        links[view["entity_id"]].append(found)
            if invoice_id and invoice_id not in links[view["entity_id"]]:
                links[view["entity_id"]].append(invoice_id)

        stored = decisions.load_allocations(session)
        applied = [s.allocation for s in stored if s.status == "applied"]
        rejected = {(s.allocation.payment_id, s.allocation.invoice_id) for s in stored if s.status == "rejected"}
        summary.ledger = _apply_ledger_records(session, payments, parts, applied)
        in_ledger = {payment_id: live for payment_id, found in parts.items() if (live := [p for p in found if p.live])}
        applied = _retire_superseded(session, in_ledger, decisions.load_allocations(session, status="applied"))

        outside = [p for p in payments if p.id not in in_ledger]
        pending = [a for a in applied if a.rule != LEDGER_RULE]
        result = reconcile(
            [i for i in invoices if i.id],
            outside,
            links={k: v for k, v in links.items() if v},
            allocations=pending,
            rejected=rejected,
            held=held_payments(rejected),
            references=dict(references),
            config=settings or config.reconcile,
        )
        for reversal in result.reversals:
            allocation = reversal.allocation
            if reversal.remove:
                decisions.delete_allocations(session, [allocation.id or ""])
            else:
                decisions.reduce_allocation(session, allocation.id or "", allocation.amount - reversal.amount)
            audit(
                session,
                "reconcile",
                "reverse",
                "allocation",
                allocation.id,
                {"payment": allocation.payment_id},
                reversal.reason,
            )
        summary.reversed = len(result.reversals)
        decisions.save_allocations(session, result.applied, "applied")
        for allocation in result.applied:
            audit(
                session,
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


def _ledger_part(view: dict[str, Any], invoice_id: str | None, reversed_parts: set[tuple[str, str]]) -> LedgerPart:
    data = view["data"] if isinstance(view["data"], dict) else {}
    raw = data.get("amount")
    amount = (
        Money.of(raw["amount"], raw["currency"]) if isinstance(raw, dict) and raw.get("amount") is not None else None
    )
    status = data.get("status")
    live = (
        not view["sync"].get("deleted")
        and (status is None or status in MONEY_STATUSES)
        and (view["system"], view["remote_id"]) not in reversed_parts
    )
    return LedgerPart(view["system"], view["remote_id"], invoice_id, amount, live)


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
    are gone (deleted in the ledger, or being reversed at finance's request) goes with them.
    Returns how many were made or changed."""
    by_id = {p.id: p for p in payments}
    have: dict[tuple[str, str], list[Allocation]] = defaultdict(list)
    for allocation in applied:
        if allocation.rule == LEDGER_RULE:
            have[(allocation.payment_id, allocation.invoice_id)].append(allocation)
    new, gone, changed = [], [], 0
    for payment_id, found in parts.items():
        payment = by_id.get(payment_id)
        counts = payment is not None and payment.status in MONEY_STATUSES
        wanted: dict[str, list[LedgerPart]] = defaultdict(list)
        for part in found:
            if part.invoice_id:
                wanted[part.invoice_id].append(part)
        for invoice_id, on_invoice in wanted.items():
            live = [p for p in on_invoice if p.live] if counts else []
            amount = _sum_parts(live, payment) if payment is not None and live else None
            existing = have.get((payment_id, invoice_id), [])
            allocation_id = decisions.allocation_id(payment_id, invoice_id, LEDGER_RULE)
            if amount is None or amount.amount <= 0:
                gone += existing
                continue
            if [(a.id, a.amount) for a in existing] == [(allocation_id, amount)]:
                continue
            gone += [a for a in existing if a.id != allocation_id]
            changed += 1
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
        for allocation in gone:
            audit(
                session,
                "reconcile",
                "reverse",
                "allocation",
                allocation.id,
                {"payment": allocation.payment_id, "invoice": allocation.invoice_id, "amount": str(allocation.amount)},
                "the ledger no longer holds this payment on this invoice (deleted, or being reversed)",
            )
    decisions.save_allocations(session, new, "applied")
    return changed


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
        for allocation in superseded:
            audit(
                session,
                "reconcile",
                "superseded",
                "allocation",
                allocation.id,
                {"payment": allocation.payment_id, "invoice": allocation.invoice_id, "amount": str(allocation.amount)},
                "the ledger now records this payment itself",
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
    }


def _audit_proposals(session: Any, before: list[dict[str, Any]], after: list[dict[str, Any]]) -> None:
    """A proposal is written to the audit log when it first appears and when a later run drops
    it undecided (the payment or the invoices changed): the open proposals are replaced on every
    run, and this keeps what finance was once shown in `connector explain`."""
    old = {p["id"]: p for p in before}
    new = {p["id"] for p in after}
    for proposal in after:
        if proposal["id"] not in old:
            audit(
                session,
                "reconcile",
                "propose",
                "proposal",
                proposal["id"],
                _proposal_inputs(proposal),
                f"proposed to finance: {_proposal_text(proposal)}",
            )
    for proposal_id, proposal in old.items():
        if proposal_id not in new:
            audit(
                session,
                "reconcile",
                "supersede",
                "proposal",
                proposal_id,
                _proposal_inputs(proposal),
                f"no longer proposed (a later run decided otherwise): {_proposal_text(proposal)}",
            )


def _proposal_inputs(proposal: dict[str, Any]) -> dict[str, Any]:
    return {
        "payment": proposal["payment_id"],
        "invoices": sorted({i for c in proposal["candidates"] for i in c["invoice_ids"]}),
        "currency": proposal["currency"],
    }


def _proposal_text(proposal: dict[str, Any]) -> str:
    best = proposal["candidates"][0] if proposal["candidates"] else None
    if best is None:
        return f"payment {proposal['payment_id']}"
    shares = " + ".join(f"{a} to {i}" for i, a in zip(best["invoice_ids"], best["amounts"], strict=True))
    more = len(proposal["candidates"]) - 1
    return (
        f"payment {proposal['payment_id']}: {shares} {best['currency']} by {best['rule']} "
        f"({best['confidence']}): {best['reason']}" + (f" (+{more} other candidate(s))" if more else "")
    )


def invoice_allocations(store: Store, invoices: list[Invoice]) -> dict[str, list[Allocation]]:
    """Applied allocations not yet in the ledger, per invoice: what `invoice_position` adds
    to the ledger's own `amount_paid` (ledger records are already in it)."""
    with store.session() as session:
        stored = decisions.load_allocations(session, status="applied")
    out: dict[str, list[Allocation]] = defaultdict(list)
    for s in stored:
        if s.allocation.rule != LEDGER_RULE:
            out[s.allocation.invoice_id].append(s.allocation)
    return out


__all__ = [
    "LEDGER_RULE",
    "MANUAL_RULE",
    "LedgerPart",
    "ReconcileSummary",
    "held_payments",
    "invoice_allocations",
    "run_reconciliation",
]
