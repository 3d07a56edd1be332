"""One reminder per customer per step window, listing every remindable invoice."""

from __future__ import annotations

from connector.money import Money
from support.dunning_cases import case, codes, customer, invoice, run


def test_several_overdue_invoices_of_one_customer_become_one_reminder():
    cases = [
        case(invoice("a", "100.00", overdue=3)),
        case(invoice("b", "250.00", overdue=16)),
        case(invoice("c", "40.00", overdue=8)),
    ]
    [reminder], skips = run(cases)
    assert skips == []
    assert reminder.customer_id == "c1"
    assert reminder.step.days == 14  # the highest step among them
    assert reminder.invoices == ("b", "c", "a")  # most overdue first
    assert reminder.balances == {"USD": Money.of("390.00", "USD")}
    assert reminder.text.splitlines() == [
        "Firm reminder to Acme Ltd (day +14, ledger_email): 3 invoices, 390.00 USD open",
        "- B: 250.00 USD, 16 days overdue",
        "- C: 40.00 USD, 8 days overdue",
        "- A: 100.00 USD, 3 days overdue",
    ]


def test_invoice_not_due_yet_but_within_the_first_step_is_listed_too():
    [reminder], _ = run([case(invoice("late", "10.00", overdue=1)), case(invoice("soon", "20.00", overdue=-2))])
    assert reminder.invoices == ("late", "soon")
    assert "- SOON: 20.00 USD, due in 2 days" in reminder.text


def test_balances_are_per_currency_and_never_summed_across():
    cases = [
        case(invoice("u", "100.00", overdue=5)),
        case(invoice("e", "80.00", "EUR", overdue=9)),
        case(invoice("y", "5000", "JPY", overdue=2)),
        case(invoice("k", "1.250", "KWD", overdue=1)),
    ]
    [reminder], _ = run(cases)
    assert reminder.balances == {
        "EUR": Money.of("80.00", "EUR"),
        "JPY": Money.of("5000", "JPY"),
        "KWD": Money.of("1.250", "KWD"),
        "USD": Money.of("100.00", "USD"),
    }
    assert "80.00 EUR and 5000 JPY and 1.250 KWD and 100.00 USD open" in reminder.text


def test_partially_paid_invoice_shows_what_is_left_of_its_total():
    [reminder], _ = run([case(invoice("a", "100.00", overdue=3, paid="25.50"))])
    assert reminder.balances == {"USD": Money.of("74.50", "USD")}
    assert "- A: 74.50 USD of 100.00 USD, 3 days overdue" in reminder.text


def test_customers_get_separate_reminders_in_id_order():
    cases = [
        case(invoice("z", "1.00", overdue=3, customer_id="c2"), customer("c2", "Zeta")),
        case(invoice("a", "1.00", overdue=20), customer("c1", "Acme")),
    ]
    reminders, _ = run(cases)
    assert [(r.customer_id, r.invoices, r.step.days) for r in reminders] == [("c1", ("a",), 14), ("c2", ("z",), 1)]


def test_skipped_invoices_stay_out_of_the_customers_reminder():
    cases = [case(invoice("a", "100.00", overdue=20)), case(invoice("b", "50.00", overdue=40, disputed=True))]
    [reminder], skips = run(cases)
    assert codes(skips) == {"b": "disputed"}
    assert reminder.invoices == ("a",)
    assert reminder.step.days == 14  # the disputed invoice does not raise the step


def test_already_reminded_step_is_skipped_for_each_invoice():
    # The +7 reminder listed a (at +7) and b (at +1): each is recorded at its own step.
    cases = [case(invoice("a", "100.00", overdue=9)), case(invoice("b", "50.00", overdue=2))]
    reminders, skips = run(cases, already={("c1", 7, "a"), ("c1", 1, "b")})
    assert reminders == []
    assert codes(skips) == {"a": "already_reminded", "b": "already_reminded"}
    assert skips[0].reason == "Acme Ltd already had the day +7 (reminder) reminder for A"


def test_a_later_step_is_sent_after_an_earlier_one_was():
    [reminder], skips = run([case(invoice("a", "100.00", overdue=14))], already={("c1", 1, "a"), ("c1", 7, "a")})
    assert skips == []
    assert reminder.step.days == 14
    assert reminder.invoice_steps == (("a", 14),)


def test_ordering_is_deterministic_whatever_the_input_order():
    cases = [
        case(invoice(i, "10.00", overdue=d, customer_id=c), customer(c))
        for i, d, c in [("x", 5, "c2"), ("b", 5, "c1"), ("a", 5, "c1"), ("v", 1, "c2"), ("p", -9, "c1")]
    ]
    forward = run(cases)
    backward = run(list(reversed(cases)))
    assert forward == backward
    reminders, skips = forward
    assert [r.invoices for r in reminders] == [("a", "b"), ("x", "v")]
    assert [(s.customer_id, s.invoice_id, s.code) for s in skips] == [("c1", "p", "not_due_yet")]
