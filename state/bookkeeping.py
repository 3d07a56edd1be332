"""What the engine records about its own work: cursors, the outbox, runs and the audit log.

Everything here takes the caller's session, so that a cursor moves in the same transaction
as the page it belongs to and an outbox action is marked in the same transaction as the
provider's answer. JSON columns get values made JSON-safe by pydantic (Decimal and Money as
strings, never floats).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic_core import to_jsonable_python
from sqlalchemy.orm import Session

from connector.model import Action, ActionState, Ref
from connector.state.records import new_id, utcnow
from connector.state.scope import DEFAULT_COMPANY, company_of
from connector.state.tables import mentions as json_mentions
from connector.state.tables import table
from connector.state.upsert import dialect_name, in_chunks, insert_new, mine, mine_by_key, one_of, upsert


def jsonable(value: Any) -> Any:
    return None if value is None else to_jsonable_python(value)


# Cursors --------------------------------------------------------------------------------


def get_cursor(session: Session, connection: str, stream: str) -> str | None:
    cursors = table("sync_cursors")
    query = sa.select(cursors.c.value).where(
        mine(session, cursors), cursors.c.connection == connection, cursors.c.stream == stream
    )
    return session.execute(query).scalar_one_or_none()


def set_cursor(session: Session, connection: str, stream: str, value: str | None) -> None:
    row = {"connection": connection, "stream": stream, "value": value, "updated_at": utcnow()}
    upsert(session, table("sync_cursors"), [row], key=("connection", "stream"), keep=())


def records_elsewhere(session: Session, company_of_connection: Mapping[str, str]) -> dict[str, str]:
    """connection -> another company whose book holds records of that connection, for each
    connection that has some outside the company the configuration gives it (one index look-up
    per connection and company). The one read across companies, on purpose: it checks that a
    connection has not been moved to another company, which would split its records between
    two books."""
    refs = table("refs")
    companies = sorted({*company_of_connection.values(), DEFAULT_COMPANY})
    found: dict[str, str] = {}
    for connection, own in sorted(company_of_connection.items()):
        for company in companies:
            if company == own:
                continue
            query = sa.select(refs.c.id).where(refs.c.company == company, refs.c.system == connection).limit(1)
            if session.execute(query).first() is not None:
                found[connection] = company
                break
    return found


# Outbox ---------------------------------------------------------------------------------


def add_actions(session: Session, actions: Sequence[Action]) -> int:
    """Queue actions; one already queued under its idempotency key is kept as it is.
    Returns how many were new."""
    now = utcnow()
    batch = {a.idempotency_key: a for a in actions}
    rows = [
        {
            "idempotency_key": key,
            "connection": a.connection,
            "kind": a.kind,
            "target": jsonable(a.target),
            "payload": jsonable(a.payload),
            "state": a.state,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for key, a in batch.items()
    ]
    return insert_new(session, table("outbox_actions"), rows, key=("idempotency_key",))


def list_actions(session: Session, state: ActionState | None = None) -> list[Action]:
    outbox = table("outbox_actions")
    query = sa.select(outbox).where(mine(session, outbox)).order_by(outbox.c.id)
    if state is not None:
        query = query.where(outbox.c.state == state)
    return [_action_from(row) for row in session.execute(query).mappings()]


def _action_from(row: sa.RowMapping) -> Action:
    # Built without re-deriving the key: JSON may have turned a Decimal or datetime in the
    # payload into a string, and the stored key is the one the provider has already seen.
    target = row["target"]
    return Action.model_construct(
        connection=row["connection"],
        kind=row["kind"],
        target=None if target is None else Ref.model_validate(target),
        payload=row["payload"],
        state=row["state"],
        idempotency_key=row["idempotency_key"],
    )


# Audit log ------------------------------------------------------------------------------


AUDIT_BATCH = 2000


def audit(
    session: Session,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str | None,
    inputs: Mapping[str, Any] | None = None,
    decision: str | None = None,
) -> None:
    audit_many(session, actor, action, [(subject_type, subject_id, inputs, decision)])


def audit_many(
    session: Session,
    actor: str,
    action: str,
    entries: Sequence[tuple[str, str | None, Mapping[str, Any] | None, str | None]],
) -> None:
    """`audit` of each (subject type, subject id, inputs, decision), in that order, one
    statement run for `AUDIT_BATCH` of them at a time (a first link of a large book audits
    300,000 links: one INSERT each took minutes; all at once, their parameters 300 MB).
    The ids each entry's inputs name beside its subject go to `audit_mentions` with it."""
    if not entries:
        return
    at, company = utcnow(), company_of(session)
    log = table("audit_log")
    for start in range(0, len(entries), AUDIT_BATCH):
        rows = [
            {
                "at": at,
                "actor": actor,
                "action": action,
                "subject_type": subject_type,
                "subject_id": subject_id,
                "inputs": jsonable(inputs),
                "decision": decision,
                "company": company,
            }
            for subject_type, subject_id, inputs, decision in entries[start : start + AUDIT_BATCH]
        ]
        named = [ids_named(row["inputs"], row["subject_id"]) for row in rows]
        if not any(named):
            session.execute(sa.insert(log), rows)
            continue
        if len(rows) == 1:  # one entry: its id read back from its own insert, one statement
            rows[0]["id"] = session.execute(sa.insert(log).returning(log.c.id), rows[0]).scalar_one()
        else:
            for row, entry_id in zip(rows, _new_entry_ids(session, len(rows)), strict=True):
                row["id"] = entry_id
            session.execute(sa.insert(log), rows)
        mentioned = [
            {"company": company, "mentioned": record_id, "entry_id": row["id"]}
            for row, record_ids in zip(rows, named, strict=True)
            for record_id in sorted(record_ids)
        ]
        session.execute(sa.insert(table("audit_mentions")), mentioned)


