"""Allocations and proposals: what reconciliation decided, and what finance decided about it.

Allocation statuses: `applied` (counts against the invoice), `rejected` (finance said this
payment does not pay this invoice: never proposed again). Proposal statuses: `open`,
`accepted`, `rejected`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from connector.model import Allocation
from connector.money import Money
from connector.state.outbox import aimed_at
from connector.state.records import rowcount, utcnow
from connector.state.tables import mentions, table
from connector.state.upsert import dialect_name, in_chunks, mine, one_of, upsert
from connector.unchecked import builder


def allocation_id(payment_id: str, invoice_id: str, rule: str) -> str:
    digest = hashlib.sha256(f"{payment_id}|{invoice_id}|{rule}".encode()).hexdigest()
    return "al-" + digest[:24]


@dataclass(frozen=True)
class StoredAllocation:
    allocation: Allocation
    status: str
    created_at: datetime


# Read back without validating again what `save_allocations` wrote from validated allocations
# (`connector.unchecked`; tests/state/test_state_records.py holds them equal).
_build_allocation = builder(
    Allocation, "id", "payment_id", "invoice_id", "amount", "rule", "confidence", "reason", "confirmed_by"
)


def _allocation_from(row: Any) -> StoredAllocation:
    money = Money.from_minor(int(row.amount_minor), row.currency)
    allocation = _build_allocation(
        row.id,
        row.payment_id,
        row.invoice_id,
        money,
        row.rule,
        Decimal(row.confidence),
        row.reason,
        row.confirmed_by,
    )
    return StoredAllocation(allocation=allocation, status=row.status, created_at=row.created_at)


def load_allocations(
    session: Session,
    *,
    status: str | None = None,
    payment_ids: Sequence[str] | None = None,
    invoice_ids: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    rule: str | None = None,
    other_than: str | None = None,
) -> list[StoredAllocation]:
    """The company's allocations in the order they were made, of `status`, `payment_ids`,
    `invoice_ids`, `ids`, made by `rule` or by any rule `other_than` one, when given."""
    allocations = table("allocations")
    query = _allocations_of(
        session, sa.select(allocations).order_by(allocations.c.created_at, allocations.c.id), status, rule, other_than
    )
    if payment_ids is not None:
        query = query.where(one_of(session, allocations.c.payment_id, list(payment_ids)))
    if invoice_ids is not None:
        query = query.where(one_of(session, allocations.c.invoice_id, list(invoice_ids)))
    if ids is not None:
        query = query.where(one_of(session, allocations.c.id, list(ids)))
    return [_allocation_from(row) for row in session.execute(query)]


def allocation_keys(session: Session, payment_ids: Sequence[str], *, rule: str) -> dict[str, list[tuple[Any, ...]]]:
    """Payment id -> (id, invoice id, amount in minor units, currency) of each of its applied
    allocations made by `rule`, sorted: what they are, without building them."""
    allocations = table("allocations")
    query = _allocations_of(
        session,
        sa.select(
            allocations.c.payment_id,
            allocations.c.id,
            allocations.c.invoice_id,
            allocations.c.amount_minor,
            allocations.c.currency,
        ),
        "applied",
        rule,
        None,
    ).where(one_of(session, allocations.c.payment_id, list(payment_ids)))
    found: dict[str, list[tuple[Any, ...]]] = {}
    for payment_id, *values in session.execute(query):
        found.setdefault(str(payment_id), []).append(tuple(values))
    for values in found.values():
        values.sort()
    return found


def _allocations_of(session: Session, query: Any, status: str | None, rule: str | None, other_than: str | None) -> Any:
    allocations = table("allocations")
    query = query.where(mine(session, allocations))
    if status is not None:
        query = query.where(allocations.c.status == status)
    if rule is not None:
        query = query.where(allocations.c.rule == rule)
    if other_than is not None:
        query = query.where(allocations.c.rule != other_than)
    return query


def allocation_ids(
    session: Session, *, status: str | None = None, rule: str | None = None, other_than: str | None = None
) -> list[str]:
    """The ids of `load_allocations` with these filters, in its order, and nothing else: a
    report orders the book's allocations, then reads them a batch at a time."""
    allocations = table("allocations")
    query = sa.select(allocations.c.id).order_by(allocations.c.created_at, allocations.c.id)
    return [str(row[0]) for row in session.execute(_allocations_of(session, query, status, rule, other_than))]


def count_allocations(
    session: Session, *, status: str | None = None, rule: str | None = None, other_than: str | None = None
) -> int:
    """How many allocations `load_allocations` with these filters would read."""
    query = sa.select(sa.func.count()).select_from(table("allocations"))
    return int(session.execute(_allocations_of(session, query, status, rule, other_than)).scalar_one())


def save_allocations(session: Session, allocations_: Iterable[Allocation], status: str) -> None:
    now = utcnow()
    rows = [
        {
            "id": a.id or allocation_id(a.payment_id, a.invoice_id, a.rule),
            "payment_id": a.payment_id,
            "invoice_id": a.invoice_id,
            "currency": a.amount.currency,
            "amount_minor": a.amount.to_minor(),
            "rule": a.rule,
            "confidence": str(a.confidence),
            "reason": a.reason,
            "confirmed_by": a.confirmed_by,
            "status": status,
            "created_at": now,
        }
        for a in allocations_
    ]
    upsert(session, table("allocations"), rows, ("id",))


def delete_allocations(session: Session, ids: Sequence[str]) -> int:
    allocations = table("allocations")
    removed = 0
    for chunk in in_chunks(session, list(ids)):
        removed += rowcount(
            session.execute(sa.delete(allocations).where(mine(session, allocations), allocations.c.id.in_(chunk)))
        )
    return removed


