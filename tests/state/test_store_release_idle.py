"""`Store.release_idle`: after a sync's streams, the pool's idle connections (each with its own
page cache on SQLite) are closed; nothing stored is lost and sessions in progress go on."""

from __future__ import annotations

from connector.model import Customer, Ref
from connector.state import open_store


def customer(remote_id: str) -> Customer:
    return Customer(name=f"Acme {remote_id}", refs=[Ref(system="ledger", object_type="customer", remote_id=remote_id)])


def test_idle_connections_close_and_a_session_in_progress_goes_on(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        store.store_page("ledger", "contacts", "customer", [customer("C1")], None)
        reader = store.reader()  # reports' sessions, which take no write lock
        with reader.session() as one, reader.session() as other:
            one.connection(), other.connection()  # two connections, back in the pool after
        assert store.engine.pool.checkedin() == 2
        with reader.session() as held:
            held.connection()
            store.release_idle()
            assert store.engine.pool.checkedin() == 0, "the idle connections are closed"
            store.store_page("ledger", "contacts", "customer", [customer("C2")], None)
            assert held.connection().exec_driver_sql("SELECT count(*) FROM refs").scalar() >= 1
        assert sorted(r.remote_id for c in store.list_customers() for r in c.refs) == ["C1", "C2"]
    finally:
        store.close()


def test_an_in_memory_book_keeps_its_records(tmp_path):
    store = open_store("sqlite://")
    try:
        store.store_page("ledger", "contacts", "customer", [customer("C1")], None)
        store.release_idle()
        assert [r.remote_id for c in store.list_customers() for r in c.refs] == ["C1"]
    finally:
        store.close()
