"""Queue and send: the writes the plan derives go into the outbox once, and each is sent
exactly once.

Apply takes one action at a time: claim it (committed), send it with its idempotency key
(Stripe and Xero replay their first answer to a repeated key; HubSpot looks the key up before
creating), then record the answer and mark it done in one transaction. A crash between the
provider's answer and our commit leaves the action claimed; the next run takes it over and
the resend is answered from the provider's idempotency record, so the effect happens once.
A failed action keeps its error and is retried with backoff on later runs, up to
`MAX_ATTEMPTS`; then it is parked for a person (`connector actions list --failed`).

Each claim takes a share of every connection with writes due, sent in turn, so a ledger's
backlog never keeps the gateway and the CRM waiting. A connection that cannot take writes
holds none of them back either and counts no attempt: a spent daily limit defers its writes
until the reset (`Deferral`), a refused credential holds them until the credential changes or
a person retries (`Hold`). A stop (SIGTERM) finishes the request in flight, records its
answer and hands the rest of the claim back.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from connector import failpoints
from connector.config import Config
from connector.connections import check_scope, open_provider
from connector.errors import (
    AuthenticationError,
    ConnectorError,
    InvalidRequestError,
    ProviderError,
    RateLimitDeferred,
    StopRequested,
    UsageError,
    first_line,
)
from connector.model import Allocation, invoice_position
from connector.money import Money
from connector.providers.base import ActionResult, Provider
from connector.providers.registry import Registry, installed
from connector.reconcile.decisions import withdraw
from connector.reconcile.types import LEDGER_RULE
from connector.state import outbox, records
from connector.state import reconciliation as decisions_store
from connector.state.bookkeeping import audit
from connector.state.records import utcnow
from connector.state.store import Store
from connector.state.units import silent_workers
from connector.workers import dead_local_workers, worker_id
from connector.writeback.credentials import credential_fingerprint, refusal_note
from connector.writeback.facts import REVERSAL_OF
from connector.writeback.plan import PlannedAction
from connector.writeback.settle import (
    MONEY_KINDS,
    Gap,
    Settlement,
    is_writeback,
    record_gap,
    settle_decision,
    settle_in_parts,
)

logger = logging.getLogger(__name__)

# What the automatic plan settles against: writes it cancels "no longer follow from" this.
AUTOMATIC_CAUSE = "the books as last synced and reconciled"
MAX_ATTEMPTS = 5
LEASE = timedelta(minutes=10)
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2))
# How long a connection's writes wait after a deferral that named no time (Retry-After).
DEFERRAL_WITHOUT_TIME = timedelta(hours=1)
# How many full batches a connection that takes batches claims at once.
CLAIMED_BATCHES = 4


# Plan -------------------------------------------------------------------------------------


def queue_writes(
    config: Config,
    store: Store,
    registry: Registry | None = None,
    today: date | None = None,
    *,
    keep: bool = True,
    only_changed: bool = False,
) -> list[PlannedAction]:
    """Derive the writes each system needs (payments, fees, statuses) and queue the new ones in
    the outbox; returns everything derived (`keep`), else nothing: they are queued, and a large
    book derives hundreds of thousands. `only_changed`: of the customers whose inputs moved
    since their last plan only (`connector.writeback.unchanged`); the others' writes stay as
    their last plan left them. Reminders are dunning's (`connector.dunning.run`)."""
    with store.session() as session:
        settled = settle_in_parts(
            config,
            store,
            session,
            actor="plan",
            cause=AUTOMATIC_CAUSE,
            registry=registry,
            today=today,
            keep=keep,
            only_changed=only_changed,
        )
    logger.info(
        "planned %d writes (%d new, %d no longer following cancelled; %d customers unchanged, not planned again)",
        settled.derived_count,
        settled.queued,
        len(settled.cancelled),
        settled.unchanged_customers,
    )
    return settled.derived


# Apply ------------------------------------------------------------------------------------


@dataclass
class Deferral:
    """A connection whose writes wait until `until` (its daily limit is spent)."""

    until: datetime
    reason: str
    actions: int = 0  # claimed by this run and handed back unsent
    queued: int = 0  # already in the queue, not claimed by this run, made to wait until then too

    @property
    def waiting(self) -> int:
        """Every write of the connection that waits until `until` because of this deferral."""
        return self.actions + self.queued


