"""The outbox: planned writes, claimed by one worker at a time, done exactly once.

States: planned -> in_flight (claimed) -> done, or back to planned with `next_attempt_at` after
a failure, or `failed` (parked for a person) after the last attempt; `cancelled` by a person.
A claim is a compare-and-swap on the row, so two workers never both send an action; a claim
whose worker is gone (its lease ran out) is taken over, and the provider's idempotency key
makes that resend harmless. A claim takes a share of every connection with work due (`claim`).

A planned action may wait on its connection rather than on its own failure, no attempt
counted: until a spent limit resets (`defer_connection`, `next_attempt_at` that moment), or
until a refused credential changes (`hold_connection`, `next_attempt_at` = `HELD`, the refused
credential's fingerprint in `result`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from connector.model import Action, Ref
from connector.state.bookkeeping import jsonable
from connector.state.records import rowcount, utcnow
from connector.state.tables import json_text, table
from connector.state.upsert import Bulk, bulk_write, in_chunks, mine, mine_by_key, one_of


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    action: Action
    attempts: int
    last_error: str | None
    result: dict[str, Any] | None
    subject_type: str | None
    subject_id: str | None
    summary: str | None
    claimed_by: str | None
    claimed_at: datetime | None
    next_attempt_at: datetime | None
    updated_at: datetime
    batch_key: str | None = None  # sent in a batch whose answer is not known yet (`form_batch`)
    sent_alone: bool = False  # went out on its own with its own key (`mark_sent_alone`)


def _entry(row: Any) -> OutboxEntry:
    target = row["target"]
    action = Action.model_construct(
        connection=row["connection"],
        kind=row["kind"],
        target=None if target is None else Ref.model_validate(target),
        payload=row["payload"],
        state=row["state"],
        idempotency_key=row["idempotency_key"],
    )
    return OutboxEntry(
        id=row["id"],
        action=action,
        attempts=row["attempts"],
        last_error=row["last_error"],
        result=row["result"],
        subject_type=row["subject_type"],
        subject_id=row["subject_id"],
        summary=row["summary"],
        claimed_by=row["claimed_by"],
        claimed_at=row["claimed_at"],
        next_attempt_at=row["next_attempt_at"],
        updated_at=row["updated_at"],
        batch_key=row["batch_key"],
        sent_alone=bool(row["sent_alone"]),
    )


# A planned write's row, as `add_planned` writes it: a key already queued is kept as it is (every
# column kept: ON CONFLICT DO NOTHING), the JSON encoded once here as SQLAlchemy's JSON type
# encodes it (a write without a target holds JSON null, as before).
_PLANNED_COLUMNS = (
    "idempotency_key",
    "connection",
    "kind",
    "target",
    "payload",
    "subject_type",
    "subject_id",
    "summary",
)
_PLANNED_CONSTANTS = ("state", "attempts", "created_at", "updated_at")
_PLANNED = Bulk(
    table("outbox_actions"),
    _PLANNED_COLUMNS,
    key=("idempotency_key",),
    constants=_PLANNED_CONSTANTS,
    keep=_PLANNED_COLUMNS + _PLANNED_CONSTANTS,
    json_text=("target", "payload"),
)


def add_planned(session: Session, planned: Sequence[tuple[Action, str, str, str]]) -> int:
    """Queue (action, subject_type, subject_id, summary); a key already queued is kept; returns
    how many were queued. The keys already in the outbox are looked up first (through its unique
    index) and only the others are made into rows, written in bulk (`upsert.bulk_write`: a
    plan's first run queues a large book's 200,000 writes): a plan derives every write again
    each time, and most are queued already (one a racing writer queues in between is still kept
    by ON CONFLICT)."""
    queued = queued_keys(session, [action.idempotency_key for action, _, _, _ in planned])
    rows: dict[str, tuple[Any, ...]] = {}
    for action, subject_type, subject_id, summary in planned:
        key = action.idempotency_key
        if key in queued:
            continue
        target, payload = json.dumps(jsonable(action.target)), json.dumps(jsonable(action.payload))
        rows[key] = (key, action.connection, action.kind, target, payload, subject_type, subject_id, summary)
    now = utcnow()
    return bulk_write(
        session, _PLANNED, list(rows.values()), new=True, state="planned", attempts=0, created_at=now, updated_at=now
    )


def queued_keys(session: Session, keys: Sequence[str]) -> set[str]:
    """Those of `keys` the outbox holds (in any state)."""
    outbox = table("outbox_actions")
    found: set[str] = set()
    for chunk in in_chunks(session, sorted(set(keys))):
        query = sa.select(outbox.c.idempotency_key).where(
            mine(session, outbox), one_of(session, outbox.c.idempotency_key, chunk)
        )
        found.update(str(row[0]) for row in session.execute(query))
    return found


def entries(
    session: Session,
    *,
    states: Sequence[str] | None = None,
    connections: Sequence[str] | None = None,
    ids: Sequence[int] | None = None,
    subject_ids: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
    targets: Collection[tuple[str, str | None, str]] | None = None,
) -> list[OutboxEntry]:
    """The actions, by id, that pass every filter given; `targets` as `aimed_at`."""
    outbox = table("outbox_actions")
    company = mine(session, outbox) if ids is None else mine_by_key(session, outbox)
    query = sa.select(outbox).where(company).order_by(outbox.c.id)
    if targets is not None:
        query = query.where(aimed_at(outbox, targets))
    query = _filtered(session, query, kinds=kinds, states=states, ids=ids)
    if connections is not None:
        query = query.where(outbox.c.connection.in_(list(connections)))
    if subject_ids is not None:
        query = query.where(one_of(session, outbox.c.subject_id, list(subject_ids)))
    return [_entry(row) for row in session.execute(query).mappings()]


def _filtered(
    session: Session,
    query: sa.Select[Any],
    *,
    kinds: Sequence[str] | None,
    states: Sequence[str] | None,
    ids: Sequence[int] | None,
) -> sa.Select[Any]:
    """`query` of the outbox kept to the actions of `kinds`, in `states`, of `ids` (each given)."""
    outbox = table("outbox_actions")
    if kinds is not None:
        query = query.where(outbox.c.kind.in_(list(kinds)))
    if states is not None:
        query = query.where(outbox.c.state.in_(list(states)))
    if ids is not None:
        query = query.where(one_of(session, outbox.c.id, list(ids)))
    return query


@dataclass(frozen=True)
class WriteFacts:
    """An outbox action as a report reads it: what, where, in which state since when, about
    whom; no model built, no result read (`write_facts`)."""

    id: int
    idempotency_key: str
    connection: str
    kind: str
    target: tuple[str, str, str] | None  # (system, object type, remote id)
    payload: Mapping[str, Any]
    state: str
    updated_at: datetime
    summary: str | None
    subject_type: str | None
    subject_id: str | None


def write_facts(
    session: Session,
    *,
    states: Sequence[str] | None = None,
    ids: Sequence[int] | None = None,
    kinds: Sequence[str] | None = None,
    targets: Collection[tuple[str, str | None, str]] | None = None,
    batch: int = 1000,
) -> Iterator[WriteFacts]:
    """The actions, by id, that pass every filter given (as `entries`), as `WriteFacts`, the
    database handing over `batch` rows at a time: the target's three fields read by the
    database, the payload the one JSON decoded here. A report that walks a large outbox (the
    writes aimed at a batch of records, every unsent money write) spends its time on its own
    checks, not on building `Action` models (about 45 us a write on the large book).
    `targets` are looked up by their remote ids alone (`ix_outbox_actions_target`, the ids as
    one parameter) and their system and object type checked here: `aimed_at`'s list of
    (system, type, id) rows, thousands of parameters, cost more to build and send than the
    rows it keeps (a batch of 500 invoices' 1,500 views)."""
    outbox = table("outbox_actions")
    query = (
        sa.select(
            outbox.c.id,
            outbox.c.connection,
            outbox.c.kind,
            *(json_text(outbox.c.target, field) for field in ("system", "object_type", "remote_id")),
            outbox.c.idempotency_key,
            outbox.c.payload,
            outbox.c.state,
            outbox.c.updated_at,
            outbox.c.summary,
            outbox.c.subject_type,
            outbox.c.subject_id,
        )
        .where(mine(session, outbox))
        .order_by(outbox.c.id)
    )
    typed: set[tuple[str, str, str]] = set()
    untyped: set[tuple[str, str]] = set()
    if targets is not None:
        if not targets:
            return
        typed = {(s, t, r) for s, t, r in targets if t is not None}
        untyped = {(s, r) for s, t, r in targets if t is None}
        query = query.where(one_of(session, json_text(outbox.c.target, "remote_id"), sorted({r for *_, r in targets})))
    query = _filtered(session, query, kinds=kinds, states=states, ids=ids)
    for partition in session.execute(query.execution_options(yield_per=batch)).partitions():
        for row in partition:
            system, object_type, remote_id = row[3:6]
            if (
                targets is not None
                and (system, object_type, remote_id) not in typed
                and (system, remote_id) not in untyped
            ):
                continue
            yield WriteFacts(
                id=row[0],
                idempotency_key=row[6],
                connection=row[1],
                kind=row[2],
                target=None if remote_id is None else (str(system), str(object_type), str(remote_id)),
                payload=row[7],
                state=row[8],
                updated_at=row[9],
                summary=row[10],
                subject_type=row[11],
                subject_id=row[12],
            )


@dataclass(frozen=True)
class SentMoneyWrite:
    """A payment or a fee written to a ledger (done), as much of it as says whose money it is."""

    kind: str  # record_payment / record_fee
    invoice: str | None  # a payment's invoice (its subject)
    payment: str | None  # a fee's payment (its subject)
    reference: str | None  # what the payment was recorded by: the gateway's id, or ours


def sent_money_writes(session: Session) -> list[SentMoneyWrite]:
    """Every payment and fee written to a ledger (done), four columns each, by id."""
    outbox = table("outbox_actions")
    query = (
        sa.select(outbox.c.kind, outbox.c.subject_type, outbox.c.subject_id, json_text(outbox.c.payload, "reference"))
        .where(mine(session, outbox), outbox.c.state == "done", outbox.c.kind.in_(("record_payment", "record_fee")))
        .order_by(outbox.c.id)
    )
    found = []
    for kind, subject_type, subject_id, reference in session.execute(query):
        ours = str(subject_id) if subject_id is not None else None
        found.append(
            SentMoneyWrite(
                kind=kind,
                invoice=ours if subject_type == "invoice" else None,
                payment=ours if subject_type == "payment" else None,
                reference=None if reference is None else str(reference),
            )
        )
    return found


def each_entry(
    session: Session,
    *,
    states: Sequence[str],
    connection: str | None = None,
    kinds: Sequence[str] | None = None,
    batch: int = 1000,
) -> Iterator[OutboxEntry]:
    """`entries(states=..., connections=[connection], kinds=...)`, one at a time in their
    order, the database handing over `batch` rows at a time: a listing of a long queue never
    holds it."""
    outbox = table("outbox_actions")
    query = sa.select(outbox).where(mine(session, outbox), outbox.c.state.in_(list(states))).order_by(outbox.c.id)
    if connection is not None:
        query = query.where(outbox.c.connection == connection)
    if kinds is not None:
        query = query.where(outbox.c.kind.in_(list(kinds)))
    for partition in session.execute(query.execution_options(yield_per=batch)).mappings().partitions():
        yield from (_entry(row) for row in partition)


def counts_by_connection(session: Session, states: Sequence[str]) -> dict[str, int]:
    """How many actions in `states` each connection has (connections with none are absent)."""
    outbox = table("outbox_actions")
    query = (
        sa.select(outbox.c.connection, sa.func.count())
        .where(mine(session, outbox), outbox.c.state.in_(list(states)))
        .group_by(outbox.c.connection)
    )
    return {str(connection): int(count) for connection, count in session.execute(query)}


def unsent_keys(session: Session, kinds: Collection[str]) -> list[tuple[int, str, str, str]]:
    """(id, idempotency key, subject type, subject id) of every action of `kinds` not sent yet
    (planned, or parked after failing), by id: four columns each, for a check against what a
    plan derived."""
    outbox = table("outbox_actions")
    query = (
        sa.select(outbox.c.id, outbox.c.idempotency_key, outbox.c.subject_type, outbox.c.subject_id)
        .where(mine(session, outbox), outbox.c.state.in_(("planned", "failed")), outbox.c.kind.in_(sorted(kinds)))
        .order_by(outbox.c.id)
    )
    return [(int(i), str(key), str(kind or ""), str(subject or "")) for i, key, kind, subject in session.execute(query)]


def done_updates(
    session: Session, targets: Collection[tuple[str, str, str]]
) -> list[tuple[int, tuple[str, str, str], datetime]]:
    """(outbox id, target (system, object type, remote id), when it was done) of every CRM
    property update done to one of `targets`, by id: found through `ix_outbox_actions_target`
    by the remote id, a chunk of them a statement, then the system and type checked here."""
    if not targets:
        return []
    outbox = table("outbox_actions")
    system, object_type, remote_id = (json_text(outbox.c.target, f) for f in ("system", "object_type", "remote_id"))
    wanted = set(targets)
    query = sa.select(outbox.c.id, system, object_type, remote_id, outbox.c.updated_at).where(
        mine(session, outbox), outbox.c.state == "done", outbox.c.kind == "update_properties"
    )
    found: list[tuple[int, tuple[str, str, str], datetime]] = []
    for chunk in in_chunks(session, sorted({r for _, _, r in wanted})):
        for action_id, s, t, r, when in session.execute(query.where(one_of(session, remote_id, chunk))).all():
            if (str(s), str(t), str(r)) in wanted:
                found.append((int(action_id), (str(s), str(t), str(r)), when))
    return sorted(found)


def aimed_at(outbox: sa.Table, targets: Collection[tuple[str, str | None, str]]) -> sa.ColumnElement[bool]:
    """The actions whose target is one of `targets`, each (system, object type or None for any,
    remote id): found through `ix_outbox_actions_target` by the remote id, not by reading the
    outbox, then the system and object type checked on those few."""
    if not targets:
        return sa.false()
    remote_id, system, object_type = (json_text(outbox.c.target, f) for f in ("remote_id", "system", "object_type"))
    typed = sorted({(s, t, r) for s, t, r in targets if t is not None})
    untyped = sorted({(s, r) for s, t, r in targets if t is None})
    return sa.and_(
        remote_id.in_(sorted({r for _, _, r in targets})),
        sa.or_(
            sa.tuple_(system, object_type, remote_id).in_(typed) if typed else sa.false(),
            sa.tuple_(system, remote_id).in_(untyped) if untyped else sa.false(),
        ),
    )


def _claimable(outbox: sa.Table, now: datetime, stale_before: datetime, dead_workers: Sequence[str]) -> Any:
    ready = sa.and_(
        outbox.c.state == "planned", sa.or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at <= now)
    )
    abandoned = sa.and_(
        outbox.c.state == "in_flight",
        sa.or_(outbox.c.claimed_at < stale_before, outbox.c.claimed_by.in_(list(dead_workers) or [""])),
    )
    return sa.or_(ready, abandoned)


