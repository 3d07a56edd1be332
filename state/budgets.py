"""Provider accounts' rate budgets in the state database: the `BudgetStore` of
`connector.http.budget`, one `rate_budgets` row per account.

A request is taken in one short transaction: lock the account's row (`SELECT ... FOR UPDATE`
on PostgreSQL; SQLite's `BEGIN IMMEDIATE` serialises writers anyway), read the database's
clock, count the request in the row's windows if they all have room (`take_stored`), save,
commit. No lock is held while the request itself travels. Time comes from PostgreSQL's
clock, so that workers on several hosts count on one clock; SQLite has one host.

PostgreSQL keeps every window and the requests in flight: it is where several workers meet.
SQLite (one worker) keeps only windows of an hour or more, so that a spent daily allowance is
still spent after a restart; shorter ones cost a write per request and stay in the worker's
memory (`connector.http.ratelimit.shared_limiter`).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from connector.http.budget import Grant, WindowSpec, counted, lease_owner, take_stored
from connector.state.store import Store
from connector.state.tables import RATE_BUDGETS
from connector.workers import dead_local_workers, worker_id

LONG_WINDOW = 3600.0
"""Windows at least this long are kept in the database on SQLite too (daily allowances)."""

LEASE_SECONDS = 120.0
"""How long a slot in flight stays taken when its worker never gives it back (killed) and
cannot be seen to be gone: one on another host. A worker of this host that no longer exists
(killed, crashed) has its slots freed by the next take (`_without_gone_workers`)."""


class StateBudgets:
    """The rate budgets of the provider accounts that the workers of one database call."""

    def __init__(self, store: Store, *, lease_seconds: float = LEASE_SECONDS) -> None:
        self._engine = store.engine
        self._shared = self._engine.dialect.name == "postgresql"
        self._lease_seconds = lease_seconds
        self._table = RATE_BUDGETS

    @property
    def scope(self) -> Hashable:
        return self._engine

    def keeps(self, per_seconds: float) -> bool:
        return self._shared or per_seconds >= LONG_WINDOW

    def keeps_in_flight(self) -> bool:
        return self._shared

    def take(self, account: str, windows: Sequence[WindowSpec], *, margin: float, in_flight: int | None) -> Grant:
        with self._engine.begin() as connection:
            row = self._locked(connection, account)
            now = self._now(connection)
            stored = dict(row.windows or {})
            leases = _without_gone_workers({k: float(v) for k, v in (row.in_flight or {}).items()})
            grant = take_stored(
                stored,
                leases,
                windows,
                now=now,
                margin=margin,
                paused_until=row.paused_until.timestamp() if row.paused_until else None,
                in_flight=in_flight,
                lease_seconds=self._lease_seconds,
                owner=worker_id(),
            )
            if grant.wait <= 0:
                self._save(connection, account, windows=stored, in_flight=leases)
            return grant

    def release(self, account: str, lease: str) -> None:
        with self._engine.begin() as connection:
            row = self._locked(connection, account)
            leases = dict(row.in_flight or {})
            if leases.pop(lease, None) is not None:
                self._save(connection, account, in_flight=leases)

    def pause(self, account: str, seconds: float) -> None:
        with self._engine.begin() as connection:
            row = self._locked(connection, account)
            until = datetime.fromtimestamp(self._now(connection) + seconds, UTC)
            if row.paused_until is None or row.paused_until < until:
                self._save(connection, account, paused_until=until)

    def usage(self, account: str) -> dict[str, int]:
        """Window key -> requests it holds now (expired ones included until the next take):
        what `connector` can show of an account's budget, and what tests check."""
        with self._engine.connect() as connection:
            windows = connection.execute(
                sa.select(self._table.c.windows).where(self._table.c.account == account)
            ).scalar_one_or_none()
        return {key: counted(window) for key, window in (windows or {}).items()}

    def _locked(self, connection: sa.Connection, account: str) -> Any:
        """The account's row, locked until the transaction ends; made empty at first use."""
        select = sa.select(self._table).where(self._table.c.account == account)
        if self._shared:
            select = select.with_for_update()
        row = connection.execute(select).first()
        if row is not None:
            return row
        insert = (postgresql.insert if self._shared else sqlite.insert)(self._table)
        values = {"account": account, "windows": {}, "in_flight": {}, "updated_at": datetime.now(UTC)}
        connection.execute(insert.values(**values).on_conflict_do_nothing(index_elements=["account"]))
        return connection.execute(select).one()

    def _now(self, connection: sa.Connection) -> float:
        if self._shared:
            return float(connection.execute(sa.text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one())
        return time.time()

    def _save(self, connection: sa.Connection, account: str, **values: Any) -> None:
        connection.execute(
            sa.update(self._table)
            .where(self._table.c.account == account)
            .values(**values, updated_at=datetime.now(UTC))
        )


def _without_gone_workers(leases: dict[str, float]) -> dict[str, float]:
    """The leases but those of workers of this host that no longer exist: a worker killed
    while its request travelled never gives its slot back, and Xero's five slots in flight
    would stay taken for LEASE_SECONDS for every other worker of the account."""
    owners = {lease: lease_owner(lease) for lease in leases}
    gone = set(dead_local_workers(sorted({owner for owner in owners.values() if owner})))
    return {lease: expires for lease, expires in leases.items() if owners[lease] not in gone}