AuditItem = tuple[str, str, str, str | None, Mapping[str, Any] | None, str | None]


def audit_each(session: Session, items: Sequence[AuditItem]) -> None:
    """`audit` of each (actor, action, subject type, subject id, inputs, decision), in that
    order: the runs of consecutive items by one actor and action go to `audit_many` together,
    so a reconciliation's thousands of entries take a statement or two a batch, not one each
    (a round trip each on PostgreSQL)."""
    start = 0
    while start < len(items):
        actor, action = items[start][0], items[start][1]
        end = start
        while end < len(items) and items[end][0] == actor and items[end][1] == action:
            end += 1
        audit_many(session, actor, action, [item[2:] for item in items[start:end]])
        start = end


def _new_entry_ids(session: Session, count: int) -> list[int]:
    """`count` ids for new audit entries, in order, as the database would give them, so that
    their `audit_mentions` can be written beside them without reading them back (an INSERT
    ... RETURNING in parameters' order went to SQLite one row at a time: twice the time of
    a first link's audit). SQLite: the ones after the log's last, which no other writer can
    take while this transaction holds the write lock (`BEGIN IMMEDIATE`, `state.db`);
    PostgreSQL: from the log's own sequence."""
    if dialect_name(session) == "postgresql":
        taken = sa.text("SELECT nextval(pg_get_serial_sequence('audit_log', 'id')) FROM generate_series(1, :n)")
        return [int(i) for i in session.execute(taken, {"n": count}).scalars()]
    last = session.execute(sa.select(sa.func.max(table("audit_log").c.id))).scalar_one_or_none() or 0
    return list(range(last + 1, last + count + 1))


RECORD_ID = re.compile(r"[0-9a-f]{32}")  # how `records.new_id` spells every canonical id


def strings_in(value: Any) -> Iterator[str]:
    """Every string value anywhere inside the JSON-like `value` (not the keys)."""
    pending = [value]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list | tuple):
            pending.extend(value)


def ids_named(inputs: Any, subject_id: str | None) -> set[str]:
    """The record ids `inputs`, as stored, holds as a whole string value anywhere inside it,
    other than the entry's subject: what `audit_mentions` keeps for the entry (migration 0026
    reads the entries of before the same way)."""
    return {
        value for value in strings_in(inputs) if len(value) == 32 and value != subject_id and RECORD_ID.fullmatch(value)
    }


@dataclass(frozen=True)
class AuditEntry:
    id: int  # the entry's place in the log
    at: datetime
    actor: str
    action: str
    subject_type: str
    subject_id: str | None
    inputs: Any  # as recorded: a dict, or None
    decision: str | None


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        subject_type=row["subject_type"],
        subject_id=row["subject_id"],
        inputs=row["inputs"],
        decision=row["decision"],
    )


