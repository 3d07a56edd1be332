"""The aging report (`aging_report` or `as_at.aging_at`) as table rows for CSV and as one XLSX
sheet per currency, with the report's own per-currency totals as the TOTAL rows."""

from __future__ import annotations

from typing import Any

from connector.exports import Column, ColumnKind, Sheet

Row = dict[str, Any]
NET_COLUMNS = ("unapplied", "credit", "net")


def aging_headers(report: Row) -> list[str]:
    """`row, customer_id, customer, currency, buckets..., total, in_collections, invoices`, then
    `unapplied, credit, net` when the report has them (an as-at report)."""
    extra = list(NET_COLUMNS) if _has_net(report) else []
    return [
        "row",
        "customer_id",
        "customer",
        "currency",
        *report["buckets"],
        "total",
        "in_collections",
        "invoices",
        *extra,
    ]


def aging_rows(report: Row) -> list[list[Any]]:
    """The customers' rows, then one `total` row per currency (customer `TOTAL`)."""
    buckets = list(report["buckets"])
    extra = list(NET_COLUMNS) if _has_net(report) else []

    def cells(kind: str, customer_id: Any, name: str, r: Row) -> list[Any]:
        return [
            kind,
            customer_id,
            name,
            r["currency"],
            *(r[b] for b in buckets),
            r["total"],
            r["in_collections"],
            r["invoices"],
            *(r[c] for c in extra),
        ]

    rows = [cells("customer", r["customer"]["id"], r["customer"]["name"], r) for r in report["customers"]]
    return rows + [cells("total", None, "TOTAL", r) for r in report["totals"]]


def aging_sheets(report: Row, title: str = "Aging") -> list[Sheet]:
    """One sheet per currency of the report (`Aging USD`, ...): a row per customer, then the
    report's TOTAL for that currency; money typed in the currency's decimals."""
    headers = aging_headers(report)[1:]  # no `row` column: the TOTAL line says what it is
    money = {*report["buckets"], "total", "in_collections", *NET_COLUMNS}
    columns = [Column(h, _kind(h, money)) for h in headers]
    rows = aging_rows(report)
    currencies = sorted({r["currency"] for r in report["totals"]} | {r["currency"] for r in report["customers"]})
    return [
        Sheet(f"{title} {currency}", columns, [r[1:] for r in rows if r[3] == currency], currency)
        for currency in currencies
    ] or [Sheet(title, columns, [])]


def _kind(header: str, money: set[str]) -> ColumnKind:
    if header in money:
        return "money"
    return "integer" if header == "invoices" else "text"


def _has_net(report: Row) -> bool:
    return all("net" in r for r in report["totals"]) and bool(report["totals"])
