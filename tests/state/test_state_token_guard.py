"""The token store's part in refreshing OAuth tokens safely: the refresh guard held across
processes (a file lock beside a SQLite file, an advisory lock on PostgreSQL) and the previous
refresh token kept beside the current one (revision 0009)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from connector.state import Store, open_store
from connector.state.migrate import alembic_config, head_revision, upgrade
from connector.state.token_store import StateTokenStore
from support.databases import pg_engine_in_temporary_schema, postgres_url_or_fail


def held_while_another_waits(first: StateTokenStore, second: StateTokenStore, connections: tuple[str, str]) -> bool:
    """Whether `second` waited for `first`'s guard: the second takes its guard while the
    first holds its own for 0.3 s."""
    holding, waited = threading.Event(), []

    def hold() -> None:
        with first.refresh_guard(connections[0]):
            holding.set()
            time.sleep(0.3)

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(5)
    started = time.monotonic()
    with second.refresh_guard(connections[1]):
        waited.append(time.monotonic() - started)
    thread.join()
    return waited[0] > 0.2


def test_the_previous_refresh_token_is_kept_beside_the_current_one(store: Store) -> None:
    tokens = StateTokenStore(store)
    assert tokens.load("xero") is None
    tokens.save("xero", {"access_token": "a1", "refresh_token": "r1", "expires_at": 1_700_000_000})
    loaded = tokens.load("xero")
    assert loaded is not None and loaded["previous_refresh_token"] is None
    tokens.save("xero", {"access_token": "a2", "refresh_token": "r2", "previous_refresh_token": "r1"})
    loaded = tokens.load("xero")
    assert loaded is not None
    assert (loaded["refresh_token"], loaded["previous_refresh_token"]) == ("r2", "r1")
    stored = store.load_tokens("xero")
    assert stored is not None and "r1" not in repr(stored)


def test_the_sqlite_guard_of_one_connection_makes_a_second_holder_wait(tmp_path: Path) -> None:
    # Two stores on one file, as two processes have: the lock is the file's, not the object's.
    url = f"sqlite:///{tmp_path / 'state.db'}"
    one, two = open_store(url), open_store(url)
    try:
        assert held_while_another_waits(StateTokenStore(one), StateTokenStore(two), ("ledger", "ledger"))
        assert not held_while_another_waits(StateTokenStore(one), StateTokenStore(two), ("ledger", "crm"))
        assert sorted(p.name.split(".oauth-")[0] for p in tmp_path.glob("state.db.oauth-*.lock")) == ["state.db"] * 2
    finally:
        one.close()
        two.close()


def test_an_in_memory_sqlite_database_needs_no_lock_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite://")
    with StateTokenStore(store).refresh_guard("ledger"):
        pass
    store.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
def test_the_postgres_guard_of_one_connection_makes_a_second_holder_wait() -> None:
    with pg_engine_in_temporary_schema(postgres_url_or_fail()) as engine:
        store = open_store(engine)
        assert held_while_another_waits(StateTokenStore(store), StateTokenStore(store), ("ledger", "ledger"))
        assert not held_while_another_waits(StateTokenStore(store), StateTokenStore(store), ("ledger", "crm"))


def test_upgrading_to_0009_keeps_the_stored_tokens(empty_engine: sa.Engine) -> None:
    before = ScriptDirectory.from_config(alembic_config()).get_revision("0009").down_revision
    assert isinstance(before, str)
    upgrade(empty_engine, before)
    with empty_engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO oauth_tokens (connection, access_token, refresh_token, updated_at, version) "
                "VALUES ('ledger', 'a', 'r', CURRENT_TIMESTAMP, 3)"
            )
        )
    assert upgrade(empty_engine) == head_revision()
    stored = open_store(empty_engine).load_tokens("ledger")
    assert stored is not None
    assert (stored.refresh_token, stored.previous_refresh_token, stored.version) == ("r", None, 3)
