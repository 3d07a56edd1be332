"""A reconcile-and-plan tick with nothing new reads a few aggregates and stops; anything the
engine depends on (a record stored, finance's decision, the day, the configuration, an hour
gone by) makes it run again (`pipeline.reconcile_and_plan_if_changed`, what `serve` runs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from connector import pipeline
from connector.config import Config, load_config
from connector.dunning.collections import set_pause
from connector.linking.run import link_all
from connector.model import Action
from connector.providers.registry import installed
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.sandbox.generator_traps import generate_traps
from connector.state import Store
from connector.state.tables import json_text, table
from support.databases import writes_during
from support.e2e import sync_sandbox, with_credentials


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Config, Store]]:
    book = with_credentials(generate(7, "small", today=date.today()).data)
    directory = tmp_path_factory.mktemp("marks")
    with Sandbox(book, limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, directory, full=True)
        assert report.ok
        config = load_config(str(directory / "connector.toml"))
        yield directory, config, store
        store.close()


def settle(config: Config, store: Store, today: date | None = None) -> None:
    """Run until a tick finds nothing new: after a change the engine's own writes take one
    more run to settle (`test_after_a_change_the_engine_runs_at_most_twice_then_stops`)."""
    for _ in range(4):
        if isinstance(pipeline.reconcile_and_plan_if_changed(config, store, today=today), pipeline.EngineSkip):
            return
    raise AssertionError("the engine still changes the book after three runs with nothing new")


def count_calls(monkeypatch: pytest.MonkeyPatch, *names: str) -> list[str]:
    """A list that gains the name of each of the pipeline's `names` each time it is called."""
    called: list[str] = []

    def counting(name: str) -> Any:
        real = getattr(pipeline, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            called.append(name)
            return real(*args, **kwargs)

        return counted

    for name in names:
        monkeypatch.setattr(pipeline, name, counting(name))
    return called


def count_whole_links(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A list that gains an item each time the pipeline runs a link pass (`link_book`)."""
    return count_calls(monkeypatch, "link_book")


def move_a_due_date(store: Store, *, days: int) -> None:
    """A provider's invoice changes (its due date moves by `days`) and a sync stores it."""
    invoice = next(i for i in store.list_invoices() if i.refs and i.due_date is not None)
    assert invoice.due_date is not None
    ref = invoice.refs[0]
    changed = invoice.model_copy(update={"due_date": invoice.due_date + timedelta(days=days)})
    store.store_page(ref.system, f"{ref.object_type}s", "invoice", [changed], cursor=None)


def test_a_tick_with_nothing_new_writes_nothing_and_says_since_when(synced: tuple[Path, Config, Store]) -> None:
    _, config, store = synced
    settle(config, store)
    results: list[Any] = []
    assert writes_during(store, lambda: results.append(pipeline.reconcile_and_plan_if_changed(config, store))) == []
    [skip] = results
    assert isinstance(skip, pipeline.EngineSkip)
    assert str(skip).startswith("nothing changed since the run of ")
    # a sync that brings nothing new leaves it so
    pipeline.sync(config, store)
    settle(config, store)
    assert isinstance(pipeline.reconcile_and_plan_if_changed(config, store), pipeline.EngineSkip)


def test_finance_pausing_a_customer_runs_the_engine_again(synced: tuple[Path, Config, Store]) -> None:
    _, config, store = synced
    settle(config, store)
    customer = store.list_customers()[0]
    assert customer.id is not None
    set_pause(store, customer.id, paused=True, user="ana", reason="talking to them", crm_systems=[])
    assert not isinstance(pipeline.reconcile_and_plan_if_changed(config, store), pipeline.EngineSkip)
    set_pause(store, customer.id, paused=False, user="ana", reason="settled", crm_systems=[])
    settle(config, store)


def test_a_record_changed_at_the_provider_runs_the_engine_again(synced: tuple[Path, Config, Store]) -> None:
    _, config, store = synced
    settle(config, store)
    move_a_due_date(store, days=1)
    assert not isinstance(pipeline.reconcile_and_plan_if_changed(config, store), pipeline.EngineSkip)


def test_the_next_day_a_changed_setting_or_an_hour_runs_the_engine_again(
    synced: tuple[Path, Config, Store],
) -> None:
    directory, config, store = synced
    settle(config, store)
    tomorrow = date.today() + timedelta(days=1)
    assert not isinstance(pipeline.reconcile_and_plan_if_changed(config, store, today=tomorrow), pipeline.EngineSkip)
    settle(config, store)

    path = directory / "connector.toml"
    text = path.read_text()
    path.write_text(text + "\n[reconcile]\nauto_threshold = 0.99\n")
    try:
        stricter = load_config(str(path))
        assert stricter.reconcile != config.reconcile
        assert not isinstance(pipeline.reconcile_and_plan_if_changed(stricter, store), pipeline.EngineSkip)
    finally:
        path.write_text(text)
    settle(config, store)

    # the mark is an hour old: a full pass, whatever the aggregates say
    value = json.loads(store.get_cursor(*pipeline.ENGINE_MARK) or "{}")
    value["at"] = (datetime.now(UTC) - pipeline.FULL_PASS_EVERY - timedelta(seconds=1)).isoformat()
    store.set_cursor(*pipeline.ENGINE_MARK, json.dumps(value))
    assert not isinstance(pipeline.reconcile_and_plan_if_changed(config, store), pipeline.EngineSkip)


def test_the_mark_holds_no_secret(synced: tuple[Path, Config, Store]) -> None:
    _, config, store = synced
    settle(config, store)
    stored = store.get_cursor(*pipeline.ENGINE_MARK) or ""
    assert set(json.loads(stored)) == {"mark", "at"}
    secrets = [
        value.get_secret_value()
        for connection in config.connections.values()
        for value in vars(connection.settings).values()
        if isinstance(value, SecretStr)
    ]
    assert "sk_test_sandbox_demo" in secrets
    assert not any(secret in stored for secret in secrets)
    # and the digest does not move with a secret: a rotated key is not a change of the book
    rotated = {
        name: replace(c, settings=c.settings.model_copy(update={"api_key": SecretStr("sk_test_other")}))
        if hasattr(c.settings, "api_key")
        else c
        for name, c in config.connections.items()
    }
    assert rotated != config.connections
    today, registry = date.today(), installed()
    assert pipeline.engine_mark(replace(config, connections=rotated), store, registry, today) == pipeline.engine_mark(
        config, store, registry, today
    )


def test_a_sync_that_stores_nothing_new_links_nothing_and_full_links_anyway(
    synced: tuple[Path, Config, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, config, store = synced
    pipeline.sync(config, store)  # whatever the last tests left: linked, and its mark stored
    pipeline.sync(config, store)
    linked = count_calls(monkeypatch, "link")
    report = pipeline.sync(config, store)
    assert report.ok and linked == [] and report.links == {}

    move_a_due_date(store, days=2)
    pipeline.sync(config, store)
    assert linked == ["link"]
    pipeline.sync(config, store, full=True)
    assert linked == ["link", "link"]


def test_linking_runs_again_only_when_a_view_moved_or_the_systems_changed(
    synced: tuple[Path, Config, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, config, store = synced
    settle(config, store)
    for _ in range(3):  # until whatever the earlier tests left has been linked
        pipeline.link(config, store)
    linked = count_whole_links(monkeypatch)
    assert pipeline.link(config, store).counts() == {}
    assert linked == []
    # finance's decision moves the book, not a view: the engine runs, linking does not
    customer = store.list_customers()[0]
    assert customer.id is not None
    set_pause(store, customer.id, paused=True, user="ana", reason="talking to them", crm_systems=[])
    assert not isinstance(pipeline.reconcile_and_plan_if_changed(config, store), pipeline.EngineSkip)
    assert linked == []
    set_pause(store, customer.id, paused=False, user="ana", reason="settled", crm_systems=[])

    move_a_due_date(store, days=3)
    pipeline.link(config, store)
    assert linked == ["link_book"]
    for _ in range(2):  # its own writes (the kind stamped on the view stored by hand) once more
        pipeline.link(config, store)
    assert linked == ["link_book", "link_book"]

    path = directory / "connector.toml"
    text = path.read_text()
    assert "[connections.crm]" in text
    path.write_text(text.replace("[connections.crm]", "[connections.crm]\nsource_priority = 9", 1))
    try:
        pipeline.link(load_config(str(path)), store)
        assert len(linked) == 3
    finally:
        path.write_text(text)
    pipeline.link(config, store, full=True)
    assert len(linked) == 4
    settle(config, store)


@pytest.mark.parametrize("book_of", ["small 11", "small 29", "traps 3", "traps 8"])
def test_linking_its_own_merges_leaves_the_views_mark_and_is_not_run_again(
    book_of: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first link of a book merges most of it; the sync after it, with nothing new, must not
    read the whole book again to find that linking the merged views links nothing (the trap
    books: customers and invoices that look alike, deals without numbers, shared numbers)."""
    kind, seed = book_of.split()
    scenario = generate(int(seed), "small", today=date.today()) if kind == "small" else generate_traps(int(seed))
    book = with_credentials(scenario.data)
    with Sandbox(book, limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, tmp_path, full=True, then_link=False)
    try:
        assert report.ok
        config = load_config(str(tmp_path / "connector.toml"))
        before = store.views_position()
        first = pipeline.link(config, store).counts()
        assert first["customer"] > 0 and first["invoice"] > 0 and first["payment"] > 0
        assert store.views_position() == before
        linked = count_whole_links(monkeypatch)
        assert pipeline.link(config, store).counts() == {}
        assert linked == []
        # and it is right not to: a whole pass over the merged views links nothing more
        assert link_all(config, store).counts() == {"customer": 0, "invoice": 0, "payment": 0}
    finally:
        store.close()


def test_pulling_every_record_again_after_linking_writes_no_view(
    synced: tuple[Path, Config, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linking merges records, which leaves the stored views naming the merged ids; a full pull
    of the same book must find them unchanged (not write half the book's views again, moving
    the marks, so that the next run links and reconciles the whole book), while a record the
    provider did change is still written."""
    _, config, store = synced
    pipeline.sync(config, store, full=True)  # what the other tests stored by hand, as the sandbox has it
    settle(config, store)
    refs = table("refs")
    with store.session() as session:
        stale = session.execute(
            sa.select(sa.func.count()).where(refs.c.entity_id != json_text(refs.c.data, "id"))
        ).scalar_one()
    assert stale > 10  # what the merges left: views naming their record's old id
    before = store.views_position()
    linked = count_whole_links(monkeypatch)
    report = pipeline.sync(config, store, full=True)
    assert report.ok and sum(s.stored for s in report.streams) > 100
    assert store.views_position() == before
    assert linked == ["link_book"]  # `--full` links anyway; a plain sync would not have
    pipeline.sync(config, store)
    assert linked == ["link_book"]
    # a merged record the provider changed is written, the marks move
    with store.session() as session:
        merged = session.execute(
            sa.select(refs.c.entity_id).where(
                refs.c.entity_kind == "invoice", refs.c.entity_id != json_text(refs.c.data, "id")
            )
        ).first()
    assert merged is not None
    invoice = store.get_invoice(merged[0])
    assert invoice is not None and invoice.due_date is not None
    ref = invoice.refs[0]
    moved = invoice.model_copy(update={"due_date": invoice.due_date + timedelta(days=1)})
    store.store_page(ref.system, f"{ref.object_type}s", "invoice", [moved], cursor=None)
    assert store.views_position() != before


def test_reconcile_after_a_plan_with_nothing_new_skips_and_what_it_reads_runs_it(
    synced: tuple[Path, Config, Store],
) -> None:
    """`connector reconcile` keeps a mark of what it reads (`RECONCILE_READS`): a plan's and the
    reminders' writes and audit entries do not make it match the whole book again; a record
    stored, or a ledger payment being taken back (a `delete_payment` write), does."""
    _, config, store = synced
    settle(config, store)
    pipeline.reconcile_if_changed(config, store, full=True)
    actions = table("outbox_actions")
    with store.session() as session:  # a write the plan derives is gone: it queues it again
        planned = session.execute(
            sa.select(actions.c.id).where(actions.c.state == "planned", actions.c.kind != "delete_payment").limit(1)
        ).scalar_one()
        session.execute(sa.delete(actions).where(actions.c.id == planned))
    assert isinstance(pipeline.reconcile_if_changed(config, store), pipeline.EngineSkip)
    before = store.book_position()
    pipeline.plan_if_changed(config, store, full=True)
    assert store.book_position() != before  # the plan wrote
    assert isinstance(pipeline.reconcile_if_changed(config, store), pipeline.EngineSkip)
    move_a_due_date(store, days=2)
    assert not isinstance(pipeline.reconcile_if_changed(config, store), pipeline.EngineSkip)

    payment = next(p for p in store.list_payments() if p.refs)
    ref = payment.refs[0]
    store.add_actions([Action(connection=ref.system, kind="delete_payment", target=ref, payload={"why": "undone"})])
    assert not isinstance(pipeline.reconcile_if_changed(config, store), pipeline.EngineSkip)
    # its own writes (the payment is open again: a proposal) make it run once more, then skip
    assert any(isinstance(pipeline.reconcile_if_changed(config, store), pipeline.EngineSkip) for _ in range(2))
    with store.session() as session:
        session.execute(sa.delete(actions).where(actions.c.kind == "delete_payment"))
    settle(config, store)


def test_after_a_change_the_engine_runs_at_most_twice_then_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change runs the engine (here a first sync: everything to reconcile, write back and
    remind); its own writes run it once more, which finds nothing new and so writes nothing (a
    reminder it queued is not recorded again as skipped); the next tick stops at the mark. Two
    whole passes a change, not three (on the large book a pass is about three minutes)."""
    book = with_credentials(generate(7, "small", today=date.today()).data)
    with Sandbox(book, limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, tmp_path, full=True)
        assert report.ok
        config = load_config(str(tmp_path / "connector.toml"))
        try:
            first = pipeline.reconcile_and_plan_if_changed(config, store)
            assert not isinstance(first, pipeline.EngineSkip)
            reminders = [a for a in store.list_actions(state="planned") if a.payload.get("dunning_role") == "message"]
            assert reminders, "the first run queued reminders"
            second = pipeline.reconcile_and_plan_if_changed(config, store)
            assert not isinstance(second, pipeline.EngineSkip)  # the first run's own writes
            third = pipeline.reconcile_and_plan_if_changed(config, store)
            assert isinstance(third, pipeline.EngineSkip), "a third whole pass after one change"
            # a sync with nothing new after the engine's passes links nothing, copies no
            # provider's states and takes no ledger record: what linking reads did not move
            # (`LINK_READS`) since the engine's own link
            linked = count_calls(monkeypatch, "link_book", "apply_provider_states", "take_ledger_records")
            assert pipeline.sync(config, store).ok
            assert linked == []
        finally:
            store.close()


def test_each_stage_that_reads_the_book_has_its_statistics_refreshed_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL plans a stage's queries from its statistics of the tables (`Store.keep_statistics`,
    `state.statistics`): they are refreshed after the pull, before linking, before reconciling
    (the link just wrote), and before dunning reads the writes the plan just queued."""
    book = with_credentials(generate(3, "small", today=date.today()).data)
    with Sandbox(book, limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, tmp_path, full=True, then_link=False)
        assert report.ok
        config = load_config(str(tmp_path / "connector.toml"))
        steps = count_calls(monkeypatch, "link_book", "run_reconciliation", "queue_writes", "queue_reminders")

        def refreshed(_self: Store) -> list[str]:
            steps.append("statistics")
            return []

        monkeypatch.setattr(Store, "keep_statistics", refreshed)
        pipeline.reconcile_and_plan(config, store)
        store.close()
    assert steps == [
        "statistics",
        "link_book",
        "statistics",
        "run_reconciliation",
        "statistics",
        "queue_writes",
        "statistics",
        "queue_reminders",
    ]
