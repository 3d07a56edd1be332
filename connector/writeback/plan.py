"""What each system needs to be told, derived from what is stored. Pure: facts in, actions out.

- ledger: record a gateway payment that reconciliation applied but the ledger does not have
  yet (unless the ledger already holds a payment of that amount on that invoice, entered by
  hand: it is never entered twice);
- gateway: mark an invoice paid out of band when the ledger shows it paid by other means, and
  void it when the ledger voided it;
- CRM: payment status, amount outstanding, days overdue and the date of the last reminder sent
  on the deal and CRM invoice; only the properties whose value the CRM does not hold already
  (as last read from it: its view carries them as `crm_<name>` hints), each shown "from -> to".

Each action's idempotency key comes from its connection, kind, target and content, so planning
twice yields the same actions and the outbox keeps one of each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.model import Action, ActionKind, Allocation, Invoice, InvoicePosition, ObjectType, Payment, Ref

HAND_ENTRY_WINDOW = timedelta(days=5)

# The properties written on a CRM deal or invoice, in order, with their words in the plan. A
# CRM's mapping reads its current values back as hints named `crm_<name>`.
CRM_PROPERTIES = {
    "payment_status": "payment status",
    "amount_outstanding": "outstanding",
    "days_overdue": "days overdue",
    "last_reminder": "last reminder",
}


# Every field of a stored view the plan reads (`SystemView.data`, here, in `writeback.facts`
# and `writeback.settle`): a part of the book reads these alone, the database extracting them
# (`state.linking.ref_views(fields=...)`), not the whole view decoded.
PLAN_VIEW_FIELDS: tuple[tuple[str, ...], ...] = (
    ("status",),
    ("amount",),
    ("received_at",),
    ("_sync", "deleted"),
    ("_sync", "links", "invoice"),
    *(("_sync", "hints", f"crm_{name}") for name in CRM_PROPERTIES),
)


class FieldsRead(dict[str, Any]):
    """A view read at named fields only (`PLAN_VIEW_FIELDS`): reading a name none of them
    reaches raises, where a plain dict would answer None as if the system had said nothing: a
    field the plan starts to read must be added to the list, or the plan would decide on a
    value it never read."""

    __slots__ = ("_names",)

    def __init__(self, values: dict[str, Any], names: dict[str, Any]) -> None:
        super().__init__(
            (k, FieldsRead(v, names[k]) if isinstance(v, dict) and names.get(k) else v) for k, v in values.items()
        )
        self._names = names

    @classmethod
    def of(cls, values: dict[str, Any], fields: Sequence[Sequence[str]]) -> FieldsRead:
        names: dict[str, Any] = {}
        for path in fields:
            place = names
            for part in path[:-1]:
                place = place.setdefault(part, {})
            place[path[-1]] = None
        return cls(values, names)

    def _check(self, key: str) -> None:
        if key not in self._names:
            raise LookupError(f"the view's {key!r} was not read: add it to PLAN_VIEW_FIELDS")

    def get(self, key: str, default: Any = None) -> Any:
        self._check(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self._check(key)
        return super().__getitem__(key)


@dataclass(frozen=True)
class SystemView:
    """One system's ref of a record and its view of it (the canonical record as it sees it)."""

    system: str
    kind: str  # ledger / gateway / crm
    object_type: ObjectType
    remote_id: str
    data: dict[str, Any] = field(hash=False, compare=False)

    @property
    def ref(self) -> Ref:
        return Ref(system=self.system, object_type=self.object_type, remote_id=self.remote_id)


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
    last_reminders: dict[str, date] = field(default_factory=dict)  # invoice -> day its last reminder went out
    # sent writes a reversal takes back: their idempotency key -> their outbox id
    reversed: dict[str, int] = field(default_factory=dict)
    withdrawn: frozenset[str] = frozenset()  # ledger payments (remote ids) we delete or deleted
    # CRM properties our done updates wrote that no sync has read back yet, per record
    # (system, object type, remote id); and each done update's key with its outbox id
    crm_sent: dict[tuple[str, str, str], dict[str, str]] = field(default_factory=dict)
    sent_updates: dict[str, int] = field(default_factory=dict)
    applied: list[Allocation] = field(default_factory=list)  # every applied allocation read, the ledger's too


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
        held = _ledger_parts(facts, views)
        if held is None:
            continue  # the ledger holds this payment, on an invoice it does not say: never twice
        source = next((v for v in views if v.kind == "gateway"), None)
        for ledger in (v for v in facts.invoice_views.get(allocation.invoice_id, []) if v.kind == "ledger"):
            if (ledger.system, ledger.remote_id) in held:
                continue  # the ledger has this part of the payment already (and keeps it)
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
                f"(reference {reference}) in {ledger.system}; balance there "
                f"{invoice.total - invoice.amount_paid - invoice.amount_credited}"
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
                    payload={
                        "amount": str(fee.amount),
                        "currency": fee.currency,
                        "date": payment.received_at.date().isoformat(),
                        "reference": source.remote_id,
                        "description": f"{source.system} fee on {source.remote_id}",
                    },
                )
                planned.append(
                    PlannedAction(
                        fee_action,
                        "payment",
                        payment.id or "",
                        f"book {source.system} fee {fee} on {source.remote_id} in {ledger.system}",
                    )
                )
    return planned


