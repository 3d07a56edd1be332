"""The collections states the providers hold (a deal disputed in the CRM, a promise to pay in
the ledger, a payment plan, a paused company), copied into the finance-owned columns after
linking, unless finance set the column by hand (`connector dispute`, `promise`,
`plan-payments`, `pause`): finance's word wins."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import ValidationError

from connector.config import Config
from connector.connections import system_ranks
from connector.dunning.policy import plan_from_terms
from connector.model import PaymentPlan
from connector.providers.registry import Registry
from connector.state import linking as state_linking
from connector.state import records as state_records
from connector.state.bookkeeping import AuditItem, audit_each, audit_entries
from connector.state.records import InvoiceState, set_finance_owned
from connector.state.store import Store

logger = logging.getLogger(__name__)


# The audit actions by which finance sets a collections state by hand: (kind, column).
FINANCE_SET = {
    "dispute": ("invoice", "disputed"),
    "dispute_cleared": ("invoice", "disputed"),
    "promise": ("invoice", "promise_to_pay"),
    "payment_plan": ("invoice", "payment_plan"),
    "payment_plan_cleared": ("invoice", "payment_plan"),
    "pause": ("customer", "paused"),
    "resume": ("customer", "paused"),
}


PROVIDER_STATE = "provider_state"


def set_by_finance(session: Any) -> set[tuple[str, str, str]]:
    """(kind, record id, column) of every collections state finance set by hand."""
    return {
        (FINANCE_SET[e.action][0], str(e.subject_id), FINANCE_SET[e.action][1])
        for e in audit_entries(session, actions=FINANCE_SET)
        if e.subject_id
    }


@dataclass(frozen=True)
class _Stated:
    value: Any
    system: str
    remote: str  # "deal 9000018"


# Bumped when how the states are read from the views changes: every record is read again.
STATES_RULES = "1"
# Records whose views' hashes (and, when they moved, views) are read at a time: a large book's
# first pass decodes every view, never all at once.
STATES_BATCH = 1000


def apply_provider_states(
    config: Config,
    store: Store,
    registry: Registry | None = None,
    *,
    full: bool = False,
    only: Mapping[str, Collection[str]] | None = None,
) -> int:
    """Copy the collections states the providers hold into the finance-owned columns: an
    invoice disputed in any system is disputed; the promise to pay and the payment plan of
    the most trusted system that states one; a customer paused in any system is paused.
    A column finance set by hand keeps finance's value. Each change is audit-logged with the
    system it came from; returns the number of changes.

    A record's states follow from its views, the systems' ranks and (for a plan in words) an
    invoice's total and due date alone: each record keeps a digest of those (`states_digest`,
    from the views' content hashes, no view read), and only the records whose digest moved are
    read again (`full`: every record). The result is the same as reading every record: a
    column no one but this and finance writes holds what the unchanged inputs gave last time.
    `only`: of these invoices and customers (kind -> ids; a link pass's `moved`), the others'
    inputs known not to have moved."""

    ranks = {name: rank for name, (_, rank) in system_ranks(config, registry).items()}
    salt = json.dumps([STATES_RULES, sorted(ranks.items())])
    changed = 0
    audited: list[AuditItem] = []  # a batch's changes, audited together
    with store.session() as session:
        finance = set_by_finance(session)
        # the receivables' ids, then their states and their views' hashes a batch at a time (the
        # large book's 110,000 states held at once were half of a whole pass's peak)
        invoice_ids = state_records.receivable_ids(session) if only is None else sorted(only.get("invoice", ()))
        for start in range(0, len(invoice_ids), STATES_BATCH):
            part = store.receivable_states(session=session, ids=invoice_ids[start : start + STATES_BATCH])
            ids = [i.id for i in part]
            hashes = state_records.view_hashes(session, "invoice", ids)
            wanted = {i.id: _digest(salt, hashes.get(i.id, []), i.total, i.due_date) for i in part}
            dirty = _moved(state_records.states_digests(session, "invoice", ids), wanted, full)
            invoice_views = _views_of(session, "invoice", dirty, ranks)
            for invoice in part:
                if invoice.id not in dirty:
                    continue
                views = invoice_views.get(invoice.id, [])
                stated = {
                    "disputed": _first(
                        views, lambda data: True if data.get("disputed") is True else None, default=False
                    ),
                    "promise_to_pay": _first(views, lambda data: _date(data.get("promise_to_pay"))),
                    "payment_plan": _first(views, lambda data, invoice=invoice: _stated_plan(data, invoice)),
                }
                current = {
                    "disputed": invoice.disputed,
                    "promise_to_pay": invoice.promise_to_pay,
                    "payment_plan": invoice.payment_plan,
                }
                changed += _apply(
                    session, "invoice", invoice.id, invoice.number or invoice.id, stated, current, finance, audited
                )
            audit_each(session, audited)
            audited.clear()
            state_records.set_states_digests(session, "invoice", {i: wanted[i] for i in dirty})
        asked = None if only is None else sorted(only.get("customer", ()))
        customer_ids = sorted(state_records.states_digests(session, "customer", asked))
        for start in range(0, len(customer_ids), STATES_BATCH):
            ids = customer_ids[start : start + STATES_BATCH]
            hashes = state_records.view_hashes(session, "customer", ids)
            wanted = {c: _digest(salt, hashes.get(c, [])) for c in ids}
            dirty = _moved(state_records.states_digests(session, "customer", ids), wanted, full)
            customer_views = _views_of(session, "customer", dirty, ranks)
            for customer in store.list_customers(session=session, ids=sorted(dirty)) if dirty else []:
                views = customer_views.get(customer.id or "", [])
                stated = {
                    "paused": _first(views, lambda data: True if data.get("paused") is True else None, default=False)
                }
                paused = {"paused": customer.paused}
                changed += _apply(
                    session, "customer", customer.id or "", customer.name, stated, paused, finance, audited
                )
            audit_each(session, audited)
            audited.clear()
            state_records.set_states_digests(session, "customer", {c: wanted[c] for c in dirty})
    return changed


def _digest(salt: str, views: list[tuple[str, str, str, str]], *facts: Any) -> str:
    """What a record's states follow from, as one digest (`STATES_RULES` and the ranks in `salt`)."""
    digest = hashlib.sha256(salt.encode())
    for part in (*("\x1f".join(view) for view in views), *(str(fact) for fact in facts)):
        digest.update(part.encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


def _moved(stored: dict[str, str | None], wanted: dict[str, str], full: bool) -> set[str]:
    """The records (of those `wanted` digests) whose states must be read: every one when
    `full`, else those whose `stored` digest differs."""
    if full:
        return set(wanted)
    return {record_id for record_id, digest in wanted.items() if stored.get(record_id) != digest}


def _views_of(session: Any, kind: str, ids: set[str], ranks: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    """The views of the records `ids` (a batch's), the most trusted system first."""
    if not ids:
        return {}
    rows = state_linking.ref_views(session, kind, entity_ids=sorted(ids))
    return _views_by_entity(rows, ranks)


def _views_by_entity(rows: list[dict[str, Any]], ranks: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    """Each record's views, the most trusted system first."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (-ranks.get(r["system"], 0), r["system"], r["remote_id"])):
        out[row["entity_id"]].append(row)
    return out


def _first(views: list[dict[str, Any]], read: Any, default: Any = None) -> _Stated:
    for view in views:
        value = read(view["data"] or {})
        if value is not None:
            return _Stated(value, view["system"], f"{view['object_type']} {view['remote_id']}")
    return _Stated(default, "", "")


def _date(value: Any) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _stated_plan(data: dict[str, Any], invoice: InvoiceState) -> PaymentPlan | None:
    """A plan a mapping gives whole (`payment_plan`), or in words as a hint ("3 monthly
    instalments", from the first instalment on the invoice's due date over its total)."""
    if data.get("payment_plan"):
        try:
            return PaymentPlan.model_validate(data["payment_plan"])
        except ValidationError:
            return None
    words = ((data.get("_sync") or {}).get("hints") or {}).get("payment_plan")
    if not words or invoice.due_date is None:
        return None
    try:
        return plan_from_terms(str(words), invoice.total, invoice.due_date)
    except ValueError as exc:
        logger.warning("payment plan of %s not read: %s", invoice.number or invoice.id, exc)
        return None


_WORDS: dict[str, Callable[[Any], str]] = {
    "disputed": lambda v: "disputed" if v else "no longer disputed",
    "promise_to_pay": lambda v: f"promised to pay by {v}" if v else "no promise to pay",
    "payment_plan": lambda v: f"on a payment plan of {len(v.instalments)} instalments" if v else "no payment plan",
    "paused": lambda v: "paused (no reminders)" if v else "no longer paused",
}


def _apply(
    session: Any,
    kind: str,
    record_id: str,
    label: str,
    stated: dict[str, _Stated],
    current: dict[str, Any],
    finance: set[tuple[str, str, str]],
    audited: list[AuditItem],
) -> int:
    """Set the columns of the record that `stated` moves (not those finance set by hand); the
    audit entry of each change goes to `audited`, for the caller to write a batch at a time."""
    changes = {}
    for column, said in stated.items():
        if (kind, record_id, column) in finance or said.value == current[column]:
            continue
        changes[column] = said
    if not changes:
        return 0
    values = {
        c: (s.value.model_dump(mode="json") if isinstance(s.value, PaymentPlan) else s.value)
        for c, s in changes.items()
    }
    set_finance_owned(session, kind, [record_id], **values)
    for column, said in changes.items():
        source = f"{said.system} {said.remote}" if said.system else "no system states it any more"
        audited.append(
            (
                said.system or "sync",
                PROVIDER_STATE,
                kind,
                record_id,
                {"field": column, "value": values[column], "system": said.system or None, "from": said.remote or None},
                f"{label}: {_WORDS[column](said.value)}" + (f", as {source} states" if said.system else f": {source}"),
            )
        )
    return len(changes)
