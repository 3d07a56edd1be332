"""Run the linker over what is stored: customers first (invoices link through them), then
invoices, then payments; every merge is applied and audit-logged in one transaction."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from connector.config import Config
from connector.connections import check_scope, system_ranks
from connector.linking.deals import DealMatch
from connector.linking.rules import (
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
from connector.state.store import Store

ACTOR = "linker"


@dataclass
class LinkReport:
    links: dict[str, list[Link]] = field(default_factory=dict)

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
    """Every stored view of `kind`, reduced to what linking reads, in `ref_views`' order: the
    database extracts those few fields of each view (`each_ref_fields`), so no view is decoded
    whole nor held (a JSON array or object comes as its text and is decoded here); the values
    views repeat are held once (`_Shared`; strings in Python's own table of interned strings,
    whose entries go with the last view holding them)."""
    views = []
    shared = _Shared()
    for system, object_type, remote_id, entity_id, *values in state_linking.each_ref_fields(
        session, kind, _PATHS[kind]
    ):
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
        views.append(
            _reduced(
                system,
                object_type,
                remote_id,
                sys.intern(entity_id),
                data,
                stated if isinstance(stated, dict) else {},
                _NOTHING if customer is None else shared.mapping("customer", customer),
                systems,
            )
        )
    return views


def _decoded(value: Any) -> Any:
    """A JSON array or object the database handed over as its text (PostgreSQL may hand it over
    decoded already); a view holding a plain string there keeps it, as decoding it whole would."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def link_all(config: Config, store: Store, registry: Registry | None = None) -> LinkReport:
    """Link everything stored, whatever order its streams and pages arrived in: the same stored
    views give the same links, so an incremental sync that brings a late contact repairs what
    its invoices could not link to before."""
    check_scope(config, store)
    systems = system_ranks(config, registry)
    report = LinkReport()
    with store.session() as session:
        state_linking.stamp_kinds(session, {name: kind for name, (kind, _) in systems.items()})
        customers = linking_views(session, "customer", systems)
        report.links["customer"] = _apply(session, "customer", link_customers(customers))
        # read again only when a merge moved refs to other customers
        if report.links["customer"]:
            customers = linking_views(session, "customer", systems)
        # what each stored invoice view calls its customer -> that customer's canonical id now
        customer_of = {str(view.data.get("id")): view.entity_id for view in customers}
        customer_by_ref = {(view.system, view.remote_id): view.entity_id for view in customers}
        del customers
        invoices = linking_views(session, "invoice", systems)
        report.links["invoice"] = _apply(session, "invoice", link_invoices(invoices, customer_of, customer_by_ref))
        del invoices
        payments = linking_views(session, "payment", systems)
        report.links["payment"] = _apply(session, "payment", link_payments(payments))
        del payments
        _fill_customers(session, systems, customer_by_ref)
    return report


def _fill_customers(
    session: Any, systems: dict[str, tuple[str, int]], customer_by_ref: dict[tuple[str, str], str]
) -> None:
    """Invoices and payments stored before their customer get the customer their systems name:
    the most trusted system's word (its rank), never the first system by name. Only the
    records without a customer are read (once every record has one, none is)."""
    for kind in ("invoice", "payment"):
        missing = state_linking.without_customer(session, kind)
        if not missing:
            continue
        views = _views(state_linking.ref_views(session, kind, entity_ids=missing), kind, systems)
        found: dict[str, str] = {}
        for view in sorted(views, key=lambda v: (-v.rank, v.kind != "ledger", v.system, v.object_type, v.remote_id)):
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
