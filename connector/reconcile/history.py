"""Loading one company's book for the reports that look back (`aging`, `aging --as-at`, `statement`, the workbench)."""

from __future__ import annotations

from connector.model import Customer
from connector.reconcile.types import LEDGER_RULE
from connector.reports.as_at import Book, CustomerCredit, DatedAllocation
from connector.state import reconciliation as decisions
from connector.state.history import credit_notes
from connector.state.store import Store


def load_book(store: Store) -> Book:
    """Invoices, payments, applied allocations (the ledger's own apart from the connector's,
    with the day each was made) and credit notes of the store's company, in one session."""
    with store.session() as session:
        invoices = store.list_invoices(session=session)
        payments = store.list_payments(session=session)
        applied = decisions.load_allocations(session, status="applied")
        notes = credit_notes(session)
    return Book(
        invoices=invoices,
        payments=payments,
        recorded=[s.allocation for s in applied if s.allocation.rule == LEDGER_RULE],
        applied=[DatedAllocation(s.allocation, s.created_at) for s in applied if s.allocation.rule != LEDGER_RULE],
        credit_notes=[CustomerCredit(n.note, n.customer_id, n.invoice_ids) for n in notes],
    )


def customers_by_id(store: Store) -> dict[str, Customer]:
    return {c.id: c for c in store.list_customers() if c.id}