def reduce_allocation(session: Session, allocation_id_: str, new_amount: Money) -> None:
    allocations = table("allocations")
    session.execute(
        sa.update(allocations)
        .where(mine(session, allocations), allocations.c.id == allocation_id_)
        .values(amount_minor=new_amount.to_minor())
    )


# Proposals ------------------------------------------------------------------------------


def proposal_id(payment_id: str, candidates: Sequence[dict[str, Any]]) -> str:
    invoices = "|".join(",".join(c["invoice_ids"]) for c in candidates)
    return "pr-" + hashlib.sha256(f"{payment_id}|{invoices}".encode()).hexdigest()[:12]


def replace_open_proposals(session: Session, proposals: Sequence[dict[str, Any]]) -> None:
    """The open proposals become exactly `proposals` (decided ones stay as they were); one
    still open keeps when it was first proposed, so finance sees how long it has waited (and
    a run that proposes the same again changes nothing the engine's mark counts)."""
    table_ = table("proposals")
    query = sa.select(table_.c.id, table_.c.created_at).where(mine(session, table_), table_.c.status == "open")
    open_since = {proposal: created for proposal, created in session.execute(query)}
    gone = sorted(set(open_since) - {p["id"] for p in proposals})
    for chunk in in_chunks(session, gone):
        session.execute(sa.delete(table_).where(mine(session, table_), table_.c.id.in_(chunk)))
    now = utcnow()
    kept = set(table_.c.keys())
    fields = {"status": "open", "decided_by": None, "decided_at": None}
    rows = [
        {**{k: v for k, v in p.items() if k in kept}, **fields, "created_at": open_since.get(p["id"], now)}
        for p in proposals
    ]
    upsert(session, table_, rows, ("id",), keep=("created_at", "status", "decided_by", "decided_at"))


def load_proposals(
    session: Session,
    *,
    status: str | None = "open",
    ids: Sequence[str] | None = None,
    payment_ids: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    table_ = table("proposals")
    query = sa.select(table_).where(mine(session, table_)).order_by(table_.c.created_at, table_.c.id)
    if status is not None:
        query = query.where(table_.c.status == status)
    if ids is not None:
        query = query.where(one_of(session, table_.c.id, list(ids)))
    if payment_ids is not None:
        query = query.where(one_of(session, table_.c.payment_id, list(payment_ids)))
    return [dict(row) for row in session.execute(query).mappings()]


def proposals_naming(session: Session, invoice_id: str) -> list[dict[str, Any]]:
    """Every proposal (any status) with `invoice_id` among its candidates' invoices, as
    `load_proposals` orders them.

    The candidates are JSON, which no index of ours reaches into, and who may pay an invoice is
    not bounded by anything indexed (an unknown payer, a parent paying a subsidiary), so the
    database looks for the id in one pass over the proposals and returns only those that may
    name it: PostgreSQL by JSON containment, exact; SQLite by a LIKE on the JSON's text
    (`tables.mentions`), a sieve that may keep a proposal naming the id elsewhere (in a reason).
    The exact test on the candidates' invoice ids is made here on those few."""
    table_ = table("proposals")
    naming: sa.ColumnElement[bool]
    if dialect_name(session) == "postgresql":
        naming = table_.c.candidates.op("@>", is_comparison=True)(
            sa.cast(sa.literal(json.dumps([{"invoice_ids": [invoice_id]}])), JSONB)
        )
    else:
        naming = mentions(table_.c.candidates, invoice_id)
    query = sa.select(table_).where(mine(session, table_), naming).order_by(table_.c.created_at, table_.c.id)
    return [
        dict(row)
        for row in session.execute(query).mappings()
        if any(invoice_id in c["invoice_ids"] for c in row["candidates"] or [])
    ]


def decide_proposal(session: Session, proposal: str, status: str, user: str) -> None:
    table_ = table("proposals")
    session.execute(
        sa.update(table_)
        .where(mine(session, table_), table_.c.id == proposal)
        .values(status=status, decided_by=user, decided_at=utcnow())
    )


def reopen_proposal(session: Session, proposal: str) -> None:
    """The proposal is open again, as if never decided."""
    table_ = table("proposals")
    session.execute(
        sa.update(table_)
        .where(mine(session, table_), table_.c.id == proposal)
        .values(status="open", decided_by=None, decided_at=None)
    )


# Ledger payments being reversed ---------------------------------------------------------

REVERSING_STATES = ("planned", "in_flight", "done")


def reversed_ledger_payments(
    session: Session, among: Collection[tuple[str, str]] | None = None
) -> set[tuple[str, str]]:
    """(system, remote id) of every ledger payment a `delete_payment` action targets that is
    planned, in flight or done: finance undid the decision behind it, so it is no longer money
    on its invoice, whatever the last sync read of it. Given `among` (system, remote id), only
    those are looked for, by the actions' targets (`outbox.aimed_at`)."""
    outbox = table("outbox_actions")
    query = sa.select(outbox.c.target).where(
        mine(session, outbox), outbox.c.kind == "delete_payment", outbox.c.state.in_(REVERSING_STATES)
    )
    if among is not None:
        query = query.where(aimed_at(outbox, [(system, None, remote_id) for system, remote_id in among]))
    found: set[tuple[str, str]] = set()
    for (target,) in session.execute(query):
        data = json.loads(target) if isinstance(target, str) else target
        if isinstance(data, dict) and data.get("system") and data.get("remote_id"):
            found.add((str(data["system"]), str(data["remote_id"])))
    return found
