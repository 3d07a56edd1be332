"""Work units of `connector serve`: schedule ticks and webhook requests kept apart, leases
kept by a heartbeat, a lost lease that marks nothing, a unit handed back undone at shutdown,
each company's reconcile gated by its own pulls only, and units no longer declared retired.

Runs on SQLite and on PostgreSQL (the `store` fixture). The lease clock is `state.units.utcnow`,
moved by hand, so no test waits for a lease to run out.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from connector.state import Store, open_store
from connector.state import units as work
from support.databases import pg_engine_in_temporary_schema, postgres_url_or_fail

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


@pytest.mark.postgres
def test_a_reconcile_claimed_as_the_last_pull_finishes_is_stamped_after_it() -> None:
    """On PostgreSQL a pull can finish while another worker is claiming the reconcile (between
    the claim's first clock read and its query). The reconcile may then start (the pull is
    done), and its recorded start must not read as earlier than that pull's success: the
    service's own order check and anyone reading the units would see a plan made before its
    data arrived. SQLite serialises the two (`BEGIN IMMEDIATE`), so only PostgreSQL can race."""
    with pg_engine_in_temporary_schema(postgres_url_or_fail()) as engine:
        store = open_store(engine)
        setup_units(store, 1000)
        claimed_after_the_pull(store)


def claimed_after_the_pull(store: Store) -> None:
    [pulling] = claim(store, "host:1")
    finished: list[bool] = []

    def pull_finishes_meanwhile(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if not finished and "FOR UPDATE" in statement:
            finished.append(finish(store, pulling, "host:1"))  # another connection, committed

    sa.event.listen(store.engine, "before_cursor_execute", pull_finishes_meanwhile)
    try:
        [reconcile] = claim(store, "host:2", "reconcile")
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", pull_finishes_meanwhile)
    assert finished == [True] and reconcile.unit == RECONCILE
    pull_done, reconcile_started = row(store, PULL)["last_success_at"], row(store, RECONCILE)["last_started_at"]
    assert pull_done is not None and reconcile_started is not None
    assert reconcile_started >= pull_done


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


# companies ----------------------------------------------------------------------------------

PULL_A, PULL_B = "pull:a_gateway:charges", "pull:b_gateway:charges"
RECONCILE_A, RECONCILE_B = "reconcile:acme", "reconcile:beta"
TWO_COMPANIES = [
    work.Declared(PULL_A, "pull", "a_gateway", "charges", "acme"),
    work.Declared(PULL_B, "pull", "b_gateway", "charges", "beta"),
    work.Declared(RECONCILE_A, "reconcile", None, None, "acme"),
    work.Declared(RECONCILE_B, "reconcile", None, None, "beta"),
]


def setup_companies(store: Store, tick: int) -> None:
    with store.session() as session:
        work.ensure_units(session, TWO_COMPANIES)
        work.schedule_tick(session, [d.unit for d in TWO_COMPANIES], tick)


def test_a_company_reconciles_once_its_own_pulls_are_done_whatever_another_company_pulls(
    store: Store, clock: list[datetime]
) -> None:
    setup_companies(store, 1000)
    [slow] = claim(store, "host:1")  # acme's pull (claimed in name order), long
    assert slow.unit == PULL_A and slow.company == "acme"
    assert claim(store, "host:2", "reconcile") == []  # beta still has its own pull due
    [fast] = claim(store, "host:2")
    assert fast.unit == PULL_B and fast.company == "beta"
    assert finish(store, fast, "host:2")

    [reconcile] = claim(store, "host:2", "reconcile")  # beta plans while acme still pulls
    assert (reconcile.unit, reconcile.company) == (RECONCILE_B, "beta")
    assert claim(store, "host:3", "reconcile") == []  # acme's waits for acme's pull
    with store.session() as session:
        assert (work.pulls_pending(session, "acme"), work.pulls_pending(session, "beta")) == (1, 0)
        assert work.pulls_pending(session) == 1

    with store.session() as session:  # a failed pull counts as done: the company plans anyway
        assert work.finish(session, slow, "host:1", error="HTTP 503 Service Unavailable")
    [late] = claim(store, "host:3", "reconcile")
    assert (late.unit, late.company) == (RECONCILE_A, "acme")
    assert row(store, PULL_A)["last_error"] == "HTTP 503 Service Unavailable"


def test_units_keep_the_company_they_were_declared_for(store: Store, clock: list[datetime]) -> None:
    setup_companies(store, 1000)
    with store.session() as session:
        companies = {r["unit"]: r["company"] for r in work.units(session)}
    assert companies == {PULL_A: "acme", PULL_B: "beta", RECONCILE_A: "acme", RECONCILE_B: "beta"}


def test_a_claim_takes_only_the_units_it_is_given(store: Store, clock: list[datetime]) -> None:
    setup_companies(store, 1000)
    with store.session() as session:
        taken = work.claim(session, "host:1", lease=LEASE, kinds=("pull",), only=[PULL_B])
    assert [u.unit for u in taken] == [PULL_B]  # acme's pull, first by name, is not among them
    with store.session() as session:
        assert work.claim(session, "host:2", lease=LEASE, kinds=("pull",), only=[PULL_B]) == []
    assert [u.unit for u in claim(store, "host:2")] == [PULL_A]


def test_the_single_reconcile_of_an_older_release_is_retired_when_companies_are_named(
    store: Store, clock: list[datetime]
) -> None:
    """An upgraded database keeps the unit `reconcile` (default company), due and undone if the
    old service stopped mid-tick; a config naming companies declares other units. Left there, it
    would be claimed for a company no config describes and keep /readyz failing."""
    setup_units(store, 1000)  # the old service's pull and its single reconcile
    setup_companies(store, 2000)
    with store.session() as session:
        retired = work.retire_units(session, TWO_COMPANIES)
        names = {r["unit"] for r in work.units(session)}
    assert retired == [PULL, RECONCILE]
    assert names == {d.unit for d in TWO_COMPANIES}


def test_a_unit_under_a_live_lease_is_retired_only_once_its_worker_is_gone(store: Store, clock: list[datetime]) -> None:
    setup_units(store, 1000)
    [held] = claim(store, "host:1")
    with store.session() as session:
        assert work.retire_units(session, TWO_COMPANIES) == [RECONCILE]  # the pull is in a worker's hands
    assert row(store, PULL)["owner"] == "host:1"
    clock[0] = T0 + LEASE * 1.5  # its worker died: the lease ran out
    with store.session() as session:
        assert work.retire_units(session, TWO_COMPANIES) == [PULL]
    assert not finish(store, held, "host:1")  # nothing to mark: it is gone


def test_a_connection_moved_to_another_company_gets_its_unit_afresh(store: Store, clock: list[datetime]) -> None:
    setup_companies(store, 1000)
    moved = [d._replace(company="beta") if d.unit == PULL_A else d for d in TWO_COMPANIES]
    with store.session() as session:
        assert work.retire_units(session, moved) == [PULL_A]
        assert work.retire_units(session, TWO_COMPANIES) == []  # the declared ones stay
        work.ensure_units(session, moved)
    assert row(store, PULL_A)["company"] == "beta"


def test_a_webhook_event_keeps_its_connection_company(store: Store) -> None:
    with store.session() as session:
        assert work.store_event(session, "stripe", "evt_1", "b_gateway", "charges", "ch_1", {}, company="beta")
        assert not work.store_event(session, "stripe", "evt_1", "b_gateway", "charges", "ch_1", {}, company="beta")
        assert work.store_event(session, "stripe", "evt_2", "gateway", "charges", "ch_2", {})
    with store.engine.connect() as connection:
        rows: dict[str, str] = dict(connection.execute(sa.text("SELECT event_id, company FROM webhook_events")).all())
    assert rows == {"evt_1": "beta", "evt_2": "default"}
