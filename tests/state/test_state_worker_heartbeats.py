"""Workers' heartbeats: a unit held by a worker whose heartbeat ran out is taken over at once,
whatever its lease says; a beating worker keeps its unit; a worker of an older release (no
heartbeat row) keeps it until its lease runs out; and the SQLite guard's clean-up of what the
dead held, including the 3,650-day lock row of older releases.

Runs on SQLite and on PostgreSQL (the `store` fixture); the clock is `state.units.utcnow`,
moved by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.state import Store
from connector.state import units as work

LEASE = timedelta(minutes=10)
TIMEOUT = timedelta(seconds=60)
PULL = "pull:gateway:charges"
T0 = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    now = [T0]
    monkeypatch.setattr(work, "utcnow", lambda: now[0])
    return now


def held_by(store: Store, worker: str) -> None:
    """PULL due and claimed by `worker`, with a ten-minute lease."""
    with store.session() as session:
        work.ensure_units(session, [(PULL, "pull", "gateway", "charges")])
        work.schedule_tick(session, [PULL], 1)
        assert [u.unit for u in work.claim(session, worker, lease=LEASE, kinds=("pull",))] == [PULL]


def beat(store: Store, worker: str) -> None:
    with store.session() as session:
        work.beat(session, worker, timeout=TIMEOUT)


def claim(store: Store, worker: str) -> list[work.Unit]:
    with store.session() as session:
        return work.claim(session, worker, lease=LEASE, kinds=("pull",))


def test_a_unit_of_a_worker_whose_heartbeat_stopped_is_taken_over_at_once(store, clock):
    beat(store, "host-a:1")
    held_by(store, "host-a:1")
    clock[0] = T0 + timedelta(seconds=59)
    assert claim(store, "host-b:2") == []  # still within its heartbeat timeout
    clock[0] = T0 + timedelta(seconds=75)  # no beat for 75 s; its lease has 8.75 minutes left
    [unit] = claim(store, "host-b:2")
    assert (unit.unit, unit.taken_from, unit.silent_for) == (PULL, "host-a:1", timedelta(seconds=75))
    with store.session() as session:
        assert work.renew(session, PULL, "host-a:1", lease=LEASE) is False  # the old owner learns it lost it
        assert work.silent_workers(session, ["host-a:1", "host-b:2"]) == ["host-a:1"]


def test_a_beating_worker_keeps_its_unit_for_the_whole_lease(store, clock):
    held_by(store, "host-a:1")
    for seconds in range(0, 9 * 60, 30):
        clock[0] = T0 + timedelta(seconds=seconds)
        beat(store, "host-a:1")
        assert claim(store, "host-b:2") == []
    clock[0] = T0 + LEASE + timedelta(seconds=1)  # the lease stays the upper bound
    beat(store, "host-a:1")
    [unit] = claim(store, "host-b:2")
    assert unit.taken_from == "host-a:1" and unit.silent_for is None


def test_a_worker_without_a_heartbeat_row_keeps_its_unit_until_its_lease_runs_out(store, clock):
    held_by(store, "old-release:7")  # a worker of a release before heartbeats
    clock[0] = T0 + timedelta(minutes=9)
    assert claim(store, "host-b:2") == []
    with store.session() as session:
        assert work.silent_workers(session, ["old-release:7"]) == []
    clock[0] = T0 + LEASE + timedelta(seconds=1)
    assert [u.taken_from for u in claim(store, "host-b:2")] == ["old-release:7"]


def test_a_worker_stopping_cleanly_drops_its_heartbeat_and_heartbeats_are_not_units(store, clock):
    beat(store, "host-a:1")
    beat(store, "host-b:2")
    with store.session() as session:
        assert {b.worker for b in work.workers(session)} == {"host-a:1", "host-b:2"}
        assert work.units(session) == []  # a heartbeat row is no work unit
        work.forget_worker(session, "host-a:1")
        assert [b.worker for b in work.workers(session)] == ["host-b:2"]


def test_a_long_silent_worker_holding_nothing_is_forgotten(store, clock):
    beat(store, "gone:1")
    beat(store, "gone-but-holding:2")
    held_by(store, "gone-but-holding:2")
    clock[0] = T0 + work.PRUNE_SILENT + timedelta(minutes=5)
    beat(store, "host-b:2")
    with store.session() as session:
        assert {b.worker for b in work.workers(session)} == {"gone-but-holding:2", "host-b:2"}


def test_the_sole_worker_of_a_database_hands_back_what_the_dead_held(store, clock):
    with store.session() as session:  # the lock row of older releases: 3,650 days
        work.ensure_units(session, [(work.OLD_SERVICE_LOCK, "lock", None, None)])
        work.claim(session, "old-host:9", lease=timedelta(days=3650), kinds=("lock",))
    beat(store, "host-a:1")
    held_by(store, "host-a:1")
    with store.session() as session:
        assert work.clear_dead_holds(session, "host-c:3") == [PULL]
        assert work.silent_workers(session, ["host-a:1"]) == ["host-a:1"]  # its outbox claims are free too
        rows = work.units(session)
    assert [(r["unit"], r["owner"], r["lease_until"]) for r in rows] == [(PULL, None, None)]
    [unit] = claim(store, "host-c:3")
    assert unit.taken_from is None
