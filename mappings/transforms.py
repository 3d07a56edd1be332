"""Named transforms: what a mapping needs beyond a field path, in code.

Each takes the raw value and a `TransformContext` (the whole raw record, the record's currency
once known, the provider) and returns the canonical value, or raises ValueError with a short
reason (reported with provider, object id and field). Partners add their own with
`@transform("name")`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeVar

from connector.money import Money, currency_exponent, normalise_currency, to_decimal


@dataclass(frozen=True)
class TransformContext:
    raw: dict[str, Any]
    provider: str
    currency: str | None = None


Transform = Callable[[Any, TransformContext], Any]
TRANSFORMS: dict[str, Transform] = {}
_T = TypeVar("_T", bound=Transform)  # a registered transform keeps its own signature


def transform(name: str) -> Callable[[_T], _T]:
    """Register a transform under `name` (used by mapping files)."""

    def register(fn: _T) -> _T:
        if name in TRANSFORMS and TRANSFORMS[name] is not fn:
            raise ValueError(f"transform {name!r} is already registered")
        TRANSFORMS[name] = fn
        return fn

    return register


def _currency(ctx: TransformContext) -> str:
    if not ctx.currency:
        raise ValueError("needs the record's currency, which is missing")
    return ctx.currency


# Plain values -------------------------------------------------------------------------------


@transform("str")
def _str(value: Any, ctx: TransformContext) -> str:
    return str(value)


@transform("upper")
def _upper(value: Any, ctx: TransformContext) -> str:
    return str(value).upper()


@transform("currency")
def _currency_code(value: Any, ctx: TransformContext) -> str:
    return normalise_currency(value)


@transform("decimal")
def _decimal(value: Any, ctx: TransformContext) -> Decimal:
    return to_decimal(value)


@transform("int")
def _int(value: Any, ctx: TransformContext | None = None) -> int:
    if isinstance(value, bool):
        raise ValueError(f"not an integer: {value!r}")
    if isinstance(value, int):
        return value
    number = to_decimal(value)
    if number != number.to_integral_value():
        raise ValueError(f"not an integer: {value!r}")
    return int(number)


@transform("bool")
def _bool(value: Any, ctx: TransformContext) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


@transform("list")
def _list(value: Any, ctx: TransformContext) -> list[Any]:
    if isinstance(value, list):
        return [v for v in value if v not in (None, "")]
    return [] if value in (None, "") else [value]


@transform("join")
def _join(value: Any, ctx: TransformContext) -> str:
    """Join the non-empty values of a `paths` field with spaces (first and last names)."""
    parts = value if isinstance(value, list) else [value]
    return " ".join(str(p).strip() for p in parts if p not in (None, "") and str(p).strip())


# Money ------------------------------------------------------------------------------------------


@transform("money")
def _money(value: Any, ctx: TransformContext) -> Money:
    """A decimal amount (Xero's numbers, HubSpot's strings) in the record's currency."""
    return Money.of(to_decimal(value), _currency(ctx))


@transform("minor_units")
def _minor_units(value: Any, ctx: TransformContext) -> Money:
    """Integer minor units by the ISO 4217 exponent (JPY 0, USD 2, KWD 3)."""
    return Money.from_minor(_int(value, ctx), _currency(ctx))


# Stripe's minor units differ from ISO 4217 in two places: MGA is zero-decimal at Stripe (ISO
# says 2), and ISK, zero-decimal by ISO, is sent in hundredths "for backwards compatibility".
# Three-decimal currencies (BHD, JOD, KWD, OMR, TND) are in thousandths as ISO says.
# https://docs.stripe.com/currencies#zero-decimal
STRIPE_ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
STRIPE_TWO_DECIMAL = frozenset({"ISK"})


def stripe_exponent(currency: str) -> int:
    """How many digits Stripe's integer amounts carry for `currency`."""
    code = normalise_currency(currency)
    if code in STRIPE_ZERO_DECIMAL:
        return 0
    if code in STRIPE_TWO_DECIMAL:
        return 2
    return currency_exponent(code)


@transform("stripe_minor_units")
def _stripe_minor_units(value: Any, ctx: TransformContext) -> Money:
    currency = _currency(ctx)
    return Money.from_minor(_int(value, ctx), currency, exponent=stripe_exponent(currency))


# Dates and times --------------------------------------------------------------------------------


@transform("epoch_seconds")
def _epoch_seconds(value: Any, ctx: TransformContext) -> datetime:
    return datetime.fromtimestamp(_int(value, ctx), UTC)


@transform("epoch_date")
def _epoch_date(value: Any, ctx: TransformContext) -> date:
    return _epoch_seconds(value, ctx).date()


@transform("epoch_ms")
def _epoch_ms(value: Any, ctx: TransformContext) -> datetime:
    millis = _int(value, ctx)
    return datetime.fromtimestamp(millis // 1000, UTC) + timedelta(milliseconds=millis % 1000)


def parse_iso_datetime(value: str) -> datetime:
    """ISO 8601 with `Z`, an offset (`-0700` or `-07:00`) or none (taken as UTC)."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@transform("iso_datetime")
def _iso_datetime(value: Any, ctx: TransformContext) -> datetime:
    if isinstance(value, datetime):
        return value
    return parse_iso_datetime(str(value))


@transform("iso_date")
def _iso_date(value: Any, ctx: TransformContext) -> date:
    text = str(value).strip()
    if len(text) == 10:
        return date.fromisoformat(text)
    return parse_iso_datetime(text).date()


_DOTNET = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def parse_dotnet_date(value: str) -> datetime:
    """Xero's `/Date(1573755038314+0000)/`: milliseconds since the epoch (UTC) and an
    optional offset, which says in which zone the moment was written, not a shift of it."""
    match = _DOTNET.match(value.strip())
    if not match:
        raise ValueError(f"not a /Date(...)/ value: {value!r}")
    millis, offset = match.groups()
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(millis))
    if offset:
        sign = 1 if offset[0] == "+" else -1
        zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
        moment = moment.astimezone(zone)
    return moment


@transform("dotnet_datetime")
def _dotnet_datetime(value: Any, ctx: TransformContext) -> datetime:
    text = str(value)
    return parse_dotnet_date(text) if text.startswith("/Date(") else parse_iso_datetime(text)


@transform("dotnet_date")
def _dotnet_date(value: Any, ctx: TransformContext) -> date:
    """Xero dates (`Date`, `DueDate`) are calendar days written as midnight UTC."""
    text = str(value)
    if text.startswith("/Date("):
        return parse_dotnet_date(text).date()
    return _iso_date(text, ctx)


# Provider specifics -------------------------------------------------------------------------------


@transform("xero_line_amount")
def _xero_line_amount(value: Any, ctx: TransformContext) -> Money:
    """A Xero line's amount net of tax: `LineAmount` is tax-inclusive when the invoice's
    `LineAmountTypes` is Inclusive, so its TaxAmount comes off; Exclusive and NoTax lines
    are already net. `value` is the line object itself (path "." in `each`)."""
    if not isinstance(value, dict):
        raise ValueError('xero_line_amount needs the whole line (path ".")')
    amount = Money.of(to_decimal(value.get("LineAmount", 0)), _currency(ctx))
    if str(ctx.raw.get("LineAmountTypes", "Exclusive")) == "Inclusive":
        amount = amount - Money.of(to_decimal(value.get("TaxAmount", 0)), _currency(ctx))
    return amount