@dataclass
class Hold:
    """A connection whose credential the provider refused: its writes wait, unsent and no
    attempt counted, until the credential changes or a person queues them again."""

    reason: str
    actions: int = 0  # claimed by this run and handed back unsent
    queued: int = 0  # already in the queue, made to wait too

    @property
    def waiting(self) -> int:
        """Every write of the connection that waits for its credential."""
        return self.actions + self.queued


@dataclass
class ApplyReport:
    done: list[outbox.OutboxEntry] = field(default_factory=list)
    replayed: int = 0
    failed: list[tuple[outbox.OutboxEntry, str]] = field(default_factory=list)
    parked: list[tuple[outbox.OutboxEntry, str]] = field(default_factory=list)
    # connection -> its writes wait: a daily rate limit is spent (no attempt is counted)
    deferred: dict[str, Deferral] = field(default_factory=dict)
    # connection -> its writes wait for a new credential (no attempt is counted)
    held: dict[str, Hold] = field(default_factory=dict)
    # connection -> its held writes made due again: its credential changed
    resumed: dict[str, int] = field(default_factory=dict)
    stopped: bool = False  # a stop was asked for: the writes still claimed went back unsent
    released: int = 0  # how many went back when stopped
    requests: int = 0  # writes' requests answered (a batch counts once)
    batches: int = 0  # of which batches of several writes
    drained: bool = True  # False: `rounds` ran out with writes perhaps still due

    def per_system(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for entry in self.done:
            out[entry.action.connection][entry.action.kind] += 1
        return {k: dict(v) for k, v in out.items()}


def apply(
    config: Config,
    store: Store,
    registry: Registry | None = None,
    *,
    only: list[str] | None = None,
    batch: int = 20,
    worker: str | None = None,
    stop: threading.Event | None = None,
    rounds: int | None = None,
    progress: Callable[[ApplyReport], None] | None = None,
) -> ApplyReport:
    """Send every action that is due, until none is left for this worker.

    Each connection is sent to in a lane of its own (a thread), claiming its own writes
    (`outbox.claim`), so one connection waiting for its rate limit (Xero's 60 a minute) never
    holds back another's writes; a connection whose provider takes several writes in one
    request (`Provider.batch_limits`) claims a few batches' worth and sends them in batches
    (`_send_batch`), the others `batch` at a time. `stop` (a shutdown) is looked at before
    each request: the request in flight finishes and its answer is recorded, the rest of the
    claim goes back unsent (no attempt counted) and apply returns, `stopped`. `rounds`: at most
    that many claims per connection (the service takes one claim of each company in turn);
    `drained` says whether the queue ran dry. `progress` is called (one call at a time) after
    each request's answer is recorded, with the run so far."""
    check_scope(config, store)
    worker = worker or worker_id()
    stop = stop or threading.Event()
    report = ApplyReport()
    limits = batch_limits(config, registry, only)
    _check_holds(config, store, only, report)
    names = [name for name in config.connections if only is None or name in only]
    lanes = {name: ApplyReport(held={k: v for k, v in report.held.items() if k == name}) for name in names}
    shown = threading.Lock()

    def sent() -> None:
        if progress is not None:
            with shown:
                progress(_merged(report, lanes.values()))

    def lane(name: str) -> None:
        share = max(batch, CLAIMED_BATCHES * max(limits.get(name, {}).values(), default=1))
        _drain(config, store, registry, name, share, limits, worker, stop, rounds, lanes[name], sent)

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(lane, name), name=f"apply {name}", daemon=True)
        for name in names
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return _merged(report, lanes.values())


def _merged(report: ApplyReport, lanes: Iterable[ApplyReport]) -> ApplyReport:
    """The run as a whole: what every connection's lane did, with what was found before."""
    merged = ApplyReport(held=dict(report.held), resumed=dict(report.resumed))
    for lane in lanes:
        merged.done += lane.done
        merged.replayed += lane.replayed
        merged.failed += lane.failed
        merged.parked += lane.parked
        merged.deferred.update(lane.deferred)
        merged.held.update(lane.held)
        merged.stopped = merged.stopped or lane.stopped
        merged.released += lane.released
        merged.drained = merged.drained and lane.drained
        merged.requests += lane.requests
        merged.batches += lane.batches
    return merged