def audit_entries(session: Session, *, actions: Collection[str], actor: str | None = None) -> list[AuditEntry]:
    """The entries recording one of `actions` (by `actor`, when given), in the order written."""
    log = table("audit_log")
    query = sa.select(log).where(mine(session, log), log.c.action.in_(list(actions))).order_by(log.c.id)
    if actor is not None:
        query = query.where(log.c.actor == actor)
    return [_entry(row) for row in session.execute(query).mappings()]


def latest_entries(
    session: Session, *, actor: str, action: str, subject_type: str, subject_ids: Collection[str]
) -> dict[str, AuditEntry]:
    """subject id -> the newest entry by `actor` recording `action` about each of `subject_ids`
    that has one: found through the subject index (`ix_audit_log_subject`) a chunk of subjects
    at a time, however long the log has grown."""
    log = table("audit_log")
    found: dict[str, AuditEntry] = {}
    for chunk in in_chunks(session, sorted(subject_ids)):
        newest = (
            sa.select(sa.func.max(log.c.id))
            .where(
                mine(session, log),
                log.c.subject_type == subject_type,
                one_of(session, log.c.subject_id, chunk),
                log.c.actor == actor,
                log.c.action == action,
            )
            .group_by(log.c.subject_id)
        )
        query = sa.select(log).where(log.c.id.in_(newest), mine_by_key(session, log))
        found.update((str(row["subject_id"]), _entry(row)) for row in session.execute(query).mappings())
    return found


def audit_entries_about(session: Session, subjects: Collection[tuple[str, str]], mentioned: str) -> list[AuditEntry]:
    """The entries about one of `subjects` ((subject type, subject id) pairs), or whose inputs
    name the record `mentioned` as a whole string value anywhere (a manual match names its
    invoice only there), oldest first. Each is found through an index (`ix_audit_log_subject`,
    `audit_mentions`), however long the log has grown: a scan of its text took 0.55 s of the
    110,000-invoice book's `explain`. An id not spelt as ours (given by hand) is looked for in
    the text of the whole log, as before."""
    log, named = table("audit_log"), table("audit_mentions")
    entries: dict[int, AuditEntry] = {}
    if RECORD_ID.fullmatch(mentioned):
        by_mention = sa.select(named.c.entry_id).where(mine(session, named), named.c.mentioned == mentioned)
        found = set(session.execute(by_mention).scalars())
    else:
        sieve = sa.select(log).where(mine(session, log), json_mentions(log.c.inputs, mentioned))
        named_here = (_entry(row) for row in session.execute(sieve).mappings())
        entries.update((e.id, e) for e in named_here if mentioned in set(strings_in(e.inputs)))
        found = set()
    by_type: dict[str, set[str]] = {}
    for subject_type, subject_id in subjects:
        by_type.setdefault(subject_type, set()).add(subject_id)
    for subject_type, subject_ids in sorted(by_type.items()):
        about = sorted(subject_ids)
        query = sa.select(log.c.id).where(
            mine(session, log), log.c.subject_type == subject_type, one_of(session, log.c.subject_id, about)
        )
        found.update(session.execute(query).scalars())
    ids = one_of(session, log.c.id, sorted(found - set(entries)))
    query = sa.select(log).where(ids, mine_by_key(session, log))
    entries.update((e.id, e) for e in (_entry(row) for row in session.execute(query).mappings()))
    return sorted(entries.values(), key=lambda e: (e.at, e.id))


# Runs -----------------------------------------------------------------------------------


def start_run(session: Session) -> str:
    run_id = new_id()
    row = {"id": run_id, "company": company_of(session), "started_at": utcnow(), "status": "running", "stats": None}
    session.execute(sa.insert(table("runs")).values(row))
    return run_id


def finish_run(session: Session, run_id: str, status: str, stats: Mapping[str, Any] | None = None) -> None:
    runs = table("runs")
    values = {"finished_at": utcnow(), "status": status, "stats": jsonable(stats)}
    session.execute(sa.update(runs).where(mine(session, runs), runs.c.id == run_id).values(values))
