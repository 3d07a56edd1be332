"""How far a company's book has moved: a few aggregates per table the engine reads, so that
whether anything arrived or was decided since the engine last ran is known without reading
the book (`connector.engine_marks` hashes them with what else the engine depends on).

Counts catch rows added and removed; the newest change time of each table catches rows
written again (a view that changed: `refs.changed_at`, since `seen_at` moves with every sync;
a canonical record rewritten: `updated_at`); the audit log's newest entry catches decisions
that change a row in place (a link, a match undone, a pause). Each is one aggregate over the
company's rows, no row read."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from connector.state.tables import table
from connector.state.upsert import mine

# table -> the columns whose newest value tells the latest write to it
CHANGE_CLOCKS: dict[str, tuple[str, ...]] = {
    "refs": ("changed_at",),
    "customers": ("updated_at",),
    "invoices": ("updated_at",),
    "payments": ("updated_at",),
    "allocations": ("created_at",),
    "proposals": ("created_at", "decided_at"),
    "outbox_actions": ("updated_at",),
    "audit_log": ("id",),
}
# table -> column whose values are counted apart: a row changing state in place moves them
STATE_COLUMNS: dict[str, str] = {"allocations": "status", "proposals": "status", "outbox_actions": "state"}


def views_position(session: Session) -> list[str]:
    """How far the company's stored views have moved: their count and newest change (a view
    written new or changed): what linking reads. Linking's own merges move views to another
    record without moving this: linking what it merged again links nothing."""
    return book_position(session, only=("refs",))["refs"]


def book_position(
    session: Session, only: tuple[str, ...] | None = None, outbox_kinds: tuple[str, ...] | None = None
) -> dict[str, list[Any]]:
    """table -> [rows, newest change of each clock column, rows per state]: equal positions
    taken at two moments mean no row of the company's book was added, removed or written
    again in between (as far as the write paths keep their clocks). `only`: of those tables;
    `outbox_kinds`: of the outbox, the actions of those kinds only."""
    position: dict[str, list[Any]] = {}
    for name, clocks in CHANGE_CLOCKS.items():
        if only is not None and name not in only:
            continue
        rows = table(name)
        scope = [mine(session, rows)]
        if name == "outbox_actions" and outbox_kinds is not None:
            scope.append(rows.c.kind.in_(outbox_kinds))
        query = sa.select(sa.func.count(), *(sa.func.max(rows.c[column]) for column in clocks)).where(*scope)
        position[name] = [str(value) for value in session.execute(query).one()]
        state = STATE_COLUMNS.get(name)
        if state is not None:
            counted = (
                sa.select(rows.c[state], sa.func.count()).where(*scope).group_by(rows.c[state]).order_by(rows.c[state])
            )
            position[name] += [f"{value}={count}" for value, count in session.execute(counted)]
    return position