def _drain(
    config: Config,
    store: Store,
    registry: Registry | None,
    name: str,
    share: int,
    limits: dict[str, dict[str, int]],
    worker: str,
    stop: threading.Event,
    rounds: int | None,
    report: ApplyReport,
    sent: Callable[[], None],
) -> None:
    """One connection's lane: claim its due writes and send them, claim after claim, until
    none is left (or `rounds` claims, or a stop, a deferral, a hold)."""
    providers: dict[str, Provider] = {}
    held_back: set[int] = set()  # writes handed back once to go in a fuller batch
    try:
        claims = 0
        while not stop.is_set():
            if name in report.deferred or name in report.held:
                return
            if rounds is not None and claims >= rounds:
                report.drained = False
                return
            claims += 1
            with store.session() as session:
                holders = outbox.in_flight_workers(session)  # gone from this host, or silent anywhere
                dead = dead_local_workers(holders) + silent_workers(session, holders)
                claimed = outbox.claim(session, worker, lease=LEASE, limit=share, connections=[name], dead_workers=dead)
                more = bool(claimed) and bool(outbox.still_due(session, [name], lease=LEASE, dead_workers=dead))
            if not claimed:
                return
            units, later = hold_partial_batches(
                requests_of(claimed, limits), limits, {name} if more else set(), held_back
            )
            held_back.update(entry.id for entry in later)
            if later:  # they go with the next claim, in fuller batches
                with store.session() as session:
                    outbox.unclaim(session, [entry.id for entry in later], worker)
            for index, unit in enumerate(units):
                if stop.is_set():
                    _stop(store, [entry for rest in units[index:] for entry in rest], worker, report)
                    return
                if name in report.deferred:
                    for entry in unit:
                        _hand_back(store, entry, worker, report.deferred[name])
                elif name in report.held:
                    for entry in unit:
                        _hold_back(config, store, entry, worker, report.held[name])
                elif goes_in_batch(unit, limits):
                    _send_batch(config, store, registry, providers, unit, worker, report)
                else:
                    _send(config, store, registry, providers, unit[0], worker, report)
                if report.stopped:  # stopped while waiting for a rate-limit slot
                    _stop(store, [entry for rest in units[index + 1 :] for entry in rest], worker, report)
                    return
                sent()
        report.stopped = True
    finally:
        for provider in providers.values():
            provider.close()


def goes_in_batch(unit: list[outbox.OutboxEntry], limits: dict[str, dict[str, int]]) -> bool:
    """Whether the request goes as a batch (`_send_batch`, its key recorded before it is sent):
    a batch sent before, or writes of a kind the provider batches, even one alone. A write
    that went out on its own before (`sent_alone`: with its own key, by an earlier version or
    before its provider batched its kind) goes alone again with that key: in a batch, under
    another key, a write the provider made but whose answer was lost would be made twice."""
    first = unit[0]
    if first.batch_key is not None:
        return True
    return limits.get(first.action.connection, {}).get(first.action.kind, 1) > 1 and not first.sent_alone


def hold_partial_batches(
    units: list[list[outbox.OutboxEntry]],
    limits: dict[str, dict[str, int]],
    more: set[str],
    held_back: Collection[int] = (),
) -> tuple[list[list[outbox.OutboxEntry]], list[outbox.OutboxEntry]]:
    """The requests to send now, and the writes to hand back for the next claim: of a
    connection with `more` writes due than it claimed, the batches not full go with the next
    claim, where they fill up, as long as one full batch goes now (so the queue always moves)
    and none of their writes was `held_back` before (so none waits more than one claim). A
    batch sent before goes as it is."""

    def partial(unit: list[outbox.OutboxEntry]) -> bool:
        action = unit[0].action
        limit = limits.get(action.connection, {}).get(action.kind, 1)
        return (
            goes_in_batch(unit, limits)
            and unit[0].batch_key is None
            and len(unit) < limit
            and not any(entry.id in held_back for entry in unit)
        )

    moving = {u[0].action.connection for u in units if not partial(u)}
    now, later = [], []
    for unit in units:
        name = unit[0].action.connection
        if name in more and name in moving and partial(unit):
            later += unit
        else:
            now.append(unit)
    return now, later


