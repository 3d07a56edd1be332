"""Finance reports, pure: records in, rows out (the CLI reads the store and prints the rows).

Every row is JSON-ready: amounts are decimal strings at their currency's exponent beside a
`currency`, dates are ISO strings. Amounts of two currencies are never added: aging totals and
DSO are kept per currency. An invoice's balance, status, days past due and aging bucket always
come from `connector.model.invoice_position`, given the applied allocations the ledger does not
hold yet (`connector.reconcile.run.invoice_allocations`).

    invoice_rows / select_invoices     `connector invoices list`
    payment_rows                       `connector payments list`
    match_customers / customer_story   `connector customers show`
    aging_report                       `connector aging` (buckets per customer and currency, DSO)
    drift (connector.reports.drift)    `connector drift`
    explain_story                      `connector explain`
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from connector.model import (
    AGING_BUCKETS,
    Allocation,
    Customer,
    Invoice,
    InvoiceFigures,
    InvoicePosition,
    Payment,
    Ref,
    figures_of,
    invoice_position,
    standing,
)
from connector.money import Money, minor_text, money_sum
from connector.reports.drift import (
    DriftBook,
    Gap,
    View,
    Write,
    drift_lines,
    drift_report,
    gap_is_resolved,
    gap_lines,
    invoice_drift,
    open_gaps,
    payment_drift,
    unsent_writes,
)

INVOICE_STATUSES = ("draft", "open", "partially_paid", "paid", "void", "uncollectible")
STATUS_FILTERS = (*INVOICE_STATUSES, "in_collections", "disputed")
DSO_WINDOW_DAYS = 90
UNKNOWN_CUSTOMER = "(unknown customer)"

Row = dict[str, Any]


def amount(money: Money | None) -> str | None:
    """A money amount as printed everywhere: the decimal at its currency's exponent."""
    return None if money is None else str(money.amount)


def iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def ref_row(ref: Ref) -> Row:
    """`{"system", "type", "id"}` of a ref: the provider's own id."""
    return {"system": ref.system, "type": ref.object_type, "id": ref.remote_id}


def ref_rows(refs: Iterable[Ref]) -> list[Row]:
    """`ref_row` per ref."""
    return ref_id_rows((r.system, r.object_type, r.remote_id) for r in refs)


def ref_id_rows(refs: Iterable[tuple[str, str, str]]) -> list[Row]:
    """`ref_row` of each (system, object type, remote id)."""
    return [{"system": system, "type": kind, "id": remote_id} for system, kind, remote_id in refs]


def systems_of(refs: Iterable[Ref]) -> list[str]:
    return sorted({r.system for r in refs})


def _customer(customer_id: str | None, customers: Mapping[str, Customer]) -> Row:
    found = customers.get(customer_id or "")
    return {"id": customer_id, "name": found.name if found else UNKNOWN_CUSTOMER}


# Invoices -------------------------------------------------------------------------------


def invoice_rows(
    invoices: Iterable[Invoice],
    customers: Mapping[str, Customer],
    allocations: Mapping[str, Sequence[Allocation]],
    as_of: date,
) -> list[Row]:
    """One row per invoice with its position on `as_of`, sorted by customer, due date, number."""
    listed = (
        (figures_of(i), money_sum((a.amount for a in allocations.get(i.id or "", ())), i.currency).to_minor())
        for i in invoices
    )
    return listing_rows(listed, customers, as_of)


def listing_rows(
    listed: Iterable[tuple[InvoiceFigures, int]], customers: Mapping[str, Customer], as_of: date
) -> list[Row]:
    """`invoice_rows` from each invoice's figures and what the allocations it does not count yet
    add to what is settled of it (minor units): the rows of a listing read without building the
    invoices (`state.listing`), sorted as `invoice_rows` sorts them."""
    rows = [listing_row(figures, extra, customers, as_of) for figures, extra in listed]
    rows.sort(key=lambda r: (r["customer"]["name"].lower(), r["due_date"] or "", r["number"] or "", r["id"] or ""))
    return rows


