"""Reads for looking back: the audit log filtered as a person asks, credit notes with the
customer and invoices they belong to, and which records the book as it stood at the end of a day
can leave aside (`receivables_on`, `payments_unsettled_on`).

Credit notes have no canonical table: a ledger's credit note is a ref of kind `credit_note`
whose `data` holds the system's record (`CreditNote` as JSON) and, under `_sync`, the links the
mapping found (`links.customer`: the system's customer id; `hints.allocated_invoices`: the
system's ids of the invoices it is allocated to). Here those ids become canonical ones.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from connector.model import CreditNote
from connector.state.bookkeeping import AuditEntry
from connector.state.linking import ref_views
from connector.state.records import existing_entity_ids, receivables_only
from connector.state.scope import company_of
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
    reads as a credit note (a mapping changed since) is left out rather than guessed at. The
    customers and invoices they name are looked up together, a statement per system and kind."""
    read = []
    named: dict[tuple[str, str], set[str]] = defaultdict(set)  # (system, kind) -> remote ids named
    for view in ref_views(session, "credit_note"):
        data = view["data"] if isinstance(view["data"], dict) else json.loads(view["data"])
        sync: dict[str, Any] = data.get("_sync") or {}
        try:
            note = CreditNote.model_validate({k: v for k, v in data.items() if k != "_sync"})
        except ValueError:
            continue
        system = view["system"]
        customer_remote = (sync.get("links") or {}).get("customer")
        customer = str(customer_remote) if customer_remote else None
        invoices_remote = [str(i) for i in (sync.get("hints") or {}).get("allocated_invoices") or []]
        if customer is not None:
            named[(system, "customer")].add(customer)
        named[(system, "invoice")].update(invoices_remote)
        read.append((system, note.model_copy(update={"id": view["entity_id"]}), customer, invoices_remote))
    known = {
        place: existing_entity_ids(session, place[0], place[1], sorted(remote_ids))
        for place, remote_ids in named.items()
        if remote_ids
    }
    out = []
    for system, note, customer, invoices_remote in read:
        customer_id = known[(system, "customer")].get(customer) if customer is not None else None
        invoices = known.get((system, "invoice"), {})
        invoice_ids = tuple(found for r in invoices_remote if (found := invoices.get(r)))
        out.append(StoredCreditNote(system, note, customer_id, invoice_ids))
    return out


# The book at the end of a day: what a report of that day need not read whole ---------------


def _end_of(day: date) -> datetime:
    """The first moment after `day` (UTC calendar days, as the reports date things)."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


class ReceivableOnDay(NamedTuple):
    """A receivable issued by a day (or undated): what a report of that day needs of one the
    book settles by then (its total, status and issue date, for the credit sales of DSO), and
    whether it does (`settled`, see `receivables_on`). A named tuple: a book makes 110,000."""

    id: str
    currency: str
    total_minor: int
    status: str
    issue_date: date | None
    settled: bool


def _applied_per(
    session: Session,
    key: sa.ColumnElement[Any],
    amount: sa.ColumnElement[Any],
    later: sa.ColumnElement[bool],
    source: sa.FromClause,
    name: str,
) -> sa.Subquery:
    """Per `key` (the allocations' invoice or payment), of its applied allocations: `amount`
    summed (`allocated`), their lowest and highest currency, and whether one is `later` (dated
    after the day): one grouped pass over the company's allocations (`source`: the allocations,
    or them joined to what `later` reads)."""
    allocations = table("allocations")
    return (
        sa.select(
            key.label("key"),
            sa.func.sum(amount).label("allocated"),
            sa.func.min(allocations.c.currency).label("lowest"),
            sa.func.max(allocations.c.currency).label("highest"),
            sa.func.max(sa.case((later, 1), else_=0)).label("later"),
        )
        .select_from(source)
        .where(allocations.c.company == company_of(session), allocations.c.status == "applied")
        .group_by(key)
        .subquery(name)
    )


def _one_currency_none_later(per: sa.Subquery, currency: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
    """A record with no applied allocation (`per` has no row), or whose every one is in
    `currency` and none dated after the day."""
    return sa.or_(
        per.c.key.is_(None),
        sa.and_(per.c.lowest == currency, per.c.highest == currency, per.c.later == 0),
    )


def receivables_on(session: Session, day: date, ledger_rule: str, *, dated: bool = True) -> list[ReceivableOnDay]:
    """Every receivable issued on or before `day` or undated, by id, `settled` when its own
    figures leave nothing owed at the end of `day` whichever way the day's position counts
    them: its amount paid and credited and the connector's applied allocations on it (a rule
    other than `ledger_rule`) reach its total, each of those allocations is in its currency,
    and none of them nor the ledger's records on it (`ledger_rule`) is dated after the day
    (made after it, or of a payment received after it). A sieve: an invoice owing on the day
    is never `settled`. What the invoice's row does not hold is the caller's to weigh (credit
    notes dated on it, a ledger payment whose money left). Not `dated`: every receivable, by
    today's figures (every allocation counted whatever its date, whenever it was issued), for
    today's balances (`customers list`) and those aged on `day` (`aging --as-of`)."""
    invoices, allocations, payments = table("invoices"), table("allocations"), table("payments")
    end = _end_of(day)
    connectors = allocations.c.rule != ledger_rule
    on_invoice = _applied_per(
        session,
        allocations.c.invoice_id,
        sa.case((connectors, allocations.c.amount_minor), else_=0),  # the connector's only
        sa.or_(sa.and_(connectors, allocations.c.created_at >= end), payments.c.received_at >= end)
        if dated
        else sa.false(),
        allocations.outerjoin(
            payments, sa.and_(payments.c.company == allocations.c.company, payments.c.id == allocations.c.payment_id)
        ),
        "on_invoice",
    )
    allocated = sa.func.coalesce(on_invoice.c.allocated, 0)
    settled = sa.and_(
        invoices.c.total_minor <= invoices.c.amount_paid_minor + invoices.c.amount_credited_minor + allocated,
        _one_currency_none_later(on_invoice, invoices.c.currency),
    )
    query = (
        sa.select(
            invoices.c.id,
            invoices.c.currency,
            invoices.c.total_minor,
            invoices.c.status,
            invoices.c.issue_date,
            sa.case((settled, 1), else_=0),
        )
        .select_from(invoices.outerjoin(on_invoice, on_invoice.c.key == invoices.c.id))
        .where(mine(session, invoices))
    )
    if dated:
        query = query.where(sa.or_(invoices.c.issue_date.is_(None), invoices.c.issue_date <= day))
    if (only := receivables_only(session, invoices)) is not None:
        query = query.where(only)
    rows = [
        ReceivableOnDay(str(id_), str(currency), int(total), str(status), issued, bool(flag))
        for id_, currency, total, status, issued, flag in session.execute(query)
    ]
    rows.sort(key=lambda r: r.id)  # in Python: SQLite would walk the book's primary key to order them
    return rows


