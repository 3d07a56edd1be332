"""An undone match is not re-made by a rule (issue #15): once finance unmatched or rejected a
match of a payment, no rule applies that payment again; it is proposed, the refused pairs left
out, until finance decides.

The matcher's rule on plain values first, then finance's decisions and the next reconciliation
run against a real store, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from connector.config import Config
from connector.model import Customer, Invoice, Payment, Ref
from connector.money import Money
from connector.reconcile import decisions, reconcile
from connector.reconcile.run import ReconcileSummary, run_reconciliation
from connector.state import reconciliation as stored
from connector.state.store import Store
from connector.writeback.settle import Settler
from support.databases import BACKENDS, store_on
from support.reconcile_cases import inv, pairs, pay

# The matcher ----------------------------------------------------------------------------------


def test_a_held_payment_is_proposed_where_a_rule_would_have_applied_it():
    invoices = [inv("i1", "100.00"), inv("i2", "100.00")]
    result = reconcile(invoices, [pay("p1", "100.00")], rejected=[("p1", "i2")], held=["p1"])
    assert result.applied == []
    [proposal] = result.proposals
    assert [(c.invoice_ids, c.rule) for c in proposal.candidates] == [(("i1",), "exact_amount_unique")]


def test_without_the_hold_the_same_payment_is_applied_to_the_only_invoice_left():
    """The behaviour the hold changes: the rejected pair alone leaves one exact candidate."""
    invoices = [inv("i1", "100.00"), inv("i2", "100.00")]
    result = reconcile(invoices, [pay("p1", "100.00")], rejected=[("p1", "i2")])
    assert pairs(result) == [("p1", "i1", "100.00")]


def test_a_held_payment_is_proposed_even_for_the_invoice_its_remittance_or_metadata_names():
    invoices = [inv("i1", "250.00", number="INV-0042"), inv("i2", "100.00", number="INV-0043")]
    payments = [pay("p1", "250.00", remittance="INV-0042"), pay("p2", "100.00")]
    result = reconcile(
        invoices, payments, links={"p2": ["i2"]}, rejected=[("p1", "i9"), ("p2", "i9")], held=["p1", "p2"]
    )
    assert result.applied == []
    proposals = {p.payment_id: [(c.invoice_ids, c.rule) for c in p.candidates] for p in result.proposals}
    assert proposals["p1"][0][0] == ("i1",)
    assert proposals["p2"][0] == (("i2",), "explicit_link")


def test_other_payments_are_applied_as_before_beside_a_held_one():
    invoices = [inv("i1", "100.00"), inv("i2", "100.00"), inv("i3", "75.00")]
    result = reconcile(invoices, [pay("p1", "100.00"), pay("p2", "75.00")], rejected=[("p1", "i2")], held=["p1"])
    assert pairs(result) == [("p2", "i3", "75.00")]
    assert [p.payment_id for p in result.proposals] == ["p1"]


# Finance's decisions, then the next run -----------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with store_on(request.param, tmp_path) as store:
        yield store


def _invoice(id_: str, number: str, total: str) -> Invoice:
    usd = lambda value: Money.of(value, "USD")  # noqa: E731
    return Invoice(
        id=id_,
        number=number,
        customer_id="acme",
        currency="USD",
        issue_date=date(2024, 4, 1),
        due_date=date(2024, 5, 1),
        subtotal=usd(total),
        tax=usd("0"),
        total=usd(total),
        amount_paid=usd("0"),
        amount_credited=usd("0"),
        status="open",
        refs=[Ref(system="ledger", object_type="invoice", remote_id=f"L-{number}")],
    )


@pytest.fixture
def equal_candidates(store: Store) -> Store:
    """Acme owes INV-1 and INV-2 of 100.00 each; a card payment of 100.00 could pay either."""
    customer = Customer(id="acme", name="Acme", refs=[Ref(system="ledger", object_type="customer", remote_id="C-1")])
    store.store_page("ledger", "contacts", "customer", [customer], None, rank=3)
    invoices = [_invoice("inv1", "INV-1", "100.00"), _invoice("inv2", "INV-2", "100.00")]
    store.store_page("ledger", "invoices", "invoice", invoices, None, rank=3)
    payment = Payment(
        id="pay1",
        amount=Money.of("100.00", "USD"),
        received_at=datetime(2024, 6, 10, 12, tzinfo=UTC),
        method="card",
        customer_id="acme",
        refs=[Ref(system="gateway", object_type="payment", remote_id="ch_1")],
    )
    store.store_page("gateway", "charges", "payment", [payment], None, rank=1)
    return store


NO_CONNECTIONS = Config(path=None, database_url="sqlite://", connections={})


def _reconcile(store: Store) -> ReconcileSummary:
    """A run with no connections configured: every payment goes to the matcher."""
    return run_reconciliation(NO_CONNECTIONS, store)


def _settle(store: Store) -> Settler:
    return Settler(NO_CONNECTIONS, store)


def _applied(store: Store) -> list[tuple[str, str, str]]:
    with store.session() as session:
        return [
            (s.allocation.payment_id, s.allocation.invoice_id, str(s.allocation.amount.amount))
            for s in stored.load_allocations(session, status="applied")
        ]


def _candidates(summary: ReconcileSummary) -> list[list[str]]:
    [proposal] = summary.proposals
    return [c["invoice_ids"] for c in proposal["candidates"]]


def test_after_unmatching_an_accepted_candidate_the_payment_comes_back_as_a_proposal(equal_candidates):
    store = equal_candidates
    first = _reconcile(store)
    assert _candidates(first) == [["inv1"], ["inv2"]]
    [allocation] = decisions.accept_proposal(
        store, first.proposals[0]["id"], candidate=2, user="bob", settle=_settle(store)
    )
    decisions.unmatch(store, allocation.id or "", user="bob", reason="wrong invoice", settle=_settle(store))

    again = _reconcile(store)
    assert again.applied == [] and _applied(store) == []  # not re-made on INV-1 at 0.95
    assert _candidates(again) == [["inv1"]]  # the unmatched pair left out
    assert _reconcile(store).proposals == again.proposals  # and so it stays until finance decides

    decisions.accept_proposal(store, again.proposals[0]["id"], user="bob", settle=_settle(store))
    assert _applied(store) == [("pay1", "inv1", "100.00")]
    assert _reconcile(store).applied == []


def test_after_rejecting_a_proposal_a_new_invoice_of_that_amount_is_only_proposed(equal_candidates):
    store = equal_candidates
    first = _reconcile(store)
    decisions.reject_proposal(store, first.proposals[0]["id"], user="alice", reason="neither", settle=_settle(store))
    assert _reconcile(store).proposals == []

    store.store_page("ledger", "invoices", "invoice", [_invoice("inv3", "INV-3", "100.00")], None, rank=3)
    later = _reconcile(store)
    assert later.applied == [] and _applied(store) == []
    assert _candidates(later) == [["inv3"]]


def test_a_payment_finance_matched_by_hand_after_an_unmatch_is_left_as_finance_matched_it(equal_candidates):
    store = equal_candidates
    first = _reconcile(store)
    [allocation] = decisions.accept_proposal(
        store, first.proposals[0]["id"], candidate=2, user="bob", settle=_settle(store)
    )
    decisions.unmatch(store, allocation.id or "", user="bob", settle=_settle(store))
    decisions.match(store, "ch_1", "INV-1", user="bob", settle=_settle(store))
    summary = _reconcile(store)
    assert summary.applied == [] and summary.proposals == []
    assert _applied(store) == [("pay1", "inv1", "100.00")]
