"""Reading every system's view of one kind of record, and merging canonical records that the
linker found to be the same. Set-based: one statement per kind of change, all rows at once."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from connector.model import DISPUTE_WITHDRAWN, MONEY_LEFT
from connector.state.records import CANONICAL_TABLES, ref_kind, rowcount
from connector.state.tables import json_text, json_values, linked_to_any, table
from connector.state.upsert import Bulk, bulk_write, dialect_name, in_chunks, mine, mine_by_key, one_of

# What points at a canonical record of each kind, and must follow it when it is merged.
_DEPENDANTS: dict[str, list[tuple[str, str]]] = {
    "customer": [("invoices", "customer_id"), ("payments", "customer_id")],
    "invoice": [("allocations", "invoice_id")],
    "payment": [("allocations", "payment_id")],
}
_CANONICAL = CANONICAL_TABLES
MERGE_BATCH = 2000
T = TypeVar("T")
# Paths into a stored view (("status",), ("_sync", "links", "invoice")): what a reader of a few
# fields of each view asks the database for (`ref_views(fields=...)`).
Fields = Sequence[Sequence[str]]


def view_fields(fields: Fields, values: Sequence[Any]) -> dict[str, Any]:
    """A view holding only the `values` read at `fields` (`json_values`: one per path, in that
    order), nested as the stored view nests them; a path with nothing there (missing, or JSON
    null) is left out, as `dict.get` reads it. `fields` with one path: the database gave the
    first path's value twice (`json_values`)."""
    view: dict[str, Any] = {}
    for path, value in zip(fields, values, strict=False):
        if value is None:
            continue
        *parents, name = path
        place = view
        for parent in parents:
            place = place.setdefault(parent, {})
        place[name] = value
    return view


def _linked_views(
    session: Session,
    entity_kind: str,
    *,
    by_entity: bool = False,
    with_data: bool = True,
    fields: Fields | None = None,
) -> sa.Select[Any]:
    """Every linked ref of `entity_kind` with its view and when a sync last read it, in order
    of system, object type and remote id: what the readers below narrow. `by_entity`: the
    caller narrows them to a list of canonical ids, which leaves out the refs linked to nothing
    by itself (`linked_to_any`). Not `with_data`: neither the view nor when it was read (an
    empty view, no moment). `fields`: each view holds only the values at those paths
    (`view_fields`)."""
    refs = table("refs")
    data: sa.ColumnElement[Any] = refs.c.data if fields is None else json_values(refs.c.data, fields)
    if not with_data:
        data = sa.null().label("data")
    seen_at = refs.c.seen_at if with_data else sa.null().label("seen_at")
    return (
        sa.select(refs.c.system, refs.c.object_type, refs.c.remote_id, refs.c.entity_id, data, seen_at)
        .where(mine(session, refs), refs.c.entity_kind == entity_kind, *linked_to_any(refs, by_entity=by_entity))
        .order_by(refs.c.system, refs.c.object_type, refs.c.remote_id)
    )