def claim(
    session: Session,
    worker: str,
    *,
    lease: timedelta,
    limit: int,
    connections: Sequence[str] | None = None,
    dead_workers: Sequence[str] = (),
    skip_connections: Sequence[str] = (),
    shares: Mapping[str, int] | None = None,
) -> list[OutboxEntry]:
    """Claim up to `limit` actions for `worker`, shared out across the connections that have
    work due and returned in turn (one of each connection, then the next of each), so one
    connection's backlog never holds back another's writes; within a connection, in id order
    (the order the plan queued them). A connection whose actions wait (a spent limit, a
    refused credential) has nothing due and takes no share. `shares` caps what one connection
    takes (a provider that sends writes in batches takes a batch's worth).

    An action sent in a batch whose answer never came (`form_batch`) is claimed with the rest
    of its batch, due or not, so the batch is sent again whole, with its key.

    Each action is claimed by its own compare-and-swap, so a row another worker took meanwhile
    is skipped, never sent twice. On PostgreSQL the candidates are read `FOR UPDATE SKIP
    LOCKED`: rows another worker is claiming in a transaction not yet committed are passed
    over, so two workers claiming at the same moment get different batches instead of the
    second one finding its whole batch taken (and stopping with work left). SQLite has one
    writer at a time (`BEGIN IMMEDIATE`), so claims cannot overlap there."""
    outbox = table("outbox_actions")
    now = utcnow()
    condition = sa.and_(mine(session, outbox), _claimable(outbox, now, now - lease, dead_workers))
    scope = [condition]
    if connections is not None:
        scope.append(outbox.c.connection.in_(list(connections)))
    if skip_connections:
        scope.append(outbox.c.connection.not_in(list(skip_connections)))
    # the connections with work due, the one waiting longest first (its oldest action)
    due = (
        sa.select(outbox.c.connection)
        .where(*scope)
        .group_by(outbox.c.connection)
        .order_by(sa.func.min(outbox.c.id))
        .limit(max(limit, 1))
    )
    names = [row[0] for row in session.execute(due)]
    if not names:
        return []
    turns: dict[str, list[int]] = {name: [] for name in names}
    # Each connection's share of what is left, rounded up; the shares of connections with
    # less work due go to the others in the next pass.
    hungry = names
    while hungry and (left := limit - sum(len(turn) for turn in turns.values())) > 0:
        share = -(-left // len(hungry))
        full = []
        for name in hungry:
            share = min(share, limit - sum(len(turn) for turn in turns.values()))
            cap = (shares or {}).get(name)
            wanted = share if cap is None else min(share, cap - len(turns[name]))
            if wanted <= 0:
                continue
            query = (
                sa.select(outbox.c.id)
                .where(*scope, outbox.c.connection == name)
                .order_by(outbox.c.id)
                .limit(wanted)
                .with_for_update(skip_locked=True)
            )
            candidates = [action_id for (action_id,) in session.execute(query).all()]
            turns[name] += [action_id for action_id in candidates if _take(session, action_id, worker, now, condition)]
            if len(candidates) == wanted:
                full.append(name)
        hungry = full
    for turn in turns.values():
        turn += _take_batch_rest(session, outbox, worker, now, turn, dead_workers, lease)
    # one of each connection, then the next of each
    order = [
        action_id for turn in itertools.zip_longest(*turns.values()) for action_id in turn if action_id is not None
    ]
    if not order:
        return []
    by_id = {entry.id: entry for entry in entries(session, ids=order)}
    return [by_id[action_id] for action_id in order]


def still_due(
    session: Session, connections: Sequence[str], *, lease: timedelta, dead_workers: Sequence[str] = ()
) -> set[str]:
    """Which of `connections` have writes due beyond what was claimed (one indexed look-up each)."""
    outbox = table("outbox_actions")
    now = utcnow()
    condition = sa.and_(mine(session, outbox), _claimable(outbox, now, now - lease, dead_workers))
    return {
        name
        for name in connections
        if session.execute(sa.select(outbox.c.id).where(condition, outbox.c.connection == name).limit(1)).first()
    }


def _take_batch_rest(
    session: Session,
    outbox: sa.Table,
    worker: str,
    now: datetime,
    taken: Sequence[int],
    dead_workers: Sequence[str],
    lease: timedelta,
) -> list[int]:
    """The other actions of the unanswered batches among `taken`, claimed too (due or not, or
    parked), so the batch goes out again whole; their ids."""
    if not taken:
        return []
    keys = select_in(session, sa.select(outbox.c.batch_key).distinct(), outbox.c.id, list(taken))
    keys = [key for key in keys if key]
    if not keys:
        return []
    waiting = sa.or_(
        outbox.c.state.in_(("planned", "failed")),
        _claimable(outbox, now, now - lease, dead_workers),
    )
    query = (
        sa.select(outbox.c.id)
        .where(mine(session, outbox), outbox.c.batch_key.in_(keys), outbox.c.id.not_in(list(taken)), waiting)
        .order_by(outbox.c.id)
    )
    rest = [action_id for (action_id,) in session.execute(query).all()]
    return [action_id for action_id in rest if _take(session, action_id, worker, now, waiting)]


def select_in(session: Session, query: Any, column: Any, values: Sequence[Any]) -> list[Any]:
    """The first column of `query` over the rows whose `column`, the table's integer key, is in
    `values`, chunked (the company beside it as `mine_by_key` has it)."""
    found: list[Any] = []
    for chunk in in_chunks(session, list(values)):
        found += [row[0] for row in session.execute(query.where(mine_by_key(session, column.table), column.in_(chunk)))]
    return found


def form_batch(session: Session, action_ids: Sequence[int], worker: str, key: str) -> int:
    """Record that the claimed actions go out together under `key`, before the request is
    sent; returns how many (the ones this worker still holds)."""
    outbox = table("outbox_actions")
    formed = session.execute(
        sa.update(outbox)
        .where(
            mine_by_key(session, outbox),
            outbox.c.id.in_(list(action_ids)),
            outbox.c.state == "in_flight",
            outbox.c.claimed_by == worker,
        )
        .values(batch_key=key, updated_at=utcnow())
    )
    return rowcount(formed)


def mark_sent_alone(session: Session, action_id: int) -> None:
    """Record that the action goes out on its own with its own key, before the request is
    sent: if its answer is lost, it goes on its own again with that key, never in a batch."""
    outbox = table("outbox_actions")
    session.execute(sa.update(outbox).where(mine(session, outbox), outbox.c.id == action_id).values(sent_alone=True))


def leave_batch(session: Session, action_ids: Sequence[int]) -> None:
    """The actions' batch got a definite answer for them (done, refused, or not sent at all):
    a later attempt may go in another batch, under another key."""
    outbox = table("outbox_actions")
    for chunk in in_chunks(session, list(action_ids)):
        session.execute(
            sa.update(outbox).where(mine_by_key(session, outbox), outbox.c.id.in_(chunk)).values(batch_key=None)
        )


def _take(session: Session, action_id: int, worker: str, now: datetime, condition: Any) -> bool:
    """Claim one action if it is still claimable (the compare-and-swap)."""
    outbox = table("outbox_actions")
    result = session.execute(
        sa.update(outbox)
        .where(mine(session, outbox), outbox.c.id == action_id, condition)
        .values(state="in_flight", claimed_by=worker, claimed_at=now, attempts=outbox.c.attempts + 1, updated_at=now)
    )
    return rowcount(result) == 1


def counts_by_state(session: Session) -> dict[str, int]:
    """How many actions the company's outbox holds in each state (states holding none are absent)."""
    outbox = table("outbox_actions")
    query = sa.select(outbox.c.state, sa.func.count()).where(mine(session, outbox)).group_by(outbox.c.state)
    return {state: int(count) for state, count in session.execute(query)}


def in_flight_workers(session: Session) -> list[str]:
    outbox = table("outbox_actions")
    query = sa.select(outbox.c.claimed_by).where(outbox.c.state == "in_flight").distinct()
    return [row[0] for row in session.execute(query) if row[0]]


def complete(session: Session, action_id: int, worker: str, result: dict[str, Any]) -> bool:
    """Done, with the provider's answer, only if this worker still holds the claim."""
    outbox = table("outbox_actions")
    done = session.execute(
        sa.update(outbox)
        .where(
            mine(session, outbox),
            outbox.c.id == action_id,
            outbox.c.state == "in_flight",
            outbox.c.claimed_by == worker,
        )
        .values(state="done", result=jsonable(result), last_error=None, batch_key=None, updated_at=utcnow())
    )
    return rowcount(done) == 1


def fail(session: Session, action_id: int, worker: str, error: str, *, retry_at: datetime | None) -> None:
    """Keep the error; back to planned for a later attempt, or parked (`failed`) for a person."""
    outbox = table("outbox_actions")
    session.execute(
        sa.update(outbox)
        .where(
            mine(session, outbox),
            outbox.c.id == action_id,
            outbox.c.state == "in_flight",
            outbox.c.claimed_by == worker,
        )
        .values(
            state="planned" if retry_at else "failed",
            last_error=error[:2000],
            next_attempt_at=retry_at,
            claimed_by=None,
            claimed_at=None,
            updated_at=utcnow(),
        )
    )


def release(session: Session, action_id: int, worker: str, note: str, *, not_before: datetime) -> bool:
    """Hand a claimed action back unsent, not before `not_before`, its claim not counted as an
    attempt: the connection cannot take writes for now (a daily rate limit), which is no fault
    of the action's. The note says why it waits."""
    outbox = table("outbox_actions")
    released = session.execute(
        sa.update(outbox)
        .where(
            mine(session, outbox),
            outbox.c.id == action_id,
            outbox.c.state == "in_flight",
            outbox.c.claimed_by == worker,
        )
        .values(
            state="planned",
            attempts=sa.case((outbox.c.attempts > 0, outbox.c.attempts - 1), else_=0),
            last_error=note[:2000],
            next_attempt_at=not_before,
            claimed_by=None,
            claimed_at=None,
            updated_at=utcnow(),
        )
    )
    return rowcount(released) == 1


def defer_connection(session: Session, connection: str, note: str, *, not_before: datetime) -> int:
    """Every planned action of `connection` due before `not_before` waits until then (the
        connection's allowance is spent), with the note saying why where it was never tried (a
    failed one keeps its error); attempts unchanged. Returns
        how many now wait."""
    outbox = table("outbox_actions")
    waiting = session.execute(
        sa.update(outbox)
        .where(
            mine(session, outbox),
            outbox.c.connection == connection,
            outbox.c.state == "planned",
            sa.or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at < not_before),
        )
        .values(
            next_attempt_at=not_before,
            updated_at=utcnow(),
            # an action that failed before keeps its error; one never tried says why it waits
            last_error=sa.case((outbox.c.attempts == 0, note[:2000]), else_=outbox.c.last_error),
        )
    )
    return rowcount(waiting)


