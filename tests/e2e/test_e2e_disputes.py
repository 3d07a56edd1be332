"""Money that leaves, end to end against the sandbox (docs/disputes.md): a card payment the
connector applied and wrote back to Xero is then disputed (a chargeback) or refunded in Stripe.
After the next sync and reconciliation the invoice is owed again, `connector plan` takes the
Xero payment back, `apply` deletes it in the sandbox's Xero, and `invoices list`, `aging` and
`explain` show the invoice open with the reason; a won dispute keeps the payment where it is."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from support.decisions_book import DecisionsBook, decisions_book

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres"])
def book(request, tmp_path, run_cli):
    with decisions_book(request.param, tmp_path, run_cli) as opened:
        yield opened


@pytest.fixture
def sqlite_book(tmp_path, run_cli):
    with decisions_book("sqlite", tmp_path, run_cli) as opened:
        yield opened


def written_back(book: DecisionsBook, *, native: bool) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A card payment the connector recorded in Xero, in one ledger payment of its whole amount
    on an invoice it pays off: (payment id, the invoice's row, the Xero payment). `native`: the
    charge paid Stripe's own invoice; else the charge names no Stripe invoice, and the connector
    marked Stripe's invoice paid out of band (a write Stripe cannot take back)."""
    invoices = book.invoices()
    for payment in book.payments():
        if payment["status"] != "succeeded" or "gateway" not in payment["systems"]:
            continue
        recorded = book.ledger_payments_of(payment["id"])
        if len(recorded) != 1 or Decimal(str(recorded[0]["Amount"])) != Decimal(payment["amount"]):
            continue
        if (stripe_invoice(book, payment["id"]) is not None) != native:
            continue
        ledger_id = recorded[0]["Invoice"]["InvoiceID"]
        for invoice in invoices:
            ids = {r["id"] for r in invoice["refs"] if r["system"] == "ledger" and r["type"] == "invoice"}
            if ledger_id not in ids or invoice["status"] != "paid":
                continue
            if native or book.gateway_status(invoice["number"]) == "paid":
                return payment["id"], invoice, recorded[0]
    raise AssertionError("no card payment written back to Xero paying off its invoice")


def stripe_invoice(book: DecisionsBook, payment_id: str) -> str | None:
    """The Stripe invoice the payment's charge paid, if it paid one."""
    with book.sandbox.lock:
        return book.sandbox.faces["stripe"].objects["charges"][book.charge_of(payment_id)].get("invoice")


def dispute(book: DecisionsBook, payment_id: str, status: str, *, event: str, share: Decimal = Decimal(1)) -> str:
    """The card holder disputes the charge (`share` of it): the charge says `disputed`, a Dispute of
    `status` with its balance transactions (the withdrawal and the dispute fee), and the
    `charge.dispute.*` event the sync follows. Returns the dispute's id."""
    charge_id = book.charge_of(payment_id)
    now = int(time.time())
    with book.sandbox.lock:
        face = book.sandbox.faces["stripe"]
        charge = {**face.objects["charges"][charge_id], "disputed": True}
        amount, currency = int(Decimal(charge["amount"]) * share), str(charge["currency"])
        dispute_id = f"dp_{charge_id[3:]}"
        withdrawal = {
            "id": f"txn_{dispute_id}_1",
            "object": "balance_transaction",
            "amount": -amount,
            "available_on": now,
            "created": now,
            "currency": currency,
            "description": f"Chargeback withdrawal for {charge_id}",
            "exchange_rate": None,
            "fee": 1500,
            "fee_details": [
                {
                    "amount": 1500,
                    "application": None,
                    "currency": currency,
                    "description": "Dispute fee",
                    "type": "stripe_fee",
                }
            ],
            "net": -amount - 1500,
            "reporting_category": "dispute",
            "source": dispute_id,
            "status": "available",
            "type": "adjustment",
        }
        txns = [withdrawal]
        if status == "won":
            txns.append(
                {
                    **withdrawal,
                    "id": f"txn_{dispute_id}_2",
                    "amount": amount,
                    "fee": 0,
                    "fee_details": [],
                    "net": amount,
                    "description": f"Chargeback reversal for {charge_id}",
                    "reporting_category": "dispute_reversal",
                }
            )
        record: dict[str, Any] = {
            "id": dispute_id,
            "object": "dispute",
            "amount": amount,
            "currency": currency,
            "charge": charge_id,
            "payment_intent": charge.get("payment_intent"),
            "status": status,
            "reason": "fraudulent",
            "created": now - 60,
            "is_charge_refundable": False,
            "livemode": False,
            "metadata": {},
            "evidence": {},
            "balance_transactions": txns,
        }
        face.load(
            {
                "charges": [charge],
                "disputes": [record],
                "balance_transactions": txns,
                "events": [_event(f"evt_{dispute_id}_{status}", event, record, now)],
            }
        )
    return dispute_id


