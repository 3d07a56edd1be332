"""What `connector companies list` says of one company's book: when it was last synced and how
much it holds. Read inside a session bound to the company (`Store.session`), like every other
reader of a book: one company at a time, never across."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from connector.state.tables import table
from connector.state.upsert import mine


@dataclass(frozen=True)
class Activity:
    """`last_sync`: when a pull of the company last finished (a `connector sync` run, or one
    of the service's pulls), None if never; `status`: how the last `connector sync` run ended
    ("ok" or "problems"), None when the service's pulls are the latest or nothing ran."""

    last_sync: datetime | None
    status: str | None
    customers: int
    invoices: int
    payments: int


def activity(session: Session) -> Activity:
    """The activity of the session's company."""
    runs, units = table("runs"), table("work_units")
    last_run = session.execute(
        sa.select(runs.c.finished_at, runs.c.status)
        .where(mine(session, runs), runs.c.finished_at.is_not(None))
        .order_by(runs.c.finished_at.desc())
        .limit(1)
    ).first()
    last_pull = session.execute(
        sa.select(sa.func.max(units.c.last_success_at)).where(mine(session, units), units.c.kind == "pull")
    ).scalar_one_or_none()
    last_sync, status = (last_run[0], last_run[1]) if last_run is not None else (None, None)
    if last_pull is not None and (last_sync is None or last_pull > last_sync):
        last_sync, status = last_pull, None
    return Activity(
        last_sync=last_sync,
        status=status,
        customers=_count(session, "customers"),
        invoices=_count(session, "invoices"),
        payments=_count(session, "payments"),
    )


def _count(session: Session, name: str) -> int:
    rows = table(name)
    return int(session.execute(sa.select(sa.func.count()).select_from(rows).where(mine(session, rows))).scalar_one())
