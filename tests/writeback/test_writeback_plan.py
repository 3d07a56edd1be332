"""What write-back plans, from plain facts."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from connector.model import Allocation, Invoice, Payment, Ref, invoice_position
from connector.money import Money
from connector.writeback.plan import (
    Facts,
    SystemView,
    plan_all,
    plan_crm_properties,
    plan_gateway_status,
    plan_ledger_payments,
)

USD = lambda a: Money.of(a, "USD")  # noqa: E731


def invoice(iid, total="100.00", paid="0"):
    return Invoice(
        id=iid,
        number=f"INV-{iid}",
        currency="USD",
        subtotal=USD(total),
        tax=USD(0),
        total=USD(total),
        amount_paid=USD(paid),
        due_date=date(2026, 10, 1),
    )


def facts(*, fee_ledgers=frozenset({"ledger"}), hand_entered=False, hand_entry=None):
    invoices = {"i1": invoice("i1"), "i2": invoice("i2", "50.00")}
    payment = Payment(id="p1", amount=USD("150.00"), fee=USD("4.65"), received_at=datetime(2026, 11, 2, tzinfo=UTC))
    allocations = [
        Allocation(
            id="a1",
            payment_id="p1",
            invoice_id="i1",
            amount=USD("100.00"),
            rule="remittance_number",
            confidence=Decimal("0.98"),
        ),
        Allocation(
            id="a2",
            payment_id="p1",
            invoice_id="i2",
            amount=USD("50.00"),
            rule="remittance_number",
            confidence=Decimal("0.98"),
        ),
    ]
    by_invoice = {"i1": [allocations[0]], "i2": [allocations[1]]}
    ledger_payments = {}
    if hand_entered:
        ledger_payments[("ledger", "x-i1")] = [
            SystemView(
                "ledger",
                "ledger",
                "payment",
                "x-p9",
                {
                    "amount": {"amount": "100.00", "currency": "USD"},
                    "received_at": "2026-11-03T00:00:00+00:00",
                    **(hand_entry or {}),
                },
            )
        ]
    return Facts(
        invoices=invoices,
        positions={i: invoice_position(inv, date(2026, 11, 22), by_invoice[i]) for i, inv in invoices.items()},
        invoice_views={
            i: [
                SystemView("ledger", "ledger", "invoice", f"x-{i}", {"status": "open"}),
                SystemView("gateway", "gateway", "invoice", f"in_{i}", {"status": "open"}),
            ]
            for i in invoices
        },
        payments={"p1": payment},
        payment_views={"p1": [SystemView("gateway", "gateway", "payment", "ch_1", {})]},
        allocations=allocations,
        ledger_payments_on=ledger_payments,
        fee_ledgers=fee_ledgers,
    )


def test_a_gateway_payment_for_two_invoices_is_recorded_twice_and_its_fee_once():
    planned = plan_ledger_payments(facts())
    kinds = [p.action.kind for p in planned]
    assert kinds.count("record_payment") == 2
    fees = {p.action.idempotency_key: p for p in planned if p.action.kind == "record_fee"}
    assert len(fees) == 1  # same content, same key: the outbox keeps one
    fee = next(iter(fees.values())).action
    assert fee.payload["amount"] == "4.65" and fee.payload["reference"] == "ch_1"


def test_no_fee_without_a_fee_account_and_no_payment_entered_twice_by_hand():
    assert not [p for p in plan_ledger_payments(facts(fee_ledgers=frozenset())) if p.action.kind == "record_fee"]
    planned = plan_ledger_payments(facts(hand_entered=True))
    targets = [p.action.target.remote_id for p in planned if p.action.kind == "record_payment"]
    assert targets == ["x-i2"]  # i1's payment is already in the ledger, entered by hand


def test_a_payment_entered_by_hand_then_deleted_in_the_ledger_no_longer_stops_ours():
    """Finance entered the payment by hand, then deleted it in the ledger (Xero: Status DELETED,
    mapped as deleted and failed): the invoice is unpaid there again, so the allocation's
    payment is recorded. One the ledger holds as pending may still become money: it stops ours."""
    recorded = lambda f: sorted(  # noqa: E731
        p.action.target.remote_id for p in plan_ledger_payments(f) if p.action.kind == "record_payment"
    )
    deleted = {"status": "failed", "_sync": {"deleted": True}}
    assert recorded(facts(hand_entered=True, hand_entry=deleted)) == ["x-i1", "x-i2"]
    assert recorded(facts(hand_entered=True, hand_entry={"status": "failed"})) == ["x-i1", "x-i2"]
    assert recorded(facts(hand_entered=True, hand_entry={"status": "pending"})) == ["x-i2"]
    assert recorded(facts(hand_entered=True, hand_entry={"status": "succeeded"})) == ["x-i2"]


def test_the_gateway_is_told_an_invoice_is_paid_when_the_ledger_says_so():
    planned = plan_gateway_status(facts())
    assert sorted(p.action.target.remote_id for p in planned) == ["in_i1", "in_i2"]
    assert all(p.action.kind == "mark_paid" for p in planned)


# Void -------------------------------------------------------------------------------------


def void_facts(gateway_status="open", ledger_status="void"):
    voided = invoice("i1").model_copy(update={"status": ledger_status})
    return Facts(
        invoices={"i1": voided},
        positions={"i1": invoice_position(voided, date(2026, 11, 22))},
        invoice_views={
            "i1": [
                SystemView("ledger", "ledger", "invoice", "x-i1", {"status": ledger_status}),
                SystemView("gateway", "gateway", "invoice", "in_i1", {"status": gateway_status}),
            ]
        },
        payments={},
        payment_views={},
        allocations=[],
        ledger_payments_on={},
    )


def test_the_gateway_voids_an_invoice_the_ledger_voided():
    (planned,) = plan_gateway_status(void_facts())
    assert planned.action.kind == "void_invoice" and planned.action.connection == "gateway"
    assert planned.action.target.remote_id == "in_i1" and planned.subject_id == "i1"
    assert planned.summary == "INV-i1: void in gateway (status open -> void; the ledger says void)"
    # planning twice gives the same action, which the outbox keeps once
    (again,) = plan_gateway_status(void_facts())
    assert again.action.idempotency_key == planned.action.idempotency_key


def test_no_void_when_the_gateway_invoice_is_no_longer_open_or_the_ledger_did_not_void_it():
    assert plan_gateway_status(void_facts(gateway_status="void")) == []
    assert plan_gateway_status(void_facts(gateway_status="paid")) == []
    assert plan_gateway_status(void_facts(ledger_status="open")) == []
    assert plan_gateway_status(void_facts(ledger_status="draft")) == []


# CRM properties ---------------------------------------------------------------------------


def crm_facts(held=None, *, paid="0", reminded=None, object_type="deal"):
    """Invoice i1 (100.00 USD, due 2026-10-01, as of 2026-11-22: 52 days overdue when open),
    known in the CRM as deal 9001, whose stored view holds `held` (hint name -> value)."""
    inv = invoice("i1", paid=paid)
    data = {"status": "open", "_sync": {"hints": {"invoice_number": "INV-i1", **(held or {})}}}
    return Facts(
        invoices={"i1": inv},
        positions={"i1": invoice_position(inv, date(2026, 11, 22))},
        invoice_views={
            "i1": [
                SystemView("ledger", "ledger", "invoice", "x-i1", {"status": "open"}),
                SystemView("crm", "crm", object_type, "9001", data),
            ]
        },
        payments={},
        payment_views={},
        allocations=[],
        ledger_payments_on={},
        last_reminders={"i1": reminded} if reminded else {},
    )


def test_a_crm_record_never_written_gets_every_property_from_nothing():
    (planned,) = plan_crm_properties(crm_facts())
    assert planned.action.target.remote_id == "9001" and planned.action.kind == "update_properties"
    assert planned.action.payload == {
        "properties": {"payment_status": "open", "amount_outstanding": "100.00", "days_overdue": "52"}
    }
    assert planned.summary == (
        "INV-i1: crm deal 9001: payment status (none) -> open, "
        "outstanding (none) -> 100.00 USD, days overdue (none) -> 52"
    )


def test_only_what_the_crm_does_not_hold_is_sent_each_shown_from_and_to():
    held = {"crm_payment_status": "open", "crm_amount_outstanding": "100.00", "crm_days_overdue": "51"}
    (planned,) = plan_crm_properties(crm_facts(held, paid="40.00"))
    assert planned.action.payload == {
        "properties": {"payment_status": "partially_paid", "amount_outstanding": "60.00", "days_overdue": "52"}
    }
    assert planned.summary == (
        "INV-i1: crm deal 9001: payment status open -> partially_paid, "
        "outstanding 100.00 -> 60.00 USD, days overdue 51 -> 52"
    )
    # a day later only the days overdue changed: nothing else is sent again
    held = {"crm_payment_status": "open", "crm_amount_outstanding": "100.00", "crm_days_overdue": "51"}
    (planned,) = plan_crm_properties(crm_facts(held))
    assert planned.action.payload == {"properties": {"days_overdue": "52"}}
    assert planned.summary == "INV-i1: crm deal 9001: days overdue 51 -> 52"


def test_nothing_is_planned_when_the_crm_holds_every_value_already():
    # HubSpot answers numbers in its own spelling and a date property as a midnight timestamp
    held = {
        "crm_payment_status": "open",
        "crm_amount_outstanding": "100",
        "crm_days_overdue": "52",
        "crm_last_reminder": "1795132800000",
    }  # 2026-11-20T00:00:00Z
    assert plan_crm_properties(crm_facts(held, reminded=date(2026, 11, 20))) == []
    assert (
        plan_crm_properties(
            crm_facts(held | {"crm_last_reminder": "2026-11-20"}, reminded=date(2026, 11, 20), object_type="invoice")
        )
        == []
    )


def test_the_last_reminder_date_is_written_when_a_later_reminder_went_out_and_never_cleared():
    held = {
        "crm_payment_status": "open",
        "crm_amount_outstanding": "100.00",
        "crm_days_overdue": "52",
        "crm_last_reminder": "2026-11-01",
    }
    (planned,) = plan_crm_properties(crm_facts(held, reminded=date(2026, 11, 20)))
    assert planned.action.payload == {"properties": {"last_reminder": "2026-11-20"}}
    assert planned.summary == "INV-i1: crm deal 9001: last reminder 2026-11-01 -> 2026-11-20"
    # no reminder known to us: the date the CRM holds (set by hand, or before us) stays
    assert plan_crm_properties(crm_facts(held)) == []


# The date of the last reminder, from the outbox -------------------------------------------


def test_an_invoice_counts_as_reminded_once_the_reminder_s_message_is_sent(tmp_path):
    from connector.model import Action
    from connector.state import open_store, outbox
    from connector.writeback.facts import last_reminders

    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    tag = {"dunning_step": 14, "dunning_customer": "c2", "dunning_as_of": "2026-11-20"}
    reminder = [  # (action, subject type, subject id, summary), as dunning queues them
        (
            Action(
                connection="ledger",
                kind="send_invoice",
                target=Ref(system="ledger", object_type="invoice", remote_id="x-i3"),
                payload={**tag, "dunning_role": "message", "dunning_invoices": {"i3": 14, "i4": 7}},
            ),
            "customer",
            "c2",
            "email",
        ),
        (
            Action(connection="crm", kind="create_note", payload={**tag, "dunning_role": "note", "company_id": "5"}),
            "customer",
            "c2",
            "note beside the email",
        ),
        (
            Action(connection="crm", kind="create_task", payload={**tag, "dunning_role": "late_fee", "invoice": "i3"}),
            "invoice",
            "i3",
            "late fee task",
        ),
    ]
    # (reminders queued before they named their invoices are tagged by migration 0007:
    # tests/state/test_state_reminder_tags_migration.py)
    with store.session() as session:
        outbox.add_planned(session, reminder)

    def send(*summaries):
        with store.session() as session:
            for entry in outbox.claim(session, "host:1", lease=timedelta(minutes=10), limit=10):
                if entry.summary in summaries:
                    outbox.complete(session, entry.id, "host:1", {})
                else:
                    outbox.fail(session, entry.id, "host:1", "not now", retry_at=datetime.now(UTC))

    def reminded():
        with store.session() as session:
            return last_reminders(session)

    assert reminded() == {}  # queued is not reminded
    send("note beside the email", "late fee task")
    assert reminded() == {}  # the emails are what remind, and they are not sent yet
    send("email")
    today = date.today()
    assert reminded() == {"i3": today, "i4": today}
    store.close()


def test_a_write_sent_and_taken_back_is_derived_again_under_a_key_of_its_own():
    first = plan_all(facts(), date(2026, 11, 22))
    record = next(p for p in first if p.action.kind == "record_payment")
    sent_id = 41
    derived = plan_all(facts_with(reversed={record.action.idempotency_key: sent_id}), date(2026, 11, 22))
    again = {p.action.idempotency_key: p for p in derived}
    assert record.action.idempotency_key not in again
    [replacing] = [p for p in again.values() if p.action.payload.get("replaces") == sent_id]
    assert {k: v for k, v in replacing.action.payload.items() if k != "replaces"} == record.action.payload
    # writes never taken back keep the keys they always had
    untouched = {p.action.idempotency_key for p in first} - {record.action.idempotency_key}
    assert untouched <= set(again)


def test_a_ledger_payment_being_deleted_does_not_count_as_the_ledger_holding_the_payment():
    held = facts_with(payment_views={"p1": [SystemView("ledger", "ledger", "payment", "x-pay", {})]})
    assert [p for p in plan_ledger_payments(held) if p.action.kind == "record_payment"] == []
    withdrawn = facts_with(
        payment_views={"p1": [SystemView("ledger", "ledger", "payment", "x-pay", {})]}, withdrawn=frozenset({"x-pay"})
    )
    assert len([p for p in plan_ledger_payments(withdrawn) if p.action.kind == "record_payment"]) == 2


def facts_with(**changes):
    return replace(facts(), **changes)


def ledger_part(remote_id, invoice_remote_id, status="succeeded"):
    data = {"status": status, "_sync": {"links": {"invoice": invoice_remote_id}} if invoice_remote_id else {}}
    return SystemView("ledger", "ledger", "payment", remote_id, data)


def test_a_split_payment_half_written_back_writes_the_part_the_ledger_lacks_and_no_other():
    """A payment split over two invoices whose write-back stopped after the first part: the
    ledger holds the part on i1, so only i2's part is planned (once), and never i1's again."""
    half = facts_with(
        payment_views={"p1": [SystemView("gateway", "gateway", "payment", "ch_1", {}), ledger_part("x-pay1", "x-i1")]}
    )
    targets = [p.action.target.remote_id for p in plan_ledger_payments(half) if p.action.kind == "record_payment"]
    assert targets == ["x-i2"]
    both = facts_with(payment_views={"p1": [ledger_part("x-pay1", "x-i1"), ledger_part("x-pay2", "x-i2")]})
    assert [p for p in plan_ledger_payments(both) if p.action.kind == "record_payment"] == []


def test_a_ledger_part_on_no_known_invoice_or_deleted_is_handled_without_writing_twice():
    # a part the ledger holds on an invoice it does not say: nothing is written, to be safe
    unknown = facts_with(payment_views={"p1": [ledger_part("x-pay1", None)]})
    assert [p for p in plan_ledger_payments(unknown) if p.action.kind == "record_payment"] == []
    # a part deleted in the ledger holds no money there: both parts are written again
    deleted = facts_with(payment_views={"p1": [ledger_part("x-pay1", "x-i1", status="failed")]})
    assert len([p for p in plan_ledger_payments(deleted) if p.action.kind == "record_payment"]) == 2
