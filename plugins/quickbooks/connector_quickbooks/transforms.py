"""QuickBooks transforms that are more than a field path (imported by this package's
`mapping.toml` through `imports`). Registered with `connector.plugin.transform`.

QuickBooks amounts are decimals in the record's `CurrencyRef` (a JPY company's have no
places, a KWD one's three); they become `Money` of that currency, exactly.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from connector.plugin import Money, TransformContext, parse_iso_datetime, to_decimal, transform

SALES_LINE = "SalesItemLineDetail"


def _currency(ctx: TransformContext) -> str:
    if not ctx.currency:
        raise ValueError("needs the record's currency (CurrencyRef), which is missing")
    return ctx.currency


def _amount(raw: dict[str, Any], key: str) -> Decimal:
    value = raw.get(key)
    return Decimal(0) if value in (None, "") else to_decimal(value)


def _object(raw: dict[str, Any], key: str) -> dict[str, Any]:
    """The object under `key`, empty when it is missing or not an object."""
    value = raw.get(key)
    return value if isinstance(value, dict) else {}


def _whole(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError('needs the whole record (path ".")')
    return value


def is_deleted(raw: dict[str, Any]) -> bool:
    """Reported by Change Data Capture as `status: "Deleted"`."""
    return str(raw.get("status", "")).lower() == "deleted"


def is_voided(raw: dict[str, Any]) -> bool:
    """No void status exists: a voided transaction has TotalAmt (and Balance) 0 and "Voided"
    in its PrivateNote; its lines stay, with zero amounts."""
    total = _amount(raw, "TotalAmt")
    return total == 0 and "void" in str(raw.get("PrivateNote") or "").lower()


@transform("qbo_deleted")
def _deleted(value: Any, ctx: TransformContext) -> bool:
    return is_deleted(_whole(value))


@transform("qbo_invoice_status")
def _invoice_status(value: Any, ctx: TransformContext) -> str:
    """Derived, since QuickBooks has none: void when deleted or voided; paid when nothing is
    left (Balance 0 of a non-zero TotalAmt); partially_paid when some is; else open. Overdue is
    not a status of ours: the due date decides it (`invoice_position`)."""
    raw = _whole(value)
    if is_deleted(raw) or is_voided(raw):
        return "void"
    total, balance = _amount(raw, "TotalAmt"), _amount(raw, "Balance")
    if balance <= 0:
        return "paid"
    if balance < total:
        return "partially_paid"
    return "open"


@transform("qbo_credit_memo_status")
def _credit_memo_status(value: Any, ctx: TransformContext) -> str:
    """void when deleted or voided; applied when no credit remains; else open."""
    raw = _whole(value)
    if is_deleted(raw) or is_voided(raw):
        return "void"
    return "applied" if _remaining(raw, ctx).is_zero else "open"


@transform("qbo_payment_status")
def _payment_status(value: Any, ctx: TransformContext) -> str:
    """A deleted or voided payment pays nothing: failed, wherever it is still seen."""
    raw = _whole(value)
    return "failed" if is_deleted(raw) or is_voided(raw) else "succeeded"


@transform("qbo_tax")
def _tax(value: Any, ctx: TransformContext) -> Money:
    """TxnTaxDetail.TotalTax, 0 when the transaction has no tax (or was voided)."""
    raw = _whole(value)
    tax = Money.of(_amount(_object(raw, "TxnTaxDetail"), "TotalTax"), _currency(ctx))
    return Money.zero(_currency(ctx)) if _is_void_like(raw) else tax


@transform("qbo_subtotal")
def _subtotal(value: Any, ctx: TransformContext) -> Money:
    """TotalAmt less its tax (so subtotal + tax = total, discounts and shipping included)."""
    raw = _whole(value)
    currency = _currency(ctx)
    if _is_void_like(raw):
        return Money.zero(currency)
    return Money.of(_amount(raw, "TotalAmt"), currency) - _tax(raw, ctx)


@transform("qbo_total")
def _total(value: Any, ctx: TransformContext) -> Money:
    raw = _whole(value)
    if _is_void_like(raw):
        return Money.zero(_currency(ctx))
    return Money.of(_amount(raw, "TotalAmt"), _currency(ctx))


@transform("qbo_amount_paid")
def _amount_paid(value: Any, ctx: TransformContext) -> Money:
    """What is settled: TotalAmt less Balance. QuickBooks applies credit memos through a
    Payment as well, so credits applied count here (amount_credited stays 0)."""
    raw = _whole(value)
    currency = _currency(ctx)
    if _is_void_like(raw):
        return Money.zero(currency)
    settled = _amount(raw, "TotalAmt") - _amount(raw, "Balance")
    return Money.of(max(settled, Decimal(0)), currency)


@transform("qbo_remaining")
def _remaining(value: Any, ctx: TransformContext) -> Money:
    raw = _whole(value)
    if _is_void_like(raw):
        return Money.zero(_currency(ctx))
    left = _amount(raw, "RemainingCredit") if raw.get("RemainingCredit") is not None else _amount(raw, "Balance")
    return Money.of(max(left, Decimal(0)), _currency(ctx))


@transform("qbo_payment_amount")
def _payment_amount(value: Any, ctx: TransformContext) -> Money:
    raw = _whole(value)
    if _is_void_like(raw):
        return Money.zero(_currency(ctx))
    return Money.of(_amount(raw, "TotalAmt"), _currency(ctx))


@transform("qbo_invoice_lines")
def _invoice_lines(value: Any, ctx: TransformContext) -> list[dict[str, Any]]:
    """The sales lines (DetailType SalesItemLineDetail; their Amount is net of tax even when
    the invoice is TaxInclusive). SubTotal, discount and description-only lines are left
    out; when the sales lines do not add up to the subtotal (a discount or shipping line)
    no lines are mapped rather than wrong ones."""
    raw = _whole(value)
    currency = _currency(ctx)
    if _is_void_like(raw):
        return []
    lines = []
    for line in raw.get("Line") or []:
        if not isinstance(line, dict) or line.get("DetailType") != SALES_LINE:
            continue
        detail = _object(line, SALES_LINE)
        entry: dict[str, Any] = {
            "description": str(line.get("Description") or ""),
            "amount": Money.of(_amount(line, "Amount"), currency),
        }
        if detail.get("Qty") is not None:
            entry["quantity"] = to_decimal(detail["Qty"])
        if detail.get("UnitPrice") is not None:
            entry["unit_price"] = to_decimal(detail["UnitPrice"])
        lines.append(entry)
    subtotal = _subtotal(raw, ctx)
    total = sum((entry["amount"].amount for entry in lines), Decimal(0))
    if any(entry["amount"].is_negative for entry in lines) or total != subtotal.amount:
        return []
    return lines


@transform("qbo_received_at")
def _received_at(value: Any, ctx: TransformContext) -> datetime:
    """A payment's TxnDate (a calendar day: midnight UTC), or for a deleted one (CDC gives no
    TxnDate) the moment it was deleted."""
    raw = _whole(value)
    day = raw.get("TxnDate")
    if isinstance(day, str) and day:
        return parse_iso_datetime(day[:10] + "T00:00:00Z")
    stamp = _object(raw, "MetaData").get("LastUpdatedTime")
    if not stamp:
        raise ValueError("neither TxnDate nor MetaData.LastUpdatedTime")
    return parse_iso_datetime(str(stamp))


@transform("qbo_date")
def _date(value: Any, ctx: TransformContext) -> date:
    """QuickBooks dates (`TxnDate`, `DueDate`) are `YYYY-MM-DD` (sometimes with an offset)."""
    text = str(value).strip()
    return date.fromisoformat(text[:10])


@transform("qbo_emails")
def _emails(value: Any, ctx: TransformContext) -> list[str]:
    """`PrimaryEmailAddr.Address` may hold several addresses separated by commas."""
    parts = str(value or "").replace(";", ",").split(",")
    return list(dict.fromkeys(p.strip() for p in parts if p.strip()))


@transform("qbo_linked_invoices")
def _linked_invoices(value: Any, ctx: TransformContext) -> list[str]:
    """The invoice Ids a payment's lines are linked to (LinkedTxn with TxnType Invoice)."""
    found = []
    for line in value if isinstance(value, list) else []:
        for linked in (line.get("LinkedTxn") or []) if isinstance(line, dict) else []:
            if isinstance(linked, dict) and linked.get("TxnType") == "Invoice" and linked.get("TxnId"):
                found.append(str(linked["TxnId"]))
    return list(dict.fromkeys(found))


@transform("qbo_reference")
def _reference(value: Any, ctx: TransformContext) -> str | None:
    """A payment's reference: PaymentRefNum holds 21 characters at most, so the whole one is
    kept in PrivateNote when it begins with it (as this adapter writes it)."""
    raw = _whole(value)
    short = str(raw.get("PaymentRefNum") or "")
    note = str(raw.get("PrivateNote") or "")
    if short and note.startswith(short):
        return note
    return short or None


@transform("qbo_first_linked_invoice")
def _first_linked_invoice(value: Any, ctx: TransformContext) -> str | None:
    found = _linked_invoices(value, ctx)
    return found[0] if found else None


def _is_void_like(raw: dict[str, Any]) -> bool:
    return is_deleted(raw) or is_voided(raw)
