"""Stored views keep a content hash: an unchanged record costs no write, a changed one is
written whole, and what the store reads back is what it was given."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from connector.state import Store, upgrade
from connector.state.linking import ref_views
from connector.state.migrate import head_revision
from connector.state.store import open_store
from support.databases import writes_during
from support.state_factories import SYSTEM, customer, invoice, payment

EXTRAS = {"A1": {"links": {"customer": "C1"}, "hints": {}, "deleted": False, "kind": "ledger"}}


def row(store: Store, query: str) -> Any:
    with store.engine.connect() as connection:
        return connection.execute(sa.text(query)).one()


def test_a_stored_page_reads_back_as_it_was_stored_before_the_bulk_path(store: Store) -> None:
    [c] = store.store_page(SYSTEM, "contacts", "customer", [customer("C1")], cursor="c")
    sent = [invoice("A1", customer_id=c.id), invoice("A2", ("7.5",), "KWD", tax="0.125", paid="1")]
    stored = store.store_page(SYSTEM, "invoices", "invoice", sent, cursor="i", extras=EXTRAS)
    [p] = store.store_page("gateway", "charges", "payment", [payment("P1")], cursor="p")

    assert [r.id for r in stored] and all(r.id for r in stored)
    assert store.list_invoices() == sorted(stored, key=lambda r: r.id or "")
    assert store.list_customers() == [c] and store.list_payments() == [p]
    with store.session() as session:
        views = {v["remote_id"]: v["data"] for v in ref_views(session, "invoice")}
    # the view as the store kept it before: the record as JSON, what the sync learnt under _sync
    assert views["A1"] == {**stored[0].model_dump(mode="json"), "_sync": EXTRAS["A1"]}
    assert views["A2"] == stored[1].model_dump(mode="json")
    assert store.get_cursor(SYSTEM, "invoices") == "i"


def test_an_unchanged_record_stored_again_leaves_its_rows_untouched(store: Store) -> None:
    page = [invoice("A1"), invoice("A2")]
    store.store_page(SYSTEM, "invoices", "invoice", page, cursor="c1", extras=EXTRAS)
    before = row(store, "SELECT updated_at, created_at FROM invoices WHERE number = 'INV-A1'")
    ref_before = row(store, "SELECT data_hash, seen_at, id FROM refs WHERE remote_id = 'A1'")

    writes = writes_during(
        store, lambda: store.store_page(SYSTEM, "invoices", "invoice", page, cursor="c2", extras=EXTRAS)
    )

    assert not [w for w in writes if "invoices" in w.split("(")[0]]
    assert not [w for w in writes if w.lstrip().upper().startswith(("INSERT INTO REFS", "WITH"))]
    assert row(store, "SELECT updated_at, created_at FROM invoices WHERE number = 'INV-A1'") == before
    ref_after = row(store, "SELECT data_hash, seen_at, id FROM refs WHERE remote_id = 'A1'")
    assert ref_after.data_hash == ref_before.data_hash and ref_after.id == ref_before.id
    assert ref_after.seen_at >= ref_before.seen_at  # a sync read it again: drift relies on this
    assert store.get_cursor(SYSTEM, "invoices") == "c2"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"number": "INV-NEW"}, id="a fact"),
        pytest.param(None, id="what the sync learnt beside it"),
    ],
)
def test_a_changed_record_is_written_again(store: Store, change: dict[str, Any] | None) -> None:
    [first] = store.store_page(SYSTEM, "invoices", "invoice", [invoice("A1")], cursor="c1", extras=EXTRAS)
    before = row(store, "SELECT data_hash FROM refs WHERE remote_id = 'A1'").data_hash
    again = invoice("A1").model_copy(update=change) if change else invoice("A1")
    extras = EXTRAS if change else {"A1": {**EXTRAS["A1"], "deleted": True}}

    store.store_page(SYSTEM, "invoices", "invoice", [again], cursor="c2", extras=extras)

    assert row(store, "SELECT data_hash FROM refs WHERE remote_id = 'A1'").data_hash != before
    assert first.id is not None
    back = store.get_invoice(first.id)
    assert back is not None and back.number == (again.number)
    with store.session() as session:
        [view] = ref_views(session, "invoice")
    assert view["data"]["_sync"] == extras["A1"] and view["data"]["number"] == again.number


def test_a_higher_ranked_row_stays_when_a_lower_ranked_view_changes(store: Store) -> None:
    ledger = invoice("A1", ("110.00",)).model_copy(update={"id": "inv-1"})
    crm = invoice("A1", ("100.00",)).model_copy(update={"id": "inv-1"})
    store.store_page("ledger", "invoices", "invoice", [ledger], cursor=None, rank=3)
    crm = crm.model_copy(update={"refs": [r.model_copy(update={"system": "crm"}) for r in crm.refs]})
    store.store_page("crm", "deals", "invoice", [crm], cursor=None, rank=1)
    stored = store.get_invoice("inv-1")
    assert stored is not None and str(stored.total) == "110.00 USD"


def test_views_stored_before_the_hash_are_hashed_when_their_record_comes_again(empty_engine: sa.Engine) -> None:
    assert upgrade(empty_engine, "0013") == "0013"
    with empty_engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO refs (company, system, object_type, remote_id, entity_kind, entity_id, data, seen_at) "
                "VALUES ('default', 'ledger', 'invoice', 'A1', 'invoice', 'inv-old', '{\"id\": \"inv-old\"}', "
                "CURRENT_TIMESTAMP)"
            )
        )
    assert upgrade(empty_engine) == head_revision()
    store = open_store(empty_engine)
    assert row(store, "SELECT data_hash FROM refs").data_hash is None

    [stored] = store.store_page(SYSTEM, "invoices", "invoice", [invoice("A1")], cursor=None)

    assert stored.id == "inv-old"  # the ref keeps its canonical id
    hashed = row(store, "SELECT data_hash FROM refs").data_hash
    assert hashed is not None
    assert store.get_invoice("inv-old") == stored
    writes = writes_during(store, lambda: store.store_page(SYSTEM, "invoices", "invoice", [invoice("A1")], None))
    assert not [w for w in writes if "invoices" in w.split("(")[0]]
