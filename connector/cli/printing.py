"""How the CLI prints what it read: a table sized to its content, a JSON document, an
invoice's flags. Shared by the report commands without the export libraries (XLSX) some of
them need, so a command that only prints (`explain`) does not import those."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import click

Row = dict[str, Any]


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[str] = ()) -> None:
    """Columns sized to their content; the `right` columns (amounts, counts) right-aligned.
    `rows` is walked twice (widths, then lines): a list, or a spool's rows (`RowSpool.map`)."""

    def cells(row: Sequence[Any]) -> list[str]:
        return [("" if v is None else str(v)) for v in row]

    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, cells(row), strict=True)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if h in right else v.ljust(w) for v, w, h in zip(values, widths, headers, strict=True)]
        return "  ".join(parts).rstrip()

    click.echo(line(list(headers)))
    for row in rows:
        click.echo(line(cells(row)))


def invoice_flags(row: Row) -> str:
    """The flags of an invoice row that dunning and finance act on, comma-separated."""
    flags = []
    if row.get("disputed"):
        flags.append("disputed")
    if row.get("promise_to_pay"):
        flags.append(f"promise {row['promise_to_pay']}")
    if row.get("in_collections"):
        flags.append("in_collections")
    if row.get("payment_plan"):
        flags.append("payment_plan")
    if row.get("customer_paused"):
        flags.append("customer_paused")
    return ",".join(flags)
