"""Money that left (a dispute, a refund) and what stands behind a ledger payment we wrote:
the ledger's own record of the payment backs it only while it covers all the ledger holds
(docs/disputes.md). The end-to-end path is tests/e2e/test_e2e_disputes.py."""

from datetime import UTC, date, datetime
from decimal import Decimal

from connector.model import Action, Allocation, DisputeStatus, Invoice, Payment, Ref, invoice_position
from connector.money import Money
from connector.reconcile.reversals import money_left, why_money_left
from connector.reconcile.types import LEDGER_RULE
from connector.state.outbox import OutboxEntry
from connector.writeback.plan import Facts, SystemView
from connector.writeback.settle import Backing

USD = lambda a: Money.of(a, "USD")  # noqa: E731
WHEN = datetime(2026, 11, 2, tzinfo=UTC)


def paid(payment: Payment) -> Facts:
    """Invoice i1 (100.00) paid by payment p1, which we recorded in the ledger as x-pay-1."""
    invoice = Invoice(
        id="i1",
        number="INV-1",
        currency="USD",
        subtotal=USD("100.00"),
        tax=USD(0),
        total=USD("100.00"),
        amount_paid=USD("100.00"),
        amount_credited=USD(0),
        due_date=date(2026, 10, 1),
    )
    ledger_payment = {
        "amount": {"amount": "100.00", "currency": "USD"},
        "status": "succeeded",
        "_sync": {"links": {"invoice": "x-i1"}},
    }
    return Facts(
        invoices={"i1": invoice},
        positions={"i1": invoice_position(invoice, date(2026, 11, 22))},
        invoice_views={"i1": [SystemView("ledger", "ledger", "invoice", "x-i1", {"status": "paid"})]},
        payments={"p1": payment},
        payment_views={
            "p1": [
                SystemView("gateway", "gateway", "payment", "ch_1", {}),
                SystemView("ledger", "ledger", "payment", "x-pay-1", ledger_payment),
            ]
        },
        allocations=[],
        ledger_payments_on={},
    )


def sent_payment() -> OutboxEntry:
    action = Action(
        connection="ledger",
        kind="record_payment",
        target=Ref(system="ledger", object_type="invoice", remote_id="x-i1"),
        payload={"amount": "100.00", "currency": "USD", "date": "2026-11-02", "reference": "ch_1"},
        state="done",
    )
    return OutboxEntry(7, action, 1, None, {"remote_id": "x-pay-1"}, "invoice", "i1", None, None, None, None, WHEN)


def ledger_record(amount: str) -> Allocation:
    return Allocation(
        id="al-ledger",
        payment_id="p1",
        invoice_id="i1",
        amount=USD(amount),
        rule=LEDGER_RULE,
        confidence=Decimal(1),
        confirmed_by="ledger",
    )


def disputed(status: DisputeStatus, amount: str = "100.00") -> Payment:
    return Payment(
        id="p1",
        amount=USD("100.00"),
        received_at=WHEN,
        dispute_status=status,
        amount_disputed=USD(amount),
        dispute_reason="fraudulent",
        disputed_at=WHEN,
    )


def test_the_ledgers_record_of_the_whole_payment_backs_the_payment_we_wrote():
    backing = Backing(paid(disputed("won")), [ledger_record("100.00")])
    assert backing.holds(sent_payment())


def test_a_lost_dispute_leaves_the_written_payment_without_backing():
    payment = disputed("lost")
    assert money_left(payment) and payment.collected == USD(0)
    backing = Backing(paid(payment), [])  # reconciliation took the ledger's record back
    assert not backing.holds(sent_payment())
    assert why_money_left(payment) == ("payment p1 was disputed (fraudulent), lost on 2026-11-02: the money is gone")


def test_a_ledger_record_reduced_by_a_partial_dispute_backs_none_of_the_ledger_payment():
    # 40.00 of 100.00 disputed: the ledger still holds 100.00, the book 60.00; the ledger
    # payment is taken back (the 60.00 left is recorded again once it is gone)
    payment = disputed("open", "40.00")
    assert payment.collected == USD("60.00")
    backing = Backing(paid(payment), [ledger_record("60.00")])
    assert not backing.holds(sent_payment())


def test_an_inquiry_withdraws_nothing_and_takes_nothing_back():
    payment = disputed("inquiry")
    assert not money_left(payment) and payment.collected == USD("100.00")
