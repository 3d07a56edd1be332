"""Reusable database plumbing for tests: the PostgreSQL server and throwaway schemas.

Plain functions (no fixtures) so that any conftest can build its own fixtures on them.
PostgreSQL tests skip when the server is unreachable, except under CI=true, where a missing
server is a broken pipeline and must fail loudly.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import pytest
import sqlalchemy as sa

from connector.state.db import make_engine, redact_url
from connector.state.store import Store, open_store

POSTGRES_URL = os.environ.get("CONNECTOR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


@cache
def postgres_unreachable_reason(url: str = POSTGRES_URL) -> str | None:
    """None when PostgreSQL answers at `url`, else why not (one line, password masked)."""
    engine = make_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except sa.exc.DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        return f"PostgreSQL at {redact_url(url)} is unreachable: {first}"
    finally:
        engine.dispose()
    return None


def postgres_url_or_fail(url: str = POSTGRES_URL) -> str:
    """The PostgreSQL test URL; skips the test when the server is down, fails it under CI."""
    reason = postgres_unreachable_reason(url)
    if reason is not None:
        if in_ci():
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(reason)
    return url


def search_path_args(schema: str) -> dict[str, Any]:
    """`connect_args` that point every connection of an engine at `schema`."""
    return {"options": f"-csearch_path={schema}"}


@contextmanager
def temporary_pg_schema(url: str = POSTGRES_URL) -> Iterator[str]:
    """A fresh, uniquely named schema, dropped with everything in it afterwards. Dispose
    engines pointing at it before the block ends, or the DROP waits for their connections."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = make_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        yield schema
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@contextmanager
def pg_engine_in_temporary_schema(url: str = POSTGRES_URL) -> Iterator[sa.Engine]:
    """An engine on an empty private schema of the test PostgreSQL database."""
    with temporary_pg_schema(url) as schema:
        engine = make_engine(url, connect_args=search_path_args(schema))
        try:
            yield engine
        finally:
            engine.dispose()


@contextmanager
def sqlite_engine_in(directory: os.PathLike[str] | str) -> Iterator[sa.Engine]:
    """An engine on a new SQLite file in `directory`."""
    engine = make_engine(f"sqlite:///{os.fspath(directory)}/state.db")
    try:
        yield engine
    finally:
        engine.dispose()


# `pytest.fixture(params=BACKENDS)`: a test on SQLite, and on PostgreSQL (marked `postgres`).
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@contextmanager
def store_on(backend: str, directory: os.PathLike[str] | str) -> Iterator[Store]:
    """A store on a new SQLite file in `directory` (`backend` "sqlite") or on an empty private
    PostgreSQL schema ("postgresql"; fails under CI=true without the server)."""
    if backend == "sqlite":
        with sqlite_engine_in(directory) as engine:
            yield open_store(engine)
    else:
        with pg_engine_in_temporary_schema(postgres_url_or_fail()) as engine:
            yield open_store(engine)


@contextmanager
def database_url_on(backend: str, directory: os.PathLike[str] | str) -> Iterator[str]:
    """The URL of a new SQLite file in `directory` (`backend` "sqlite") or of an empty private
    PostgreSQL schema ("postgresql"; fails under CI=true without the server), for a test that
    writes it into a config."""
    if backend == "sqlite":
        yield f"sqlite:///{os.path.join(directory, 'state.db')}"
        return
    with temporary_pg_schema(postgres_url_or_fail()) as schema:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


def writes_during(store: Any, action: Callable[[], Any]) -> list[str]:
    """The INSERT, UPDATE and DELETE statements (and WITH ... ones) `action` sends through
    `store`'s engine (COPY aside)."""
    seen: list[str] = []

    def listener(*args: Any) -> None:
        if args[2].lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE", "WITH"):
            seen.append(args[2])

    sa.event.listen(store.engine, "before_cursor_execute", listener)
    try:
        action()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", listener)
    return seen
