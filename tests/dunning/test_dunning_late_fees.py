"""Late fees: proposed at the step that carries them, exact to the currency's minor unit."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connector.dunning.policy import DunningPolicy, Step
from connector.money import Money
from support.dunning_cases import case, invoice, run


@pytest.mark.parametrize(
    ("total", "currency", "fee"),
    [
        ("12345", "JPY", "247"),  # 246.9 yen -> whole yen
        ("12325", "JPY", "247"),  # 246.5 yen rounds half up
        ("1.234", "KWD", "0.025"),  # 0.02468 KWD -> fils
        ("10.125", "KWD", "0.203"),  # 0.2025 KWD rounds half up
        ("100.25", "USD", "2.01"),  # 2.005 USD rounds half up
        ("99.99", "EUR", "2.00"),
    ],
)
def test_late_fee_at_the_final_step_is_exact_in_the_currency(total, currency, fee):
    [reminder], _ = run([case(invoice("i1", total, currency, overdue=30))])
    assert reminder.step.days == 30
    assert reminder.late_fees == (("i1", Money.of(fee, currency)),)
    assert f"Late fee of 2% proposed (not applied): I1 {Money.of(fee, currency)}" in reminder.text


def test_late_fee_is_on_the_open_balance_not_the_total():
    [reminder], _ = run([case(invoice("i1", "1000", "JPY", overdue=31, paid="400"))])
    assert reminder.late_fees == (("i1", Money.of("12", "JPY")),)


def test_late_fee_only_for_invoices_that_reached_the_fee_step():
    cases = [case(invoice("old", "100.00", overdue=35)), case(invoice("new", "100.00", overdue=5))]
    [reminder], _ = run(cases)
    assert reminder.invoices == ("old", "new")
    assert reminder.late_fees == (("old", Money.of("2.00", "USD")),)


def test_no_late_fee_at_steps_without_one():
    for overdue in (14, 29, 45):
        [reminder], _ = run([case(invoice("i1", "100.00", overdue=overdue))])
        assert reminder.late_fees == ()
        assert "Late fee" not in reminder.text


def test_fractional_percent_from_config():
    policy = DunningPolicy.model_validate(
        {"steps": [{"days": 10, "tone": "final", "channel": "ledger_email", "late_fee_percent": 1.5}]}
    )
    assert policy.steps[0].late_fee_percent == Decimal("1.5")
    [reminder], _ = run([case(invoice("i1", "0.999", "KWD", overdue=10))], policy=policy)
    assert reminder.late_fees == (("i1", Money.of("0.015", "KWD")),)  # 0.014985 -> 0.015


def test_late_fees_in_two_currencies_stay_in_their_own():
    policy = DunningPolicy(steps=[Step(days=1, tone="final", channel="ledger_email", late_fee_percent=Decimal(10))])
    cases = [case(invoice("y", "1005", "JPY", overdue=3)), case(invoice("k", "0.005", "KWD", overdue=2))]
    [reminder], _ = run(cases, policy=policy)
    assert reminder.late_fees == (("y", Money.of("101", "JPY")), ("k", Money.of("0.001", "KWD")))