def unclaim(session: Session, action_ids: Sequence[int], worker: str) -> int:
    """Hand back claimed actions unsent, due at once and their claims not counted as attempts
    (a worker stopping: another one, or the next run, sends them). Returns how many."""
    outbox = table("outbox_actions")
    released = 0
    for chunk in in_chunks(session, list(action_ids)):
        released += rowcount(
            session.execute(
                sa.update(outbox)
                .where(
                    mine_by_key(session, outbox),
                    outbox.c.id.in_(chunk),
                    outbox.c.state == "in_flight",
                    outbox.c.claimed_by == worker,
                )
                .values(
                    state="planned",
                    attempts=sa.case((outbox.c.attempts > 0, outbox.c.attempts - 1), else_=0),
                    claimed_by=None,
                    claimed_at=None,
                    updated_at=utcnow(),
                )
            )
        )
    return released


# Held for a credential: the connection's credential was refused, so its writes wait until the
# credential changes (compared by fingerprint) or a person queues them again; no time is known.
HELD = datetime(9999, 12, 31, tzinfo=UTC)
HELD_FOR_CREDENTIAL = "credential"


def is_held(entry: OutboxEntry) -> bool:
    """The action waits for its connection's credential to change (`hold_connection`)."""
    return entry.action.state == "planned" and entry.next_attempt_at == HELD


