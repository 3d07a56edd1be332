"""In typical ambiguous cases the right invoice is the first candidate."""

from __future__ import annotations

from datetime import date, timedelta

from connector.reconcile import reconcile
from support.reconcile_cases import RECEIVED, inv, pay


def _first(result):
    [proposal] = result.proposals
    return proposal.candidates[0].invoice_ids


def test_equal_amounts_rank_the_oldest_due_invoice_first():
    invoices = [inv("i-mar", "100.00", due=date(2024, 3, 31)), inv("i-jan", "100.00", due=date(2024, 1, 31))]
    assert _first(reconcile(invoices, [pay("p1", "100.00")])) == ("i-jan",)


def test_an_invoice_issued_after_the_payment_ranks_last():
    later = RECEIVED.date() + timedelta(days=5)
    invoices = [
        inv("i-future", "100.00", issued=later, due=later + timedelta(days=1)),
        inv("i-now", "100.00", issued=date(2024, 2, 20), due=date(2024, 4, 30)),
    ]
    assert _first(reconcile(invoices, [pay("p1", "100.00")])) == ("i-now",)


def test_a_number_mentioned_in_the_remittance_ranks_its_invoice_first():
    # Two bare numbers are no sure reading, yet "43" points at INV-0043 among equal balances.
    invoices = [
        inv("i42", "100.00", number="INV-0042"),
        inv("i43", "100.00", number="INV-0043"),
        inv("i44", "250.00", number="INV-0044"),
    ]
    result = reconcile(invoices, [pay("p1", "100.00", remittance="paid 43 44")])
    assert result.applied == []
    assert _first(result) == ("i43",)
    assert "the remittance mentions INV-0043" in result.proposals[0].candidates[0].reason


def test_a_single_bare_number_after_any_word_names_the_invoice():
    invoices = [inv("i42", "100.00", number="INV-0042"), inv("i43", "100.00", number="INV-0043")]
    result = reconcile(invoices, [pay("p1", "100.00", remittance="ref 43")])
    assert [a.invoice_id for a in result.applied] == ["i43"]


def test_the_closest_amount_within_tolerance_ranks_first():
    invoices = [inv("i1", "100.00"), inv("i2", "98.00"), inv("i3", "101.50")]
    assert _first(reconcile(invoices, [pay("p1", "97.90")])) == ("i2",)


def test_exact_amount_ranks_before_tolerance_and_subsets():
    invoices = [inv("i1", "100.00"), inv("i2", "100.00"), inv("i3", "60.00"), inv("i4", "40.00"), inv("i5", "99.00")]
    result = reconcile(invoices, [pay("p1", "100.00")])
    rules = [c.rule for c in result.proposals[0].candidates]
    assert rules[:2] == ["exact_amount_unique", "exact_amount_unique"]
    assert set(rules[2:]) == {"amount_within_tolerance"}


def test_proposals_list_at_most_the_configured_number_of_candidates():
    invoices = [inv(f"i{n}", "100.00", due=date(2024, 1, 1) + timedelta(days=n)) for n in range(12)]
    result = reconcile(invoices, [pay("p1", "100.00")])
    assert len(result.proposals[0].candidates) == 5
    assert result.proposals[0].candidates[0].invoice_ids == ("i0",)
