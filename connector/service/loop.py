"""The scheduled loop of `connector serve`.

Every tick (an interval, or a connection's own cron expression) makes each connection's stream
pulls due, then the reconcile-and-plan step; outbox actions are sent as they are planned.
Several workers on one PostgreSQL database share a tick by claiming units with leases; on
SQLite one worker runs, under an operating-system lock on a file beside the database, which dies
with its process (a second one is refused with a clear message; a restart after a crash just
runs). While a unit is worked its lease is renewed (`heartbeat`), so a long pull is never taken
over and done twice; every worker also beats a heartbeat of its own (`Pulse`), and what a worker
whose heartbeat stopped holds is taken over within `heartbeat_timeout`, the lease being only the
upper bound. A shutdown signal stops between pages: the page in hand is stored with its cursor, the unit is
handed back undone (the next claim resumes from the cursors), and nothing is half-written.

Ticks are numbered by the time they start (epoch seconds of the `--every` boundary, or of a
connection's latest cron time), so changing `--every` or a schedule never leaves a unit behind.

Each company's work runs apart: a pull works with its connection's company's view of the config
and the store, each company has its own reconcile unit (`reconcile_unit`), due once that
company's pulls of the tick are done, and its outbox is sent as soon as it is planned. So one
company's failing provider or long pull never holds back another company's reconcile and
writes, and a failure in one company's apply is logged with its company and leaves the others
sending. Metrics and JSON log lines carry the company.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from croniter import croniter

from connector import pipeline
from connector.config import Config, Connection
from connector.errors import ConfigError, UsageError, first_line
from connector.http import observe_responses
from connector.logs import company_context, name_companies
from connector.providers.registry import Registry, installed
from connector.service.heartbeat import Heartbeat, Pulse
from connector.service.metrics import OUTBOX_STATES, Metrics
from connector.state import outbox
from connector.state import units as work
from connector.state.scope import DEFAULT_COMPANY
from connector.state.store import Store
from connector.sync import StreamReport
from connector.workers import SoleWorkerLock, worker_id
from connector.writeback.apply import ApplyReport

logger = logging.getLogger("connector.service")

RECONCILE_UNIT = "reconcile"  # the default company's reconcile unit, named as before companies


def parse_every(text: str, option: str = "--every") -> timedelta:
    """`90s`, `15m`, `1h`, `1d` -> an interval of at least a second; `option` names the
    command-line option in the error."""
    text = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        seconds = float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, IndexError):
        raise UsageError(f"{option}: {text!r} is not an interval like 90s, 15m, 1h or 1d") from None
    if not math.isfinite(seconds) or seconds < 1:
        raise UsageError(f"{option}: {text!r} is not an interval of at least 1s (like 90s, 15m, 1h or 1d)")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise UsageError(f"{option}: {text!r} is too long") from None


def pull_unit(connection: str, stream: str) -> str:
    return f"pull:{connection}:{stream}"


def reconcile_unit(company: str) -> str:
    """`reconcile:NAME`; the default company keeps the name of the single reconcile unit of the
    releases before companies, so that an upgraded deployment naming no company carries on
    with its unit as it was (a company name never holds ':', so the names cannot collide)."""
    return RECONCILE_UNIT if company == DEFAULT_COMPANY else f"{RECONCILE_UNIT}:{company}"


@dataclass(frozen=True)
class CompanyView:
    """One company's share of the deployment: what its pulls, reconcile and apply work with."""

    name: str
    config: Config
    store: Store


