"""Work units of the scheduled service, claimed with leases; PostgreSQL is the coordinator.

A unit is due when its `due_tick` is beyond its `done_tick`; a worker claims a due unit whose
lease is free or expired (`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, so workers never
wait on each other's rows; a compare-and-swap on SQLite, where one worker runs), works while
renewing its lease (`renew`), and marks it done for that tick. A worker that dies keeps its
lease until it expires; then the unit is due again for the next worker. A worker that lost its
lease to another marks nothing (`finish` is a compare-and-swap on the owner); a worker that
stops for shutdown hands the unit back undone (`release`), so the next claim resumes it.

Schedule ticks and on-demand requests (a webhook) are kept apart: only the schedule moves
`due_tick` forward; a request never does, it makes the unit's latest tick undone again by
moving `done_tick` back (`make_due_now`). A request that arrives while a worker holds the unit
moves `done_tick` back once more, so the worker's `finish` (a compare-and-swap on the
`done_tick` it claimed) sees it and leaves the unit due: the change the request announced may
be newer than the pages that worker read.

Each company's work is its own: a pull unit belongs to its connection's company, and each
company has its own reconcile unit, claimable once that company's pulls of the tick are done
(failed ones count as done), whatever other companies' pulls are doing. The service declares
its units every tick; a scheduled unit it no longer declares is retired (`retire_units`).

A worker's liveness is its heartbeat, not only its lease: each `connector serve` keeps a row
of kind `worker` here (`beat`), whose `lease_until` is how long it promises to live without
beating again (its heartbeat timeout) and whose `last_success_at` is its latest beat. A unit
held by a worker whose heartbeat ran out is free to take over at once (`claim` says from whom,
`Unit.taken_from`), whatever its lease says, on any host; the lease stays the upper bound (a
worker of an older release beats nowhere). `silent_workers` names them for the outbox's claims.
A worker row is not a unit: `units` leaves it out, no tick makes it due.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, TypedDict, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from connector.state.records import rowcount, utcnow
from connector.state.scope import company_of
from connector.state.tables import table
from connector.state.upsert import in_chunks, insert_new

# The single-worker lock row of SQLite databases before 0.x: an OS file lock guards SQLite now
# (`connector.service.loop`); a row left behind is dropped (`clear_dead_holds`).
OLD_SERVICE_LOCK = "service:lock"
SCHEDULED_KINDS = ("pull", "reconcile")  # the units a tick makes due
WORKER_KIND = "worker"  # a worker's heartbeat row
PRUNE_SILENT = timedelta(days=1)  # a worker silent this long and holding no unit is forgotten


class Declared(NamedTuple):
    """A unit as the service declares it; `company` None is the session's company."""

    unit: str
    kind: str
    connection: str | None = None
    stream: str | None = None
    company: str | None = None


@dataclass(frozen=True)
class Unit:
    unit: str
    kind: str
    company: str
    connection: str | None
    stream: str | None
    due_tick: int
    done_tick: int = -1  # as claimed: `finish` compares it, to see a request that came meanwhile
    taken_from: str | None = None  # the worker that held it when claimed (it died, or its lease ran out)
    silent_for: timedelta | None = None  # how long `taken_from` had not beaten, when its heartbeat ran out


class WorkerBeat(NamedTuple):
    """A worker's heartbeat row: its name, its latest beat, and until when that beat holds."""

    worker: str
    beat_at: datetime | None
    alive_until: datetime | None


class UnitRow(TypedDict):
    """A row of `work_units` as `units` reads it: the columns of `tables.WorkUnitRow`."""

    unit: str
    kind: str
    company: str
    connection: str | None
    stream: str | None
    owner: str | None
    lease_until: datetime | None
    due_tick: int
    done_tick: int
    last_started_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    failing_since: datetime | None
    runs: int


def ensure_units(session: Session, units: Sequence[Declared | tuple[str, str, str | None, str | None]]) -> None:
    """Create the units (unit, kind, connection, stream[, company]) that do not exist yet."""
    rows = []
    for declared in map(_declared, units):
        rows.append(
            {
                "unit": declared.unit,
                "kind": declared.kind,
                "company": declared.company or company_of(session),
                "connection": declared.connection,
                "stream": declared.stream,
                "due_tick": 0,
                "done_tick": -1,
                "runs": 0,
            }
        )
    insert_new(session, table("work_units"), rows, key=("unit",))