def batch_limits(config: Config, registry: Registry | None, only: list[str] | None) -> dict[str, dict[str, int]]:
    """connection -> {action kind: how many go in one request} for the kinds its provider
    sends in batches (none: one write per request)."""
    registry = registry or installed()
    limits: dict[str, dict[str, int]] = {}
    for name, connection in config.connections.items():
        if only is not None and name not in only:
            continue
        try:
            cls = registry.get(connection.provider)
        except ConnectorError:
            continue  # not installed: sending its writes fails, each with that error
        limits[name] = {kind: limit for kind, limit in cls.batch_limits.items() if limit > 1}
    return limits


# Writes that take back an earlier one (a payment or fee deleted after finance undid its match).
TAKE_BACK = frozenset(REVERSAL_OF.values())


def requests_of(claimed: list[outbox.OutboxEntry], limits: dict[str, dict[str, int]]) -> list[list[outbox.OutboxEntry]]:
    """The claim cut into requests, in the claim's turn order (one of each connection, then
    the next): a batch sent before whose answer never came goes out again whole, as it was;
    writes of a kind the provider batches go together, per kind of record they write to (a
    HubSpot batch update is per object type), up to its limit, in id order; the rest one per
    request, and so does a write sent on its own before (`goes_in_batch`). A batch goes where
    its first write stands, so a later write in it is sent early: never past a write that takes
    one back (`TAKE_BACK`), or the fee booked again after a match was undone and made again
    would reach the ledger before the old fee's deletion, and the ledger hold it twice."""
    kept: dict[str, list[outbox.OutboxEntry]] = defaultdict(list)
    open_batches: dict[tuple[str, str, str], list[outbox.OutboxEntry]] = {}
    units: list[list[outbox.OutboxEntry]] = []
    for entry in claimed:
        action = entry.action
        if entry.batch_key is not None:
            if entry.batch_key not in kept:
                units.append(kept[entry.batch_key])
            kept[entry.batch_key].append(entry)
            continue
        limit = limits.get(action.connection, {}).get(action.kind, 1)
        if action.kind in TAKE_BACK:  # a barrier: no later write joins a batch that goes before it
            open_batches = {place: unit for place, unit in open_batches.items() if place[0] != action.connection}
        if limit <= 1 or entry.sent_alone:
            units.append([entry])  # one at a time, or sent on its own before: again on its own
            continue
        place = (action.connection, action.kind, action.target.object_type if action.target else "")
        unit = open_batches.get(place)
        if unit is None or len(unit) >= limit:
            unit = open_batches[place] = []
            units.append(unit)
        unit.append(entry)
    for unit in units:
        unit.sort(key=lambda e: e.id)
    return units


def _stop(store: Store, unsent: list[outbox.OutboxEntry], worker: str, report: ApplyReport) -> None:
    """Hand the claimed writes not sent yet back to the queue (a shutdown)."""
    released = 0
    if unsent:
        with store.session() as session:
            released = outbox.unclaim(session, [entry.id for entry in unsent], worker)
    report.released += released
    report.stopped = True
    logger.warning("stopping: %d claimed writes handed back unsent", released)


def _check_holds(config: Config, store: Store, only: list[str] | None, report: ApplyReport) -> None:
    """The connections held for a refused credential: due again where the credential changed
    since it was refused; the others stay held (writes planned since are held with them)."""
    names = [name for name in config.connections if only is None or name in only]
    with store.session() as session:
        held = outbox.held_connections(session, names)
    for name, refused in held.items():
        current = credential_fingerprint(config.connection(name), store)
        with store.session() as session:
            if current == refused:
                note = outbox.held_note(session, name)
                report.held[name] = Hold(note, queued=outbox.hold_connection(session, name, note, credential=refused))
                continue
            resumed = report.resumed[name] = outbox.resume_connection(session, name)
            audit(session, "apply", "connection_resumed", "connection", name, {"waiting": resumed}, RESUMED)
        logger.info("%s: %s; %d held writes are due again", name, RESUMED, resumed, extra={"connection": name})


RESUMED = "its credential changed since the provider refused it"