def ref_views(
    session: Session,
    entity_kind: str,
    *,
    linked_to: Collection[tuple[str, str]] | None = None,
    entity_ids: Collection[str] | None = None,
    systems: Collection[str] | None = None,
    with_data: bool = True,
    fields: Fields | None = None,
) -> list[dict[str, Any]]:
    """Every ref of `entity_kind` with its system's view (`data`) and when a sync last read it
    (`seen_at`), ordered for stable output. `linked_to` (system, invoice remote id) keeps the
    refs of each system whose view links to that invoice (`_sync.links.invoice`). `entity_ids`
    keeps the refs of those canonical records (through `ix_refs_entity`); `systems`, those of
    these systems (connection names) only. Not `with_data`: where each record lives only,
    every `data` empty and `seen_at` None (no view read nor decoded). `fields`: each `data`
    holds only the values at those paths (`view_fields`), the rest of the view not read."""
    refs = table("refs")
    if linked_to is not None:
        if fields is not None:
            raise ValueError("views linked to invoices are read whole")
        return _views_linked_to(session, entity_kind, linked_to)
    query = _linked_views(session, entity_kind, by_entity=entity_ids is not None, with_data=with_data, fields=fields)
    if systems is not None:
        query = query.where(refs.c.system.in_(sorted(systems)))
    if entity_ids is None and linked_to is None and dialect_name(session) == "sqlite":
        # SQLite's planner walks the whole unique index of refs (every kind's) for this order:
        # 1.1 s for 2,586 credit notes of a 540,000-ref book, against 7 ms through the kind's
        # own index; the sort here is faster for every kind (SQLite's text order is bytes,
        # which is Python's order of the strings, so the rows come out the same).
        rows = _view_rows(session.execute(query.order_by(None)), fields)
        return sorted(rows, key=lambda r: (r["system"], r["object_type"], r["remote_id"]))
    if entity_ids is None:
        return _view_rows(session.execute(query), fields)
    rows = []
    # Sorted here, not in the query: with the ORDER BY, SQLite walks the refs' unique index of
    # the whole book (every kind's) for its order and tests each ref against the list (1,000
    # invoices' views of a 597,000-ref book: 0.9 s, against 0.04 s through `ix_refs_entity`).
    by_entity = query.order_by(None)
    for chunk in in_chunks(session, sorted(entity_ids)):
        rows += _view_rows(session.execute(by_entity.where(one_of(session, refs.c.entity_id, chunk))), fields)
    return sorted(rows, key=lambda r: (r["system"], r["object_type"], r["remote_id"]))


def payment_views_money_left(session: Session, *, fields: Fields | None = None) -> list[dict[str, Any]]:
    """The payment views (as `ref_views` gives them) that state their money left: failed,
    refunded, or under an open or lost dispute (`MONEY_LEFT`, `DISPUTE_WITHDRAWN`), as the
    view itself says. The database tests the two fields inside each view in one pass; only
    the few it keeps are decoded."""
    refs = table("refs")
    query = _linked_views(session, "payment", fields=fields).where(
        sa.or_(
            json_text(refs.c.data, "status").in_(MONEY_LEFT),
            json_text(refs.c.data, "dispute_status").in_(DISPUTE_WITHDRAWN),
        )
    )
    return _view_rows(session.execute(query), fields)


def payment_invoice_links(session: Session, systems: Collection[str]) -> list[tuple[str, str, str]]:
    """(system, invoice remote id, payment id) of each linked payment view of `systems` that is
    on an invoice (`_sync.links.invoice`): two fields of each view, read by the database; no
    view is decoded here."""
    if not systems:
        return []
    refs = table("refs")
    link = json_text(refs.c.data, "_sync", "links", "invoice")
    query = sa.select(refs.c.system, link, refs.c.entity_id).where(
        mine(session, refs),
        refs.c.entity_kind == "payment",
        refs.c.entity_id.is_not(None),
        refs.c.system.in_(sorted(systems)),
        link.is_not(None),
    )
    return [(str(system), str(invoice), str(entity)) for system, invoice, entity in session.execute(query) if invoice]


def entities_by_remote(session: Session, entity_kind: str) -> dict[tuple[str, str], str]:
    """(system, remote id) -> canonical id of every linked ref of `entity_kind`: what
    `ref_views` gives without reading (and decoding) a single view; in its order, so that of two
    object types with one remote id in a system the same one wins."""
    refs = table("refs")
    query = (
        sa.select(refs.c.system, refs.c.remote_id, refs.c.entity_id)
        .where(mine(session, refs), refs.c.entity_kind == entity_kind, refs.c.entity_id.is_not(None))
        .order_by(refs.c.system, refs.c.object_type, refs.c.remote_id)
    )
    return {(system, remote_id): entity_id for system, remote_id, entity_id in session.execute(query)}


