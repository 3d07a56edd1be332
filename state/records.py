"""Canonical records and their refs: set-based upserts and readers, inside a given session.

A record arrives from one system carrying that system's `Ref`. Its canonical id is, in order:
the id its ref already points at (so a record keeps its id across syncs, and a link made by
the linker wins), the id the record carries, or a new uuid4 hex. The ref row keeps that
system's whole view of the record (`data`), which is what drift reports compare later, with
what the sync learnt beside it under `_sync` (its links, hints, and the kind of system it
came from: what decides which invoices are receivables, `RECEIVABLE_KINDS`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from connector.errors import StateError
from connector.model import Customer, Invoice, InvoiceLine, Payment, Ref
from connector.state import convert
from connector.state.tables import table
from connector.state.upsert import in_chunks, insert_rows, mine, upsert

EntityKind = Literal["customer", "invoice", "payment"]
Entity = Customer | Invoice | Payment


class Stored(Protocol):
    """A canonical record of any kind (customer, contact, credit note, ...): its id, None
    until stored, and its refs."""

    @property
    def id(self) -> str | None: ...

    @property
    def refs(self) -> list[Ref]: ...

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self: ...


E = TypeVar("E", bound=Stored)

ENTITY_TYPES: dict[str, type[Entity]] = {
    "customer": Customer,
    "invoice": Invoice,
    "payment": Payment,
}
CANONICAL_TABLES = {"customer": "customers", "invoice": "invoices", "payment": "payments"}
# The kinds of system whose invoices are receivables, first found wins: a ledger's; in a
# company without a ledger, a gateway's. A CRM's deal or invoice alone never is one.
RECEIVABLE_KINDS = ("ledger", "gateway")


def receivable_kind(kinds: Collection[str]) -> str | None:
    """The kind of system whose invoices are the receivables of a company with systems of
    `kinds`; None when it has neither a ledger nor a gateway."""
    return next((kind for kind in RECEIVABLE_KINDS if kind in kinds), None)


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


def rowcount(result: sa.Result[*tuple[Any, ...]]) -> int:
    """The rows an UPDATE or DELETE matched. `Session.execute` is typed to give a `Result`;
    for a DML statement on a Core table it is a `CursorResult`, which has the count."""
    assert isinstance(result, sa.CursorResult)
    return result.rowcount


def own_ref(record: Stored, system: str, object_type: str | None = None) -> Ref:
    """The ref by which `system` knows `record`; a record without one is a mapping bug."""
    for ref in record.refs:
        if ref.system == system and (object_type is None or ref.object_type == object_type):
            return ref
    kind = type(record).__name__.lower()
    raise StateError(f"{kind} record {record.id or '?'} has no ref for system {system!r}")


def _with_id(record: E, entity_id: str) -> E:
    return record if record.id == entity_id else record.model_copy(update={"id": entity_id})


def _last_per_key(records: Sequence[E], key: Callable[[E], str]) -> dict[str, E]:
    """Deduplicate a batch, the last record of a key winning (a page may repeat a record)."""
    out: dict[str, E] = {}
    for record in records:
        out[key(record)] = record
    return out


# Refs -----------------------------------------------------------------------------------


def existing_entity_ids(
    session: Session, system: str, object_type: str, remote_ids: Sequence[str]
) -> dict[str, str | None]:
    """remote id -> canonical id for the refs of `system` already stored (one query per chunk)."""
    refs = table("refs")
    found: dict[str, str | None] = {}
    for chunk in in_chunks(session, remote_ids):
        query = sa.select(refs.c.remote_id, refs.c.entity_id).where(
            mine(session, refs),
            refs.c.system == system,
            refs.c.object_type == object_type,
            refs.c.remote_id.in_(chunk),
        )
        found.update({remote_id: entity_id for remote_id, entity_id in session.execute(query)})
    return found


def upsert_refs(
    session: Session,
    system: str,
    object_type: str,
    entity_kind: str,
    records: Sequence[E],
    extras: Mapping[str, dict[str, Any]] | None = None,
) -> list[E]:
    """Store `system`'s refs of `records`; returns the records with their canonical ids.
    `extras` (by remote id) keeps what the mapping learnt beside the record (links to other
    records of the system, linking hints) in the ref's `data` under `"_sync"`."""
    batch = _last_per_key(records, lambda r: own_ref(r, system, object_type).remote_id)
    known = existing_entity_ids(session, system, object_type, list(batch))
    now = utcnow()
    rows, out = [], []
    for remote_id, record in batch.items():
        record = _with_id(record, known.get(remote_id) or record.id or new_id())
        ref = own_ref(record, system, object_type)
        rows.append(
            {
                "system": system,
                "object_type": object_type,
                "remote_id": remote_id,
                "entity_kind": entity_kind,
                "entity_id": record.id,
                "remote_updated_at": ref.remote_updated_at,
                "link_rule": None,
                "data": _ref_data(record, (extras or {}).get(remote_id)),
                "seen_at": now,
            }
        )
        out.append(record)
    # entity_id only fills a NULL: a ref keeps its canonical id even against a racing writer
    upsert(
        session,
        table("refs"),
        rows,
        key=("system", "object_type", "remote_id"),
        keep=("link_rule",),
        keep_if_set=("entity_id",),
    )
    return out


