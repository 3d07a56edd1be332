"""The automatic plan of what changed (issue #18): a customer whose inputs are the ones its last
plan was derived from is not planned again, and the outbox is left as a whole-book plan would
leave it (`settle_in_parts(only_changed=True)`, `connector.writeback.unchanged`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.config import Config, load_config
from connector.reconcile.decisions import withdraw
from connector.reconcile.run import run_reconciliation
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state import Store, open_store, outbox
from connector.state import plan_inputs as inputs
from connector.state.reconciliation import load_allocations
from connector.state.records import receivable_keys
from connector.state.tables import table
from connector.writeback.apply import AUTOMATIC_CAUSE
from connector.writeback.settle import Settlement, settle_in_parts
from support.e2e import sync_sandbox, with_credentials
from support.plan_in_parts import same_writes_planning_what_changed, settled_rolled_back

TODAY = date.today()


@pytest.fixture(scope="module")
def reconciled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A small book synced and reconciled, not planned: its SQLite file."""
    book = with_credentials(generate(11, "small", today=TODAY).data)
    directory = tmp_path_factory.mktemp("unchanged")
    with Sandbox(book, limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, directory, full=True)
        assert report.ok
        config = load_config(str(directory / "connector.toml"))
        run_reconciliation(config, store)
        store.close()
    yield directory / "state.db"


@pytest.fixture
def book(reconciled: Path, tmp_path: Path) -> Iterator[tuple[Config, Store]]:
    """A copy of the reconciled book of its own, with a config pointing at it."""
    copy = tmp_path / "state.db"
    with closing(sqlite3.connect(reconciled)) as source, closing(sqlite3.connect(copy)) as target:
        source.backup(target)
    config = load_config(str(reconciled.parent / "connector.toml"))
    config = replace(config, database_url=f"sqlite:///{copy}")
    store = open_store(config.database_url)
    yield config, store
    store.close()


def plan(config: Config, store: Store, *, only_changed: bool, day: date = TODAY) -> Settlement:
    with store.session() as session:
        return settle_in_parts(
            config, store, session, actor="plan", cause=AUTOMATIC_CAUSE, today=day, batch=7, only_changed=only_changed
        )


def customers_with_receivables(store: Store) -> set[str]:
    with store.session() as session:
        return {k.customer_id for k in receivable_keys(session) if k.customer_id}


def test_after_a_plan_the_plan_of_what_changed_plans_no_customer_and_changes_nothing(book: Any) -> None:
    config, store = book
    first = plan(config, store, only_changed=True)  # no digest stored yet: every customer
    assert first.unchanged_customers == 0 and first.queued > 0
    customers = customers_with_receivables(store)
    with store.session() as session:
        assert set(inputs.plan_digests(session)) == customers

    again = plan(config, store, only_changed=True)
    assert again.unchanged_customers == len(customers)
    assert (again.derived_count, again.queued, again.cancelled) == (0, 0, [])


def test_a_customer_whose_invoice_moved_is_planned_again_and_only_it(book: Any) -> None:
    config, store = book
    plan(config, store, only_changed=False)
    customers = customers_with_receivables(store)
    invoice = next(i for i in store.list_receivables() if i.customer_id and i.refs and i.due_date)
    ref = invoice.refs[0]
    moved = invoice.model_copy(update={"due_date": invoice.due_date + timedelta(days=3)})
    store.store_page(ref.system, f"{ref.object_type}s", "invoice", [moved], cursor=None)

    # the same outbox as the whole book's plan, with every other customer left unplanned
    whole = settled_rolled_back(store, lambda s: _plan_in(config, store, s, only_changed=False))
    changed = settled_rolled_back(store, lambda s: _plan_in(config, store, s, only_changed=True))
    same_writes_planning_what_changed(whole, changed)
    assert len(customers) - changed["unchanged_customers"] >= 1
    assert changed["unchanged_customers"] >= len(customers) - 2  # it, and a customer a payment ties to it


def test_the_next_day_every_customer_is_planned_again(book: Any) -> None:
    config, store = book
    plan(config, store, only_changed=False)
    assert plan(config, store, only_changed=True).unchanged_customers > 0
    tomorrow = plan(config, store, only_changed=True, day=TODAY + timedelta(days=1))
    assert tomorrow.unchanged_customers == 0  # days past due moved for every open invoice


def test_an_allocation_undone_without_its_settlement_is_planned_like_the_whole_book(book: Any) -> None:
    """An allocation taken back with no settlement of its own (as `withdraw` leaves it, before
    the decision settles): its customer's inputs moved, and the write it stood behind is
    cancelled as the whole book's plan cancels it, every other customer left unplanned."""
    config, store = book
    plan(config, store, only_changed=False)
    with store.session() as session:
        paying = {
            (e.subject_id, e.action.payload["amount"])
            for e in outbox.entries(session, states=("planned",), kinds=("record_payment",))
        }
        made = next(
            s.allocation
            for s in load_allocations(session, status="applied")
            if (s.allocation.invoice_id, str(s.allocation.amount.amount)) in paying
        )
        withdraw(session, [made], "ana", "unmatch", "test", audited=None)
    whole = settled_rolled_back(store, lambda s: _plan_in(config, store, s, only_changed=False))
    changed = settled_rolled_back(store, lambda s: _plan_in(config, store, s, only_changed=True))
    assert whole["cancelled"], "undoing an allocation should leave a write that no longer follows"
    same_writes_planning_what_changed(whole, changed)
    assert changed["unchanged_customers"] > 0


def test_a_customer_left_without_receivables_forgets_its_digest(book: Any) -> None:
    config, store = book
    plan(config, store, only_changed=False)
    with store.session() as session:
        customer = sorted(inputs.plan_digests(session))[0]
        invoices = table("invoices")
        session.execute(invoices.update().where(invoices.c.customer_id == customer).values(customer_id=None))
    plan(config, store, only_changed=True)
    with store.session() as session:
        assert customer not in inputs.plan_digests(session)


def _plan_in(config: Config, store: Store, session: Any, *, only_changed: bool) -> Settlement:
    return settle_in_parts(
        config, store, session, actor="plan", cause=AUTOMATIC_CAUSE, today=TODAY, batch=7, only_changed=only_changed
    )
