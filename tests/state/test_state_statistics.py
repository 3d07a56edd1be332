"""The planner's statistics: PostgreSQL's are refreshed for the tables a stage filled, once;
SQLite keeps none (its queries are written for a planner without them)."""

from __future__ import annotations

import time

import sqlalchemy as sa

from connector.state import Store
from connector.state.statistics import STALE_ROWS, stale_tables
from support.state_factories import invoice

COUNTS = (
    "SELECT relname, n_tup_ins, last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE schemaname = current_schema()"
)


def flushed(store: Store, invoices: int) -> None:
    """PostgreSQL reports a session's row counts a moment after its transactions: wait (ten
    seconds at most) until the `invoices` rows inserted show."""
    for _ in range(100):
        with store.session() as session:
            session.execute(sa.text("SELECT pg_stat_force_next_flush()"))
        if counts(store).get("invoices", (0, False))[0] >= invoices:
            return
        time.sleep(0.1)
    raise AssertionError("PostgreSQL did not report the rows inserted")


def counts(store: Store) -> dict[str, tuple[int, bool]]:
    """Per table of the schema: rows inserted, and whether it was analysed."""
    with store.session() as session:
        return {str(name): (int(ins), bool(done)) for name, ins, done in session.execute(sa.text(COUNTS)).all()}


def test_the_tables_a_sync_filled_are_analysed_once(store: Store) -> None:
    page = [invoice(f"L-{n}") for n in range(STALE_ROWS + 100)]
    store.store_page("ledger", "invoices", "invoice", page, None)
    if store.engine.dialect.name != "postgresql":
        assert store.keep_statistics() == []
        with store.engine.connect() as connection:  # no sqlite_stat1: no statistics kept
            kept = connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE name LIKE 'sqlite_stat%'")
            assert kept.all() == []
        return
    flushed(store, len(page))
    assert {"invoices", "refs"} <= set(stale_tables(store.engine))
    assert not counts(store)["invoices"][1]
    done = store.keep_statistics()
    assert {"invoices", "refs"} <= set(done)
    assert counts(store)["invoices"][1] and counts(store)["refs"][1]
    assert "audit_log" not in done  # nothing audited: nothing to analyse
    assert store.keep_statistics() == []  # fresh now: not analysed again


def test_a_few_rows_more_leave_the_statistics_as_they_are(store: Store) -> None:
    if store.engine.dialect.name != "postgresql":
        return
    store.store_page("ledger", "invoices", "invoice", [invoice(f"L-{n}") for n in range(STALE_ROWS - 100)], None)
    flushed(store, STALE_ROWS - 100)
    assert "invoices" not in store.keep_statistics()
