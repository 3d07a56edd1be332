"""What the automatic write-back plan of a part of the book is derived from, as fingerprints the
database hands over without a view decoded or a model built: the invoices' and payments' rows
(the columns their models are made of), where their views live with each view's content hash
and change time, the applied allocations on the invoices, and the CRM updates sent to their
records. `connector.writeback.unchanged` digests them per customer, and a customer whose digest
is the one its last plan stored (`plan_digests`) is not planned again."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from connector.state import convert
from connector.state.bookkeeping import get_cursor, set_cursor
from connector.state.tables import table
from connector.state.upsert import in_chunks, mine, one_of

RowKind = Literal["invoice", "payment"]
# An invoice's `in_collections` is dunning's flag (set by the reminders' escalation, after the
# plan in the same pass): no write the plan derives reads it, and with it in the fingerprint the
# pass after a first escalation planned again two thirds of the large book's customers to derive
# the same writes. A test flags an invoice and compares with the whole book's plan.
_NOT_READ_BY_THE_PLAN = ("in_collections",)
_ROWS = {
    "invoice": ("invoices", tuple(c for c in convert.INVOICE_COLUMNS if c not in _NOT_READ_BY_THE_PLAN)),
    "payment": ("payments", convert.PAYMENT_COLUMNS),
}
# Every column of an allocation but the company: what the plan reads of one, and when it was made.
_ALLOCATION_COLUMNS = (
    "id",
    "payment_id",
    "invoice_id",
    "currency",
    "amount_minor",
    "rule",
    "confidence",
    "reason",
    "confirmed_by",
    "status",
    "created_at",
)


def _as_stored(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The column as the database driver hands it over, without SQLAlchemy's conversion of the
    value (a datetime parsed from SQLite's text, a JSON decoded)."""
    return sa.type_coerce(column, sa.Text)


_SEPARATOR, _NULL = "\x1f", "\x1e"  # characters no stored value holds


