"""The receivables as a listing shows them, read without building them: each invoice's own row
in minor units and where each system holds it, in one statement a batch (`receivable_figures`),
and what the connector's applied allocations add to what is settled of each
(`applied_not_in_ledger`). `invoices list` and `customers list` read the whole book this way
(`reconcile.history`); the rows they print are those `reports.invoice_rows` makes of the built
invoices (a test holds them equal).

Building an `Invoice` (five Money, a Ref per system's record) for a row that prints a few of its
values was most of a listing's time on a large book; so was reading each invoice's refs as rows
of their own. The database gathers an invoice's refs into one JSON array (decoded in C): one
value a row instead of three rows a row through SQLAlchemy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from connector.errors import CurrencyMismatchError
from connector.model import InvoiceFigures
from connector.state.records import receivables_only
from connector.state.tables import JSONType, ref_order, table
from connector.state.upsert import dialect_name, in_chunks, mine, one_of


def _refs_of_each_invoice(session: Session, invoices: sa.Table) -> sa.ScalarSelect[Any]:
    """(system, object type, remote id) of each ref of the invoice of the outer row, as one JSON
    array: ordered by the database on PostgreSQL (its collation, as `records.refs_for` orders
    them); on SQLite unordered here and sorted in Python (an ORDER BY inside makes SQLite walk
    `uq_refs_remote` over every ref of the company for each invoice, for its order)."""
    refs = table("refs")
    entry = (refs.c.system, refs.c.object_type, refs.c.remote_id)
    if dialect_name(session) == "postgresql":
        gathered = sa.func.json_agg(aggregate_order_by(sa.func.json_build_array(*entry), *ref_order(refs)))
    else:
        gathered = sa.func.json_group_array(sa.func.json_array(*entry))
    return (
        sa.select(sa.type_coerce(gathered, JSONType))
        .where(mine(session, refs), refs.c.entity_kind == "invoice", refs.c.entity_id == invoices.c.id)
        .scalar_subquery()
    )


def receivable_figures(session: Session, ids: Sequence[str], *, with_refs: bool = True) -> list[InvoiceFigures]:
    """The receivables of `ids` (those stored, as `records.list_invoices(receivable=True)`
    selects them), as a listing shows them, by id; without `with_refs`, with none of their refs
    (for sums that name no system)."""
    invoices = table("invoices")
    in_python = dialect_name(session) == "sqlite"
    query = sa.select(
        invoices.c.id,
        invoices.c.number,
        invoices.c.customer_id,
        invoices.c.currency,
        invoices.c.issue_date,
        invoices.c.due_date,
        invoices.c.total_minor,
        invoices.c.amount_paid_minor,
        invoices.c.amount_credited_minor,
        invoices.c.status,
        invoices.c.disputed,
        invoices.c.promise_to_pay,
        invoices.c.in_collections,
        invoices.c.payment_plan,
        _refs_of_each_invoice(session, invoices) if with_refs else sa.null(),
    ).where(mine(session, invoices))
    if (only := receivables_only(session, invoices)) is not None:
        query = query.where(only)
    found: list[InvoiceFigures] = []
    for chunk in in_chunks(session, sorted(ids)):
        rows = session.execute(query.where(one_of(session, invoices.c.id, chunk)).order_by(invoices.c.id))
        for *head, plan, refs in rows:
            held = [(str(system), str(kind), str(remote_id)) for system, kind, remote_id in refs or ()]
            if in_python:
                held.sort()  # SQLite's order of text is its bytes': Python's order of strings
            found.append(InvoiceFigures._make((*head, plan is not None, tuple(held))))
    return found


def applied_not_in_ledger(session: Session, invoices: Sequence[InvoiceFigures], ledger_rule: str) -> dict[str, int]:
    """Per invoice of `invoices`, in its minor units, the sum of the applied allocations on it
    made by a rule other than `ledger_rule` (the ledger's own records, which its `amount_paid`
    holds already): what `model.invoice_position` adds to what is settled of it. An allocation
    in another currency than its invoice's is refused, as `invoice_position` refuses it."""
    allocations = table("allocations")
    currency_of = {i.id: i.currency for i in invoices if i.id}
    query = sa.select(allocations.c.invoice_id, allocations.c.currency, allocations.c.amount_minor).where(
        mine(session, allocations), allocations.c.status == "applied", allocations.c.rule != ledger_rule
    )
    added: dict[str, int] = defaultdict(int)
    for chunk in in_chunks(session, sorted(currency_of)):
        for invoice_id, currency, units in session.execute(
            query.where(one_of(session, allocations.c.invoice_id, chunk))
        ):
            if currency != currency_of[invoice_id]:
                raise CurrencyMismatchError(currency_of[invoice_id], currency, "add")
            added[invoice_id] += units
    return added