def each_ref_view_reduced(
    session: Session, entity_kind: str, reduce: Callable[[dict[str, Any]], T], *, batch: int = 1000
) -> list[T]:
    """`[reduce(row) for row in ref_views(session, entity_kind)]`, in that order, with each row
    reduced as soon as it is read, the database handing over `batch` rows at a time: a reader
    that keeps only what it needs of each view (linking: a few fields) never holds the book's
    views all at once. SQLite hands them over unordered and they are sorted here, as
    `ref_views` does (its order of text is bytes, Python's order of strings); PostgreSQL
    orders them itself, in its collation, as `ref_views` has it."""
    query = _linked_views(session, entity_kind)
    in_python = dialect_name(session) == "sqlite"
    if in_python:
        query = query.order_by(None)
    keys: list[tuple[str, str, str]] = []
    reduced: list[T] = []
    for partition in session.execute(query.execution_options(yield_per=batch)).partitions():
        for row in _view_rows(partition):
            keys.append((row["system"], row["object_type"], row["remote_id"]))
            reduced.append(reduce(row))
    if not in_python:
        return reduced
    return [reduced[i] for i in sorted(range(len(keys)), key=keys.__getitem__)]


def each_ref_fields(
    session: Session,
    entity_kind: str,
    paths: Sequence[Sequence[str]],
    *,
    batch: int = 1000,
    with_id: bool = False,
    ordered: bool = True,
) -> Iterator[tuple[Any, ...]]:
    """(system, object type, remote id, entity id, *values) of every linked ref of `entity_kind`
    in `ref_views`' order, each value what the view holds at one of `paths` (a string as
    it is, a JSON number as the database reads it, NULL where the view has nothing there): a
    reader that needs a few fields of each view has the database extract them, instead of
    decoding every view whole in Python (most of reconciliation's time on a large book).
    `with_id`: the ref's own id and the version of its view (`changed_at`) first. Not
    `ordered`: in the order the database finds them, for a reader that orders them itself or
    needs no order (SQLite otherwise walks the refs' unique index of every kind, a row at a
    time: 3.2 s for the 30,807 customers' refs of the 110,000-invoice book's 597,000, against
    0.2 s through the kind's own index)."""
    refs = table("refs")
    query = (
        sa.select(
            *([refs.c.id, refs.c.changed_at] if with_id else []),
            refs.c.system,
            refs.c.object_type,
            refs.c.remote_id,
            refs.c.entity_id,
            *[json_text(refs.c.data, *path) for path in paths],
        )
        .where(mine(session, refs), refs.c.entity_kind == entity_kind, refs.c.entity_id.is_not(None))
        .execution_options(yield_per=batch)
    )
    if ordered:
        query = query.order_by(refs.c.system, refs.c.object_type, refs.c.remote_id)
    for partition in session.execute(query).partitions():
        yield from (tuple(row) for row in partition)


def _view_rows(result: Iterable[Any], fields: Fields | None = None) -> list[dict[str, Any]]:
    rows = []
    for system, object_type, remote_id, entity_id, data, seen_at in result:
        if isinstance(data, str):
            data = json.loads(data)
        if data is None:
            data = {}  # not read (`with_data`); a stored view is never NULL
        elif fields is not None:
            data = view_fields(fields, data)
        rows.append(
            {
                "system": system,
                "object_type": object_type,
                "remote_id": remote_id,
                "entity_id": entity_id,
                "data": data,
                "seen_at": seen_at,
            }
        )
    return rows