def retire_units(session: Session, declared: Sequence[Declared | tuple[str, str, str | None, str | None]]) -> list[str]:
    """Delete the scheduled units (pulls, reconciles) that `declared` does not hold as stored:
    a connection removed from the config or moved to another company, a company gone, or the
    single reconcile unit of a deployment that now names its companies. Left in place, such a
    unit would be claimed for work no configuration describes, hold back its company's
    reconcile, and keep `/readyz` failing for ever. A unit under a live lease is left to its
    worker (retired at a later tick). Returns the names retired."""
    work = table("work_units")
    wanted = {
        (d.unit, d.kind, d.company or company_of(session), d.connection, d.stream) for d in map(_declared, declared)
    }
    free = _unheld(work, utcnow())
    columns = (work.c.unit, work.c.kind, work.c.company, work.c.connection, work.c.stream)
    rows = session.execute(sa.select(*columns).where(work.c.kind.in_(SCHEDULED_KINDS), free)).all()
    stale = sorted(row[0] for row in rows if tuple(row) not in wanted)
    for chunk in in_chunks(session, stale):
        session.execute(sa.delete(work).where(work.c.unit.in_(list(chunk)), free))
    return stale


def _unheld(work: sa.Table, now: datetime) -> sa.ColumnElement[bool]:
    """Nobody holds the unit: no owner, a lease run out, or an owner whose heartbeat ran out."""
    beats = work.alias("beats")
    silent_owner = sa.exists().where(
        beats.c.kind == WORKER_KIND, beats.c.owner == work.c.owner, beats.c.lease_until < now
    )
    return sa.or_(work.c.owner.is_(None), work.c.lease_until.is_(None), work.c.lease_until < now, silent_owner)


def _declared(unit: Declared | tuple[str, str, str | None, str | None]) -> Declared:
    return unit if isinstance(unit, Declared) else Declared(*unit)


def schedule_tick(session: Session, units: Sequence[str], tick: int) -> None:
    """Make `units` due for `tick` (never moves a unit back)."""
    work = table("work_units")
    session.execute(sa.update(work).where(work.c.unit.in_(list(units)), work.c.due_tick < tick).values(due_tick=tick))


def _pull_due(work: sa.Table) -> sa.ColumnElement[bool]:
    """Some pull unit of the same company is due and not done yet (running, or waiting to be
    claimed)."""
    pull = work.alias("pull_due")
    return sa.exists().where(
        pull.c.kind == "pull", pull.c.company == work.c.company, pull.c.due_tick > pull.c.done_tick
    )


def pulls_pending(session: Session, company: str | None = None) -> int:
    """How many pull units (of `company`, else of every company) are due and not done: the
    company's reconcile waits for them."""
    work = table("work_units")
    query = sa.select(sa.func.count()).where(work.c.kind == "pull", work.c.due_tick > work.c.done_tick)
    if company is not None:
        query = query.where(work.c.company == company)
    return int(session.execute(query).scalar_one())