def _held(session: Session, outbox: sa.Table, connection: str) -> Any:
    """The actions of `connection` held for its credential."""
    return sa.and_(
        mine(session, outbox),
        outbox.c.connection == connection,
        outbox.c.state == "planned",
        outbox.c.next_attempt_at == HELD,
    )


def hold_connection(session: Session, connection: str, note: str, *, credential: str) -> int:
    """Every planned action of `connection` waits for its credential to change: `credential`
    is the fingerprint of the one refused (never the secret), the note says why; attempts
    unchanged. Returns how many wait."""
    outbox = table("outbox_actions")
    held = session.execute(
        sa.update(outbox)
        .where(mine(session, outbox), outbox.c.connection == connection, outbox.c.state == "planned")
        .values(
            next_attempt_at=HELD,
            last_error=note[:2000],
            result={"held_for": HELD_FOR_CREDENTIAL, "credential": credential},
            updated_at=utcnow(),
        )
    )
    return rowcount(held)


def held_connections(session: Session, connections: Sequence[str] | None = None) -> dict[str, str]:
    """connection -> the fingerprint of the credential it was held for (`hold_connection`)."""
    outbox = table("outbox_actions")
    query = sa.select(outbox.c.connection, outbox.c.result).where(
        mine(session, outbox), outbox.c.state == "planned", outbox.c.next_attempt_at == HELD
    )
    if connections is not None:
        query = query.where(outbox.c.connection.in_(list(connections)))
    held: dict[str, str] = {}
    for name, result in session.execute(query.order_by(outbox.c.id.desc())):
        if name not in held:  # the latest hold's
            held[name] = str((result or {}).get("credential", ""))
    return held