def _views_linked_to(
    session: Session, entity_kind: str, linked_to: Collection[tuple[str, str]]
) -> list[dict[str, Any]]:
    """The linked refs of `entity_kind` whose view links to one of the invoices `linked_to`
    names (system, remote id: `_sync.links.invoice`, a string as the mapping writes it), looked
    up through `ix_refs_invoice_link` (0022) a system at a time, in the refs' order. The kind
    and the link to a record are tested here, not in the query: with them there, SQLite (which
    keeps no statistics) walks `ix_refs_entity` over every ref of the kind for two or more
    links (0.2 s on the large book) instead of looking each link up (0.1 ms)."""
    refs = table("refs")
    link = json_text(refs.c.data, "_sync", "links", "invoice")
    columns = (refs.c.system, refs.c.object_type, refs.c.remote_id, refs.c.entity_id, refs.c.data, refs.c.seen_at)
    by_system: dict[str, list[str]] = {}
    for system, remote_id in linked_to:
        by_system.setdefault(system, []).append(remote_id)
    rows = []
    for system, remote_ids in sorted(by_system.items()):
        of_system = sa.select(refs.c.entity_kind, *columns).where(mine(session, refs), refs.c.system == system)
        for chunk in in_chunks(session, sorted(set(remote_ids))):
            found = session.execute(of_system.where(one_of(session, link, chunk)))
            rows += _view_rows(row[1:] for row in found if row[0] == entity_kind and row[4] is not None)
    return sorted(rows, key=lambda r: (r["system"], r["object_type"], r["remote_id"]))


def merge_entities(session: Session, entity_kind: str, merges: Sequence[tuple[str, str, str]]) -> None:
    """Merge each `(member, survivor, rule)`: the member's refs and everything pointing at it
    move to the survivor, then the member's canonical row goes (invoice lines with it).
    `MERGE_BATCH` merges at a time (a survivor is never another merge's member: each is the
    survivor of its own group), so a first link of a large book never holds the parameters
    of 200,000 merges at once."""
    refs = table("refs")
    canonical = table(_CANONICAL[entity_kind])
    for start in range(0, len(merges), MERGE_BATCH):
        part = merges[start : start + MERGE_BATCH]
        session.execute(
            sa.update(refs)
            .where(mine(session, refs), refs.c.entity_kind == entity_kind, refs.c.entity_id == sa.bindparam("member"))
            # `changed_at` stays: only linking moves a view to another record, and linking the
            # views it merged again links nothing (its groups only grow), so its own merges must
            # not make the views' mark (`state.changes.views_position`) ask for another pass
            .values(entity_id=sa.bindparam("survivor"), link_rule=sa.bindparam("rule")),
            [{"member": m, "survivor": s, "rule": r} for m, s, r in part],
        )
        for name, column in _DEPENDANTS[entity_kind]:
            dependant = table(name)
            session.execute(
                sa.update(dependant)
                .where(mine(session, dependant), dependant.c[column] == sa.bindparam("member"))
                .values({column: sa.bindparam("survivor")}),
                [{"member": m, "survivor": s} for m, s, _ in part],
            )
        session.execute(
            sa.delete(canonical).where(mine(session, canonical), canonical.c.id == sa.bindparam("member")),
            [{"member": m} for m, _, _ in part],
        )


def without_customer(session: Session, entity_kind: str) -> set[str]:
    """The canonical invoices or payments that have no customer yet (`fill_customer_ids`)."""
    rows = table(_CANONICAL[entity_kind])
    query = sa.select(rows.c.id).where(mine(session, rows), rows.c.customer_id.is_(None))
    return {entity_id for (entity_id,) in session.execute(query)}


def fill_customer_ids(session: Session, entity_kind: str, customer_of: dict[str, str]) -> int:
    """Give canonical invoices or payments without a customer the one their systems name:
    `customer_of` maps (for each record) its canonical id to a canonical customer id. Stream
    order no longer matters: an invoice stored before its customer gets it here."""
    if not customer_of:
        return 0
    rows = table(_CANONICAL[entity_kind])
    result = session.execute(
        sa.update(rows)
        .where(mine(session, rows), rows.c.id == sa.bindparam("entity"), rows.c.customer_id.is_(None))
        .values(customer_id=sa.bindparam("customer")),
        [{"entity": e, "customer": c} for e, c in sorted(customer_of.items())],
    )
    return rowcount(result)


