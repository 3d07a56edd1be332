"""The automatic plan of what changed (issue #18): a customer whose inputs are the ones its last
plan was derived from is not planned again, and the outbox is left as a whole-book plan would
leave it (`settle_in_parts(only_changed=True)`, `connector.writeback.unchanged`)."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connector.config import Config, load_config
from connector.dunning.run import queue as queue_reminders
from connector.model import Allocation, Payment, Ref
from connector.money import Money
from connector.reconcile.decisions import withdraw
from connector.reconcile.run import run_reconciliation
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state import Store, open_store, outbox
from connector.state import plan_inputs as inputs
from connector.state.plan_inputs import NO_CUSTOMER
from connector.state.reconciliation import load_allocations, reduce_allocation, save_allocations
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
        assert set(inputs.plan_digests(session)) - {NO_CUSTOMER} == customers

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
    whole, changed = _both_ways(config, store)
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
        withdraw(session, [_allocation_with_a_planned_write(session)], "ana", "unmatch", "test", audited=None)
    whole, changed = _both_ways(config, store)
    assert whole["cancelled"], "undoing an allocation should leave a write that no longer follows"
    same_writes_planning_what_changed(whole, changed)
    assert changed["unchanged_customers"] > 0


def test_an_allocation_whose_amount_changed_is_planned_like_the_whole_book(book: Any) -> None:
    """Only the allocation moved (no record, no view): its write's amount follows it."""
    config, store = book
    plan(config, store, only_changed=False)
    with store.session() as session:
        made = _allocation_with_a_planned_write(session)
        reduce_allocation(session, made.id or "", Money.from_minor(made.amount.to_minor() // 2, made.amount.currency))
    whole, changed = _both_ways(config, store)
    assert whole["cancelled"] and whole["queued"], "a halved allocation should replace its write"
    same_writes_planning_what_changed(whole, changed)
    assert changed["unchanged_customers"] > 0


def test_a_crm_write_a_sync_did_not_find_back_is_planned_again(book: Any) -> None:
    """Our CRM update was done; a sync then read the record and found its view unchanged (the
    CRM does not hold what we wrote: someone set it back): only when the record was read moved,
    and the update follows again, with a key of its own, as the whole book's plan has it."""
    config, store = book
    plan(config, store, only_changed=False)
    with store.session() as session:
        [update] = outbox.entries(session, states=("planned",), kinds=("update_properties",))[:1]
        assert outbox.set_state(session, update.id, "done", from_states=("planned",))
    assert plan(config, store, only_changed=True).queued == 0  # done, and not read back yet
    target = update.action.target
    assert target is not None
    refs = table("refs")
    with store.session() as session:
        session.execute(
            refs.update()
            .where(refs.c.system == target.system, refs.c.remote_id == target.remote_id)
            .values(seen_at=datetime.now(UTC) + timedelta(seconds=1))
        )
    whole, changed = _both_ways(config, store)
    assert whole["queued"] == 1, "the update the CRM did not keep should be queued again"
    same_writes_planning_what_changed(whole, changed)
    assert changed["unchanged_customers"] > 0


def test_a_reminder_sent_is_planned_like_the_whole_book(book: Any) -> None:
    """A reminder's message done: the CRM's last reminder date of its invoices follows."""
    config, store = book
    queue_reminders(config, store, TODAY)
    plan(config, store, only_changed=False)
    in_the_crm = {i.id for i in store.list_receivables() if any(r.system == "crm" for r in i.refs)}
    with store.session() as session:
        message = next(  # a reminder of an invoice the CRM holds (not every invoice has a deal)
            m
            for m in outbox.entries(session, states=("planned",))
            if m.action.payload.get("dunning_role") == "message"
            and in_the_crm.intersection(m.action.payload["dunning_invoices"])
        )
        assert outbox.set_state(session, message.id, "done", from_states=("planned",))
    whole, changed = _both_ways(config, store)
    assert whole["queued"], "the invoices reminded should have their last reminder written to the CRM"
    same_writes_planning_what_changed(whole, changed)
    assert changed["unchanged_customers"] > 0


def test_a_payment_that_moved_is_planned_like_the_whole_book(book: Any) -> None:
    """A payment a gateway now says was received a day earlier: the ledger payment written for
    it follows, though nothing of its invoice moved."""
    config, store = book
    plan(config, store, only_changed=False)
    with store.session() as session:
        made = _allocation_with_a_planned_write(session)
    [payment] = store.list_payments(ids=[made.payment_id])
    ref = next(r for r in payment.refs if r.system == "gateway")
    earlier = payment.model_copy(update={"received_at": payment.received_at - timedelta(days=1)})
    store.store_page(ref.system, f"{ref.object_type}s", "payment", [earlier], cursor=None)
    whole, changed = _both_ways(config, store)
    assert whole["cancelled"] and whole["queued"], "the ledger payment's date should follow the payment's"
    same_writes_planning_what_changed(whole, changed)
    assert changed["unchanged_customers"] > 0


def test_an_invoice_row_changed_without_its_views_is_planned_like_the_whole_book(book: Any) -> None:
    """An invoice's stored figures moved with no view of it written again (as linking or
    finance change a row in place): its customer is planned again."""
    config, store = book
    plan(config, store, only_changed=False)
    invoices = table("invoices")
    with store.session() as session:
        update = next(
            e
            for e in outbox.entries(session, states=("planned",), kinds=("update_properties",))
            if e.action.payload["properties"].get("payment_status") in ("open", "partially_paid")
        )
        session.execute(
            invoices.update()
            .where(invoices.c.id == update.subject_id)
            .values(amount_paid_minor=invoices.c.total_minor - invoices.c.amount_credited_minor, status="paid")
        )
    whole, changed = _both_ways(config, store)
    assert whole["cancelled"] and whole["queued"], "an invoice paid in full should change its CRM write"
    same_writes_planning_what_changed(whole, changed)
    assert changed["unchanged_customers"] > 0


def test_an_invoice_escalated_to_collections_leaves_its_customer_unplanned(book: Any) -> None:
    """Dunning's escalation flags invoices `in_collections` after the plan of the same pass:
    no write the plan derives reads the flag, so its customer is not planned again for it, and
    the outbox is left as the whole book's plan leaves it (were a write to read the flag, the
    comparison would fail)."""
    config, store = book
    plan(config, store, only_changed=False)
    customers = customers_with_receivables(store)
    invoices = table("invoices")
    with store.session() as session:
        session.execute(invoices.update().values(in_collections=True))
    whole, changed = _both_ways(config, store)
    same_writes_planning_what_changed(whole, changed)
    assert changed["unchanged_customers"] == len(customers)


def test_a_payment_entered_by_hand_in_the_ledger_is_planned_like_the_whole_book(book: Any) -> None:
    """Finance records in the ledger the payment our write-back was about to record: a ledger
    payment on the invoice, which no allocation names, and the write it stands for is no
    longer derived, as the whole book's plan has it."""
    config, store = book
    plan(config, store, only_changed=False)
    with store.session() as session:
        made = _allocation_with_a_planned_write(session)
    [payment] = store.list_payments(ids=[made.payment_id])
    [invoice] = store.list_invoices(ids=[made.invoice_id])
    ledger = next(r for r in invoice.refs if r.system == "ledger")
    by_hand = Payment(
        amount=made.amount,
        received_at=payment.received_at,
        customer_id=payment.customer_id,
        refs=[Ref(system="ledger", object_type="payment", remote_id="entered-by-hand-1")],
    )
    extras = {
        "entered-by-hand-1": {"links": {"invoice": ledger.remote_id}, "hints": {}, "deleted": False, "kind": "ledger"}
    }
    store.store_page("ledger", "payments", "payment", [by_hand], cursor=None, extras=extras)
    whole, changed = _both_ways(config, store)
    assert whole["cancelled"], "the write finance entered by hand should no longer follow"
    same_writes_planning_what_changed(whole, changed)
    assert changed["unchanged_customers"] > 0


def test_a_fee_only_another_customer_derived_goes_when_its_allocation_does(book: Any) -> None:
    """A payment allocated to invoices of two customers, whose fee only the second one's
    allocation writes (the ledger holds the first part already): when the second allocation
    is taken back, the fee no longer follows, though nothing of the first customer moved."""
    config, store = book
    plan(config, store, only_changed=False)
    with store.session() as session:
        fees = {e.subject_id for e in outbox.entries(session, states=("planned",), kinds=("record_fee",))}
        made = _allocations_with_a_planned_write(session)
        applied = Counter(s.allocation.payment_id for s in load_allocations(session, status="applied"))
        # a payment whose fee only this allocation writes (not every payment is allocated whole)
        first = next(a for a in made if a.payment_id in fees and applied[a.payment_id] == 1)
    [payment] = store.list_payments(ids=[first.payment_id])
    [invoice] = store.list_invoices(ids=[first.invoice_id])
    other = next(
        i
        for i in store.list_receivables()
        if i.customer_id not in (None, invoice.customer_id)
        and i.currency == invoice.currency
        and any(r.system == "ledger" for r in i.refs)
    )
    second = Allocation(
        payment_id=payment.id or "",
        invoice_id=other.id or "",
        amount=Money.from_minor(1, payment.amount.currency),
        rule="manual",
        confidence=Decimal(1),
        confirmed_by="ana",
    )
    ledger = next(r for r in invoice.refs if r.system == "ledger")
    held = payment.model_copy(update={"refs": [Ref(system="ledger", object_type="payment", remote_id="held-part-1")]})
    extras = {"held-part-1": {"links": {"invoice": ledger.remote_id}, "hints": {}, "deleted": False, "kind": "ledger"}}
    with store.session() as session:
        save_allocations(session, [second.model_copy(update={"id": "second-part"})], "applied")
    store.store_page("ledger", "payments", "payment", [held], cursor=None, extras=extras)
    plan(config, store, only_changed=False)
    with store.session() as session:
        assert any(
            e.subject_id == payment.id for e in outbox.entries(session, states=("planned",), kinds=("record_fee",))
        )
        withdraw(session, [second.model_copy(update={"id": "second-part"})], "ana", "unmatch", "test", audited=None)
    whole, changed = _both_ways(config, store)
    assert [k for k in whole["cancelled"] if k in fee_keys(store, payment.id or "")], "the fee should no longer follow"
    same_writes_planning_what_changed(whole, changed)


def fee_keys(store: Store, payment_id: str) -> set[str]:
    with store.session() as session:
        return {
            e.action.idempotency_key
            for e in outbox.entries(session, kinds=("record_fee",))
            if e.subject_id == payment_id
        }


def _allocation_with_a_planned_write(session: Any) -> Allocation:
    """An applied allocation the book's plan queued a ledger payment for."""
    return next(iter(_allocations_with_a_planned_write(session)))


def _allocations_with_a_planned_write(session: Any) -> list[Allocation]:
    """The applied allocations the book's plan queued a ledger payment for."""
    paying = {
        (e.subject_id, e.action.payload["amount"])
        for e in outbox.entries(session, states=("planned",), kinds=("record_payment",))
    }
    return [
        s.allocation
        for s in load_allocations(session, status="applied")
        if (s.allocation.invoice_id, str(s.allocation.amount.amount)) in paying
    ]


def _both_ways(config: Config, store: Store) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the whole book's plan and the plan of what changed would do now (neither kept)."""
    whole = settled_rolled_back(store, lambda s: _plan_in(config, store, s, only_changed=False))
    return whole, settled_rolled_back(store, lambda s: _plan_in(config, store, s, only_changed=True))


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
