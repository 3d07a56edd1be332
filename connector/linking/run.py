"""Run the linker over what is stored: customers first (invoices link through them), then
invoices, then payments; every merge is applied and audit-logged in one transaction."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from connector import __version__
from connector.config import Config
from connector.connections import check_scope, system_ranks
from connector.linking.components import Components
from connector.linking.deals import DealMatch
from connector.linking.keys import (
    ViewKeys,
    customer_identity,
    customer_keys,
    invoice_keys,
    named_by_hints,
    own_key,
    payment_keys,
)
from connector.linking.rules import (
    DEAL,
    LINKING_HINTS,
    Link,
    View,
    deal_of,
    link_customers,
    link_invoices,
    link_payments,
    match_deals,
    receivable_views,
)
from connector.providers.registry import Registry
from connector.state import linking as state_linking
from connector.state.bookkeeping import audit_many
from connector.state.linking import KeySets
from connector.state.records import RECEIVABLE_KINDS, receivable_kind
from connector.state.store import Store

ACTOR = "linker"


@dataclass
class LinkReport:
    links: dict[str, list[Link]] = field(default_factory=dict)
    # kind -> the canonical records whose views were read, as they are after the pass (those
    # whose views changed, and their neighbourhood); None: the whole book was linked
    moved: dict[str, set[str]] | None = None

    def counts(self) -> dict[str, int]:
        return {kind: len(links) for kind, links in self.links.items()}

    def by_rule(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for kind, links in self.links.items():
            for link in links:
                out.setdefault(kind, {}).setdefault(link.rule, 0)
                out[kind][link.rule] += 1
        return out


# What the linking rules read of a view (`linking.rules`): the rest of it (lines, addresses,
# amounts due...) is never decoded nor kept, so linking a large book holds these only: the
# fields below that are set (of the total its amount), the hints the rules read
# (`LINKING_HINTS`), the customer it links to; the few words every view repeats held once.
LINKING_FIELDS: dict[str, tuple[str, ...]] = {
    "customer": ("id", "name", "emails"),  # what an invoice view calls its customer: its id
    "invoice": ("number", "currency", "total", "customer_id", "issue_date"),
    "payment": ("remittance",),
}
# The same, as paths into a stored view, for the database to extract (`each_ref_fields`).
_PATHS = {
    kind: [("total", "amount") if key == "total" else (key,) for key in fields]
    + [("_sync", "hints"), ("_sync", "links", "customer")]
    for kind, fields in LINKING_FIELDS.items()
}
_NOTHING: Mapping[str, Any] = MappingProxyType({})  # one empty mapping for every view without


def _reduced(
    system: str,
    object_type: str,
    remote_id: str,
    entity_id: str,
    data: dict[str, Any],
    hints: Mapping[str, Any],
    links: Mapping[str, Any],
    systems: dict[str, tuple[str, int]],
) -> View:
    kind, rank = systems.get(system, ("unknown", 0))
    if isinstance(data.get("currency"), str):
        data["currency"] = sys.intern(data["currency"])
    kept = {key: value for key, value in hints.items() if key in LINKING_HINTS}
    return View(
        system=sys.intern(system),
        kind=kind,
        object_type=sys.intern(object_type),
        remote_id=remote_id,
        entity_id=entity_id,
        rank=rank,
        data=data,
        hints=kept or _NOTHING,
        links=links or _NOTHING,
    )


def reduced_view(row: dict[str, Any], kind: str, systems: dict[str, tuple[str, int]]) -> View:
    """A view of a record of `kind` as `ref_views` reads it (whole), reduced to what linking
    reads."""
    stored = row["data"]
    data = {key: stored[key] for key in LINKING_FIELDS[kind] if stored.get(key) is not None}
    if isinstance(data.get("total"), dict):
        data["total"] = {"amount": data["total"].get("amount")}
    sync = stored.get("_sync") or {}
    customer = (sync.get("links") or {}).get("customer")
    hints = sync.get("hints") or {}
    links = {"customer": customer} if customer is not None else _NOTHING
    return _reduced(row["system"], row["object_type"], row["remote_id"], row["entity_id"], data, hints, links, systems)


def _views(rows: list[dict[str, Any]], kind: str, systems: dict[str, tuple[str, int]]) -> list[View]:
    return [reduced_view(row, kind, systems) for row in rows]


class _Shared:
    """One object for each value many views hold alike: a record's canonical id (its two or
    three views), its customer's id, its day, the total or the customer it names. Linking holds
    every view of a kind at once: the large book's 332,857 invoice views held 485 MiB, a third
    of it such repeats, each view with its own copy. Values that seldom repeat (numbers, names)
    are left as they are: looking each up costs more than it saves."""

    REPEATED = ("customer_id", "issue_date")

    def __init__(self) -> None:
        self._mappings: dict[tuple[str, Any], dict[str, Any]] = {}

    def mapping(self, key: str, value: Any) -> dict[str, Any]:
        """`{key: value}`, one for every view naming the same `value`: a plain dict, never
        written (a dict of strings alone is left out of the garbage collector's walks, where a
        read-only proxy of it would not be: linking's time went up by a seventh with them)."""
        try:
            found = self._mappings.get((key, value))
        except TypeError:  # not hashable (never a string or a number)
            return {key: value}
        if found is None:
            found = self._mappings[(key, value)] = {key: value}
        return found


def linking_views(session: Any, kind: str, systems: dict[str, tuple[str, int]]) -> list[View]:
    """Every stored view of `kind`, reduced to what linking reads, in order (`_in_order`): the
    database extracts those few fields of each view (`each_ref_fields`), so no view is decoded
    whole nor held (a JSON array or object comes as its text and is decoded here); the values
    views repeat are held once (`_Shared`; strings in Python's own table of interned strings,
    whose entries go with the last view holding them)."""
    return [view for _, view in _in_order((ref_id, view) for ref_id, _, view in _keyed_views(session, kind, systems))]


def _keyed_views(
    session: Any, kind: str, systems: dict[str, tuple[str, int]], *, held: bool = True
) -> Iterator[tuple[int, datetime | None, View]]:
    """(ref id, version, view) of every stored view of `kind`, as `linking_views` reads them,
    in the order the database finds them; the version is the view's `changed_at`, kept with
    its keys. Not `held`: for a reader that lets each view go before the next (nothing kept
    for the values views repeat, which only views held together share)."""
    shared = _Shared()
    rows = state_linking.each_ref_fields(session, kind, _PATHS[kind], with_id=True, ordered=False)
    for ref_id, version, *row in rows:
        yield ref_id, version, _view_of_fields(kind, row, systems, shared if held else _Shared())


def _views_of(
    session: Any, kind: str, ref_ids: set[int], systems: dict[str, tuple[str, int]]
) -> list[tuple[int, datetime | None, View]]:
    """(ref id, version, view) of the refs `ref_ids` of `kind`, as `_keyed_views` reads them."""
    shared = _Shared()
    return [
        (ref_id, version, _view_of_fields(kind, row, systems, shared))
        for ref_id, version, *row in state_linking.ref_fields_of(session, kind, ref_ids, _PATHS[kind])
    ]


def _view_of_fields(kind: str, row: Sequence[Any], systems: dict[str, tuple[str, int]], shared: _Shared) -> View:
    system, object_type, remote_id, entity_id, *values = row
    *fields, hints, customer = values
    data = {key: value for key, value in zip(LINKING_FIELDS[kind], fields, strict=True) if value is not None}
    for key in shared.REPEATED:
        value = data.get(key)
        if type(value) is str:
            data[key] = sys.intern(value)
    if "emails" in data:
        data["emails"] = _decoded(data["emails"])
    if "total" in data:
        data["total"] = shared.mapping("amount", data["total"])
    stated = _decoded(hints) if hints is not None else None
    return _reduced(
        system,
        object_type,
        remote_id,
        sys.intern(entity_id),
        data,
        stated if isinstance(stated, dict) else {},
        _NOTHING if customer is None else shared.mapping("customer", customer),
        systems,
    )


def _decoded(value: Any) -> Any:
    """A JSON array or object the database handed over as its text (PostgreSQL may hand it over
    decoded already); a view holding a plain string there keeps it, as decoding it whole would."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


# Where `link_book` keeps when it last linked, and on what basis (the systems, their kinds and
# ranks, the receivables' kind, the connector's version): another basis links the whole book.
LINK_KEYS_MARK = ("(engine)", "link-keys")
# A pass over what changed reads the views changed since the last pass began, less this: a
# page another worker stored while that pass ran (its time taken before it committed), or a
# worker's clock behind another's, is linked by the next pass all the same.
LOOKBACK = timedelta(minutes=10)
# A pass links the whole book when more than this share of its views changed since the last
# (and more than `WHOLE_BOOK_FROM`): a remap, a first sync of a connection, a long outage. Its
# neighbourhoods would be most of the book, read a few thousand views at a time.
WHOLE_BOOK_SHARE = 0.05
WHOLE_BOOK_FROM = 5_000
# The kinds of record a pass links (and keys), in its order: only their views count as changed.
LINKED_KINDS = ("customer", "invoice", "payment")


def link_book(config: Config, store: Store, registry: Registry | None = None, *, full: bool = False) -> LinkReport:
    """Link what changed since the last pass (`link_changed`), or the whole book (`link_all`):
    the first time, with `full`, when the basis of the last pass is not today's (another
    system or rank, the receivables now another system's, another version of the rules), when
    much of the book changed since (`WHOLE_BOOK_SHARE`), and when no view holds keys."""
    started = datetime.now(UTC)
    systems = system_ranks(config, registry)
    with store.session() as session:
        receivable = _receivable(session, systems)
    basis = {
        "systems": sorted([name, kind, rank] for name, (kind, rank) in systems.items()),
        "receivable": receivable,
        "connector": __version__,
    }
    last = None if full else _last_pass(store.get_cursor(*LINK_KEYS_MARK))
    since = None if last is None or last[1] != basis else last[0] - LOOKBACK
    stored: dict[str, set[int]] = {}
    if since is not None:
        with store.session() as session:
            # the kinds a pass links only: a balance transaction or a refund is never keyed
            stored = state_linking.changed_refs(session, LINKED_KINDS, since)
            views = state_linking.how_many(session, LINKED_KINDS)
            keyed = state_linking.keyed(session)
        changed = sum(len(refs) for refs in stored.values())
        # keys gone (a downgrade and upgrade again) leave the views without neighbours
        if changed > max(WHOLE_BOOK_FROM, views * WHOLE_BOOK_SHARE) or (views and not keyed):
            since = None
    if since is not None:
        report = link_changed(config, store, registry, since=since, stored=stored)
    else:
        report = link_all(config, store, registry)
    store.set_cursor(*LINK_KEYS_MARK, json.dumps({"at": started.isoformat(), "basis": basis}))
    return report


def _last_pass(stored: str | None) -> tuple[datetime, Any] | None:
    if not stored:
        return None
    try:
        found = json.loads(stored)
        return datetime.fromisoformat(found["at"]), found["basis"]
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: the whole book, and a good mark after it


# The views a pass over the whole book links at once: whole parts (`Components`) are put
# together up to this many, so the pass holds a batch of views, not every view of a kind.
LINK_BATCH = 20_000


def link_all(config: Config, store: Store, registry: Registry | None = None, *, batch: int = LINK_BATCH) -> LinkReport:
    """Link everything stored, whatever order its streams and pages arrived in: the same stored
    views give the same links, so an incremental sync that brings a late contact repairs what
    its invoices could not link to before. Every view is keyed anew (`link_keys`), for the
    passes over what changed after it (`link_changed`). A kind's views are read twice: once
    to key them and find the parts of the book that link apart (`Components`), then a batch of
    parts at a time (`batch` views or so) to link them: linking each part on its own gives
    what linking the whole book at once gives (a test holds the two equal)."""
    check_scope(config, store)
    systems = system_ranks(config, registry)
    report = LinkReport()
    with store.session() as session:
        state_linking.stamp_kinds(session, {name: kind for name, (kind, _) in systems.items()})
        state_linking.forget_link_keys(session)
        keys = _KeyWriter(session)  # nothing keyed now: every view's keys are new
        report.links["customer"] = _link_in_parts(
            session, "customer", systems, customer_keys, link_customers, keys, batch
        )
        customer_of, customer_by_ref = _customer_maps(session)
        receivable = _receivable(session, systems)
        report.links["invoice"] = _link_in_parts(
            session,
            "invoice",
            systems,
            lambda view: invoice_keys(view, receivable, customer_of, customer_by_ref),
            lambda views: link_invoices(views, customer_of, customer_by_ref, receivable=receivable),
            keys,
            batch,
        )
        report.links["payment"] = _link_in_parts(session, "payment", systems, payment_keys, link_payments, keys, batch)
        keys.flush()
        _fill_customers(session, systems, customer_by_ref)
    return report


def _link_in_parts(
    session: Any,
    kind: str,
    systems: dict[str, tuple[str, int]],
    keys_of: Callable[[View], ViewKeys],
    link: Callable[[list[View]], list[Link]],
    keys: _KeyWriter,
    batch: int,
) -> list[Link]:
    """Key every view of `kind` as the database hands them over (held one at a time), then
    link the parts they form (`Components`) a batch at a time, each batch's views read again
    by their ids; the links made, applied."""
    parts = Components()
    for ref_id, version, view in _keyed_views(session, kind, systems, held=False):
        found = keys_of(view)
        keys.add(ref_id, found, version)
        own = own_key(view) if kind != "payment" else None  # as `_neighbourhood` seeks it
        parts.add(ref_id, view.entity_id, found, deal=view.object_type == DEAL, own=own)
    keys.flush()
    links: list[Link] = []
    for ref_ids in parts.parts(batch):
        views = [view for _, _, view in _views_of(session, kind, set(ref_ids), systems)]
        links += _apply(session, kind, link(views))
    return links


def link_changed(
    config: Config,
    store: Store,
    registry: Registry | None = None,
    *,
    since: datetime,
    stored: Mapping[str, set[int]] | None = None,
) -> LinkReport:
    """Link the views stored new or changed at or after `since` (`refs.changed_at`) with their
    neighbourhood: every view sharing a key with one of them (as they are now, and as they
    were keyed when linking last read them), and so on, and the views of the same records
    (`_neighbourhood`); an invoice whose customer's record moved (merged, or stored after it)
    is linked again with its own. After a `link_all` and the passes since, this gives the
    links `link_all` would: a view sharing no key with the changed ones can link to none of
    them, nor gain or lose a rival (a test holds the two equal on random books). `stored`:
    those views, by kind, as `state_linking.changed_refs` found them a moment before (one walk
    of the refs changed since, not two); a view stored between then and now is another version
    than any keyed, and the next pass, whose look-back covers this one's start, links it."""
    check_scope(config, store)
    systems = system_ranks(config, registry)
    report = LinkReport(moved={})
    with store.session() as session:
        if stored is None:
            stored = state_linking.changed_refs(session, LINKED_KINDS, since)
        # a view stored without its system's kind was stored since: `link_all` stamped the others
        state_linking.stamp_kinds(session, {name: kind for name, (kind, _) in systems.items()}, only=stored["invoice"])
        changed = stored["customer"]
        customers, before, now, versions = _neighbourhood(session, "customer", changed, systems, customer_keys)
        links = link_customers([view for _, view in customers])
        report.links["customer"] = _apply(session, "customer", links)
        _note_moved(report, "customer", customers, links)
        merged = {link.member for link in links}
        identities: set[int] = set()
        keys = _KeyWriter(session, before)
        for ref_id, view in customers:
            keys.add(ref_id, now[ref_id], versions[ref_id])
            if ref_id in changed or view.entity_id in merged:
                identities |= customer_identity(view) | before.get(ref_id, (frozenset(), frozenset(), frozenset()))[2]
        keys.flush()
        del customers
        customer_of, customer_by_ref = _customer_maps(session)
        receivable = _receivable(session, systems)
        changed = stored["invoice"] | state_linking.refs_with_keys(session, "invoice", identities)
        invoices, before, now, versions = _neighbourhood(
            session,
            "invoice",
            changed,
            systems,
            lambda view: invoice_keys(view, receivable, customer_of, customer_by_ref),
        )
        report.links["invoice"] = _apply(
            session,
            "invoice",
            link_invoices([view for _, view in invoices], customer_of, customer_by_ref, receivable=receivable),
        )
        _note_moved(report, "invoice", invoices, report.links["invoice"])
        keys = _KeyWriter(session, before)
        for ref_id, _ in invoices:
            keys.add(ref_id, now[ref_id], versions[ref_id])
        keys.flush()
        del invoices
        changed = stored["payment"]
        payments, before, now, versions = _neighbourhood(session, "payment", changed, systems, payment_keys)
        report.links["payment"] = _apply(session, "payment", link_payments([view for _, view in payments]))
        _note_moved(report, "payment", payments, report.links["payment"])
        keys = _KeyWriter(session, before)
        for ref_id, _ in payments:
            keys.add(ref_id, now[ref_id], versions[ref_id])
        keys.flush()
        _fill_customers(session, systems, customer_by_ref)
    return report


def _note_moved(report: LinkReport, kind: str, near: list[tuple[int, View]], links: list[Link]) -> None:
    """The records of the views `near` (of `kind`), as they are once `links` merged them."""
    survivor = {link.member: link.survivor for link in links}
    assert report.moved is not None
    report.moved[kind] = {survivor.get(view.entity_id, view.entity_id) for _, view in near}


def _neighbourhood(
    session: Any,
    kind: str,
    changed: set[int],
    systems: dict[str, tuple[str, int]],
    keys_of: Callable[[View], ViewKeys],
) -> tuple[list[tuple[int, View]], dict[int, KeySets], dict[int, ViewKeys], dict[int, datetime | None]]:
    """(ref id, view) of the refs `changed` of `kind` and of every ref sharing a key with one
    of them, transitively: the keys each view gives now (`keys_of`, and the key the views whose
    explicit-id hints name it hold) and the keys it was given when linking last read it (what
    it may have stopped sharing), a deal's numbers among the invoices and an invoice's among
    the deals only (`ViewKeys.toward`), the refs of the same records, the records its hints
    name; in `linking_views`' order, with the keys stored for each before, its keys now
    (`keys_of`'s, for the pass's key writer: computed once) and the version of its view read."""
    near: dict[int, View] = {}
    before: dict[int, KeySets] = {}
    keyed: dict[int, ViewKeys] = {}
    versions: dict[int, datetime | None] = {}
    asked: dict[bool | None, set[int]] = {None: set(), True: set(), False: set()}  # deals sought: any, yes, no
    records: set[str] = set()
    named: set[tuple[str, str, str]] = set()
    tried: set[int] = set()
    todo = set(changed)
    while todo:
        tried |= todo
        stored = state_linking.stored_link_keys(session, todo)
        before.update(stored)
        sought: dict[bool | None, set[int]] = {None: set(), True: set(), False: set()}
        new_records: set[str] = set()
        new_named: set[tuple[str, str, str]] = set()
        for ref_id, version, view in _views_of(session, kind, todo, systems):
            near[ref_id] = view
            versions[ref_id] = version
            now = keyed[ref_id] = keys_of(view)
            deal = view.object_type == DEAL
            sought[None] |= now.shared
            sought[not deal] |= now.toward
            if ref_id in stored:
                shared, toward, _ = stored[ref_id]
                sought[None] |= shared
                sought[not deal] |= toward
            if kind != "payment":
                sought[None].add(own_key(view))
            new_records.add(view.entity_id)
            for system_kind, object_type, remote_id in named_by_hints(view, kind):
                new_named.update(
                    (system, object_type, remote_id)
                    for system, (of_kind, _) in systems.items()
                    if of_kind == system_kind
                )
        found: set[int] = set()
        for deals, keys in sought.items():
            keys -= asked[deals]
            asked[deals] |= keys
            of_type = None if deals is None else (_is_deal if deals else _is_not_deal)
            found |= state_linking.refs_with_keys(session, kind, keys, of_type=of_type)
        new_records -= records
        records |= new_records
        new_named -= named
        named |= new_named
        found |= state_linking.refs_of_records(session, kind, new_records)
        found |= state_linking.refs_named(session, kind, new_named)
        todo = found - tried
    return _in_order(near.items()), before, keyed, versions


def _is_deal(object_type: str) -> bool:
    return object_type == DEAL


def _is_not_deal(object_type: str) -> bool:
    return object_type != DEAL


def _in_order(keyed: Iterable[tuple[int, View]]) -> list[tuple[int, View]]:
    """Views in one order whatever the database's collation: the rules' ties (which of two
    equal candidates anchors a group) fall the same way in a pass over the book or a part."""
    return sorted(keyed, key=lambda item: (item[1].system, item[1].object_type, item[1].remote_id))


def _customer_maps(session: Any) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """What each stored invoice view calls its customer -> that customer's canonical id now (by
    the customer id it was stored with, and by the customer's ref in its system)."""
    customer_of: dict[str, str] = {}
    customer_by_ref: dict[tuple[str, str], str] = {}
    customers = state_linking.each_ref_fields(session, "customer", [("id",)], ordered=False)
    for system, _, remote_id, entity_id, stored_id in customers:
        entity_id = sys.intern(entity_id)
        customer_of[str(stored_id)] = entity_id
        customer_by_ref[(system, remote_id)] = entity_id
    return customer_of, customer_by_ref


def _receivable(session: Any, systems: dict[str, tuple[str, int]]) -> str | None:
    """The kind of system whose invoices are the book's receivables (`receivable_views`), from
    which systems hold invoices, as a pass over the whole book reads it off its views."""
    candidates = [name for name, (kind, _) in systems.items() if kind in RECEIVABLE_KINDS]
    holding = state_linking.systems_holding(session, "invoice", candidates)
    return receivable_kind({systems[name][0] for name in holding})


class _KeyWriter:
    """The keys of the views a pass read, written a batch at a time (`link_keys`); a view keyed
    before (`before`, as `stored_link_keys` read it) loses its earlier keys."""

    BATCH = 20_000

    def __init__(self, session: Any, before: dict[int, KeySets] | None = None) -> None:
        self.session = session
        self.before = before if before is not None else {}
        self.keyed: list[tuple[int, KeySets, datetime | None]] = []
        self.count = 0

    def add(self, ref_id: int, keys: ViewKeys, version: datetime | None) -> None:
        """`keys` of the view of `ref_id` as linking read it (`version`: its `changed_at`)."""
        self.keyed.append((ref_id, (keys.shared, keys.toward, keys.depends), version))
        self.count += len(keys.shared) + len(keys.toward) + len(keys.depends)
        if self.count >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        replaced = {ref_id: self.before[ref_id] for ref_id, _, _ in self.keyed if ref_id in self.before}
        if replaced:
            state_linking.forget_link_keys(self.session, replaced)
        state_linking.add_link_keys(self.session, self.keyed)
        self.keyed, self.count = [], 0


_FILL_BATCH = 5_000  # records without a customer read at a time
_CUSTOMER_LINK = ("_sync", "links", "customer")


def _fill_customers(
    session: Any, systems: dict[str, tuple[str, int]], customer_by_ref: dict[tuple[str, str], str]
) -> None:
    """Invoices and payments stored before their customer get the customer their systems name:
    the most trusted system's word (its rank), never the first system by name. Only the
    records without a customer are read (once every record has one, none is), a batch of
    records at a time and of each view the customer it links to (after a first sync, most of
    the book may be waiting for its customer: their views read whole held 98 MiB)."""
    for kind in ("invoice", "payment"):
        missing = sorted(state_linking.without_customer(session, kind))
        for start in range(0, len(missing), _FILL_BATCH):
            rows = state_linking.ref_views(
                session, kind, entity_ids=missing[start : start + _FILL_BATCH], fields=[_CUSTOMER_LINK]
            )
            views = _views(rows, kind, systems)
            found: dict[str, str] = {}
            for view in sorted(
                views, key=lambda v: (-v.rank, v.kind != "ledger", v.system, v.object_type, v.remote_id)
            ):
                remote = view.links.get("customer")
                customer = customer_by_ref.get((view.system, str(remote))) if remote else None
                if customer and view.entity_id not in found:
                    found[view.entity_id] = customer
            state_linking.fill_customer_ids(session, kind, found)


@dataclass(frozen=True)
class UnlinkedDeal:
    """A CRM deal no receivable carries: listed, never counted as an open invoice."""

    system: str
    remote_id: str
    name: str | None
    amount: Decimal | None
    currency: str | None
    reason: str


def unlinked_deals(config: Config, store: Store, registry: Registry | None = None) -> list[UnlinkedDeal]:
    """The CRM deals (and CRM invoices) that are not linked to a receivable, each with why it
    did not link, by system and id."""
    check_scope(config, store)
    systems = system_ranks(config, registry)
    with store.session() as session:
        views = linking_views(session, "invoice", systems)
    receivable = {v.entity_id for v in receivable_views(views)}
    matches = match_deals(views)
    out = []
    for view in views:
        if view.kind != "crm" or view.entity_id in receivable:
            continue
        deal = deal_of(view)
        reason = _why_unlinked(view, matches.get(view.entity_id))
        total = (view.data.get("total") or {}).get("amount")
        out.append(
            UnlinkedDeal(
                system=view.system,
                remote_id=view.remote_id,
                name=deal.name,
                amount=Decimal(str(total)) if total not in (None, "") else None,
                currency=view.data.get("currency"),
                reason=reason,
            )
        )
    return sorted(out, key=lambda d: (d.system, d.remote_id))


def _why_unlinked(view: View, match: DealMatch | None) -> str:
    if view.object_type != "deal":
        number = view.data.get("number")
        return f"no receivable has its number {number}" if number else "it has no invoice number"
    if match is None:
        return "not matched"
    if match.target:
        return f"{match.reason}, which another deal or record already holds"
    if "no invoice number" in match.reason and view.links.get("customer"):
        return "no invoice number in its name or number property, and no invoice of its company has its amount and date"
    return match.reason


def _apply(session: Any, kind: str, links: list[Link]) -> list[Link]:
    state_linking.merge_entities(session, kind, [(link.member, link.survivor, link.rule) for link in links])
    audit_many(
        session,
        ACTOR,
        "link",
        [(kind, link.survivor, {"merged": link.member, "rule": link.rule}, link.reason) for link in links],
    )
    return links
