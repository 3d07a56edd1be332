"""The Xero adapter's reversals against the sandbox's Xero, through sync: a payment the
adapter recorded and then deleted stops counting once synced (the next sync reads the payment
DELETED and the invoice's AmountDue back up, and the connector's balance of the invoice is the
ledger's again); a reconciled payment is refused with nothing written; a booked fee is
deleted."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from connector.config import load_config
from connector.connections import open_provider
from connector.errors import InvalidRequestError
from connector.model import Action, InvoicePosition, Ref, invoice_position
from connector.pipeline import sync
from connector.reconcile.run import run_reconciliation
from connector.reconcile.types import LEDGER_RULE
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state import reconciliation as decisions
from connector.state.store import Store
from support.e2e import sync_sandbox, with_credentials

pytestmark = pytest.mark.slow

TODAY = date.today()


def ledger_invoice(sandbox: Sandbox, ident: str) -> dict[str, Any]:
    with sandbox.lock:
        return dict(sandbox.state.xero["Invoices"][ident])


def ours(store: Store, number: str) -> InvoicePosition:
    """The invoice's position as the connector shows it: the ledger's amount paid and our
    allocations the ledger does not hold yet."""
    [invoice] = [i for i in store.list_invoices() if i.number == number]
    pending = [a for a in applied_to(store, invoice.id or "") if a.rule != LEDGER_RULE]
    return invoice_position(invoice, TODAY, pending)


def applied_to(store: Store, invoice_id: str) -> list[Any]:
    with store.session() as session:
        stored = decisions.load_allocations(session)
    return [s.allocation for s in stored if s.status == "applied" and s.allocation.invoice_id == invoice_id]


def test_a_payment_deleted_in_xero_is_not_counted_after_the_next_sync(tmp_path):
    data = with_credentials(generate(7, "small", today=TODAY).data)
    with Sandbox(data, limits="off") as sandbox:
        store, _ = sync_sandbox(sandbox, tmp_path)
        config = load_config(str(tmp_path / "connector.toml"))
        run_reconciliation(config, store)
        with sandbox.lock:
            open_invoice = next(
                dict(i)
                for i in sandbox.state.xero["Invoices"].values()
                if i.get("Type") == "ACCREC"
                and i["Status"] == "AUTHORISED"
                and Decimal(str(i["AmountPaid"])) == 0
                and Decimal(str(i["AmountDue"])) > 0
            )
        number, due = open_invoice["InvoiceNumber"], Decimal(str(open_invoice["AmountDue"]))
        before = ours(store, number)
        assert before.balance.amount == due

        ledger = open_provider(config.connections["ledger"], store)
        target = Ref(system="ledger", object_type="invoice", remote_id=open_invoice["InvoiceID"])
        recorded = ledger.apply(
            Action(
                connection="ledger",
                kind="record_payment",
                target=target,
                payload={
                    "amount": str(due),
                    "currency": open_invoice["CurrencyCode"],
                    "date": TODAY.isoformat(),
                    "reference": "paid by bank transfer",
                },
            )
        )
        sync(config, store)
        run_reconciliation(config, store)
        assert ledger_invoice(sandbox, open_invoice["InvoiceID"])["Status"] == "PAID"
        assert ours(store, number).balance.amount == 0 and ours(store, number).status == "paid"
        [invoice] = [i for i in store.list_invoices() if i.number == number]
        [recorded_payment] = [
            p for p in store.list_payments() if any(r.remote_id == recorded.remote_id for r in p.refs)
        ]
        assert [a.payment_id for a in applied_to(store, invoice.id or "")] == [recorded_payment.id]

        deleted = ledger.apply(
            Action(
                connection="ledger",
                kind="delete_payment",
                target=Ref(system="ledger", object_type="payment", remote_id=recorded.remote_id or ""),
                payload={"reverses": "record-payment"},
            )
        )
        ledger.close()
        sync(config, store)
        run_reconciliation(config, store)

        held = ledger_invoice(sandbox, open_invoice["InvoiceID"])
        after = ours(store, number)
        [payment] = [p for p in store.list_payments() if any(r.remote_id == recorded.remote_id for r in p.refs)]
    assert deleted.remote_id == recorded.remote_id and not deleted.replayed
    assert (held["Status"], Decimal(str(held["AmountDue"]))) == ("AUTHORISED", due)
    assert after.balance.amount == due and after.status == "open", "the invoice is open again, as in Xero"
    assert payment.status == "failed", "a deleted Xero payment pays nothing"
    assert [a for a in applied_to(store, invoice.id or "") if a.payment_id == payment.id] == [], (
        "no allocation of the deleted payment stays applied"
    )


def test_the_adapter_refuses_a_reconciled_payment_and_deletes_a_booked_fee(tmp_path):
    data = with_credentials(generate(7, "small", today=TODAY).data)
    with Sandbox(data, limits="off") as sandbox:
        store, _ = sync_sandbox(sandbox, tmp_path, connections=["ledger"], streams=["contacts"])
        config = load_config(str(tmp_path / "connector.toml"))
        with sandbox.lock:
            reconciled = next(p for p in sandbox.state.xero["Payments"].values() if p.get("IsReconciled") is True)
        ledger = open_provider(config.connections["ledger"], store)
        before = len(sandbox.journal)
        with pytest.raises(InvalidRequestError, match="is reconciled with a bank statement line in Xero"):
            ledger.apply(
                Action(
                    connection="ledger",
                    kind="delete_payment",
                    target=Ref(system="ledger", object_type="payment", remote_id=reconciled["PaymentID"]),
                    payload={"reverses": "record-payment"},
                )
            )
        assert [e for e in sandbox.journal[before:] if e["method"] != "GET"] == [], "nothing was sent to delete it"

        fee = ledger.apply(
            Action(
                connection="ledger",
                kind="record_fee",
                target=Ref(system="gateway", object_type="payment", remote_id="ch_reversal"),
                payload={"amount": "0.59", "currency": "USD", "date": TODAY.isoformat(), "reference": "ch_reversal"},
            )
        )
        reverse = Action(
            connection="ledger",
            kind="delete_fee",
            target=Ref(system="ledger", object_type="bank_transaction", remote_id=fee.remote_id or ""),
            payload={"reverses": "record-fee"},
        )
        first, again = ledger.apply(reverse), ledger.apply(reverse)
        ledger.close()
        with sandbox.lock:
            held = dict(sandbox.state.xero["BankTransactions"][fee.remote_id])
    assert held["Status"] == "DELETED" and not first.replayed and again.replayed
    assert sum(e["effect"].startswith("deleted bank transaction") for e in sandbox.journal) == 1
