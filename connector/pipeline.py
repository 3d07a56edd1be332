"""The product loop, written once: sync -> link -> provider states -> reconcile -> plan -> apply.

The CLI (`connector sync --apply`, `plan`, `apply`), `connector demo` and `connector serve` all
run their stages through these functions, so a step added or reordered here changes every way
the connector runs. Each step reads what the previous one stored, so a step can also run on
its own (the service pulls each stream as its own unit of work, then runs `after_pull` once).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, TypeVar

from connector import __version__
from connector.config import Config
from connector.connections import settings_as_marked, system_ranks
from connector.dunning.run import queue as queue_reminders
from connector.dunning.states import apply_provider_states
from connector.linking.run import LinkReport, link_book
from connector.providers.registry import Registry, installed
from connector.reconcile.run import ReconcileSummary, run_reconciliation, take_ledger_records
from connector.state.outbox import OutboxEntry
from connector.state.store import Store
from connector.sync import Progress, RemapReport, SyncEngine, SyncReport, remap_book
from connector.writeback.apply import ApplyReport, apply, pending, queue_writes
from connector.writeback.plan import PlannedAction

logger = logging.getLogger(__name__)

Then = Literal["sync", "plan", "apply"]
T = TypeVar("T")


def link(config: Config, store: Store, registry: Registry | None = None, *, full: bool = False) -> LinkReport:
    """Link the same customer, invoice and payment across systems, then copy what the linked
    systems say of disputes, promises, plans and pauses (finance's own settings win); then a
    payment we applied that the ledger now records is its ledger record (`take_ledger_records`),
    so that nothing counts it twice before the next reconciliation. The states are copied
    for the records whose views moved: of the records the link pass read (`LinkReport.moved`),
    or, after a pass over the whole book and at least every `FULL_PASS_EVERY`, of every record
    by its digest (`full`: every record read again).

    The same stored views give the same links: linking itself runs only when a view was
    stored or changed since it last ran, or the systems or the connector changed (`views_mark`;
    at least every `FULL_PASS_EVERY`, and always with `full`), not when only decisions, writes,
    reminders or linking's own merges moved the book (linking what it merged links nothing)."""
    registry = registry or installed()
    store.keep_statistics()  # what a sync stored is what linking reads: planned for the book as it is
    mark = views_mark(config, store, registry)
    linked = _unless_unchanged(
        store, VIEWS_MARK, mark, lambda: link_book(config, store, registry, full=full), full=full
    )
    moved = {} if isinstance(linked, EngineSkip) else linked.moved  # nothing; None: everything
    if moved is None:
        store.release_idle()  # what the whole book's pass held, before every record's states
    last_whole = None if full else _stored_mark(store, STATES_MARK)
    if moved is None or last_whole is None or datetime.now(UTC) - last_whole[1] >= FULL_PASS_EVERY:
        started = datetime.now(UTC)
        apply_provider_states(config, store, registry, full=full)
        store.set_cursor(*STATES_MARK, json.dumps({"mark": "every record", "at": started.isoformat()}))
    else:
        apply_provider_states(config, store, registry, only=moved)
    take_ledger_records(config, store, registry)
    return LinkReport() if isinstance(linked, EngineSkip) else linked


def remap(
    config: Config,
    store: Store,
    registry: Registry | None = None,
    *,
    connections: Sequence[str] = (),
    streams: Sequence[str] = (),
) -> RemapReport:
    """Map the stored raw payloads again through the current mapping and store them as a sync
    would (`connector.sync.remap_book`: no provider request), then link as after a sync."""
    report = remap_book(config, store, registry, connections=connections, streams=streams)
    report.links = link(config, store, registry).by_rule()
    return report


def sync(
    config: Config,
    store: Store,
    registry: Registry | None = None,
    *,
    connections: tuple[str, ...] | list[str] = (),
    streams: tuple[str, ...] | list[str] = (),
    full: bool = False,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    then_link: bool = True,
) -> SyncReport:
    """Pull what changed from each chosen connection and stream; then link what is stored."""
    engine = SyncEngine(config, store, registry, progress=progress, stop=stop)
    report = engine.run(connections=connections, streams=streams, full=full)
    store.release_idle()  # what the streams' pages and connections held, before the engine reads
    if then_link:
        linked = link_if_changed(config, store, registry, full=full)
        report.links = {} if isinstance(linked, EngineSkip) else linked.by_rule()
    return report


def plan(
    config: Config,
    store: Store,
    registry: Registry | None = None,
    today: date | None = None,
    *,
    states_current: bool = False,
    keep: bool = True,
    only_changed: bool = False,
) -> list[PlannedAction]:
    """Queue the writes each system needs, then the reminders due; returns everything derived
    (what was queued before and still follows is derived again, never queued twice), or, with
    `keep=False`, the reminders' actions only (the writes are queued, not kept: a large book
    derives hundreds of thousands). `states_current`: the providers' collections states were
    copied since the book last changed (a link just ran, or its mark held), so dunning need
    not copy them again. `only_changed`: the writes of the customers whose inputs moved since
    their last plan only (`queue_writes`)."""
    day = today or date.today()
    store.keep_statistics()  # a first reconciliation writes an allocation per payment
    derived = queue_writes(config, store, registry, day, keep=keep, only_changed=only_changed)
    store.keep_statistics()  # a first plan queues a write or more per invoice, which dunning reads
    reminders = queue_reminders(config, store, day, registry, states_first=not states_current)
    derived += [PlannedAction(a, t, i, s) for a, t, i, s in reminders.actions]
    logger.info("planned %d actions with reminders", len(derived))
    return derived


def reconcile_and_plan(
    config: Config,
    store: Store,
    registry: Registry | None = None,
    *,
    link_first: bool = True,
    keep: bool = True,
    only_changed: bool = False,
) -> tuple[ReconcileSummary, list[PlannedAction]]:
    """What follows the pulls: link (unless the sync just did, or nothing linking reads moved
    since it last ran: `link_if_changed`), reconcile, plan (`keep` and `only_changed` as `plan`
    takes them). Linking copies the providers' collections states (`link`), so they are
    current when the plan runs."""
    if link_first:
        link_if_changed(config, store, registry)
    store.keep_statistics()  # linking merged records
    summary = run_reconciliation(config, store, registry=registry)
    return summary, plan(config, store, registry, states_current=True, keep=keep, only_changed=only_changed)


# Where the engine's mark is kept: a cursor no connection can be named after.
ENGINE_MARK = ("(engine)", "reconcile-and-plan")
LINK_MARK = ("(engine)", "link")
PLAN_MARK = ("(engine)", "plan")  # `connector plan`'s own
RECONCILE_MARK = ("(engine)", "reconcile")  # `connector reconcile`'s own
VIEWS_MARK = ("(engine)", "link-views")
# When the providers' states were last weighed for every record (`link`).
STATES_MARK = ("(engine)", "states-every-record")
# Even with nothing changed, the engine runs in full this often: a change committed by another
# worker while the mark was taken, with a clock older than the newest one, waits no longer.
FULL_PASS_EVERY = timedelta(hours=1)


@dataclass
class EngineSkip:
    """Why `reconcile_and_plan_if_changed` did not run the engine."""

    last_run: datetime  # the run whose mark still holds

    def __str__(self) -> str:
        return f"nothing changed since the run of {self.last_run.isoformat(timespec='seconds')}"


def reconcile_and_plan_if_changed(
    config: Config, store: Store, registry: Registry | None = None, *, today: date | None = None
) -> tuple[ReconcileSummary, list[PlannedAction]] | EngineSkip:
    """`reconcile_and_plan`, unless nothing the engine depends on moved since it last ran:
    the company's book (`Store.book_position`: records stored, decisions, allocations,
    proposals, the outbox, the audit log), the day, the configuration, the connector's and
    the providers' versions. A run records the mark taken before it, so its own writes make
    the next tick run once more (and find nothing to do); a tick after that with nothing new
    reads a few aggregates and stops. At least one pass every `FULL_PASS_EVERY`. The writes
    are queued, not returned (`plan(keep=False)`): only the reminders' actions are; and only
    the customers whose inputs moved since their last plan are planned again (content
    digests, not clocks: `connector.writeback.unchanged`)."""
    registry = registry or installed()
    mark = engine_mark(config, store, registry, today or date.today())
    return _unless_unchanged(
        store, ENGINE_MARK, mark, lambda: reconcile_and_plan(config, store, registry, keep=False, only_changed=True)
    )


def plan_if_changed(
    config: Config, store: Store, registry: Registry | None = None, *, full: bool = False
) -> EngineSkip | None:
    """`plan` (its writes queued, not kept), unless nothing it reads moved since it last ran:
    the same mark as `reconcile_and_plan_if_changed` (the book, the day, the configuration,
    the versions), kept apart, so `connector plan` run again on a book nothing changed
    derives nothing; when it runs, only the customers whose inputs moved since their last plan
    are planned again (`queue_writes(only_changed=True)`). `full` plans whatever the mark
    says, every customer."""
    registry = registry or installed()
    mark = engine_mark(config, store, registry, date.today())
    done = _unless_unchanged(
        store, PLAN_MARK, mark, lambda: plan(config, store, registry, keep=False, only_changed=not full), full=full
    )
    return done if isinstance(done, EngineSkip) else None


def reconcile_if_changed(
    config: Config, store: Store, registry: Registry | None = None, *, full: bool = False
) -> ReconcileSummary | EngineSkip:
    """`run_reconciliation`, unless nothing it reads moved since it last ran: the mark of
    `reconcile_and_plan_if_changed` (the day, the configuration, the versions) over what it
    reads of the book (`RECONCILE_READS`: records, views, allocations, proposals, reversals),
    kept apart, so `connector reconcile` run again on a book nothing changed, or after a plan,
    reads a few aggregates instead of matching the whole book again. `full` reconciles
    whatever the mark says, and makes every payment's ledger records again whatever their
    digests say."""
    registry = registry or installed()
    mark = engine_mark(config, store, registry, date.today(), RECONCILE_READS)

    def reconcile() -> ReconcileSummary:
        store.keep_statistics()
        return run_reconciliation(config, store, registry=registry, full=full)

    return _unless_unchanged(store, RECONCILE_MARK, mark, reconcile, full=full)


def link_if_changed(
    config: Config, store: Store, registry: Registry | None = None, *, full: bool = False
) -> LinkReport | EngineSkip:
    """`link`, unless nothing it reads moved since it last ran (the mark of
    `reconcile_and_plan_if_changed` over `LINK_READS`, kept apart): a sync that stored nothing
    new links nothing and reads no view, nor does the engine's pass after its own writes. `full`
    links whatever the mark says."""
    registry = registry or installed()
    mark = engine_mark(config, store, registry, date.today(), LINK_READS)
    return _unless_unchanged(store, LINK_MARK, mark, lambda: link(config, store, registry, full=full), full=full)


def _unless_unchanged(
    store: Store, where: tuple[str, str], mark: str, run: Callable[[], T], *, full: bool = False
) -> T | EngineSkip:
    """`run()`, and the mark it ran on stored at `where`; or an `EngineSkip` when the mark
    stored there is `mark` and younger than `FULL_PASS_EVERY` (and not `full`)."""
    now = datetime.now(UTC)
    stored = None if full else _stored_mark(store, where)
    if stored is not None and stored[0] == mark and now - stored[1] < FULL_PASS_EVERY:
        skip = EngineSkip(stored[1])
        logger.info("%s skipped: %s", where[1], skip)
        return skip
    result = run()
    store.set_cursor(*where, json.dumps({"mark": mark, "at": now.isoformat()}))
    return result


@dataclass(frozen=True)
class BookReads:
    """The part of the book a stage reads, for its mark: these tables, and of the outbox the
    actions of `outbox_kinds` only (None: the whole book)."""

    tables: tuple[str, ...] | None = None
    outbox_kinds: tuple[str, ...] | None = None


# What linking reads of the book (`link`: the links, the providers' states it copies, the
# ledger records it takes): the records and their views, the allocations and the ledger
# payments being taken back (`take_ledger_records`). Not the proposals, the rest of the outbox
# or the audit log, which reconciliation, the plan and the reminders move at every run: the
# first `connector sync` with nothing new after the service's ticks took the providers' states
# and the ledger's records of the whole book again (9.3 s on the large book) to change nothing.
LINK_READS = BookReads(
    tables=("refs", "customers", "invoices", "payments", "allocations", "outbox_actions"),
    outbox_kinds=("delete_payment",),
)
# What `run_reconciliation` reads of the book: the records and their views, the allocations
# (the rejected ones too) and the proposals, which decisions change in place (their states and
# decision times are in the position), and the ledger payments finance is taking back (the
# outbox's `delete_payment` writes). Not the rest of the outbox nor the audit log: the plan and
# the reminders move them at every run, so `connector reconcile` after a `connector plan` with
# nothing new matched the whole book again (15-37 s on the large book) to apply nothing.
RECONCILE_READS = BookReads(
    tables=("refs", "customers", "invoices", "payments", "allocations", "proposals", "outbox_actions"),
    outbox_kinds=("delete_payment",),
)


def engine_mark(config: Config, store: Store, registry: Registry, today: date, reads: BookReads = BookReads()) -> str:
    """A digest of everything a reconcile-and-plan run reads (or of `reads` of the book); no
    secret goes into it (the settings as dumped show a secret as stars)."""
    parts: dict[str, Any] = {
        "book": store.book_position(only=reads.tables, outbox_kinds=reads.outbox_kinds),
        "today": today.isoformat(),
        **_versions(registry),
        "connections": settings_as_marked(config),
        "dunning": config.dunning,
        "reconcile": config.reconcile.model_dump(mode="json"),
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def views_mark(config: Config, store: Store, registry: Registry) -> str:
    """A digest of what linking reads: the stored views (`Store.views_position`), the systems
    and their kinds and ranks, the connector's and the providers' versions."""
    parts = {
        "views": store.views_position(),
        **_versions(registry),
        "systems": sorted((name, kind, rank) for name, (kind, rank) in system_ranks(config, registry).items()),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _versions(registry: Registry) -> dict[str, Any]:
    """The connector's and the installed providers' versions, as both marks hold them."""
    return {
        "connector": __version__,
        "providers": sorted(f"{info.name} {info.origin} {info.target}" for info in registry.available),
    }


def _stored_mark(store: Store, where: tuple[str, str]) -> tuple[str, datetime] | None:
    value = store.get_cursor(*where)
    if not value:
        return None
    try:
        found = json.loads(value)
        return str(found["mark"]), datetime.fromisoformat(found["at"])
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: run in full, and write a good one


@dataclass
class RunResult:
    sync: SyncReport
    reconciliation: ReconcileSummary | None = None
    planned: list[PlannedAction] = field(default_factory=list)
    queued: list[OutboxEntry] = field(default_factory=list)  # the outbox's pending writes after the plan
    applied: ApplyReport | None = None


def run(
    config: Config,
    store: Store,
    registry: Registry | None = None,
    *,
    then: Then = "sync",
    connections: tuple[str, ...] | list[str] = (),
    streams: tuple[str, ...] | list[str] = (),
    full: bool = False,
    progress: Progress | None = None,
    on_synced: Callable[[SyncReport], None] | None = None,
    on_planned: Callable[[list[OutboxEntry]], None] | None = None,
    on_applying: Callable[[ApplyReport], None] | None = None,
) -> RunResult:
    """The whole loop as far as `then`: "sync" (pull and link), "plan" (and reconcile and queue
    the writes, a dry run of the sending), "apply" (and send every pending write once).
    `on_synced`, `on_planned` (the pending writes) and `on_applying` (after each request the
    sending made) let a caller show progress."""
    registry = registry or installed()
    result = RunResult(
        sync(config, store, registry, connections=connections, streams=streams, full=full, progress=progress)
    )
    if on_synced is not None:
        on_synced(result.sync)
    if then == "sync":
        return result
    result.reconciliation, result.planned = reconcile_and_plan(config, store, registry, link_first=False)
    result.queued = pending(store)
    if on_planned is not None:
        on_planned(result.queued)
    if then == "apply":
        result.applied = apply(config, store, registry, progress=on_applying)
    return result


__all__ = [
    "EngineSkip",
    "RunResult",
    "apply",
    "BookReads",
    "LINK_READS",
    "RECONCILE_READS",
    "engine_mark",
    "link",
    "link_if_changed",
    "plan",
    "plan_if_changed",
    "reconcile_and_plan",
    "reconcile_and_plan_if_changed",
    "reconcile_if_changed",
    "remap",
    "run",
    "sync",
    "views_mark",
]
