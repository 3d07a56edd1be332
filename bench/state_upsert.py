"""How fast pages of invoices go into the state store, on SQLite and on PostgreSQL.

    python bench/state_upsert.py [--records 100000] [--batch 1000] [--pg-url URL]

Each batch goes through `Store.store_page` (refs, invoices, lines and the cursor in one
transaction), as a sync run does. Records are built before the clock starts; the figure is
records stored per second, plus the SQL statements each page costs (counted at the cursor).
PostgreSQL runs in a throwaway schema and is skipped, with a message, when unreachable.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' throwaway schemas

import support.databases as conftest_db  # noqa: E402
from connector.model import Invoice, InvoiceLine, Ref  # noqa: E402
from connector.money import Money  # noqa: E402
from connector.state import Store, open_store  # noqa: E402
from connector.state.db import make_engine  # noqa: E402

CURRENCIES = ("USD", "EUR", "JPY", "KWD")


def make_invoices(count: int) -> list[Invoice]:
    invoices = []
    for n in range(count):
        currency = CURRENCIES[n % len(CURRENCIES)]
        a = Money.from_minor(10_000 + n % 977, currency)
        b = Money.from_minor(250 + n % 13, currency)
        tax = Money.from_minor(n % 100, currency)
        issued = date(2024, 1, 1) + timedelta(days=n % 365)
        invoices.append(
            Invoice(
                number=f"INV-{n:07d}",
                customer_id=f"cust-{n % 5000}",
                currency=currency,
                issue_date=issued,
                due_date=issued + timedelta(days=30),
                lines=[
                    InvoiceLine(description="Licence", quantity=Decimal(1), amount=a),
                    InvoiceLine(description="Support", quantity=Decimal("0.5"), amount=b),
                ],
                subtotal=a + b,
                tax=tax,
                total=a + b + tax,
                amount_paid=Money.zero(currency),
                amount_credited=Money.zero(currency),
                refs=[Ref(system="ledger", object_type="invoice", remote_id=f"inv_{n}")],
            )
        )
    return invoices


def run(store: Store, invoices: list[Invoice], batch: int) -> tuple[float, float]:
    """(records per second, statements per page) for storing `invoices` page by page."""
    statements = 0

    def count(*_args: object) -> None:
        nonlocal statements
        statements += 1

    sa.event.listen(store.engine, "before_cursor_execute", count)
    started = time.perf_counter()
    pages = 0
    for start in range(0, len(invoices), batch):
        page = invoices[start : start + batch]
        store.store_page("ledger", "invoices", "invoice", page, cursor=str(start + len(page)))
        pages += 1
    elapsed = time.perf_counter() - started
    sa.event.remove(store.engine, "before_cursor_execute", count)
    return len(invoices) / elapsed, statements / pages


def report(name: str, store: Store, invoices: list[Invoice], batch: int) -> None:
    rate, per_page = run(store, invoices, batch)
    print(f"{name:<11} {rate:>10,.0f} records/s   {per_page:.1f} SQL statements per page")
    rate, per_page = run(store, invoices, batch)
    print(f"{name + ' again':<11} {rate:>10,.0f} records/s   (same pages: every row updated)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--pg-url", default=conftest_db.POSTGRES_URL)
    args = parser.parse_args()

    started = time.perf_counter()
    invoices = make_invoices(args.records)
    print(
        f"built {len(invoices):,} invoices (2 lines each) in "
        f"{time.perf_counter() - started:.1f}s; pages of {args.batch}"
    )

    with tempfile.TemporaryDirectory() as directory:
        engine = make_engine(f"sqlite:///{directory}/bench.db")
        report("sqlite", open_store(engine), invoices, args.batch)
        engine.dispose()

    reason = conftest_db.postgres_unreachable_reason(args.pg_url)
    if reason:
        print(f"postgresql  skipped: {reason}")
        return
    with conftest_db.pg_engine_in_temporary_schema(args.pg_url) as engine:
        report("postgresql", open_store(engine), invoices, args.batch)


if __name__ == "__main__":
    main()