def listing_row(figures: InvoiceFigures, extra: int, customers: Mapping[str, Customer], as_of: date) -> Row:
    """One invoice's row of `invoice_rows` (see `listing_rows`)."""
    currency = figures.currency
    settled = figures.amount_paid + figures.amount_credited + extra
    balance, status, days, bucket = standing(figures.total, settled, figures.status, figures.due_date, as_of)
    customer = customers.get(figures.customer_id or "")
    refs = figures.refs
    return {
        "id": figures.id,
        "number": figures.number,
        "customer": {"id": figures.customer_id, "name": customer.name if customer else UNKNOWN_CUSTOMER},
        "currency": currency,
        "total": minor_text(figures.total, currency),
        "amount_paid": minor_text(figures.amount_paid, currency),
        "amount_credited": minor_text(figures.amount_credited, currency),
        "balance": minor_text(balance, currency),
        "status": status,
        "issue_date": iso(figures.issue_date),
        "due_date": iso(figures.due_date),
        "days_past_due": days,
        "aging_bucket": bucket,
        "disputed": figures.disputed,
        "promise_to_pay": iso(figures.promise_to_pay),
        "in_collections": figures.in_collections,
        "payment_plan": figures.payment_plan,
        "customer_paused": bool(getattr(customer, "paused", False)),
        "systems": sorted({system for system, _, _ in refs}),
        "refs": ref_id_rows(refs),
    }


def is_overdue(row: Row) -> bool:
    return row["days_past_due"] > 0 and Decimal(row["balance"]) > 0


def invoice_selected(row: Row, *, status: str | None = None, overdue: bool = False) -> bool:
    """`status` is a derived status, or the flags `in_collections` / `disputed`."""
    if status in ("in_collections", "disputed"):
        if not row[status]:
            return False
    elif status is not None and row["status"] != status:
        return False
    return not overdue or is_overdue(row)


def select_invoices(rows: Iterable[Row], *, status: str | None = None, overdue: bool = False) -> list[Row]:
    return [row for row in rows if invoice_selected(row, status=status, overdue=overdue)]


# Payments -------------------------------------------------------------------------------


def payment_application(payment: Payment, allocations: Sequence[Allocation]) -> tuple[Money, Money]:
    """(allocated, unapplied): unapplied is what the payment collected that no applied
    allocation uses (never negative, even before a refund's reversal is reconciled)."""
    currency = payment.amount.currency
    allocated = money_sum((a.amount for a in allocations), currency)
    unapplied = payment.collected - allocated
    return allocated, (Money.zero(currency) if unapplied.is_negative else unapplied)


def payment_rows(
    payments: Iterable[Payment],
    customers: Mapping[str, Customer],
    allocations: Mapping[str, Sequence[Allocation]],
) -> list[Row]:
    rows: list[Row] = []
    for payment in payments:
        allocated, unapplied = payment_application(payment, allocations.get(payment.id or "", ()))
        rows.append(
            {
                "id": payment.id,
                "received_at": iso(payment.received_at),
                "amount": amount(payment.amount),
                "currency": payment.amount.currency,
                "method": payment.method,
                "customer": _customer(payment.customer_id, customers),
                "payer": payment.payer,
                "remittance": payment.remittance,
                "status": payment.status,
                "fee": amount(payment.fee),
                "amount_refunded": amount(payment.amount_refunded),
                "allocated": amount(allocated),
                "unapplied": amount(unapplied),
                "systems": systems_of(payment.refs),
                "refs": ref_rows(payment.refs),
            }
        )
    rows.sort(key=lambda r: (r["received_at"] or "", r["id"] or ""))
    return rows


def unmatched(rows: Iterable[Row]) -> list[Row]:
    """Payments with money left to apply: nothing or not everything allocated."""
    return [r for r in rows if Decimal(r["unapplied"]) > 0]


# Customers ------------------------------------------------------------------------------


