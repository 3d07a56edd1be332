"""Schema versions: upgrade a database, read its revision, refuse one that does not match.

Alembic is driven from code with `script_location` pointing at the migrations shipped inside
this package, so an installed wheel upgrades its database without an alembic.ini on disk.
Only `connector db upgrade` (through `upgrade`) changes an existing schema; `open_store`
initialises a brand-new empty database and otherwise just checks.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import URL, Engine

from connector.errors import SchemaOutdatedError, SchemaTooNewError
from connector.state.db import make_engine, reading, unavailable

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant: serialises concurrent upgrades of one PostgreSQL database by several workers.
_PG_UPGRADE_LOCK = 0x5354_4154_45


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@cache
def head_revision() -> str:
    """The newest revision this release ships (read from its migrations once per process)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "state/migrations has no revisions"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for a database alembic never touched."""
    try:
        with reading(engine).connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise unavailable(engine, exc) from None
    except sa.exc.DatabaseError as exc:  # SQLite: "file is not a database"
        raise unavailable(engine, exc, "read") from None


def upgrade(engine_or_url: Engine | str | URL | None, revision: str = "head") -> str | None:
    """Bring the schema to `revision` in one transaction; returns the revision reached."""
    engine = engine_or_url if isinstance(engine_or_url, Engine) else make_engine(engine_or_url)
    config = alembic_config()
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_UPGRADE_LOCK)))
            config.attributes["connection"] = connection
            try:
                command.upgrade(config, revision)
            except CommandError as exc:
                raise SchemaTooNewError(f"cannot upgrade the state database: {str(exc).splitlines()[0]}") from None
            return MigrationContext.configure(connection).get_current_revision()
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise unavailable(engine, exc) from None
    finally:
        if engine is not engine_or_url:
            engine.dispose()


def check_schema(engine: Engine) -> None:
    """Refuse a database whose schema is not exactly the one this release was written for."""
    check_revision(current_revision(engine))


def check_revision(current: str | None) -> None:
    """Refuse a database at revision `current` unless it is exactly the one this release was
    written for."""
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaOutdatedError(
            f"database has no schema version, this release needs {head}: run `connector db upgrade`"
        )
    scripts = ScriptDirectory.from_config(alembic_config())
    known = {script.revision for script in scripts.walk_revisions()}
    if current not in known:
        raise SchemaTooNewError(
            f"database schema is at {current}, which this release does not know "
            f"(it knows up to {head}): use a newer release"
        )
    raise SchemaOutdatedError(f"database schema is at {current}, this release needs {head}: run `connector db upgrade`")


def is_empty(engine: Engine) -> bool:
    """True when the database (the current schema, on PostgreSQL) has no tables at all."""
    try:
        with reading(engine).connect() as connection:
            return not sa.inspect(connection).get_table_names()
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise unavailable(engine, exc) from None
