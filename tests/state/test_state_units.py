"""Work units of `connector serve`: schedule ticks and webhook requests kept apart, leases
kept by a heartbeat, a lost lease that marks nothing, and a unit handed back undone at shutdown.

Runs on SQLite and on PostgreSQL (the `store` fixture). The lease clock is `state.units.utcnow`,
moved by hand, so no test waits for a lease to run out.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.state import Store
from connector.state import units as work

LEASE = timedelta(minutes=10)
PULL = "pull:gateway:charges"
RECONCILE = "reconcile"
T0 = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The time the work-unit functions see: `clock[0]`, moved by the test."""
    now = [T0]
    monkeypatch.setattr(work, "utcnow", lambda: now[0])
    return now


def setup_units(store: Store, tick: int) -> None:
    with store.session() as session:
        work.ensure_units(session, [(PULL, "pull", "gateway", "charges"), (RECONCILE, "reconcile", None, None)])
        work.schedule_tick(session, [PULL, RECONCILE], tick)


def claim(store: Store, worker: str, kind: str = "pull") -> list[work.Unit]:
    with store.session() as session:
        return work.claim(session, worker, lease=LEASE, kinds=(kind,))


def finish(store: Store, unit: work.Unit, worker: str) -> bool:
    with store.session() as session:
        return work.finish(session, unit, worker, error=None)


def request(store: Store, *names: str) -> None:
    with store.session() as session:
        work.make_due_now(session, list(names))


def row(store: Store, name: str) -> work.UnitRow:
    with store.session() as session:
        return next(r for r in work.units(session) if r["unit"] == name)


def run_once(store: Store, worker: str = "host:1", kind: str = "pull") -> work.Unit:
    [unit] = claim(store, worker, kind)
    assert finish(store, unit, worker)
    return unit


def test_webhook_pulls_never_use_up_the_scheduled_ticks(store: Store, clock: list[datetime]) -> None:
    setup_units(store, 1000)
    run_once(store)
    run_once(store, kind="reconcile")
    for _ in range(5):  # five webhooks, each pulled before the next arrives
        request(store, PULL, RECONCILE)
        run_once(store)
        run_once(store, kind="reconcile")
    assert (row(store, PULL)["due_tick"], row(store, RECONCILE)["due_tick"]) == (1000, 1000)
    assert claim(store, "host:1") == []  # nothing owed until the schedule says so

    with store.session() as session:
        work.schedule_tick(session, [PULL, RECONCILE], 1001)
    [pulled] = claim(store, "host:2")  # the next scheduled tick runs on time
    assert pulled.unit == PULL and finish(store, pulled, "host:2")
    assert [u.unit for u in claim(store, "host:2", "reconcile")] == [RECONCILE]


def test_the_reconcile_waits_until_every_pull_of_the_tick_is_done(store: Store, clock: list[datetime]) -> None:
    """A worker that runs out of pulls while another still pulls must not plan from half a
    tick: the reconcile is claimable only once no pull is due or running."""
    setup_units(store, 1000)
    [pulling] = claim(store, "host:1")
    assert claim(store, "host:2", "reconcile") == []
    with store.session() as session:
        assert work.pulls_pending(session) == 1
    assert finish(store, pulling, "host:1")
    with store.session() as session:
        assert work.pulls_pending(session) == 0
    assert [u.unit for u in claim(store, "host:2", "reconcile")] == [RECONCILE]


def test_a_webhook_during_a_pull_makes_the_unit_due_again_after_it(store: Store, clock: list[datetime]) -> None:
    setup_units(store, 1000)
    [unit] = claim(store, "host:1")
    request(store, PULL)  # the event came after the pages this pull may already have read
    assert finish(store, unit, "host:1")

    [again] = claim(store, "host:2")
    assert again.unit == PULL and again.due_tick == 1000
    assert finish(store, again, "host:2")
    assert claim(store, "host:1") == []  # served: due no more until the next tick or request
    assert row(store, PULL)["runs"] == 2


def test_a_webhook_for_a_unit_already_due_costs_one_pull(store: Store, clock: list[datetime]) -> None:
    setup_units(store, 1000)
    request(store, PULL)
    request(store, PULL)
    run_once(store)
    assert claim(store, "host:1") == []


def test_a_heart_beating_worker_keeps_its_unit_past_the_first_lease(store: Store, clock: list[datetime]) -> None:
    setup_units(store, 1000)
    [unit] = claim(store, "host:1")
    clock[0] = T0 + LEASE * 0.8
    with store.session() as session:
        assert work.renew(session, PULL, "host:1", lease=LEASE)
    clock[0] = T0 + LEASE * 1.5  # past the lease it claimed with, within the renewed one

    assert claim(store, "host:2") == []
    assert finish(store, unit, "host:1")
    assert row(store, PULL)["done_tick"] == 1000 and row(store, PULL)["owner"] is None


def test_a_worker_that_lost_its_lease_marks_nothing_done(store: Store, clock: list[datetime]) -> None:
    setup_units(store, 1000)
    [slow] = claim(store, "host:1")
    clock[0] = T0 + LEASE * 1.5  # no heartbeat: the lease ran out
    [taken] = claim(store, "host:2")
    assert taken.unit == PULL

    with store.session() as session:
        assert not work.renew(session, PULL, "host:1", lease=LEASE)
    assert not finish(store, slow, "host:1")
    assert row(store, PULL)["owner"] == "host:2" and row(store, PULL)["done_tick"] < 1000

    assert finish(store, taken, "host:2")
    assert row(store, PULL)["done_tick"] == 1000 and row(store, PULL)["runs"] == 1


def test_a_unit_handed_back_at_shutdown_is_claimed_again_at_once(store: Store, clock: list[datetime]) -> None:
    setup_units(store, 1000)
    [unit] = claim(store, "host:1")
    with store.session() as session:
        assert work.release(session, unit, "host:1")
    assert row(store, PULL)["owner"] is None and row(store, PULL)["runs"] == 0

    [resumed] = claim(store, "host:2")  # the restarted worker, in the same tick
    assert resumed.unit == PULL
    assert finish(store, resumed, "host:2")
    assert row(store, PULL)["done_tick"] == 1000
