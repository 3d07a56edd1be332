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

SERVICE_UNIT = "service:lock"
SCHEDULED_KINDS = ("pull", "reconcile")  # the units a tick makes due (the lock is not one)


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
    free = sa.or_(work.c.owner.is_(None), work.c.lease_until.is_(None), work.c.lease_until < utcnow())
    columns = (work.c.unit, work.c.kind, work.c.company, work.c.connection, work.c.stream)
    rows = session.execute(sa.select(*columns).where(work.c.kind.in_(SCHEDULED_KINDS), free)).all()
    stale = sorted(row[0] for row in rows if tuple(row) not in wanted)
    for chunk in in_chunks(session, stale):
        session.execute(sa.delete(work).where(work.c.unit.in_(list(chunk)), free))
    return stale


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
    free = sa.or_(work.c.lease_until.is_(None), work.c.lease_until < now, work.c.owner == worker)
    after_pulls = sa.or_(work.c.kind != "reconcile", ~_pull_due(work))
    due = sa.and_(work.c.due_tick > work.c.done_tick, work.c.kind.in_(list(kinds)), free, after_pulls)
    query = sa.select(work.c.unit).where(due).order_by(work.c.kind.desc(), work.c.unit).limit(limit)
    if only is not None:
        query = query.where(work.c.unit.in_(list(only)))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    claimed: list[Unit] = []
    for (unit,) in session.execute(query).all():
        result = session.execute(
            sa.update(work)
            .where(work.c.unit == unit, due)
            .values(owner=worker, lease_until=now + lease, last_started_at=now)
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
            claimed.append(Unit(*result))
    return claimed


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
    work = table("work_units")
    rows = session.execute(sa.select(work).order_by(work.c.unit)).mappings()
    return [cast(UnitRow, dict(row)) for row in rows]  # the row's columns are UnitRow's keys


def take_service_lock(session: Session, worker: str, *, lease: timedelta, alive: bool) -> str | None:
    """The single-worker lock of a SQLite database: None when taken, else who holds it.
    `alive` says whether the current holder is still running (checked by the caller)."""
    ensure_units(session, [(SERVICE_UNIT, "lock", None, None)])
    work = table("work_units")
    now = utcnow()
    row = session.execute(sa.select(work.c.owner, work.c.lease_until).where(work.c.unit == SERVICE_UNIT)).one()
    owner, until = row
    if owner and owner != worker and alive and until is not None and until > now:
        return str(owner)
    session.execute(sa.update(work).where(work.c.unit == SERVICE_UNIT).values(owner=worker, lease_until=now + lease))
    return None


def release_service_lock(session: Session, worker: str) -> None:
    work = table("work_units")
    session.execute(
        sa.update(work).where(work.c.unit == SERVICE_UNIT, work.c.owner == worker).values(owner=None, lease_until=None)
    )


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
