"""Run the linker over what is stored: customers first (invoices link through them), then
invoices, then payments; every merge is applied and audit-logged in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.config import Config
from connector.connections import check_scope, system_ranks
from connector.linking.rules import Link, View, link_customers, link_invoices, link_payments
from connector.providers.registry import Registry
from connector.state import linking as state_linking
from connector.state.bookkeeping import audit
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


def _views(rows: list[dict[str, Any]], systems: dict[str, tuple[str, int]]) -> list[View]:
    views = []
    for row in rows:
        kind, rank = systems.get(row["system"], ("unknown", 0))
        data = dict(row["data"])
        sync = data.pop("_sync", None) or {}
        views.append(
            View(
                system=row["system"],
                kind=kind,
                object_type=row["object_type"],
                remote_id=row["remote_id"],
                entity_id=row["entity_id"],
                rank=rank,
                data=data,
                hints=sync.get("hints") or {},
                links=sync.get("links") or {},
            )
        )
    return views


def link_all(config: Config, store: Store, registry: Registry | None = None) -> LinkReport:
    check_scope(config, store)
    systems = system_ranks(config, registry)
    report = LinkReport()
    with store.session() as session:
        customers = _views(state_linking.ref_views(session, "customer"), systems)
        report.links["customer"] = _apply(session, "customer", link_customers(customers))
        # what each stored invoice view calls its customer -> that customer's canonical id now
        customer_of = {
            str(row["data"].get("id")): row["entity_id"] for row in state_linking.ref_views(session, "customer")
        }
        invoices = _views(state_linking.ref_views(session, "invoice"), systems)
        report.links["invoice"] = _apply(session, "invoice", link_invoices(invoices, customer_of))
        payments = _views(state_linking.ref_views(session, "payment"), systems)
        report.links["payment"] = _apply(session, "payment", link_payments(payments))
        _fill_customers(session)
    return report


def _fill_customers(session: Any) -> None:
    """Invoices and payments stored before their customer get the customer their system names."""
    customers = {
        (row["system"], row["remote_id"]): row["entity_id"] for row in state_linking.ref_views(session, "customer")
    }
    for kind in ("invoice", "payment"):
        found: dict[str, str] = {}
        for row in state_linking.ref_views(session, kind):
            remote = ((row["data"].get("_sync") or {}).get("links") or {}).get("customer")
            customer = customers.get((row["system"], str(remote))) if remote else None
            if customer and row["entity_id"] not in found:
                found[row["entity_id"]] = customer
        state_linking.fill_customer_ids(session, kind, found)


def _apply(session: Any, kind: str, links: list[Link]) -> list[Link]:
    state_linking.merge_entities(session, kind, [(link.member, link.survivor, link.rule) for link in links])
    for link in links:
        audit(session, ACTOR, "link", kind, link.survivor, {"merged": link.member, "rule": link.rule}, link.reason)
    return links