def _hold(
    config: Config, store: Store, entry: outbox.OutboxEntry, worker: str, exc: AuthenticationError, report: ApplyReport
) -> None:
    """The provider refused the connection's credential: every later request with it would be
    refused too, so its writes wait for a new one (none counted as a failed attempt) instead
    of each failing, and being parked, in turn."""
    name = entry.action.connection
    connection = config.connection(name)
    hold = report.held[name] = Hold(refusal_note(connection, exc))
    credential = credential_fingerprint(connection, store)
    with store.session() as session:
        if outbox.release(session, entry.id, worker, hold.reason, not_before=outbox.HELD):
            hold.actions += 1
        hold.queued = outbox.hold_connection(session, name, hold.reason, credential=credential) - hold.actions
        audit(
            session,
            "apply",
            "connection_held",
            "connection",
            name,
            {"action": entry.id, "waiting": hold.waiting, "status": exc.http_status, "code": exc.code},
            hold.reason,
        )
    logger.warning(
        "writes to %s wait for a new credential: %s",
        name,
        first_line(exc, 300),
        extra={"connection": name, "action_id": entry.id},
    )


def _hold_back(config: Config, store: Store, entry: outbox.OutboxEntry, worker: str, hold: Hold) -> None:
    """Hand a claimed write of a held connection back unsent, held with the others."""
    name = entry.action.connection
    credential = credential_fingerprint(config.connection(name), store)
    with store.session() as session:
        if outbox.release(session, entry.id, worker, hold.reason, not_before=outbox.HELD):
            hold.actions += 1
        outbox.hold_connection(session, name, hold.reason, credential=credential)


def _open(
    config: Config, store: Store, registry: Registry | None, providers: dict[str, Provider], name: str
) -> Provider:
    provider = providers.get(name)
    if provider is None:
        provider = providers[name] = open_provider(config.connection(name), store, registry)
    return provider


def _send(
    config: Config,
    store: Store,
    registry: Registry | None,
    providers: dict[str, Provider],
    entry: outbox.OutboxEntry,
    worker: str,
    report: ApplyReport,
) -> None:
    action = entry.action
    if not entry.sent_alone:  # recorded first: should its provider batch this kind one day,
        with store.session() as session:  # a resend goes alone again with this key
            outbox.mark_sent_alone(session, entry.id)
    try:
        result = _open(config, store, registry, providers, action.connection).apply(action)
    except StopRequested:
        _stop(store, [entry], worker, report)
        return
    except RateLimitDeferred as exc:
        _hand_back(store, entry, worker, _defer(store, entry, exc, report))
        return
    except AuthenticationError as exc:
        if exc.refuses_credential:
            _hold(config, store, entry, worker, exc, report)
        else:
            _failed(store, entry, worker, exc, report)
        return
    except (ProviderError, ConnectorError) as exc:
        _failed(store, entry, worker, exc, report)
        return
    _answered(action.kind)
    report.requests += 1
    with store.session() as session:
        _record_done(session, entry, worker, result, report)


def _answered(kind: str) -> None:
    """Crash tests: the provider answered a write (`after_send`, or `after_send_<kind>` for
    one kind's), nothing committed yet."""
    failpoints.hit("after_send")
    failpoints.hit(f"after_send_{kind}")


def _send_batch(
    config: Config,
    store: Store,
    registry: Registry | None,
    providers: dict[str, Provider],
    unit: list[outbox.OutboxEntry],
    worker: str,
    report: ApplyReport,
) -> None:
    """Send several writes of one kind to one connection in one request (or the few the
    provider needs), exactly once: the batch and its key are recorded before it goes out; a
    batch sent before whose answer never came (a crash, a request without an answer) goes
    again whole with its key, and the provider replays its first answer. Each write's own
    result is recorded on it; a write the provider refused fails alone."""
    first = unit[0]
    name = first.action.connection
    kept = first.batch_key is not None  # sent before, its answer unknown: it stays this batch
    key = first.batch_key or f"batch-{uuid.uuid4().hex}"
    if not kept:
        with store.session() as session:
            outbox.form_batch(session, [entry.id for entry in unit], worker, key)
    # A definite refusal of the whole request (it was not made) frees a new batch's writes to
    # go in another one; after a request without an answer, they stay this batch.
    definite = False
    try:
        results = _open(config, store, registry, providers, name).apply_batch([e.action for e in unit], key)
    except StopRequested:
        definite = True
        _stop(store, unit, worker, report)
        return
    except RateLimitDeferred as exc:
        definite = True
        deferral = _defer(store, first, exc, report)
        for entry in unit:
            _hand_back(store, entry, worker, deferral)
        return
    except AuthenticationError as exc:
        definite = True
        if exc.refuses_credential:
            _hold(config, store, first, worker, exc, report)
            for entry in unit[1:]:
                _hold_back(config, store, entry, worker, report.held[name])
        else:
            for entry in unit:
                _failed(store, entry, worker, exc, report)
        return
    except (ProviderError, ConnectorError) as exc:
        definite = isinstance(exc, InvalidRequestError) or not isinstance(exc, ProviderError)
        for entry in unit:
            _failed(store, entry, worker, exc, report)
        return
    finally:
        if definite and not kept:
            with store.session() as session:
                outbox.leave_batch(session, [entry.id for entry in unit])
    _answered(first.action.kind)
    report.requests += 1
    report.batches += 1
    with store.session() as session:
        for entry, result in zip(unit, results, strict=True):
            if isinstance(result, ActionResult):
                _record_done(session, entry, worker, result, report, batch=key)
    refused = [(entry, result) for entry, result in zip(unit, results, strict=True) if isinstance(result, Exception)]
    for entry, error in refused:
        _failed(store, entry, worker, error, report)
    if refused:
        with store.session() as session:
            outbox.leave_batch(session, [entry.id for entry, _ in refused])


