from decimal import Decimal

import pytest
from pydantic import ValidationError

from connector.errors import CurrencyMismatchError
from connector.money import Money, currency_exponent, money_sum


@pytest.mark.parametrize(
    ("currency", "minor", "amount"),
    [("USD", 12345, "123.45"), ("JPY", 12345, "12345"), ("KWD", 12345, "12.345"), ("EUR", 1, "0.01")],
)
def test_minor_units_convert_by_the_currency_exponent(currency, minor, amount):
    money = Money.from_minor(minor, currency)
    assert money.amount == Decimal(amount)
    assert money.to_minor() == minor


def test_amounts_are_quantised_to_the_currency_exponent():
    assert str(Money.of("100.5", "JPY").amount) == "101"
    assert str(Money.of("1.2345", "KWD").amount) == "1.235"
    assert str(Money.of("10", "USD").amount) == "10.00"
    assert Money.of("0.1", "USD") + Money.of("0.2", "USD") == Money.of("0.3", "USD")


def test_jpy_is_never_multiplied_by_a_hundred():
    assert Money.of(5000, "JPY").to_minor() == 5000
    assert Money.from_minor(5000, "JPY") == Money.of("5000", "JPY")


def test_a_provider_exponent_can_override_iso():
    # Stripe counts ISK in hundredths although ISO 4217 gives it no minor unit.
    assert Money.from_minor(10000, "ISK", exponent=2).amount == Decimal("100")
    assert Money.of(100, "ISK").to_minor(exponent=2) == 10000


def test_to_minor_refuses_an_amount_finer_than_the_units():
    with pytest.raises(ValueError, match="no exact value"):
        Money.of("1.235", "KWD").to_minor(exponent=2)


def test_arithmetic_across_currencies_raises():
    with pytest.raises(CurrencyMismatchError, match="USD and EUR"):
        Money.of(1, "USD") + Money.of(1, "EUR")
    with pytest.raises(CurrencyMismatchError):
        _ = Money.of(1, "USD") < Money.of(1, "JPY")
    with pytest.raises(CurrencyMismatchError):
        money_sum([Money.of(1, "USD"), Money.of(1, "KWD")], "USD")


def test_money_in_the_same_currency_adds_subtracts_and_compares():
    a, b = Money.of("10.500", "KWD"), Money.of("0.250", "KWD")
    assert a + b == Money.of("10.750", "KWD")
    assert a - b == Money.of("10.250", "KWD")
    assert b < a and a >= b
    assert (a * 2).amount == Decimal("21.000")
    assert money_sum([], "JPY") == Money.zero("JPY")


def test_unknown_currency_is_a_validation_error_naming_currency():
    with pytest.raises(ValidationError) as info:
        Money.of(1, "ABC")
    assert info.value.errors()[0]["loc"] == ("currency",)
    assert "ISO 4217" in str(info.value)


def test_float_amounts_are_refused():
    with pytest.raises(ValidationError, match="not float"):
        Money.of(0.1, "USD")


def test_currency_codes_are_normalised_and_exponents_known():
    assert Money.of(1, "usd").currency == "USD"
    assert (currency_exponent("JPY"), currency_exponent("USD"), currency_exponent("KWD")) == (0, 2, 3)


def test_money_serialises_as_exact_strings():
    assert Money.of("12.340", "KWD").model_dump(mode="json") == {"amount": "12.340", "currency": "KWD"}
    assert Money.model_validate_json('{"amount": "5000", "currency": "JPY"}') == Money.of(5000, "JPY")


@pytest.mark.parametrize("currency", ["EUR", "JPY", "KWD", "CLF"])
@pytest.mark.parametrize("units", [0, 1, -7, 123_456_789, 10**20])
def test_money_made_without_validation_is_the_validated_money(currency, units):
    """Minor units and the sums of Money skip the validators (their work is done): the result
    must print, compare, hash and serialise exactly as the validated Money of that amount."""
    exponent = {"EUR": 2, "JPY": 0, "KWD": 3, "CLF": 4}[currency]
    validated = Money(amount=Decimal(units).scaleb(-exponent), currency=currency)
    for fast in (
        Money.from_minor(units, currency),
        Money.from_minor(units + 5, currency) - Money.from_minor(5, currency),
        Money.zero(currency) + Money.from_minor(units, currency),
        abs(Money.from_minor(-abs(units), currency)) if units >= 0 else -Money.from_minor(-units, currency),
    ):
        assert (str(fast), fast.model_dump_json()) == (str(validated), validated.model_dump_json())
        assert fast == validated and hash(fast) == hash(validated)
    assert str(Money.zero(currency)) == str(Money.of("0", currency))
    with pytest.raises(ValidationError):
        Money.from_minor(units, currency).amount = Decimal(1)  # still frozen