def match_customers(customers: Iterable[Customer], query: str) -> list[Customer]:
    """By canonical id, by any system's remote id, else by name (case-insensitive substring).
    The first kind of match that finds anything wins."""
    customers = list(customers)
    text = query.strip()
    for matches in (
        lambda c: c.id == text,
        lambda c: any(r.remote_id == text for r in c.refs),
        lambda c: text.lower() in c.name.lower(),
    ):
        found = [c for c in customers if matches(c)]
        if found:
            return sorted(found, key=lambda c: (c.name.lower(), c.id or ""))
    return []


def _per_currency(rows: Iterable[Row], field: str) -> dict[str, str]:
    sums: dict[str, Money] = {}
    for row in rows:
        value = Money.of(row[field], row["currency"])
        sums[row["currency"]] = sums.get(row["currency"], Money.zero(row["currency"])) + value
    return {currency: amount(total) or "0" for currency, total in sorted(sums.items())}


def is_owed(row: Row) -> bool:
    """An invoice row with something owed on it (a customer's open invoices, its balance)."""
    return Decimal(row["balance"]) > 0 and row["aging_bucket"] is not None


class CustomerBalances:
    """Per customer, what `customer_story` says it owes and holds unapplied per currency,
    summed from invoice and payment rows as they pass (`customers list` of a large book)."""

    def __init__(self) -> None:
        self._owed: dict[str | None, dict[str, Money]] = defaultdict(dict)
        self._unapplied: dict[str | None, dict[str, Money]] = defaultdict(dict)

    @staticmethod
    def _add(into: dict[str, Money], row: Row, field: str) -> None:
        currency = row["currency"]
        into[currency] = into.get(currency, Money.zero(currency)) + Money.of(row[field], currency)

    def add_invoice(self, row: Row) -> None:
        if is_owed(row):
            self._add(self._owed[row["customer"]["id"]], row, "balance")

    def add_payment(self, row: Row) -> None:
        self._add(self._unapplied[row["customer"]["id"]], row, "unapplied")

    def balance(self, customer_id: str | None) -> dict[str, str]:
        return {c: amount(v) or "0" for c, v in sorted(self._owed.get(customer_id, {}).items())}

    def unapplied(self, customer_id: str | None) -> dict[str, str]:
        sums = sorted(self._unapplied.get(customer_id, {}).items())
        return {c: amount(v) or "0" for c, v in sums if v.amount > 0}


def customer_story(customer: Customer, invoices: Sequence[Row], payments: Sequence[Row]) -> Row:
    """A customer with its refs, open invoices (balances per currency), payments and the
    credit not applied to any invoice yet (per currency)."""
    open_rows = [r for r in invoices if is_owed(r)]
    return {
        "id": customer.id,
        "name": customer.name,
        "emails": customer.emails,
        "billing_contact": customer.billing_contact,
        "payment_terms_days": customer.payment_terms_days,
        "credit_limit": None
        if customer.credit_limit is None
        else {"amount": amount(customer.credit_limit), "currency": customer.credit_limit.currency},
        "paused": customer.paused,
        "refs": ref_rows(customer.refs),
        "open_invoices": open_rows,
        "balance": _per_currency(open_rows, "balance"),
        "payments": list(payments),
        "unapplied": {c: v for c, v in _per_currency(payments, "unapplied").items() if Decimal(v) > 0},
    }


# Aging and DSO --------------------------------------------------------------------------