def claim(
    session: Session,
    worker: str,
    *,
    lease: timedelta,
    kinds: Sequence[str],
    limit: int = 1,
    only: Collection[str] | None = None,
) -> list[Unit]:
    """Claim up to `limit` due units of `kinds` (of the names in `only`, when given). A
    company's reconcile unit is claimable only once none of that company's pulls is due or
    running: it plans from what every pull of the company's tick brought in, so a worker that
    runs out of pulls while others still pull that company waits instead of planning too
    early; another company's pulls never hold it back."""
    work = table("work_units")
    now = utcnow()
    free = sa.or_(_unheld(work, now), work.c.owner == worker)
    after_pulls = sa.or_(work.c.kind != "reconcile", ~_pull_due(work))
    due = sa.and_(work.c.due_tick > work.c.done_tick, work.c.kind.in_(list(kinds)), free, after_pulls)
    query = sa.select(work.c.unit, work.c.owner).where(due).order_by(work.c.kind.desc(), work.c.unit).limit(limit)
    if only is not None:
        query = query.where(work.c.unit.in_(list(only)))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=work, skip_locked=True)
    candidates = session.execute(query).all()
    # The start is read after the candidates: on PostgreSQL a pull may finish (its success
    # stamped with its own earlier clock read) between `now` and the query that saw it done,
    # and a reconcile stamped with `now` would seem to have started before that pull ended.
    started = utcnow()
    held = {str(owner) for _, owner in candidates if owner is not None and owner != worker}
    beats = {b.worker: b for b in workers(session, held)} if held else {}
    claimed: list[Unit] = []
    for unit, owner in candidates:
        result = session.execute(
            sa.update(work)
            .where(work.c.unit == unit, due)
            .values(owner=worker, lease_until=started + lease, last_started_at=started)
            .returning(
                work.c.unit,
                work.c.kind,
                work.c.company,
                work.c.connection,
                work.c.stream,
                work.c.due_tick,
                work.c.done_tick,
            )
        ).first()
        if result is not None:
            name, kind, company, connection, stream, due_tick, done_tick = result
            taken_from = str(owner) if owner is not None and owner != worker else None
            silent_for = _silence(beats.get(taken_from), now) if taken_from else None
            claimed.append(Unit(name, kind, company, connection, stream, due_tick, done_tick, taken_from, silent_for))
    return claimed


def _silence(beat: WorkerBeat | None, now: datetime) -> timedelta | None:
    """How long a worker whose heartbeat ran out had not beaten (None: it had not run out)."""
    if beat is None or beat.alive_until is None or beat.alive_until >= now:
        return None
    return now - (beat.beat_at or beat.alive_until)


def renew(session: Session, unit: str, worker: str, *, lease: timedelta) -> bool:
    """Extend this worker's lease on `unit` (a heartbeat); False when the unit is no longer
    this worker's (another worker took it over after the lease ran out)."""
    work = table("work_units")
    result = session.execute(
        sa.update(work).where(work.c.unit == unit, work.c.owner == worker).values(lease_until=utcnow() + lease)
    )
    return rowcount(result) == 1


def finish(session: Session, unit: Unit, worker: str, *, error: str | None) -> bool:
    """Mark the claimed tick done (or failed); False, changing nothing, when the unit is no
    longer this worker's. A request that came while the unit was held leaves it due."""
    work = table("work_units")
    now = utcnow()
    unchanged = work.c.done_tick == unit.done_tick
    done = sa.case((unchanged, sa.literal(unit.due_tick)), else_=work.c.done_tick)
    values: dict[str, object] = {"owner": None, "lease_until": None, "runs": work.c.runs + 1, "done_tick": done}
    if error is None:
        values.update(last_success_at=now, last_error=None, failing_since=None)
    else:
        values.update(last_error=error[:2000], failing_since=sa.func.coalesce(work.c.failing_since, now))
    result = session.execute(sa.update(work).where(work.c.unit == unit.unit, work.c.owner == worker).values(**values))
    return rowcount(result) == 1


def release(session: Session, unit: Unit, worker: str) -> bool:
    """Hand a unit back without marking its tick done (a worker stopping mid-pull: its pages
    are stored with their cursors, so whoever claims it next resumes)."""
    work = table("work_units")
    result = session.execute(
        sa.update(work).where(work.c.unit == unit.unit, work.c.owner == worker).values(owner=None, lease_until=None)
    )
    return rowcount(result) == 1


def units(session: Session) -> list[UnitRow]:
    """Every work unit (the workers' heartbeat rows aside)."""
    work = table("work_units")
    rows = session.execute(sa.select(work).where(work.c.kind != WORKER_KIND).order_by(work.c.unit)).mappings()
    return [cast(UnitRow, dict(row)) for row in rows]  # the row's columns are UnitRow's keys


# worker heartbeats ---------------------------------------------------------------------------


def worker_unit(worker: str) -> str:
    return f"{WORKER_KIND}:{worker}"


