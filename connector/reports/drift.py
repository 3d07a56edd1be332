"""`connector drift`, pure: what each system holds against what it should hold.

What a system should hold is what finance's decisions and the rules made of the book (the
connector's position of each invoice: the ledger's own figures plus the allocations it does not
record yet), after the writes that are done. A write that is done but not yet read back by a sync
(done after the system's record was last seen) is in transit, not drift: a gateway invoice still
`open` while its `mark_paid` is done, a ledger balance before the sync that follows a
`record_payment` or a `delete_payment`.

One line per disagreement, each with what differs (`holds` / `should_hold`), by how much
(`amount` with `currency`, where money), since when (`since`: the record's last sync, a write's
last change, or a gap's time) and the command that resolves it (`resolve`):

- ledger invoices: the amount paid (payments plus credits) after the writes done, against the
  connector's. Split payments (several ledger payments naming one charge) count once each on
  their own invoice; an allocation the ledger already records is not counted again.
- gateway invoices: the state (open, paid, void, draft), after a done `mark_paid` or
  `void_invoice`; amounts are not compared (an invoice paid out of band states no amount paid).
- CRM deals and invoices: the lifecycle (draft, issued, void) and the payment status and amount
  outstanding the connector wrote on them (read back as `crm_*` hints).
- every system: the total.
- payments: the ledger may not hold more of a gateway payment than the gateway collected (an
  overpayment's unapplied credit stays in the gateway: it is not drift).
- money writes (record_payment, record_fee, mark_paid, void_invoice, delete_payment, delete_fee)
  planned or failed that no line above names: the systems will differ until they are sent.
- open gaps (audit action "gap"): a write finance's decision could not undo, or a decision kept
  without its write. A gap is resolved, and leaves the report, when the systems agree again or
  the decision behind it is gone (see `gap_is_resolved`); the disagreement it explains is not
  listed a second time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.model import (
    DISPUTE_WITHDRAWN,
    MONEY_LEFT,
    Allocation,
    Invoice,
    InvoicePosition,
    Payment,
    invoice_position,
)
from connector.money import Money, money_sum

Row = dict[str, Any]

MONEY_WRITES = frozenset({"record_payment", "record_fee", "mark_paid", "void_invoice", "delete_payment", "delete_fee"})
REVERSALS = frozenset({"delete_payment", "delete_fee"})
UNSENT = frozenset({"planned", "in_flight", "failed"})
SYNC_AND_SEND = "connector sync --apply"

# A system that does not track payments on a record (a CRM deal) only tells whether the
# invoice exists and is live.
LIFECYCLE = {
    "draft": "draft",
    "open": "issued",
    "partially_paid": "issued",
    "paid": "issued",
    "uncollectible": "issued",
    "void": "void",
}
# A gateway invoice is open, paid, void or draft; partially paid and uncollectible are open there.
GATEWAY_STATE = {"paid": "paid", "void": "void", "draft": "draft"}


# Every field of a stored view the checks below read: a reader may hand over views holding
# only these (`state.linking.ref_views(fields=...)`: the database extracts them, no view is
# decoded whole). A check that reads another field names it here, or it reads nothing there.
VIEW_FIELDS: tuple[tuple[str, ...], ...] = (
    ("status",),
    ("dispute_status",),
    ("total",),
    ("amount_paid",),
    ("amount_credited",),
    ("amount",),
    ("amount_refunded",),
    ("_sync", "deleted"),
    ("_sync", "links", "invoice"),
    ("_sync", "hints", "crm_payment_status"),
    ("_sync", "hints", "crm_amount_outstanding"),
)


@dataclass(frozen=True)
class View:
    """One system's stored record of a canonical invoice or payment, and when a sync last read it."""

    system: str
    kind: str  # ledger / gateway / crm (the connection's provider kind), or "" when unknown
    object_type: str
    remote_id: str
    entity_id: str
    data: Mapping[str, Any] = field(hash=False, compare=False)
    seen_at: datetime | None = None

    @property
    def target(self) -> tuple[str, str, str]:
        return (self.system, self.object_type, self.remote_id)

    @property
    def sync(self) -> Mapping[str, Any]:
        return self.data.get("_sync") or {}