def _ref_data(record: Any, extra: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = record.model_dump(mode="json")
    if extra:
        data["_sync"] = extra
    return data


def ref_kind(refs: sa.Table) -> sa.ColumnElement[str]:
    """The kind of system (ledger, gateway, crm) a ref's view came from, as the sync stamped it."""
    kind: sa.ColumnElement[str] = refs.c.data[("_sync", "kind")].as_string()
    return kind


def _holds_kind(session: Session, kind: str | None) -> bool:
    """Whether the book holds an invoice view of `kind` (None: of any stamped kind); stops at
    the first one found."""
    refs = table("refs")
    stamped = ref_kind(refs)
    query = sa.select(refs.c.id).where(
        mine(session, refs),
        refs.c.entity_kind == "invoice",
        stamped.is_not(None) if kind is None else stamped == kind,
    )
    return session.execute(query.limit(1)).first() is not None


def _receivable(session: Session, invoices: sa.Table) -> sa.ColumnElement[bool] | None:
    """The invoices that are receivables: those a system of the receivable kind knows. None
    (every invoice) for a book whose kinds are not stamped yet; the next link pass stamps them."""
    kind = next((k for k in RECEIVABLE_KINDS if _holds_kind(session, k)), None)
    if kind is None:
        return sa.false() if _holds_kind(session, None) else None
    refs = table("refs")
    return sa.exists().where(
        mine(session, refs),
        refs.c.entity_kind == "invoice",
        refs.c.entity_id == invoices.c.id,
        ref_kind(refs) == kind,
    )


def refs_for(session: Session, entity_kind: str, entity_ids: Sequence[str]) -> dict[str, list[Ref]]:
    refs = table("refs")
    found: dict[str, list[Ref]] = {entity_id: [] for entity_id in entity_ids}
    for chunk in in_chunks(session, entity_ids):
        query = (
            sa.select(refs)
            .where(mine(session, refs), refs.c.entity_kind == entity_kind, refs.c.entity_id.in_(chunk))
            .order_by(refs.c.system, refs.c.object_type, refs.c.remote_id)
        )
        for row in session.execute(query).mappings():
            found[row["entity_id"]].append(convert.ref_from(row))
    return found


def entity_ids_for_remote_id(session: Session, entity_kind: str, remote_id: str) -> list[str]:
    """The canonical ids of the `entity_kind` records some system knows by `remote_id` (a
    person typed it: any system, any object type), sorted."""
    refs = table("refs")
    query = sa.select(refs.c.entity_id).where(
        mine(session, refs),
        refs.c.entity_kind == entity_kind,
        refs.c.remote_id == remote_id,
        refs.c.entity_id.is_not(None),
    )
    return sorted({row[0] for row in session.execute(query)})


def ref_details(session: Session, entity_kind: str, entity_id: str) -> list[dict[str, Any]]:
    """The refs of one record with how each was linked (`link_rule`, None for the ref that
    made the record) and when it was last seen, by system, object type and remote id."""
    refs = table("refs")
    query = (
        sa.select(
            refs.c.system,
            refs.c.object_type,
            refs.c.remote_id,
            refs.c.link_rule,
            refs.c.remote_updated_at,
            refs.c.seen_at,
        )
        .where(mine(session, refs), refs.c.entity_kind == entity_kind, refs.c.entity_id == entity_id)
        .order_by(refs.c.system, refs.c.object_type, refs.c.remote_id)
    )
    return [dict(row) for row in session.execute(query).mappings()]


def dangling_refs(session: Session) -> list[dict[str, Any]]:
    """Refs that point at no canonical record: never linked (`entity_id` None), or linked to
    one that is gone. Customers, then invoices, then payments; by system, type and remote id."""
    refs = table("refs")
    out = []
    for kind, name in CANONICAL_TABLES.items():
        canonical = table(name)
        query = (
            sa.select(refs.c.system, refs.c.object_type, refs.c.remote_id, refs.c.entity_kind, refs.c.entity_id)
            .select_from(
                refs.outerjoin(
                    canonical, sa.and_(canonical.c.company == refs.c.company, canonical.c.id == refs.c.entity_id)
                )
            )
            .where(mine(session, refs), refs.c.entity_kind == kind, canonical.c.id.is_(None))
            .order_by(refs.c.system, refs.c.object_type, refs.c.remote_id)
        )
        out += [dict(row) for row in session.execute(query).mappings()]
    return out


# Canonical rows -------------------------------------------------------------------------


def _ensure_ids(records: Sequence[E]) -> list[E]:
    """The records with an id each (a new one where missing), the last of an id winning."""
    by_id: dict[str, E] = {}
    for record in records:
        entity_id = record.id or new_id()
        by_id[entity_id] = _with_id(record, entity_id)
    return list(by_id.values())


# Columns that finance owns (set by `connector dispute`, `promise`, `pause`, ...): a sync
# never resets them.
FINANCE_OWNED = {
    "customers": ("paused",),
    "invoices": ("disputed", "promise_to_pay", "payment_plan", "in_collections"),
    "payments": (),
}


def set_finance_owned(session: Session, entity_kind: str, ids: Sequence[str], **values: Any) -> None:
    """Set finance-owned columns (`FINANCE_OWNED`: a dispute, a promise to pay, a payment plan,
    the collections flag, a pause) of the customers or invoices `ids`; nothing else about the
    record changes, and no sync resets them."""
    name = CANONICAL_TABLES[entity_kind]
    unknown = set(values) - set(FINANCE_OWNED[name])
    if unknown:
        raise StateError(f"not a finance-owned column of {name}: {', '.join(sorted(unknown))}")
    rows = table(name)
    for chunk in in_chunks(session, list(ids)):
        session.execute(sa.update(rows).where(mine(session, rows), rows.c.id.in_(chunk)).values(**values))


def _outranked(session: Session, name: str, records: Sequence[E], source: str | None, rank: int) -> set[str]:
    """Ids whose stored row holds a higher-ranked system's view than `source` at `rank`. Two
    systems of one rank are told apart by name (the later one holds the row, as it survives a
    link), so which view fills the row never depends on which arrived last."""
    rows = table(name)
    ids = [r.id for r in records]
    beaten: set[str] = set()
    for chunk in in_chunks(session, ids):
        query = sa.select(rows.c.id, rows.c.source, rows.c.source_rank).where(mine(session, rows), rows.c.id.in_(chunk))
        for entity_id, stored_source, stored_rank in session.execute(query):
            if stored_source == source:
                continue
            if stored_rank > rank or (
                stored_rank == rank and None not in (stored_source, source) and stored_source > source
            ):
                beaten.add(entity_id)
    return beaten


def _upsert_canonical(
    session: Session, name: str, records: Sequence[E], to_row: Any, source: str | None, rank: int
) -> list[E]:
    """Upsert the canonical rows of `records` unless a higher-ranked system's view is stored
    there; returns the records whose rows were written (their invoice lines follow them).
    Every record has its id already."""
    beaten = _outranked(session, name, records, source, rank)
    written = [r for r in records if r.id not in beaten]
    now = utcnow()
    rows = [{**to_row(r, now), "source": source, "source_rank": rank} for r in written]
    upsert(session, table(name), rows, ("id",), keep=("created_at", *FINANCE_OWNED[name]))
    return written


def upsert_customers(
    session: Session, customers: Sequence[Customer], source: str | None = None, rank: int = 0
) -> list[Customer]:
    customers = _ensure_ids(customers)
    _upsert_canonical(session, "customers", customers, convert.customer_row, source, rank)
    return customers


def upsert_payments(
    session: Session, payments: Sequence[Payment], source: str | None = None, rank: int = 0
) -> list[Payment]:
    """Upsert payments, except those `source` knows by a ref the linker merged into another
    payment: a ledger payment recording (a part of) a gateway charge keeps its view in its ref,
    and the charge's row stays the charge's (what was collected, whatever the parts)."""
    payments = _ensure_ids(payments)
    merged = _merged_in(session, source, payments)
    _upsert_canonical(
        session, "payments", [p for p in payments if p.id not in merged], convert.payment_row, source, rank
    )
    return payments


def _merged_in(session: Session, source: str | None, records: Sequence[Stored]) -> set[str]:
    """The ids of `records` whose `source` ref was merged into another record by the linker."""
    if source is None:
        return set()
    remote = {own_ref(r, source).remote_id: r.id for r in records if any(ref.system == source for ref in r.refs)}
    refs = table("refs")
    merged: set[str] = set()
    for chunk in in_chunks(session, list(remote)):
        query = sa.select(refs.c.remote_id).where(
            mine(session, refs),
            refs.c.system == source,
            refs.c.entity_kind == "payment",
            refs.c.remote_id.in_(chunk),
            refs.c.link_rule.is_not(None),
        )
        merged.update(str(remote[row[0]]) for row in session.execute(query))
    return merged


def upsert_invoices(
    session: Session, invoices: Sequence[Invoice], source: str | None = None, rank: int = 0
) -> list[Invoice]:
    """Upsert invoices and replace the lines of those written: one DELETE and one INSERT per
    chunk."""
    invoices = _ensure_ids(invoices)
    written = _upsert_canonical(session, "invoices", invoices, convert.invoice_row, source, rank)
    replace_invoice_lines(session, written)
    return invoices


def replace_invoice_lines(session: Session, invoices: Sequence[Invoice]) -> None:
    lines = table("invoice_lines")
    for chunk in in_chunks(session, [i.id for i in invoices]):
        session.execute(sa.delete(lines).where(mine(session, lines), lines.c.invoice_id.in_(chunk)))
    insert_rows(session, lines, [row for i in invoices for row in convert.line_rows(i)])


UPSERTS = {
    "customer": upsert_customers,
    "invoice": upsert_invoices,
    "payment": upsert_payments,
}


# Readers --------------------------------------------------------------------------------


def list_customers(session: Session, *, ids: Sequence[str] | None = None) -> list[Customer]:
    customers = table("customers")
    query = sa.select(customers).where(mine(session, customers)).order_by(customers.c.id)
    if ids is not None:
        query = query.where(customers.c.id.in_(ids))
    rows = list(session.execute(query).mappings())
    refs = refs_for(session, "customer", [r["id"] for r in rows])
    return [convert.customer_from(r, refs[r["id"]]) for r in rows]


def list_invoices(
    session: Session,
    *,
    ids: Sequence[str] | None = None,
    customer_id: str | None = None,
    number: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    receivable: bool = False,
) -> list[Invoice]:
    """Invoices with their lines and refs: three queries, whatever the number of invoices.
    `receivable` keeps the receivables only (`RECEIVABLE_KINDS`): what aging, dunning, drift,
    the write-back and reconciliation work on; a CRM deal no receivable carries is not one."""
    invoices = table("invoices")
    query = sa.select(invoices).where(mine(session, invoices)).order_by(invoices.c.id).limit(limit)
    if receivable and (only := _receivable(session, invoices)) is not None:
        query = query.where(only)
    for column, value in (
        ("customer_id", customer_id),
        ("number", number),
        ("status", status),
    ):
        if value is not None:
            query = query.where(invoices.c[column] == value)
    if ids is not None:
        query = query.where(invoices.c.id.in_(ids))
    rows = list(session.execute(query).mappings())
    invoice_ids = [r["id"] for r in rows]
    lines = _lines_for(session, invoice_ids)
    refs = refs_for(session, "invoice", invoice_ids)
    return [convert.invoice_from(r, lines[r["id"]], refs[r["id"]]) for r in rows]


def _lines_for(session: Session, invoice_ids: Sequence[str]) -> dict[str, list[InvoiceLine]]:
    lines = table("invoice_lines")
    found: dict[str, list[InvoiceLine]] = {invoice_id: [] for invoice_id in invoice_ids}
    for chunk in in_chunks(session, invoice_ids):
        query = (
            sa.select(lines)
            .where(mine(session, lines), lines.c.invoice_id.in_(chunk))
            .order_by(lines.c.invoice_id, lines.c.line_no)
        )
        for row in session.execute(query).mappings():
            found[row["invoice_id"]].append(convert.line_from(row))
    return found


def list_payments(
    session: Session,
    *,
    ids: Sequence[str] | None = None,
    customer_id: str | None = None,
    payout_id: str | None = None,
    limit: int | None = None,
) -> list[Payment]:
    payments = table("payments")
    query = (
        sa.select(payments).where(mine(session, payments)).order_by(payments.c.received_at, payments.c.id).limit(limit)
    )
    if ids is not None:
        query = query.where(payments.c.id.in_(ids))
    if customer_id is not None:
        query = query.where(payments.c.customer_id == customer_id)
    if payout_id is not None:
        query = query.where(payments.c.payout_id == payout_id)
    rows = list(session.execute(query).mappings())
    refs = refs_for(session, "payment", [r["id"] for r in rows])
    return [convert.payment_from(r, refs[r["id"]]) for r in rows]
