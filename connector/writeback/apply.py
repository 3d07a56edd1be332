"""Queue and send: the writes the plan derives go into the outbox once, and each is sent
exactly once.

Apply takes one action at a time: claim it (committed), send it with its idempotency key
(Stripe and Xero replay their first answer to a repeated key; HubSpot looks the key up before
creating), then record the answer and mark it done in one transaction. A crash between the
provider's answer and our commit leaves the action claimed; the next run takes it over and
the resend is answered from the provider's idempotency record, so the effect happens once.
A failed action keeps its error and is retried with backoff on later runs, up to
`MAX_ATTEMPTS`; then it is parked for a person (`connector actions list --failed`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from connector import failpoints
from connector.config import Config
from connector.connections import check_scope, open_provider
from connector.errors import (
    ConnectorError,
    InvalidRequestError,
    ProviderError,
    RateLimitDeferred,
    UsageError,
    first_line,
)
from connector.providers.base import Provider
from connector.providers.registry import Registry
from connector.state import outbox
from connector.state.bookkeeping import audit
from connector.state.records import utcnow
from connector.state.store import Store
from connector.workers import dead_local_workers, worker_id
from connector.writeback.facts import gather_facts
from connector.writeback.plan import PlannedAction, plan_all

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
LEASE = timedelta(minutes=10)
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2))
# How long a connection's writes wait after a deferral that named no time (Retry-After).
DEFERRAL_WITHOUT_TIME = timedelta(hours=1)


# Plan -------------------------------------------------------------------------------------


def queue_writes(
    config: Config, store: Store, registry: Registry | None = None, today: date | None = None
) -> list[PlannedAction]:
    """Derive the writes each system needs (payments, fees, statuses) and queue the new ones in
    the outbox; returns everything derived. Reminders are dunning's (`connector.dunning.run`)."""
    day = today or date.today()
    derived = plan_all(gather_facts(config, store, registry, day), day)
    with store.session() as session:
        added = outbox.add_planned(session, [(p.action, p.subject_type, p.subject_id, p.summary) for p in derived])
    logger.info("planned %d writes (%d new)", len(derived), added)
    return derived


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
class ApplyReport:
    done: list[outbox.OutboxEntry] = field(default_factory=list)
    replayed: int = 0
    failed: list[tuple[outbox.OutboxEntry, str]] = field(default_factory=list)
    parked: list[tuple[outbox.OutboxEntry, str]] = field(default_factory=list)
    # connection -> its writes wait: a daily rate limit is spent (no attempt is counted)
    deferred: dict[str, Deferral] = field(default_factory=dict)

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
) -> ApplyReport:
    """Send every action that is due, until none is left for this worker."""
    check_scope(config, store)
    worker = worker or worker_id()
    report = ApplyReport()
    providers: dict[str, Provider] = {}
    try:
        while True:
            with store.session() as session:
                dead = dead_local_workers(outbox.in_flight_workers(session))
                claimed = outbox.claim(
                    session,
                    worker,
                    lease=LEASE,
                    limit=batch,
                    connections=only,
                    dead_workers=dead,
                    skip_connections=list(report.deferred),
                )
            if not claimed:
                return report
            for entry in claimed:
                deferral = report.deferred.get(entry.action.connection)
                if deferral is not None:
                    _hand_back(store, entry, worker, deferral)
                else:
                    _send(config, store, registry, providers, entry, worker, report)
    finally:
        for provider in providers.values():
            provider.close()


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
    context = {"connection": action.connection, "action_id": entry.id}
    try:
        provider = providers.get(action.connection)
        if provider is None:
            provider = providers[action.connection] = open_provider(
                config.connection(action.connection), store, registry
            )
        result = provider.apply(action)
    except RateLimitDeferred as exc:
        # The connection's allowance is spent for hours (Xero's 5,000 calls a day): this and
        # every later write to it wait until then, none of them counted as a failed attempt,
        # so a large backlog is not parked action by action for a person.
        wait = timedelta(seconds=exc.retry_after) if exc.retry_after else DEFERRAL_WITHOUT_TIME
        deferral = report.deferred[action.connection] = Deferral(utcnow() + wait, first_line(exc, 500))
        with store.session() as session:
            # the rest of its queue waits too, for every worker, not only for this run
            deferral.queued = outbox.defer_connection(
                session, action.connection, _waits_note(deferral), not_before=deferral.until
            )
            audit(
                session,
                "apply",
                "connection_deferred",
                "connection",
                action.connection,
                {"until": deferral.until.isoformat(), "action": entry.id, "waiting": deferral.queued},
                deferral.reason,
            )
        logger.warning(
            "writes to %s wait until %s: %s",
            action.connection,
            deferral.until.isoformat(timespec="minutes"),
            deferral.reason,
            extra=context,
        )
        _hand_back(store, entry, worker, deferral)
        return
    except (ProviderError, ConnectorError) as exc:
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
        return
    failpoints.hit("after_send")  # crash tests: the provider answered, nothing committed yet
    answer = {"remote_id": result.remote_id, "replayed": result.replayed, "response": result.response}
    with store.session() as session:
        if outbox.complete(session, entry.id, worker, answer):
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
                },
                entry.summary,
            )
            report.done.append(entry)
            report.replayed += int(result.replayed)


def _waits_note(deferral: Deferral) -> str:
    return f"waits until {deferral.until.isoformat(timespec='minutes')}: {deferral.reason}"


def _hand_back(store: Store, entry: outbox.OutboxEntry, worker: str, deferral: Deferral) -> None:
    with store.session() as session:
        if outbox.release(session, entry.id, worker, _waits_note(deferral), not_before=deferral.until):
            deferral.actions += 1


def _state_of(session: Any, action_id: int) -> str:
    found = outbox.entries(session, ids=[action_id])
    if not found:
        raise UsageError(f"no action #{action_id}")
    return str(found[0].action.state)


def retry(store: Store, action_id: int) -> bool:
    """Queue a failed (parked) or waiting action again, its attempts from zero; False when
    its state forbids it; UsageError when there is no such action."""
    with store.session() as session:
        _state_of(session, action_id)
        return outbox.set_state(session, action_id, "planned", from_states=("failed", "planned"))


def cancel(store: Store, action_id: int, user: str) -> bool:
    with store.session() as session:
        _state_of(session, action_id)
        changed = outbox.set_state(session, action_id, "cancelled", from_states=("planned", "failed"))
        if changed:
            audit(session, user, "cancel", "action", str(action_id), None, None)
        return changed


def state_of(store: Store, action_id: int) -> str:
    """The action's state; UsageError when there is no such action."""
    with store.session() as session:
        return _state_of(session, action_id)


def pending(store: Store, only: list[str] | None = None) -> list[outbox.OutboxEntry]:
    with store.session() as session:
        return outbox.entries(session, states=("planned", "in_flight"), connections=only)


__all__ = ["ApplyReport", "Deferral", "apply", "cancel", "pending", "queue_writes", "retry", "state_of"]