def refund_in_full(book: DecisionsBook, payment_id: str) -> None:
    """The customer is refunded the whole charge in Stripe (`charge.refunded`)."""
    charge_id = book.charge_of(payment_id)
    now = int(time.time())
    with book.sandbox.lock:
        face = book.sandbox.faces["stripe"]
        charge = face.objects["charges"][charge_id]
        amount = int(charge["amount"])
        refund = {
            "id": f"re_{charge_id[3:]}",
            "object": "refund",
            "amount": amount,
            "balance_transaction": None,
            "charge": charge_id,
            "created": now,
            "currency": charge["currency"],
            "metadata": {},
            "payment_intent": charge.get("payment_intent"),
            "reason": "requested_by_customer",
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
        refunded = {**charge, "amount_refunded": amount, "refunded": True}
        face.load(
            {
                "charges": [refunded],
                "refunds": [refund],
                "events": [
                    _event(f"evt_{refund['id']}", "charge.refunded", refunded, now),
                    _event(f"evt_{refund['id']}_r", "refund.created", refund, now),
                ],
            }
        )


def _event(event_id: str, type_: str, obj: dict[str, Any], created: int) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2023-08-16",
        "created": created,
        "data": {"object": dict(obj)},
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }


def row_of(book: DecisionsBook, number: str) -> dict[str, Any]:
    return next(i for i in book.invoices() if i["number"] == number)


def aged(book: DecisionsBook, invoice: dict[str, Any]) -> Decimal:
    """What `aging` says the invoice's customer owes in the invoice's currency."""
    report = book.json("aging")
    rows = [
        r
        for r in report["customers"]
        if r["customer"]["id"] == invoice["customer"]["id"] and r["currency"] == invoice["currency"]
    ]
    return sum((Decimal(r["total"]) for r in rows), Decimal(0))


def reversals(book: DecisionsBook) -> list[str]:
    return [line for line in book.ok("plan").splitlines() if "reverse:" in line]


def test_a_lost_dispute_reopens_the_invoice_and_takes_the_ledger_payment_back(book: DecisionsBook):
    payment, invoice, recorded = written_back(book, native=True)
    owed_before = aged(book, invoice)
    dispute(book, payment, "lost", event="charge.dispute.closed")
    book.ok("sync")
    book.ok("reconcile")

    [reversal] = reversals(book)
    assert invoice["number"] in reversal and "delete payment" in reversal and recorded["Reference"] in reversal
    # Open at once, before the reversal reaches Xero: Xero's AmountPaid (as last synced) still
    # counts the payment, but its money is gone.
    before_apply = row_of(book, invoice["number"])
    assert before_apply["status"] in ("open", "partially_paid"), before_apply
    assert Decimal(before_apply["balance"]) == Decimal(invoice["total"])
    assert aged(book, invoice) == owed_before + Decimal(invoice["total"])
    assert book.json("explain", invoice["number"])["record"]["status"] == before_apply["status"]
    book.ok("apply", "--yes")
    assert book.xero()["Payments"][recorded["PaymentID"]]["Status"] == "DELETED"
    assert row_of(book, invoice["number"])["balance"] == before_apply["balance"]  # applied, not yet synced
    book.ok("sync")
    book.ok("reconcile")

    reopened = row_of(book, invoice["number"])
    assert reopened["status"] in ("open", "partially_paid") and Decimal(reopened["balance"]) == Decimal(
        invoice["total"]
    )
    assert aged(book, invoice) == owed_before + Decimal(invoice["total"])
    story = book.json("explain", invoice["number"])
    assert story["record"]["status"] == reopened["status"]
    reasons = [entry["decision"] or "" for entry in story["audit"]]
    assert any("was disputed (fraudulent)" in r and "lost" in r for r in reasons), reasons
    assert book.applied_allocation(payment, missing_ok=True) is None  # not re-applied by a rule
    book.check()
    book.drift(expect=0)
    assert reversals(book) == []  # taken back once


def test_a_won_dispute_keeps_the_payment_in_the_ledger(sqlite_book: DecisionsBook):
    book = sqlite_book
    payment, invoice, recorded = written_back(book, native=True)
    dispute(book, payment, "won", event="charge.dispute.closed")
    book.ok("sync")
    book.ok("reconcile")
    assert reversals(book) == []
    book.ok("apply", "--yes")
    assert book.xero()["Payments"][recorded["PaymentID"]]["Status"] != "DELETED"
    assert row_of(book, invoice["number"])["status"] == "paid"
    book.check()
    book.drift(expect=0)


