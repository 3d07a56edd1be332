"""Exact money: a Decimal amount with its ISO 4217 currency, quantised to the currency's exponent.

Amounts of two currencies never mix: adding, subtracting or comparing them raises
`CurrencyMismatchError`. Minor units convert by the ISO exponent (JPY 0, USD 2, KWD 3); a
provider whose own idea of minor units differs (Stripe's ISK, HUF) converts in its mapping.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from connector.errors import CurrencyMismatchError

# ISO 4217 active codes (list one, 2024 edition) with their minor-unit exponent.
_EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_EXPONENT_3 = "BHD IQD JOD KWD LYD OMR TND"
_EXPONENT_4 = "CLF UYW"
_EXPONENT_2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD "
    "KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD "
    "NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP "
    "SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS "
    "VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL"
)

CURRENCY_EXPONENTS: dict[str, int] = {
    **{code: 0 for code in _EXPONENT_0.split()},
    **{code: 2 for code in _EXPONENT_2.split()},
    **{code: 3 for code in _EXPONENT_3.split()},
    **{code: 4 for code in _EXPONENT_4.split()},
}


def currency_exponent(currency: str) -> int:
    """Digits after the decimal point for an ISO 4217 code; unknown codes raise ValueError."""
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise ValueError(f"unknown currency {currency!r} (not an ISO 4217 code)") from None


_QUANTA: dict[str, Decimal] = {code: Decimal(1).scaleb(-exponent) for code, exponent in CURRENCY_EXPONENTS.items()}


def normalise_currency(value: Any) -> str:
    """An upper-case ISO 4217 code; anything else raises ValueError."""
    if value in CURRENCY_EXPONENTS:
        return str(value)
    if not isinstance(value, str):
        raise ValueError("currency must be a three-letter ISO 4217 code")
    code = value.strip().upper()
    currency_exponent(code)
    return code


def quantum(currency: str) -> Decimal:
    """The smallest unit of a currency as a Decimal: 1, 0.01, 0.001."""
    found = _QUANTA.get(currency)
    return found if found is not None else Decimal(1).scaleb(-currency_exponent(currency))


def to_decimal(value: Any) -> Decimal:
    """Decimal from str/int/Decimal; floats are refused so binary rounding never reaches money."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("amounts must be given as Decimal, int or str, not float")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, (int, str)):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
    else:
        raise ValueError(f"not an amount: {value!r}")
    if not result.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return result


class Money(BaseModel):
    """An exact amount in one currency. Immutable; hashable; JSON as strings."""

    model_config = ConfigDict(frozen=True)

    amount: Decimal
    currency: str

    @field_validator("currency", mode="before")
    @classmethod
    def _known_currency(cls, value: Any) -> str:
        return normalise_currency(value)

    @field_validator("amount", mode="before")
    @classmethod
    def _exact_amount(cls, value: Any) -> Decimal:
        return to_decimal(value)

    @model_validator(mode="after")
    def _quantise(self) -> Money:
        q = quantum(self.currency)
        object.__setattr__(self, "amount", self.amount.quantize(q, rounding=ROUND_HALF_UP))
        return self

    # Construction -------------------------------------------------------------------------

    @classmethod
    def of(cls, amount: Any, currency: str) -> Money:
        return cls(amount=amount, currency=currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        zero = _ZEROS.get(currency)
        if zero is not None:  # one immutable zero per currency, made once
            return zero
        return cls(amount=Decimal(0), currency=currency)

    @classmethod
    def from_minor(cls, units: int, currency: str, exponent: int | None = None) -> Money:
        """From integer minor units (cents, yen, fils). `exponent` overrides ISO for a provider."""
        if isinstance(units, bool) or not isinstance(units, int):
            raise ValueError(f"minor units must be an integer, got {units!r}")
        if exponent is None and currency in _QUANTA:  # exact by construction: no validation to run
            if units == 0:  # a book's amounts paid, credited and taxed are mostly nothing
                return _ZEROS[currency]
            amount = Decimal(units).scaleb(-CURRENCY_EXPONENTS[currency]).quantize(_QUANTA[currency])
            return _exact_money(amount, currency)
        exp = currency_exponent(currency.upper()) if exponent is None else exponent
        return cls(amount=Decimal(units).scaleb(-exp), currency=currency)

    def to_minor(self, exponent: int | None = None) -> int:
        """Integer minor units; refuses an amount that a coarser exponent cannot hold exactly."""
        exp = currency_exponent(self.currency) if exponent is None else exponent
        scaled = self.amount.scaleb(exp)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{self} has no exact value in units of 10^-{exp}")
        return int(scaled)

    # Arithmetic ---------------------------------------------------------------------------

    def _same(self, other: object, operation: str) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot {operation} Money and {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatchError(self.currency, other.currency, operation)
        return other

    def __add__(self, other: Money) -> Money:
        other = self._same(other, "add")
        return _exact_money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        other = self._same(other, "subtract")
        return _exact_money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return _exact_money(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return _exact_money(abs(self.amount), self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        if isinstance(factor, (float, bool)) or not isinstance(factor, (Decimal, int)):
            raise TypeError("Money can only be multiplied by a Decimal or an int")
        return Money(amount=self.amount * factor, currency=self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._same(other, "compare").amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._same(other, "compare").amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._same(other, "compare").amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._same(other, "compare").amount

    def __bool__(self) -> bool:
        return self.amount != 0

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    @property
    def is_negative(self) -> bool:
        return self.amount < 0

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"

    def __repr__(self) -> str:
        return f"Money('{self.amount}', '{self.currency}')"


_FIELDS = frozenset({"amount", "currency"})
_new = object.__new__
_set = object.__setattr__
# pydantic's own slots, set through their descriptors (a fifth less than `object.__setattr__`)
_set_fields = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def _exact_money(amount: Decimal, currency: str) -> Money:
    """A Money whose amount is already at `currency`'s exponent and whose currency is a known
    upper-case code: what the arithmetic of two such Money gives, and minor units at the ISO
    exponent. Skips the validators, whose work is done (a third of the time a large book spent
    reading its invoices went to re-checking such amounts); the fields are set as pydantic's own
    `model_construct` sets them, by a plain function (the reports make a million of these on a
    large book)."""
    money = _new(Money)
    _set(money, "__dict__", {"amount": amount, "currency": currency})
    _set_fields(money, _FIELDS)
    _set_extra(money, None)
    _set_private(money, None)
    return money


_ZEROS = {code: _exact_money(Decimal(0).quantize(q), code) for code, q in _QUANTA.items()}


def minor_text(units: int, currency: str) -> str:
    """`units` minor units of `currency` as a Money's amount prints (`str(Money.from_minor(units,
    currency).amount)`: "1234.50", "-0.05", JPY "1200", KWD "1.250"), without making the Money:
    what a report prints of an amount it read in minor units."""
    exponent = currency_exponent(currency)
    if exponent == 0:
        return str(units)
    whole, part = divmod(-units if units < 0 else units, 10**exponent)
    return f"{'-' if units < 0 else ''}{whole}.{part:0{exponent}d}"


def money_sum(amounts: Any, currency: str) -> Money:
    """Sum of Money values that must all be in `currency`; an empty sum is zero."""
    total = Money.zero(currency)
    for amount in amounts:
        total = total + amount
    return total