def _record_done(
    session: Any,
    entry: outbox.OutboxEntry,
    worker: str,
    result: ActionResult,
    report: ApplyReport,
    *,
    batch: str | None = None,
) -> None:
    """The provider's answer to one write, recorded and audited, in the caller's transaction."""
    action = entry.action
    answer: dict[str, Any] = {"remote_id": result.remote_id, "replayed": result.replayed, "response": result.response}
    if batch is not None:
        answer["batch"] = batch
    if not outbox.complete(session, entry.id, worker, answer):
        return
    audit(
        session,
        "apply",
        action.kind,
        entry.subject_type or "action",
        entry.subject_id,
        {
            "action": entry.id,
            "connection": action.connection,
            "key": action.idempotency_key,
            "remote_id": result.remote_id,
            "replayed": result.replayed,
            **({"batch": batch} if batch is not None else {}),
        },
        entry.summary,
    )
    report.done.append(replace(entry, action=action.model_copy(update={"state": "done"})))
    report.replayed += int(result.replayed)


def _defer(store: Store, entry: outbox.OutboxEntry, exc: RateLimitDeferred, report: ApplyReport) -> Deferral:
    """The connection's allowance is spent for hours (Xero's 5,000 calls a day): this and every
    later write to it wait until then, none of them counted as a failed attempt, so a large
    backlog is not parked action by action for a person."""
    name = entry.action.connection
    wait = timedelta(seconds=exc.retry_after) if exc.retry_after else DEFERRAL_WITHOUT_TIME
    deferral = report.deferred[name] = Deferral(utcnow() + wait, first_line(exc, 500))
    with store.session() as session:
        # the rest of its queue waits too, for every worker, not only for this run
        deferral.queued = outbox.defer_connection(session, name, _waits_note(deferral), not_before=deferral.until)
        audit(
            session,
            "apply",
            "connection_deferred",
            "connection",
            name,
            {"until": deferral.until.isoformat(), "action": entry.id, "waiting": deferral.queued},
            deferral.reason,
        )
    logger.warning(
        "writes to %s wait until %s: %s",
        name,
        deferral.until.isoformat(timespec="minutes"),
        deferral.reason,
        extra={"connection": name, "action_id": entry.id},
    )
    return deferral


def _failed(store: Store, entry: outbox.OutboxEntry, worker: str, exc: ConnectorError, report: ApplyReport) -> None:
    """A failed attempt: back to the queue with backoff, or parked after the last one (or at
    once for a request the provider will never take)."""
    action = entry.action
    context = {"connection": action.connection, "action_id": entry.id}
    message = first_line(exc, 500)
    permanent = isinstance(exc, InvalidRequestError) or not isinstance(exc, ProviderError)
    retry_at = (
        None
        if permanent or entry.attempts >= MAX_ATTEMPTS
        else utcnow() + BACKOFF[min(entry.attempts, len(BACKOFF)) - 1]
    )
    with store.session() as session:
        outbox.fail(session, entry.id, worker, message, retry_at=retry_at)
        audit(
            session,
            "apply",
            "action_failed",
            "action",
            str(entry.id),
            {"kind": action.kind, "connection": action.connection, "attempt": entry.attempts},
            message,
        )
    (report.failed if retry_at else report.parked).append((entry, message))
    logger.warning("action %s failed: %s", entry.id, message, extra=context)


