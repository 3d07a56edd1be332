"""The reminders plan read a few customers at a time against the whole book (issue #18: each
batch of customers reads its own neighbourhood only)."""

from __future__ import annotations

from datetime import date
from typing import Any

from connector.dunning.run import Planner, build_plan, unapplied_credit
from connector.writeback.facts import gather_facts


def same_reminders_a_few_customers_at_a_time(config: Any, store: Any, day: date, few: int = 5) -> int:
    """Each batch of `few` customers' facts (their receivables, the positions, the payments
    pending on them, what their own payments pay, their unapplied credit, when each invoice was
    last reminded) as the whole book's facts have them; and the reminders plan made a customer
    at a time (its reads sieved: only invoices open by their own figures, only payments that
    may hold cash) is the one the whole book's facts give at once. Returns how many reminders
    and skips that plan holds (a caller can insist there are some)."""
    whole = gather_facts(config, store, today=day)
    everyone = sorted({c.id for c in store.list_customers() if c.id})
    for start in range(0, len(everyone), few):
        chunk = everyone[start : start + few]
        part = gather_facts(config, store, today=day, customer_ids=chunk)
        theirs = {i for i, invoice in whole.invoices.items() if invoice.customer_id in chunk}
        assert set(part.invoices) == theirs
        assert {i: part.positions[i] for i in theirs} == {i: whole.positions[i] for i in theirs}
        pending = sorted(a.id or "" for a in part.allocations if a.invoice_id in theirs)
        assert pending == sorted(a.id or "" for a in whole.allocations if a.invoice_id in theirs)
        own = {p for p, payment in whole.payments.items() if payment.customer_id in chunk}
        theirs_paid = sorted(a.id or "" for a in part.allocations if a.payment_id in own)
        assert theirs_paid == sorted(a.id or "" for a in whole.allocations if a.payment_id in own)
        assert unapplied_credit(part, chunk) == unapplied_credit(whole, chunk)
        reminded = {i: day for i, day in part.last_reminders.items() if i in theirs}
        assert reminded == {i: day for i, day in whole.last_reminders.items() if i in theirs}
    planner = Planner.of(config, store, day)
    whole_book = planner.plan(gather_facts(config, store, today=day), planner.customers(store, everyone))
    one_by_one = build_plan(config, store, day, batch=1)
    at_once = build_plan(config, store, day, batch=len(everyone) + 1)
    for plan in (one_by_one, at_once):
        assert (plan.reminders, plan.skips) == (whole_book.reminders, whole_book.skips)
        assert (plan.actions, plan.follow_ups) == (whole_book.actions, whole_book.follow_ups)
    return len(at_once.reminders) + len(at_once.skips)