@dataclass(frozen=True)
class Write:
    """An outbox action: `at` is its last change (for a done one, when it was done)."""

    id: int
    connection: str
    kind: str
    target: tuple[str, str, str] | None
    payload: Mapping[str, Any]
    state: str
    at: datetime
    summary: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None


@dataclass(frozen=True)
class Gap:
    """An audit entry "gap": `inputs` as the decision recorded them (see docs/finance.md)."""

    at: datetime
    subject_type: str
    subject_id: str | None
    inputs: Mapping[str, Any]
    reason: str


@dataclass
class DriftBook:
    invoices: Mapping[str, Invoice]
    payments: Mapping[str, Payment]
    pending: Sequence[Allocation]  # applied allocations the ledger does not record itself
    invoice_views: Sequence[View]
    payment_views: Sequence[View]
    writes: Sequence[Write]
    gaps: Sequence[Gap]
    as_of: date
    # The gaps already found open, for a book read a batch of invoices at a time (each batch
    # cannot judge a gap on another's records): `gaps` is then not judged again.
    open_gaps: Sequence[Gap] | None = None


# Shared reading --------------------------------------------------------------------------


def _money(data: Mapping[str, Any], name: str) -> Money | None:
    value = data.get(name)
    if not isinstance(value, Mapping) or value.get("amount") is None:
        return None
    return Money.of(value["amount"], value["currency"])


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _counts(view: View) -> bool:
    """Whether a ledger payment counts: not deleted, not failed (a deleted Xero payment)."""
    return not view.sync.get("deleted") and view.data.get("status") not in ("failed", "pending")


class _Index:
    """The book arranged for the checks: views per record, writes per target, open gaps."""

    def __init__(self, book: DriftBook) -> None:
        self.book = book
        self.invoice_views: dict[str, list[View]] = defaultdict(list)
        for view in book.invoice_views:
            self.invoice_views[view.entity_id].append(view)
        self.payment_views: dict[str, list[View]] = defaultdict(list)
        # (system, invoice remote id) -> the payment views of that system linked to it
        self.paying: dict[tuple[str, str], list[View]] = defaultdict(list)
        for view in book.payment_views:
            self.payment_views[view.entity_id].append(view)
            self.paying[(view.system, str((view.sync.get("links") or {}).get("invoice")))].append(view)
        self.writes = {w.id: w for w in book.writes}
        self.on_target: dict[tuple[str, str, str], list[Write]] = defaultdict(list)
        for write in book.writes:
            target = self.reversed_target(write) if write.kind in REVERSALS else write.target
            if target is not None:
                self.on_target[target].append(write)
        self.pending_of: dict[str, list[Allocation]] = defaultdict(list)
        for allocation in book.pending:
            self.pending_of[allocation.invoice_id].append(allocation)
        # (payment, ledger invoice remote id) -> what the ledger's own payments hold
        self.held: dict[tuple[str, str, str], Money] = {}
        for view in book.payment_views:
            invoice_remote = (view.sync.get("links") or {}).get("invoice")
            amount = _money(view.data, "amount")
            if view.kind != "ledger" or not invoice_remote or amount is None or not _counts(view):
                continue
            key = (view.entity_id, view.system, str(invoice_remote))
            self.held[key] = self.held[key] + amount if key in self.held else amount
        if book.open_gaps is not None:
            self.open_gaps = list(book.open_gaps)
        else:
            self.open_gaps = [g for g in book.gaps if not gap_is_resolved(g, self)]

    def reversed_target(self, write: Write) -> tuple[str, str, str] | None:
        reversed_ = self.writes.get(_int(write.payload.get("reverses")))
        return None if reversed_ is None else reversed_.target

    def unheld(self, allocation: Allocation, ledger: View) -> Money:
        """What of `allocation` the ledger's own payments of it on `ledger` do not hold yet."""
        held = self.held.get((allocation.payment_id, ledger.system, ledger.remote_id))
        left = allocation.amount if held is None else allocation.amount - held
        return Money.zero(left.currency) if left.is_negative else left

    def position(self, invoice: Invoice) -> InvoicePosition:
        """The connector's position of `invoice`: the ledger's figures and what it does not hold."""
        ledgers = [v for v in self.invoice_views.get(invoice.id or "", []) if v.kind == "ledger"]
        extra = []
        for allocation in self.pending_of.get(invoice.id or "", []):
            left = self.unheld(allocation, ledgers[0]) if ledgers else allocation.amount
            if not left.is_zero:
                extra.append(allocation.model_copy(update={"amount": left}))
        return invoice_position(invoice, self.book.as_of, extra)

    def gaps_on(self, invoice_id: str, system: str | None = None) -> list[Gap]:
        return [
            g
            for g in self.open_gaps
            if g.inputs.get("invoice") == invoice_id and (system is None or g.inputs.get("connection") == system)
        ]

    def done_since(self, view: View, kinds: Iterable[str]) -> list[Write]:
        """Done writes of `kinds` on `view`'s record that a sync has not read back yet."""
        wanted = set(kinds)
        return [
            w
            for w in self.on_target.get(view.target, [])
            if w.state == "done" and w.kind in wanted and (view.seen_at is None or w.at > view.seen_at)
        ]

    def unsent_on(self, view: View, kinds: Iterable[str]) -> list[Write]:
        wanted = set(kinds)
        return [w for w in self.on_target.get(view.target, []) if w.state in UNSENT and w.kind in wanted]


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _resolve_by_writes(unsent: Sequence[Write], otherwise: str) -> tuple[str, list[int]]:
    """`connector actions retry N` for a parked write, `connector apply` for a queued one."""
    failed = [w for w in unsent if w.state == "failed"]
    if failed:
        return f"connector actions retry {failed[0].id}", [w.id for w in unsent]
    if unsent:
        return "connector apply", [w.id for w in unsent]
    return otherwise, []