class AgingTally:
    """`aging_report`'s sums, an invoice at a time: a report of a large book adds its invoices
    a batch at a time and holds only these sums (per customer and currency, and per currency).

    An invoice counts when it was issued on or before `as_of` (or has no issue date) and
    `invoice_position` says something is owed (open, partially paid or uncollectible).
    DSO = receivables / credit sales of the last 90 days x 90, where receivables are those
    open balances and credit sales the totals of the invoices (not draft, not void) issued in
    the 90 days ending on `as_of`; null when there were no such sales.
    """

    def __init__(self, as_of: date) -> None:
        self.as_of = as_of
        self._window_start = as_of - timedelta(days=DSO_WINDOW_DAYS)
        self._cells: dict[tuple[str | None, str], dict[str, Money]] = {}
        self._counts: dict[tuple[str | None, str], int] = defaultdict(int)
        self._sales: dict[str, Money] = {}

    def add(self, invoice: Invoice, allocations: Sequence[Allocation], position: InvoicePosition | None = None) -> None:
        """One invoice, with the applied allocations the ledger does not hold yet (`position`:
        its position on `as_of` with them, when the caller has it already)."""
        as_of = self.as_of
        if invoice.issue_date is not None and invoice.issue_date > as_of:
            return
        currency = invoice.currency
        self.add_sale(invoice.status, invoice.issue_date, invoice.total)
        if position is None:
            position = invoice_position(invoice, as_of, allocations)
        if position.aging_bucket is None or position.balance.is_zero:
            return
        key = (invoice.customer_id, currency)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = {name: Money.zero(currency) for name in (*AGING_BUCKETS, "in_collections")}
        cell[position.aging_bucket] += position.balance
        if invoice.in_collections:
            cell["in_collections"] += position.balance
        self._counts[key] += 1

    def add_sale(self, status: str, issue_date: date | None, total: Money) -> None:
        """An invoice's part in DSO's credit sales alone: all `add` counts of an invoice that
        owes nothing on `as_of` (a report reads no more of such an invoice); none of one issued
        after it."""
        if self.is_sale(status, issue_date):
            self.add_sales(total)

    def is_sale(self, status: str, issue_date: date | None) -> bool:
        """Whether an invoice of `status` issued on `issue_date` is one of DSO's credit sales."""
        return (
            status not in ("draft", "void") and issue_date is not None and self._window_start < issue_date <= self.as_of
        )

    def add_sales(self, total: Money) -> None:
        """Credit sales (`is_sale`) of `total`, summed by the caller: the invoices a large book
        leaves owing nothing are added a currency at a time, not one Money each."""
        currency = total.currency
        self._sales[currency] = self._sales.get(currency, Money.zero(currency)) + total

    def report(self, customers: Mapping[str, Customer]) -> Row:
        """Open balances per customer and currency in the five buckets, totals and DSO per
        currency, of the invoices added."""
        cells, counts, sales = self._cells, self._counts, self._sales

        def row(cell: dict[str, Money], currency: str, count: int) -> Row:
            total = money_sum((cell[b] for b in AGING_BUCKETS), currency)
            return {
                "currency": currency,
                **{b: amount(cell[b]) for b in AGING_BUCKETS},
                "total": amount(total),
                "in_collections": amount(cell["in_collections"]),
                "invoices": count,
            }

        customer_rows = [
            {"customer": _customer(customer_id, customers), **row(cell, currency, counts[(customer_id, currency)])}
            for (customer_id, currency), cell in cells.items()
        ]
        customer_rows.sort(key=lambda r: (r["customer"]["name"].lower(), r["customer"]["id"] or "", r["currency"]))

        totals: dict[str, dict[str, Money]] = {}
        total_counts: dict[str, int] = defaultdict(int)
        for (customer_id, currency), cell in cells.items():
            into = totals.setdefault(currency, {name: Money.zero(currency) for name in cell})
            for name, value in cell.items():
                into[name] += value
            total_counts[currency] += counts[(customer_id, currency)]
        total_rows = [row(cell, currency, total_counts[currency]) for currency, cell in sorted(totals.items())]

        dso = []
        for currency in sorted(set(totals) | set(sales)):
            owed = totals.get(currency)
            receivables = money_sum((owed[b] for b in AGING_BUCKETS), currency) if owed else Money.zero(currency)
            sold = sales.get(currency, Money.zero(currency))
            days = None
            if not sold.is_zero:
                ratio = receivables.amount / sold.amount * DSO_WINDOW_DAYS
                days = str(ratio.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
            dso.append(
                {
                    "currency": currency,
                    "receivables": amount(receivables),
                    "credit_sales": amount(sold),
                    "window_days": DSO_WINDOW_DAYS,
                    "days": days,
                }
            )
        return {
            "as_of": self.as_of.isoformat(),
            "buckets": list(AGING_BUCKETS),
            "customers": customer_rows,
            "totals": total_rows,
            "dso": dso,
        }


def aging_report(
    invoices: Iterable[Invoice],
    customers: Mapping[str, Customer],
    allocations: Mapping[str, Sequence[Allocation]],
    as_of: date,
) -> Row:
    """Open balances on `as_of` per customer and currency in the five buckets, totals per
    currency, and DSO per currency (`AgingTally`, over every invoice given)."""
    tally = AgingTally(as_of)
    for invoice in invoices:
        tally.add(invoice, allocations.get(invoice.id or "", ()))
    return tally.report(customers)


# Explain --------------------------------------------------------------------------------


def allocation_row(allocation: Allocation, status: str, created_at: datetime | None) -> Row:
    return {
        "id": allocation.id,
        "status": status,
        "payment": allocation.payment_id,
        "invoice": allocation.invoice_id,
        "amount": amount(allocation.amount),
        "currency": allocation.amount.currency,
        "rule": allocation.rule,
        "confidence": str(allocation.confidence),
        "reason": allocation.reason,
        "confirmed_by": allocation.confirmed_by,
        "created_at": iso(created_at),
    }


def proposal_row(proposal: Mapping[str, Any]) -> Row:
    currency = proposal["currency"]
    return {
        "id": proposal["id"],
        "status": proposal.get("status", "open"),
        "payment": proposal["payment_id"],
        "amount": amount(Money.from_minor(int(proposal["amount_minor"]), currency)),
        "currency": currency,
        "decided_by": proposal.get("decided_by"),
        "decided_at": iso(proposal.get("decided_at")),
        "candidates": [
            {
                "rank": rank,
                "invoices": list(c["invoice_ids"]),
                "amounts": list(c["amounts"]),
                "currency": c.get("currency", currency),
                "rule": c["rule"],
                "confidence": str(c["confidence"]),
                "reason": c["reason"],
            }
            for rank, c in enumerate(proposal.get("candidates") or [], start=1)
        ],
    }


def explain_story(
    kind: str,
    record: Row,
    refs: Sequence[Row],
    allocations: Sequence[Row],
    proposals: Sequence[Row],
    audit: Sequence[Row],
    actions: Sequence[Row],
) -> Row:
    """The whole story of one payment or invoice, oldest event first."""
    return {
        "kind": kind,
        "id": record["id"],
        "record": {k: v for k, v in record.items() if k != "refs"},
        "refs": list(refs),
        "allocations": sorted(allocations, key=lambda a: (a["created_at"] or "", a["id"] or "")),
        "proposals": list(proposals),
        "audit": sorted(audit, key=lambda e: (e["at"] or "", e.get("seq") or 0)),
        "actions": list(actions),
    }


__all__ = [
    "DSO_WINDOW_DAYS",
    "AgingTally",
    "CustomerBalances",
    "DriftBook",
    "Gap",
    "INVOICE_STATUSES",
    "Row",
    "STATUS_FILTERS",
    "UNKNOWN_CUSTOMER",
    "View",
    "Write",
    "aging_report",
    "allocation_row",
    "amount",
    "customer_story",
    "drift_lines",
    "drift_report",
    "explain_story",
    "gap_is_resolved",
    "gap_lines",
    "invoice_drift",
    "open_gaps",
    "invoice_rows",
    "invoice_selected",
    "is_overdue",
    "is_owed",
    "iso",
    "match_customers",
    "payment_application",
    "payment_drift",
    "payment_rows",
    "proposal_row",
    "ref_row",
    "ref_id_rows",
    "ref_rows",
    "select_invoices",
    "systems_of",
    "unmatched",
    "unsent_writes",
]
