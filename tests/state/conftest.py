"""The `store` fixture: every state test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from connector.state import Store, open_store
from support.databases import pg_engine_in_temporary_schema, postgres_url_or_fail, sqlite_engine_in

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine on a database with no tables: a SQLite file or a private PostgreSQL schema."""
    if request.param == "sqlite":
        with sqlite_engine_in(tmp_path) as engine:
            yield engine
    else:
        with pg_engine_in_temporary_schema(postgres_url_or_fail()) as engine:
            yield engine


@pytest.fixture
def store(empty_engine: sa.Engine) -> Store:
    return open_store(empty_engine)