def held_note(session: Session, connection: str) -> str:
    """Why the connection's writes are held: the note of its latest held write."""
    outbox = table("outbox_actions")
    query = (
        sa.select(outbox.c.last_error).where(_held(session, outbox, connection)).order_by(outbox.c.id.desc()).limit(1)
    )
    note = session.execute(query).scalar()
    return str(note or f"waits for a new credential of connection {connection}")


def resume_connection(session: Session, connection: str) -> int:
    """The held actions of `connection` are due again (its credential changed, or a person
    asked); returns how many."""
    outbox = table("outbox_actions")
    resumed = session.execute(
        sa.update(outbox)
        .where(_held(session, outbox, connection))
        .values(next_attempt_at=None, last_error=None, result=None, updated_at=utcnow())
    )
    return rowcount(resumed)


def waiting_by_connection(session: Session) -> dict[tuple[str, str], int]:
    """(connection, why) -> how many of its writes wait on the connection, not on their own
    failure: `credential` (held, `hold_connection`) or `rate_limit` (a spent limit,
    `defer_connection`/`release`, still ahead)."""
    outbox = table("outbox_actions")
    waiting = sa.and_(mine(session, outbox), outbox.c.state == "planned")
    spent = sa.and_(
        outbox.c.next_attempt_at > utcnow(), outbox.c.next_attempt_at < HELD, outbox.c.last_error.like(WAITS_NOTE + "%")
    )
    counts: dict[tuple[str, str], int] = {}
    for why, condition in ((HELD_FOR_CREDENTIAL, outbox.c.next_attempt_at == HELD), ("rate_limit", spent)):
        query = sa.select(outbox.c.connection, sa.func.count()).where(waiting, condition).group_by(outbox.c.connection)
        counts.update({(name, why): int(count) for name, count in session.execute(query)})
    return counts