def payments_unsettled_on(session: Session, day: date, ledger_rule: str, *, dated: bool = True) -> list[str]:
    """Ids of the payments `_unsettled_payments` keeps, by id."""
    return sorted(payment_id for payment_id, _ in _unsettled_payments(session, day, ledger_rule, dated=dated))


def unsettled_payments_by_customer(session: Session, ledger_rule: str) -> dict[str, list[str]]:
    """Customer id -> its payments whose cash may still be unapplied today (`payments_unsettled_on`
    undated), by id; payments of no customer left out."""
    found: dict[str, list[str]] = {}
    for payment_id, customer_id in sorted(_unsettled_payments(session, date.today(), ledger_rule, dated=False)):
        if customer_id is not None:
            found.setdefault(customer_id, []).append(payment_id)
    return found


def _unsettled_payments(session: Session, day: date, ledger_rule: str, *, dated: bool) -> list[tuple[str, str | None]]:
    """(id, customer id) of the payments received on or before `day` whose cash may still be unapplied at its
    end: every one but those whose applied allocations, each in the payment's currency
    and none of the connector's made after the day (`ledger_rule` names the ledger's own
    records, which count from the payment's own date), add up to at least its amount, when
    nothing lets it collect more than its amount (an amount, refund or dispute below zero). A
    sieve: a payment with cash unapplied on the day is always kept. Not `dated`: every payment,
    by today's figures (every allocation counted whatever its date, whenever it was received)."""
    payments, allocations = table("payments"), table("allocations")
    end = _end_of(day)
    of_payment = _applied_per(
        session,
        allocations.c.payment_id,
        allocations.c.amount_minor,
        sa.and_(allocations.c.rule != ledger_rule, allocations.c.created_at >= end) if dated else sa.false(),
        allocations,
        "of_payment",
    )
    settled = sa.and_(
        payments.c.amount_minor >= 0,
        sa.func.coalesce(payments.c.amount_refunded_minor, 0) >= 0,
        sa.func.coalesce(payments.c.amount_disputed_minor, 0) >= 0,
        payments.c.amount_minor <= sa.func.coalesce(of_payment.c.allocated, 0),
        _one_currency_none_later(of_payment, payments.c.currency),
    )
    query = (
        sa.select(payments.c.id, payments.c.customer_id)
        .select_from(payments.outerjoin(of_payment, of_payment.c.key == payments.c.id))
        .where(mine(session, payments), sa.not_(settled))
    )
    if dated:
        query = query.where(payments.c.received_at < end)
    return [(str(payment_id), customer_id) for payment_id, customer_id in session.execute(query)]