def stamp_kinds(session: Session, kinds: dict[str, str], only: Collection[int] | None = None) -> int:
    """Stamp the kind of system (`kinds`: system -> ledger, gateway, crm) on the invoice views
    stored before views carried it, so that which invoices are receivables is known without
    a full sync; returns how many were stamped. `only`: of these refs only. The views without
    a kind are found in `ix_refs_entity_kind` alone (0.1 s for the large book's 330,000 invoice
    views; a system at a time, SQLite read every row of the system: 2.2 s)."""
    refs = table("refs")
    query = sa.select(refs.c.id, refs.c.system, refs.c.data).where(
        mine(session, refs) if only is None else mine_by_key(session, refs),
        refs.c.entity_kind == "invoice",
        ref_kind(refs).is_(None),
    )
    if only is None:
        found = list(session.execute(query))
    else:
        found = [
            row
            for chunk in in_chunks(session, sorted(only))
            for row in session.execute(query.where(one_of(session, refs.c.id, chunk)))
        ]
    rows = []
    for ref_id, system, data in found:
        kind = kinds.get(system)
        if kind is None:
            continue
        data = json.loads(data) if isinstance(data, str) else dict(data)
        data["_sync"] = {**(data.get("_sync") or {}), "kind": kind}
        rows.append({"ref": ref_id, "view": data})
    if rows:
        session.execute(
            sa.update(refs)
            .where(refs.c.id == sa.bindparam("ref"))
            .values(data=sa.bindparam("view"), changed_at=datetime.now(UTC)),
            rows,
        )
    return len(rows)


# --- the keys linking gave each view (`link_keys`, 0027): a link pass over what changed ---


def systems_holding(session: Session, entity_kind: str, systems: Collection[str]) -> set[str]:
    """Which of `systems` hold a linked ref of `entity_kind` (one look-up each, through the
    refs' unique key's leading columns)."""
    refs = table("refs")
    found = set()
    for system in sorted(systems):
        query = sa.select(refs.c.id).where(
            mine(session, refs),
            refs.c.system == system,
            refs.c.entity_kind == entity_kind,
            refs.c.entity_id.is_not(None),
        )
        if session.execute(query.limit(1)).first() is not None:
            found.add(system)
    return found


def _changed_since(session: Session, since: datetime, *columns: Any) -> sa.Select[Any]:
    """`columns` of the company's refs whose view was stored new or changed at or after `since`
    (through `ix_refs_changed_at`) and not keyed as it is now: a view whose keys were made from
    this very version (`link_key_sets.view_changed_at`, as linking read it with the view) was
    linked as it is by the pass that keyed it. A version, not a time: a page another worker
    committed after that pass read the view is another version, whatever its time says."""
    refs, sets = table("refs"), table("link_key_sets")
    keyed_now = (
        sa.select(sets.c.ref_id)
        .where(
            sets.c.company == refs.c.company,
            sets.c.ref_id == refs.c.id,
            sets.c.view_changed_at == refs.c.changed_at,
        )
        .exists()
    )
    return sa.select(*columns).where(mine(session, refs), refs.c.changed_at >= since, ~keyed_now)


def how_many(session: Session, kinds: Collection[str]) -> int:
    """How many refs of `kinds` the company has (through `ix_refs_entity`, no row read)."""
    refs = table("refs")
    query = sa.select(sa.func.count()).where(mine(session, refs), refs.c.entity_kind.in_(sorted(kinds)))
    return int(session.execute(query).scalar_one())


def keyed(session: Session) -> bool:
    """Whether a link pass keyed any of the company's views (`link_key_sets`)."""
    sets = table("link_key_sets")
    return session.execute(sa.select(sets.c.ref_id).where(mine(session, sets)).limit(1)).first() is not None