def test_an_open_dispute_takes_the_payment_back_and_winning_it_records_it_again(sqlite_book: DecisionsBook):
    book = sqlite_book
    payment, invoice, recorded = written_back(book, native=True)
    dispute(book, payment, "needs_response", event="charge.dispute.created")
    book.ok("sync")
    book.ok("reconcile")
    assert len(reversals(book)) == 1
    book.cycle()
    assert book.xero()["Payments"][recorded["PaymentID"]]["Status"] == "DELETED"
    assert row_of(book, invoice["number"])["status"] in ("open", "partially_paid")
    book.check()

    dispute(book, payment, "won", event="charge.dispute.closed")
    book.ok("sync")
    book.ok("reconcile")
    assert book.applied_allocation(payment) is not None  # the payment is applied again
    book.cycle()
    [again] = book.ledger_payments_of(payment)  # recorded again, once
    assert again["PaymentID"] != recorded["PaymentID"] and Decimal(str(again["Amount"])) == Decimal(
        str(recorded["Amount"])
    )
    assert row_of(book, invoice["number"])["status"] == "paid"
    book.check()


def test_a_lost_dispute_on_an_invoice_marked_paid_in_stripe_leaves_a_task_and_exactly_that_gap(
    sqlite_book: DecisionsBook,
):
    book = sqlite_book
    payment, invoice, recorded = written_back(book, native=False)
    dispute(book, payment, "lost", event="charge.dispute.closed")
    book.ok("sync")
    book.ok("reconcile")
    planned = book.ok("plan")
    assert len([line for line in planned.splitlines() if "reverse:" in line]) == 1, planned
    tasks = [
        a
        for a in book.json("actions", "list")["actions"]
        if a["kind"] == "create_task" and "Undo by hand" in str((a.get("payload") or {}).get("subject"))
    ]
    assert len(tasks) == 1 and "was disputed (fraudulent)" in tasks[0]["payload"]["body"], tasks
    book.cycle(expect_drift=True)
    assert book.xero()["Payments"][recorded["PaymentID"]]["Status"] == "DELETED"
    assert row_of(book, invoice["number"])["status"] in ("open", "partially_paid")
    [gap] = book.drift(expect=1)["records"]
    assert (gap["kind"], gap["field"], gap["number"]) == ("gap", "irreversible_write", invoice["number"])
    assert "was disputed (fraudulent)" in gap["reason"] and "cannot un-pay" in gap["reason"], gap
    book.check()
    assert "reverse:" not in book.ok("plan")  # taken back once, the task filed once
    assert (
        len(
            [
                a
                for a in book.json("actions", "list", "--all")["actions"]
                if a["kind"] == "create_task" and "Undo by hand" in str((a.get("payload") or {}).get("subject"))
            ]
        )
        == 1
    )


def test_a_dispute_won_before_the_reversal_is_sent_cancels_it(sqlite_book: DecisionsBook):
    book = sqlite_book
    payment, invoice, recorded = written_back(book, native=True)
    dispute(book, payment, "needs_response", event="charge.dispute.created")
    book.ok("sync")
    book.ok("reconcile")
    assert len(reversals(book)) == 1
    dispute(book, payment, "won", event="charge.dispute.closed")
    book.ok("sync")
    book.ok("reconcile")
    assert reversals(book) == []
    assert not [a for a in book.json("actions", "list")["actions"] if a["kind"] == "delete_payment"]
    book.cycle()
    assert book.xero()["Payments"][recorded["PaymentID"]]["Status"] != "DELETED"
    assert book.ledger_payments_of(payment) == [recorded]  # kept, never recorded a second time
    assert row_of(book, invoice["number"])["status"] == "paid"
    book.check()


def test_a_dispute_of_part_of_the_charge_lost_records_what_is_left_again(sqlite_book: DecisionsBook):
    book = sqlite_book
    payment, invoice, recorded = written_back(book, native=True)
    dispute(book, payment, "lost", event="charge.dispute.closed", share=Decimal("0.4"))
    book.ok("sync")
    book.ok("reconcile")
    assert len(reversals(book)) == 1  # the ledger payment of the whole charge goes
    book.cycle(expect_drift=True)  # ... and what is left is applied again, not yet recorded
    assert book.xero()["Payments"][recorded["PaymentID"]]["Status"] == "DELETED"
    book.cycle()  # what the payment still has is applied and recorded again
    [again] = book.ledger_payments_of(payment)
    kept = Decimal(str(again["Amount"]))
    assert 0 < kept < Decimal(str(recorded["Amount"]))
    reopened = row_of(book, invoice["number"])
    assert reopened["status"] == "partially_paid"
    assert Decimal(reopened["balance"]) == Decimal(invoice["total"]) - kept
    book.check()


def test_a_refund_in_full_reopens_the_invoice_and_takes_the_ledger_payment_back(sqlite_book: DecisionsBook):
    book = sqlite_book
    payment, invoice, recorded = written_back(book, native=True)
    refund_in_full(book, payment)
    book.ok("sync")
    book.ok("reconcile")
    [reversal] = reversals(book)
    assert recorded["Reference"] in reversal
    book.cycle()
    assert book.xero()["Payments"][recorded["PaymentID"]]["Status"] == "DELETED"
    assert row_of(book, invoice["number"])["status"] in ("open", "partially_paid")
    reasons = [entry["decision"] or "" for entry in book.json("explain", invoice["number"])["audit"]]
    assert any(f"payment {payment} was refunded" in r for r in reasons), reasons
    book.check()
