"""Two companies in one database: each store sees and writes only its own book, on SQLite and
PostgreSQL, whatever the rows it is given say."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from connector.errors import ConfigError, StateError
from connector.model import Allocation
from connector.money import Money
from connector.state import Store, reconciliation
from connector.state.records import list_invoices
from connector.state.tables import table
from connector.state.upsert import upsert
from support.state_factories import customer, invoice, payment


def test_the_same_remote_ids_in_two_companies_are_two_books(store: Store) -> None:
    """Two client companies whose ledgers both number their invoices INV-1 and both know a
    customer Acme Ltd: each book keeps its own, nothing is linked or overwritten across."""
    acme, beta = store.for_company("acme"), store.for_company("beta")
    acme.store_page("ledger", "invoices", "invoice", [invoice("1", ("100.00",))], cursor="a1")
    beta.store_page("ledger", "invoices", "invoice", [invoice("1", ("999.00",))], cursor="b1")
    acme.store_page("ledger", "contacts", "customer", [customer("C1")], cursor=None)

    assert [i.total for i in acme.list_invoices()] == [Money.of("100.00", "USD")]
    assert [i.total for i in beta.list_invoices()] == [Money.of("999.00", "USD")]
    assert [c.name for c in acme.list_customers()] == ["Acme Ltd"] and beta.list_customers() == []
    assert store.list_invoices() == []  # the default company holds neither
    assert (acme.get_cursor("ledger", "invoices"), beta.get_cursor("ledger", "invoices")) == ("a1", "b1")
    # one company cannot reach the other's record even by its canonical id
    beta_id = beta.list_invoices()[0].id
    assert beta_id is not None and acme.get_invoice(beta_id) is None


def test_a_write_lands_in_the_sessions_company_whatever_the_row_says(store: Store) -> None:
    acme, beta = store.for_company("acme"), store.for_company("beta")
    [stored] = acme.upsert_invoices([invoice("7")])
    with beta.session() as session:
        # a row naming another company (a bug upstream) still lands in the session's company
        upsert(
            session,
            table("sync_cursors"),
            [{"company": "acme", "connection": "c", "stream": "s", "value": "x", "updated_at": datetime.now(UTC)}],
            key=("connection", "stream"),
        )
    assert beta.get_cursor("c", "s") == "x" and acme.get_cursor("c", "s") is None
    assert [i.id for i in acme.list_invoices()] == [stored.id]


def test_an_allocation_cannot_join_two_companies_books(store: Store) -> None:
    """The database itself refuses it: the allocation's keys carry the company."""
    acme, beta = store.for_company("acme"), store.for_company("beta")
    [acme_invoice] = acme.upsert_invoices([invoice("1")])
    [beta_payment] = beta.upsert_payments([payment("p1")])
    allocation = Allocation(
        payment_id=beta_payment.id or "",
        invoice_id=acme_invoice.id or "",
        amount=Money.of("10.00", "USD"),
        rule="manual",
        confidence=Decimal(1),
        reason="test",
    )
    with pytest.raises(sa.exc.IntegrityError):
        with beta.session() as session:
            reconciliation.save_allocations(session, [allocation], "applied")
    with beta.session() as session:
        assert reconciliation.load_allocations(session) == []


def test_a_transaction_bound_to_no_company_touches_no_book(store: Store) -> None:
    with Session(store.engine) as session, pytest.raises(StateError, match="not bound to a company"):
        list_invoices(session)


def test_a_connection_moved_to_another_company_is_refused(store: Store) -> None:
    """Records pulled for the default company stay in its book: a config that now gives the
    connection another company would start a second copy of that book, so it is refused."""
    store.store_page("ledger", "invoices", "invoice", [invoice("1")], cursor=None)
    store.check_connection_companies({"ledger": "default", "gateway": "default"})  # as before: fine
    with pytest.raises(ConfigError, match=r"connections\.ledger\.company: .*company 'default', not 'acme'"):
        store.check_connection_companies({"ledger": "acme", "gateway": "acme"})
