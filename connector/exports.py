"""Exports an accountant opens safely: CSV that Excel cannot run, and real XLSX workbooks.

CSV (OWASP's CSV-injection guidance): a text cell beginning with `=`, `+`, `-`, `@`, a tab or
a carriage return is written with a leading `'`, so a spreadsheet shows it as text instead of
running it (`=1+1` is written `'=1+1`, `=HYPERLINK(...)` stays inert). Numbers stay numbers:
ints, Decimals and text that is a plain decimal number (`-12.50`, how every report prints an
amount) are written as they are, so a negative amount is still a number in Excel; only text
cells are neutralised. Dates are ISO; None is an empty cell. `excel=True` starts the file with
a UTF-8 byte-order mark and ends lines with CRLF, which is what Excel on Windows needs to read
accented, CJK and Arabic names right.

XLSX (openpyxl): money as numbers with their currency's decimals in the number format (JPY 0,
USD 2, KWD 3), dates as dates, text always as text (never a formula, whatever it starts with),
one sheet per currency where amounts of several would otherwise share a column
(`sheets_by_currency`), and a TOTAL row per sheet where asked, summed exactly in Decimal.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from connector.money import currency_exponent

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)
BOM = "\ufeff"
SHEET_TITLE_MAX = 31
UNSAFE_TITLE = re.compile(r"[\[\]:*?/\\]")

ColumnKind = Literal["text", "money", "date", "integer"]


def is_number_text(value: str) -> bool:
    """Whether a text cell is a plain decimal number (`12`, `-0.50`), as reports print amounts."""
    return NUMBER_TEXT.fullmatch(value) is not None


def safe_cell(value: Any) -> Any:
    """A value as written to CSV: numbers as they are, text neutralised (see the module)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not is_number_text(text):
        return "'" + text
    return text


def write_csv(out: IO[str], headers: Sequence[str], rows: Iterable[Sequence[Any]], *, excel: bool = False) -> None:
    """Headers and rows as CSV on `out`, every cell through `safe_cell`; `excel` adds the BOM
    and CRLF line ends."""
    if excel:
        out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n" if excel else "\n")
    writer.writerow([safe_cell(h) for h in headers])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])


# XLSX -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    header: str
    kind: ColumnKind = "text"


@dataclass(frozen=True)
class Sheet:
    """One worksheet: its money columns are in `currency` (required when there are any); a
    TOTAL row sums them when `totals` is set."""

    title: str
    columns: Sequence[Column]
    rows: Sequence[Sequence[Any]]
    currency: str | None = None
    totals: bool = False


def money_format(currency: str) -> str:
    """The number format showing a currency's decimals: `#,##0.00` for USD, `#,##0` for JPY."""
    places = currency_exponent(currency)
    body = "#,##0" + ("." + "0" * places if places else "")
    return f"{body};-{body}"


def sheets_by_currency(
    title: str,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Any]],
    currency_index: int,
    *,
    totals: bool = False,
) -> list[Sheet]:
    """One sheet per currency (the value at `currency_index` of each row), titled
    `title CUR`, in currency order; a single sheet (still titled with its currency) when
    there is one currency, and an empty sheet named `title` when there are no rows."""
    by_currency: dict[str, list[Sequence[Any]]] = {}
    for row in rows:
        by_currency.setdefault(str(row[currency_index]), []).append(row)
    if not by_currency:
        return [Sheet(title, columns, [], None, totals=False)]
    return [
        Sheet(f"{title} {currency}", columns, grouped, currency, totals=totals)
        for currency, grouped in sorted(by_currency.items())
    ]


def _title(title: str, used: set[str]) -> str:
    base = UNSAFE_TITLE.sub("_", title).strip("'") or "Sheet"
    base = base[:SHEET_TITLE_MAX]
    name, n = base, 2
    while name.lower() in used:
        suffix = f" ({n})"
        name, n = base[: SHEET_TITLE_MAX - len(suffix)] + suffix, n + 1
    used.add(name.lower())
    return name


def _typed(value: Any, kind: ColumnKind) -> Any:
    if value is None or value == "":
        return None
    if kind == "money":
        return Decimal(str(value))
    if kind == "integer":
        return int(value)
    if kind == "date":
        if isinstance(value, datetime):
            moment = value.astimezone(UTC) if value.tzinfo else value
            return moment.replace(tzinfo=None)
        if isinstance(value, date):
            return value
        text = str(value)
        return (
            datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)
            if "T" in text
            else date.fromisoformat(text)
        )
    return ILLEGAL_CHARACTERS_RE.sub("", str(value))


def write_xlsx(target: str | Path | IO[bytes], sheets: Sequence[Sheet]) -> None:
    """A workbook with one worksheet per `Sheet`: a bold header row, typed cells, frozen header.
    Written in openpyxl's write-only mode: each row goes to the file as it is made, so the
    workbook holds no cell of a sheet already written (a sheet's rows are walked twice: their
    widths, then the cells)."""
    book = Workbook(write_only=True)
    used: set[str] = set()
    for sheet in sheets:
        ws = book.create_sheet(_title(sheet.title, used))
        ws.freeze_panes = "A2"
        for index, column in enumerate(sheet.columns, start=1):
            width = max([len(column.header), *(len(str(r[index - 1] or "")) for r in sheet.rows)], default=8)
            ws.column_dimensions[get_column_letter(index)].width = min(max(width + 2, 8), 60)
        ws.append([_bold(WriteOnlyCell(ws, value=c.header)) for c in sheet.columns])
        money = money_format(sheet.currency) if sheet.currency else None
        sums = [Decimal(0) for _ in sheet.columns]
        for row in sheet.rows:
            ws.append(_row_cells(ws, sheet.columns, row, money))
            for index, (column, value) in enumerate(zip(sheet.columns, row, strict=True)):
                if column.kind == "money" and value not in (None, ""):
                    sums[index] += Decimal(str(value))
        if sheet.totals:
            total_row: list[Any] = ["TOTAL", *([""] * (len(sheet.columns) - 1))]
            for index, column in enumerate(sheet.columns):
                if column.kind == "money":
                    total_row[index] = sums[index]
            columns = [Column(c.header, "text" if i == 0 else c.kind) for i, c in enumerate(sheet.columns)]
            ws.append([_bold(cell) for cell in _row_cells(ws, columns, total_row, money)])
    if not sheets:
        book.create_sheet("Empty")
    book.save(target)


def _bold(cell: Cell) -> Cell:
    cell.font = Font(bold=True)
    return cell


def _row_cells(ws: Any, columns: Sequence[Column], row: Sequence[Any], money: str | None) -> list[Cell]:
    cells = []
    for column, value in zip(columns, row, strict=True):
        typed = _typed(value, column.kind)
        cell = WriteOnlyCell(ws, value=typed)
        cells.append(cell)
        if column.kind == "text" and typed is not None:
            cell.data_type = "s"  # text that starts with `=` is still text, never a formula
        elif column.kind == "money" and typed is not None:
            if money is None:
                raise ValueError(f"column {column.header!r} holds money but the sheet names no currency")
            cell.number_format = money
        elif column.kind == "date" and typed is not None:
            cell.number_format = "yyyy-mm-dd" if type(typed) is date else "yyyy-mm-dd hh:mm:ss"
    return cells
