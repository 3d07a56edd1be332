"""Refunds and failures reverse allocations; manual allocations and rejections are respected."""

from __future__ import annotations

from connector.money import Money
from connector.reconcile import reconcile
from support.reconcile_cases import alloc, check_invariants, inv, pairs, pay


def test_refund_reverses_allocation():
    invoices = [inv("i1", "100.00")]
    existing = [alloc("p1", "i1", "100.00")]
    payments = [pay("p1", "100.00", status="refunded", refunded="100.00")]
    result = reconcile(invoices, payments, allocations=existing)
    [reversal] = result.reversals
    assert reversal.allocation is existing[0]
    assert reversal.remove and reversal.amount == Money.of("100.00", "USD")
    assert "refunded" in reversal.reason
    assert result.applied == [] and result.unapplied == {}


def test_failed_payment_reverses_every_allocation_even_manual_ones():
    invoices = [inv("i1", "60.00"), inv("i2", "40.00")]
    existing = [alloc("p1", "i1", "60.00"), alloc("p1", "i2", "40.00", manual=True)]
    result = reconcile(invoices, [pay("p1", "100.00", status="failed")], allocations=existing)
    assert [(r.allocation.invoice_id, r.remove) for r in result.reversals] == [("i1", True), ("i2", True)]


def test_partial_refund_reduces_rule_made_allocations_before_manual_ones():
    invoices = [inv("i1", "60.00"), inv("i2", "40.00")]
    existing = [alloc("p1", "i1", "60.00", manual=True), alloc("p1", "i2", "40.00")]
    payments = [pay("p1", "100.00", status="partially_refunded", refunded="50.00")]
    result = reconcile(invoices, payments, allocations=existing)
    assert [(r.allocation.invoice_id, str(r.amount.amount), r.remove) for r in result.reversals] == [
        ("i2", "40.00", True),
        ("i1", "10.00", False),
    ]


def test_partial_refund_below_the_allocated_amount_changes_nothing():
    existing = [alloc("p1", "i1", "60.00")]
    payments = [pay("p1", "100.00", status="partially_refunded", refunded="40.00")]
    result = reconcile([inv("i1", "60.00")], payments, allocations=existing)
    assert result.reversals == []


def test_a_reversed_invoice_is_open_again_for_other_payments():
    invoices = [inv("i1", "100.00")]
    existing = [alloc("p1", "i1", "100.00")]
    payments = [pay("p1", "100.00", status="failed"), pay("p2", "100.00")]
    result = reconcile(invoices, payments, allocations=existing)
    assert pairs(result) == [("p2", "i1", "100.00")]


def test_manual_allocation_is_kept_and_its_invoice_balance_respected():
    invoices = [inv("i1", "100.00", number="INV-0042")]
    existing = [alloc("p0", "i1", "70.00", manual=True)]
    payments = [pay("p0", "70.00"), pay("p1", "100.00", remittance="INV-0042")]
    result = reconcile(invoices, payments, allocations=existing)
    assert result.reversals == []
    assert pairs(result) == [("p1", "i1", "30.00")]
    assert result.unapplied == {"p1": Money.of("70.00", "USD")}
    check_invariants(invoices, payments, result, existing)


def test_manual_allocation_is_never_overwritten_by_a_stronger_rule():
    invoices = [inv("i1", "100.00"), inv("i2", "100.00", number="INV-0002")]
    existing = [alloc("p1", "i1", "100.00", manual=True)]
    payments = [pay("p1", "100.00", remittance="INV-0002")]
    result = reconcile(invoices, payments, links={"p1": ["i2"]}, allocations=existing)
    assert result.applied == [] and result.reversals == [] and result.proposals == []


def test_a_rejected_pair_is_not_proposed_again():
    invoices = [inv("i1", "100.00"), inv("i2", "100.00")]
    payments = [pay("p1", "100.00")]
    result = reconcile(invoices, payments, rejected=[("p1", "i1")])
    # with i1 rejected, i2 is the only candidate left
    assert pairs(result) == [("p1", "i2", "100.00")]
    result = reconcile(invoices, payments, rejected=[("p1", "i1"), ("p1", "i2")])
    assert result.applied == [] and result.proposals == []


def test_a_rejected_pair_is_not_applied_even_by_link_or_remittance():
    invoices = [inv("i1", "100.00", number="INV-0042")]
    payments = [pay("p1", "100.00", remittance="INV-0042")]
    result = reconcile(invoices, payments, links={"p1": ["i1"]}, rejected=[("p1", "i1")])
    assert result.applied == [] and result.proposals == []
    assert result.unmatched == ["p1"]


def test_a_rejected_invoice_drops_out_of_subset_candidates():
    invoices = [inv("i1", "120.00"), inv("i2", "80.00"), inv("i3", "45.50"), inv("i4", "74.50")]
    payments = [pay("p1", "200.00")]
    result = reconcile(invoices, payments, rejected=[("p1", "i1")])
    for candidate in result.proposals[0].candidates:
        assert "i1" not in candidate.invoice_ids
