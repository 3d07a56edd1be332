"""Policy steps: which step an invoice has reached on a day, and what a valid policy is.

The builders here are shared by the other dunning tests.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from connector.dunning.policy import (
    Case,
    DunningPolicy,
    Step,
    plan_reminders,
)
from connector.model import invoice_position
from connector.money import Money
from support.dunning_cases import AS_OF, case, codes, customer, invoice, run

# The step on the day ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overdue", "step_days"),
    [
        (-3, -3),
        (-1, -3),
        (0, -3),
        (1, 1),
        (6, 1),
        (7, 7),
        (13, 7),
        (14, 14),
        (29, 14),
        (30, 30),
        (44, 30),
        (45, 45),
        (400, 45),
    ],
)
def test_invoice_reaches_the_latest_step_whose_day_has_come(overdue, step_days):
    reminders, skips = run([case(invoice("i1", "100.00", overdue=overdue))])
    assert skips == []
    [reminder] = reminders
    assert reminder.step.days == step_days
    assert reminder.invoices == ("i1",)


def test_invoice_before_the_first_step_is_skipped_as_not_due_yet():
    reminders, skips = run([case(invoice("i1", "100.00", overdue=-4))])
    assert reminders == []
    assert [(s.invoice_id, s.code) for s in skips] == [("i1", "not_due_yet")]
    assert "2026-03-02" in skips[0].reason  # the day of the first reminder


def test_invoice_without_a_due_date_is_not_due_yet():
    inv = invoice("i1", "100.00").model_copy(update={"due_date": None})
    reminders, skips = run([case(inv)])
    assert reminders == []
    assert codes(skips) == {"i1": "not_due_yet"}
    assert "no due date" in skips[0].reason


def test_default_policy_has_the_six_steps_of_the_issue():
    steps = DunningPolicy.default().steps
    assert [(s.days, s.tone, s.channel) for s in steps] == [
        (-3, "friendly", "gateway_email"),
        (1, "reminder", "ledger_email"),
        (7, "reminder", "ledger_email"),
        (14, "firm", "ledger_email"),
        (30, "final", "ledger_email"),
        (45, "collections", "crm_task"),
    ]
    assert [s.late_fee_percent for s in steps] == [None, None, None, None, Decimal(2), None]
    assert [s.escalate for s in steps] == [False] * 5 + [True]


def test_escalation_is_flagged_at_day_45_and_not_before():
    [at_44], _ = run([case(invoice("i1", "100.00", overdue=44))])
    [at_45], _ = run([case(invoice("i1", "100.00", overdue=45))])
    assert (at_44.escalate, at_44.escalated_invoices) == (False, ())
    assert (at_45.escalate, at_45.escalated_invoices) == (True, ("i1",))
    assert at_45.step.channel == "crm_task"
    assert "Escalated to collections: I1" in at_45.text


def test_only_invoices_that_reached_the_escalation_step_go_to_collections():
    [reminder], _ = run([case(invoice("old", "100.00", overdue=50)), case(invoice("new", "100.00", overdue=3))])
    assert reminder.escalate
    assert reminder.invoices == ("old", "new")
    assert reminder.escalated_invoices == ("old",)


def test_customer_policy_comes_from_policy_for():
    strict = DunningPolicy(steps=[Step(days=0, tone="firm", channel="crm_note")])
    chosen = {"c1": strict, "c2": DunningPolicy.default()}
    cases = [case(invoice("a", "10.00", overdue=0)), case(invoice("b", "10.00", overdue=0, customer_id="c2"))]
    reminders, _ = plan_reminders(cases, lambda c: chosen[c.id or ""], set(), AS_OF)
    assert [(r.customer_id, r.step.tone) for r in reminders] == [("c1", "firm"), ("c2", "friendly")]


# Validation ---------------------------------------------------------------------------------


def test_duplicate_step_days_are_refused_naming_the_steps_field():
    with pytest.raises(ValidationError) as caught:
        DunningPolicy(
            steps=[
                Step(days=7, tone="reminder", channel="ledger_email"),
                Step(days=7, tone="firm", channel="ledger_email"),
            ]
        )
    [error] = caught.value.errors()
    assert error["loc"] == ("steps",)
    assert "day 7 appears twice" in error["msg"]


def test_a_policy_needs_at_least_one_step():
    with pytest.raises(ValidationError) as caught:
        DunningPolicy(steps=[])
    assert caught.value.errors()[0]["loc"] == ("steps",)


def test_steps_given_out_of_order_are_sorted_by_day():
    policy = DunningPolicy.model_validate(
        {
            "steps": [
                {"days": 14, "tone": "firm", "channel": "ledger_email"},
                {"days": -3, "tone": "friendly", "channel": "gateway_email"},
            ]
        }
    )
    assert [s.days for s in policy.steps] == [-3, 14]


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ({"days": 1, "tone": "x", "channel": "fax"}, "channel"),
        ({"days": 1, "tone": "x", "channel": "crm_task", "late_fee_percent": 0}, "late_fee_percent"),
        ({"days": 1, "tone": "x", "channel": "crm_task", "late_fee_percent": 101}, "late_fee_percent"),
        ({"days": 1, "tone": "", "channel": "crm_task"}, "tone"),
        ({"days": 1, "tone": "x", "channel": "crm_task", "fee": 2}, "fee"),
    ],
)
def test_an_invalid_step_names_its_field(step, field):
    with pytest.raises(ValidationError) as caught:
        DunningPolicy.model_validate({"steps": [step]})
    assert caught.value.errors()[0]["loc"] == ("steps", 0, field)


def test_a_case_with_credit_in_another_currency_is_refused():
    with pytest.raises(ValueError, match="unapplied_credit: currency EUR differs"):
        Case(
            invoice=(inv := invoice("i1", "1.00")),
            position=invoice_position(inv, AS_OF),
            customer=customer(),
            pending_payment=None,
            unapplied_credit=Money.of("1.00", "EUR"),
        )


def test_a_position_of_another_day_is_refused():
    inv = invoice("i1", "1.00")
    stale = Case(invoice=inv, position=invoice_position(inv, AS_OF - timedelta(days=1)), customer=customer())
    with pytest.raises(ValueError, match="as of 2026-02-28, not 2026-03-01"):
        run([stale])
