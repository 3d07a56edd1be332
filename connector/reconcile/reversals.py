"""Refunds and failed payments take back what their allocations applied.

A failed or fully refunded payment pays nothing: all its allocations are removed. A partial
refund leaves `Payment.collected`; allocations beyond it are reduced, rule-made ones before
manual ones and the most recent first, so a person's match is the last to move.
A pending payment keeps its allocations: its money may still arrive.
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
        if payment is None or payment.status not in ("failed", "refunded", "partially_refunded"):
            continue
        made = by_payment[payment_id]
        kept = kept_units(payment)
        excess = sum(minor(allocation.amount) for _, allocation in made) - kept
        if excess <= 0:
            continue
        why = _why(payment)
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


def _why(payment: Payment) -> str:
    if payment.status == "failed":
        return f"payment {payment.id} failed"
    if payment.status == "refunded":
        return f"payment {payment.id} was refunded"
    return f"payment {payment.id} was partly refunded ({payment.amount_refunded} of {payment.amount})"