def beat(session: Session, worker: str, *, timeout: timedelta) -> None:
    """`worker` lives: its row says so until `timeout` from now, unless it beats again. Also
    forgets the workers silent for `PRUNE_SILENT` that hold no unit any more."""
    work = table("work_units")
    now = utcnow()
    name = worker_unit(worker)
    row = {
        "unit": name,
        "kind": WORKER_KIND,
        "company": company_of(session),
        "owner": worker,
        "due_tick": 0,
        "done_tick": 0,  # never due
        "runs": 0,
        "last_started_at": now,
    }
    insert_new(session, work, [row], key=("unit",))
    session.execute(sa.update(work).where(work.c.unit == name).values(lease_until=now + timeout, last_success_at=now))
    held = work.alias("held")
    holds = sa.exists().where(held.c.kind != WORKER_KIND, held.c.owner == work.c.owner)
    session.execute(sa.delete(work).where(work.c.kind == WORKER_KIND, work.c.lease_until < now - PRUNE_SILENT, ~holds))


def forget_worker(session: Session, worker: str) -> None:
    """A worker stopping cleanly takes its heartbeat row with it."""
    work = table("work_units")
    session.execute(sa.delete(work).where(work.c.unit == worker_unit(worker)))


def workers(session: Session, names: Collection[str] | None = None) -> list[WorkerBeat]:
    """The workers' heartbeat rows (of `names`, when given), the latest beat first."""
    work = table("work_units")
    query = sa.select(work.c.owner, work.c.last_success_at, work.c.lease_until).where(work.c.kind == WORKER_KIND)
    if names is not None:
        query = query.where(work.c.owner.in_(list(names)))
    rows = session.execute(query.order_by(work.c.last_success_at.desc(), work.c.owner)).all()
    return [WorkerBeat(str(owner), beat_at, until) for owner, beat_at, until in rows]


def silent_workers(session: Session, names: Collection[str]) -> list[str]:
    """Those of `names` whose heartbeat ran out: their claims are free to take over at once.
    A worker without a heartbeat row (an older release) is not named: its lease decides."""
    now = utcnow()
    return [b.worker for b in workers(session, names) if b.alive_until is not None and b.alive_until < now]


def clear_dead_holds(session: Session, worker: str) -> list[str]:
    """For the only worker a database may have (SQLite, under its OS lock): every other worker
    is dead. Hands back the units they held, marks their heartbeats run out (so that their
    outbox claims are taken over at once) and drops the lock row of older releases. Returns
    the units handed back."""
    work = table("work_units")
    now = utcnow()
    session.execute(sa.delete(work).where(work.c.unit == OLD_SERVICE_LOCK))
    others = sa.and_(work.c.owner.is_not(None), work.c.owner != worker)
    session.execute(
        sa.update(work)
        .where(work.c.kind == WORKER_KIND, others, sa.or_(work.c.lease_until.is_(None), work.c.lease_until >= now))
        .values(lease_until=now - timedelta(seconds=1))  # run out: `silent_workers` names them
    )
    held = session.execute(sa.select(work.c.unit).where(work.c.kind != WORKER_KIND, others)).scalars().all()
    if held:
        session.execute(sa.update(work).where(work.c.unit.in_(list(held))).values(owner=None, lease_until=None))
    return sorted(held)


def store_event(
    session: Session,
    provider: str,
    event_id: str,
    connection: str,
    stream: str | None,
    object_id: str | None,
    payload: dict[str, object],
    received_at: datetime | None = None,
    *,
    company: str | None = None,
) -> bool:
    """Keep a webhook event once by its id, with the company of its connection (None: the
    session's); False when it was already received."""
    row = {
        "provider": provider,
        "event_id": event_id,
        "connection": connection,
        "company": company or company_of(session),
        "stream": stream,
        "object_id": object_id,
        "received_at": received_at or utcnow(),
        "payload": payload,
    }
    return insert_new(session, table("webhook_events"), [row], key=("provider", "event_id")) == 1


def make_due_now(session: Session, names: Sequence[str]) -> None:
    """Due again at once (a webhook's targeted sync), without waiting for the next tick and
    without moving the schedule: the latest tick counts as undone. A unit held by a worker is
    stepped back once more, so that the run in hand does not swallow the request."""
    work = table("work_units")
    held = work.c.owner.is_not(None)
    session.execute(
        sa.update(work)
        .where(work.c.unit.in_(list(names)), sa.or_(held, work.c.done_tick >= work.c.due_tick))
        .values(done_tick=sa.case((held, work.c.done_tick - 1), else_=work.c.due_tick - 1))
    )