def _ledger_parts(facts: Facts, views: list[SystemView]) -> set[tuple[str, str]] | None:
    """The (ledger, invoice remote id) pairs on which the ledger holds a part of a payment (a
    payment written back in parts, one per invoice, is one payment naming one charge); None
    when a part it holds names no invoice, so that no part is ever written a second time. A
    part being deleted at finance's request, or deleted in the ledger, holds nothing."""
    held: set[tuple[str, str]] = set()
    for view in views:
        if view.kind != "ledger" or view.remote_id in facts.withdrawn:
            continue
        if view.data.get("status") in ("failed", "pending"):
            continue  # a deleted (or never completed) ledger payment is no money there
        invoice = ((view.data.get("_sync") or {}).get("links") or {}).get("invoice")
        if not invoice:
            return None
        held.add((view.system, str(invoice)))
    return held


def _entered_by_hand(facts: Facts, ledger: SystemView, allocation: Allocation, payment: Payment) -> bool:
    """A payment on the invoice in the ledger with the same amount, near the same date (not
    one deleted there since, or failed: that pays nothing; a pending one may still)."""
    for view in facts.ledger_payments_on.get((ledger.system, ledger.remote_id), []):
        if view.remote_id in facts.withdrawn:
            continue  # ours, being deleted
        if (view.data.get("_sync") or {}).get("deleted") or view.data.get("status") == "failed":
            continue
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
            kind: ActionKind
            if ledger_status == "paid":
                kind, verb = "mark_paid", "mark paid out of band"
            elif ledger_status == "void":
                kind, verb = "void_invoice", "void"
            else:
                continue
            action = Action(connection=view.system, kind=kind, target=view.ref, payload={})
            wanted = "paid" if kind == "mark_paid" else "void"
            summary = (
                f"{_label(invoice)}: {verb} in {view.system} (status open -> {wanted}; the ledger says {ledger_status})"
            )
            planned.append(PlannedAction(action, "invoice", invoice_id, summary))
    return planned


def plan_crm_properties(facts: Facts) -> list[PlannedAction]:
    planned = []
    for invoice_id, invoice in facts.invoices.items():
        position = facts.positions.get(invoice_id)
        if position is None:
            continue
        wanted = {
            "payment_status": position.status,
            "amount_outstanding": str(position.balance.amount),
            "days_overdue": str(position.days_past_due),
        }
        reminded = facts.last_reminders.get(invoice_id)
        if reminded is not None:  # never cleared: a date set by hand, or before us, stays
            wanted["last_reminder"] = reminded.isoformat()
        for view in facts.invoice_views.get(invoice_id, []):
            if view.kind != "crm" or view.object_type not in ("deal", "invoice"):
                continue
            held = {**crm_values(view), **facts.crm_sent.get((view.system, view.object_type, view.remote_id), {})}
            changes = {name: value for name, value in wanted.items() if not _same(name, held.get(name), value)}
            if not changes:
                continue  # the CRM holds every value already
            action = _new_content(
                Action(
                    connection=view.system, kind="update_properties", target=view.ref, payload={"properties": changes}
                ),
                facts.sent_updates,
            )
            shown = ", ".join(
                f"{CRM_PROPERTIES[name]} {held.get(name) or '(none)'} -> {value}"
                + (f" {position.balance.currency}" if name == "amount_outstanding" else "")
                for name, value in changes.items()
            )
            summary = f"{_label(invoice)}: {view.system} {view.object_type} {view.remote_id}: {shown}"
            planned.append(PlannedAction(action, "invoice", invoice_id, summary))
    return planned


def _new_content(action: Action, sent: dict[str, int]) -> Action:
    """An update whose same content was sent before, since overwritten (a CRM's values going
    back to what an earlier write set: an unmatch after a match): it follows that write's id
    (`after`) so that it gets a key of its own and is sent, not taken for the old one."""
    while action.idempotency_key in sent:
        payload = {**action.payload, "after": sent[action.idempotency_key]}
        action = Action(connection=action.connection, kind=action.kind, target=action.target, payload=payload)
    return action


def crm_values(view: SystemView) -> dict[str, str]:
    """The values of our properties the CRM held when its record was last read."""
    hints = (view.data.get("_sync") or {}).get("hints") or {}
    return {name: str(hints[f"crm_{name}"]) for name in CRM_PROPERTIES if hints.get(f"crm_{name}") not in (None, "")}


def _same(name: str, held: str | None, wanted: str) -> bool:
    """Whether the CRM's value says what we would write (HubSpot may answer 4437.1 for
    4437.10, or a date property as a midnight timestamp)."""
    if held is None:
        return False
    if name in ("amount_outstanding", "days_overdue"):
        try:
            return Decimal(held) == Decimal(wanted)
        except InvalidOperation:
            return False
    if name == "last_reminder":
        return _as_date(held) == _as_date(wanted)
    return held == wanted


def _as_date(value: str) -> date | None:
    text = value.strip()
    if text.isdigit():  # epoch milliseconds
        return datetime.fromtimestamp(int(text) / 1000, UTC).date()
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def plan_all(facts: Facts, today: date) -> list[PlannedAction]:  # noqa: ARG001 - the date is in the positions
    planned = [*plan_ledger_payments(facts), *plan_gateway_status(facts), *plan_crm_properties(facts)]
    return [after_reversals(p, facts.reversed) for p in planned]


def after_reversals(planned: PlannedAction, reversed_: dict[str, int]) -> PlannedAction:
    """A write whose same content was sent once and taken back since (a payment matched,
    written, unmatched and deleted, then matched again): the same key would be answered with
    the deleted payment, so it `replaces` the write taken back and gets a key of its own. Keys
    of writes never taken back stay as they always were."""
    action = planned.action
    while action.idempotency_key in reversed_:
        payload = {**action.payload, "replaces": reversed_[action.idempotency_key]}
        action = Action(connection=action.connection, kind=action.kind, target=action.target, payload=payload)
    if action is planned.action:
        return planned
    return PlannedAction(action, planned.subject_type, planned.subject_id, planned.summary)