def _waits_note(deferral: Deferral) -> str:
    return f"{outbox.WAITS_NOTE}{deferral.until.isoformat(timespec='minutes')}: {deferral.reason}"


def _hand_back(store: Store, entry: outbox.OutboxEntry, worker: str, deferral: Deferral) -> None:
    with store.session() as session:
        if outbox.release(session, entry.id, worker, _waits_note(deferral), not_before=deferral.until):
            deferral.actions += 1


def _state_of(session: Any, action_id: int) -> str:
    return str(_entries_of(session, action_id)[0].action.state)


def retry(store: Store, action_id: int) -> bool:
    """Queue a failed (parked) or waiting action again, its attempts from zero; False when
    its state forbids it; UsageError when there is no such action."""
    with store.session() as session:
        _state_of(session, action_id)
        return outbox.set_state(session, action_id, "planned", from_states=("failed", "planned"))


def retry_connection(config: Config, store: Store, connection: str, user: str) -> int:
    """Make the writes held for `connection`'s refused credential due again (a person says it
    is fixed); returns how many. If the provider refuses it again, they are held again."""
    config.connection(connection)  # an unknown name is a usage error naming the valid ones
    with store.session() as session:
        resumed = outbox.resume_connection(session, connection)
        if resumed:
            audit(session, user, "connection_resumed", "connection", connection, {"waiting": resumed}, "retry")
    return resumed


@dataclass
class Cancellation:
    """What `cancel` did: whether the action was cancelled, the allocations taken back with it
    (the decision behind a money write), the gap recorded when the decision was kept, and the
    settlement of the withdrawn decision."""

    cancelled: bool
    withdrawn: list[Allocation] = field(default_factory=list)
    gap: Gap | None = None
    settlement: Settlement | None = None


def cancel(
    config: Config,
    store: Store,
    action_id: int,
    user: str,
    *,
    keep_decision: bool = False,
    registry: Registry | None = None,
) -> Cancellation:
    """Cancel a planned or parked action: it is never sent. A write that carries money (a
    ledger payment, a fee, a mark-paid) also takes back the decision behind it (its allocations
    are removed, remembered as rejected, and the rest of what they caused settled), or, with
    `keep_decision` (and always for a mark-paid, which follows from the ledger's own status),
    keeps it and records the difference as a gap that `drift` lists."""
    with store.session() as session:
        [entry] = _entries_of(session, action_id)
        if entry.batch_key is not None and entry.action.state in ("planned", "failed"):
            raise UsageError(
                f"action #{action_id} went out in a batch to {entry.action.connection} that got no answer, so it may "
                "have been made; run `connector apply` to send that batch again and learn its answer, then decide"
            )
        if not outbox.set_state(session, action_id, "cancelled", from_states=("planned", "failed")):
            return Cancellation(False)
        audit(session, user, "cancel", "action", str(action_id), None, None)
        if entry.action.kind not in MONEY_KINDS or not is_writeback(entry):
            return Cancellation(True)
        cause = f"cancel of action {action_id}"
        behind = [] if keep_decision else _decision_behind(session, entry)
        if not behind:
            gap = _unwritten(store, session, entry)
            record_gap(session, user, gap)
            return Cancellation(True, gap=gap)
        withdraw(session, behind, user, "cancel_decision", f"{cause} by {user}", audited=cause)
        # the decision is gone with its write: a later decision making it follow plans it again
        outbox.note_settled(session, action_id, f"{cause} by {user} (the decision behind it withdrawn)")
        settled = settle_decision(
            config,
            store,
            session,
            actor=user,
            cause=cause,
            payments=sorted({a.payment_id for a in behind}),
            invoices=sorted({a.invoice_id for a in behind}),
            registry=registry,
        )
        return Cancellation(True, withdrawn=behind, settlement=settled)


def _entries_of(session: Any, action_id: int) -> list[outbox.OutboxEntry]:
    found = outbox.entries(session, ids=[action_id])
    if not found:
        raise UsageError(f"no action #{action_id}")
    return found


