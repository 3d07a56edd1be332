"""Reports read the book through `Store.reader()`: transactions that only read. On SQLite they
take no write lock, so a report runs while a sync, reconcile or plan holds it (minutes on a
large book) and holds back no writer itself; on both databases a write through a reader fails
at once."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from connector.state import Store, open_store
from support.state_factories import invoice


def test_a_write_through_a_reader_fails_and_leaves_the_book_as_it_was(store: Store) -> None:
    [first] = store.upsert_invoices([invoice("x-1")])
    with pytest.raises(sa.exc.DBAPIError, match="read-only|readonly"):
        store.reader().upsert_invoices([invoice("x-2")])
    assert [i.id for i in store.reader().list_receivables()] == [first.id]
    store.upsert_invoices([invoice("x-3")])  # the writer's next transaction writes as before
    assert len(store.list_receivables()) == 2


def test_on_sqlite_a_reader_neither_waits_for_the_write_lock_nor_holds_it(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    store.upsert_invoices([invoice("x-1")])
    other = sqlite3.connect(tmp_path / "state.db", isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process's long sync or plan
        other.execute("UPDATE invoices SET updated_at = updated_at")
        assert len(store.reader().list_receivables()) == 1  # the snapshot before its writes
        other.execute("ROLLBACK")
        with store.reader().session() as session:
            session.execute(sa.text("SELECT count(*) FROM invoices")).scalar()
            other.execute("BEGIN IMMEDIATE")  # a writer starts while the report reads: no wait
            other.execute("ROLLBACK")
    finally:
        other.close()
        store.close()


def test_on_sqlite_after_sessions_side_by_side_the_next_ones_reuse_one_connection(tmp_path) -> None:
    """A sync pulls streams side by side (a connection each), then links and plans one session
    at a time: those sessions take the connection returned last, so one page cache is warmed,
    not every pooled connection's (up to 32 MiB each)."""
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        sessions = [store.reader().session() for _ in range(3)]  # reading: no write lock
        opened = [s.__enter__() for s in sessions]  # three pulls at once
        pulled = {id(s.connection().connection.dbapi_connection) for s in opened}
        for s in reversed(sessions):
            s.__exit__(None, None, None)
        used = set()
        for _ in range(6):  # then the engine, one session at a time
            with store.session() as session:
                used.add(id(session.connection().connection.dbapi_connection))
        assert len(pulled) == 3 and len(used) == 1
    finally:
        store.close()
