"""HubSpot-specific transforms. Every HubSpot property value is a string (or null); dates come
as ISO 8601 dates, ISO date-times or epoch milliseconds depending on the property."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from connector.mappings.transforms import TransformContext, parse_iso_datetime, transform
from connector.money import Money, to_decimal

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _currency(ctx: TransformContext) -> str:
    if not ctx.currency:
        raise ValueError("needs the record's currency, which is missing (see the default_currency setting)")
    return ctx.currency


def _moment(value: Any, ctx: TransformContext) -> datetime:
    text = str(value).strip()
    if text.lstrip("-").isdigit():  # epoch milliseconds, exact (no float on the way)
        return _EPOCH + timedelta(milliseconds=int(text))
    if len(text) == 10:
        day = date.fromisoformat(text)
        return parse_iso_datetime(f"{day.isoformat()}T00:00:00Z")
    return parse_iso_datetime(text)


@transform("hubspot_datetime")
def _hubspot_datetime(value: Any, ctx: TransformContext) -> datetime:
    return _moment(value, ctx)


@transform("hubspot_date")
def _hubspot_date(value: Any, ctx: TransformContext) -> date:
    """HubSpot date properties are midnight UTC; date-time ones are read in UTC."""
    return _moment(value, ctx).date()


@transform("hubspot_optional_date")
def _hubspot_optional_date(value: Any, ctx: TransformContext) -> date | None:
    """A date property that may be blank: HubSpot answers "" once a value is cleared."""
    return None if not str(value).strip() else _moment(value, ctx).date()


@transform("hubspot_first")
def _hubspot_first(value: Any, ctx: TransformContext) -> str:
    """The first non-empty value of a `paths` field (company name, else its domain)."""
    for item in value if isinstance(value, list) else [value]:
        if item not in (None, "") and str(item).strip():
            return str(item).strip()
    raise ValueError("all of its properties are empty")


@transform("hubspot_amount")
def _hubspot_amount(value: Any, ctx: TransformContext) -> Money:
    """A deal amount; an unset amount (null or empty) is zero. Use with `paths` so that the
    transform also sees the missing value."""
    item = value[0] if isinstance(value, list) else value
    if item in (None, "") or not str(item).strip():
        return Money.zero(_currency(ctx))
    return Money.of(to_decimal(str(item).strip()), _currency(ctx))


@transform("hubspot_amount_paid")
def _hubspot_amount_paid(value: Any, ctx: TransformContext) -> Money:
    """paths = [amount billed, balance due]: what was paid is billed less the balance."""
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError("needs paths = [amount billed, balance due]")
    billed, balance = (Money.of(to_decimal(v if v not in (None, "") else "0"), _currency(ctx)) for v in value)
    if balance > billed:
        raise ValueError(f"balance due {balance} exceeds the amount billed {billed}")
    return billed - balance
