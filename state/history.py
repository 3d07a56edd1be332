"""Reads for looking back: the audit log filtered as a person asks, and credit notes with the
customer and invoices they belong to.

Credit notes have no canonical table: a ledger's credit note is a ref of kind `credit_note`
whose `data` holds the system's record (`CreditNote` as JSON) and, under `_sync`, the links the
mapping found (`links.customer`: the system's customer id; `hints.allocated_invoices`: the
system's ids of the invoices it is allocated to). Here those ids become canonical ones.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from connector.model import CreditNote
from connector.state.bookkeeping import AuditEntry
from connector.state.linking import ref_views
from connector.state.records import existing_entity_ids
from connector.state.tables import table
from connector.state.upsert import mine


def audit_log(
    session: Session,
    *,
    actor: str | None = None,
    since: datetime | None = None,
    actions: Collection[str] | None = None,
) -> list[AuditEntry]:
    """The company's audit entries in the order written, by `actor` (case-insensitive), at or
    after `since`, recording one of `actions`, where given."""
    log = table("audit_log")
    query = sa.select(log).where(mine(session, log)).order_by(log.c.id)
    if actor is not None:
        query = query.where(sa.func.lower(log.c.actor) == actor.lower())
    if since is not None:
        query = query.where(log.c.at >= since)
    if actions is not None:
        query = query.where(log.c.action.in_(list(actions)))
    return [
        AuditEntry(
            id=row["id"],
            at=row["at"],
            actor=row["actor"],
            action=row["action"],
            subject_type=row["subject_type"],
            subject_id=row["subject_id"],
            inputs=row["inputs"],
            decision=row["decision"],
        )
        for row in session.execute(query).mappings()
    ]


def audit_actions(session: Session) -> list[str]:
    """Every action the company's audit log records, sorted (for a helpful usage error)."""
    log = table("audit_log")
    query = sa.select(log.c.action).where(mine(session, log)).distinct()
    return sorted(row[0] for row in session.execute(query))


@dataclass(frozen=True)
class StoredCreditNote:
    """One system's credit note, with our customer and invoice ids where they are known."""

    system: str
    note: CreditNote
    customer_id: str | None
    invoice_ids: tuple[str, ...]


def credit_notes(session: Session) -> list[StoredCreditNote]:
    """Every credit note some system holds, by system and remote id. A view that no longer
    reads as a credit note (a mapping changed since) is left out rather than guessed at."""
    out = []
    for view in ref_views(session, "credit_note"):
        data = view["data"] if isinstance(view["data"], dict) else json.loads(view["data"])
        sync: dict[str, Any] = data.get("_sync") or {}
        try:
            note = CreditNote.model_validate({k: v for k, v in data.items() if k != "_sync"})
        except ValueError:
            continue
        system = view["system"]
        customer_remote = (sync.get("links") or {}).get("customer")
        customer_id = None
        if customer_remote:
            customer_id = existing_entity_ids(session, system, "customer", [str(customer_remote)]).get(
                str(customer_remote)
            )
        invoices_remote = [str(i) for i in (sync.get("hints") or {}).get("allocated_invoices") or []]
        known = existing_entity_ids(session, system, "invoice", invoices_remote) if invoices_remote else {}
        invoice_ids = tuple(found for r in invoices_remote if (found := known.get(r)))
        out.append(
            StoredCreditNote(system, note.model_copy(update={"id": view["entity_id"]}), customer_id, invoice_ids)
        )
    return out
