"""The receivables as a listing reads them (`state.listing`): each invoice's figures and refs as
its built invoice has them, and the connector's allocations summed in the invoice's currency."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa

from connector.errors import CurrencyMismatchError
from connector.model import Allocation, PaymentPlan, figures_of
from connector.money import Money, minor_text
from connector.reconcile.types import LEDGER_RULE
from connector.state import Store, listing, records
from connector.state import reconciliation as decisions
from connector.state.tables import table
from support.state_factories import invoice, payment, ref


def _one_invoice_in_three_systems(store: Store) -> str:
    """An invoice the ledger, the gateway and the CRM (a deal and an invoice) each hold, stored
    in an order that is not theirs, as linking leaves such records: one invoice, four refs."""
    pages = [
        ("gateway", "invoice", invoice("in_Z9")),
        ("ledger", "invoice", invoice("a-7")),
        ("crm", "deal", invoice("900")),
        ("crm", "invoice", invoice("12")),
    ]
    ids: list[str] = []
    for system, object_type, record in pages:
        record = record.model_copy(update={"refs": [ref(record.refs[0].remote_id, object_type, system)]})
        [stored] = store.store_page(system, f"{object_type}s", "invoice", [record], cursor="c")
        assert stored.id is not None
        ids.append(stored.id)
    refs = table("refs")
    with store.session() as session:
        session.execute(sa.update(refs).where(refs.c.entity_id.in_(ids[1:])).values(entity_id=ids[0]))
        session.execute(sa.delete(table("invoices")).where(table("invoices").c.id.in_(ids[1:])))
    return ids[0]


def test_each_receivable_reads_as_its_built_invoice_shows_it(store: Store) -> None:
    linked = _one_invoice_in_three_systems(store)
    planned = invoice("P1", ("300.00",)).model_copy(
        update={"payment_plan": PaymentPlan(instalments=[(date(2024, 6, 30), Money.of("300.00", "USD"))])}
    )
    others = store.store_page(
        "ledger",
        "invoices",
        "invoice",
        [invoice("J1", ("120000",), "JPY", paid="1"), invoice("K1", ("10.125",), "KWD", tax="1.013"), planned],
        cursor="c2",
    )
    ids = [linked, *(i.id for i in others if i.id)]
    with store.session() as session:
        read = listing.receivable_figures(session, list(reversed(ids)))
        without_refs = listing.receivable_figures(session, ids, with_refs=False)
    built = [figures_of(i) for i in store.list_receivables(ids=ids)]
    assert read == built
    [four] = [f for f in read if f.id == linked]
    assert len(four.refs) == 4 and list(four.refs) == sorted(four.refs)
    assert [f.payment_plan for f in read].count(True) == 1
    assert without_refs == [f._replace(refs=()) for f in built]
    with store.session() as session:
        where = records.ref_ids_for(session, "invoice", ids)
        whole = records.refs_for(session, "invoice", ids)
    assert where == {i: [(r.system, r.object_type, r.remote_id) for r in refs] for i, refs in whole.items()}
    assert where[linked] == list(four.refs)


def test_the_connectors_allocations_add_up_in_minor_units_and_another_currency_is_refused(store: Store) -> None:
    [usd, jpy] = store.store_page(
        "ledger", "invoices", "invoice", [invoice("U1"), invoice("Y1", ("5000",), "JPY")], cursor="c"
    )
    [p1, p2, p3] = store.store_page(
        "gateway", "charges", "payment", [payment("P1"), payment("P2"), payment("P3")], cursor="c"
    )
    assert usd.id and jpy.id and p1.id and p2.id and p3.id

    def allocation(payment_id: str, invoice_id: str, amount: Money, rule: str) -> Allocation:
        return Allocation(payment_id=payment_id, invoice_id=invoice_id, amount=amount, rule=rule, confidence=Decimal(1))

    with store.session() as session:
        decisions.save_allocations(
            session,
            [
                allocation(p1.id, usd.id, Money.of("10.05", "USD"), "exact"),
                allocation(p2.id, usd.id, Money.of("0.95", "USD"), "manual"),
                allocation(p3.id, usd.id, Money.of("99.00", "USD"), LEDGER_RULE),  # in amount_paid already
                allocation(p1.id, jpy.id, Money.of("7", "JPY"), "exact"),
            ],
            "applied",
        )
        decisions.save_allocations(session, [allocation(p3.id, jpy.id, Money.of("1", "JPY"), "manual")], "proposed")
        figures = listing.receivable_figures(session, [usd.id, jpy.id])
        assert listing.applied_not_in_ledger(session, figures, LEDGER_RULE) == {usd.id: 1100, jpy.id: 7}
        decisions.save_allocations(session, [allocation(p2.id, jpy.id, Money.of("1.00", "USD"), "manual")], "applied")
        with pytest.raises(CurrencyMismatchError):
            listing.applied_not_in_ledger(session, figures, LEDGER_RULE)


def test_minor_units_print_as_the_money_they_make() -> None:
    rng = random.Random(7)
    for currency in ("JPY", "USD", "KWD", "CLF"):
        values = [0, 1, -1, 9, 10, 99, 100, 101, -100, 10**15 + 7, -(10**15) - 3]
        values += [rng.randrange(-(10**12), 10**12) for _ in range(300)]
        for units in values:
            assert minor_text(units, currency) == str(Money.from_minor(units, currency).amount), (units, currency)
    assert (minor_text(-5, "USD"), minor_text(1250, "KWD"), minor_text(1200, "JPY")) == ("-0.05", "1.250", "1200")
