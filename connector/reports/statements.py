"""Customer statements, pure: what one customer owed at the end of a day and what they paid and
were credited in the period before it, per currency, in the company's name.

A statement is a JSON-ready dict (`statement`); `statement_text` prints it for a terminal or
an email body. HTML and PDF are in `connector.reports.statement_documents`. Open items, aging
and unapplied amounts are the book as it stood at the end of the statement's day
(`connector.reports.as_at`): a payment received after it is neither listed nor counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from connector.model import AGING_BUCKETS, Customer
from connector.money import Money, money_sum
from connector.reports import amount, iso
from connector.reports.as_at import SETTLED_NOTES, Book, BookAt, book_at

Row = dict[str, Any]


def period_start(day: date) -> date:
    """The default start of a statement's period: the first day of the month of `day`."""
    return day.replace(day=1)


def statement(company: str, customer: Customer, book: Book, day: date, start: date | None = None) -> Row:
    """`customer`'s statement at the end of `day` for the period from `start` (default: the
    first of the month) to `day`: per currency the open items, the payments received and the
    credit notes issued in the period, the aging buckets, unapplied cash and credit, and the
    net owed (total - unapplied - credit)."""
    start = start or period_start(day)
    if start > day:
        raise ValueError(f"the period starts {start}, after its end {day}")
    then = book_at(book, day)
    return {
        "company": company,
        "customer": {
            "id": customer.id,
            "name": customer.name,
            "emails": list(customer.emails),
            "billing_contact": customer.billing_contact,
        },
        "as_at": day.isoformat(),
        "period": {"from": start.isoformat(), "to": day.isoformat()},
        "buckets": list(AGING_BUCKETS),
        "currencies": _sections(customer.id, book, then, start, day),
    }


def _sections(customer_id: str | None, book: Book, then: BookAt, start: date, day: date) -> list[Row]:
    open_items: dict[str, list[Row]] = {}
    for item in then.invoices:
        invoice, position = item.invoice, item.position
        if invoice.customer_id != customer_id or position.aging_bucket is None or position.balance.is_zero:
            continue
        open_items.setdefault(invoice.currency, []).append(
            {
                "id": invoice.id,
                "number": invoice.number,
                "issue_date": iso(invoice.issue_date),
                "due_date": iso(invoice.due_date),
                "total": amount(invoice.total),
                "balance": amount(position.balance),
                "days_past_due": position.days_past_due,
                "aging_bucket": position.aging_bucket,
            }
        )
    payments: dict[str, list[Row]] = {}
    for payment in book.payments:
        received = payment.received_at.date()
        if payment.customer_id != customer_id or not start <= received <= day:
            continue
        currency = payment.amount.currency
        payments.setdefault(currency, []).append(
            {
                "id": payment.id,
                "date": received.isoformat(),
                "amount": amount(payment.amount),
                "status": payment.status,
                "method": payment.method,
                "reference": payment.remittance,
                "unapplied": amount(then.payments.get(payment.id or "", Money.zero(currency))),
            }
        )
    credits: dict[str, list[Row]] = {}
    for credit in book.credit_notes:
        note = credit.note
        if credit.customer_id != customer_id or note.status not in SETTLED_NOTES or note.issue_date is None:
            continue
        if start <= note.issue_date <= day:
            credits.setdefault(note.currency, []).append(
                {
                    "number": note.number,
                    "date": note.issue_date.isoformat(),
                    "total": amount(note.total),
                    "remaining": amount(note.remaining),
                }
            )
    currencies = set(open_items) | set(payments) | set(credits)
    currencies |= {c for (who, c) in [*then.unapplied, *then.credit] if who == customer_id}
    sections = []
    for currency in sorted(currencies):
        items = sorted(open_items.get(currency, []), key=lambda r: (r["due_date"] or "", r["number"] or ""))
        buckets = {
            b: amount(money_sum((Money.of(r["balance"], currency) for r in items if r["aging_bucket"] == b), currency))
            for b in AGING_BUCKETS
        }
        total = money_sum((Money.of(r["balance"], currency) for r in items), currency)
        unapplied = then.unapplied.get((customer_id, currency), Money.zero(currency))
        credit_left = then.credit.get((customer_id, currency), Money.zero(currency))
        sections.append(
            {
                "currency": currency,
                "open_items": items,
                "payments": sorted(payments.get(currency, []), key=lambda r: (r["date"], r["id"] or "")),
                "credits": sorted(credits.get(currency, []), key=lambda r: (r["date"], r["number"] or "")),
                "aging": buckets,
                "total": amount(total),
                "unapplied": amount(unapplied),
                "credit": amount(credit_left),
                "net": amount(total - unapplied - credit_left),
            }
        )
    return sections


# Text -----------------------------------------------------------------------------------


def table_lines(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[str] = ()) -> list[str]:
    """Columns sized to their content; the `right` columns right-aligned."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if h in right else v.ljust(w) for v, w, h in zip(values, widths, headers, strict=True)]
        return "  ".join(parts).rstrip()

    return [line(list(headers)), *(line(r) for r in cells)]


OPEN_HEADERS = ("invoice", "issued", "due", "total", "balance", "days past due", "bucket")
PAYMENT_HEADERS = ("received", "amount", "method", "reference", "unapplied")
CREDIT_HEADERS = ("credit note", "date", "total", "remaining")


def open_item_cells(row: Row) -> list[Any]:
    return [
        row["number"] or row["id"],
        row["issue_date"],
        row["due_date"],
        row["total"],
        row["balance"],
        row["days_past_due"],
        row["aging_bucket"],
    ]


def payment_cells(row: Row) -> list[Any]:
    status = "" if row["status"] == "succeeded" else f" ({row['status']})"
    return [row["date"], row["amount"] + status, row["method"], row["reference"], row["unapplied"]]


def credit_cells(row: Row) -> list[Any]:
    return [row["number"], row["date"], row["total"], row["remaining"]]


def statement_text(data: Row) -> str:
    customer = data["customer"]
    lines = [
        f"Statement of account from {data['company']}",
        f"To: {customer['name']}",
        f"Date: {data['as_at']}  (period {data['period']['from']} to {data['period']['to']})",
    ]
    if not data["currencies"]:
        lines += ["", "Nothing owed, paid or credited in the period."]
    for section in data["currencies"]:
        currency = section["currency"]
        lines += ["", f"== {currency} =="]
        lines += ["", "Open items:" if section["open_items"] else "Open items: none"]
        if section["open_items"]:
            lines += table_lines(
                OPEN_HEADERS,
                [open_item_cells(r) for r in section["open_items"]],
                right=("total", "balance", "days past due"),
            )
        lines += ["", "Payments received in the period:" if section["payments"] else "Payments in the period: none"]
        if section["payments"]:
            lines += table_lines(
                PAYMENT_HEADERS, [payment_cells(r) for r in section["payments"]], right=("amount", "unapplied")
            )
        if section["credits"]:
            lines += ["", "Credit notes in the period:"]
            lines += table_lines(
                CREDIT_HEADERS, [credit_cells(r) for r in section["credits"]], right=("total", "remaining")
            )
        lines += [""]
        lines += table_lines(
            [*data["buckets"], "total"],
            [[*(section["aging"][b] for b in data["buckets"]), section["total"]]],
            right=[*data["buckets"], "total"],
        )
        lines += [
            "",
            f"Total owed:        {section['total']} {currency}",
            f"Unapplied cash:    {section['unapplied']} {currency}",
            f"Unapplied credit:  {section['credit']} {currency}",
            f"Net balance:       {section['net']} {currency}",
        ]
    return "\n".join(lines) + "\n"