@dataclass
class Service:
    config: Config
    store: Store
    every: timedelta
    worker: str = field(default_factory=worker_id)
    metrics: Metrics = field(default_factory=Metrics)
    registry: Registry = field(default_factory=installed)
    lease: timedelta = timedelta(minutes=10)
    heartbeat: float | None = None  # seconds between lease renewals while a unit is worked; None: a third of the lease
    # Whatever a worker holds is taken over once it has not beaten for this long (`Pulse`).
    heartbeat_timeout: timedelta = timedelta(seconds=60)
    # /readyz: how long past its schedule's period (and jitter) a due unit may wait to start.
    start_grace: timedelta = timedelta(minutes=2)
    jitter: float = 0.1  # share of the interval a worker waits at random, so tenants do not fire at once
    apply_poll: timedelta = timedelta(seconds=15)
    pull_poll: float = 0.5  # seconds between looks while other workers still pull this tick
    stop: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], float] = time.time  # injectable: the ticks and the waits between them
    ticks_done: int = 0

    def __post_init__(self) -> None:
        self._streams: dict[str, list[str]] = {}
        for name, connection in self.config.connections.items():
            cls = self.registry.get(connection.provider)
            self._streams[name] = list(cls.streams)
            if connection.settings.schedule and not croniter.is_valid(connection.settings.schedule):
                raise ConfigError(
                    f"connections.{name}.schedule: {connection.settings.schedule!r} is not a cron expression"
                )
        self.companies = {
            name: CompanyView(name, self.config.for_company(name), self.store.for_company(name))
            for name in self.config.company_names()
        }
        self._company_of = {name: connection.company for name, connection in self.config.connections.items()}
        self._declared = [
            work.Declared(pull_unit(c, s), "pull", c, s, self._company_of[c])
            for c, streams in self._streams.items()
            for s in streams
        ] + [work.Declared(reconcile_unit(c), "reconcile", None, None, c) for c in self.companies]
        # Which company each declared unit works for: from the config, never from a stored row.
        self._unit_company = {unit.unit: unit.company or DEFAULT_COMPANY for unit in self._declared}
        self.metrics.add_companies(self.companies)
        self._sole: SoleWorkerLock | None = None  # held on SQLite (`take_sqlite_lock`)
        self.started_at = datetime.fromtimestamp(self.clock(), UTC)

    # ticks ---------------------------------------------------------------------------------

    def tick_of(self, connection: Connection | None, now: datetime) -> int:
        """The latest tick at `now` (included), as the epoch second it starts at: a
        connection's cron schedule, else the `--every` boundary."""
        schedule = connection.settings.schedule if connection else None
        if schedule:
            previous = croniter(schedule, now).get_prev(datetime)
            following = croniter(schedule, previous).get_next(datetime)
            return int((following if following <= now else previous).timestamp())
        interval = self.every.total_seconds()
        return int(now.timestamp() // interval * interval)

    def next_wake(self, now: float) -> float:
        """When to start the next tick: the earliest of the next `--every` boundary and each
        connection's next cron time, each with its jitter (a share of its own period)."""
        interval = self.every.total_seconds()
        wakes = [now - (now % interval) + interval + random.uniform(0, self.jitter * interval)]
        at = datetime.fromtimestamp(now, UTC)
        for connection in self.config.connections.values():
            if schedule := connection.settings.schedule:
                times = croniter(schedule, at)
                first = times.get_next(datetime).timestamp()
                period = times.get_next(datetime).timestamp() - first
                wakes.append(first + random.uniform(0, self.jitter * min(period, interval)))
        return min(wakes)

    def _schedule(self, now: datetime) -> None:
        with self.store.session() as session:
            retired = work.retire_units(session, self._declared)
            work.ensure_units(session, self._declared)
            for name, connection in self.config.connections.items():
                work.schedule_tick(
                    session, [pull_unit(name, s) for s in self._streams[name]], self.tick_of(connection, now)
                )
            work.schedule_tick(session, [reconcile_unit(c) for c in self.companies], self.tick_of(None, now))
        if retired:
            logger.info("retired the work units the config no longer holds: %s", ", ".join(retired))

    def due_now(self, connection: str, stream: str | None) -> None:
        """A webhook's targeted sync: this pull (or all of the connection's) and its company's
        reconcile step become due at once, and the loop wakes."""
        company = self._company_of.get(connection)
        if company is None:
            return
        names = [pull_unit(connection, s) for s in self._streams[connection] if stream in (None, s)]
        with self.store.session() as session:
            work.make_due_now(session, [*names, reconcile_unit(company)])
        self.wake.set()

    # the loop --------------------------------------------------------------------------------

    def run(self, *, max_ticks: int | None = None) -> None:
        self.take_sqlite_lock()
        try:
            pulse = Pulse(self.store, self.worker, timeout=self.heartbeat_timeout)
            pulse.start()
        except BaseException:
            self.release_sqlite_lock()
            raise
        forget_observer = observe_responses(self.metrics.count_response)
        forget_companies = name_companies(self._company_of)
        try:
            while not self.stop.is_set():
                self._schedule(datetime.fromtimestamp(self.clock(), UTC))
                self._work()
                self.ticks_done += 1
                if max_ticks is not None and self.ticks_done >= max_ticks:
                    return
                self._wait()
        finally:
            forget_companies()
            forget_observer()
            pulse.stop()
            self.release_sqlite_lock()

    def _wait(self) -> None:
        """Until the next tick (`next_wake`) or a wake-up (a webhook). Meanwhile, every
        `apply_poll`, send what other workers planned: the outbox is shared work too."""
        deadline = self.next_wake(self.clock())
        while not self.stop.is_set():
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            if self.wake.wait(timeout=max(0.05, min(remaining, self.apply_poll.total_seconds()))):
                self.wake.clear()
                return
            self._apply()

    def _work(self) -> None:
        """Work the tick's units until none is left: pulls, and each company's reconcile as
        soon as that company's pulls are done, its outbox sent at once after it."""
        names = self._unit_company.keys()
        sent_after: dict[str, int] = {}  # company -> the runs of its reconcile unit when last sent here
        while not self.stop.is_set():
            with self.store.session() as session:
                claimed = work.claim(session, self.worker, lease=self.lease, kinds=work.SCHEDULED_KINDS, only=names)
                rows = [] if claimed else [r for r in work.units(session) if r["unit"] in names]
            if claimed:
                unit = claimed[0]
                self._log_takeover(unit)
                if unit.kind == "reconcile":
                    company = self._unit_company[unit.unit]
                    self._run_reconcile(unit, company)
                    if not self.stop.is_set():
                        self._apply_company(company)  # its writes go out now, whoever still pulls
                else:
                    self._run_pull(unit)
                continue
            if not any(r["due_tick"] > r["done_tick"] for r in rows):
                break
            # Other workers still pull or reconcile this tick; a unit whose worker died becomes
            # claimable here once its heartbeat (at the latest its lease) runs out. Meanwhile
            # help send the writes of every company another worker has reconciled and planned.
            for row in rows:
                company = self._unit_company[row["unit"]]
                if row["kind"] == "reconcile" and row["done_tick"] >= row["due_tick"]:
                    if sent_after.get(company) != row["runs"]:
                        sent_after[company] = row["runs"]
                        self._apply_company(company)
            self.stop.wait(self.pull_poll)
        if not self.stop.is_set():
            self._apply()

    def _log_takeover(self, unit: work.Unit) -> None:
        if unit.taken_from is None:
            return
        host, _, pid = unit.taken_from.rpartition(":")
        who = f"worker {pid} on {host}" if host and pid.isdigit() else f"worker {unit.taken_from}"
        why = f"no heartbeat for {unit.silent_for.total_seconds():.0f} s" if unit.silent_for else "its lease ran out"
        context = {"company": self._unit_company.get(unit.unit), "connection": unit.connection, "stream": unit.stream}
        logger.warning("took over %s from %s: %s", unit.unit, who, why, extra=context)

    def _heartbeat(self, unit: work.Unit, company: str) -> Heartbeat:
        """Keeps `unit`'s lease while it is worked (enter it around the work)."""
        return Heartbeat(
            self.store,
            unit.unit,
            self.worker,
            lease=self.lease,
            stop=self.stop,
            period=self.heartbeat,
            company=company,
        )

    def _run_pull(self, unit: work.Unit) -> None:
        assert unit.connection and unit.stream
        company = self._unit_company[unit.unit]
        view = self.companies[company]
        context = {"company": company, "connection": unit.connection, "stream": unit.stream}
        error = None
        with company_context(company), self._heartbeat(unit, company) as heartbeat:
            try:
                report = pipeline.sync(
                    view.config,
                    view.store,
                    self.registry,
                    connections=[unit.connection],
                    streams=[unit.stream],
                    stop=heartbeat.halt,
                    then_link=False,
                )
                for stream in report.streams:
                    self._count(company, stream)
                    if stream.status == "failed":
                        error = "; ".join(stream.errors)[:500] or "failed"
            except Exception as exc:  # keep serving: the unit is marked failing and retried next tick
                error = first_line(exc)
                logger.exception("pull failed", extra=context)
        if heartbeat.stopping:
            # cut short by a shutdown: the pages read are stored with their cursors; the tick is
            # not done, so whoever claims the unit next (a restart) resumes (or retries) it at once
            with self.store.session() as session:
                work.release(session, unit, self.worker)
            self.metrics.runs.labels(company, "pull", "stopped").inc()
            return
        if not self._finish(unit, company, error, context):
            return
        self.metrics.runs.labels(company, "pull", "error" if error else "ok").inc()
        if error is None:
            self.metrics.last_success.labels(company, unit.connection).set(time.time())

    def _finish(self, unit: work.Unit, company: str, error: str | None, context: Mapping[str, str | None]) -> bool:
        with self.store.session() as session:
            kept = work.finish(session, unit, self.worker, error=error)
        if not kept:
            logger.warning(
                "%s: another worker took the unit over (lease lost); not marking it done", unit.unit, extra=context
            )
            self.metrics.runs.labels(company, unit.kind, "lease_lost").inc()
        return kept

    def _count(self, company: str, stream: StreamReport) -> None:
        self.metrics.records.labels(company, stream.connection, stream.stream).inc(stream.stored)
        self.metrics.skipped.labels(company, stream.connection, stream.stream).inc(stream.skipped)
        if stream.status == "failed":
            self.metrics.provider_errors.labels(company, stream.connection, "stream").inc()
        if stream.status == "deferred":
            self.metrics.deferred.labels(company, stream.connection).inc()

    def _run_reconcile(self, unit: work.Unit, company: str) -> None:
        view = self.companies[company]
        context = {"company": company}
        error = None
        outcome = "ok"
        with company_context(company), self._heartbeat(unit, company):
            try:
                done = pipeline.reconcile_and_plan_if_changed(view.config, view.store, self.registry)
                if isinstance(done, pipeline.EngineSkip):
                    outcome = "unchanged"  # nothing new since the last run: nothing read or written
                else:
                    summary, _ = done
                    self.metrics.allocations.labels(company).inc(len(summary.applied))
                    self.metrics.proposals.labels(company).set(len(summary.proposals))
            except Exception as exc:
                error = first_line(exc)
                logger.exception("company %s: reconcile and plan failed", company, extra=context)
        if self._finish(unit, company, error, context):
            self.metrics.runs.labels(company, "reconcile", "error" if error else outcome).inc()

    def _apply(self) -> None:
        """Send every company's due writes, a claim of each company in turn, so one company's
        backlog never holds back another's writes."""
        busy = list(self.companies)
        while busy and not self.stop.is_set():
            busy = [company for company in busy if self._apply_company(company, rounds=1)]

    def _apply_company(self, company: str, rounds: int | None = None) -> bool:
        """Send one company's due writes (its claims are its own: `outbox.claim`), at most
        `rounds` claims of them; True when writes may still be due. A failure is logged with
        the company and stops only this company's sending, until the next try. A stop finishes
        the write in flight and hands the rest of the claim back."""
        view = self.companies[company]
        more = False
        with company_context(company):
            try:
                report = pipeline.apply(
                    view.config, view.store, self.registry, worker=self.worker, stop=self.stop, rounds=rounds
                )
            except Exception:
                logger.exception("company %s: apply failed", company, extra={"company": company})
            else:
                self._count_actions(company, report)
                more = not report.drained and not report.stopped
            self._refresh_outbox_gauge(view)
        return more

    def _count_actions(self, company: str, report: ApplyReport) -> None:
        for entry in report.done:
            self.metrics.actions.labels(company, entry.action.connection, "done").inc()
        for name, deferral in report.deferred.items():
            self.metrics.actions.labels(company, name, "deferred").inc(deferral.actions)
        for outcome, failures in (("retry", report.failed), ("parked", report.parked)):
            for entry, _ in failures:
                self.metrics.actions.labels(company, entry.action.connection, outcome).inc()
                self.metrics.provider_errors.labels(company, entry.action.connection, "action").inc()

    def _refresh_outbox_gauge(self, view: CompanyView) -> None:
        """The company's shared outbox by state, as every worker sees it (one GROUP BY), and
        the writes that wait on their connection (a refused credential, a spent limit)."""
        try:
            with view.store.session() as session:
                counts = outbox.counts_by_state(session)
                waiting = outbox.waiting_by_connection(session)
        except Exception:
            logger.warning("could not count the outbox of %s", view.name, exc_info=True, extra={"company": view.name})
            return
        for state in {*OUTBOX_STATES, *counts}:
            self.metrics.outbox.labels(view.name, state).set(counts.get(state, 0))
        self.metrics.set_waiting(view.name, view.config.connections, waiting)

    # readiness ----------------------------------------------------------------------------------

    def allowance(self, unit: str) -> timedelta | None:
        """How long a due `unit` may wait to start: its schedule's period (a connection's cron,
        else `--every`), with the jitter, plus `start_grace`; None for a unit this config does
        not declare (another release's, about to be retired)."""
        if unit not in self._unit_company:
            return None
        period = self.every.total_seconds()
        connection = next((d.connection for d in self._declared if d.unit == unit), None)
        schedule = self.config.connections[connection].settings.schedule if connection else None
        if schedule:
            times = croniter(schedule, datetime.fromtimestamp(self.clock(), UTC))
            first = times.get_next(datetime).timestamp()
            period = times.get_next(datetime).timestamp() - first
        return timedelta(seconds=period * (1 + self.jitter)) + self.start_grace

    def overdue(self, rows: Sequence[work.UnitRow]) -> list[str]:
        """The due units that have not started for longer than their schedule allows
        (`allowance`), counted from their tick, their latest start, or this worker's start,
        whichever is latest. A unit being worked under a live lease is not overdue, nor a
        company's reconcile while its pulls are due (they are, if anything)."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        due = [r for r in rows if r["due_tick"] > r["done_tick"] and r["unit"] in self._unit_company]
        pulling = {r["company"] for r in due if r["kind"] == "pull"}
        problems = []
        for row in due:
            held = row["owner"] is not None and row["lease_until"] is not None and row["lease_until"] > now
            allowance = self.allowance(row["unit"])
            if held or allowance is None or (row["kind"] == "reconcile" and row["company"] in pulling):
                continue
            started = row["last_started_at"] or self.started_at
            since = max(datetime.fromtimestamp(row["due_tick"], UTC), started, self.started_at)
            if now - since > allowance:
                problems.append(
                    f"{row['unit']} due since {since.isoformat(timespec='seconds')} and not started for "
                    f"{(now - since).total_seconds():.0f} s (its schedule allows {allowance.total_seconds():.0f} s)"
                )
        return problems

    # one worker on SQLite --------------------------------------------------------------------

    def take_sqlite_lock(self) -> None:
        """On SQLite, be the only worker or raise UsageError saying who is (PostgreSQL, or a
        database in memory: no-op). The lock is the operating system's on a file beside the
        database (`SoleWorkerLock`): it dies with its process, so whatever another worker still
        holds in the database is a dead one's and is handed back at once. Taking it again while
        held is a no-op."""
        url = self.store.engine.url
        if self.store.engine.dialect.name != "sqlite" or self._sole is not None:
            return
        if not url.database or url.database == ":memory:":
            return
        lock = SoleWorkerLock(url.database)
        try:
            taken = lock.acquire()
        except OSError as exc:
            raise UsageError(f"cannot lock {lock.path}: {exc.strerror or exc}") from None
        if not taken:
            with self.store.session() as session:
                live = [b.worker for b in work.workers(session) if b.worker != self.worker]
            holder = f" ({live[0]})" if live else ""
            raise UsageError(
                f"another `connector serve`{holder} already runs on this SQLite database; "
                "one worker per SQLite file — use PostgreSQL (CONNECTOR_DATABASE_URL) to run several"
            )
        self._sole = lock
        try:
            with self.store.session() as session:
                handed_back = work.clear_dead_holds(session, self.worker)
        except BaseException:
            self.release_sqlite_lock()
            raise
        if handed_back:
            logger.warning("took over %s from a worker that is gone (it held this SQLite file)", ", ".join(handed_back))

    def release_sqlite_lock(self) -> None:
        if self._sole is not None:
            self._sole.release()
            self._sole = None
