"""A customer statement as a document: HTML (self-contained, every text escaped: a customer's
name, a payer's reference are theirs to choose) and PDF (fpdf2).

The PDF is set in DejaVu Sans when the system has it (Debian's fonts-dejavu-core), which covers
accented, Greek, Cyrillic and Arabic letters; without it, in the PDF core font Helvetica, where
a character outside Latin-1 prints as `?` rather than failing the statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import IO, Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from connector.reports.statements import (
    CREDIT_HEADERS,
    OPEN_HEADERS,
    PAYMENT_HEADERS,
    credit_cells,
    open_item_cells,
    payment_cells,
)

Row = dict[str, Any]
UNICODE_FONTS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
)

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border-bottom: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.summary td { border: none; }
"""


def _cell(value: Any, numeric: bool) -> str:
    text = "" if value is None else escape(str(value))
    return f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[str]) -> str:
    head = "".join(f'<th class="num">{escape(h)}</th>' if h in right else f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(_cell(v, h in right) for h, v in zip(headers, row, strict=True)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def statement_html(data: Row) -> str:
    """The statement as one HTML page, no resource from anywhere else."""
    customer = data["customer"]
    title = f"Statement of account: {customer['name']}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Statement of account from {escape(data['company'])}</h1>",
        f"<p>To: <strong>{escape(customer['name'])}</strong><br>",
        f"Date: {escape(data['as_at'])} (period {escape(data['period']['from'])} to {escape(data['period']['to'])})"
        "</p>",
    ]
    if not data["currencies"]:
        parts.append("<p>Nothing owed, paid or credited in the period.</p>")
    for section in data["currencies"]:
        currency = escape(section["currency"])
        parts.append(f"<h2>{currency}</h2>")
        parts.append("<h3>Open items</h3>")
        parts.append(
            _table(
                OPEN_HEADERS, [open_item_cells(r) for r in section["open_items"]], ("total", "balance", "days past due")
            )
            if section["open_items"]
            else "<p>None.</p>"
        )
        parts.append("<h3>Payments received in the period</h3>")
        parts.append(
            _table(PAYMENT_HEADERS, [payment_cells(r) for r in section["payments"]], ("amount", "unapplied"))
            if section["payments"]
            else "<p>None.</p>"
        )
        if section["credits"]:
            parts.append("<h3>Credit notes in the period</h3>")
            parts.append(_table(CREDIT_HEADERS, [credit_cells(r) for r in section["credits"]], ("total", "remaining")))
        parts.append("<h3>Aging</h3>")
        buckets = [*data["buckets"], "total"]
        parts.append(_table(buckets, [[*(section["aging"][b] for b in data["buckets"]), section["total"]]], buckets))
        summary = [
            ("Total owed", section["total"]),
            ("Unapplied cash", section["unapplied"]),
            ("Unapplied credit", section["credit"]),
            ("Net balance", section["net"]),
        ]
        rows = "".join(
            f'<tr><td>{label}</td><td class="num">{escape(value)} {currency}</td></tr>' for label, value in summary
        )
        parts.append(f'<table class="summary">{rows}</table>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# PDF ------------------------------------------------------------------------------------


class _Statement(FPDF):
    def __init__(self) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.set_auto_page_break(auto=True, margin=15)
        self.unicode = False
        for path in UNICODE_FONTS:
            if path.is_file():
                self.add_font("body", "", str(path))
                self.unicode = True
                break
        self.family = "body" if self.unicode else "helvetica"

    def text_of(self, value: Any) -> str:
        text = "" if value is None else str(value)
        return text if self.unicode else text.encode("latin-1", "replace").decode("latin-1")

    def line_of(self, text: str, size: float = 10, height: float = 6) -> None:
        self.set_font(self.family, size=size)
        self.multi_cell(0, height, self.text_of(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def grid(self, headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[str]) -> None:
        self.set_font(self.family, size=8)
        align = ["RIGHT" if h in right else "LEFT" for h in headers]
        headings = FontFace(emphasis="NONE", fill_color=(235, 235, 235))
        with self.table(text_align=align, headings_style=headings, line_height=5) as table:
            for row in [list(headers), *rows]:
                cells = table.row()
                for value in row:
                    cells.cell(self.text_of(value))
        self.ln(2)


def write_statement_pdf(data: Row, target: str | Path | IO[bytes]) -> None:
    """The statement as a PDF file (or into a binary stream)."""
    pdf = _Statement()
    customer = data["customer"]
    pdf.set_title(pdf.text_of(f"Statement of account: {customer['name']}"))
    pdf.set_author(pdf.text_of(data["company"]))
    pdf.add_page()
    pdf.line_of(f"Statement of account from {data['company']}", size=14, height=8)
    pdf.line_of(f"To: {customer['name']}")
    pdf.line_of(f"Date: {data['as_at']} (period {data['period']['from']} to {data['period']['to']})")
    if not data["currencies"]:
        pdf.line_of("Nothing owed, paid or credited in the period.")
    for section in data["currencies"]:
        currency = section["currency"]
        pdf.ln(3)
        pdf.line_of(currency, size=12, height=7)
        pdf.line_of("Open items:" if section["open_items"] else "Open items: none")
        if section["open_items"]:
            pdf.grid(
                OPEN_HEADERS, [open_item_cells(r) for r in section["open_items"]], ("total", "balance", "days past due")
            )
        pdf.line_of("Payments received in the period:" if section["payments"] else "Payments in the period: none")
        if section["payments"]:
            pdf.grid(PAYMENT_HEADERS, [payment_cells(r) for r in section["payments"]], ("amount", "unapplied"))
        if section["credits"]:
            pdf.line_of("Credit notes in the period:")
            pdf.grid(CREDIT_HEADERS, [credit_cells(r) for r in section["credits"]], ("total", "remaining"))
        buckets = [*data["buckets"], "total"]
        pdf.grid(buckets, [[*(section["aging"][b] for b in data["buckets"]), section["total"]]], buckets)
        for label, value in (
            ("Total owed", section["total"]),
            ("Unapplied cash", section["unapplied"]),
            ("Unapplied credit", section["credit"]),
            ("Net balance", section["net"]),
        ):
            pdf.line_of(f"{label}: {value} {currency}")
    if isinstance(target, (str, Path)):
        pdf.output(str(target))
    else:
        target.write(bytes(pdf.output()))
