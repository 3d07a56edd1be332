"""What the reconciliation takes and gives: its settings, its decisions and its rule names.

Everything here is a plain value. `reconcile()` (in `matcher`) reads canonical records and
these settings and returns a `ReconcileResult`; the engine stores it and does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connector.model import Allocation
from connector.money import Money, currency_exponent, normalise_currency

RuleName = Literal[
    "explicit_link",
    "remittance_number",
    "exact_amount_unique",
    "amount_within_tolerance",
    "subset_sum",
    "payer_open_invoice",
]
RULES: Final[tuple[RuleName, ...]] = (
    "explicit_link",
    "remittance_number",
    "exact_amount_unique",
    "amount_within_tolerance",
    "subset_sum",
    "payer_open_invoice",
)
# An allocation a person made (or confirmed) is never touched by a rule.
MANUAL_RULE: Final = "manual"
# Payments the ledger already holds are applied as the ledger records them (never matched again).
LEDGER_RULE = "ledger_record"


class Confidences(BaseModel):
    """The confidence each rule gives a candidate. Only candidates at or above
    `ReconcileConfig.auto_threshold` with no equally good rival are applied."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    explicit_link: Decimal = Decimal("1.00")
    # "INV-0042", "#42", "invoice 42": a marked invoice number of the payer's own invoice.
    remittance_number: Decimal = Decimal("0.98")
    # A marked number when the payment's customer is unknown (bank transfer, no payer match).
    remittance_number_unknown_payer: Decimal = Decimal("0.96")
    # A bare "42" that only one open invoice of the payer can mean.
    remittance_bare_number: Decimal = Decimal("0.95")
    # The number names an invoice of another customer than the payer: finance decides.
    remittance_other_customer: Decimal = Decimal("0.60")
    remittance_ambiguous: Decimal = Decimal("0.85")
    exact_amount_unique: Decimal = Decimal("0.95")
    exact_amount_ambiguous: Decimal = Decimal("0.80")
    # Exact amount of one invoice of some customer, the payment's customer being unknown.
    exact_amount_unknown_payer: Decimal = Decimal("0.60")
    # Tolerance matches start here and lose up to `tolerance_spread` as the gap nears the bound.
    amount_within_tolerance: Decimal = Decimal("0.75")
    tolerance_spread: Decimal = Decimal("0.15")
    subset_sum_unique: Decimal = Decimal("0.90")
    # The one subset is every open invoice of the customer in that currency: a statement paid.
    subset_sum_whole_account: Decimal = Decimal("0.95")
    subset_sum_ambiguous: Decimal = Decimal("0.55")
    # Added when the remittance mentions a candidate's number without naming it for sure.
    remittance_hint_bonus: Decimal = Decimal("0.05")
    # Nothing else explains the payment: the payer's open invoices paid oldest due first, the
    # last in part (a partial payment) or all in full with the surplus kept as credit.
    payer_open_invoice: Decimal = Decimal("0.40")

    @model_validator(mode="after")
    def _within_zero_and_one(self) -> Confidences:
        for name, value in self:
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        return self


class ReconcileConfig(BaseModel):
    """Thresholds, tolerances and search bounds; the defaults suit a small finance team."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    auto_threshold: Decimal = Field(default=Decimal("0.95"), ge=0, le=1)
    # A payment within max(fraction x balance, absolute[currency]) of an invoice balance
    # matches it by `amount_within_tolerance` (gateway fees, FX rounding).
    tolerance_fraction: Decimal = Field(default=Decimal("0.03"), ge=0, lt=1)
    tolerance_absolute: Mapping[str, Decimal] = Field(default_factory=dict)
    max_subset_size: int = Field(default=5, ge=2, le=8)
    # Subset search looks at this many of the customer's open invoices at most (those with a
    # balance below the payment, oldest due first): 2^(pool/2) sums per half, meet in the middle.
    subset_pool: int = Field(default=16, ge=2, le=24)
    # Stop after this many exact subsets: enough to know the answer is ambiguous.
    max_subset_solutions: int = Field(default=10, ge=2)
    max_candidates: int = Field(default=5, ge=1)
    # A payment no other rule explains is proposed against at most this many of the payer's
    # open invoices, oldest due first (rule `payer_open_invoice`).
    oldest_first_invoices: int = Field(default=5, ge=1, le=50)
    confidence: Confidences = Field(default_factory=Confidences)

    @field_validator("tolerance_absolute")
    @classmethod
    def _amounts_in_their_currency(cls, value: Mapping[str, Decimal]) -> dict[str, Decimal]:
        """Per currency, a non-negative amount the currency can hold (no rounding later)."""
        checked = {}
        for code, amount in value.items():
            currency = normalise_currency(code)
            if amount < 0:
                raise ValueError(f"{currency} must not be negative, not {amount}")
            exponent = currency_exponent(currency)
            if -amount.normalize().as_tuple().exponent > exponent:  # type: ignore[operator]
                raise ValueError(f"{currency} {amount} has more decimal places than {currency} allows ({exponent})")
            checked[currency] = amount
        return checked


class Candidate(BaseModel):
    """One way to apply a payment: invoices with the amount each would get, in order."""

    model_config = ConfigDict(frozen=True)

    invoice_ids: tuple[str, ...]
    amounts: tuple[Money, ...]
    rule: RuleName
    confidence: Decimal
    reason: str


class Proposal(BaseModel):
    """A payment that waits for finance, with its candidates best first."""

    model_config = ConfigDict(frozen=True)

    payment_id: str
    amount: Money  # what the payment has left to apply
    candidates: tuple[Candidate, ...]


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
