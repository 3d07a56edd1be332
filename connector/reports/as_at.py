"""The book as it stood at the end of a day, pure: what each invoice owed, and what cash and
credit sat unapplied, for the month-end close (`aging --as-at`, customer statements).

What counts on day D (dates are UTC calendar days, as every report prints them):
- an invoice issued after D does not exist yet; one without an issue date always counts;
- a payment the ledger records on an invoice (an allocation of rule `ledger_record`) counts
  from the payment's own date (`received_at`);
- an allocation the connector made (a rule, or finance's match) counts from the later of the
  payment's date and the day it was made (`created_at`): before that day the invoice was open
  and the payment's cash unapplied, so the net owed is the same either way;
- a ledger's `amount_credited` counts from the dates of the credit notes allocated to the
  invoice, oldest first, each for at most what it has applied (total - remaining);
- what a ledger says is paid or credited with no dated record behind it (a payment or credit
  note the connector never read) counts from the invoice's issue date: it is owed to no one,
  and dating it later would invent a balance. `undated` in `InvoiceAt` says how much.
- unapplied cash: each payment received on or before D, what it collected (after refunds,
  as known today) less the allocations that count on D; unapplied credit: the `remaining` of
  credit notes issued on or before D (not draft, not void).
Statuses that are not amounts (void, draft, uncollectible, disputed) are today's: a system
states no history of them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from connector.model import AGING_BUCKETS, Allocation, CreditNote, Customer, Invoice, InvoicePosition, Payment
from connector.model import invoice_position as position_of
from connector.money import Money, money_sum
from connector.reports import AgingTally, amount

Row = dict[str, Any]
SortKey = Literal["name", "total", "oldest"]
SORT_KEYS: tuple[SortKey, ...] = ("name", "total", "oldest")
UNKNOWN_CUSTOMER = "(unknown customer)"
SETTLED_NOTES = ("open", "applied")


@dataclass(frozen=True)
class DatedAllocation:
    """An allocation the connector applied, and when it was made."""

    allocation: Allocation
    created_at: datetime


@dataclass(frozen=True)
class CustomerCredit:
    """A credit note with our customer and the invoices it is allocated to."""

    note: CreditNote
    customer_id: str | None
    invoice_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Book:
    """What the report needs of a company's book: invoices and payments as stored today, the
    allocations the ledger records itself (`recorded`) and those the connector applied
    (`applied`), and the credit notes."""

    invoices: Sequence[Invoice]
    payments: Sequence[Payment]
    recorded: Sequence[Allocation] = ()
    applied: Sequence[DatedAllocation] = ()
    credit_notes: Sequence[CustomerCredit] = ()


@dataclass(frozen=True)
class InvoiceAt:
    """An invoice as it stood: its figures on the day (`invoice`: amount paid and credited as
    they were) and its position then."""

    invoice: Invoice
    allocations: tuple[Allocation, ...]  # the connector's, counted on the day
    position: InvoicePosition
    undated: Money  # paid or credited per the ledger with no dated record: counted from issue


@dataclass
class BookAt:
    """The book at the end of `day`: invoices issued by then, cash and credit unapplied then,
    per (customer id, currency)."""

    day: date
    invoices: list[InvoiceAt] = field(default_factory=list)
    unapplied: dict[tuple[str | None, str], Money] = field(default_factory=dict)
    credit: dict[tuple[str | None, str], Money] = field(default_factory=dict)
    payments: dict[str, Money] = field(default_factory=dict)  # payment id -> unapplied on the day


def _day(moment: datetime) -> date:
    return moment.date()


def _take(parts: Iterable[tuple[date, Money]], cap: Money, day: date) -> tuple[Money, Money]:
    """(counted on `day`, explained at all) of `cap` spread over dated parts, oldest first."""
    counted = explained = Money.zero(cap.currency)
    for when, part in sorted(parts, key=lambda p: p[0]):
        left = cap - explained
        if not left.amount > 0:
            break
        used = part if part <= left else left
        explained += used
        if when <= day:
            counted += used
    return counted, explained


def _invoice_at(
    invoice: Invoice,
    day: date,
    recorded: Sequence[tuple[date, Money]],
    applied: Sequence[DatedAllocation],
    notes: Sequence[CustomerCredit],
    paid_on: Mapping[str, date],
) -> InvoiceAt:
    paid, paid_explained = _take(recorded, invoice.amount_paid, day)
    note_parts = [
        (c.note.issue_date or invoice.issue_date or day, c.note.total - c.note.remaining)
        for c in notes
        if c.note.currency == invoice.currency and c.note.status in SETTLED_NOTES
    ]
    credited, credit_explained = _take(note_parts, invoice.amount_credited, day)
    undated = (invoice.amount_paid - paid_explained) + (invoice.amount_credited - credit_explained)
    paid += invoice.amount_paid - paid_explained
    credited += invoice.amount_credited - credit_explained
    counted = tuple(
        d.allocation for d in applied if max(_day(d.created_at), paid_on.get(d.allocation.payment_id, date.min)) <= day
    )
    then = invoice
    if paid != invoice.amount_paid or credited != invoice.amount_credited:  # else the copy is the invoice
        then = invoice.model_copy(update={"amount_paid": paid, "amount_credited": credited})
    return InvoiceAt(then, counted, position_of(then, day, counted), undated)


def book_at(book: Book, day: date) -> BookAt:
    """The book as it stood at the end of `day` (see the module's docstring for what counts)."""
    paid_on = {p.id: _day(p.received_at) for p in book.payments if p.id}
    out = BookAt(day=day)
    out.invoices = list(invoices_at(book.invoices, day, book.recorded, book.applied, book.credit_notes, paid_on))
    cash_at(out, book.payments, book.recorded, book.applied)
    credit_at(out, book.credit_notes)
    return out


def invoices_at(
    invoices: Iterable[Invoice],
    day: date,
    recorded: Iterable[Allocation],
    applied: Iterable[DatedAllocation],
    credit_notes: Iterable[CustomerCredit],
    paid_on: Mapping[str, date],
) -> Iterator[InvoiceAt]:
    """`InvoiceAt` of each of `invoices` issued by `day`, given (at least) the allocations and
    credit notes on them and the day each of their payments was received (`paid_on`, payment
    id -> day): a report can walk the book a batch of invoices at a time."""
    recorded_on: dict[str, list[tuple[date, Money]]] = defaultdict(list)
    for allocation in recorded:
        when = paid_on.get(allocation.payment_id)
        if when is not None:
            recorded_on[allocation.invoice_id].append((when, allocation.amount))
    applied_on: dict[str, list[DatedAllocation]] = defaultdict(list)
    for dated in applied:
        applied_on[dated.allocation.invoice_id].append(dated)
    notes: dict[str, list[CustomerCredit]] = defaultdict(list)
    for credit in credit_notes:
        for invoice_id in credit.invoice_ids:
            notes[invoice_id].append(credit)
    for invoice in invoices:
        if invoice.issue_date is not None and invoice.issue_date > day:
            continue
        key = invoice.id or ""
        yield _invoice_at(invoice, day, recorded_on[key], applied_on[key], notes[key], paid_on)


def cash_at(
    out: BookAt, payments: Iterable[Payment], recorded: Iterable[Allocation], applied: Iterable[DatedAllocation]
) -> None:
    """Add to `out` the cash of `payments` unapplied at the end of `out.day`, given (at least)
    every allocation of those payments: a batch of payments at a time, if need be."""
    day = out.day
    paid_on = {p.id: _day(p.received_at) for p in payments if p.id}
    counted: dict[str, Money] = {}
    for allocation in recorded:
        counted[allocation.payment_id] = counted.get(allocation.payment_id, Money.zero(allocation.amount.currency))
        counted[allocation.payment_id] += allocation.amount
    for dated in applied:
        allocation = dated.allocation
        if max(_day(dated.created_at), paid_on.get(allocation.payment_id, date.min)) <= day:
            counted[allocation.payment_id] = counted.get(allocation.payment_id, Money.zero(allocation.amount.currency))
            counted[allocation.payment_id] += allocation.amount
    for payment in payments:
        if _day(payment.received_at) > day:
            continue
        currency = payment.amount.currency
        left = payment.collected - counted.get(payment.id or "", Money.zero(currency))
        if left.amount <= 0:
            continue
        out.payments[payment.id or ""] = left
        key = (payment.customer_id, currency)
        out.unapplied[key] = out.unapplied.get(key, Money.zero(currency)) + left


def credit_at(out: BookAt, credit_notes: Iterable[CustomerCredit]) -> None:
    """Add to `out` the credit of `credit_notes` unapplied at the end of `out.day`."""
    for credit in credit_notes:
        note = credit.note
        if note.status not in SETTLED_NOTES or note.remaining.is_zero:
            continue
        if note.issue_date is not None and note.issue_date > out.day:
            continue
        key = (credit.customer_id, note.currency)
        out.credit[key] = out.credit.get(key, Money.zero(note.currency)) + note.remaining


def positions_at(book: Book, day: date) -> dict[str, InvoicePosition]:
    """invoice id -> its position at the end of `day` (invoices issued by then)."""
    return {i.invoice.id: i.position for i in book_at(book, day).invoices if i.invoice.id}


# Aging as at a day ----------------------------------------------------------------------


def aging_at(
    book: Book,
    customers: Mapping[str, Customer],
    day: date,
    *,
    sort: SortKey = "name",
    top: int | None = None,
) -> Row:
    """`aging --json` as it stood at the end of `day`, plus per row and per currency total:
    `unapplied` (cash received, not applied), `credit` (credit notes not applied) and `net`
    (total - unapplied - credit; negative when the customer is owed). Customers with only
    unapplied cash or credit get a row too (buckets zero). `sort` and `top` as `sort_rows`
    and `top_rows`; the totals are always the whole book's."""
    then = book_at(book, day)
    return aging_of(then.invoices, then, customers, sort=sort, top=top)


def aging_of(
    invoices: Iterable[InvoiceAt],
    then: BookAt,
    customers: Mapping[str, Customer],
    *,
    sort: SortKey = "name",
    top: int | None = None,
    tally: AgingTally | None = None,
) -> Row:
    """`aging_at` from the invoices as they stood (`invoices_at`, read a batch at a time if
    need be: only the report's sums are held) and the cash and credit unapplied on the day
    (`then`: `cash_at`, `credit_at`); `tally`, when given, already holds the credit sales of
    the invoices the day leaves owing nothing (`AgingTally.add_sale`), which `invoices` omits."""
    day = then.day
    tally = AgingTally(day) if tally is None else tally
    for invoice in invoices:
        tally.add(invoice.invoice, invoice.allocations, invoice.position)
    report = tally.report(customers)
    by_key = {(r["customer"]["id"], r["currency"]): r for r in report["customers"]}
    for key in sorted(set(then.unapplied) | set(then.credit), key=lambda k: (k[0] or "", k[1])):
        if key not in by_key:
            customer_id, currency = key
            found = customers.get(customer_id or "")
            zero = amount(Money.zero(currency))
            by_key[key] = {
                "customer": {"id": customer_id, "name": found.name if found else UNKNOWN_CUSTOMER},
                "currency": currency,
                **{b: zero for b in AGING_BUCKETS},
                "total": zero,
                "in_collections": zero,
                "invoices": 0,
            }
    rows = list(by_key.values())
    for row in rows:
        key = (row["customer"]["id"], row["currency"])
        _add_net(row, then.unapplied.get(key), then.credit.get(key))
    totals = {r["currency"]: r for r in report["totals"]}
    for row in rows:
        if row["currency"] not in totals:
            zero = amount(Money.zero(row["currency"]))
            totals[row["currency"]] = {
                "currency": row["currency"],
                **{b: zero for b in AGING_BUCKETS},
                "total": zero,
                "in_collections": zero,
                "invoices": 0,
            }
    for currency, total in totals.items():
        _add_net(
            total,
            money_sum((v for (_, c), v in then.unapplied.items() if c == currency), currency),
            money_sum((v for (_, c), v in then.credit.items() if c == currency), currency),
        )
    shown = top_rows(sort_rows(rows, sort), top)
    return {
        **report,
        "as_at": day.isoformat(),
        "sort": sort,
        "top": top,
        "customer_rows": len(rows),
        "customers": shown,
        "totals": [totals[c] for c in sorted(totals)],
    }


def _add_net(row: Row, unapplied: Money | None, credit: Money | None) -> None:
    currency = row["currency"]
    unapplied = unapplied or Money.zero(currency)
    credit = credit or Money.zero(currency)
    row["unapplied"] = amount(unapplied)
    row["credit"] = amount(credit)
    row["net"] = amount(Money.of(row["total"], currency) - unapplied - credit)


def _oldest(row: Row) -> tuple[int, Decimal]:
    """(index of the oldest bucket holding money, its amount): bigger is worse."""
    for index in range(len(AGING_BUCKETS) - 1, -1, -1):
        value = Decimal(row[AGING_BUCKETS[index]])
        if value > 0:
            return index, value
    return -1, Decimal(0)


def sort_rows(rows: Iterable[Row], by: SortKey = "name") -> list[Row]:
    """Aging rows by customer name (then currency), or worst first within each currency:
    `total` by the amount owed, `oldest` by the oldest bucket holding money, then what is in
    it. Amounts of two currencies are never compared: worst-first rows are grouped by currency."""
    if by not in SORT_KEYS:
        raise ValueError(f"unknown sort {by!r} (valid: {', '.join(SORT_KEYS)})")

    def name(r: Row) -> tuple[str, str]:
        return (r["customer"]["name"].lower(), r["customer"]["id"] or "")

    if by == "name":
        return sorted(rows, key=lambda r: (*name(r), r["currency"]))
    if by == "total":
        return sorted(rows, key=lambda r: (r["currency"], -Decimal(r["total"]), *name(r)))
    return sorted(rows, key=lambda r: (r["currency"], *(-v for v in _oldest(r)), -Decimal(r["total"]), *name(r)))


def top_rows(rows: Sequence[Row], top: int | None) -> list[Row]:
    """The first `top` rows of each currency, in the order given (None: all)."""
    if top is None:
        return list(rows)
    if top < 1:
        raise ValueError(f"top must be 1 or more, not {top}")
    seen: dict[str, int] = defaultdict(int)
    out = []
    for row in rows:
        if seen[row["currency"]] < top:
            seen[row["currency"]] += 1
            out.append(row)
    return out
