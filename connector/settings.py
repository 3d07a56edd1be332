"""The settings sections of connector.toml that a stage reads and `connector.config` checks at
load: `[reconcile]` (the matcher's thresholds, tolerances and search bounds).

Plain values with their defaults; they sit below every stage, so the configuration can check
a section without importing the stage that reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connector.money import currency_exponent, normalise_currency


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
    # Several invoices have the amount, and the remittance's period ("April", "Q3", "Jul-Sep")
    # covers the issue date of exactly one of them.
    exact_amount_period: Decimal = Decimal("0.95")
    # Exact amount of one invoice of some customer, the payment's customer being unknown.
    exact_amount_unknown_payer: Decimal = Decimal("0.60")
    # Tolerance matches start here and lose up to `tolerance_spread` as the gap nears the bound.
    amount_within_tolerance: Decimal = Decimal("0.75")
    tolerance_spread: Decimal = Decimal("0.15")
    subset_sum_unique: Decimal = Decimal("0.90")
    # The one subset is every open invoice of the customer in that currency: a statement paid.
    subset_sum_whole_account: Decimal = Decimal("0.95")
    subset_sum_ambiguous: Decimal = Decimal("0.55")
    # This payment and another open one of the payer add up to an invoice's balance (two
    # instalments): one candidate per payment, each naming the other; finance confirms both.
    several_payments: Decimal = Decimal("0.70")
    # Nothing of the payer's own explains the amount; one invoice of a related customer (a
    # subsidiary) has it exactly, or a set across the payer's group adds up to it: proposed.
    related_accounts: Decimal = Decimal("0.80")
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
            written = amount.normalize().as_tuple().exponent  # minus the decimal places written
            assert isinstance(written, int)  # pydantic refused NaN and the infinities
            if -written > exponent:
                raise ValueError(f"{currency} {amount} has more decimal places than {currency} allows ({exponent})")
            checked[currency] = amount
        return checked
