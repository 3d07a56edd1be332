"""Each rule, partial and over payments, and ambiguity turning into proposals."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from connector.money import Money
from connector.reconcile import ReconcileConfig, reconcile
from support.reconcile_cases import RECEIVED, check_invariants, inv, pairs, pay


def test_explicit_link_applies_with_full_confidence():
    invoices = [inv("i1", "100.00", number="INV-1"), inv("i2", "100.00", number="INV-2")]
    payments = [pay("p1", "100.00")]
    result = reconcile(invoices, payments, links={"p1": ["i2"]})
    assert pairs(result) == [("p1", "i2", "100.00")]
    assert result.applied[0].rule == "explicit_link"
    assert result.applied[0].confidence == Decimal("1.00")
    assert "metadata" in result.applied[0].reason


def test_explicit_link_wins_over_an_earlier_payments_weaker_match():
    # p0 arrives first and matches i1 by amount only; p1 names i1 in its metadata.
    invoices = [inv("i1", "100.00")]
    payments = [pay("p0", "100.00", received=pay("x", "1").received_at.replace(hour=1)), pay("p1", "100.00")]
    result = reconcile(invoices, payments, links={"p1": ["i1"]})
    assert pairs(result) == [("p1", "i1", "100.00")]
    assert result.unmatched == ["p0"]


def test_remittance_number_applies_the_named_invoice():
    invoices = [inv("i1", "250.00", number="INV-0042"), inv("i2", "250.00", number="INV-0043")]
    result = reconcile(invoices, [pay("p1", "250.00", remittance="Payment for INV-0043, thank you")])
    assert pairs(result) == [("p1", "i2", "250.00")]
    applied = result.applied[0]
    assert applied.rule == "remittance_number"
    assert applied.confidence >= ReconcileConfig().auto_threshold
    assert "INV-0043" in applied.reason


def test_exact_amount_unique_applies_the_only_invoice_with_that_balance():
    invoices = [inv("i1", "100.00"), inv("i2", "250.00")]
    result = reconcile(invoices, [pay("p1", "250.00")])
    assert pairs(result) == [("p1", "i2", "250.00")]
    assert result.applied[0].rule == "exact_amount_unique"


def test_exact_amount_counts_what_is_already_paid_on_the_invoice():
    invoices = [inv("i1", "300.00", paid="50.00"), inv("i2", "250.00", customer="c2")]
    result = reconcile(invoices, [pay("p1", "250.00")])
    assert pairs(result) == [("p1", "i1", "250.00")]


def test_two_equally_good_candidates_become_a_proposal_not_a_guess():
    invoices = [inv("i1", "100.00"), inv("i2", "100.00")]
    payments = [pay("p1", "100.00")]
    result = reconcile(invoices, payments)
    assert result.applied == []
    [proposal] = result.proposals
    assert proposal.payment_id == "p1"
    assert {c.invoice_ids for c in proposal.candidates} == {("i1",), ("i2",)}
    assert all(c.rule == "exact_amount_unique" for c in proposal.candidates)
    assert all(c.confidence < ReconcileConfig().auto_threshold for c in proposal.candidates)
    assert result.unapplied == {"p1": Money.of("100.00", "USD")}


def test_ambiguous_remittance_number_becomes_a_proposal():
    # Two number series both have a 42 for this customer.
    invoices = [inv("i1", "80.00", number="INV-0042"), inv("i2", "90.00", number="SO-42")]
    result = reconcile(invoices, [pay("p1", "85.00", remittance="#42")])
    assert result.applied == []
    [proposal] = result.proposals
    assert {c.invoice_ids for c in proposal.candidates} == {("i1",), ("i2",)}


def test_amount_within_tolerance_is_proposed_with_its_gap():
    invoices = [inv("i1", "100.00"), inv("i2", "500.00")]
    result = reconcile(invoices, [pay("p1", "97.10")])  # a 2.9 % card fee taken off
    assert result.applied == []
    [proposal] = result.proposals
    best = proposal.candidates[0]
    assert best.invoice_ids == ("i1",) and best.rule == "amount_within_tolerance"
    assert best.amounts == (Money.of("97.10", "USD"),)
    assert "2.90 USD below" in best.reason


def test_tolerance_can_be_set_per_currency_in_absolute_terms():
    config = ReconcileConfig(tolerance_fraction=Decimal(0), tolerance_absolute={"JPY": Decimal(500)})
    invoices = [inv("i1", "10000", currency="JPY")]
    result = reconcile(invoices, [pay("p1", "9600", currency="JPY")], config=config)
    assert result.proposals[0].candidates[0].rule == "amount_within_tolerance"
    result = reconcile(invoices, [pay("p1", "9400", currency="JPY")], config=config)
    # beyond the tolerance: only the weak "oldest open invoice" guess remains
    assert [c.rule for c in result.proposals[0].candidates] == ["payer_open_invoice"]


def test_subset_sum_proposes_the_set_of_invoices_the_payment_adds_up_to():
    invoices = [inv("i1", "120.00"), inv("i2", "80.00"), inv("i3", "45.50"), inv("i4", "999.00")]
    result = reconcile(invoices, [pay("p1", "165.50")])
    [proposal] = result.proposals
    best = proposal.candidates[0]
    assert best.rule == "subset_sum"
    assert set(best.invoice_ids) == {"i1", "i3"}
    assert sum(a.amount for a in best.amounts) == Decimal("165.50")


def test_subset_sum_of_the_whole_open_account_is_applied():
    invoices = [inv("i1", "120.00"), inv("i2", "80.00"), inv("i3", "45.50")]
    payments = [pay("p1", "245.50")]
    result = reconcile(invoices, payments)
    assert sorted(pairs(result)) == [("p1", "i1", "120.00"), ("p1", "i2", "80.00"), ("p1", "i3", "45.50")]
    assert {a.rule for a in result.applied} == {"subset_sum"}
    check_invariants(invoices, payments, result)


def test_subset_search_stays_bounded_with_many_open_invoices():
    invoices = [inv(f"i{n}", str(100 + n)) for n in range(5000)]
    result = reconcile(invoices, [pay("p1", "100000.00")])
    assert result.applied == []


def test_one_payment_for_several_invoices_named_in_the_remittance():
    invoices = [inv("i1", "100.00", number="INV-0042"), inv("i2", "50.00", number="INV-0043")]
    payments = [pay("p1", "150.00", remittance="Invoice #42 + #43")]
    result = reconcile(invoices, payments)
    assert pairs(result) == [("p1", "i1", "100.00"), ("p1", "i2", "50.00")]
    assert result.unapplied == {}


def test_several_numbers_are_paid_in_the_order_written():
    invoices = [inv("i1", "100.00", number="INV-0042"), inv("i2", "50.00", number="INV-0043")]
    payments = [pay("p1", "120.00", remittance="INV-0043 and INV-0042")]
    result = reconcile(invoices, payments)
    assert pairs(result) == [("p1", "i2", "50.00"), ("p1", "i1", "70.00")]
    assert "30.00 USD stays open" in result.applied[0].reason


def test_partial_payment_leaves_balance_open():
    invoices = [inv("i1", "1000.00", number="INV-0042")]
    payments = [pay("p1", "400.00", remittance="INV-0042 part payment")]
    result = reconcile(invoices, payments)
    assert pairs(result) == [("p1", "i1", "400.00")]
    assert "partial payment: 600.00 USD stays open" in result.applied[0].reason
    assert result.unapplied == {}
    # the next payment sees the 600.00 still owed
    again = reconcile(invoices, [pay("p2", "600.00")], allocations=result.applied)
    assert pairs(again) == [("p2", "i1", "600.00")]


def test_overpayment_surplus_is_kept_as_unapplied_credit():
    invoices = [inv("i1", "100.00", number="INV-0042")]
    payments = [pay("p1", "130.00", remittance="INV-0042")]
    result = reconcile(invoices, payments)
    assert pairs(result) == [("p1", "i1", "100.00")]
    assert result.unapplied == {"p1": Money.of("30.00", "USD")}
    assert "overpayment: 30.00 USD kept as unapplied credit" in result.applied[0].reason
    check_invariants(invoices, payments, result)


def test_overpayment_through_an_explicit_link_keeps_the_surplus():
    invoices = [inv("i1", "100.00")]
    result = reconcile(invoices, [pay("p1", "100.01")], links={"p1": ["i1"]})
    assert pairs(result) == [("p1", "i1", "100.00")]
    assert result.unapplied == {"p1": Money.of("0.01", "USD")}


def test_void_and_draft_invoices_are_never_matched():
    invoices = [inv("i1", "100.00", status="void", number="INV-1"), inv("i2", "100.00", status="draft")]
    result = reconcile(invoices, [pay("p1", "100.00", remittance="INV-1")])
    assert result.applied == [] and result.proposals == []
    assert result.unmatched == ["p1"]


def test_the_auto_threshold_decides_what_is_applied():
    invoices = [inv("i1", "100.00"), inv("i2", "250.00")]
    payments = [pay("p1", "250.00")]
    strict = reconcile(invoices, payments, config=ReconcileConfig(auto_threshold=Decimal("0.99")))
    assert strict.applied == []
    assert strict.proposals[0].candidates[0].invoice_ids == ("i2",)


def test_pending_and_failed_payments_are_not_matched():
    invoices = [inv("i1", "100.00")]
    payments = [pay("p1", "100.00", status="pending"), pay("p2", "100.00", status="failed")]
    result = reconcile(invoices, payments)
    assert result.applied == [] and result.proposals == [] and result.unapplied == {}


def test_a_partial_payment_naming_nothing_is_proposed_against_the_oldest_open_invoice():
    invoices = [inv("i1", "1000.00", number="INV-0001")]
    result = reconcile(invoices, [pay("p1", "400.00")])
    assert result.applied == [] and result.unmatched == []
    [proposal] = result.proposals
    [best] = proposal.candidates
    assert best.rule == "payer_open_invoice" and best.invoice_ids == ("i1",)
    assert best.amounts == (Money.of("400.00", "USD"),)
    assert best.confidence < ReconcileConfig().auto_threshold
    assert "partial payment: 600.00 USD stays open" in best.reason


def test_an_overpayment_naming_nothing_proposes_the_open_invoices_in_full_and_keeps_the_surplus():
    invoices = [
        inv("new", "300.00", due=date(2024, 3, 31)),
        inv("old", "500.00", due=date(2024, 1, 31)),
        inv("eur", "100.00", currency="EUR"),
        inv("other", "100.00", customer="c2"),
    ]
    payments = [pay("p1", "900.00")]
    result = reconcile(invoices, payments)
    assert result.applied == []
    [proposal] = result.proposals
    [best] = proposal.candidates
    # oldest due first; never the EUR invoice nor another customer's
    assert best.invoice_ids == ("old", "new") and [str(a.amount) for a in best.amounts] == ["500.00", "300.00"]
    assert best.rule == "payer_open_invoice" and best.confidence < ReconcileConfig().auto_threshold
    assert "overpayment: 100.00 USD kept as unapplied credit" in best.reason
    assert result.unapplied == {"p1": Money.of("900.00", "USD")}
    check_invariants(invoices, payments, result)


def test_a_payment_between_invoice_balances_pays_the_oldest_and_part_of_the_next():
    invoices = [inv("new", "300.00", due=date(2024, 3, 31)), inv("old", "500.00", due=date(2024, 1, 31))]
    result = reconcile(invoices, [pay("p1", "620.00")])
    [best] = result.proposals[0].candidates
    assert (best.invoice_ids, [str(a.amount) for a in best.amounts]) == (("old", "new"), ["500.00", "120.00"])
    assert "partial payment: 180.00 USD stays open" in best.reason


def test_the_oldest_first_guess_is_bounded():
    invoices = [inv(f"i{n}", "10.00", due=date(2024, 1, 1 + n)) for n in range(9)]
    result = reconcile(invoices, [pay("p1", "95.00")], config=ReconcileConfig(oldest_first_invoices=3))
    [best] = result.proposals[0].candidates
    assert best.invoice_ids == ("i0", "i1", "i2")
    assert "overpayment: 65.00 USD kept as unapplied credit" in best.reason


def test_an_oldest_invoice_guess_is_applied_only_when_finance_lowers_the_threshold():
    invoices = [inv("i1", "1000.00")]
    trusting = ReconcileConfig(auto_threshold=Decimal("0.40"))
    assert pairs(reconcile(invoices, [pay("p1", "400.00")], config=trusting)) == [("p1", "i1", "400.00")]
    assert reconcile(invoices, [pay("p1", "400.00")], rejected=[("p1", "i1")]).unmatched == ["p1"]


def test_the_oldest_invoice_guess_counts_only_invoices_still_open():
    invoices = [inv("i1", "100.00", due=date(2024, 1, 1)), inv("i2", "900.00", due=date(2024, 2, 1))]
    payments = [
        pay("p0", "50.00"),
        pay("p1", "100.00", received=RECEIVED.replace(hour=13)),
        pay("p2", "30.00", received=RECEIVED.replace(hour=14)),
    ]
    result = reconcile(invoices, payments)
    assert pairs(result) == [("p1", "i1", "100.00")]  # exact amount, although p0 came first
    # Proposals are weighed against the book as the run leaves it: i1 is paid by then, so
    # neither p0 nor p2 is proposed for it (accepting that would only be refused).
    proposed = {p.payment_id: [c.invoice_ids for c in p.candidates] for p in result.proposals}
    assert proposed == {"p0": [("i2",)], "p2": [("i2",)]}
    check_invariants(invoices, payments, result)


def test_the_surplus_of_a_payment_already_applied_is_not_guessed_onto_another_invoice():
    invoices = [inv("i1", "100.00", number="INV-0042"), inv("i2", "900.00")]
    payments = [pay("p1", "130.00", remittance="INV-0042")]
    first = reconcile(invoices, payments)
    assert pairs(first) == [("p1", "i1", "100.00")] and first.proposals == []
    # INV-0042 is paid now, by this very payment: no duplicate payment, nothing to propose.
    again = reconcile(invoices, payments, allocations=first.applied)
    assert again.applied == [] and again.proposals == []
    assert again.unapplied == {"p1": Money.of("30.00", "USD")}


def test_a_later_run_never_applies_by_itself_the_surplus_a_run_kept_as_credit():
    """The first run applies p1 to the INV-0042 its remittance names and says the 30.00 left
    stays unapplied credit; another open invoice owes exactly 30.00. A later run (nothing
    changed) must not apply the surplus there by itself, against what the first run recorded:
    the money of a payment already applied is only proposed for a person to decide."""
    invoices = [inv("i1", "100.00", number="INV-0042"), inv("i2", "30.00")]
    payments = [pay("p1", "130.00", remittance="INV-0042")]
    first = reconcile(invoices, payments)
    assert pairs(first) == [("p1", "i1", "100.00")]
    assert "30.00 USD kept as unapplied credit" in first.applied[0].reason
    again = reconcile(invoices, payments, allocations=first.applied)
    assert again.applied == []
    [proposal] = again.proposals
    assert proposal.payment_id == "p1" and proposal.candidates[0].invoice_ids == ("i2",)
    # The run that applied p1 already proposes its surplus, exactly as the next run does.
    assert first.proposals == again.proposals
    assert first.unapplied == again.unapplied == {"p1": Money.of("30.00", "USD")}
    assert first.unmatched == again.unmatched == []


def test_a_surplus_with_nothing_to_propose_is_unapplied_credit_in_the_run_that_applies_it_and_after():
    invoices = [inv("i1", "100.00", number="INV-0042"), inv("i2", "900.00")]
    payments = [pay("p1", "130.00", remittance="INV-0042"), pay("p2", "55.00", customer="c-nobody")]
    first = reconcile(invoices, payments)
    again = reconcile(invoices, payments, allocations=first.applied)
    # p1's 30.00 is credit (said so on its allocation), not an unmatched payment; p2 is one.
    assert first.unmatched == again.unmatched == ["p2"]
    assert first.proposals == again.proposals == []


def test_a_later_match_that_leaves_an_earlier_payment_one_fit_applies_it_in_the_same_run():
    """p1 (20.000 KWD) comes first, while the payer owes 25.000: INV-1 + INV-2 is only a
    proposal then. p2 (5.000) pays INV-3 exactly; now p1 is the payer's whole open balance.
    The next run would apply p1 by itself, so this run does: a run and the next agree."""
    invoices = [
        inv(f"i{n}", amount, currency="KWD", number=f"INV-{n}")
        for n, amount in enumerate(("10.000", "10.000", "5.000"), 1)
    ]
    payments = [
        pay("p1", "20.000", currency="KWD"),
        pay("p2", "5.000", currency="KWD", received=RECEIVED.replace(hour=13)),
    ]
    first = reconcile(invoices, payments)
    assert sorted(pairs(first)) == [("p1", "i1", "10.000"), ("p1", "i2", "10.000"), ("p2", "i3", "5.000")]
    assert "whole open balance of customer c1: INV-1, INV-2" in first.applied[-1].reason
    assert first.proposals == []
    again = reconcile(invoices, payments, allocations=first.applied)
    assert again.applied == [] and again.proposals == []
    check_invariants(invoices, payments, first)


def test_no_oldest_invoice_guess_comes_back_after_finance_rejected_a_proposal():
    invoices = [inv("i1", "100.00"), inv("i2", "100.00"), inv("i3", "700.00")]
    result = reconcile(invoices, [pay("p1", "100.00")], rejected=[("p1", "i1"), ("p1", "i2")])
    assert result.applied == [] and result.proposals == [] and result.unmatched == ["p1"]
