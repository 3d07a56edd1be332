"""What finance decides by hand: accept or reject a proposal, match or unmatch a payment.

Every decision is checked against the invariants (never more than the payment has left, never
more than the invoice owes, never across currencies), written in one transaction with its audit
entry (who, when, why), and respected by later runs: a manual or accepted allocation is never
overwritten by a rule, and a rejected or unmatched pair is never proposed again.

Each decision is settled in its own transaction before it commits (`settle`, given by the
caller: `connector.writeback.settle.Settler`, a stage above this one): the writes it no longer
stands behind are cancelled or taken back, or the decision is refused, all or nothing.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import date
from decimal import Decimal, getcontext
from typing import Any, Protocol

from connector.actors import current_user
from connector.errors import UsageError
from connector.lookup import find_invoice, find_payment
from connector.model import Allocation, Invoice, Payment, invoice_position
from connector.money import Money, currency_exponent, to_decimal
from connector.reconcile import MANUAL_RULE
from connector.reconcile.types import LEDGER_RULE
from connector.reports import payment_application
from connector.state import linking as state_linking
from connector.state import outbox
from connector.state import reconciliation as decisions
from connector.state.bookkeeping import audit
from connector.state.store import Store


class Settle(Protocol):
    """Brings the outbox in line with the allocations the decision's transaction holds, or
    refuses the decision (UsageError); `payments` and `invoices` are what it touched."""

    def __call__(
        self, session: Any, *, actor: str, cause: str, payments: Collection[str], invoices: Collection[str]
    ) -> object: ...


def _applied(
    session: Any, *, payment_ids: Sequence[str] | None = None, invoice_ids: Sequence[str] | None = None
) -> list[Allocation]:
    return [
        s.allocation
        for s in decisions.load_allocations(session, status="applied", payment_ids=payment_ids, invoice_ids=invoice_ids)
    ]


def payment_unapplied(session: Any, payment: Payment) -> Money:
    """What the payment has left to apply; never negative, even when a refund since the
    payment was allocated leaves its allocations above what it collected (until the next
    reconciliation run reverses them)."""
    _, unapplied = payment_application(payment, _applied(session, payment_ids=[payment.id or ""]))
    return unapplied


def invoice_balance(session: Any, invoice: Invoice, as_of: date | None = None) -> Money:
    """What the invoice still owes after the allocations the ledger does not hold yet."""
    return invoice_balances(session, [invoice], as_of)[invoice.id or ""]


def invoice_balances(session: Any, invoices: Sequence[Invoice], as_of: date | None = None) -> dict[str, Money]:
    """`invoice_balance` of each of `invoices`, by id, from one read of their allocations."""
    extra: dict[str, list[Allocation]] = defaultdict(list)
    for allocation in _applied(session, invoice_ids=[i.id or "" for i in invoices]) if invoices else []:
        if allocation.rule != LEDGER_RULE:
            extra[allocation.invoice_id].append(allocation)
    day = as_of or date.today()
    return {i.id or "": invoice_position(i, day, extra.get(i.id or "", [])).balance for i in invoices}


def _check_and_save(store: Store, session: Any, new: list[Allocation], user: str, action: str, reason: str) -> None:
    for allocation in new:
        payment = store.list_payments(ids=[allocation.payment_id], session=session)[0]
        invoice = store.get_invoice(allocation.invoice_id, session=session)
        assert invoice is not None
        if allocation.amount.currency != invoice.currency or allocation.amount.currency != payment.amount.currency:
            raise UsageError(
                f"currencies differ: payment in {payment.amount.currency}, invoice in {invoice.currency}; "
                "an allocation never mixes currencies: record the payment against the invoice in the ledger"
            )
        left = payment_unapplied(session, payment)
        if allocation.amount > left:
            raise UsageError(f"the payment has only {left} left to apply, not {allocation.amount}")
        owed = invoice_balance(session, invoice)
        if allocation.amount > owed:
            raise UsageError(f"invoice {invoice.number or invoice.id} owes only {owed}, not {allocation.amount}")
        decisions.save_allocations(session, [allocation], "applied")
        audit(
            session,
            user,
            action,
            "payment",
            allocation.payment_id,
            {
                "invoice": allocation.invoice_id,
                "amount": str(allocation.amount),
                "rule": allocation.rule,
                "allocation": allocation.id,
            },
            reason,
        )


def _open_proposal(session: Any, proposal_id: str) -> dict[str, Any]:
    """The proposal finance decides on; UsageError when there is none or it was decided."""
    found = decisions.load_proposals(session, status=None, ids=[proposal_id])
    if not found:
        raise UsageError(f"no proposal {proposal_id!r} (see `connector reconcile`)")
    proposal = found[0]
    if proposal["status"] != "open":
        raise UsageError(f"proposal {proposal_id} was already {proposal['status']} by {proposal['decided_by']}")
    return proposal


def accept_proposal(
    store: Store,
    proposal_id: str,
    *,
    settle: Settle,
    candidate: int = 1,
    user: str | None = None,
    reason: str = "",
) -> list[Allocation]:
    user = current_user(user)
    with store.session() as session:
        proposal = _open_proposal(session, proposal_id)
        candidates = proposal["candidates"]
        if not candidates:
            # A possible duplicate payment, a payment in another currency than the invoice it
            # names: nothing a rule may allocate; the note says what finance does instead.
            raise UsageError(
                f"proposal {proposal_id} has nothing to accept: "
                f"{proposal.get('note') or 'see its note in `connector explain ' + proposal['payment_id'] + '`'}; "
                f"record it in the ledger or match it by hand (`connector reconcile match`)"
            )
        if not 1 <= candidate <= len(candidates):
            raise UsageError(f"proposal {proposal_id} has candidates 1 to {len(candidates)}, not {candidate}")
        chosen = candidates[candidate - 1]
        new = [
            Allocation(
                id=decisions.allocation_id(proposal["payment_id"], invoice_id, chosen["rule"]),
                payment_id=proposal["payment_id"],
                invoice_id=invoice_id,
                amount=Money.of(amount, chosen["currency"]),
                rule=chosen["rule"],
                confidence=Decimal(chosen["confidence"]),
                reason=chosen["reason"],
                confirmed_by=user,
            )
            for invoice_id, amount in zip(chosen["invoice_ids"], chosen["amounts"], strict=True)
        ]
        _check_and_save(
            store, session, new, user, "accept", reason or f"accepted candidate {candidate} of {proposal_id}"
        )
        decisions.decide_proposal(session, proposal_id, "accepted", user)
        settle(
            session,
            actor=user,
            cause=f"accept of {proposal_id}",
            payments=[proposal["payment_id"]],
            invoices=[a.invoice_id for a in new],
        )
    return new


def reject_proposal(
    store: Store, proposal_id: str, *, settle: Settle, user: str | None = None, reason: str = ""
) -> None:
    user = current_user(user)
    with store.session() as session:
        proposal = _open_proposal(session, proposal_id)
        _remember_rejections(
            session,
            proposal["payment_id"],
            [
                (i, Money.of(a, c["currency"]))
                for c in proposal["candidates"]
                for i, a in zip(c["invoice_ids"], c["amounts"], strict=True)
            ],
            user,
            reason or f"rejected {proposal_id}",
        )
        decisions.decide_proposal(session, proposal_id, "rejected", user)
        audit(session, user, "reject", "payment", proposal["payment_id"], {"proposal": proposal_id}, reason or None)
        settle(
            session,
            actor=user,
            cause=f"reject of {proposal_id}",
            payments=[proposal["payment_id"]],
            invoices=sorted({i for c in proposal["candidates"] for i in c["invoice_ids"]}),
        )


def reopen_proposal(
    store: Store, proposal_id: str, *, settle: Settle, user: str | None = None, reason: str = ""
) -> None:
    """Undo finance's decision on a proposal: a rejected one forgets its rejected pairs, an
    accepted one has the allocations it made removed (not remembered as rejected); either way
    the proposal is open again and the payment is proposed on the next run."""
    user = current_user(user)
    with store.session() as session:
        found = decisions.load_proposals(session, status=None, ids=[proposal_id])
        if not found:
            raise UsageError(f"no proposal {proposal_id!r} (see `connector reconcile`)")
        proposal = found[0]
        payment_id = proposal["payment_id"]
        pairs = sorted({i for c in proposal["candidates"] for i in c["invoice_ids"]})
        if proposal["status"] == "rejected":
            forgotten = [decisions.allocation_id(payment_id, i, "rejected") for i in pairs]
        elif proposal["status"] == "accepted":
            made = {
                decisions.allocation_id(payment_id, i, c["rule"])
                for c in proposal["candidates"]
                for i in c["invoice_ids"]
            }
            forgotten = [a.id or "" for a in _applied(session, payment_ids=[payment_id]) if a.id in made]
        else:
            raise UsageError(f"proposal {proposal_id} is open: there is no decision to undo")
        decisions.delete_allocations(session, forgotten)
        decisions.reopen_proposal(session, proposal_id)
        audit(
            session,
            user,
            "reopen",
            "payment",
            payment_id,
            {"proposal": proposal_id, "was": proposal["status"], "allocations": forgotten},
            reason or f"reopened {proposal['status']} {proposal_id}",
        )
        settle(session, actor=user, cause=f"reopen of {proposal_id}", payments=[payment_id], invoices=pairs)


def _remember_rejections(session: Any, payment_id: str, pairs: list[tuple[str, Money]], user: str, reason: str) -> None:
    """Rejected pairs are stored as `rejected` allocations: the matcher skips them forever."""
    rows = [
        Allocation(
            id=decisions.allocation_id(payment_id, invoice_id, "rejected"),
            payment_id=payment_id,
            invoice_id=invoice_id,
            amount=amount,
            rule="rejected",
            confidence=Decimal(0),
            reason=reason,
            confirmed_by=user,
        )
        for invoice_id, amount in pairs
        if amount.amount > 0
    ]
    decisions.save_allocations(session, rows, "rejected")


def match(
    store: Store,
    payment_token: str,
    invoice_token: str,
    *,
    settle: Settle,
    amount: str | None = None,
    user: str | None = None,
    reason: str = "",
) -> Allocation:
    user = current_user(user)
    payment = find_payment(store, payment_token)
    invoice = find_invoice(store, invoice_token)
    with store.session() as session:
        if amount is None:
            left, owed = payment_unapplied(session, payment), invoice_balance(session, invoice)
            if left.currency != owed.currency:
                raise UsageError(f"currencies differ: payment in {left.currency}, invoice in {owed.currency}")
            value = min(left, owed)
        else:
            value = _given_amount(amount, payment.amount.currency)
        if value.amount <= 0:
            raise UsageError("nothing to match: the payment has nothing left or the invoice owes nothing")
        allocation = Allocation(
            id=decisions.allocation_id(payment.id or "", invoice.id or "", MANUAL_RULE),
            payment_id=payment.id or "",
            invoice_id=invoice.id or "",
            amount=value,
            rule=MANUAL_RULE,
            confidence=Decimal(1),
            reason=reason or f"matched by {user}",
            confirmed_by=user,
        )
        applied = _applied(session, payment_ids=[payment.id or ""])
        if any(a.id == allocation.id for a in applied):
            raise UsageError(f"{payment_token} is already matched by hand to {invoice_token}; unmatch it first")
        recorded = [a for a in applied if a.rule == LEDGER_RULE and a.invoice_id == allocation.invoice_id]
        if recorded:
            # the write-back never writes a second part of one payment on one invoice (it could
            # not tell it from the first), so this match would count money the ledger never gets
            raise UsageError(
                f"the ledger already records {recorded[0].amount} of {payment_token} on {invoice_token}; "
                "change that payment's amount in the ledger, then sync"
            )
        _check_and_save(store, session, [allocation], user, "match", reason or "manual match")
        settle(
            session,
            actor=user,
            cause=f"match of {payment_token} to {invoice_token}",
            payments=[allocation.payment_id],
            invoices=[allocation.invoice_id],
        )
    return allocation


def _given_amount(text: str, currency: str) -> Money:
    """`--amount` as exact Money in the payment's currency: a finite positive number, never
    rounded (1.234 on a USD payment is refused rather than silently becoming 1.23, and so is
    1.00000000000000000000000000001, which Decimal's 28 digits would round to 1), and small
    enough to hold at the currency's exponent (1e30 USD needs 33 digits)."""
    shown = _shown(text)
    try:
        value = to_decimal(text)
    except ValueError as exc:
        raise UsageError(f"--amount: {_shown(str(exc), 80)}") from None
    if not _PLAIN_NUMBER.fullmatch(text.strip()):
        raise UsageError(f"--amount: not a number: {shown!r} (write ASCII digits and a point, e.g. 1234.50)")
    if value <= 0:
        raise UsageError(f"--amount must be positive, not {shown}")
    allowed = currency_exponent(currency)
    if _decimal_places(value) > allowed:
        raise UsageError(f"--amount {shown} has more decimal places than {currency} allows ({allowed})")
    if value.adjusted() + 1 + allowed > getcontext().prec:
        raise UsageError(f"--amount {shown} is too large for an amount in {currency}")
    return Money.of(value, currency)


# ASCII digits, an optional point and exponent: Decimal alone would also take `1_000`, Arabic-
# Indic or full-width digits, `NaN` and `Infinity`, none of which is how anyone types an amount.
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def _decimal_places(value: Decimal) -> int:
    """Digits after the point that are not trailing zeros (1.50 has one), counted exactly:
    `Decimal.normalize()` would first round to the context's 28 significant digits."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # a finite number (to_decimal refuses the others)
    significant = "".join(map(str, digits)).rstrip("0")
    if not significant:
        return 0
    return max(0, -(exponent + len(digits) - len(significant)))


def _shown(text: str, limit: int = 40) -> str:
    text = text.strip()
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def unmatch(
    store: Store, allocation_id: str, *, settle: Settle, user: str | None = None, reason: str = ""
) -> Allocation:
    """Remove an applied allocation (remembered as rejected: no rule makes it again). The
    ledger's own record of a payment is refused, unless the payment is one we wrote there:
    then the settlement plans its deletion."""
    user = current_user(user)
    with store.session() as session:
        found = [s.allocation for s in decisions.load_allocations(session, status="applied", ids=[allocation_id])]
        if not found:
            raise UsageError(f"no applied allocation {allocation_id!r} (see `connector reconcile --json`)")
        allocation = found[0]
        if allocation.rule == LEDGER_RULE and not written_by_us(store, session, allocation):
            raise UsageError("this allocation is the ledger's own record; change the payment in the ledger")
        withdraw(session, [allocation], user, "unmatch", reason or f"unmatched {allocation_id}", audited=reason or None)
        settle(
            session,
            actor=user,
            cause=f"unmatch of {allocation_id}",
            payments=[allocation.payment_id],
            invoices=[allocation.invoice_id],
        )
    return allocation


def withdraw(
    session: Any, allocations: Sequence[Allocation], user: str, action: str, reason: str, *, audited: str | None
) -> None:
    """Take allocations back: removed, each pair remembered as rejected (the payment returns as
    a proposal without it), each audit-logged as `action` with `audited` as the decision."""
    decisions.delete_allocations(session, [a.id or "" for a in allocations])
    for allocation in allocations:
        _remember_rejections(session, allocation.payment_id, [(allocation.invoice_id, allocation.amount)], user, reason)
        audit(
            session,
            user,
            action,
            "payment",
            allocation.payment_id,
            {"invoice": allocation.invoice_id, "amount": str(allocation.amount), "allocation": allocation.id},
            audited,
        )


def written_by_us(store: Store, session: Any, allocation: Allocation) -> bool:
    """Whether the ledger payment behind a `ledger_record` allocation is one our write-back
    recorded (a sent record_payment got its id back from the ledger)."""
    invoice = store.get_invoice(allocation.invoice_id, session=session)
    ledger_invoices = {(r.system, r.remote_id) for r in (invoice.refs if invoice else [])}
    remote_ids = set()
    for view in state_linking.ref_views(session, "payment"):
        if view["entity_id"] != allocation.payment_id:
            continue
        data = view["data"] if isinstance(view["data"], dict) else {}
        link = ((data.get("_sync") or {}).get("links") or {}).get("invoice")
        if link and (view["system"], str(link)) in ledger_invoices:
            remote_ids.add(str(view["remote_id"]))
    if not remote_ids:
        return False
    sent = outbox.entries(session, states=("done",), kinds=("record_payment",), subject_ids=[allocation.invoice_id])
    return any(str((e.result or {}).get("remote_id")) in remote_ids for e in sent)


# Collections states: dispute, promise to pay, pause -----------------------------------------
