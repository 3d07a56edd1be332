"""What the reconciliation gives: its decisions and its rule names (its settings: connector.settings).

Everything here is a plain value. `reconcile()` (in `matcher`) reads canonical records and
these settings and returns a `ReconcileResult`; the engine stores it and does the I/O.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from connector.model import Allocation
from connector.money import Money

RuleName = Literal[
    "explicit_link",
    "remittance_number",
    "exact_amount_unique",
    "amount_within_tolerance",
    "subset_sum",
    "several_payments",
    "payer_open_invoice",
]
RULES: Final[tuple[RuleName, ...]] = (
    "explicit_link",
    "remittance_number",
    "exact_amount_unique",
    "amount_within_tolerance",
    "subset_sum",
    "several_payments",
    "payer_open_invoice",
)
# An allocation a person made (or confirmed) is never touched by a rule.
MANUAL_RULE: Final = "manual"
# Payments the ledger already holds are applied as the ledger records them (never matched again).
LEDGER_RULE = "ledger_record"
# A payment in one of these states is money: it pays invoices (a refund takes back only what it
# refunded). Failed, pending and deleted payments pay nothing.
MONEY_STATUSES: Final = ("succeeded", "partially_refunded", "refunded")
# The statuses whose money the matcher may apply (a refunded payment keeps nothing to apply).
PAYABLE: Final = ("succeeded", "partially_refunded")


class Candidate(BaseModel):
    """One way to apply a payment: invoices with the amount each would get, in order."""

    model_config = ConfigDict(frozen=True)

    invoice_ids: tuple[str, ...]
    amounts: tuple[Money, ...]
    rule: RuleName
    confidence: Decimal
    reason: str


class Proposal(BaseModel):
    """A payment that waits for finance, with its candidates best first, and a note when the
    evidence says something no candidate can do: a possible duplicate payment (the invoice it
    names is paid already), a payment in another currency than the invoice it names."""

    model_config = ConfigDict(frozen=True)

    payment_id: str
    amount: Money  # what the payment has left to apply
    candidates: tuple[Candidate, ...]
    note: str | None = None


class Reversal(BaseModel):
    """An existing allocation to remove (`amount` equals it) or reduce by `amount`, because the
    payment failed or was refunded."""

    model_config = ConfigDict(frozen=True)

    allocation: Allocation
    amount: Money
    remove: bool
    reason: str


class ReconcileResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    applied: list[Allocation]
    proposals: list[Proposal]
    # Every payment's amount left after this run's allocations: surplus of an overpayment,
    # a payment only proposed or not matched at all. Credit on the customer, never dropped.
    unapplied: dict[str, Money]
    reversals: list[Reversal]
    # Payments with nothing applied and nothing to propose.
    unmatched: list[str]
