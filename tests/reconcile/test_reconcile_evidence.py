"""Evidence against an option: the traps finance teams meet every month, in USD, JPY and KWD.

A named invoice never loses to an amount, an amount never loses to a typo, a duplicate payment
stays credit, a payment in another currency is never applied, and proposals are usable.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from connector.money import Money
from connector.reconcile import reconcile
from connector.reconcile.evidence import near
from support.reconcile_cases import RECEIVED, check_invariants, inv, pairs, pay

FAMILY = {"parent": frozenset({"sub-a", "sub-b"}), "sub-a": frozenset({"parent"}), "sub-b": frozenset({"parent"})}
NAMES = {"parent": "Acme Holding", "sub-a": "Acme Retail", "sub-b": "Acme Labs", "c1": "Beta Ltd"}


def _first(result, payment_id="p1"):
    return next(p for p in result.proposals if p.payment_id == payment_id).candidates


def test_a_remittance_naming_a_subsidiarys_invoice_pays_it_not_the_parents_equal_invoice():
    invoices = [
        inv("i-sub", "2000.00", customer="sub-a", number="INV-0007"),
        inv("i-own", "2000.00", customer="parent", number="INV-0100"),
    ]
    payments = [pay("p1", "2000.00", customer="parent", remittance="Payment INV-0007")]
    result = reconcile(invoices, payments, related=FAMILY, customer_names=NAMES)
    assert pairs(result) == [("p1", "i-sub", "2000.00")]
    assert result.applied[0].reason == "remittance 'Payment INV-0007' names Acme Retail's INV-0007"
    check_invariants(invoices, payments, result)


def test_without_the_relation_the_other_customers_named_invoice_stops_the_amount_match():
    invoices = [
        inv("i-sub", "2000.00", customer="sub-a", number="INV-0007"),
        inv("i-own", "2000.00", customer="parent", number="INV-0100"),
    ]
    result = reconcile(invoices, [pay("p1", "2000.00", customer="parent", remittance="Payment INV-0007")])
    assert result.applied == []
    own = next(c for c in _first(result) if c.invoice_ids == ("i-own",))
    assert own.confidence < Decimal("0.95")
    assert own.reason.endswith("not applied: the remittance names INV-0007 of customer sub-a")


def test_a_duplicate_payment_of_a_paid_invoice_stays_credit_and_is_flagged():
    invoices = [
        inv("i1", "50000", currency="JPY", number="INV-0001", paid="50000", status="paid"),
        inv("i2", "50000", currency="JPY", number="INV-0002", due=date(2024, 2, 29)),
    ]
    payments = [pay("p1", "50000", currency="JPY", remittance="INV-0001")]
    result = reconcile(invoices, payments)
    assert result.applied == []
    assert result.unapplied == {"p1": Money.of("50000", "JPY")}
    [proposal] = result.proposals
    assert proposal.note == (
        "possible duplicate payment: INV-0001 was paid in full already; keep 50000 JPY as unapplied credit or refund it"
    )
    [candidate] = proposal.candidates
    assert candidate.invoice_ids == ("i2",) and candidate.confidence < Decimal("0.95")
    assert candidate.reason.endswith("not applied: the remittance names INV-0001, paid in full already")


def test_a_second_payment_naming_the_invoice_the_first_paid_in_this_run_is_a_duplicate():
    invoices = [inv("i1", "12.500", currency="KWD", number="INV-0042")]
    payments = [
        pay("p1", "12.500", currency="KWD", remittance="INV-0042"),
        pay("p2", "12.500", currency="KWD", remittance="INV-0042", received=RECEIVED + timedelta(days=1)),
    ]
    result = reconcile(invoices, payments)
    assert pairs(result) == [("p1", "i1", "12.500")]
    assert result.unapplied == {"p2": Money.of("12.500", "KWD")}
    [proposal] = result.proposals
    assert proposal.payment_id == "p2" and proposal.candidates == ()
    assert proposal.note is not None and proposal.note.startswith("possible duplicate payment: INV-0042 was paid")


def test_a_payment_in_another_currency_than_the_named_invoice_is_never_applied():
    invoices = [
        inv("i-usd", "2180.00", currency="USD", number="INV-0042"),
        inv("i-eur", "2000.00", currency="EUR", number="INV-0043"),
    ]
    payments = [pay("p1", "2000.00", currency="EUR", remittance="INV-0042")]
    result = reconcile(invoices, payments)
    assert result.applied == []
    [proposal] = result.proposals
    assert proposal.note == (
        "the remittance names INV-0042 in USD: 2000.00 EUR for 2180.00 USD = 1.09 USD per EUR if it pays it "
        "in full; an allocation cannot cross currencies: record this payment against it in the ledger"
    )
    # The named invoice first, with the rate the payment implies (finance books it in the
    # ledger, which converts); the invoice of the amount after it, never applied.
    named, amount = proposal.candidates
    assert named.invoice_ids == ("i-usd",)
    assert named.amounts == (Money.of("2000.00", "EUR"),)
    assert "2000.00 EUR for 2180.00 USD = 1.09 USD per EUR" in named.reason
    assert named.reason.endswith("not applied: it is in another currency; record the payment against it in the ledger")
    assert amount.invoice_ids == ("i-eur",)
    assert amount.reason.endswith("not applied: the remittance names INV-0042, in another currency")
    assert named.confidence > amount.confidence


def test_a_named_invoice_whose_number_is_a_typo_of_the_exact_one_ranks_second():
    invoices = [
        inv("i120", "2824.91", number="INV-0120"),
        inv("i210", "3818.64", number="INV-0210"),
    ]
    payments = [pay("p1", "3818.64", remittance="INV-0120")]
    result = reconcile(invoices, payments)
    assert result.applied == []
    first, second = _first(result)
    assert first.invoice_ids == ("i210",) and [str(a.amount) for a in first.amounts] == ["3818.64"]
    assert "not applied: INV-0120 looks like a typo for INV-0210" in first.reason
    assert second.invoice_ids == ("i120",) and [str(a.amount) for a in second.amounts] == ["2824.91"]
    assert first.confidence > second.confidence
    check_invariants(invoices, payments, result)


def test_a_named_invoice_with_a_far_number_ranks_first_beside_an_exact_amount():
    invoices = [
        inv("i120", "2824.91", number="INV-0120"),
        inv("i777", "3818.64", number="INV-0777"),
    ]
    result = reconcile(invoices, [pay("p1", "3818.64", remittance="INV-0120")])
    assert result.applied == []
    first, second = _first(result)
    assert first.invoice_ids == ("i120",)
    assert first.reason.endswith("not applied: the amount is exactly the open balance of INV-0777")
    assert second.invoice_ids == ("i777",)
    assert second.reason.endswith("not applied: the remittance names INV-0120 (2824.91 USD open)")


def test_a_named_invoice_beats_the_only_invoice_of_the_payer_with_that_balance():
    invoices = [inv("i1", "100.00", number="INV-0042"), inv("i2", "100.00", number="INV-0043")]
    invoices[1] = inv("i2", "100.00", number="INV-0043", due=date(2023, 12, 31))
    result = reconcile(invoices, [pay("p1", "100.00", remittance="INV-0042")])
    assert pairs(result) == [("p1", "i1", "100.00")]


def test_a_lump_sum_short_by_a_bank_fee_pays_the_named_invoices_and_suggests_a_write_off():
    invoices = [
        inv("i1", "1000.000", currency="KWD", number="INV-1"),
        inv("i2", "500.000", currency="KWD", number="INV-2"),
    ]
    payments = [pay("p1", "1485.250", currency="KWD", remittance="INV-1, INV-2")]
    result = reconcile(invoices, payments)
    assert pairs(result) == [("p1", "i1", "1000.000"), ("p1", "i2", "485.250")]
    assert result.applied[1].reason.endswith(
        "14.750 KWD short, within the tolerance: a bank fee? write it off on INV-2 as a fee or discount"
    )
    check_invariants(invoices, payments, result)


def test_a_parent_paying_two_subsidiaries_invoices_pays_the_pair():
    invoices = [
        inv("ia", "700.00", customer="sub-a", number="INV-0011"),
        inv("ib", "300.00", customer="sub-b", number="INV-0022"),
        inv("ip", "1000.00", customer="parent", number="INV-0033"),
    ]
    payments = [pay("p1", "1000.00", customer="parent", remittance="INV-0011 and INV-0022")]
    result = reconcile(invoices, payments, related=FAMILY, customer_names=NAMES)
    assert pairs(result) == [("p1", "ia", "700.00"), ("p1", "ib", "300.00")]
    assert "names Acme Retail's INV-0011 and Acme Labs's INV-0022" in result.applied[0].reason


def test_equal_payments_of_one_payer_propose_the_open_invoices_in_turn():
    invoices = [inv(f"i{m}", "99.00", number=f"INV-{m}", due=date(2024, m, 28)) for m in (1, 2, 3)]
    payments = [pay(f"p{d}", "99.00", received=RECEIVED + timedelta(days=d)) for d in (1, 2, 3)]
    result = reconcile(invoices, payments)
    assert result.applied == []
    firsts = {p.payment_id: p.candidates[0].invoice_ids for p in result.proposals}
    assert firsts == {"p1": ("i1",), "p2": ("i2",), "p3": ("i3",)}
    assert _first(result, "p3")[0].reason.endswith(
        "an earlier payment of the same amount is proposed for INV-1 and INV-2"
    )


def test_equal_payments_each_proposed_a_different_pair_of_invoices_in_turn():
    """Two payments of 100.00, and two pairs of invoices that each sum to it: the second
    payment is proposed the other pair first, saying which pair the first one was proposed
    (this once stopped the whole run with an IndexError)."""
    invoices = [inv("i1", "30.00", number="INV-1"), inv("i2", "70.00", number="INV-2")]
    invoices += [inv("i3", "40.00", number="INV-3"), inv("i4", "60.00", number="INV-4")]
    payments = [pay("p1", "100.00"), pay("p2", "100.00", received=RECEIVED + timedelta(hours=1))]
    result = reconcile(invoices, payments)
    assert result.applied == []
    firsts = {p.payment_id: p.candidates[0].invoice_ids for p in result.proposals}
    assert firsts == {"p1": ("i1", "i2"), "p2": ("i3", "i4")}
    assert _first(result, "p2")[0].reason.endswith(
        "an earlier payment of the same amount is proposed for INV-1 + INV-2"
    )


def test_a_month_in_the_remittance_picks_the_invoice_of_that_month():
    invoices = [
        inv(f"i{m}", "5000", currency="JPY", number=f"SUB-{m}", issued=date(2024, m, 1), due=date(2024, m, 28))
        for m in (1, 2, 3)
    ]
    payments = [pay("p1", "5000", currency="JPY", remittance="subscription February")]
    result = reconcile(invoices, payments)
    assert pairs(result) == [("p1", "i2", "5000")]
    assert "issued in the period the remittance names ('February')" in result.applied[0].reason


def test_reasons_name_the_customer_not_its_id():
    invoices = [inv("i1", "100.00", number="INV-0042")]
    result = reconcile(invoices, [pay("p1", "100.00")], customer_names=NAMES)
    assert result.applied[0].reason == (
        "amount 100.00 USD equals the open balance of Beta Ltd's INV-0042, the only open invoice of Beta Ltd "
        "with that balance"
    )


def test_near_numbers_are_one_slip_apart():
    assert near("INV-0120", "INV-0210")
    assert near("INV-0042", "INV-0043")
    assert not near("INV-0120", "INV-0777")
    assert not near("INV-0042", "ACM-0042")
    assert not near("INV-0042", "INV-00042")


def test_two_payments_that_together_pay_an_invoice_are_proposed_naming_each_other():
    invoices = [inv("i1", "1500", currency="JPY", number="INV-0042")]
    invoices.append(inv("i2", "9000", currency="JPY", number="INV-0043", due=date(2024, 2, 28)))
    payments = [
        pay("p1", "1000", currency="JPY"),
        pay("p2", "500", currency="JPY", received=RECEIVED + timedelta(days=2)),
    ]
    result = reconcile(invoices, payments)
    assert result.applied == []
    first = {p.payment_id: p.candidates[0] for p in result.proposals}
    assert first["p1"].invoice_ids == ("i1",) and [str(a.amount) for a in first["p1"].amounts] == ["1000"]
    assert first["p1"].reason == "with payment p2 (500 JPY) this pays INV-0042 (1500 JPY) in full"
    assert first["p2"].reason == "with payment p1 (1000 JPY) this pays INV-0042 (1500 JPY) in full"


def test_equal_subscription_payments_naming_their_months_pay_those_months():
    invoices = [
        inv(f"i{m}", "49.00", number=f"SUB-{m}", issued=date(2024, m, 1), due=date(2024, m, 28)) for m in (4, 5, 6)
    ]
    payments = [
        pay("p-jun", "49.00", remittance="June subscription", received=RECEIVED + timedelta(days=1)),
        pay("p-apr", "49.00", remittance="April subscription", received=RECEIVED + timedelta(days=2)),
        pay("p-may", "49.00", remittance="subscription for May 2024", received=RECEIVED + timedelta(days=3)),
    ]
    result = reconcile(invoices, payments)
    assert sorted(pairs(result)) == [("p-apr", "i4", "49.00"), ("p-jun", "i6", "49.00"), ("p-may", "i5", "49.00")]


def test_an_exact_amount_from_another_month_than_the_remittance_names_is_only_proposed():
    invoices = [inv("i1", "5.250", currency="KWD", number="SUB-1", issued=date(2024, 1, 1))]
    result = reconcile(invoices, [pay("p1", "5.250", currency="KWD", remittance="March subscription")])
    assert result.applied == []
    [candidate] = result.proposals[0].candidates
    assert candidate.reason.endswith("not applied: the remittance names 'March', SUB-1 was issued in January 2024")