def _line(
    kind: str,
    entity_id: str | None,
    number: str | None,
    where: View | None,
    field_: str,
    holds: str,
    should_hold: str,
    difference: Money | None,
    since: datetime | None,
    resolve: str,
    reason: str,
    actions: Sequence[int] = (),
) -> Row:
    return {
        "kind": kind,
        "id": entity_id,
        "number": number,
        "system": where.system if where else None,
        "type": where.object_type if where else None,
        "remote_id": where.remote_id if where else None,
        "field": field_,
        "holds": holds,
        "should_hold": should_hold,
        "amount": None if difference is None else str(difference.amount),
        "currency": None if difference is None else difference.currency,
        "since": _iso(since),
        "resolve": resolve,
        "reason": reason,
        "actions": list(actions),
    }


# Invoices --------------------------------------------------------------------------------


def invoice_drift(book: DriftBook) -> list[Row]:
    """Every invoice's systems against what they should hold after the writes that are done."""
    index = _Index(book)
    out: list[Row] = []
    for invoice_id, invoice in sorted(book.invoices.items(), key=lambda kv: (kv[1].number or "", kv[0])):
        views = index.invoice_views.get(invoice_id, [])
        if not views:
            continue
        position = index.position(invoice)
        for view in views:
            out += _total_line(invoice, view)
            if view.kind == "ledger" and view.object_type == "invoice":
                out += _ledger_line(index, invoice, view)
            elif view.kind == "gateway" and view.object_type == "invoice":
                out += _gateway_line(index, invoice, position, view)
            elif view.kind == "crm":
                out += _crm_lines(index, invoice, position, view)
    return out


def _label(invoice: Invoice) -> str:
    return invoice.number or invoice.id or "?"


def _total_line(invoice: Invoice, view: View) -> list[Row]:
    total = _money(view.data, "total")
    if total is None or total == invoice.total:
        return []
    difference = total - invoice.total if total.currency == invoice.currency else None
    return [
        _line(
            "invoice",
            invoice.id,
            invoice.number,
            view,
            "total",
            str(total),
            str(invoice.total),
            None if difference is None else abs(difference),
            view.seen_at,
            f"connector explain {_label(invoice)}",
            f"{view.system} states another total than the book's ({invoice.total}): correct the invoice there",
        )
    ]


