"""Finance's decisions (`connector.reconcile.decisions`) called directly against a real SQLite
store: accept and reject a proposal, match and unmatch by hand, and the balances they check.

The CLI tests (test_reconcile_cli.py, e2e/test_e2e_finance_cli.py) show the commands' output;
these pin what each decision stores, refuses and remembers.

Two books:
- `proposed`: Acme (USD) INV-1 100.00, INV-2 60.00, INV-3 75.00, INV-4 85.00 and one card
  payment ch_1 of 160.00. Reconciliation cannot choose between INV-1 + INV-2 and INV-3 + INV-4
  (both sum to 160.00), so it proposes both, for finance to decide.
- `book`: invoices and card payments in USD, EUR, JPY and KWD (INV-K 10.000 and INV-K2 1.000 for a
  payment of 5.125) for matching by hand, and a ledger
  payment P-L that the ledger itself records against INV-L (rule `ledger_record`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connector.config import Config
from connector.errors import UsageError
from connector.model import Allocation, Customer, Invoice, Payment, Ref
from connector.money import Money
from connector.reconcile import decisions
from connector.reconcile.run import ReconcileSummary, run_reconciliation
from connector.state import reconciliation as stored
from connector.state.store import Store, open_store
from connector.state.tables import table
from connector.writeback.settle import Settler

# Finance's decisions settle the outbox (connector.writeback.settle); these books have no
# connections, so the settlement has nothing to write: the decisions are tested on their own.
NO_CONNECTIONS = Config(path=None, database_url="sqlite://", connections={})


def accept_proposal(store: Store, proposal: str, **kwargs: Any) -> list[Allocation]:
    return decisions.accept_proposal(store, proposal, settle=Settler(NO_CONNECTIONS, store), **kwargs)


def reject_proposal(store: Store, proposal: str, **kwargs: Any) -> None:
    decisions.reject_proposal(store, proposal, settle=Settler(NO_CONNECTIONS, store), **kwargs)


def match(store: Store, payment: str, invoice: str, **kwargs: Any) -> Allocation:
    return decisions.match(store, payment, invoice, settle=Settler(NO_CONNECTIONS, store), **kwargs)


def unmatch(store: Store, allocation: str, **kwargs: Any) -> Allocation:
    return decisions.unmatch(store, allocation, settle=Settler(NO_CONNECTIONS, store), **kwargs)


def _invoice(
    id_: str, number: str, customer: str, total: str, currency: str = "USD", *, paid: str = "0", status: str = "open"
) -> Invoice:
    money = lambda value: Money.of(value, currency)  # noqa: E731
    return Invoice(
        id=id_,
        number=number,
        customer_id=customer,
        currency=currency,
        issue_date=date(2024, 4, 1),
        due_date=date(2024, 5, 1),
        subtotal=money(total),
        tax=money("0"),
        total=money(total),
        amount_paid=money(paid),
        amount_credited=money("0"),
        status=status,  # type: ignore[arg-type]
        refs=[Ref(system="ledger", object_type="invoice", remote_id=f"L-{number}")],
    )


def _payment(
    id_: str, remote: str, customer: str, amount: str, currency: str = "USD", *, system: str = "gateway", **extra: Any
) -> Payment:
    return Payment(
        id=id_,
        amount=Money.of(amount, currency),
        received_at=datetime(2024, 6, 10, 12, tzinfo=UTC),
        method="card",
        customer_id=customer,
        **extra,
        refs=[Ref(system=system, object_type="payment", remote_id=remote)],
    )


def _customers(store: Store, *names: tuple[str, str]) -> None:
    store.store_page(
        "ledger",
        "contacts",
        "customer",
        [
            Customer(id=c, name=name, refs=[Ref(system="ledger", object_type="customer", remote_id=f"C-{c}")])
            for c, name in names
        ],
        None,
        rank=3,
    )


def _reconcile(store: Store) -> ReconcileSummary:
    """A reconciliation run with no connections configured: every payment goes to the matcher."""
    return run_reconciliation(Config(path=None, database_url="sqlite://", connections={}), store)


def _applied(store: Store, **filters: Any) -> list[Allocation]:
    with store.session() as session:
        return [s.allocation for s in stored.load_allocations(session, status="applied", **filters)]


def _rejected_pairs(store: Store) -> set[tuple[str, str]]:
    with store.session() as session:
        return {
            (s.allocation.payment_id, s.allocation.invoice_id)
            for s in stored.load_allocations(session, status="rejected")
        }


def _proposal(store: Store, proposal_id: str) -> dict[str, Any]:
    with store.session() as session:
        [found] = stored.load_proposals(session, status=None, ids=[proposal_id])
    return found


def _audit(store: Store, action: str) -> list[dict[str, Any]]:
    log = table("audit_log")
    with store.session() as session:
        rows = session.execute(sa.select(log).where(log.c.action == action).order_by(log.c.id)).mappings()
        return [dict(row) for row in rows]


def _balance(store: Store, invoice_id: str) -> Money:
    invoice = store.get_invoice(invoice_id)
    assert invoice is not None
    with store.session() as session:
        return decisions.invoice_balance(session, invoice)


def _unapplied(store: Store, payment_id: str) -> Money:
    [payment] = store.list_payments(ids=[payment_id])
    with store.session() as session:
        return decisions.payment_unapplied(session, payment)


def usd(value: str) -> Money:
    return Money.of(value, "USD")


# The books -------------------------------------------------------------------------------------


@dataclass
class Proposed:
    store: Store
    proposal: dict[str, Any]


@pytest.fixture
def proposed(tmp_path: Path) -> Iterator[Proposed]:
    store = open_store(f"sqlite:///{tmp_path / 't.db'}")
    _customers(store, ("acme", "Acme"))
    store.store_page(
        "ledger",
        "invoices",
        "invoice",
        [
            _invoice("inv1", "INV-1", "acme", "100.00"),
            _invoice("inv2", "INV-2", "acme", "60.00"),
            _invoice("inv3", "INV-3", "acme", "75.00"),
            _invoice("inv4", "INV-4", "acme", "85.00"),
        ],
        None,
        rank=3,
    )
    store.store_page("gateway", "charges", "payment", [_payment("pay1", "ch_1", "acme", "160.00")], None, rank=1)
    summary = _reconcile(store)
    [proposal] = summary.proposals
    # what the matcher proposes is the premise of every test on this book
    assert summary.applied == []
    assert [(c["invoice_ids"], c["amounts"], c["rule"]) for c in proposal["candidates"]] == [
        (["inv1", "inv2"], ["100.00", "60.00"], "subset_sum"),
        (["inv3", "inv4"], ["75.00", "85.00"], "subset_sum"),
    ]
    yield Proposed(store, proposal)
    store.close()


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 't.db'}")
    _customers(store, ("acme", "Acme"), ("eu", "Euro GmbH"), ("jp", "Tokyo KK"), ("kw", "Kuwait Co"))
    store.store_page(
        "ledger",
        "invoices",
        "invoice",
        [
            _invoice("inv1", "INV-1", "acme", "100.00"),
            _invoice("inv2", "INV-2", "acme", "60.00"),
            _invoice("invl", "INV-L", "acme", "100.00", paid="40.00", status="partially_paid"),
            _invoice("inve", "INV-E", "eu", "100.00", "EUR"),
            _invoice("invj", "INV-J", "jp", "10000", "JPY"),
            _invoice("invk", "INV-K", "kw", "10.000", "KWD"),
            _invoice("invk2", "INV-K2", "kw", "1.000", "KWD"),
        ],
        None,
        rank=3,
    )
    store.store_page(
        "gateway",
        "charges",
        "payment",
        [
            _payment("pay1", "ch_1", "acme", "160.00"),
            _payment("pay2", "ch_2", "acme", "50.00"),
            _payment("paye", "ch_e", "eu", "100.00", "EUR"),
            _payment("payj", "ch_j", "jp", "5000", "JPY"),
            _payment("payk", "ch_k", "kw", "5.125", "KWD"),
        ],
        None,
        rank=1,
    )
    store.store_page(
        "ledger", "payments", "payment", [_payment("payl", "P-L", "acme", "40.00", system="ledger")], None, rank=3
    )
    with store.session() as session:
        stored.save_allocations(
            session,
            [
                Allocation(
                    id="al-ledger",
                    payment_id="payl",
                    invoice_id="invl",
                    amount=usd("40.00"),
                    rule="ledger_record",
                    confidence=Decimal(1),
                    reason="recorded in ledger against this invoice",
                    confirmed_by="ledger",
                )
            ],
            "applied",
        )
    yield store
    store.close()


# Accepting a proposal ----------------------------------------------------------------------------


def test_accept_applies_exactly_the_amounts_of_the_chosen_candidate(proposed):
    store, proposal = proposed.store, proposed.proposal
    made = accept_proposal(store, proposal["id"], candidate=2, user="bob", reason="remittance by phone")
    assert [(a.invoice_id, a.amount, a.rule, a.confirmed_by) for a in made] == [
        ("inv3", usd("75.00"), "subset_sum", "bob"),
        ("inv4", usd("85.00"), "subset_sum", "bob"),
    ]
    assert sorted((a.invoice_id, a.amount) for a in _applied(store)) == [("inv3", usd("75.00")), ("inv4", usd("85.00"))]
    assert (_balance(store, "inv3"), _balance(store, "inv4"), _balance(store, "inv1")) == (
        usd("0.00"),
        usd("0.00"),
        usd("100.00"),
    )
    assert _unapplied(store, "pay1") == usd("0.00")
    decided = _proposal(store, proposal["id"])
    assert (decided["status"], decided["decided_by"]) == ("accepted", "bob")


def test_accept_audit_logs_the_user_the_reason_and_each_amount(proposed):
    store, proposal = proposed.store, proposed.proposal
    accept_proposal(store, proposal["id"], candidate=2, user="bob", reason="remittance by phone")
    entries = _audit(store, "accept")
    assert [(e["actor"], e["subject_id"], e["decision"]) for e in entries] == [
        ("bob", "pay1", "remittance by phone"),
        ("bob", "pay1", "remittance by phone"),
    ]
    assert [(e["inputs"]["invoice"], e["inputs"]["amount"]) for e in entries] == [
        ("inv3", "75.00 USD"),
        ("inv4", "85.00 USD"),
    ]


def test_accept_without_a_reason_records_which_candidate_was_accepted(proposed):
    store, proposal = proposed.store, proposed.proposal
    accept_proposal(store, proposal["id"], user="bob")
    assert sorted(a.invoice_id for a in _applied(store)) == ["inv1", "inv2"]  # candidate 1 by default
    assert {e["decision"] for e in _audit(store, "accept")} == {f"accepted candidate 1 of {proposal['id']}"}


@pytest.mark.parametrize("candidate", [0, 3])
def test_accept_refuses_a_candidate_the_proposal_does_not_have(proposed, candidate):
    store, proposal = proposed.store, proposed.proposal
    with pytest.raises(UsageError, match=f"has candidates 1 to 2, not {candidate}$"):
        accept_proposal(store, proposal["id"], candidate=candidate, user="bob")
    assert _applied(store) == [] and _proposal(store, proposal["id"])["status"] == "open"


def test_a_decided_proposal_cannot_be_decided_again(proposed):
    store, proposal = proposed.store, proposed.proposal
    accept_proposal(store, proposal["id"], user="bob")
    with pytest.raises(UsageError, match=f"proposal {proposal['id']} was already accepted by bob"):
        reject_proposal(store, proposal["id"], user="alice")
    with pytest.raises(UsageError, match="was already accepted by bob"):
        accept_proposal(store, proposal["id"], candidate=2, user="alice")
    assert sorted(a.invoice_id for a in _applied(store)) == ["inv1", "inv2"]


def test_accept_refuses_a_candidate_an_invoice_can_no_longer_take_and_applies_none_of_it(proposed):
    store, proposal = proposed.store, proposed.proposal
    # after the run, another payment of 10.00 is matched by hand to INV-4: it owes 75.00, not 85.00
    store.store_page("gateway", "charges", "payment", [_payment("pay9", "ch_9", "acme", "10.00")], None, rank=1)
    match(store, "ch_9", "INV-4", user="carol")
    with pytest.raises(UsageError, match=r"^invoice INV-4 owes only 75\.00 USD, not 85\.00 USD$"):
        accept_proposal(store, proposal["id"], candidate=2, user="bob")
    # nothing of the candidate stays applied (INV-3 was checked first), and the proposal is still open
    assert [(a.payment_id, a.invoice_id) for a in _applied(store)] == [("pay9", "inv4")]
    assert _proposal(store, proposal["id"])["status"] == "open"
    assert _audit(store, "accept") == []


def test_accept_or_reject_of_an_unknown_proposal_names_it(proposed):
    with pytest.raises(UsageError, match=r"^no proposal 'pr-nope' \(see `connector reconcile`\)$"):
        accept_proposal(proposed.store, "pr-nope", user="bob")
    with pytest.raises(UsageError, match="^no proposal 'pr-nope'"):
        reject_proposal(proposed.store, "pr-nope", user="bob")


# Rejecting a proposal ----------------------------------------------------------------------------


def test_reject_remembers_every_candidate_pair_so_they_are_not_proposed_again(proposed):
    store, proposal = proposed.store, proposed.proposal
    reject_proposal(store, proposal["id"], user="alice", reason="customer paid another entity")
    assert _rejected_pairs(store) == {("pay1", "inv1"), ("pay1", "inv2"), ("pay1", "inv3"), ("pay1", "inv4")}
    assert _applied(store) == []
    decided = _proposal(store, proposal["id"])
    assert (decided["status"], decided["decided_by"]) == ("rejected", "alice")

    again = _reconcile(store)
    assert again.proposals == [] and again.applied == []
    assert again.unmatched == ["pay1"]
    assert _unapplied(store, "pay1") == usd("160.00")


def test_reject_audit_logs_the_user_and_the_reason(proposed):
    store, proposal = proposed.store, proposed.proposal
    reject_proposal(store, proposal["id"], user="alice", reason="customer paid another entity")
    [entry] = _audit(store, "reject")
    assert (entry["actor"], entry["subject_id"], entry["inputs"], entry["decision"]) == (
        "alice",
        "pay1",
        {"proposal": proposal["id"]},
        "customer paid another entity",
    )


# Matching by hand ----------------------------------------------------------------------------------


def test_match_without_an_amount_applies_what_both_the_payment_and_the_invoice_allow(book):
    first = match(book, "ch_1", "INV-1", user="carol")
    assert (first.invoice_id, first.amount, first.rule, first.confirmed_by, first.confidence) == (
        "inv1",
        usd("100.00"),
        "manual",
        "carol",
        Decimal(1),
    )
    second = match(book, "ch_1", "INV-2", user="carol")
    assert second.amount == usd("60.00")
    assert _unapplied(book, "pay1") == usd("0.00")
    with pytest.raises(UsageError, match="^nothing to match: the payment has nothing left or the invoice owes nothing"):
        match(book, "ch_1", "INV-L", user="carol")


def test_match_finds_records_by_our_id_a_providers_id_or_the_number(book):
    made = match(book, "pay2", "L-INV-2", amount="10.00", user="carol")
    assert (made.payment_id, made.invoice_id, made.amount) == ("pay2", "inv2", usd("10.00"))
    again = match(book, "ch_2", "inv1", amount="5", user="carol")
    assert (again.payment_id, again.invoice_id, again.amount) == ("pay2", "inv1", usd("5.00"))


def test_match_refuses_more_than_the_payment_has_left(book):
    match(book, "ch_2", "INV-1", amount="20.00", user="carol")
    with pytest.raises(UsageError, match=r"^the payment has only 30\.00 USD left to apply, not 30\.01 USD$"):
        match(book, "ch_2", "INV-2", amount="30.01", user="carol")
    assert [(a.invoice_id, a.amount) for a in _applied(book, payment_ids=["pay2"])] == [("inv1", usd("20.00"))]


def test_match_refuses_more_than_the_invoice_owes(book):
    with pytest.raises(UsageError, match=r"^invoice INV-2 owes only 60\.00 USD, not 60\.01 USD$"):
        match(book, "ch_1", "INV-2", amount="60.01", user="carol")
    assert _applied(book, invoice_ids=["inv2"]) == []
    assert _audit(book, "match") == []


def test_match_refuses_more_than_an_invoice_owes_after_other_payments(book):
    match(book, "ch_1", "INV-2", amount="45.50", user="carol")
    with pytest.raises(UsageError, match=r"^invoice INV-2 owes only 14\.50 USD, not 14\.51 USD$"):
        match(book, "ch_2", "INV-2", amount="14.51", user="carol")
    assert match(book, "ch_2", "INV-2", user="carol").amount == usd("14.50")


@pytest.mark.parametrize("amount", [None, "10.00"])
def test_match_refuses_to_mix_currencies(book, amount):
    with pytest.raises(UsageError, match="^currencies differ: payment in USD, invoice in EUR"):
        match(book, "ch_1", "INV-E", amount=amount, user="carol")
    assert _applied(book, invoice_ids=["inve"]) == []


def test_match_across_currencies_says_an_allocation_never_mixes_them(book):
    with pytest.raises(UsageError) as refused:
        match(book, "ch_e", "INV-1", amount="10.00", user="carol")
    assert str(refused.value) == (
        "currencies differ: payment in EUR, invoice in USD; an allocation never mixes currencies: "
        "record the payment against the invoice in the ledger"
    )


@pytest.mark.parametrize(
    ("payment", "invoice", "amount", "message"),
    [
        ("ch_j", "INV-J", "100.5", "--amount 100.5 has more decimal places than JPY allows (0)"),
        ("ch_j", "INV-J", "0.1", "--amount 0.1 has more decimal places than JPY allows (0)"),
        ("ch_k", "INV-K", "1.0005", "--amount 1.0005 has more decimal places than KWD allows (3)"),
        ("ch_k", "INV-K", " 2.1254 ", "--amount 2.1254 has more decimal places than KWD allows (3)"),
        ("ch_1", "INV-1", "10.001", "--amount 10.001 has more decimal places than USD allows (2)"),
    ],
)
def test_match_refuses_more_decimals_than_the_currency_allows(book, payment, invoice, amount, message):
    with pytest.raises(UsageError) as refused:
        match(book, payment, invoice, amount=amount, user="carol")
    assert str(refused.value) == message
    assert _applied(book, payment_ids=["payj", "payk", "pay1"]) == []


def test_match_accepts_trailing_zeros_the_currency_can_hold(book):
    assert match(book, "ch_j", "INV-J", amount="100.000", user="carol").amount == Money.of("100", "JPY")
    assert match(book, "ch_k", "INV-K", amount="1.2500", user="carol").amount == Money.of("1.250", "KWD")


def test_a_match_of_a_kwd_payment_is_exact_to_the_fils(book):
    made = match(book, "ch_k", "INV-K", amount="5.124", user="carol")
    assert made.amount == Money.of("5.124", "KWD")
    [kept] = _applied(book, payment_ids=["payk"])
    assert (str(kept.amount.amount), kept.amount.currency) == ("5.124", "KWD")
    assert _balance(book, "invk") == Money.of("4.876", "KWD")
    assert _unapplied(book, "payk") == Money.of("0.001", "KWD")
    # the last fils goes to another invoice: not a fils more, and exactly that one without an amount
    with pytest.raises(UsageError, match=r"^the payment has only 0\.001 KWD left to apply, not 0\.002 KWD$"):
        match(book, "payk", "INV-K2", amount="0.002", user="carol")
    assert match(book, "payk", "INV-K2", user="carol").amount == Money.of("0.001", "KWD")
    assert (_balance(book, "invk2"), _unapplied(book, "payk")) == (Money.of("0.999", "KWD"), Money.of("0.000", "KWD"))


def test_a_match_without_an_amount_takes_the_whole_kwd_and_jpy_payment(book):
    assert match(book, "ch_k", "INV-K", user="carol").amount == Money.of("5.125", "KWD")
    assert _balance(book, "invk") == Money.of("4.875", "KWD")
    assert match(book, "ch_j", "INV-J", user="carol").amount == Money.of("5000", "JPY")
    assert _balance(book, "invj") == Money.of("5000", "JPY")


def test_match_refuses_a_second_manual_match_of_the_same_pair(book):
    match(book, "ch_1", "INV-1", amount="10.00", user="carol")
    with pytest.raises(UsageError, match="^ch_1 is already matched by hand to INV-1; unmatch it first$"):
        match(book, "ch_1", "INV-1", amount="10.00", user="carol")
    assert [a.amount for a in _applied(book, payment_ids=["pay1"])] == [usd("10.00")]


def test_match_audit_logs_the_user_the_amount_and_the_reason(book):
    made = match(book, "ch_1", "INV-1", amount="12.34", user="carol", reason="remittance email")
    [entry] = _audit(book, "match")
    assert (entry["actor"], entry["subject_type"], entry["subject_id"], entry["decision"]) == (
        "carol",
        "payment",
        "pay1",
        "remittance email",
    )
    assert entry["inputs"] == {"invoice": "inv1", "amount": "12.34 USD", "rule": "manual", "allocation": made.id}
    assert made.reason == "remittance email"


def test_match_without_a_reason_says_who_matched(book):
    made = match(book, "ch_1", "INV-1", amount="1.00", user="carol")
    assert made.reason == "matched by carol"
    assert _audit(book, "match")[0]["decision"] == "manual match"


@pytest.mark.parametrize(
    ("payment", "invoice", "message"),
    [
        ("ch_nope", "INV-1", r"^no payment 'ch_nope' \(give our id or a provider's payment id\)$"),
        ("ch_1", "INV-404", r"^no invoice 'INV-404' \(give our id, a provider's id or the invoice number\)$"),
    ],
)
def test_match_names_the_record_it_cannot_find(book, payment, invoice, message):
    with pytest.raises(UsageError, match=message):
        match(book, payment, invoice, amount="1.00", user="carol")


@pytest.mark.parametrize("amount", ["1e30", "1e400", "100000000000000000000000000000", "1E+999999999"])
def test_match_refuses_an_amount_too_large_to_hold_with_a_usage_error(book, amount):
    with pytest.raises(UsageError, match=f"^--amount {re.escape(amount)} is too large for an amount in USD$"):
        match(book, "ch_1", "INV-1", amount=amount, user="carol")


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity", "sNaN", "inf"])
def test_match_refuses_an_amount_that_is_not_a_finite_number(book, amount):
    with pytest.raises(UsageError, match="^--amount: not a finite amount"):
        match(book, "ch_1", "INV-1", amount=amount, user="carol")


@pytest.mark.parametrize(
    "amount", ["1.00000000000000000000000000001", "1.000000000000000000000000000000000000000000000001", "1e-400"]
)
def test_match_refuses_decimals_beyond_28_significant_digits_instead_of_rounding_them(book, amount):
    with pytest.raises(UsageError, match="more decimal places than USD allows"):
        match(book, "ch_1", "INV-1", amount=amount, user="carol")


def test_match_takes_a_large_amount_with_its_trailing_zeros_to_the_payments_check(book):
    """28 digits at the currency's exponent fit; such an amount is refused by what the payment
    has left, like any other too large for it."""
    with pytest.raises(UsageError, match="the payment has only 160.00 USD left to apply"):
        match(book, "ch_1", "INV-1", amount="99999999999999999999999999.00", user="carol")


def test_a_match_on_a_payment_refunded_since_it_was_allocated_says_nothing_is_left(book):
    match(book, "ch_2", "INV-1", amount="50.00", user="carol")
    [charge] = book.list_payments(ids=["pay2"])
    refunded = charge.model_copy(update={"status": "partially_refunded", "amount_refunded": usd("20.00")})
    book.store_page("gateway", "charges", "payment", [refunded], None, rank=1)
    with pytest.raises(UsageError, match="the payment has only 0.00 USD left to apply"):
        match(book, "ch_2", "INV-2", amount="1.00", user="carol")


# Unmatching ----------------------------------------------------------------------------------------


def test_unmatch_removes_the_allocation_and_gives_back_the_balance(book):
    made = match(book, "ch_1", "INV-1", amount="70.00", user="carol")
    assert _balance(book, "inv1") == usd("30.00")
    removed = unmatch(book, made.id or "", user="dave", reason="wrong customer")
    assert (removed.id, removed.amount) == (made.id, usd("70.00"))
    assert _applied(book, payment_ids=["pay1"]) == []
    assert (_balance(book, "inv1"), _unapplied(book, "pay1")) == (usd("100.00"), usd("160.00"))


def test_unmatch_remembers_the_pair_as_rejected_and_audit_logs_it(book):
    made = match(book, "ch_1", "INV-1", amount="70.00", user="carol")
    unmatch(book, made.id or "", user="dave", reason="wrong customer")
    assert _rejected_pairs(book) == {("pay1", "inv1")}
    [entry] = _audit(book, "unmatch")
    assert (entry["actor"], entry["subject_id"], entry["decision"]) == ("dave", "pay1", "wrong customer")
    assert entry["inputs"] == {"invoice": "inv1", "amount": "70.00 USD", "allocation": made.id}


def test_an_unmatched_pair_is_not_proposed_again(proposed):
    store, proposal = proposed.store, proposed.proposal
    made = match(store, "ch_1", "INV-1", amount="100.00", user="carol")
    unmatch(store, made.id or "", user="carol")
    again = _reconcile(store)
    assert again.applied == []
    offered = {invoice_id for p in again.proposals for c in p["candidates"] for invoice_id in c["invoice_ids"]}
    assert "inv1" not in offered
    assert proposal["id"] not in {p["id"] for p in again.proposals}


def test_a_pair_matched_again_by_hand_after_unmatch_is_kept_by_the_next_run(proposed):
    store = proposed.store
    made = match(store, "ch_1", "INV-1", amount="100.00", user="carol")
    unmatch(store, made.id or "", user="carol")
    match(store, "ch_1", "INV-1", amount="100.00", user="carol", reason="it was right after all")
    _reconcile(store)
    assert [(a.invoice_id, a.amount, a.rule) for a in _applied(store, invoice_ids=["inv1"])] == [
        ("inv1", usd("100.00"), "manual")
    ]


def test_unmatch_refuses_the_ledgers_own_record(book):
    with pytest.raises(UsageError) as refused:
        unmatch(book, "al-ledger", user="dave")
    assert str(refused.value) == "this allocation is the ledger's own record; change the payment in the ledger"
    assert [a.id for a in _applied(book, payment_ids=["payl"])] == ["al-ledger"]
    assert _rejected_pairs(book) == set() and _audit(book, "unmatch") == []


def test_unmatch_of_an_unknown_or_already_removed_allocation_names_it(book):
    with pytest.raises(UsageError, match=r"^no applied allocation 'al-nope' \(see `connector reconcile --json`\)$"):
        unmatch(book, "al-nope", user="dave")
    made = match(book, "ch_1", "INV-1", amount="1.00", user="carol")
    unmatch(book, made.id or "", user="dave")
    with pytest.raises(UsageError, match=f"^no applied allocation '{made.id}'"):
        unmatch(book, made.id or "", user="dave")


# Balances the decisions check against -------------------------------------------------------------


def test_invoice_balance_counts_only_the_allocations_the_ledger_does_not_hold(book):
    # INV-L: 100.00, of which the ledger says 40.00 is paid (by P-L, its own record): 60.00 owed
    assert _balance(book, "invl") == usd("60.00")
    match(book, "ch_2", "INV-L", amount="10.00", user="carol")
    assert _balance(book, "invl") == usd("50.00")
    with pytest.raises(UsageError, match=r"^invoice INV-L owes only 50\.00 USD, not 50\.01 USD$"):
        match(book, "ch_1", "INV-L", amount="50.01", user="carol")


def test_payment_unapplied_counts_applied_allocations_the_ledgers_own_included(book):
    assert _unapplied(book, "payl") == usd("0.00")
    made = match(book, "ch_1", "INV-1", amount="70.00", user="carol")
    assert _unapplied(book, "pay1") == usd("90.00")
    unmatch(book, made.id or "", user="carol")  # a rejected allocation uses nothing
    assert _unapplied(book, "pay1") == usd("160.00")


def test_invoice_balance_of_a_void_invoice_is_zero_so_nothing_can_be_matched_to_it(book):
    book.store_page(
        "ledger", "invoices", "invoice", [_invoice("invv", "INV-V", "acme", "30.00", status="void")], None, rank=3
    )
    assert _balance(book, "invv") == usd("0.00")
    with pytest.raises(UsageError, match="^nothing to match"):
        match(book, "ch_1", "INV-V", user="carol")
    with pytest.raises(UsageError, match=r"^invoice INV-V owes only 0\.00 USD, not 1\.00 USD$"):
        match(book, "ch_1", "INV-V", amount="1.00", user="carol")


def test_a_payment_naming_an_invoice_in_another_currency_cannot_be_accepted_and_says_why(proposed):
    store = proposed.store
    eur = _payment("pay8", "ch_8", "acme", "92.00", "EUR", remittance="INV-1")
    store.store_page("gateway", "charges", "payment", [eur], None, rank=1)
    summary = _reconcile(store)
    [flagged] = [p for p in summary.proposals if p["payment_id"] == "pay8"]
    first = flagged["candidates"][0]
    assert first["reason"].startswith("remittance 'INV-1' names Acme's INV-1, 100.00 USD open: ")
    assert "92.00 EUR for 100.00 USD = 1.086957 USD per EUR" in first["reason"]
    assert flagged["note"].startswith("the remittance names Acme's INV-1 in USD")
    with pytest.raises(UsageError, match=r"currencies differ: .* record the payment against the invoice in the ledger"):
        accept_proposal(store, flagged["id"], user="bob")
    assert _applied(store) == [] and _proposal(store, flagged["id"])["status"] == "open"


def test_a_possible_duplicate_payment_is_kept_as_credit_with_its_note_stored_and_nothing_to_accept(book):
    # INV-0007 was paid in full already; a second payment naming it is not moved to INV-0008, the
    # next invoice of the same amount: the money stays credit and finance reads why.
    book.store_page(
        "ledger",
        "invoices",
        "invoice",
        [
            _invoice("invp", "INV-0007", "kw", "12.340", "KWD", paid="12.340", status="paid"),
            _invoice("invq", "INV-0008", "kw", "12.340", "KWD"),
        ],
        None,
        rank=3,
    )
    again = _payment("payd", "ch_d", "kw", "12.340", "KWD", remittance="INV-0007")
    book.store_page("gateway", "charges", "payment", [again], None, rank=1)
    summary = _reconcile(book)
    assert [a for a in summary.applied if a.payment_id == "payd"] == []
    [flagged] = [p for p in summary.proposals if p["payment_id"] == "payd"]
    stored_note = _proposal(book, flagged["id"])["note"]
    assert stored_note.startswith("possible duplicate payment: Kuwait Co's INV-0007 was paid in full already")
    assert "keep 12.340 KWD as unapplied credit or refund it" in stored_note
    # the invoice of the same amount may be shown to finance, never applied by a rule
    assert flagged["candidates"] and all(Decimal(c["confidence"]) < Decimal("0.95") for c in flagged["candidates"])
    assert _balance(book, "invq") == Money.of("12.340", "KWD")
