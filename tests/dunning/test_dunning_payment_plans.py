"""Payment plans: periods in words, instalments split exactly in the currency's minor unit,
plans read from a CRM's words, and what keeps a plan on time."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from connector.dunning.policy import Every, parse_every, payment_plan, plan_from_terms, split_in_instalments
from connector.model import PaymentPlan
from connector.money import Money
from support.dunning_cases import AS_OF, case, codes, invoice, run


@pytest.mark.parametrize(
    ("text", "every"),
    [
        ("month", Every(months=1)),
        ("Monthly", Every(months=1)),
        ("quarter", Every(months=3)),
        ("week", Every(days=7)),
        ("fortnight", Every(days=14)),
        ("14d", Every(days=14)),
        ("10 days", Every(days=10)),
        ("2w", Every(days=14)),
        ("2 months", Every(months=2)),
        ("1m", Every(months=1)),
    ],
)
def test_periods_in_words(text, every):
    assert parse_every(text) == every


@pytest.mark.parametrize("text", ["", "daily-ish", "0d", "-3 days", "1.5 months"])
def test_a_period_not_understood_is_refused_naming_it(text):
    with pytest.raises(ValueError, match="is not a period like month, week, fortnight, 14d or 2 months"):
        parse_every(text)


def test_monthly_keeps_the_day_or_takes_the_last_day_of_a_shorter_month():
    dates = [when for when, _ in split_in_instalments(Money.of("100.00", "USD"), 4, date(2026, 1, 31), Every(months=1))]
    assert dates == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]


@pytest.mark.parametrize(
    ("amount", "currency", "count", "shares"),
    [
        ("100.00", "USD", 3, ["33.33", "33.33", "33.34"]),
        ("1000", "JPY", 3, ["333", "333", "334"]),
        ("1.000", "KWD", 3, ["0.333", "0.333", "0.334"]),
        ("0.02", "USD", 2, ["0.01", "0.01"]),
        ("2.00", "USD", 3, ["0.67", "0.67", "0.66"]),
    ],
)
def test_instalments_add_up_to_the_amount_exactly(amount, currency, count, shares):
    split = split_in_instalments(Money.of(amount, currency), count, date(2026, 1, 1), Every(days=7))
    assert [str(m.amount) for _, m in split] == shares
    assert sum((m.amount for _, m in split), Money.zero(currency).amount) == Money.of(amount, currency).amount


def test_an_amount_too_small_for_the_instalments_is_refused():
    with pytest.raises(ValueError, match=r"0.02 USD cannot be split in 3 instalments"):
        split_in_instalments(Money.of("0.02", "USD"), 3, date(2026, 1, 1), Every(months=1))


def test_a_crm_plan_in_words_splits_the_total_from_the_due_date():
    plan = plan_from_terms("4 monthly instalments", Money.of("2867.17", "USD"), date(2026, 9, 26))
    assert plan.instalments == [
        (date(2026, 9, 26), Money.of("716.79", "USD")),
        (date(2026, 10, 26), Money.of("716.79", "USD")),
        (date(2026, 11, 26), Money.of("716.79", "USD")),
        (date(2026, 12, 26), Money.of("716.80", "USD")),
    ]
    with pytest.raises(ValueError, match="'pay when you can' is not understood as a plan like '3 monthly instalments'"):
        plan_from_terms("pay when you can", Money.of("1.00", "USD"), date(2026, 1, 1))


def test_what_was_paid_before_a_plan_does_not_count_towards_its_instalments():
    # 100.00 due; 40.00 paid before the plan; the 60.00 left in 3 monthly instalments from 1 Feb.
    plan = payment_plan(
        Money.of("60.00", "USD"),
        3,
        date(2026, 2, 1),
        Every(months=1),
        paid_before=Money.of("40.00", "USD"),
        agreed_on=date(2026, 1, 20),
    )
    assert plan.instalments[0] == (date(2026, 1, 20), Money.of("40.00", "USD"))
    inv = lambda paid: invoice("p", "100.00", paid=paid, payment_plan=plan, overdue=29)  # noqa: E731  due 31 Jan
    # 15 February: the 1 February instalment is due; only the 40.00 from before: behind, reminded
    # at the invoice's own step.
    feb_15 = date(2026, 2, 15)
    reminders, _ = run([case(inv("40.00"), as_of=feb_15)], as_of=feb_15)
    assert [(r.invoices, r.step.days) for r in reminders] == [(("p",), 14)]
    # With the February instalment paid it is on time, and the reason names the next one.
    _, skips = run([case(inv("60.00"), as_of=feb_15)], as_of=feb_15)
    assert codes(skips) == {"p": "payment_plan_on_time"}
    assert skips[0].reason == (
        "P is on a payment plan: 60.00 USD paid so far covers the 60.00 USD due by "
        "2026-02-01; next: 20.00 USD by 2026-03-01"
    )
    # The words stay the same from day to day until what is due changes (the audit log says
    # a lasting skip once, and again when its reason changes)
    _, next_day = run([case(inv("60.00"), as_of=feb_15 + timedelta(days=1))], as_of=feb_15 + timedelta(days=1))
    assert next_day[0].reason == skips[0].reason


def test_a_plan_read_back_from_storage_is_the_same_plan():
    plan = plan_from_terms("3 weekly instalments", Money.of("1.000", "KWD"), AS_OF)
    assert PaymentPlan.model_validate(plan.model_dump(mode="json")) == plan
