"""What write-back plans, from plain facts."""

from datetime import UTC, date, datetime
from decimal import Decimal

from connector.model import Allocation, Invoice, Payment, invoice_position
from connector.money import Money
from connector.plan import Facts, SystemView, plan_gateway_status, plan_ledger_payments

USD = lambda a: Money.of(a, "USD")  # noqa: E731


def invoice(iid, total="100.00", paid="0"):
    return Invoice(id=iid, number=f"INV-{iid}", currency="USD", subtotal=USD(total), tax=USD(0), total=USD(total),
                   amount_paid=USD(paid), due_date=date(2026, 10, 1))


def facts(*, fee_ledgers=frozenset({"ledger"}), hand_entered=False):
    invoices = {"i1": invoice("i1"), "i2": invoice("i2", "50.00")}
    payment = Payment(id="p1", amount=USD("150.00"), fee=USD("4.65"), received_at=datetime(2026, 11, 2, tzinfo=UTC))
    allocations = [
        Allocation(id="a1", payment_id="p1", invoice_id="i1", amount=USD("100.00"), rule="remittance_number", confidence=Decimal("0.98")),
        Allocation(id="a2", payment_id="p1", invoice_id="i2", amount=USD("50.00"), rule="remittance_number", confidence=Decimal("0.98")),
    ]
    by_invoice = {"i1": [allocations[0]], "i2": [allocations[1]]}
    ledger_payments = {}
    if hand_entered:
        ledger_payments[("ledger", "x-i1")] = [SystemView("ledger", "ledger", "payment", "x-p9",
                                                          {"amount": {"amount": "100.00", "currency": "USD"},
                                                           "received_at": "2026-11-03T00:00:00+00:00"})]
    return Facts(
        invoices=invoices,
        positions={i: invoice_position(inv, date(2026, 11, 22), by_invoice[i]) for i, inv in invoices.items()},
        invoice_views={i: [SystemView("ledger", "ledger", "invoice", f"x-{i}", {"status": "open"}),
                           SystemView("gateway", "gateway", "invoice", f"in_{i}", {"status": "open"})] for i in invoices},
        payments={"p1": payment},
        payment_views={"p1": [SystemView("gateway", "gateway", "payment", "ch_1", {})]},
        allocations=allocations,
        ledger_payments_on=ledger_payments,
        fee_ledgers=fee_ledgers,
    )


def test_a_gateway_payment_for_two_invoices_is_recorded_twice_and_its_fee_once():
    planned = plan_ledger_payments(facts())
    kinds = [p.action.kind for p in planned]
    assert kinds.count("record_payment") == 2
    fees = {p.action.idempotency_key: p for p in planned if p.action.kind == "record_fee"}
    assert len(fees) == 1  # same content, same key: the outbox keeps one
    fee = next(iter(fees.values())).action
    assert fee.payload["amount"] == "4.65" and fee.payload["reference"] == "ch_1"


def test_no_fee_without_a_fee_account_and_no_payment_entered_twice_by_hand():
    assert not [p for p in plan_ledger_payments(facts(fee_ledgers=frozenset())) if p.action.kind == "record_fee"]
    planned = plan_ledger_payments(facts(hand_entered=True))
    targets = [p.action.target.remote_id for p in planned if p.action.kind == "record_payment"]
    assert targets == ["x-i2"]  # i1's payment is already in the ledger, entered by hand


def test_the_gateway_is_told_an_invoice_is_paid_when_the_ledger_says_so():
    planned = plan_gateway_status(facts())
    assert sorted(p.action.target.remote_id for p in planned) == ["in_i1", "in_i2"]
    assert all(p.action.kind == "mark_paid" for p in planned)
