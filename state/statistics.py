"""The planner's statistics of the state tables, kept up to date on PostgreSQL.

PostgreSQL chooses how to run a query from what it knows of each table (`ANALYZE`): how many
rows, how many distinct values a column holds. A first sync fills an empty schema with hundreds
of thousands of rows in minutes; the engine runs straight after it, before autovacuum's next
`ANALYZE` (within a minute or so when it is on, never when an operator turned it off), and a
query planned for an empty table reads a large one. Measured on the 110,000-invoice book with no
statistics, then after one `ANALYZE` of the schema (1.9 s): `aging --json` 35.0 -> 5.8 s,
`explain` 6.1 -> 0.8 s; the engine's first pass spent 690 of its 866 s waiting on the database.

So the connector analyses the tables of its own schema that changed much since they were last
analysed (by it or by autovacuum), before each stage of the engine that reads the book. On
SQLite nothing is done: its queries are written for a planner without statistics, and keeping
them (`ANALYZE` there) would change every plan at once.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connector.state.tables import STATE_TABLES

logger = logging.getLogger(__name__)

# A table is analysed again once this share of its rows changed since it last was (autovacuum's
# own default, `autovacuum_analyze_scale_factor`), and at least this many rows.
STALE_SHARE = 0.1
STALE_ROWS = 500

_STALE = sa.text(
    "SELECT relname FROM pg_stat_user_tables "
    "WHERE schemaname = current_schema() AND relname = ANY(:names) "
    "AND n_mod_since_analyze >= greatest(:rows, n_live_tup * :share) "
    "ORDER BY relname"
)


def stale_tables(engine: Engine) -> list[str]:
    """The state tables of the connector's schema whose statistics are out of date (PostgreSQL;
    none on SQLite): changed by at least `STALE_SHARE` of their rows, and `STALE_ROWS`, since
    they were last analysed."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as connection:
        params = {"names": list(STATE_TABLES), "rows": STALE_ROWS, "share": STALE_SHARE}
        return [str(name) for name in connection.execute(_STALE, params).scalars()]


def refresh_statistics(engine: Engine) -> list[str]:
    """`ANALYZE` each of `stale_tables`, each in a transaction of its own (outside the caller's,
    which it neither waits for nor holds up); returns the tables analysed. A table another
    session is analysing (autovacuum, another worker) is left to it: `ANALYZE` waits at most a
    moment for its lock. Refused (not the tables' owner): PostgreSQL warns and analyses
    nothing, which costs only the speed it would have given."""
    stale = stale_tables(engine)
    done = []
    for name in stale:
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")
                connection.exec_driver_sql(f'ANALYZE "{name}"')
            done.append(name)
        except sa.exc.DBAPIError as exc:  # the lock not had in time (another analyses it), a standby
            logger.info("statistics of %s not refreshed: %s", name, str(exc).splitlines()[0])
    if done:
        logger.info("statistics refreshed: %s", ", ".join(done))
    return done