def changed_refs(session: Session, kinds: Collection[str], since: datetime) -> dict[str, set[int]]:
    """Of each of `kinds`, the linked refs whose view was stored new or changed at or after
    `since` and not keyed as it is now (`_changed_since`), in one walk of the refs changed."""
    refs = table("refs")
    query = _changed_since(session, since, refs.c.id, refs.c.entity_kind).where(refs.c.entity_id.is_not(None))
    found: dict[str, set[int]] = {kind: set() for kind in kinds}
    for ref_id, kind in session.execute(query):
        if kind in found:
            found[kind].add(ref_id)
    return found


def refs_with_keys(
    session: Session, entity_kind: str, keys: Collection[int], *, of_type: Callable[[str], bool] | None = None
) -> set[int]:
    """The linked refs of `entity_kind` that hold one of `keys` (of an object type `of_type`
    accepts, when given), through the keys' primary key."""
    found: set[int] = set()
    if not keys:
        return found
    link_keys, refs = table("link_keys"), table("refs")
    query = (
        sa.select(refs.c.id, refs.c.entity_kind, refs.c.object_type)
        .select_from(link_keys.join(refs, refs.c.id == link_keys.c.ref_id))
        .where(mine(session, link_keys), refs.c.entity_id.is_not(None))
    )
    for chunk in in_chunks(session, sorted(keys)):
        rows = session.execute(query.where(one_of(session, link_keys.c.key, chunk)))
        found.update(
            ref_id
            for ref_id, kind, object_type in rows
            if kind == entity_kind and (of_type is None or of_type(object_type))
        )
    return found


def refs_of_records(session: Session, entity_kind: str, entity_ids: Collection[str]) -> set[int]:
    """The refs of the canonical records `entity_ids` (through `ix_refs_entity`)."""
    refs = table("refs")
    found: set[int] = set()
    query = sa.select(refs.c.id).where(mine(session, refs), refs.c.entity_kind == entity_kind)
    for chunk in in_chunks(session, sorted(entity_ids)):
        found.update(session.scalars(query.where(one_of(session, refs.c.entity_id, chunk))))
    return found


def refs_named(session: Session, entity_kind: str, named: Collection[tuple[str, str, str]]) -> set[int]:
    """The linked refs of `entity_kind` of each (system, object type, remote id), through the
    refs' unique key."""
    refs = table("refs")
    found: set[int] = set()
    by_slot: dict[tuple[str, str], list[str]] = {}
    for system, object_type, remote_id in named:
        by_slot.setdefault((system, object_type), []).append(remote_id)
    for (system, object_type), remote_ids in sorted(by_slot.items()):
        query = sa.select(refs.c.id, refs.c.entity_kind, refs.c.entity_id).where(
            mine(session, refs), refs.c.system == system, refs.c.object_type == object_type
        )
        for chunk in in_chunks(session, sorted(set(remote_ids))):
            rows = session.execute(query.where(one_of(session, refs.c.remote_id, chunk)))
            found.update(ref_id for ref_id, kind, entity in rows if kind == entity_kind and entity is not None)
    return found


def ref_fields_of(
    session: Session, entity_kind: str, ref_ids: Collection[int], paths: Sequence[Sequence[str]]
) -> list[tuple[Any, ...]]:
    """(ref id, version, system, object type, remote id, entity id, *values) of the linked
    refs `ref_ids` of `entity_kind`, as `each_ref_fields(with_id=True)` reads them, in its
    order."""
    refs = table("refs")
    query = sa.select(
        refs.c.id,
        refs.c.changed_at,
        refs.c.entity_kind,
        refs.c.system,
        refs.c.object_type,
        refs.c.remote_id,
        refs.c.entity_id,
        *[json_text(refs.c.data, *path) for path in paths],
    ).where(mine_by_key(session, refs))
    rows = []
    for chunk in in_chunks(session, sorted(ref_ids)):
        for row in session.execute(query.where(one_of(session, refs.c.id, chunk))):
            if row[2] == entity_kind and row[6] is not None:
                rows.append((row[0], row[1], *row[3:]))
    return sorted(rows, key=lambda r: (r[2], r[3], r[4]))