def _ledger_line(index: _Index, invoice: Invoice, view: View) -> list[Row]:
    currency = invoice.currency
    zero = Money.zero(currency)
    seen = (_money(view.data, "amount_paid") or zero) + (_money(view.data, "amount_credited") or zero)
    expected = seen
    for write in index.done_since(view, ("record_payment", "delete_payment")):
        if write.kind == "record_payment":
            expected += Money.of(write.payload.get("amount", "0"), currency)
        else:
            reversed_ = index.writes.get(_int(write.payload.get("reverses")))
            if reversed_ is not None:
                expected -= Money.of(reversed_.payload.get("amount", "0"), currency)
    pending = index.pending_of.get(invoice.id or "", [])
    covered = money_sum(
        (Money.of(g.inputs.get("amount", "0"), currency) for g in index.gaps_on(invoice.id or "", view.system)),
        currency,
    )
    unheld = [(a, index.unheld(a, view)) for a in pending]
    should = invoice.amount_paid + invoice.amount_credited + money_sum((m for _, m in unheld), currency) - covered
    if should == expected:
        return []
    lacking = should > expected
    unsent = index.unsent_on(view, ("record_payment", "delete_payment"))
    otherwise = SYNC_AND_SEND if lacking else f"connector explain {_label(invoice)}"
    resolve, actions = _resolve_by_writes(unsent, otherwise)
    if not unsent and lacking:
        # a cancelled write keeps its decision only as a recorded gap: drop the decision instead
        cancelled = {
            (w.payload.get("reference"), str(w.payload.get("amount")))
            for w in index.on_target.get(view.target, [])
            if w.kind == "record_payment" and w.state == "cancelled"
        }
        for allocation, left in unheld:
            if not left.is_zero and _cancelled_for(index, allocation, cancelled):
                resolve = f"connector reconcile unmatch {allocation.id}"
                break
    payments = ", ".join(sorted({a.payment_id for a, m in unheld if not m.is_zero})) or "none"
    reason = (
        f"{view.system} does not hold payments the book applies (payments: {payments})"
        if lacking
        else f"{view.system} holds payments no decision stands behind"
    )
    return [
        _line(
            "invoice",
            invoice.id,
            invoice.number,
            view,
            "amount_paid",
            str(expected),
            str(should),
            abs(should - expected),
            view.seen_at,
            resolve,
            reason,
            actions,
        )
    ]


def _cancelled_for(index: _Index, allocation: Allocation, cancelled: set[tuple[Any, str]]) -> bool:
    references = {allocation.payment_id}
    for view in index.payment_views.get(allocation.payment_id, []):
        if view.kind == "gateway":
            references.add(view.remote_id)
    return any(reference in references for reference, _ in cancelled)


def _paid_by_money_that_left(index: _Index, invoice: View) -> bool:
    """Whether a gateway charge that paid the gateway's invoice lost its money since (failed,
    refunded, or withdrawn by a dispute): the book rightly has the invoice owed again."""
    for view in index.paying.get((invoice.system, invoice.remote_id), []):
        refunded = view.data.get("status") in MONEY_LEFT
        if refunded or view.data.get("dispute_status") in DISPUTE_WITHDRAWN:
            return True
    return False


def _gateway_line(index: _Index, invoice: Invoice, position: InvoicePosition, view: View) -> list[Row]:
    if index.gaps_on(invoice.id or "", view.system):
        return []  # the gap's own line says it
    held = GATEWAY_STATE.get(str(view.data.get("status")), "open")
    for write in index.done_since(view, ("mark_paid", "void_invoice")):
        held = "paid" if write.kind == "mark_paid" else "void"
    should = GATEWAY_STATE.get(position.status, "open")
    if held == should:
        return []
    unsent = index.unsent_on(view, ("mark_paid", "void_invoice"))
    if should in ("paid", "void"):
        otherwise = SYNC_AND_SEND
        reason = f"the book says {position.status}; {view.system} has not been told"
    elif held == "paid" and _paid_by_money_that_left(index, view):
        return []  # refunded or charged back since: the gateway cannot un-pay (docs/disputes.md)
    elif held == "paid":
        otherwise = "connector reconcile"
        reason = (
            f"{view.system} says paid; the book still has {position.balance} open: "
            "decide the payment that paid it (a proposal, or match it by hand)"
        )
    else:
        otherwise = f"connector explain {_label(invoice)}"
        reason = f"{view.system} says {held}; the book says {position.status}"
    resolve, actions = _resolve_by_writes(unsent, otherwise)
    return [
        _line(
            "invoice",
            invoice.id,
            invoice.number,
            view,
            "status",
            held,
            should,
            None if should == "void" or held == "void" else position.balance,
            view.seen_at,
            resolve,
            reason,
            actions,
        )
    ]


