"""The aging chart, drawn on the server as inline SVG: one horizontal bar per customer, its
five buckets stacked, worst customer first (the largest balance), one chart per currency.
Pure: an aging report in (`connector.reports.aging_report`), markup out."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from html import escape
from typing import Any

Row = dict[str, Any]

# current -> 90+: from calm to alarming; kept apart for readers with colour blindness by order
# and by the legend, and each segment says its bucket and amount on hover
BUCKET_COLOURS = {
    "current": "#4c9f70",
    "1-30": "#e0c341",
    "31-60": "#f08c3a",
    "61-90": "#d9534f",
    "90+": "#7b1e3a",
}
BAR = 22  # px height of a bar
GAP = 8
LABEL = 210  # px for the customer's name
PLOT = 460  # px for the longest bar
VALUE = 130  # px for the total after the bar
TOP = 15  # customers drawn; the rest are summed in one line


def worst_first(rows: Sequence[Row], currency: str) -> list[Row]:
    """The customers owing in `currency`, the largest balance first (then the oldest)."""
    mine = [r for r in rows if r["currency"] == currency]
    return sorted(mine, key=lambda r: (-Decimal(r["total"]), -Decimal(r["90+"]), r["customer"]["name"].lower()))


def _px(part: Decimal, whole: Decimal) -> Decimal:
    if whole <= 0:
        return Decimal(0)
    return (part / whole * PLOT).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def aging_svg(report: Row, currency: str, link: Any, top: int = TOP) -> str:
    """The chart for one currency; `link(customer_id)` gives the customer page's URL."""
    buckets: list[str] = list(report["buckets"])
    rows = worst_first(report["customers"], currency)
    shown, rest = rows[:top], rows[top:]
    largest = max((Decimal(r["total"]) for r in shown), default=Decimal(0))
    lines = len(shown) + (1 if rest else 0)
    height = 30 + lines * (BAR + GAP)
    width = LABEL + PLOT + VALUE
    title_id = f"aging-{escape(currency)}-title"
    out = [
        f'<svg class="aging-chart" data-currency="{escape(currency)}" role="img" aria-labelledby="{title_id}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{title_id}">Aging in {escape(currency)}, worst customers first</title>',
    ]
    x = LABEL
    for bucket in buckets:  # the legend, on the first line
        out.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{BUCKET_COLOURS[bucket]}"/>')
        out.append(f'<text x="{x + 16}" y="14" class="legend">{escape(bucket)}</text>')
        x += 80
    y = 30
    for row in shown:
        name = row["customer"]["name"]
        shown_name = name if len(name) <= 28 else name[:27] + "…"
        out.append(f'<a href="{escape(link(row["customer"]["id"]))}">')
        out.append(f'<text x="{LABEL - 8}" y="{y + 15}" text-anchor="end" class="name">{escape(shown_name)}</text>')
        out.append("</a>")
        out += _segments(row, buckets, largest, y, name)
        out.append(
            f'<text x="{LABEL + PLOT + 8}" y="{y + 15}" class="value">{escape(row["total"])} {escape(currency)}</text>'
        )
        y += BAR + GAP
    if rest:
        total = sum((Decimal(r["total"]) for r in rest), Decimal(0))
        out.append(
            f'<text x="{LABEL - 8}" y="{y + 15}" text-anchor="end" class="name">and {len(rest)} more</text>'
            f'<text x="{LABEL + PLOT + 8}" y="{y + 15}" class="value">{total} {escape(currency)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _segments(row: Row, buckets: list[str], largest: Decimal, y: int, name: str) -> list[str]:
    out = []
    x = Decimal(LABEL)
    for bucket in buckets:
        value = Decimal(row[bucket])
        if value <= 0:
            continue
        width = _px(value, largest)
        hover = f"{name}: {bucket}: {row[bucket]} {row['currency']}"
        out.append(
            f'<rect x="{x}" y="{y}" width="{max(width, Decimal("0.5"))}" height="{BAR}" '
            f'fill="{BUCKET_COLOURS[bucket]}" data-bucket="{escape(bucket)}"><title>{escape(hover)}</title></rect>'
        )
        x += width
    return out