# How the note of a write waiting for its connection's spent limit begins (`defer_connection`).
WAITS_NOTE = "waits until "


def set_state(session: Session, action_id: int, state: str, *, from_states: Sequence[str]) -> bool:
    outbox = table("outbox_actions")
    changed = session.execute(
        sa.update(outbox)
        .where(mine(session, outbox), outbox.c.id == action_id, outbox.c.state.in_(list(from_states)))
        .values(
            state=state,
            next_attempt_at=None,
            claimed_by=None,
            claimed_at=None,
            updated_at=utcnow(),
            attempts=0 if state == "planned" else outbox.c.attempts,
            # a write queued again is no longer held for its connection's credential
            result=None if state == "planned" else outbox.c.result,
        )
    )
    return rowcount(changed) == 1


# Settlement: writes a decision no longer stands behind -------------------------------------

# The note a write cancelled by a settlement keeps (in `last_error`, shown by `actions list
# --all`): such a write is planned again when a later decision makes it follow again; one a
# person cancelled is not.
SETTLED_NOTE = "no longer follows from "


def cancel_unsent(session: Session, action_id: int, cause: str) -> bool:
    """Cancel a planned or parked write because `cause` no longer stands behind it; False when
    it was claimed (or finished) meanwhile, or when it went out in a batch whose answer never
    came (the provider may have made it: the batch is sent again whole to learn its answer)."""
    outbox = table("outbox_actions")
    changed = session.execute(
        sa.update(outbox)
        .where(
            mine(session, outbox),
            outbox.c.id == action_id,
            outbox.c.state.in_(["planned", "failed"]),
            outbox.c.batch_key.is_(None),
        )
        .values(
            state="cancelled",
            last_error=(SETTLED_NOTE + cause)[:2000],
            next_attempt_at=None,
            claimed_by=None,
            claimed_at=None,
            updated_at=utcnow(),
        )
    )
    return rowcount(changed) == 1


