"""Refunds and failures reverse allocations; manual allocations and rejections are respected."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.model import Payment
from connector.money import Money
from connector.reconcile import find_reversals, reconcile
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


# Disputes (chargebacks) ------------------------------------------------------------------


def disputed(
    payment_id: str, amount: str, status: str, *, disputed: str | None = None, currency: str = "USD"
) -> Payment:
    """A payment with a dispute of `disputed` (the whole payment by default), closed or
    opened on 2024-03-05, for fraud."""
    return pay(payment_id, amount, currency=currency).model_copy(
        update={
            "dispute_status": status,
            "amount_disputed": Money.of(disputed or amount, currency),
            "dispute_reason": "fraudulent",
            "disputed_at": datetime(2024, 3, 5, 9, 30, tzinfo=UTC),
        }
    )


def test_a_lost_dispute_takes_the_whole_allocation_back_and_says_why():
    existing = [alloc("p1", "i1", "100.00")]
    [reversal] = find_reversals({"p1": disputed("p1", "100.00", "lost")}, existing)
    assert reversal.remove and reversal.amount == Money.of("100.00", "USD")
    assert reversal.reason == (
        "payment p1 was disputed (fraudulent), lost on 2024-03-05: the money is gone: allocation to invoice i1 removed"
    )


def test_an_open_dispute_withdraws_the_money_while_it_is_contested():
    existing = [alloc("p1", "i1", "100.00", manual=True)]
    [reversal] = find_reversals({"p1": disputed("p1", "100.00", "open")}, existing)
    assert reversal.remove
    assert "funds withdrawn while the dispute is open" in reversal.reason


def test_an_inquiry_and_a_won_dispute_take_nothing_back():
    existing = [alloc("p1", "i1", "100.00")]
    assert find_reversals({"p1": disputed("p1", "100.00", "inquiry")}, existing) == []
    assert find_reversals({"p1": disputed("p1", "100.00", "won")}, existing) == []


def test_a_partial_dispute_reduces_rule_made_allocations_before_manual_ones():
    existing = [alloc("p1", "i1", "60.00", manual=True), alloc("p1", "i2", "40.00")]
    found = find_reversals({"p1": disputed("p1", "100.00", "lost", disputed="55.00")}, existing)
    assert [(r.allocation.invoice_id, str(r.amount.amount), r.remove) for r in found] == [
        ("i2", "40.00", True),
        ("i1", "15.00", False),
    ]
    assert found[0].reason.startswith("payment p1 was disputed (fraudulent) (55.00 USD of 100.00 USD), lost")


def test_a_dispute_and_a_refund_of_the_same_money_are_not_taken_twice():
    payment = disputed("p1", "100.00", "lost", disputed="70.00").model_copy(
        update={"status": "partially_refunded", "amount_refunded": Money.of("50.00", "USD")}
    )
    assert payment.collected == Money.of("0.00", "USD")
    [reversal] = find_reversals({"p1": payment}, [alloc("p1", "i1", "100.00")])
    assert reversal.remove


def test_dispute_amounts_keep_zero_and_three_decimal_currencies_exact():
    jpy = disputed("p1", "12000", "lost", disputed="5000", currency="JPY")
    [reversal] = find_reversals({"p1": jpy}, [alloc("p1", "i1", "12000", currency="JPY")])
    assert reversal.amount == Money.of("5000", "JPY") and not reversal.remove
    kwd = disputed("p2", "10.250", "open", disputed="0.750", currency="KWD")
    [reversal] = find_reversals({"p2": kwd}, [alloc("p2", "i2", "10.250", currency="KWD")])
    assert reversal.amount == Money.of("0.750", "KWD")
    assert kwd.collected == Money.of("9.500", "KWD")


def test_a_lost_dispute_reopens_the_invoice_it_paid():
    invoice = inv("i1", "100.00")
    existing = [alloc("p1", "i1", "100.00")]
    result = reconcile([invoice], [disputed("p1", "100.00", "lost")], allocations=existing, links={"p1": ["i1"]})
    assert [r.allocation.invoice_id for r in result.reversals] == ["i1"]
    assert result.applied == []  # the lost money is not applied again by its explicit link


def test_a_won_dispute_is_applied_again_to_the_invoice_it_paid():
    result = reconcile([inv("i1", "100.00")], [disputed("p1", "100.00", "won")], links={"p1": ["i1"]})
    assert pairs(result) == [("p1", "i1", "100.00")]
