"""Loading one company's book for the reports: the dated book behind `aging`, `aging --as-at`
and `statement`, the holdings behind `drift`, and the invoice list a batch at a time; the CLI
and the workbench read them here."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from connector import reports
from connector.config import Config
from connector.connections import system_ranks
from connector.model import Customer
from connector.reconcile.run import invoice_allocations, ledger_withdrawn, less_withdrawn, without_withdrawn
from connector.reconcile.types import LEDGER_RULE
from connector.reports.as_at import Book, CustomerCredit, DatedAllocation
from connector.state import outbox
from connector.state import reconciliation as decisions
from connector.state.bookkeeping import audit_entries
from connector.state.history import credit_notes
from connector.state.linking import ref_views
from connector.state.records import dangling_refs
from connector.state.store import Store

Row = dict[str, Any]


def load_book(store: Store) -> Book:
    """Invoices, payments, applied allocations (the ledger's own apart from the connector's,
    with the day each was made) and credit notes of the store's company, in one session."""
    with store.session() as session:
        invoices = store.list_receivables(session=session)
        payments = store.list_payments(session=session)
        applied = decisions.load_allocations(session, status="applied")
        notes = credit_notes(session)
    return Book(
        invoices=without_withdrawn(store, invoices),
        payments=payments,
        recorded=[s.allocation for s in applied if s.allocation.rule == LEDGER_RULE],
        applied=[DatedAllocation(s.allocation, s.created_at) for s in applied if s.allocation.rule != LEDGER_RULE],
        credit_notes=[CustomerCredit(n.note, n.customer_id, n.invoice_ids) for n in notes],
    )


# Invoices a batch at a time: the list's memory is a batch's, whatever the book's size.
LISTING_BATCH = 1000


def invoice_listing(
    store: Store,
    customers: Mapping[str, Customer],
    day: date,
    *,
    customer_ids: Collection[str] | None = None,
    batch: int = LISTING_BATCH,
) -> Iterator[Row]:
    """`reports.invoice_rows` of every receivable (of `customer_ids`, when given), in the same
    order and with the same figures, read `batch` invoices at a time: the book's order comes
    from four columns a receivable (`Store.receivable_keys`) and the withdrawn payments' figures
    from the few payments whose money left (`ledger_withdrawn`), then each batch is read with
    its own neighbourhood only (refs and applied allocations; a row shows no lines), never the
    whole book."""
    keys = store.receivable_keys(customer_ids=None if customer_ids is None else sorted(customer_ids))

    def name(customer_id: str | None) -> str:
        found = customers.get(customer_id or "")
        return (found.name if found else reports.UNKNOWN_CUSTOMER).lower()

    keys.sort(key=lambda k: (name(k.customer_id), k.due_date.isoformat() if k.due_date else "", k.number or "", k.id))
    withdrawn = ledger_withdrawn(store)  # a few invoices' figures, read once
    for start in range(0, len(keys), batch):
        invoices = store.list_receivables(ids=[k.id for k in keys[start : start + batch]], with_lines=False)
        invoices = less_withdrawn(invoices, withdrawn)
        allocations = invoice_allocations(store, invoices, neighbourhood=True)
        yield from reports.invoice_rows(invoices, customers, allocations, day)


def customers_by_id(store: Store) -> dict[str, Customer]:
    return {c.id: c for c in store.list_customers() if c.id}


def _dangling_refs(session: Any) -> list[Row]:
    out = []
    for ref in dangling_refs(session):
        kind, entity_id = ref["entity_kind"], ref["entity_id"]
        out.append(
            {
                "system": ref["system"],
                "type": ref["object_type"],
                "id": ref["remote_id"],
                "entity_kind": kind,
                "entity_id": entity_id,
                "problem": "not linked to any record" if entity_id is None else f"{kind} {entity_id} is missing",
            }
        )
    return out


def drift_of(config: Config, store: Store, day: date) -> Row:
    """`connector drift --json` of the store's company on `day`: what each system holds against
    what it should hold after the writes done (`connector.reports.drift`), the open gaps and the
    dangling refs. The CLI and the workbench both read it here."""
    kinds = {name: kind for name, (kind, _) in system_ranks(config).items()}
    with store.session() as session:
        invoices = {i.id: i for i in store.list_receivables(session=session) if i.id}
        payments = {p.id: p for p in store.list_payments(session=session) if p.id}
        applied = decisions.load_allocations(session, status="applied")
        invoice_rows, payment_rows = ref_views(session, "invoice"), ref_views(session, "payment")
        writes = [_write(e) for e in outbox.entries(session)]
        gaps = [
            reports.Gap(e.at, e.subject_type, e.subject_id, e.inputs or {}, e.decision or "")
            for e in audit_entries(session, actions={"gap"})
        ]
        invoice_views = [_view(row, kinds) for row in invoice_rows]
        payment_views = [_view(row, kinds) for row in payment_rows]
        book = reports.DriftBook(
            invoices=invoices,
            payments=payments,
            pending=[s.allocation for s in applied if s.allocation.rule != LEDGER_RULE],
            invoice_views=invoice_views,
            payment_views=payment_views,
            writes=writes,
            gaps=gaps,
            as_of=day,
        )
        lines = reports.drift_lines(book)
        _fill_since(lines, [*invoice_views, *payment_views])
        dangling = _dangling_refs(session)
    return reports.drift_report(lines, dangling)


def _write(entry: outbox.OutboxEntry) -> reports.Write:
    target = entry.action.target
    return reports.Write(
        id=entry.id,
        connection=entry.action.connection,
        kind=entry.action.kind,
        target=None if target is None else (target.system, target.object_type, target.remote_id),
        payload=entry.action.payload,
        state=entry.action.state,
        at=entry.updated_at,
        summary=entry.summary,
        subject_type=entry.subject_type,
        subject_id=entry.subject_id,
    )


def _view(row: Row, kinds: dict[str, str]) -> reports.View:
    return reports.View(
        system=row["system"],
        kind=kinds.get(row["system"], ""),
        object_type=row["object_type"],
        remote_id=row["remote_id"],
        entity_id=row["entity_id"],
        data=row["data"],
        seen_at=row["seen_at"],
    )


def _fill_since(lines: list[Row], views: Sequence[reports.View]) -> None:
    """A record's line without a moment gets the record's last sync (in that line's system)."""
    seen: dict[tuple[str, str], list[tuple[str, datetime]]] = defaultdict(list)
    for view in views:
        if view.seen_at is not None:
            kind = "payment" if view.object_type in ("payment", "payment_intent") else "invoice"
            seen[(kind, view.entity_id)].append((view.system, view.seen_at))
    for line in lines:
        if line["since"] is not None or line["kind"] not in ("invoice", "payment") or not line["id"]:
            continue
        moments = [at for system, at in seen.get((line["kind"], line["id"]), []) if line["system"] in (None, system)]
        line["since"] = reports.iso(max(moments)) if moments else None