def _crm_lines(index: _Index, invoice: Invoice, position: InvoicePosition, view: View) -> list[Row]:
    out = []
    status = view.data.get("status")
    if status is not None and LIFECYCLE.get(str(status)) != LIFECYCLE.get(invoice.status):
        out.append(
            _line(
                "invoice",
                invoice.id,
                invoice.number,
                view,
                "status",
                LIFECYCLE.get(str(status), str(status)),
                LIFECYCLE.get(invoice.status, invoice.status),
                None,
                view.seen_at,
                f"connector explain {_label(invoice)}",
                f"{view.system} {view.object_type} is {status}; the invoice is {invoice.status}",
            )
        )
    if view.object_type not in ("deal", "invoice") or position.status == "draft":
        return out
    hints = view.sync.get("hints") or {}
    held = {
        "payment_status": hints.get("crm_payment_status"),
        "amount_outstanding": hints.get("crm_amount_outstanding"),
    }
    for write in index.done_since(view, ("update_properties",)):
        for name, value in (write.payload.get("properties") or {}).items():
            if name in held:
                held[name] = value
    wanted = {"payment_status": position.status, "amount_outstanding": str(position.balance.amount)}
    if held["payment_status"] in (None, "") and held["amount_outstanding"] in (None, ""):
        return out  # the CRM does not keep our properties (not set up, or never written)
    outstanding = _decimal(held["amount_outstanding"])
    if held["payment_status"] == wanted["payment_status"] and outstanding == position.balance.amount:
        return out
    unsent = index.unsent_on(view, ("update_properties",))
    resolve, actions = _resolve_by_writes(unsent, SYNC_AND_SEND)
    difference = None if outstanding is None else abs(Money.of(outstanding, invoice.currency) - position.balance)
    out.append(
        _line(
            "invoice",
            invoice.id,
            invoice.number,
            view,
            "properties",
            f"{held['payment_status'] or '(none)'}, outstanding {held['amount_outstanding'] or '(none)'}",
            f"{wanted['payment_status']}, outstanding {wanted['amount_outstanding']}",
            difference,
            view.seen_at,
            resolve,
            f"{view.system} shows another payment status or amount outstanding than the book",
            actions,
        )
    )
    return out


def _decimal(value: Any) -> Decimal | None:
    try:
        return None if value in (None, "") else Decimal(str(value))
    except InvalidOperation:
        return None


# Payments --------------------------------------------------------------------------------


def payment_drift(book: DriftBook) -> list[Row]:
    """Gateway payments of which the ledger holds more than the gateway collected (a refund
    the ledger does not know, a payment recorded twice). Split payments add up; the unapplied
    credit of an overpayment stays in the gateway."""
    index = _Index(book)
    out = []
    for payment_id, views in sorted(index.payment_views.items()):
        gateway = next((v for v in views if v.kind == "gateway" and v.object_type == "payment"), None)
        ledgers = [v for v in views if v.kind == "ledger" and _counts(v) and _money(v.data, "amount")]
        if gateway is None or not ledgers:
            continue
        gross = _money(gateway.data, "amount")
        if gross is None:
            continue
        refunded = _money(gateway.data, "amount_refunded") or Money.zero(gross.currency)
        collected = (
            Money.zero(gross.currency) if gateway.data.get("status") in ("failed", "pending") else gross - refunded
        )
        amounts = [_money(v.data, "amount") for v in ledgers]
        held = money_sum((m for m in amounts if m is not None and m.currency == gross.currency), gross.currency)
        if held <= collected:
            continue
        since = max((v.seen_at for v in [gateway, *ledgers] if v.seen_at is not None), default=None)
        out.append(
            _line(
                "payment",
                payment_id,
                None,
                ledgers[0],
                "amount",
                str(held),
                f"at most {collected}",
                held - collected,
                since,
                f"connector explain {gateway.remote_id}",
                f"the ledger holds more of {gateway.remote_id} than {gateway.system} collected "
                f"({gross} less {refunded} refunded)",
            )
        )
    return out