def note_settled(session: Session, action_id: int, cause: str) -> bool:
    """Say of a cancelled write that the decision behind it was withdrawn (`cause`): like a
    write a settlement cancelled, it is planned again if a later decision makes it follow."""
    outbox = table("outbox_actions")
    changed = session.execute(
        sa.update(outbox)
        .where(mine(session, outbox), outbox.c.id == action_id, outbox.c.state == "cancelled")
        .values(last_error=(SETTLED_NOTE + cause)[:2000], updated_at=utcnow())
    )
    return rowcount(changed) == 1


def replan_settled(session: Session, keys: Sequence[str]) -> list[int]:
    """Plan again the writes of `keys` that a settlement cancelled (a later decision made them
    follow again); their attempts start from zero. Returns their ids."""
    outbox = table("outbox_actions")
    settled = sa.and_(outbox.c.state == "cancelled", outbox.c.last_error.like(SETTLED_NOTE + "%"))
    ids: list[int] = []
    for chunk in in_chunks(session, list(keys)):
        by_key = sa.select(outbox.c.id).where(mine(session, outbox), settled, outbox.c.idempotency_key.in_(chunk))
        ids += [row[0] for row in session.execute(by_key)]
    for chunk in in_chunks(session, ids):
        session.execute(
            sa.update(outbox)
            .where(mine_by_key(session, outbox), outbox.c.id.in_(chunk), settled)
            .values(state="planned", attempts=0, last_error=None, next_attempt_at=None, updated_at=utcnow())
        )
    return ids
