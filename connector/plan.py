"""What each system needs to be told, derived from what is stored. Pure: facts in, actions out.

- ledger: record a gateway payment that reconciliation applied but the ledger does not have
  yet (unless the ledger already holds a payment of that amount on that invoice, entered by
  hand: it is never entered twice);
- gateway: mark an invoice paid out of band when the ledger shows it paid by other means, and
  void it when the ledger voided it;
- CRM: payment status, amount outstanding and days overdue on the deal and CRM invoice.

Each action's idempotency key comes from its connection, kind, target and content, so planning
twice yields the same actions and the outbox keeps one of each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from connector.model import Action, Allocation, Invoice, InvoicePosition, Payment, Ref

HAND_ENTRY_WINDOW = timedelta(days=5)


@dataclass(frozen=True)
class SystemView:
    """One system's ref of a record and its view of it (the canonical record as it sees it)."""

    system: str
    kind: str  # ledger / gateway / crm
    object_type: str
    remote_id: str
    data: dict[str, Any] = field(hash=False, compare=False)

    @property
    def ref(self) -> Ref:
        return Ref(system=self.system, object_type=self.object_type, remote_id=self.remote_id)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PlannedAction:
    action: Action
    subject_type: str
    subject_id: str
    summary: str


@dataclass
class Facts:
    invoices: dict[str, Invoice]
    positions: dict[str, InvoicePosition]  # with the allocations the ledger does not hold yet
    invoice_views: dict[str, list[SystemView]]
    payments: dict[str, Payment]
    payment_views: dict[str, list[SystemView]]
    allocations: list[Allocation]  # applied, not recorded by the ledger itself
    ledger_payments_on: dict[tuple[str, str], list[SystemView]]  # (ledger system, invoice remote id) -> payments
    fee_ledgers: frozenset[str] = frozenset()  # ledger connections configured to book gateway fees


def _label(invoice: Invoice) -> str:
    return invoice.number or invoice.id or "?"


def plan_ledger_payments(facts: Facts) -> list[PlannedAction]:
    planned = []
    for allocation in facts.allocations:
        payment = facts.payments.get(allocation.payment_id)
        invoice = facts.invoices.get(allocation.invoice_id)
        if payment is None or invoice is None:
            continue
        views = facts.payment_views.get(allocation.payment_id, [])
        if any(v.kind == "ledger" for v in views):
            continue  # the ledger has this payment already
        source = next((v for v in views if v.kind == "gateway"), None)
        for ledger in (v for v in facts.invoice_views.get(allocation.invoice_id, []) if v.kind == "ledger"):
            if _entered_by_hand(facts, ledger, allocation, payment):
                continue
            reference = source.remote_id if source else payment.id
            action = Action(
                connection=ledger.system,
                kind="record_payment",
                target=ledger.ref,
                payload={
                    "amount": str(allocation.amount.amount),
                    "currency": allocation.amount.currency,
                    "date": payment.received_at.date().isoformat(),
                    "reference": reference,
                },
            )
            summary = (
                f"{_label(invoice)}: record payment {allocation.amount} of {payment.received_at.date()} "
                f"(reference {reference}) in {ledger.system}; balance there {invoice.total - invoice.amount_paid - invoice.amount_credited}"
                f" -> {invoice.total - invoice.amount_paid - invoice.amount_credited - allocation.amount}"
            )
            planned.append(PlannedAction(action, "invoice", invoice.id or "", summary))
            fee = payment.fee
            if ledger.system in facts.fee_ledgers and fee is not None and fee.amount > 0 and source is not None:
                # one fee per payment, whatever the number of invoices it pays: same content, same key
                fee_action = Action(
                    connection=ledger.system,
                    kind="record_fee",
                    target=source.ref,
                    payload={"amount": str(fee.amount), "currency": fee.currency,
                             "date": payment.received_at.date().isoformat(), "reference": source.remote_id,
                             "description": f"{source.system} fee on {source.remote_id}"},
                )
                planned.append(PlannedAction(fee_action, "payment", payment.id or "",
                                             f"book {source.system} fee {fee} on {source.remote_id} in {ledger.system}"))
    return planned


def _entered_by_hand(facts: Facts, ledger: SystemView, allocation: Allocation, payment: Payment) -> bool:
    """A payment on the invoice in the ledger with the same amount, near the same date."""
    for view in facts.ledger_payments_on.get((ledger.system, ledger.remote_id), []):
        amount = (view.data.get("amount") or {}).get("amount")
        received = view.data.get("received_at")
        if amount is None or str(amount) != str(allocation.amount.amount):
            continue
        try:
            when = datetime.fromisoformat(str(received).replace("Z", "+00:00"))
        except ValueError:
            continue
        if abs(when - payment.received_at) <= HAND_ENTRY_WINDOW:
            return True
    return False


def plan_gateway_status(facts: Facts) -> list[PlannedAction]:
    planned = []
    for invoice_id, invoice in facts.invoices.items():
        position = facts.positions.get(invoice_id)
        ledger_status = position.status if position else invoice.status
        for view in facts.invoice_views.get(invoice_id, []):
            if view.kind != "gateway" or view.object_type != "invoice":
                continue
            gateway_status = view.data.get("status")
            if gateway_status != "open":
                continue
            if ledger_status == "paid":
                kind, verb = "mark_paid", "mark paid out of band"
            elif ledger_status == "void":
                kind, verb = "void_invoice", "void"
            else:
                continue
            action = Action(connection=view.system, kind=kind, target=view.ref, payload={})  # type: ignore[arg-type]
            summary = f"{_label(invoice)}: {verb} in {view.system} (status open -> {'paid' if kind == 'mark_paid' else 'void'}; the ledger says {ledger_status})"
            planned.append(PlannedAction(action, "invoice", invoice_id, summary))
    return planned


def plan_crm_properties(facts: Facts) -> list[PlannedAction]:
    planned = []
    for invoice_id, invoice in facts.invoices.items():
        position = facts.positions.get(invoice_id)
        if position is None:
            continue
        properties = {
            "payment_status": position.status,
            "amount_outstanding": str(position.balance.amount),
            "days_overdue": str(position.days_past_due),
        }
        for view in facts.invoice_views.get(invoice_id, []):
            if view.kind != "crm" or view.object_type not in ("deal", "invoice"):
                continue
            action = Action(connection=view.system, kind="update_properties", target=view.ref,
                            payload={"properties": properties})
            summary = (f"{_label(invoice)}: {view.system} {view.object_type} {view.remote_id} <- status "
                       f"{position.status}, outstanding {position.balance}, {position.days_past_due} days overdue")
            planned.append(PlannedAction(action, "invoice", invoice_id, summary))
    return planned


def plan_all(facts: Facts, today: date) -> list[PlannedAction]:  # noqa: ARG001 - the date is in the positions
    return [*plan_ledger_payments(facts), *plan_gateway_status(facts), *plan_crm_properties(facts)]
