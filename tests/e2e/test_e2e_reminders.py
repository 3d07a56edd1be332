"""Reminders on the generated book: the right step on the right day, one reminder per
customer, and never to a disputed, promised, paused or already-paid-in-the-gateway invoice."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from connector.config import load_config
from connector.dunning import DunningPolicy
from connector.reminders import build_plan
from state.store import open_store

pytestmark = pytest.mark.slow


@pytest.fixture
def book(demo_copy, run_cli):
    config = load_config(str(demo_copy / "connector.toml"))
    store = open_store(config.database_url)
    yield (lambda *args: run_cli("--config", str(demo_copy / "connector.toml"), *args)), config, store
    store.close()


def test_reminders_follow_the_policy_and_the_states_finance_sets(book):
    run, config, store = book
    today = date.today()
    first = build_plan(config, store, today + timedelta(days=1))
    listed = {i for r in first.reminders for i in r.invoices}
    skipped = {s.invoice_id: s.code for s in first.skips}
    # one reminder per customer and step window
    customers = [r.customer_id for r in first.reminders]
    assert len(customers) == len(set(customers))
    # pending payments seen in the gateway (not yet in the ledger) are never chased
    assert "payment_pending" in skipped.values() or "already_reminded" in skipped.values()
    invoices = {i.id: i for i in store.list_invoices()}
    candidates = [i for i in listed] or [i for i, code in skipped.items() if code == "already_reminded"]
    disputed, promised = candidates[0], candidates[-1]
    customer_to_pause = next(c for c in store.list_customers()
                             if c.id not in (invoices[disputed].customer_id, invoices[promised].customer_id))
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
            assert codes[invoice.id] in ("customer_paused", "paid_or_void", "payment_pending", "disputed", "promise_to_pay")
    policy = DunningPolicy.default()
    for reminder in second.reminders:
        # the customer's step is the highest step any of its listed invoices reached that day
        steps = [policy.step_for((later - invoices[i].due_date).days) for i in reminder.invoices]
        assert reminder.step.days == max(s.days for s in steps if s is not None)
        assert len(reminder.balances) >= 1  # per currency, never summed across


def test_reminders_plan_cli_previews_without_queueing(book):
    run, _, store = book
    before = len(store.list_actions())
    result = run("reminders", "plan", "--as-of", (date.today() + timedelta(days=30)).isoformat(), "--json")
    assert result.exit_code == 0, result.stderr
    import json

    preview = json.loads(result.stdout)
    assert {"reminders", "skips", "actions"} <= set(preview)
    assert len(store.list_actions()) == before
    assert run("reminders", "plan", "--as-of", "someday").exit_code == 2