def _decision_behind(session: Any, entry: outbox.OutboxEntry) -> list[Allocation]:
    """The applied allocations a money write follows from (not the ledger's own records): of
    its payment to its invoice (a ledger payment), or of its payment (a fee)."""
    action = entry.action
    if action.kind == "record_fee":
        payment_ids = [entry.subject_id or ""]
        invoice_ids = None
    elif action.kind == "record_payment":
        reference = str(action.payload.get("reference"))
        payment_ids = [reference, *payments_known_as(session, reference)]
        invoice_ids = [entry.subject_id or ""]
    else:
        return []  # a mark-paid follows from the ledger's status, not from a decision
    stored = decisions_store.load_allocations(
        session, status="applied", payment_ids=payment_ids, invoice_ids=invoice_ids
    )
    return [s.allocation for s in stored if s.allocation.rule != LEDGER_RULE]


def payments_known_as(session: Any, remote_id: str) -> list[str]:
    """Our ids of the payments a system knows as `remote_id` (through the refs' remote-id key,
    not by reading every payment's view)."""
    known = records.refs_known_as(session, {(None, remote_id)})
    return [str(r["entity_id"]) for r in known if r["entity_kind"] == "payment" and r["entity_id"]]


def _unwritten(store: Store, session: Any, entry: outbox.OutboxEntry) -> Gap:
    """The difference a cancelled money write leaves while its decision stands."""
    action = entry.action
    invoice = store.get_invoice(entry.subject_id or "", session=session) if entry.subject_type == "invoice" else None
    label = (invoice.number if invoice else None) or entry.subject_id or "?"
    if action.kind == "mark_paid":
        position = invoice_position(invoice, date.today()) if invoice else None
        amount = position.balance if position else Money.zero("XXX")
        payment = None
        reason = f"{label} stays open in {action.connection}: its mark-paid (action #{entry.id}) was cancelled"
    else:
        amount = Money.of(action.payload["amount"], action.payload["currency"])
        reference = str(action.payload.get("reference"))
        payment = (
            entry.subject_id
            if action.kind == "record_fee"
            else next(iter(payments_known_as(session, reference)), reference)
        )
        what = "fee" if action.kind == "record_fee" else f"payment on {label}"
        reason = (
            f"the {what} of {amount} (reference {reference}) is not written to {action.connection}: "
            f"action #{entry.id} was cancelled and the decision kept"
        )
    return Gap(
        "unwritten_decision",
        entry.id,
        action.connection,
        entry.subject_type or "action",
        entry.subject_id or str(entry.id),
        invoice.id if invoice else None,
        payment,
        amount,
        reason,
    )


def state_of(store: Store, action_id: int) -> str:
    """The action's state; UsageError when there is no such action."""
    with store.session() as session:
        return _state_of(session, action_id)


PENDING = ("planned", "in_flight")


def pending(store: Store, only: list[str] | None = None) -> list[outbox.OutboxEntry]:
    with store.session() as session:
        return outbox.entries(session, states=PENDING, connections=only)


def pending_counts(store: Store, only: Sequence[str] | None = None) -> dict[str, int]:
    """How many writes wait per connection (of `only`, when given): no write is read."""
    with store.session() as session:
        counts = outbox.counts_by_connection(session, PENDING)
    return {name: n for name, n in counts.items() if only is None or name in only}


def pending_by_connection(
    store: Store, only: Sequence[str] | None = None
) -> Iterator[tuple[str, int, Iterator[outbox.OutboxEntry]]]:
    """`pending(store, only)`, a connection at a time (by name): its name, how many writes wait,
    and those writes one at a time in their order, read as they are taken (one transaction
    for the whole walk)."""
    with store.session() as session:
        counts = outbox.counts_by_connection(session, PENDING)
        for connection in sorted(counts):
            if only is None or connection in only:
                yield connection, counts[connection], outbox.each_entry(session, states=PENDING, connection=connection)


def each_pending(store: Store, only: Sequence[str] | None = None) -> Iterator[outbox.OutboxEntry]:
    """`pending(store, only)`, one at a time (a connection at a time when `only` is given),
    never all held."""
    if only is None:
        with store.session() as session:
            yield from outbox.each_entry(session, states=PENDING)
        return
    for _, _, entries in pending_by_connection(store, only):
        yield from entries


__all__ = [
    "ApplyReport",
    "Cancellation",
    "Deferral",
    "Hold",
    "apply",
    "cancel",
    "each_pending",
    "pending",
    "pending_by_connection",
    "pending_counts",
    "queue_writes",
    "retry",
    "retry_connection",
    "state_of",
]
