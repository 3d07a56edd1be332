"""Reminders on the generated book: the right step on the right day, one reminder per
customer, and never to a disputed, promised, on-plan, paused or already-paid-in-the-gateway
invoice, whether finance set the state in the CLI or the providers hold it."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from connector import pipeline
from connector.config import load_config
from connector.dunning.policy import DunningPolicy, Every
from connector.dunning.run import already_reminded, build_plan, queue, reminder_history
from connector.model import invoice_position
from connector.reconcile.run import run_reconciliation
from connector.reconcile.types import LEDGER_RULE
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state import reconciliation as decisions
from connector.state.store import open_store
from connector.state.tables import table
from support.customers_in_parts import same_reminders_a_few_customers_at_a_time
from support.e2e import sync_sandbox, with_credentials, write_counts

pytestmark = pytest.mark.slow


@pytest.fixture
def book(demo_copy, run_cli):
    config = load_config(str(demo_copy / "connector.toml"))
    store = open_store(config.database_url)
    yield (lambda *args: run_cli("--config", str(demo_copy / "connector.toml"), *args)), config, store
    store.close()


def gateway_covered(store, day):
    """Invoices still open in the ledger whose applied gateway payments cover the balance."""
    invoices = {i.id: i for i in store.list_invoices()}
    with store.session() as session:
        applied = [
            s.allocation
            for s in decisions.load_allocations(session, status="applied")
            if s.allocation.rule != LEDGER_RULE
        ]
    paid: dict[str, list] = {}
    for allocation in applied:
        paid.setdefault(allocation.invoice_id, []).append(allocation.amount)
    covered = set()
    for invoice_id, amounts in paid.items():
        ledger = invoice_position(invoices[invoice_id], day)
        if ledger.status in ("open", "partially_paid") and sum(amounts[1:], amounts[0]) >= ledger.balance:
            covered.add(invoice_id)
    return covered


@pytest.fixture
def reconciled_book(tmp_path, run_cli):
    """The demo's book synced and reconciled, its writes not sent: gateway payments that the
    rules applied are not in the ledger yet (the demo itself writes them back and syncs)."""
    today = date.today()
    with Sandbox(with_credentials(generate(42, "small", today=today).data), limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, tmp_path / "book", full=True)
        assert report.ok, report.as_dict()
        config_path = str(tmp_path / "book" / "connector.toml")
        config = load_config(config_path)
        run_reconciliation(config, store)
        try:
            yield (lambda *args: run_cli("--config", config_path, *args)), config, store
        finally:
            store.close()


def test_reminders_follow_the_policy_and_the_states_finance_sets(reconciled_book):
    run, config, store = reconciled_book
    today = date.today()
    first = build_plan(config, store, today + timedelta(days=1))
    listed = {i for r in first.reminders for i in r.invoices}
    skipped = {s.invoice_id: s.code for s in first.skips}
    # one reminder per customer and step window
    customers = [r.customer_id for r in first.reminders]
    assert len(customers) == len(set(customers))
    # pending payments seen in the gateway (not yet in the ledger) are never chased, and say so
    pending = gateway_covered(store, today + timedelta(days=1))
    assert pending, "the demo book has gateway payments the ledger does not hold yet"
    assert {invoice_id: skipped.get(invoice_id) for invoice_id in pending} == dict.fromkeys(pending, "payment_pending")
    invoices = {i.id: i for i in store.list_invoices()}
    candidates = [i for i in listed] or [i for i, code in skipped.items() if code == "already_reminded"]
    disputed, promised = candidates[0], candidates[-1]
    customer_to_pause = next(
        c
        for c in store.list_customers()
        if c.id not in (invoices[disputed].customer_id, invoices[promised].customer_id)
    )
    assert run("dispute", invoices[disputed].number, "--reason", "wrong quantity").exit_code == 0
    assert run("promise", invoices[promised].number, "--date", (today + timedelta(days=20)).isoformat()).exit_code == 0
    assert run("pause", customer_to_pause.id).exit_code == 0
    later = today + timedelta(days=10)
    second = build_plan(config, store, later)
    codes = {s.invoice_id: s.code for s in second.skips}
    assert codes[disputed] == "disputed"
    assert disputed not in {i for r in second.reminders for i in r.invoices}
    if promised != disputed:
        assert codes[promised] == "promise_to_pay"
    for invoice in store.list_invoices(customer_id=customer_to_pause.id):
        if invoice.id in codes:
            assert codes[invoice.id] in (
                "customer_paused",
                "paid_or_void",
                "payment_pending",
                "disputed",
                "payment_plan_on_time",  # a protection checked before the pause (policy._protection)
                "promise_to_pay",
            )
    policy = DunningPolicy.default()
    for reminder in second.reminders:
        # the customer's step is the highest step any of its listed invoices reached that day
        steps = [policy.step_for((later - invoices[i].due_date).days) for i in reminder.invoices]
        assert reminder.step.days == max(s.days for s in steps if s is not None)
        assert len(reminder.balances) >= 1  # per currency, never summed across


def test_the_plan_made_a_few_customers_at_a_time_is_the_whole_books(reconciled_book):
    """The plan reads its customers a batch at a time, each with its own neighbourhood (its
    invoices, their payments pending, its unapplied credit): on the reconciled book (gateway
    payments the ledger does not hold yet), with a dispute, a promise and a pause, on days that
    reach different steps, it is the plan of the whole book at once."""
    run, config, store = reconciled_book
    today = date.today()
    invoices = [i for i in store.list_receivables() if invoice_position(i, today).status == "open"]
    assert run("dispute", invoices[0].number, "--reason", "wrong quantity").exit_code == 0
    assert run("promise", invoices[1].number, "--date", (today + timedelta(days=20)).isoformat()).exit_code == 0
    assert run("pause", invoices[2].customer_id).exit_code == 0
    reminded = 0
    for days in (1, 10, 40, 75):
        day = today + timedelta(days=days)
        found = same_reminders_a_few_customers_at_a_time(config, store, day)
        reminded += len(build_plan(config, store, day).reminders)
        assert found
    assert reminded, "days at which some customer is reminded"
    # today's reminders queued and sent: what was reminded, and when, read a customer at a time
    assert queue(config, store, today).reminders
    pipeline.apply(config, store)
    assert already_reminded(store)
    for days in (0, 10, 40):
        same_reminders_a_few_customers_at_a_time(config, store, today + timedelta(days=days))


def test_the_seeded_disputes_promises_plans_and_pause_are_read_and_respected(book, demo_day):
    run, config, store = book
    today = date.today()
    truth = generate(42, "small", today=demo_day).truth  # the book the demo made
    seeded = {i["number"]: i for i in truth["invoices"] if i["scenario"] in ("disputed", "promise", "plan")}
    paused = {c["name"] for c in truth["customers"] if c["paused"]}
    assert {i["scenario"] for i in seeded.values()} == {"disputed", "promise", "plan"} and paused

    # The providers' states are in the columns the CLI uses.
    invoices = {i.number: i for i in store.list_invoices()}
    assert {n for n, i in invoices.items() if i.disputed} == {
        n for n, i in seeded.items() if i["scenario"] == "disputed"
    }
    assert {n: i.promise_to_pay for n, i in invoices.items() if i.promise_to_pay} == {
        n: date.fromisoformat(i["promise_to_pay_date"]) for n, i in seeded.items() if i["scenario"] == "promise"
    }
    assert {n for n, i in invoices.items() if i.payment_plan} == {
        n for n, i in seeded.items() if i["scenario"] == "plan"
    }
    assert {c.name for c in store.list_customers() if c.paused} == paused

    # Each is skipped with its reason; a plan only while its instalments are paid on time.
    plan = build_plan(config, store, today)
    codes = {s.invoice_id: s.code for s in plan.skips}
    listed = {i for r in plan.reminders for i in r.invoices}
    expected = {"disputed": "disputed", "promise": "promise_to_pay"}
    on_time_plans = 0
    for number, seed in seeded.items():
        invoice = invoices[number]
        if seed["scenario"] == "plan":
            terms = seed["payment_plan"]
            due = [Every(months=1).nth(date.fromisoformat(terms["first_due"]), k) for k in range(terms["instalments"])]
            if terms["paid_instalments"] >= sum(1 for d in due if d < today):
                assert codes[invoice.id] == "payment_plan_on_time", number
                on_time_plans += 1
            else:  # behind schedule: chased at the invoice's own step
                assert invoice.id in listed or codes[invoice.id] in ("already_reminded", "reminder_queued"), number
        else:
            assert codes[invoice.id] == expected[seed["scenario"]], number
    assert on_time_plans >= 1
    paused_ids = {c.id for c in store.list_customers() if c.name in paused}
    protected = {"payment_pending", "disputed", "payment_plan_on_time", "promise_to_pay"}
    for invoice in invoices.values():
        if invoice.customer_id in paused_ids and invoice.id in codes and codes[invoice.id] not in protected:
            assert codes[invoice.id] == "customer_paused", invoice.number
    assert not [r for r in plan.reminders if r.customer_id in paused_ids]

    # What the demo itself did: no reminder to the paused customer, no collections for a
    # disputed or promised invoice, no late fee proposed on one.
    with store.session() as session:
        box = table("outbox_actions")
        payloads = [
            p if isinstance(p, dict) else json.loads(p)
            for (p,) in session.execute(box.select().with_only_columns(box.c.payload))
        ]
    assert not [p for p in payloads if p.get("dunning_customer") in paused_ids and p.get("dunning_role") == "message"]
    held = {invoices[n].id for n, s in seeded.items() if s["scenario"] in ("disputed", "promise")}
    assert not [p for p in payloads if p.get("dunning_role") == "late_fee" and p.get("invoice") in held]
    assert not [n for n, s in seeded.items() if s["scenario"] in ("disputed", "promise") and invoices[n].in_collections]
    disputed_number = next(n for n, s in seeded.items() if s["scenario"] == "disputed")
    story = run("explain", disputed_number).stdout
    assert f"{disputed_number}: disputed, as crm deal {seeded[disputed_number]['hubspot_deal_id']} states" in story
    assert f"dunning reminder_skipped invoice {invoices[disputed_number].id}: {disputed_number} is disputed" in story


def test_reminders_plan_cli_previews_without_queueing(book):
    run, _, store = book
    before = len(store.list_actions())
    result = run("reminders", "plan", "--as-of", (date.today() + timedelta(days=30)).isoformat(), "--json")
    assert result.exit_code == 0, result.stderr
    preview = json.loads(result.stdout)
    assert {"reminders", "skips", "actions", "for_a_person"} <= set(preview)
    assert len(store.list_actions()) == before
    assert run("reminders", "plan", "--as-of", "someday").exit_code == 2


def test_a_dry_run_marks_nobody_reminded_and_cancelled_reminders_are_planned_again(tmp_path, run_cli):
    today = date.today()
    with Sandbox(with_credentials(generate(42, "small", today=today).data), limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, tmp_path / "book", full=True)
        assert report.ok, report.as_dict()
        config_path = str(tmp_path / "book" / "connector.toml")
        run = lambda *args: run_cli("--config", config_path, *args)  # noqa: E731
        config = load_config(config_path)
        assert run("sync", "--dry-run").exit_code == 0
        assert write_counts(sandbox.journal) == {}  # nothing was sent anywhere
    try:
        history = reminder_history(store)
        assert already_reminded(store) == set() and history.sent == set()
        assert history.queued, "the dry run planned reminders"
        plan = build_plan(config, store, today)
        assert plan.reminders == []
        codes = {s.code for s in plan.skips}
        assert "already_reminded" not in codes and "reminder_queued" in codes
        # a person cancels every planned reminder: tomorrow they are planned again
        queued = [
            a for a in store.list_actions() if a.state == "planned" and a.payload.get("dunning_role") == "message"
        ]
        with store.session() as session:
            ids = [
                row.id
                for row in session.execute(table("outbox_actions").select())
                if row.idempotency_key in {a.idempotency_key for a in queued}
            ]
        for action_id in ids:
            assert run("actions", "cancel", str(action_id)).exit_code == 0
        today_again = {s.code for s in build_plan(config, store, today).skips}
        assert "reminder_dropped" in today_again and "reminder_queued" not in today_again
        tomorrow = build_plan(config, store, today + timedelta(days=1))
        assert {r.customer_id for r in tomorrow.reminders} >= {a.payload["dunning_customer"] for a in queued}
    finally:
        store.close()
