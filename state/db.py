"""Database URLs and engines: one place that knows SQLite from PostgreSQL at connect time.

SQLite is the embedded default (a file in the working directory, created readable by its
owner only: it holds the connector's state and its sealed OAuth tokens); PostgreSQL is the
shared store for several workers. pysqlite's own transaction handling is switched off so that
SQLAlchemy's BEGIN is real: a page, or a whole migration, commits or rolls back as one.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from connector.errors import ConfigError, DatabaseUnavailableError
from connector.redaction import register_secret

DEFAULT_URL = "sqlite:///connector.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_CACHE_KIB = 32 * 1024
SQLITE_CACHED_STATEMENTS = 8  # prepared statements kept per connection (pysqlite's default: 128)
# A new SQLite file is created with this mode; SQLite gives its -wal and -shm files the mode
# of the database file, so they are private too.
SQLITE_FILE_MODE = 0o600
# The execution option of an engine whose transactions only read (`Store.reader`): on SQLite
# they take no write lock (a plain BEGIN in WAL mode: a snapshot, never waiting for a writer
# nor holding one back) under `PRAGMA query_only`; on PostgreSQL they are READ ONLY. A write
# in one fails at once instead of passing unnoticed.
READ_ONLY = "connector_read_only"
# The state store runs on these two only (the schema's migrations and locks are written for them).
SUPPORTED_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")


def database_url_for(url: str | URL | None) -> URL:
    """The URL SQLAlchemy should use: `postgres://` and `postgresql://` (as Heroku-style
    settings give them) become psycopg 3; nothing given means the default SQLite file."""
    if url is None or url == "":
        url = DEFAULT_URL
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(
            f"not a database URL: {redact_url(str(url))} (use sqlite:///PATH or postgresql://USER@HOST/DB)",
            where="database.url",
        ) from None
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise ConfigError(
            f"{parsed.drivername!r} databases are not supported: use sqlite:///PATH or "
            f"postgresql://USER@HOST/DB ({redact_url(parsed)})",
            where="database.url",
        )
    if parsed.password:
        register_secret(str(parsed.password))
    return parsed


def redact_url(url: str | URL) -> str:
    """The URL with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        # not parseable: mask anything between "user:" and "@"
        text = str(url)
        scheme, sep, rest = text.partition("://")
        userinfo, at, host = rest.rpartition("@")
        if sep and at and ":" in userinfo:
            return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
        return text


