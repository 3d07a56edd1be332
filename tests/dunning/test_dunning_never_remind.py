"""The never-remind rules: each one skips with its code and a reason a person understands."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.dunning.policy import instalments_on_time
from connector.model import PaymentPlan
from connector.money import Money
from support.dunning_cases import AS_OF, case, codes, customer, invoice, run


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def plan(*instalments: tuple[int, str]) -> PaymentPlan:
    """Instalments as (days from AS_OF, amount in USD)."""
    return PaymentPlan(instalments=[(AS_OF + timedelta(days=d), usd(a)) for d, a in instalments])


def only_skip(c):
    reminders, skips = run([c])
    assert reminders == []
    [skip] = skips
    return skip


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"paid": "100.00"}, "is paid"),
        ({"status": "void"}, "is void"),
        ({"status": "draft"}, "is a draft"),
        ({"status": "uncollectible"}, "uncollectible"),
    ],
)
def test_paid_or_void_invoice_is_never_reminded(changes, words):
    skip = only_skip(case(invoice("i1", "100.00", overdue=20, **changes)))
    assert skip.code == "paid_or_void"
    assert skip.reason.startswith("I1 ")
    assert words in skip.reason


def test_disputed_invoice_is_never_reminded():
    skip = only_skip(case(invoice("i1", "100.00", overdue=20, disputed=True)))
    assert (skip.code, skip.reason) == ("disputed", "I1 is disputed")
    assert skip.customer_id == "c1"


def test_payment_plan_with_instalments_paid_so_far_is_not_reminded():
    on_plan = invoice(
        "i1", "300.00", overdue=40, paid="200.00", payment_plan=plan((-20, "100.00"), (-1, "100.00"), (10, "100.00"))
    )
    skip = only_skip(case(on_plan))
    assert skip.code == "payment_plan_on_time"
    assert "200.00 USD paid so far" in skip.reason


def test_payment_plan_behind_schedule_is_reminded():
    behind = invoice(
        "i1", "300.00", overdue=40, paid="100.00", payment_plan=plan((-20, "100.00"), (-1, "100.00"), (10, "100.00"))
    )
    [reminder], skips = run([case(behind)])
    assert skips == []
    assert reminder.step.days == 30


def test_pending_gateway_money_counts_as_paid_towards_the_plan():
    on_plan = invoice("i1", "300.00", overdue=40, paid="100.00", payment_plan=plan((-20, "100.00"), (-1, "100.00")))
    assert only_skip(case(on_plan, pending="100.00")).code == "payment_plan_on_time"


def test_instalment_falls_behind_the_day_after_its_date():
    p = plan((0, "100.00"))
    assert instalments_on_time(p, usd("0"), AS_OF)
    assert not instalments_on_time(p, usd("99.99"), AS_OF + timedelta(days=1))
    assert instalments_on_time(p, usd("100.00"), AS_OF + timedelta(days=1))


def test_promise_to_pay_in_the_future_or_today_protects():
    for promised in (AS_OF, AS_OF + timedelta(days=5)):
        skip = only_skip(case(invoice("i1", "100.00", overdue=20, promise_to_pay=promised)))
        assert skip.code == "promise_to_pay"
        assert f"promised to pay by {promised}" in skip.reason


def test_promise_to_pay_in_the_past_no_longer_protects():
    broken = invoice("i1", "100.00", overdue=20, promise_to_pay=AS_OF - timedelta(days=1))
    [reminder], skips = run([case(broken)])
    assert skips == []
    assert reminder.invoices == ("i1",)


def test_paused_customer_is_never_reminded():
    paused = customer(paused=True)
    reminders, skips = run(
        [case(invoice("i1", "100.00", overdue=20), paused), case(invoice("i2", "5.00", overdue=2), paused)]
    )
    assert reminders == []
    assert codes(skips) == {"i1": "customer_paused", "i2": "customer_paused"}
    assert "finance paused reminders for Acme Ltd" in skips[0].reason


def test_payment_pending_in_the_gateway_that_covers_the_balance_is_not_reminded():
    skip = only_skip(case(invoice("i1", "100.00", overdue=20, paid="40.00"), pending="60.00"))
    assert skip.code == "payment_pending"
    assert "60.00 USD" in skip.reason and "not yet in the ledger" in skip.reason


def test_partial_pending_payment_is_still_reminded_for_the_rest_and_says_so():
    [reminder], skips = run([case(invoice("i1", "100.00", overdue=20), pending="30.00")])
    assert skips == []
    assert reminder.balances == {"USD": usd("70.00")}
    assert "I1: 70.00 USD of 100.00 USD, 20 days overdue (payment of 30.00 USD pending" in reminder.text


def test_unapplied_credit_that_covers_the_balance_skips_the_invoice():
    skip = only_skip(case(invoice("i1", "100.00", overdue=20), credit="100.00"))
    assert skip.code == "covered_by_credit"
    assert "unapplied credit of 100.00 USD covers its balance of 100.00 USD" in skip.reason


def test_credit_is_spent_once_across_the_customers_invoices():
    # 150 of credit covers the oldest 100, leaving 50: not enough for the other 100.
    cases = [
        case(invoice("old", "100.00", overdue=20), credit="150.00"),
        case(invoice("new", "100.00", overdue=10), credit="150.00"),
    ]
    [reminder], skips = run(cases)
    assert codes(skips) == {"old": "covered_by_credit"}
    assert reminder.invoices == ("new",)


def test_credit_in_another_currency_does_not_cover():
    cases = [
        case(invoice("e1", "100.00", "EUR", overdue=20)),
        case(invoice("u1", "100.00", overdue=20), credit="500.00"),
    ]
    [reminder], skips = run(cases)
    assert codes(skips) == {"u1": "covered_by_credit"}
    assert reminder.invoices == ("e1",)


def test_the_first_rule_that_holds_is_the_one_recorded():
    both = invoice("i1", "100.00", overdue=20, disputed=True, promise_to_pay=AS_OF)
    assert only_skip(case(both, customer(paused=True))).code == "disputed"
