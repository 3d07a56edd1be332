"""Money that leaves takes back what its allocations applied: refunds, failed payments and
disputes (chargebacks).

A failed or fully refunded payment pays nothing: all its allocations are removed. A partial
refund, or a dispute that withdrew the money it contests (open, or lost), leaves
`Payment.collected`; allocations beyond it are reduced, rule-made ones before manual ones and
the most recent first, so a person's match is the last to move. A pending payment keeps its
allocations: its money may still arrive. An inquiry withdraws nothing, and a won dispute gives
the money back: the payment is collectible again and the matcher applies it anew.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from connector.model import Allocation, Payment
from connector.reconcile.book import minor, money
from connector.reconcile.types import MANUAL_RULE, Reversal


def is_manual(allocation: Allocation) -> bool:
    return allocation.rule == MANUAL_RULE or allocation.confirmed_by is not None


def kept_units(payment: Payment) -> int:
    """What the payment still pays, in minor units: nothing once failed or refunded."""
    if payment.status in ("failed", "refunded"):
        return 0
    return minor(payment.collected)


def find_reversals(payments: Mapping[str, Payment], allocations: Sequence[Allocation]) -> list[Reversal]:
    """The allocations to remove or reduce, by payment id then the order they are undone."""
    by_payment: dict[str, list[tuple[int, Allocation]]] = defaultdict(list)
    for position, allocation in enumerate(allocations):
        by_payment[allocation.payment_id].append((position, allocation))
    result: list[Reversal] = []
    for payment_id in sorted(by_payment):
        payment = payments.get(payment_id)
        if payment is None or not money_left(payment):
            continue
        made = by_payment[payment_id]
        kept = kept_units(payment)
        excess = sum(minor(allocation.amount) for _, allocation in made) - kept
        if excess <= 0:
            continue
        why = why_money_left(payment)
        for _, allocation in sorted(made, key=lambda pair: (is_manual(pair[1]), -pair[0])):
            if excess <= 0:
                break
            units = minor(allocation.amount)
            take = min(units, excess)
            excess -= take
            amount = money(take, allocation.amount.currency)
            result.append(
                Reversal(
                    allocation=allocation,
                    amount=amount,
                    remove=take == units,
                    reason=f"{why}: allocation to invoice {allocation.invoice_id} "
                    + ("removed" if take == units else f"reduced by {amount}"),
                )
            )
    return result


def money_left(payment: Payment) -> bool:
    """Whether money the payment brought has left it: failed, refunded (in full or in part), or
    withdrawn by a dispute (open, or lost)."""
    return payment.status in ("failed", "refunded", "partially_refunded") or not payment.withdrawn.is_zero


def why_money_left(payment: Payment) -> str:
    """The reason an audit entry gives for what left: "payment pay_1 was refunded"."""
    if payment.status == "failed":
        return f"payment {payment.id} failed"
    if payment.status == "refunded":
        return f"payment {payment.id} was refunded"
    if not payment.withdrawn.is_zero:
        return _why_disputed(payment)
    return f"payment {payment.id} was partly refunded ({payment.amount_refunded} of {payment.amount})"


def _why_disputed(payment: Payment) -> str:
    reason = f" ({payment.dispute_reason})" if payment.dispute_reason else ""
    part = "" if payment.withdrawn == payment.amount else f" ({payment.withdrawn} of {payment.amount})"
    if payment.dispute_status == "lost":
        when = f" on {payment.disputed_at.date().isoformat()}" if payment.disputed_at else ""
        return f"payment {payment.id} was disputed{reason}{part}, lost{when}: the money is gone"
    return f"payment {payment.id} was disputed{reason}{part}: funds withdrawn while the dispute is open"