# Writes not sent and gaps ----------------------------------------------------------------


def unsent_writes(writes: Iterable[Write], named: Iterable[int]) -> list[Row]:
    """Money writes planned or parked that no other line names (a reversal, a fee)."""
    seen = set(named)
    out = []
    for write in writes:
        if write.kind not in MONEY_WRITES or write.state not in UNSENT or write.id in seen:
            continue
        resolve, _ = _resolve_by_writes([write], "connector apply")
        out.append(
            {
                **_line(
                    write.subject_type or "invoice",
                    write.subject_id,
                    None,
                    None,
                    "write",
                    "not written",
                    write.summary or write.kind,
                    _write_money(write),
                    write.at,
                    resolve,
                    f"{write.kind} #{write.id} is {write.state.replace('_', ' ')}",
                    [write.id],
                ),
                "system": write.connection,
            }
        )
    return out


def _write_money(write: Write) -> Money | None:
    amount, currency = write.payload.get("amount"), write.payload.get("currency")
    return Money.of(amount, currency) if amount is not None and currency else None


def gap_is_resolved(gap: Gap, index: _Index) -> bool:
    """A gap is resolved when the systems agree again or the decision behind it is gone:

    - "unwritten_decision" (a money write cancelled, its decision kept): the decision is gone
      (no allocation of that payment to that invoice is left for the ledger to record: unmatched,
      or the ledger now records the payment itself, entered by hand and synced); for a
      `mark_paid`, also when the gateway shows the invoice paid; for a fee, when the payment has
      no allocation waiting for the ledger any more.
    - "irreversible_write" (a write sent that cannot be taken back, a Stripe invoice marked paid,
      whose decision was undone with `--force`): the book says the invoice is paid (or void)
      again, or the system no longer holds what was written.
    """
    invoice_id, payment_id = gap.inputs.get("invoice"), gap.inputs.get("payment")
    invoice = index.book.invoices.get(invoice_id or "")
    written = index.writes.get(_int(gap.inputs.get("action")))
    kind = written.kind if written is not None else None
    connection = gap.inputs.get("connection")
    system_view = next(
        (
            v
            for v in index.invoice_views.get(invoice_id or "", [])
            if v.system == connection and (written is None or v.target == written.target)
        ),
        None,
    )
    if gap.inputs.get("gap") == "irreversible_write":
        if invoice is None:
            return True
        if index.position(invoice).status in ("paid", "void"):
            return True
        return system_view is not None and GATEWAY_STATE.get(str(system_view.data.get("status"))) != "paid"
    standing = [
        a
        for a in index.book.pending
        if a.payment_id == payment_id and (invoice_id is None or a.invoice_id == invoice_id)
    ]
    if kind == "mark_paid":
        if invoice is None or system_view is None:
            return True
        return GATEWAY_STATE.get(str(system_view.data.get("status"))) == "paid" or (
            index.position(invoice).status != "paid"
        )
    return not standing


def open_gaps(book: DriftBook) -> list[Gap]:
    """The gaps of `book` not resolved yet (`gap_is_resolved`)."""
    return _Index(book).open_gaps