def _in_one_text(*columns: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """The values of `columns` as the database spells them in text, joined in one text by the
    database itself (NULL as a character of its own): a fingerprint is compared only with the
    same columns' read the same way, and handing one text a row over, instead of converting
    each value in Python, was most of a fingerprint's time."""
    text: sa.ColumnElement[str] | None = None
    for column in columns:
        value = sa.func.coalesce(sa.cast(column, sa.Text), sa.literal(_NULL, sa.Text), type_=sa.Text)
        text = value if text is None else text + sa.literal(_SEPARATOR, sa.Text) + value  # `||` in SQL
    assert text is not None, "a fingerprint of no column"
    return text


def row_fingerprints(session: Session, kind: RowKind, ids: Collection[str]) -> dict[str, str]:
    """Per invoice or payment of `ids` (those stored), the values of the columns its model is
    built from (`convert.INVOICE_COLUMNS` / `PAYMENT_COLUMNS`; an invoice's lines aside, which
    the plan does not read), in one text: equal texts, equal records."""
    name, columns = _ROWS[kind]
    rows = table(name)
    query = sa.select(rows.c.id, _in_one_text(*(rows.c[c] for c in columns))).where(mine(session, rows))
    found: dict[str, str] = {}
    for chunk in in_chunks(session, sorted(ids)):
        found.update((str(i), str(t)) for i, t in session.execute(query.where(one_of(session, rows.c.id, chunk))).all())
    return found


def view_fingerprints(session: Session, entity_kind: RowKind, entity_ids: Collection[str]) -> dict[str, list[str]]:
    """Per canonical record of `entity_ids`, each of its views as one text (system, object type,
    remote id, content hash or nothing for a view stored before hashes, when it last changed),
    sorted; no view read."""
    refs = table("refs")
    where = _in_one_text(refs.c.system, refs.c.object_type, refs.c.remote_id, refs.c.data_hash, refs.c.changed_at)
    query = sa.select(refs.c.entity_id, where).where(mine(session, refs), refs.c.entity_kind == entity_kind)
    found: dict[str, list[str]] = {}
    for chunk in in_chunks(session, sorted(entity_ids)):
        for entity_id, view in session.execute(query.where(one_of(session, refs.c.entity_id, chunk))).all():
            found.setdefault(entity_id, []).append(view)
    for views in found.values():
        views.sort()
    return found


def where_view_lives(view: str) -> tuple[str, str, str]:
    """Where a view (as `view_fingerprints` gives it) lives: system, object type, remote id."""
    system, object_type, remote_id, _ = view.split(_SEPARATOR, 3)
    return system, object_type, remote_id


def views_read_at(
    session: Session, entity_kind: RowKind, records: Collection[tuple[str, str, str]]
) -> dict[tuple[str, str, str], Any]:
    """When a sync last read each of these views (system, object type, remote id) of
    `entity_kind`: looked up through the refs' unique key, a system and type at a time."""
    refs = table("refs")
    by_type: dict[tuple[str, str], list[str]] = {}
    for system, object_type, remote_id in records:
        by_type.setdefault((system, object_type), []).append(remote_id)
    found: dict[tuple[str, str, str], Any] = {}
    for (system, object_type), remote_ids in sorted(by_type.items()):
        query = sa.select(refs.c.remote_id, refs.c.seen_at).where(
            mine(session, refs),
            refs.c.system == system,
            refs.c.object_type == object_type,
            refs.c.entity_kind == entity_kind,
        )
        for chunk in in_chunks(session, sorted(set(remote_ids))):
            for remote_id, seen_at in session.execute(query.where(one_of(session, refs.c.remote_id, chunk))).all():
                found[(system, object_type, remote_id)] = seen_at
    return found


def applied_allocation_rows(session: Session, invoice_ids: Collection[str]) -> list[tuple[str, str, str]]:
    """Every applied allocation on one of `invoice_ids` as (payment id, invoice id, the values
    of all its columns in one text), in the order they were made."""
    allocations = table("allocations")
    query = sa.select(
        allocations.c.payment_id,
        allocations.c.invoice_id,
        _in_one_text(*(allocations.c[c] for c in _ALLOCATION_COLUMNS)),
        _as_stored(allocations.c.created_at),
        allocations.c.id,
    ).where(mine(session, allocations), allocations.c.status == "applied")
    rows: list[tuple[Any, ...]] = []
    for chunk in in_chunks(session, sorted(invoice_ids)):
        rows += session.execute(query.where(one_of(session, allocations.c.invoice_id, chunk))).all()
    rows.sort(key=lambda r: (str(r[3]), r[4]))
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


# Where the receivables without a customer keep what `plan_digests` keeps on a customer's row.
NO_CUSTOMER = ""
_NO_CUSTOMER_CURSOR = ("(engine)", "plan-without-customer")


@dataclass(frozen=True)
class PlanDigest:
    """What a customer's last plan was derived from (its digest), and the payments allocated to
    its receivables then."""

    digest: str
    payments: frozenset[str]


def plan_digests(session: Session) -> dict[str, PlanDigest]:
    """Every customer's `PlanDigest` that is set, by id (`NO_CUSTOMER` for the receivables
    without one, kept in the cursors)."""
    customers = table("customers")
    query = sa.select(customers.c.id, customers.c.plan_digest, customers.c.plan_payments).where(
        mine(session, customers), customers.c.plan_digest.is_not(None)
    )
    found = {
        str(customer_id): PlanDigest(str(digest), frozenset(json.loads(payments or "[]")))
        for customer_id, digest, payments in session.execute(query).all()
    }
    without = get_cursor(session, *_NO_CUSTOMER_CURSOR)
    if without:
        digest, payments = json.loads(without)
        found[NO_CUSTOMER] = PlanDigest(str(digest), frozenset(payments))
    return found


def set_plan_digests(session: Session, digests: Mapping[str, PlanDigest | None]) -> None:
    """Store (or, with None, clear) the customers' `PlanDigest`, one statement for them all; not
    their `updated_at`: the digest is the plan's, not a change of the customer."""
    rows = [
        {
            "record": record_id,
            "digest": None if kept is None else kept.digest,
            "payments": None if kept is None else json.dumps(sorted(kept.payments)),
        }
        for record_id, kept in sorted(digests.items())
        if record_id != NO_CUSTOMER
    ]
    if NO_CUSTOMER in digests:
        kept = digests[NO_CUSTOMER]
        value = None if kept is None else json.dumps([kept.digest, sorted(kept.payments)])
        set_cursor(session, *_NO_CUSTOMER_CURSOR, value)
    if not rows:
        return
    customers = table("customers")
    session.execute(
        sa.update(customers)
        .where(mine(session, customers), customers.c.id == sa.bindparam("record"))
        .values(plan_digest=sa.bindparam("digest"), plan_payments=sa.bindparam("payments")),
        rows,
    )