def make_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """An engine for the state store; extra keyword arguments go to `sqlalchemy.create_engine`
    (tests pass `connect_args={"options": "-csearch_path=..."}` for a private schema)."""
    target = database_url_for(url)
    if target.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        # No server-side prepared statements (psycopg prepares a query run 5 times): their
        # generic plan cannot hash an `= ANY(array)` list, and on a table that grew since it
        # was last analysed (every first sync) it scans every row against every value, 175 ms
        # against 6 ms for a page of 1,000 refs (measured 2026-12-02). Planning each time
        # costs a fraction of a millisecond; every statement of ours carries a whole page.
        kwargs["connect_args"] = {"prepare_threshold": None, **kwargs.get("connect_args", {})}
    if target.get_backend_name() == "sqlite":
        # pysqlite keeps the last 128 prepared statements of each connection by default; ours
        # name a part's ids in IN lists, so nearly each is new and some are large: on a
        # 110,000-invoice book `connector plan` held 250 MB of them (743 -> 488 MiB peak with
        # 8, measured 2026-12-06; the store's pages run as fast: five statements a page).
        kwargs["connect_args"] = {"cached_statements": SQLITE_CACHED_STATEMENTS, **kwargs.get("connect_args", {})}
        # Each connection keeps its own page cache (up to SQLITE_CACHE_KIB): a session takes
        # the connection returned last, not the one idle longest, so that a process working
        # one session at a time warms one cache rather than filling the pool's five (on the
        # large book a tick's link held 130 MiB of page caches at its peak). A database file
        # only: an in-memory one has one connection a thread (a pool without that choice).
        if sqlite_file(target) is not None and "poolclass" not in kwargs:
            kwargs.setdefault("pool_use_lifo", True)
    engine = sa.create_engine(target, **kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    else:
        sa.event.listen(engine, "begin", _begin_postgresql)
    return engine


def reading(engine: Engine) -> Engine:
    """`engine` for transactions that only read (`READ_ONLY`)."""
    return engine.execution_options(**{READ_ONLY: True})


def _begin_postgresql(connection: sa.Connection) -> None:
    if connection.get_execution_options().get(READ_ONLY):
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")


def _configure_sqlite(engine: Engine) -> None:
    path = sqlite_file(engine.url)

    @sa.event.listens_for(engine, "do_connect")
    def _create_private(*_args: Any) -> None:
        # Before SQLite opens (and so creates) the file: create it ourselves, owner-only,
        # rather than with the process umask (usually world-readable).
        if path is not None:
            create_private_file(path)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite would defer it to the first write).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL syncs at checkpoints, not at every commit: a crash of the process
        # loses nothing, a power cut at worst the last pages, each with its own cursor (a page
        # and its cursor are one transaction), so the next sync pulls them again.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # Sorting and temporary indexes in memory; a page cache of SQLITE_CACHE_KIB per
        # connection (SQLite's default is 2 MiB), so a large book's indexes stay in memory.
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front: a transaction that reads and then writes
        # (look up refs, then upsert) would otherwise fail at once with "database is locked"
        # when another thread writes meanwhile, instead of waiting its turn (busy_timeout).
        # A reader's (`READ_ONLY`) takes none: a report runs beside a sync or a plan that
        # holds the write lock for minutes on a large book, and holds none back itself.
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("PRAGMA query_only=ON")
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("PRAGMA query_only=OFF")
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def sqlite_file(url: URL) -> str | None:
    """The path of a SQLite URL's database file; None for an in-memory database or a `file:`
    URI (whose options SQLite reads itself)."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:") or url.query.get("uri"):
        return None
    return database


def create_private_file(path: str) -> bool:
    """Create an empty file at `path` readable and writable by its owner only, unless one is
    there already (its mode is left alone); True when it was created. A directory that does
    not exist is left for SQLite to report."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SQLITE_FILE_MODE)
    except OSError:
        return False
    os.close(descriptor)
    return True


def scrub_sqlite(engine: Engine) -> None:
    """Rewrite a SQLite database file (VACUUM) and empty its write-ahead log, so that values
    overwritten in place (tokens stored in clear, or sealed with a retired key) linger in no
    free page and no old WAL frame. Nothing to do on PostgreSQL: old row versions are not in
    a dump, and only the server's own files hold them until vacuumed."""
    if engine.dialect.name != "sqlite" or sqlite_file(engine.url) is None:
        return
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        assert connection is not None
        # outside any transaction: the connection is in autocommit (see _configure_sqlite);
        # a reader may have used it last (`READ_ONLY`)
        connection.execute("PRAGMA query_only=OFF")
        connection.execute("VACUUM")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()


def is_locked(exc: sa.exc.DBAPIError) -> bool:
    """SQLite's answer when another connection held the write lock past the busy timeout."""
    return isinstance(exc.orig, sqlite3.OperationalError) and str(exc.orig).startswith("database is locked")


def unavailable(engine: Engine, exc: sa.exc.DBAPIError, what: str = "reach") -> DatabaseUnavailableError:
    """The one-line error of a database that cannot be reached (or read: `what`), without its
    password."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    if is_locked(exc):
        return DatabaseUnavailableError(
            f"the state database {redact_url(engine.url)} is busy: another connector process has held its "
            f"write lock for over {SQLITE_BUSY_TIMEOUT_MS / 1000:g} s (a sync, reconcile or plan of a large "
            "book); try again when it has finished"
        )
    password = engine.url.password
    if password:
        reason = reason.replace(str(password), "***")
    return DatabaseUnavailableError(f"cannot {what} the state database {redact_url(engine.url)}: {reason}")
