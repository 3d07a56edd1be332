"""OAuth tokens sealed at rest, on SQLite and PostgreSQL: stored values are Fernet tokens behind
a version prefix, a store without a key refuses to store any, a wrong key is an error naming
the connection, a key put first re-seals everything, and plain tokens of older releases are
read and then sealed. A new SQLite file is readable by its owner only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from connector.errors import EXIT_FAILURE, EXIT_USAGE
from connector.state import open_store
from connector.state.secrets import (
    SEALED_PREFIX,
    SecretKeyMissingError,
    TokenSealer,
    TokensUnreadableError,
    new_key,
    parse_keys,
)
from connector.state.store import Store
from connector.state.token_store import StateTokenStore

OLD, NEW = new_key(), new_key()
TOKENS = {
    "access_token": "at-sealing-test-5f1c",
    "refresh_token": "rt-sealing-test-9a2e",
    "previous_refresh_token": "rt-sealing-test-previous-77d0",
    "expires_at": 1_900_000_000,
}
SECRETS = ("at-sealing-test-5f1c", "rt-sealing-test-9a2e", "rt-sealing-test-previous-77d0")


def stored_values(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT access_token, refresh_token, previous_refresh_token FROM oauth_tokens")
        ).all()
    return [value for row in rows for value in row if value is not None]


def with_keys(engine: sa.Engine, *keys: str) -> Store:
    return open_store(engine, sealer=TokenSealer(keys))


def test_stored_tokens_are_sealed_and_open_again(empty_engine: sa.Engine) -> None:
    store = with_keys(empty_engine, NEW)
    assert store.save_tokens("ledger", TOKENS, None) == 1
    values = stored_values(empty_engine)
    assert len(values) == 3 and all(value.startswith(SEALED_PREFIX) for value in values)
    assert not any(secret in value for value in values for secret in SECRETS)
    loaded = store.load_tokens("ledger")
    assert loaded is not None and loaded.sealed
    assert (loaded.access_token, loaded.refresh_token, loaded.previous_refresh_token) == SECRETS
    assert store.save_tokens("ledger", {**TOKENS, "access_token": "at-second-0b3a"}, loaded.version) == 2
    again = store.load_tokens("ledger")
    assert again is not None and again.access_token == "at-second-0b3a"
    assert "at-second" not in repr(again) and NEW not in repr(store.sealer)


def test_a_store_without_a_key_refuses_to_store_a_token(empty_engine: sa.Engine) -> None:
    store = with_keys(empty_engine)
    with pytest.raises(SecretKeyMissingError) as refused:
        store.save_tokens("ledger", TOKENS, None)
    message = str(refused.value)
    assert "\n" not in message and refused.value.exit_code == EXIT_USAGE
    assert "connection ledger uses OAuth" in message and "`connector secret-key new`" in message
    assert "CONNECTOR_SECRET_KEY" in message
    assert stored_values(empty_engine) == []
    # and the token store refuses at load, before the OAuth layer could spend a refresh token
    with pytest.raises(SecretKeyMissingError):
        StateTokenStore(store).load("ledger")


@pytest.mark.parametrize("keys", [(OLD,), ()], ids=["wrong key", "no key"])
def test_tokens_sealed_with_another_key_are_an_error_naming_the_connection(
    empty_engine: sa.Engine, keys: tuple[str, ...]
) -> None:
    with_keys(empty_engine, NEW).save_tokens("crm", TOKENS, None)
    with pytest.raises(TokensUnreadableError) as unreadable:
        with_keys(empty_engine, *keys).load_tokens("crm")
    message = str(unreadable.value)
    assert message.startswith("tokens of connection crm cannot be decrypted ")
    assert message.endswith(
        ": restore the key they were sealed with, or re-authorise the connection (its new refresh_token in the "
        "config, then `connector tokens forget crm`)"
    )
    assert unreadable.value.exit_code == EXIT_FAILURE and "\n" not in message
    assert NEW not in message and OLD not in message


def test_a_new_key_put_first_opens_the_old_tokens_and_re_sealing_retires_the_old_key(
    empty_engine: sa.Engine,
) -> None:
    with_keys(empty_engine, OLD).save_tokens("ledger", TOKENS, None)
    both = with_keys(empty_engine, NEW, OLD)
    loaded = both.load_tokens("ledger")
    assert loaded is not None and loaded.refresh_token == TOKENS["refresh_token"]

    report = both.reseal_tokens()
    assert (report.sealed, report.resealed, report.plain) == ([], ["ledger"], [])
    assert both.reseal_tokens().resealed == []  # sealed with the first key already
    with pytest.raises(TokensUnreadableError):
        with_keys(empty_engine, OLD).load_tokens("ledger")
    alone = with_keys(empty_engine, NEW).load_tokens("ledger")
    assert alone is not None and alone.refresh_token == TOKENS["refresh_token"]
    assert alone.version == loaded.version  # the same tokens: re-sealing is not a save


def test_plain_tokens_of_an_older_release_are_read_and_sealed_by_resealing(empty_engine: sa.Engine) -> None:
    open_store(empty_engine).save_tokens("ledger", TOKENS, None)  # no sealer: as stored before sealing
    assert sorted(stored_values(empty_engine)) == sorted(SECRETS)

    keyless = with_keys(empty_engine)
    assert keyless.reseal_tokens().plain == ["ledger"]  # nothing to seal them with: left, and said
    assert keyless.token_states() == {"ledger": "plain"}

    store = with_keys(empty_engine, NEW)
    before = store.load_tokens("ledger")
    assert before is not None and not before.sealed and before.refresh_token == TOKENS["refresh_token"]
    assert store.reseal_tokens().sealed == ["ledger"]
    assert all(value.startswith(SEALED_PREFIX) for value in stored_values(empty_engine))
    after = store.load_tokens("ledger")
    assert after is not None and after.sealed and after.refresh_token == TOKENS["refresh_token"]
    assert store.token_states() == {"ledger": "sealed"}
    assert with_keys(empty_engine, OLD).token_states() == {"ledger": "unreadable"}


def test_a_key_setting_holds_several_keys_and_names_a_bad_one_by_position_only() -> None:
    assert parse_keys(f" {NEW},\n{OLD} ") == (NEW, OLD)
    assert parse_keys(f"{NEW} {OLD}") == (NEW, OLD)
    with pytest.raises(ValueError, match="^key 2 of 2 is not a Fernet key") as bad:
        parse_keys(f"{NEW},not-a-key-at-all")
    assert "not-a-key-at-all" not in str(bad.value)
    with pytest.raises(ValueError, match="holds no key"):
        parse_keys(" , ")


def test_a_new_sqlite_file_and_its_wal_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    store = open_store(f"sqlite:///{database}", sealer=TokenSealer([NEW]))
    try:
        store.save_tokens("ledger", TOKENS, None)
        with store.engine.connect() as connection:  # the WAL and its index exist while in use
            connection.exec_driver_sql("SELECT 1 FROM oauth_tokens").all()
            files = [database, tmp_path / "state.db-wal", tmp_path / "state.db-shm"]
            modes = {path.name: stat.S_IMODE(os.stat(path).st_mode) for path in files}
    finally:
        store.close()
    assert modes == {"state.db": 0o600, "state.db-wal": 0o600, "state.db-shm": 0o600}


def test_an_existing_sqlite_file_keeps_its_mode(tmp_path: Path) -> None:
    database = tmp_path / "shared.db"
    database.touch(mode=0o640)
    os.chmod(database, 0o640)
    open_store(f"sqlite:///{database}").close()
    assert stat.S_IMODE(os.stat(database).st_mode) == 0o640
