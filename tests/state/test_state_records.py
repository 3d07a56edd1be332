"""Canonical records through the store: exact money, set-based upserts, atomic pages."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TypeVar

import pytest
import sqlalchemy as sa
from pydantic import BaseModel

import connector.state.convert
import connector.state.records
import connector.state.upsert
from connector.errors import StateError
from connector.model import Allocation, Invoice, PaymentPlan
from connector.money import Money
from connector.state import Store
from connector.state import reconciliation as decisions
from support.state_factories import SYSTEM, customer, invoice, payment

M = TypeVar("M", bound=BaseModel)


def count(store: Store, table: str) -> int:
    with store.engine.connect() as connection:
        return connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


@pytest.mark.parametrize(
    ("currency", "line_amounts", "tax"),
    [
        ("USD", ("1999.99", "0.01"), "200.00"),
        ("JPY", ("120000", "1"), "12000"),
        ("KWD", ("10.125", "0.001"), "1.013"),
    ],
)
def test_invoice_with_lines_round_trips_exact_to_the_minor_unit(
    store: Store, currency: str, line_amounts: tuple[str, ...], tax: str
) -> None:
    sent = invoice("A1", line_amounts, currency, tax=tax, paid=line_amounts[1])
    [stored] = store.store_page(SYSTEM, "invoices", "invoice", [sent], cursor="c1")
    assert stored.id is not None

    back = store.get_invoice(stored.id)

    assert back is not None and back == stored
    assert back.total == Money.of(sent.total.amount, currency)
    assert [line.amount for line in back.lines] == [line.amount for line in sent.lines]
    assert [line.unit_price for line in back.lines] == [line.unit_price for line in sent.lines]


def test_same_page_twice_stores_one_row_per_record(store: Store) -> None:
    page = [invoice("A1"), invoice("A2"), invoice("A3")]
    store.store_page(SYSTEM, "invoices", "invoice", page, cursor="c1")
    store.store_page(SYSTEM, "invoices", "invoice", page, cursor="c1")

    assert count(store, "invoices") == 3
    assert count(store, "refs") == 3
    assert sum(len(i.lines) for i in store.list_invoices()) == 6


def test_second_upsert_updates_changed_values_and_replaces_lines(store: Store) -> None:
    [first] = store.store_page(SYSTEM, "invoices", "invoice", [invoice("A1")], cursor="c1")
    changed = invoice("A1", ("50.00",), paid="20.00", number="INV-NEW")
    store.store_page(SYSTEM, "invoices", "invoice", [changed], cursor="c2")

    assert first.id is not None
    back = store.get_invoice(first.id)
    assert back is not None
    assert back.number == "INV-NEW"
    assert back.amount_paid == Money.of("20.00", "USD")
    assert [line.amount for line in back.lines] == [Money.of("50.00", "USD")]  # the two lines replaced by one


def test_ref_keeps_its_canonical_id_across_upserts(store: Store) -> None:
    [first] = store.store_page(SYSTEM, "invoices", "invoice", [invoice("A1")], cursor="c1")
    [again] = store.store_page(SYSTEM, "invoices", "invoice", [invoice("A1")], cursor="c2")

    assert again.id == first.id and first.id is not None
    refs = store.refs_for("invoice", first.id)
    assert [(r.system, r.remote_id) for r in refs] == [(SYSTEM, "A1")]


def test_ref_row_keeps_the_systems_view_of_the_record(store: Store) -> None:
    [stored] = store.store_page(SYSTEM, "invoices", "invoice", [invoice("A1")], cursor=None)
    with store.engine.connect() as connection:
        data = connection.execute(sa.text("SELECT data FROM refs")).scalar_one()
    if isinstance(data, str):  # SQLite hands JSON back as text through sa.text()
        data = json.loads(data)
    assert data["id"] == stored.id
    assert data["total"] == {"amount": "123.45", "currency": "USD"}


def test_failure_mid_page_writes_neither_rows_nor_cursor(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.set_cursor(SYSTEM, "invoices", "before")

    def broken(*_args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(connector.state.convert, "invoice_row", broken)  # after the refs are written
    with pytest.raises(RuntimeError, match="disk full"):
        store.store_page(SYSTEM, "invoices", "invoice", [invoice("A1")], cursor="after")

    assert count(store, "refs") == 0
    assert count(store, "invoices") == 0
    assert store.get_cursor(SYSTEM, "invoices") == "before"


def test_record_without_a_ref_for_the_connection_is_refused(store: Store) -> None:
    with pytest.raises(StateError, match="no ref for system 'crm'"):
        store.store_page("crm", "deals", "invoice", [invoice("A1")], cursor="c1")
    assert store.get_cursor("crm", "deals") is None


def test_repeated_record_in_one_page_is_stored_once_last_wins(store: Store) -> None:
    page = [invoice("A1", ("1.00",)), invoice("A1", ("2.00",))]
    [stored] = store.store_page(SYSTEM, "invoices", "invoice", page, cursor="c1")
    assert stored.id is not None
    back = store.get_invoice(stored.id)
    assert back is not None and back.total == Money.of("2.00", "USD")


def test_page_bigger_than_the_parameter_limit_is_written_in_chunks(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connector.state.upsert, "_MAX_PARAMS", {"sqlite": 100, "postgresql": 100})
    page = [invoice(f"A{n}") for n in range(40)]
    store.store_page(SYSTEM, "invoices", "invoice", page, cursor="c1")
    assert count(store, "invoices") == 40
    assert sum(len(i.lines) for i in store.list_invoices()) == 80


def test_page_costs_the_same_number_of_statements_whatever_its_size(store: Store) -> None:
    def statements_for(page: list) -> int:
        seen: list[str] = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731  (statement text)
        sa.event.listen(store.engine, "before_cursor_execute", listener)
        try:
            store.store_page(SYSTEM, "invoices", "invoice", page, cursor="c")
        finally:
            sa.event.remove(store.engine, "before_cursor_execute", listener)
        return len(seen)

    small = statements_for([invoice(f"S{n}") for n in range(2)])
    large = statements_for([invoice(f"L{n}") for n in range(300)])
    assert large == small
    assert large <= 8


def test_customers_and_payments_round_trip(store: Store) -> None:
    [c] = store.store_page(SYSTEM, "customers", "customer", [customer("C1")], cursor="c1")
    [p] = store.store_page("gateway", "charges", "payment", [payment("P1")], cursor="p1")

    assert c.id is not None and store.get_customer(c.id) == c
    assert store.list_payments() == [p]
    assert store.list_payments()[0].net == Money.of("119.57", "USD")


def test_list_invoices_filters_by_customer_and_number(store: Store) -> None:
    page = [invoice("A1", customer_id="cust-1"), invoice("A2", customer_id="cust-2")]
    store.store_page(SYSTEM, "invoices", "invoice", page, cursor=None)

    assert [i.number for i in store.list_invoices(customer_id="cust-1")] == ["INV-A1"]
    assert [i.customer_id for i in store.list_invoices(number="INV-A2")] == ["cust-2"]
    assert store.get_invoice("missing") is None


def test_a_lower_ranked_system_never_overwrites_the_ledgers_figures(store: Store) -> None:
    ledger_view = invoice("r1", ("110.00",)).model_copy(update={"id": "inv-ranked"})
    crm_view = invoice("r1", ("100.00",)).model_copy(update={"id": "inv-ranked"})
    with store.session() as session:
        connector.state.records.upsert_invoices(session, [ledger_view], "ledger", 3)
        connector.state.records.upsert_invoices(session, [crm_view], "crm", 1)
    stored = store.get_invoice("inv-ranked")
    assert stored is not None
    assert str(stored.total) == "110.00 USD" and [str(line.amount) for line in stored.lines] == ["110.00 USD"]
    with store.session() as session:
        connector.state.records.upsert_invoices(session, [crm_view], "ledger", 3)  # the ledger itself may change it
    changed = store.get_invoice("inv-ranked")
    assert changed is not None and str(changed.total) == "100.00 USD"


def test_a_sync_never_resets_what_finance_set_on_an_invoice(store: Store) -> None:
    record = invoice("r2").model_copy(update={"id": "inv-disputed"})
    with store.session() as session:
        connector.state.records.upsert_invoices(session, [record], "ledger", 3)
        session.execute(sa.text("UPDATE invoices SET disputed = TRUE WHERE id = 'inv-disputed'"))
    with store.session() as session:
        connector.state.records.upsert_invoices(session, [record], "ledger", 3)
    stored = store.get_invoice("inv-disputed")
    assert stored is not None and stored.disputed is True


def _validated(model: M) -> M:
    return type(model).model_validate(model.model_dump())


def test_records_read_back_equal_the_same_records_validated(store: Store) -> None:
    """Reading skips pydantic's validation of what the store wrote (`connector.unchecked`):
    what it builds must be exactly what validation would give, nested models and the fields
    marked as set included, in every currency exponent and with every optional part filled."""
    plan = PaymentPlan(instalments=[(date(2024, 6, 30), Money.of("61.72", "USD"))])
    invoices = [
        invoice("U1", tax="12.35", paid="10.00", customer_id="cust-1").model_copy(
            update={"promise_to_pay": date(2024, 6, 15), "payment_plan": plan, "disputed": True}
        ),
        invoice("J1", ("120000", "1"), "JPY", tax="12000"),
        invoice("K1", ("10.125", "0.001"), "KWD", tax="1.013"),
        invoice("E1", ()),
    ]
    disputed = payment("P2", "50.00", "EUR").model_copy(
        update={
            "amount_refunded": Money.of("5.00", "EUR"),
            "dispute_status": "open",
            "amount_disputed": Money.of("45.00", "EUR"),
            "dispute_reason": "fraudulent",
            "disputed_at": datetime(2024, 6, 3, 8, 0, tzinfo=UTC),
        }
    )
    stored: list[BaseModel] = [
        *store.store_page(SYSTEM, "invoices", "invoice", [_validated(i) for i in invoices], cursor="i"),
        *store.store_page(
            "gateway",
            "charges",
            "payment",
            [payment("P1", "1500", "JPY"), payment("P3", "0.500", "KWD"), _validated(disputed)],
            "p",
        ),
        *store.store_page(SYSTEM, "customers", "customer", [customer("C1")], cursor="c"),
    ]

    read: list[BaseModel] = [*store.list_invoices(), *store.list_payments(), *store.list_customers()]
    assert sorted(read, key=repr) == sorted(stored, key=repr)  # each value where it was written
    for model in read:
        again = _validated(model)
        assert model == again and model.model_dump() == again.model_dump()
        assert model.model_fields_set == set(type(model).model_fields)
        nested = [*getattr(model, "lines", []), *getattr(model, "refs", [])]
        assert nested and all(n == _validated(n) for n in nested)
    ids = {(type(m).__name__, m.refs[0].remote_id): m.id for m in stored}  # type: ignore[attr-defined]
    made = [
        Allocation(
            payment_id=ids["Payment", "P3"],
            invoice_id=ids["Invoice", "K1"],
            amount=Money.of("0.001", "KWD"),
            rule="exact",
            confidence=Decimal(1),
        ),
        Allocation(
            payment_id=ids["Payment", "P1"],
            invoice_id=ids["Invoice", "J1"],
            amount=Money.of("7", "JPY"),
            rule="manual",
            confidence=Decimal("0.75"),
            reason="finance",
            confirmed_by="alice",
        ),
    ]
    with store.session() as session:
        decisions.save_allocations(session, made, "applied")
        back = [s.allocation for s in decisions.load_allocations(session)]
    assert sorted(repr(a.model_copy(update={"id": None})) for a in back) == sorted(repr(a) for a in made)
    assert all(a.id == decisions.allocation_id(a.payment_id, a.invoice_id, a.rule) for a in back)
    assert all(a == _validated(a) and a.model_fields_set == set(Allocation.model_fields) for a in back)
    [jpy] = [i for i in read if isinstance(i, Invoice) and i.currency == "JPY"]
    assert jpy.total.amount == Decimal("132001") and str(jpy.lines[1].amount.amount) == "1"
    [kwd] = [i for i in read if isinstance(i, Invoice) and i.currency == "KWD"]
    assert str(kwd.tax.amount) == "1.013" and str(kwd.total.amount) == "11.139"
