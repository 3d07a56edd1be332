"""What the engine records about its own work: cursors, the outbox, runs and the audit log.

Everything here takes the caller's session, so that a cursor moves in the same transaction
as the page it belongs to and an outbox action is marked in the same transaction as the
provider's answer. JSON columns get values made JSON-safe by pydantic (Decimal and Money as
strings, never floats).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic_core import to_jsonable_python
from sqlalchemy.orm import Session

from connector.model import Action, ActionState, Ref
from connector.state.records import new_id, utcnow
from connector.state.scope import DEFAULT_COMPANY, company_of
from connector.state.tables import table
from connector.state.upsert import in_chunks, insert_new, mine, one_of, upsert


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
    300,000 links: one INSERT each took minutes; all at once, their parameters 300 MB)."""
    if not entries:
        return
    at, company = utcnow(), company_of(session)
    insert = sa.insert(table("audit_log"))
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
        session.execute(insert, rows)


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
        query = sa.select(log).where(mine(session, log), log.c.id.in_(newest))
        found.update((str(row["subject_id"]), _entry(row)) for row in session.execute(query).mappings())
    return found


def audit_entries_about(session: Session, subject_ids: Sequence[str], mentioned: str) -> list[AuditEntry]:
    """The entries whose subject is one of `subject_ids`, or whose inputs mention `mentioned`
    anywhere (a manual match names its invoice only there), oldest first."""
    log = table("audit_log")
    query = (
        sa.select(log)
        .where(
            mine(session, log),
            sa.or_(log.c.subject_id.in_(list(subject_ids)), sa.cast(log.c.inputs, sa.Text).contains(mentioned)),
        )
        .order_by(log.c.at, log.c.id)
    )
    return [_entry(row) for row in session.execute(query).mappings()]


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
