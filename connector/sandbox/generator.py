"""Seeded, labelled AR books for the sandbox: `generate(seed, size)`.

    scenario = generate(7, "small")
    scenario.data["xero"]["Invoices"][0]["InvoiceNumber"]     # "INV-0001"
    scenario.truth["payments"][0]["allocations"]              # which invoices, how much
    scenario.write("book.json", "truth.json")

`data` is the sandbox data file: every object in its provider's own API shape (see
docs/scenarios.md). Xero amounts are `Decimal` in memory and exact JSON numbers on disk (use
`dumps`, not `json.dumps`); Stripe amounts are integer minor units; HubSpot properties strings.
`truth` is the ground truth that scenario tests compare against, JSON-able as it is.

The same seed, size and `today` give the same book, byte for byte.
"""

from __future__ import annotations

import gc
import json
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args

from connector.sandbox.generator_book import Book

Size = Literal["small", "medium", "large"]
SIZE_NAMES: tuple[Size, ...] = get_args(Size)
# What a scenario was built as: a size of the ordinary book, or the trap book (`generator_traps`).
BookKind = Size | Literal["traps"]

# size -> (customers, invoices). About 92 payments come of 100 invoices, so `large` has 110,000
# invoices to give the benchmarks more than 100,000 of each (seed 1: 101,460 payments).
SIZES: dict[str, tuple[int, int]] = {"small": (20, 60), "medium": (400, 2_000), "large": (11_000, 110_000)}
DEFAULT_TODAY = date(2026, 11, 1)
TRUTH_FORMAT = 1


@dataclass(frozen=True)
class Scenario:
    seed: int
    size: BookKind
    today: date
    data: dict[str, dict[str, list[dict[str, Any]]]]
    truth: dict[str, Any]

    def write(self, data_path: str | Path, truth_path: str | Path) -> None:
        """The data file (the providers' own shapes) and the truth file, side by side."""
        _write_lists(Path(data_path), self.data)
        Path(truth_path).write_text(json.dumps(self.truth, indent=1) + "\n", encoding="utf-8")


def generate(seed: int, size: Size = "small", *, today: date | None = None) -> Scenario:
    """A realistic AR book across Stripe, Xero and HubSpot, with its ground truth."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r} (sizes: {', '.join(SIZES)})")
    today = today or DEFAULT_TODAY
    customers, invoices = SIZES[size]
    book = Book(seed, today, customers, invoices)
    # Millions of long-lived dicts: the cyclic collector would rescan them again and again
    # (a large book took twice as long); they hold no cycles, so it can rest meanwhile.
    collecting = gc.isenabled()
    gc.disable()
    try:
        book.build()
    finally:
        if collecting:
            gc.enable()
    truth = {"format": TRUTH_FORMAT, "seed": seed, "size": size, "today": today.isoformat(), **book.truth}
    truth["summary"] = summarise(truth)
    return Scenario(seed, size, today, {"stripe": book.stripe, "xero": book.xero, "hubspot": book.hubspot}, truth)


def summarise(truth: dict[str, Any]) -> dict[str, Any]:
    """Counts per label, so a reader (and a test) sees what the book holds at a glance."""

    def count(items: Any) -> dict[str, int]:
        result: dict[str, int] = {}
        for item in items:
            result[str(item)] = result.get(str(item), 0) + 1
        return dict(sorted(result.items()))

    invoices, payments, customers = truth["invoices"], truth["payments"], truth["customers"]
    return {
        "customers": len(customers),
        "invoices": len(invoices),
        "payments": len(payments),
        "customer_systems": count("+".join(c["systems"]) for c in customers),
        "paused_customers": sum(c["paused"] for c in customers),
        "currencies": count(i["currency"] for i in invoices),
        "buckets": count(i["bucket"] or "settled" for i in invoices),
        "invoice_scenarios": count(i["scenario"] for i in invoices),
        "stripe_links": count(i["links"].get("stripe", "none") for i in invoices),
        "payment_scenarios": count(p["scenario"] for p in payments),
        "payment_methods": count(p["method"] for p in payments),
        "multi_invoice_payments": sum(len(p["allocations"]) > 1 for p in payments),
        "overpayments": sum(p["unallocated"].strip("0.") != "" for p in payments),
        "refunded_payments": sum(p["refunded"].strip("0.") != "" for p in payments),
        "undeterminable_payments": sum(not p["determinable"] for p in payments),
        "disputed": sum(i["disputed"] for i in invoices),
        "promises_to_pay": sum(i["promise_to_pay_date"] is not None for i in invoices),
        "payment_plans": sum(i["payment_plan"] is not None for i in invoices),
        "payouts": len(truth["payouts"]),
    }


# -- exact JSON ----------------------------------------------------------------------------------

_MARK = "\x00decimal:"
_MARKED = re.compile(r'"\\u0000decimal:(-?[0-9.]+)"')


def _mark(value: Any) -> str:
    if isinstance(value, Decimal):
        return _MARK + format(value, "f")
    raise TypeError(f"not JSON: {type(value).__name__}")


def dumps(value: Any, *, indent: int | None = None) -> str:
    """JSON in which a Decimal is a number with exactly its digits (Xero's amounts), never a float."""
    return _MARKED.sub(r"\1", json.dumps(value, default=_mark, indent=indent, ensure_ascii=False))


def _write_lists(path: Path, data: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    """List by list, a thousand objects at a time, so a large book never becomes one big string."""
    with path.open("w", encoding="utf-8") as out:
        out.write("{")
        for p, (provider, lists) in enumerate(data.items()):
            out.write(("," if p else "") + f"\n{json.dumps(provider)}: {{")
            for k, (name, items) in enumerate(lists.items()):
                out.write(("," if k else "") + f"\n {json.dumps(name)}: [")
                for start in range(0, len(items), 1000):
                    out.write(("," if start else "") + "\n  " + dumps(items[start : start + 1000])[1:-1])
                out.write("\n ]" if items else "]")
            out.write("\n}")
        out.write("\n}\n")


def load_data(path: str | Path) -> dict[str, Any]:
    """A data file as the sandbox holds it: numbers with a fraction become Decimal."""
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"), parse_float=Decimal)
    return data
