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
from connector.reconcile.types import LEDGER_RULE, Proposal
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

        in_ledger: dict[str, list[dict[str, Any]]] = defaultdict(list)
        links: dict[str, list[str]] = defaultdict(list)
        for view in payment_views:
            payment_links, hints = view["sync"].get("links", {}), view["sync"].get("hints", {})
            target = payment_links.get("invoice")
            invoice_id = by_remote.get((view["system"], "invoice", str(target))) if target else None
            if view["system"] in ledgers:
                in_ledger[view["entity_id"]].append({"view": view, "invoice_id": invoice_id})
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
        summary.ledger = _apply_ledger_records(session, payments, in_ledger, applied)
        applied = _retire_superseded(session, in_ledger, applied)

        outside = [p for p in payments if p.id not in in_ledger]
        pending = [a for a in applied if a.rule != LEDGER_RULE]
        result = reconcile(
            [i for i in invoices if i.id],
            outside,
            links={k: v for k, v in links.items() if v},
            allocations=pending,
            rejected=rejected,
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


def _apply_ledger_records(
    session: Any, payments: list[Payment], in_ledger: dict[str, list[dict[str, Any]]], applied: list[Allocation]
) -> int:
    """Allocations the ledger records itself: one per ledger payment and invoice."""
    known = {(a.payment_id, a.invoice_id) for a in applied if a.rule == LEDGER_RULE}
    by_id = {p.id: p for p in payments}
    new = []
    for payment_id, entries in in_ledger.items():
        payment = by_id.get(payment_id)
        if payment is None or payment.status in ("failed", "pending"):
            continue
        for entry in entries:
            invoice_id = entry["invoice_id"]
            if not invoice_id or (payment_id, invoice_id) in known:
                continue
            amount = _ledger_amount(entry["view"], payment)
            if amount is None or amount.amount <= 0:
                continue
            new.append(
                Allocation(
                    id=decisions.allocation_id(payment_id, invoice_id, LEDGER_RULE),
                    payment_id=payment_id,
                    invoice_id=invoice_id,
                    amount=amount,
                    rule=LEDGER_RULE,
                    confidence=Decimal(1),
                    reason=f"recorded in {entry['view']['system']} against this invoice",
                    confirmed_by=entry["view"]["system"],
                )
            )
            known.add((payment_id, invoice_id))
    decisions.save_allocations(session, new, "applied")
    return len(new)


def _retire_superseded(
    session: Any, in_ledger: dict[str, list[dict[str, Any]]], applied: list[Allocation]
) -> list[Allocation]:
    """Once the ledger holds a payment we had allocated (we wrote it back, or someone entered
    it), the ledger's record is the allocation: ours would lower the balance a second time."""
    recorded = {(payment_id, entry["invoice_id"]) for payment_id, entries in in_ledger.items() for entry in entries}
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


def _ledger_amount(view: dict[str, Any], payment: Payment) -> Any:
    raw = (view["data"] or {}).get("amount") if isinstance(view["data"], dict) else None
    if isinstance(raw, dict) and raw.get("amount") is not None:
        return Money.of(raw["amount"], raw["currency"])
    return payment.amount


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


__all__ = ["LEDGER_RULE", "MANUAL_RULE", "ReconcileSummary", "invoice_allocations", "run_reconciliation"]