def gap_lines(book: DriftBook) -> list[Row]:
    """Every open gap with its reason, oldest first."""
    index = _Index(book)
    out = []
    for gap in sorted(index.open_gaps, key=lambda g: g.at):
        inputs = gap.inputs
        invoice = book.invoices.get(inputs.get("invoice") or "")
        amount, currency = inputs.get("amount"), inputs.get("currency")
        money = Money.of(amount, currency) if amount is not None and currency else None
        irreversible = inputs.get("gap") == "irreversible_write"
        payment, number = inputs.get("payment"), invoice.number if invoice else None
        reason = gap.reason
        if irreversible:
            holds, should = "written, cannot be taken back", "not written (the decision was undone)"
            undone = payment or _undone_payment(index, inputs.get("invoice"))
            resolve = (
                f"connector reconcile match {undone} {number or inputs.get('invoice')}"
                if undone and (number or inputs.get("invoice"))
                else f"connector explain {number or inputs.get('invoice') or payment}"
            )
        else:
            holds, should = "not written (the write was cancelled)", "written (the decision stands)"
            resolve = "connector sync"
            reason = f"{reason}; {_by_hand(index.writes.get(_int(inputs.get('action'))), inputs, number, money)}"
        out.append(
            {
                **_line(
                    "gap",
                    gap.subject_id,
                    number,
                    None,
                    str(inputs.get("gap")),
                    holds,
                    should,
                    money,
                    gap.at,
                    resolve,
                    reason,
                    [a for a in (_int(inputs.get("action")),) if a >= 0],
                ),
                "system": inputs.get("connection"),
                "invoice": inputs.get("invoice"),
                "payment": payment,
            }
        )
    return out


def _undone_payment(index: _Index, invoice_id: str | None) -> str | None:
    """The payment whose match a forced decision undid on `invoice_id` (a gap of a gateway's
    mark-paid names no payment): the latest one whose ledger payment on the invoice a reversal
    takes back."""
    if not invoice_id:
        return None
    references = {v.remote_id: v.entity_id for v in index.book.payment_views if v.kind == "gateway"}
    reversals = sorted(
        (w for w in index.book.writes if w.kind == "delete_payment" and w.state != "cancelled"),
        key=lambda w: w.id,
        reverse=True,
    )
    for reversal in reversals:
        reversed_ = index.writes.get(_int(reversal.payload.get("reverses")))
        if reversed_ is None or reversed_.subject_id != invoice_id:
            continue
        reference = str(reversed_.payload.get("reference") or "")
        payment = references.get(reference) or (reference if reference in index.book.payments else None)
        if payment:
            return payment
    return None


def _by_hand(written: Write | None, inputs: Mapping[str, Any], number: str | None, money: Money | None) -> str:
    """What finance does for a decision it kept without its write: the write by hand, in the
    system, then a sync reads it back (and the gap is resolved)."""
    system = inputs.get("connection") or "the system"
    kind = written.kind if written is not None else "record_payment"
    payload = written.payload if written is not None else {}
    reference = payload.get("reference") or inputs.get("payment")
    amount = str(money) if money is not None else "the amount"
    if kind == "mark_paid":
        return f"mark {number or inputs.get('invoice')} paid in {system} by hand, then sync"
    if kind == "record_fee":
        return f"book the fee of {amount} on {reference} in {system} by hand, then sync"
    return (
        f"record the payment of {amount} (reference {reference}) to {number or inputs.get('invoice')} "
        f"in {system} by hand, then sync"
    )


def drift_lines(book: DriftBook) -> list[Row]:
    """Every line of `connector drift` but the dangling refs: invoices, payments, unsent money
    writes no other line names, open gaps."""
    records = invoice_drift(book) + payment_drift(book)
    named = {action for record in records for action in record["actions"]}
    gaps = gap_lines(book)
    named |= {action for gap in gaps for action in gap["actions"]}
    return records + unsent_writes(book.writes, named) + gaps


def drift_report(lines: Iterable[Row], dangling: Sequence[Row], *, counted: tuple[int, int] | None = None) -> Row:
    """The report of `lines` and the `dangling` refs. `counted`: (records, gaps) of `lines`,
    which are then not walked here (rows kept on disk, read once more when printed); else a
    list, counted here."""
    if counted is None:
        kept = list(lines)
        gaps = sum(1 for line in kept if line["kind"] == "gap")
        counted, lines = (len(kept) - gaps, gaps), kept
    records, gaps = counted
    return {
        "drift": bool(records or gaps or dangling),
        "records": lines,
        "dangling_refs": list(dangling),
        "counts": {"records": records, "gaps": gaps, "dangling_refs": len(dangling)},
    }
