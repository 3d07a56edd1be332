"""Reminded is per invoice and step: a customer reminded at a step for one invoice is still
reminded when another invoice reaches that step a month later, and a queued reminder is not
planned twice."""

from __future__ import annotations

from datetime import date, timedelta

from connector.money import Money
from support.dunning_cases import case, codes, invoice, run

JAN_2, FEB_2 = date(2026, 1, 2), date(2026, 2, 2)


def dated(id_: str, total: str, due: date, as_of: date, **extra):
    inv = invoice(id_, total, **extra).model_copy(update={"due_date": due})
    return case(inv, as_of=as_of)


def test_a_new_invoice_gets_the_plus_1_reminder_a_month_after_the_customer_had_one():
    [january], _ = run([dated("a", "100.00", date(2026, 1, 1), JAN_2)], as_of=JAN_2)
    assert (january.step.days, january.invoices, january.invoice_steps) == (1, ("a",), (("a", 1),))
    sent = {("c1", 1, "a")}  # a was then paid: it is no longer open in February

    [february], skips = run([dated("b", "80.00", date(2026, 2, 1), FEB_2)], already=sent, as_of=FEB_2)
    assert skips == []
    assert (february.step.days, february.invoices) == (1, ("b",))
    assert (
        february.text.splitlines()[0]
        == "Reminder reminder to Acme Ltd (day +1, ledger_email): 1 invoice, 80.00 USD open"
    )


def test_only_the_invoices_not_yet_reminded_at_their_step_are_listed_in_one_reminder():
    # January: a reached +1 and was reminded. February: a is at +32 (the +30 step, not had
    # yet), b reached +1, c is still at +1 and was reminded at +1 already.
    sent = {("c1", 1, "a"), ("c1", 1, "c")}
    cases = [
        dated("a", "100.00", date(2026, 1, 1), FEB_2),
        dated("b", "80.00", date(2026, 2, 1), FEB_2),
        dated("c", "10.00", date(2026, 1, 30), FEB_2),
    ]
    [reminder], skips = run(cases, already=sent, as_of=FEB_2)
    assert reminder.step.days == 30
    assert reminder.invoices == ("a", "b")
    assert reminder.invoice_steps == (("a", 30), ("b", 1))
    assert reminder.late_fees == (("a", Money.of("2.00", "USD")),)  # b only listed beside it
    assert codes(skips) == {"c": "already_reminded"}
    assert skips[0].reason == "Acme Ltd already had the day +1 (reminder) reminder for C"


def test_each_invoice_reaching_the_escalation_step_is_escalated_even_after_another_was():
    jan_15 = date(2026, 1, 15)
    a = lambda as_of: dated("a", "100.00", jan_15 - timedelta(days=45), as_of)  # noqa: E731
    [january], _ = run([a(jan_15)], as_of=jan_15)
    assert january.escalated_invoices == ("a",)

    feb_15 = jan_15 + timedelta(days=31)
    b = dated("b", "70.00", feb_15 - timedelta(days=45), feb_15)
    [february], skips = run([a(feb_15), b], already={("c1", 45, "a")}, as_of=feb_15)
    assert (february.step.days, february.invoices, february.escalated_invoices) == (45, ("b",), ("b",))
    assert codes(skips) == {"a": "already_reminded"}


def test_a_reminder_queued_and_not_sent_is_not_planned_again_and_says_so():
    reminders, skips = run([case(invoice("a", "100.00", overdue=3))], queued={("c1", 1, "a")})
    assert reminders == []
    assert codes(skips) == {"a": "reminder_queued"}
    assert skips[0].reason.startswith("The day +1 (reminder) reminder for A is queued for Acme Ltd, not sent yet")


def test_protections_come_before_the_reminder_history():
    skips = run([case(invoice("a", "100.00", overdue=3, disputed=True))], already={("c1", 1, "a")})[1]
    assert codes(skips) == {"a": "disputed"}
