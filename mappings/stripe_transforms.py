"""Transforms that only Stripe's shapes need (registered for mappings/stripe.toml).

Amounts are Stripe integer minor units (`stripe_exponent`: JPY 0, USD 2, KWD 3, ISK 2).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connector.mappings.transforms import (
    TransformContext,
    _currency,
    _epoch_date,
    _int,
    stripe_exponent,
    transform,
)
from connector.money import Money, money_sum, to_decimal


def _minor(value: Any, currency: str) -> Money:
    return Money.from_minor(_int(value), currency, exponent=stripe_exponent(currency))


def _record(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f'{name} needs the whole object (path ".")')
    return value


@transform("stripe_first")
def _first(value: Any, ctx: TransformContext) -> Any:
    """The first present value of a `paths` field (a customer's name, else its email);
    "" when none is (a deleted customer's stub has no name)."""
    values = value if isinstance(value, list) else [value]
    return next((v for v in values if v not in (None, "")), "")


@transform("stripe_first_date")
def _first_date(value: Any, ctx: TransformContext) -> Any:
    """The first present epoch of a `paths` field, as a date (`effective_at`, else `created`)."""
    first = _first(value, ctx)
    return None if first == "" else _epoch_date(first, ctx)


@transform("stripe_minor_units_sum")
def _minor_units_sum(value: Any, ctx: TransformContext) -> Money:
    """The sum of a `paths` field's amounts (pre- and post-payment credit notes)."""
    currency = _currency(ctx)
    values = value if isinstance(value, list) else [value]
    return money_sum((_minor(v, currency) for v in values if v is not None), currency)


@transform("stripe_invoice_subtotal")
def _invoice_subtotal(value: Any, ctx: TransformContext) -> Money:
    """The invoice net of discounts and tax, so that subtotal + tax = total: Stripe's
    `subtotal` is before discounts, `total_excluding_tax` after them (null on old invoices)."""
    invoice = _record(value, "stripe_invoice_subtotal")
    currency = _currency(ctx)
    if invoice.get("total_excluding_tax") is not None:
        return _minor(invoice["total_excluding_tax"], currency)
    return _minor(invoice["total"], currency) - _minor(invoice.get("tax") or 0, currency)


@transform("stripe_invoice_lines")
def _invoice_lines(value: Any, ctx: TransformContext) -> list[dict[str, Any]]:
    """Lines net of their discounts and tax, which add up to the invoice's subtotal. When
    they cannot (lines not all present, an unusual discount), no lines rather than a wrong
    invoice: the totals are what reconciliation needs."""
    invoice = _record(value, "stripe_invoice_lines")
    currency = _currency(ctx)
    lines = (invoice.get("lines") or {}).get("data") or []
    result = []
    for line in lines:
        gross = line.get("amount_excluding_tax")
        amount = _minor(line["amount"] if gross is None else gross, currency)
        discounts = money_sum(
            (_minor(d.get("amount", 0), currency) for d in line.get("discount_amounts") or []), currency
        )
        taxes = money_sum((_minor(t.get("amount", 0), currency) for t in line.get("tax_amounts") or []), currency)
        entry: dict[str, Any] = {
            "description": line.get("description") or "",
            "amount": amount - discounts,
            "tax": taxes,
        }
        if line.get("quantity") is not None:
            entry["quantity"] = _int(line["quantity"], ctx)
        unit = line.get("unit_amount_excluding_tax")
        if unit is not None:  # a decimal string of minor units ("1500.5")
            entry["unit_price"] = to_decimal(str(unit)).scaleb(-stripe_exponent(currency))
        if entry["amount"].is_negative:
            return []
        result.append(entry)
    if money_sum((e["amount"] for e in result), currency) != _invoice_subtotal(invoice, ctx):
        return []
    return result


@transform("stripe_charge_status")
def _charge_status(value: Any, ctx: TransformContext) -> str:
    """pending / failed / succeeded, then refunded or partially refunded by the amounts."""
    charge = _record(value, "stripe_charge_status")
    status = str(charge.get("status"))
    if status != "succeeded":
        return status
    if charge.get("refunded"):
        return "refunded"
    if int(charge.get("amount_refunded") or 0) > 0:
        return "partially_refunded"
    return "succeeded"


@transform("stripe_charge_fee")
def _charge_fee(value: Any, ctx: TransformContext) -> Money | None:
    """The fee from the expanded balance transaction, when it is in the charge's currency
    (a charge settled in another currency has its fee in that one: see balance_transactions)."""
    charge = _record(value, "stripe_charge_fee")
    txn = charge.get("balance_transaction")
    if not isinstance(txn, dict) or str(txn.get("currency", "")).upper() != _currency(ctx):
        return None
    return _minor(txn["fee"], _currency(ctx))


# Disputes (chargebacks) ----------------------------------------------------------------------

# Stripe's dispute statuses -> the payment's dispute status: an inquiry (warning_*) withdraws
# nothing; needs_response and under_review have the money withdrawn while contested.
DISPUTE_STATUS = {
    "warning_needs_response": "inquiry",
    "warning_under_review": "inquiry",
    "warning_closed": "inquiry",
    "needs_response": "open",
    "under_review": "open",
    "won": "won",
    "lost": "lost",
}


def _latest_dispute(value: Any, name: str) -> dict[str, Any] | None:
    """The charge's newest dispute, from the list the adapter puts on a disputed charge
    (`disputes`); None for a charge that is not disputed."""
    charge = _record(value, name)
    if not charge.get("disputed"):
        return None
    disputes = [d for d in (charge.get("disputes") or {}).get("data") or [] if isinstance(d, dict)]
    if not disputes:
        raise ValueError(f"charge {charge.get('id')} is disputed but its disputes were not read")
    return max(disputes, key=lambda d: (_int(d.get("created") or 0), str(d.get("id"))))


def _dispute_status(dispute: dict[str, Any]) -> str:
    status = str(dispute.get("status"))
    if status not in DISPUTE_STATUS:
        raise ValueError(f"dispute {dispute.get('id')}: unknown status {status!r}")
    return DISPUTE_STATUS[status]


@transform("stripe_dispute_status")
def _charge_dispute_status(value: Any, ctx: TransformContext) -> str | None:
    """inquiry / open / won / lost of the charge's newest dispute (None: not disputed)."""
    dispute = _latest_dispute(value, "stripe_dispute_status")
    return None if dispute is None else _dispute_status(dispute)


@transform("stripe_amount_disputed")
def _charge_amount_disputed(value: Any, ctx: TransformContext) -> Money | None:
    """The amount the charge's newest dispute contests, in the charge's currency."""
    dispute = _latest_dispute(value, "stripe_amount_disputed")
    if dispute is None:
        return None
    if str(dispute.get("currency", "")).upper() != _currency(ctx):
        raise ValueError(f"dispute {dispute.get('id')} is in {dispute.get('currency')}, not the charge's currency")
    return _minor(dispute["amount"], _currency(ctx))


@transform("stripe_dispute_reason")
def _charge_dispute_reason(value: Any, ctx: TransformContext) -> str | None:
    dispute = _latest_dispute(value, "stripe_dispute_reason")
    return None if dispute is None else (str(dispute.get("reason") or "") or None)


@transform("stripe_disputed_at")
def _charge_disputed_at(value: Any, ctx: TransformContext) -> datetime | None:
    """When the newest dispute reached where it stands: the latest of its creation and its
    balance transactions (the withdrawal, a won dispute's reinstatement)."""
    dispute = _latest_dispute(value, "stripe_disputed_at")
    if dispute is None:
        return None
    return datetime.fromtimestamp(_dispute_moment(dispute), UTC)


def _dispute_moment(dispute: dict[str, Any]) -> int:
    moments = [_int(dispute.get("created") or 0)]
    for txn in dispute.get("balance_transactions") or []:
        if isinstance(txn, dict) and txn.get("created") is not None:
            moments.append(_int(txn["created"]))
    return max(moments)
