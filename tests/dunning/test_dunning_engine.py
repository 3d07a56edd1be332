"""The dunning engine on a stored book: what counts as reminded (sent, not planned), a new
invoice reaching a step a month later, a payment seen only in the gateway, late fees and
escalations without a CRM, through the real CLI where a person would use it."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest

from connector.dunning.run import ACTOR, already_reminded, build_plan, queue, reminder_history
from connector.model import Allocation
from connector.money import Money
from connector.state import reconciliation as decisions
from connector.state.bookkeeping import audit_entries
from support.dunning_book import Book

JAN_2 = date(2026, 1, 2)
FEB_2 = JAN_2 + timedelta(days=31)


@pytest.fixture
def book(tmp_path, run_cli):
    made = Book(tmp_path / "book")
    made.run = lambda *args: run_cli("--config", str(made.config_path), *args)
    yield made
    made.store.close()


def messages(book, day):
    return [e for e in book.actions(dunning_role="message") if e.action.payload["dunning_as_of"] == day.isoformat()]


def codes(plan):
    return {s.invoice_id: s.code for s in plan.skips}


# A reminder counts once it is sent ----------------------------------------------------------


def test_a_planned_reminder_is_not_sent_until_done_and_a_cancelled_one_does_not_count(book):
    book.customer("acme", "Acme Ltd")
    book.invoice("INV-1", "acme", "100.00", JAN_2 - timedelta(days=3))
    plan = queue(book.config, book.store, JAN_2)
    assert [(r.customer_id, r.step.days, r.invoices) for r in plan.reminders] == [("acme", 1, ("inv-1",))]
    [email] = messages(book, JAN_2)
    assert (email.action.kind, email.action.payload["dunning_invoices"]) == ("send_invoice", {"inv-1": 1})

    # Queued, not sent: nobody is reminded, and planning again queues nothing twice.
    assert already_reminded(book.store) == set()
    again = build_plan(book.config, book.store, JAN_2)
    assert again.reminders == [] and codes(again) == {"inv-1": "reminder_queued"}
    assert queue(book.config, book.store, JAN_2).actions == []
    assert len(book.actions()) == len(plan.actions) == 2  # the email, and a note for the account team

    # A person cancels the email: it does not count as sent; today's plan says so, and the
    # next day the reminder is planned again.
    assert book.run("actions", "cancel", str(email.id)).exit_code == 0
    assert reminder_history(book.store).sent == set()
    preview = book.run("reminders", "plan", "--as-of", JAN_2.isoformat())
    assert "reminder_dropped       The day +1 (reminder) reminder for INV-1 to Acme Ltd was cancelled" in preview.stdout
    next_day = JAN_2 + timedelta(days=1)
    assert [r.invoices for r in queue(book.config, book.store, next_day).reminders] == [("inv-1",)]

    # Sent (its action done): now it counts, and the step is not sent again.
    book.send(messages(book, next_day))
    assert already_reminded(book.store) == {("acme", 1)}
    later = build_plan(book.config, book.store, next_day + timedelta(days=2))
    assert later.reminders == [] and codes(later) == {"inv-1": "already_reminded"}


def test_a_parked_reminder_does_not_count_as_sent(book):
    book.customer("acme", "Acme Ltd")
    book.invoice("INV-1", "acme", "100.00", JAN_2 - timedelta(days=3))
    queue(book.config, book.store, JAN_2)
    [email] = messages(book, JAN_2)
    from connector.state import outbox

    with book.store.session() as session:
        outbox.claim(session, "w", lease=timedelta(minutes=5), limit=10)
        outbox.fail(session, email.id, "w", "400 the ledger refused", retry_at=None)  # parked for a person
    assert already_reminded(book.store) == set()
    assert [r.invoices for r in build_plan(book.config, book.store, JAN_2 + timedelta(days=1)).reminders] == [
        ("inv-1",)
    ]


# Two dates a month apart --------------------------------------------------------------------


def test_a_new_invoice_reaching_plus_1_a_month_later_is_reminded_though_the_customer_had_plus_1(book):
    book.customer("acme", "Acme Ltd")
    book.invoice("INV-1", "acme", "100.00", JAN_2 - timedelta(days=1))
    queue(book.config, book.store, JAN_2)
    book.send(messages(book, JAN_2))
    book.invoice("INV-1", "acme", "100.00", JAN_2 - timedelta(days=1), paid="100.00")  # paid in January
    book.invoice("INV-2", "acme", "250.00", FEB_2 - timedelta(days=1))

    plan = queue(book.config, book.store, FEB_2)
    assert [(r.step.days, r.invoices) for r in plan.reminders] == [(1, ("inv-2",))]
    [email] = messages(book, FEB_2)
    assert email.action.target.remote_id == "X-INV-2"


def test_every_invoice_that_reaches_the_escalation_step_goes_to_collections(book):
    book.customer("acme", "Acme Ltd")
    book.invoice("INV-1", "acme", "100.00", JAN_2 - timedelta(days=45))
    january = queue(book.config, book.store, JAN_2)
    assert [r.escalated_invoices for r in january.reminders] == [("inv-1",)]
    book.send(messages(book, JAN_2))
    book.invoice("INV-2", "acme", "250.00", FEB_2 - timedelta(days=45))

    february = queue(book.config, book.store, FEB_2)
    assert [(r.step.days, r.invoices, r.escalated_invoices) for r in february.reminders] == [
        (45, ("inv-2",), ("inv-2",))
    ]
    assert codes(february) == {"inv-1": "already_reminded"}
    flagged = {i.number: i.in_collections for i in book.store.list_invoices()}
    assert flagged == {"INV-1": True, "INV-2": True}


# A payment seen in the gateway only ---------------------------------------------------------


def test_a_payment_pending_in_the_gateway_is_a_recorded_skip_that_explain_shows(book):
    book.customer("acme", "Acme Ltd")
    book.invoice("INV-7", "acme", "500.00", JAN_2 - timedelta(days=10))
    from connector.model import Payment, Ref

    charge = Payment(
        id="pay-1",
        amount=Money.of("500.00", "USD"),
        customer_id="acme",
        received_at=__import__("datetime").datetime(2025, 12, 30, tzinfo=__import__("datetime").UTC),
        refs=[Ref(system="gateway", object_type="payment", remote_id="ch_1")],
    )
    book.store.store_page("gateway", "charges", "payment", [charge], None, rank=2)
    with book.store.session() as session:
        decisions.save_allocations(
            session,
            [
                Allocation(
                    id="a-1",
                    payment_id="pay-1",
                    invoice_id="inv-7",
                    amount=Money.of("500.00", "USD"),
                    rule="remittance_number",
                    confidence=Decimal("0.98"),
                    reason="INV-7 in the remittance",
                )
            ],
            "applied",
        )

    plan = queue(book.config, book.store, JAN_2)
    assert plan.reminders == []
    [skip] = plan.skips
    assert (skip.invoice_id, skip.code) == ("inv-7", "payment_pending")
    story = book.run("explain", "INV-7")
    assert story.exit_code == 0, story.stderr
    assert (
        "dunning reminder_skipped invoice inv-7: INV-7: payment of 500.00 USD is seen in the gateway but "
        "not yet in the ledger; it covers the balance of 500.00 USD"
    ) in story.stdout


# Without a CRM: the fee and the escalation are still seen by a person ---------------------------


def test_without_a_crm_the_late_fee_and_the_escalation_are_listed_and_audited_never_applied(book):
    book.customer("solo", "Solo GmbH", crm=False)
    book.invoice("INV-30", "solo", "1000.00", JAN_2 - timedelta(days=31), currency="EUR")
    book.customer("lone", "Lone KK", crm=False)
    book.invoice("INV-45", "lone", "12345", JAN_2 - timedelta(days=46), currency="JPY")

    preview = book.run("reminders", "plan", "--as-of", JAN_2.isoformat())
    assert preview.exit_code == 0, preview.stderr
    assert (
        "late_fee               Policy step +30 proposes a late fee of 20.00 EUR (2%) on INV-30 of Solo GmbH. "
        "Apply it in the ledger if you agree; the connector never applies fees itself. [no CRM task: only this "
        "list and the audit log (`connector explain`)]"
    ) in preview.stdout
    assert (
        "escalation             INV-45 of Lone KK reached day +45 (collections) and goes to collections "
        "(flagged in_collections); the customer has no CRM company for the collections task: a person must "
        "take it up"
    ) in preview.stdout
    as_json = json.loads(book.run("reminders", "plan", "--as-of", JAN_2.isoformat(), "--json").stdout)
    assert [(f["kind"], f["invoice"], f["via"]) for f in as_json["for_a_person"]] == [
        ("escalation", "inv-45", None),
        ("late_fee", "inv-30", None),
    ]

    plan = queue(book.config, book.store, JAN_2)
    # the reminders themselves go by ledger email; no fee is applied anywhere
    assert sorted(a.kind for a, *_ in plan.actions) == ["send_invoice", "send_invoice"]
    assert {i.number: i.in_collections for i in book.store.list_invoices()} == {"INV-30": False, "INV-45": True}
    fee = book.run("explain", "INV-30").stdout
    assert "dunning late_fee_proposed invoice inv-30: Policy step +30 proposes a late fee of 20.00 EUR (2%)" in fee
    escalated = book.run("explain", "INV-45").stdout
    assert "dunning escalated invoice inv-45: INV-45 of Lone KK reached day +45 (collections)" in escalated
    queue(book.config, book.store, JAN_2)  # planning again the same day does not repeat them
    assert book.run("explain", "INV-30").stdout.count("late_fee_proposed") == 1


def test_with_a_crm_the_late_fee_is_a_task_for_a_person(book):
    book.customer("acme", "Acme Ltd")
    book.invoice("INV-30", "acme", "1000.00", JAN_2 - timedelta(days=31))
    plan = build_plan(book.config, book.store, JAN_2)
    [fee] = [a for a, *_ in plan.actions if a.payload.get("dunning_role") == "late_fee"]
    assert (fee.connection, fee.kind, fee.payload["subject"]) == ("crm", "create_task", "Late fee 20.00 USD on INV-30?")
    assert [(f.kind, f.via) for f in plan.follow_ups] == [("late_fee", "task on crm company H-acme")]


# A lasting skip is recorded once --------------------------------------------------------------


def recorded_skips(book):
    with book.store.session() as session:
        entries = audit_entries(session, actor=ACTOR, actions=["reminder_skipped"])
    return [(e.subject_id, (e.inputs or {})["code"], (e.inputs or {})["as_of"]) for e in entries]


def test_a_skip_is_recorded_when_it_begins_changes_or_follows_a_reminder_not_every_day(book):
    """The audit log says why an invoice is not chased from the day that began; a skip that
    lasts is not written again each day (a large book wrote its size a day), but a new
    reason, or a reminder to the customer since, is."""
    book.customer("acme", "Acme Ltd")
    book.invoice("INV-1", "acme", "100.00", JAN_2 - timedelta(days=3))  # overdue: reminded at +1, +7
    book.invoice("INV-2", "acme", "40.00", JAN_2 + timedelta(days=20))  # not due for weeks
    assert [r.invoices for r in queue(book.config, book.store, JAN_2).reminders] == [("inv-1",)]
    book.send(messages(book, JAN_2))
    for offset in range(1, 4):
        queue(book.config, book.store, JAN_2 + timedelta(days=offset))
    # INV-2 once, from the first day; INV-1 once from the day after its reminder went out
    assert recorded_skips(book) == [
        ("inv-2", "not_due_yet", "2026-01-02"),
        ("inv-1", "already_reminded", "2026-01-03"),
    ]

    # The +7 reminder to Acme (INV-1 is 7 days late on 6 January): INV-2's skip is said again
    # after it, then not again
    jan_6 = date(2026, 1, 6)
    assert [(r.step.days, r.invoices) for r in queue(book.config, book.store, jan_6).reminders] == [(7, ("inv-1",))]
    queue(book.config, book.store, jan_6 + timedelta(days=1))
    assert recorded_skips(book)[2:] == [("inv-2", "not_due_yet", "2026-01-06")]

    # A new reason is recorded the day it appears, once
    book.invoice("INV-2", "acme", "40.00", JAN_2 + timedelta(days=20), disputed=True)
    for offset in (2, 3):
        queue(book.config, book.store, jan_6 + timedelta(days=offset))
    assert recorded_skips(book)[3:] == [("inv-2", "disputed", "2026-01-08")]
    story = book.run("explain", "INV-2")
    assert story.exit_code == 0, story.stderr
    assert "dunning reminder_skipped invoice inv-2: INV-2 is disputed" in story.stdout