# A view's keys as linking gave them: (looked up among every view of its kind, among the
# other side only, held on its customer's record).
KeySets = tuple[frozenset[int], frozenset[int], frozenset[int]]
# A pass linking the same views at once (a `connector sync` beside the service's tick) writes
# the same keys: the last one's stand (a key left behind only widens a neighbourhood).
_LINK_KEYS = Bulk(table("link_keys"), ("key", "ref_id"), key=("key", "ref_id"), keep=())
_LINK_KEY_SETS = Bulk(
    table("link_key_sets"),
    ("ref_id", "shared_keys", "toward_keys", "depends_keys", "view_changed_at"),
    key=("ref_id",),
    keep=(),
)


def _packed(keys: Collection[int]) -> bytes:
    """Keys as signed 64-bit little-endian integers, whatever the machine's byte order."""
    return struct.pack(f"<{len(keys)}q", *sorted(keys))


def _unpacked(data: bytes) -> frozenset[int]:
    return frozenset(struct.unpack(f"<{len(data) // 8}q", data))


def stored_link_keys(session: Session, ref_ids: Collection[int]) -> dict[int, KeySets]:
    """ref id -> the keys linking gave its view when it last read it (`link_key_sets`)."""
    sets = table("link_key_sets")
    found: dict[int, KeySets] = {}
    query = sa.select(sets.c.ref_id, sets.c.shared_keys, sets.c.toward_keys, sets.c.depends_keys).where(
        mine(session, sets)
    )
    for chunk in in_chunks(session, sorted(ref_ids)):
        for ref_id, *packed in session.execute(query.where(one_of(session, sets.c.ref_id, chunk))):
            shared, toward, depends = (_unpacked(keys) for keys in packed)
            found[ref_id] = (shared, toward, depends)
    return found


def forget_link_keys(session: Session, before: dict[int, KeySets] | None = None) -> None:
    """The keys linking gave the refs of `before` (as `stored_link_keys` read them) go; None:
    every key of the company's, as before a pass over the whole book keys it anew."""
    link_keys, sets = table("link_keys"), table("link_key_sets")
    if before is None:
        session.execute(sa.delete(link_keys).where(mine(session, link_keys)))
        session.execute(sa.delete(sets).where(mine(session, sets)))
        return
    pairs = [{"key": key, "ref": ref_id} for ref_id, keys in before.items() for key in frozenset().union(*keys)]
    if pairs:
        session.execute(
            sa.delete(link_keys).where(
                mine(session, link_keys),
                link_keys.c.key == sa.bindparam("key"),
                link_keys.c.ref_id == sa.bindparam("ref"),
            ),
            pairs,
        )
    for chunk in in_chunks(session, sorted(before)):
        session.execute(sa.delete(sets).where(mine(session, sets), one_of(session, sets.c.ref_id, chunk)))


def add_link_keys(session: Session, keyed: Sequence[tuple[int, KeySets, datetime | None]]) -> None:
    """Store the keys linking gave views it read, (ref id, keys, the view's `changed_at` as it
    read it) each, none of them keyed now (`forget_link_keys` first). Written in the tables'
    key order."""
    if not keyed:
        return
    rows = sorted({(key, ref_id) for ref_id, keys, _ in keyed for part in keys for key in part})
    bulk_write(session, _LINK_KEYS, rows, new=True)
    sets = [
        (ref_id, *(_packed(part) for part in keys), version)
        for ref_id, keys, version in sorted(keyed, key=lambda item: item[0])
    ]
    bulk_write(session, _LINK_KEY_SETS, sets, new=True)
