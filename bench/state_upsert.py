"""How fast pages of invoices go into the state store, on SQLite and on PostgreSQL.

    python bench/state_upsert.py [--records 100000] [--batch 1000] [--pg-url URL]

Each batch goes through `Store.store_page` (refs, invoices with their lines, and the cursor in one
transaction), as a sync run does. Records are built before the clock starts; the figure is
records stored per second, plus the SQL statements each page costs (counted at the cursor;
PostgreSQL's COPY goes to the driver directly and is not among them). The same pages are
stored a second time (nothing changed: no row is rewritten) and a third time with every
record changed (every row updated).

Beside it, the database's own bulk path for the same rows, the yardstick of the issue #18: a
ref with its JSON and a canonical invoice row per record, prepared before the clock, written
in one transaction by a plain `executemany` (SQLite) or `COPY` (PostgreSQL) into an empty
schema; then the ratio of the store's figure to it. PostgreSQL runs in a throwaway schema and
is skipped, with a message, when unreachable.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' throwaway schemas

import support.databases as conftest_db  # noqa: E402
from connector.model import Invoice, InvoiceLine, Ref  # noqa: E402
from connector.money import Money  # noqa: E402
from connector.state import Store, open_store  # noqa: E402
from connector.state.convert import line_values  # noqa: E402
from connector.state.db import make_engine  # noqa: E402
from connector.state.records import new_id  # noqa: E402
from connector.state.tables import table  # noqa: E402

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


def changed(invoices: list[Invoice]) -> list[Invoice]:
    """The same invoices with one fact changed each (a number), so that every row is rewritten."""
    return [i.model_copy(update={"number": f"{i.number}-b"}) for i in invoices]


def report(name: str, store: Store, invoices: list[Invoice], batch: int) -> float:
    """Print the store's figures; returns its rate for new records."""
    rate, per_page = run(store, invoices, batch)
    print(f"{name:<16} {rate:>10,.0f} records/s   {per_page:.1f} SQL statements per page")
    again, _ = run(store, invoices, batch)
    print(f"{name + ' unchanged':<16} {again:>10,.0f} records/s   (same pages again: nothing to rewrite)")
    updated, _ = run(store, changed(invoices), batch)
    print(f"{name + ' changed':<16} {updated:>10,.0f} records/s   (every record changed: every row updated)")
    return rate


# The database's own bulk path ------------------------------------------------------------

REF_COLUMNS = ("company", "system", "object_type", "remote_id", "entity_kind", "entity_id", "data", "seen_at")
INVOICE_COLUMNS = tuple(c.name for c in table("invoices").c)


def bulk_rows(invoices: list[Invoice]) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """(ref rows, invoice rows) of `invoices` as Python values, each with a new id and its JSON."""
    now = datetime.now(UTC)
    refs, rows = [], []
    for invoice in invoices:
        entity_id = new_id()  # the store's ids: time-ordered, as kind to the indexes
        record = invoice.model_copy(update={"id": entity_id})
        refs.append(
            (
                "default",
                "ledger",
                "invoice",
                record.refs[0].remote_id,
                "invoice",
                entity_id,
                record.model_dump_json(),
                now,
            )
        )
        values = {
            "company": "default",
            "id": entity_id,
            "number": record.number,
            "customer_id": record.customer_id,
            "currency": record.currency,
            "issue_date": record.issue_date,
            "due_date": record.due_date,
            "subtotal_minor": record.subtotal.to_minor(),
            "tax_minor": record.tax.to_minor(),
            "total_minor": record.total.to_minor(),
            "amount_paid_minor": record.amount_paid.to_minor(),
            "amount_credited_minor": record.amount_credited.to_minor(),
            "status": record.status,
            "disputed": False,
            "promise_to_pay": None,
            "payment_plan": None,
            "in_collections": False,
            "lines": json.dumps(line_values(record)),  # the lines beside the invoice, as the store keeps them
            "source": "ledger",
            "source_rank": 0,
            "states_digest": None,
            "created_at": now,
            "updated_at": now,
        }
        rows.append(tuple(values[c] for c in INVOICE_COLUMNS))
    return refs, rows


def sqlite_value(value: object) -> object:
    """What SQLAlchemy stores in SQLite for a value: dates and timestamps as text, booleans as 0/1."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


def bulk_sqlite(engine: sa.Engine, invoices: list[Invoice]) -> float:
    """Records/s of a plain executemany of the rows, one transaction, into an empty database."""
    open_store(engine)
    refs, rows = bulk_rows(invoices)
    refs = [tuple(sqlite_value(v) for v in r) for r in refs]
    rows = [tuple(sqlite_value(v) for v in r) for r in rows]
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        assert connection is not None
        started = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        marks = ", ".join("?" for _ in REF_COLUMNS)
        connection.executemany(f"INSERT INTO refs ({', '.join(REF_COLUMNS)}) VALUES ({marks})", refs)
        marks = ", ".join("?" for _ in INVOICE_COLUMNS)
        connection.executemany(f"INSERT INTO invoices ({', '.join(INVOICE_COLUMNS)}) VALUES ({marks})", rows)
        connection.execute("COMMIT")
        return len(invoices) / (time.perf_counter() - started)
    finally:
        raw.close()


def bulk_postgresql(engine: sa.Engine, invoices: list[Invoice]) -> float:
    """Records/s of COPY of the rows, one transaction, into an empty schema."""
    open_store(engine)
    refs, rows = bulk_rows(invoices)
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        assert connection is not None
        started = time.perf_counter()
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY refs ({', '.join(REF_COLUMNS)}) FROM STDIN") as copy:
                for ref in refs:
                    copy.write_row(ref)
            with cursor.copy(f"COPY invoices ({', '.join(INVOICE_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        connection.commit()
        return len(invoices) / (time.perf_counter() - started)
    finally:
        raw.close()


def compare(name: str, store_rate: float, bulk_rate: float) -> None:
    print(f"{name + ' bulk':<16} {bulk_rate:>10,.0f} records/s   (the database's own bulk path, same rows)")
    print(f"{name + ' ratio':<16} {store_rate / bulk_rate:>10.2f}   (store / bulk path, new records)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--pg-url", default=conftest_db.POSTGRES_URL)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    invoices = make_invoices(args.records)
    print(
        f"built {len(invoices):,} invoices (2 lines each) in "
        f"{time.perf_counter() - started:.1f}s; pages of {args.batch}"
    )

    # The records stay for the whole run (a sync holds one page): keep the garbage collector
    # from walking them at every collection, a cost no sync pays.
    gc.collect()
    gc.freeze()
    try:
        with tempfile.TemporaryDirectory() as directory:
            engine = make_engine(f"sqlite:///{directory}/bench.db")
            rate = report("sqlite", open_store(engine), invoices, args.batch)
            engine.dispose()
            engine = make_engine(f"sqlite:///{directory}/bulk.db")
            compare("sqlite", rate, bulk_sqlite(engine, invoices))
            engine.dispose()

        reason = conftest_db.postgres_unreachable_reason(args.pg_url)
        if reason:
            print(f"postgresql  skipped: {reason}")
            return
        with conftest_db.pg_engine_in_temporary_schema(args.pg_url) as engine:
            rate = report("postgresql", open_store(engine), invoices, args.batch)
        with conftest_db.pg_engine_in_temporary_schema(args.pg_url) as engine:
            compare("postgresql", rate, bulk_postgresql(engine, invoices))
    finally:
        gc.unfreeze()


if __name__ == "__main__":
    main()
