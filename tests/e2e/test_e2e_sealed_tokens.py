"""OAuth tokens sealed at rest, end to end against the sandbox, on SQLite and PostgreSQL.

Xero and HubSpot issue rotating tokens through the sandbox's token endpoints; every token
they issued (access and refresh, spent or current) is looked for in the raw bytes of the
SQLite file (and its WAL) or in a `pg_dump` of the schema, and must not be there in clear.
The service still refreshes with the sealed refresh token once its access token expired, a
key put first keeps everything readable, `connector db upgrade` re-seals with it (after which
the old key alone opens nothing) and seals the plain tokens of an older release, and a run
with OAuth connections and no key stops before it spends a refresh token."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from connector.config import load_config
from connector.demo import KEY_NAME, demo_config, run_demo
from connector.pipeline import sync
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state.secrets import SEALED_PREFIX, new_key
from connector.state.store import Store, open_store
from support.databases import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema
from support.e2e import with_credentials

pytestmark = pytest.mark.slow

OAUTH = ("xero", "hubspot")
TTL_S = 1800  # the sandbox's access tokens live half an hour


@pytest.fixture(autouse=True)
def no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONNECTOR_SECRET_KEY", raising=False)


@pytest.fixture(scope="module")
def book() -> dict[str, Any]:
    return with_credentials(generate(5, "small", today=date.today()).data)


@dataclass
class Database:
    """Where a test's state lives, and how to see what is written there byte for byte."""

    url: str
    raw: Callable[[], bytes]


@contextmanager
def sqlite_database(directory: Path) -> Iterator[Database]:
    path = directory / "state.db"

    def raw() -> bytes:
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())

    yield Database(f"sqlite:///{path}", raw)


@contextmanager
def postgres_database(directory: Path) -> Iterator[Database]:
    postgres_url_or_fail()
    server = make_url(POSTGRES_URL)
    with temporary_pg_schema() as schema:

        def raw() -> bytes:
            command = ["pg_dump", "-h", server.host or "127.0.0.1", "-p", str(server.port or 5432)]
            command += ["-U", server.username or "postgres", "-n", schema, server.database or "test"]
            return subprocess.run(command, capture_output=True, check=True, timeout=120).stdout

        yield Database(f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", raw)


BACKENDS = [
    pytest.param(sqlite_database, id="sqlite"),
    pytest.param(postgres_database, id="postgres", marks=pytest.mark.postgres),
]


def issued_tokens(sandbox: Sandbox) -> set[str]:
    """Every access and refresh token the sandbox's OAuth providers issued or took, spent or not."""
    tokens: set[str] = set()
    for provider in OAUTH:
        oauth = sandbox.faces[provider].oauth  # type: ignore[union-attr]  # Stripe has none; these two do
        tokens |= {token for token, expiry in oauth.access_tokens.items() if expiry != float("inf")}
        tokens |= set(oauth.refresh_tokens)
        for spent, (_, successor) in oauth.spent.items():
            tokens |= {spent, successor}
    return tokens


def token_requests(sandbox: Sandbox) -> int:
    return sum(1 for e in sandbox.journal if e["provider"] in OAUTH and "oauth" in e["path"])


def assert_nothing_in_clear(database: Database, tokens: set[str]) -> None:
    raw = database.raw()
    assert SEALED_PREFIX.encode() in raw  # the rows are there, sealed
    leaked = sorted(token for token in tokens if token.encode() in raw)
    assert not leaked, f"{len(leaked)} of {len(tokens)} issued tokens are stored in clear"


def write_config(directory: Path, sandbox: Sandbox, url: str, secret_key: str | None = "file:secret.key") -> Path:
    """The sandbox's config on `url`; the key named by a `file:` reference beside it."""
    text = demo_config(sandbox, secret_key=secret_key or "").replace("sqlite:///connector.db", url)
    if secret_key is None:
        text = "\n".join(line for line in text.splitlines() if not line.startswith("secret_key ="))
    path = directory / "connector.toml"
    path.write_text(text)
    return path


def write_keys(directory: Path, *keys: str) -> None:
    path = directory / "secret.key"
    path.write_text(",".join(keys) + "\n")
    path.chmod(0o600)


def synced(config_path: Path, *, plain: bool = False) -> Store:
    """A store opened as the CLI opens it (with the config's keys), after one sync; `plain`:
    opened without a sealer, as the tokens were stored before they were sealed."""
    config = load_config(str(config_path))
    store = open_store(config.database_url, sealer=None if plain else config.token_sealer())
    report = sync(config, store)
    assert report.ok, report.as_dict()
    return store


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_issued_token_is_stored_in_clear_and_the_next_sync_refreshes_with_the_sealed_one(
    backend: Callable[[Path], AbstractContextManager[Database]], book: dict[str, Any], tmp_path: Path
) -> None:
    now = [time.time()]
    with backend(tmp_path) as database, Sandbox(book, limits="off", clock=lambda: now[0]) as sandbox:
        write_keys(tmp_path, new_key())
        config_path = write_config(tmp_path, sandbox, database.url)
        synced(config_path).close()
        first = issued_tokens(sandbox)
        assert len(first) >= 6 and token_requests(sandbox) == 2  # one refresh per OAuth connection
        assert_nothing_in_clear(database, first)

        now[0] += TTL_S + 60  # the stored access tokens have expired at the providers
        store = synced(config_path)  # a new process: the tokens come from the database
        loaded = {name: store.load_tokens(name) for name in ("ledger", "crm")}
        store.close()
        assert token_requests(sandbox) == 4  # each connection refreshed with its stored refresh token
        issued = issued_tokens(sandbox)
        assert {loaded[name].refresh_token for name in loaded} <= issued - first  # type: ignore[union-attr]
        assert_nothing_in_clear(database, issued)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_new_key_put_first_keeps_working_and_db_upgrade_retires_the_old_one(
    backend: Callable[[Path], AbstractContextManager[Database]], book: dict[str, Any], tmp_path: Path, run_cli
) -> None:
    old, new = new_key(), new_key()
    with backend(tmp_path) as database, Sandbox(book, limits="off") as sandbox:
        config = str(write_config(tmp_path, sandbox, database.url))
        write_keys(tmp_path, old)
        assert run_cli("--config", config, "sync").exit_code == 0

        write_keys(tmp_path, new, old)
        rotated = run_cli("--config", config, "sync")
        assert rotated.exit_code == 0, rotated.stderr
        upgraded = run_cli("--config", config, "db", "upgrade")
        assert upgraded.exit_code == 0, upgraded.stderr
        assert "re-sealed the stored OAuth tokens of crm, ledger with the first key" in upgraded.stdout

        write_keys(tmp_path, old)
        refused = run_cli("--config", config, "sync")
        assert refused.exit_code == 3
        assert refused.stderr == (
            "error: tokens of connection ledger cannot be decrypted with the configured key(s): "
            "restore the key they were sealed with, or re-authorise the connection (its new refresh_token in the "
            "config, then `connector tokens forget ledger`)\n"
        )
        assert old not in refused.stderr

        write_keys(tmp_path, new)
        again = run_cli("--config", config, "sync")
        assert again.exit_code == 0, again.stderr
        assert_nothing_in_clear(database, issued_tokens(sandbox))


def test_after_a_lost_key_the_connections_are_authorised_again_and_run(
    book: dict[str, Any], tmp_path: Path, run_cli
) -> None:
    with Sandbox(book, limits="off") as sandbox:
        config_path = write_config(tmp_path, sandbox, f"sqlite:///{tmp_path / 'state.db'}")
        config = str(config_path)
        write_keys(tmp_path, new_key())
        assert run_cli("--config", config, "sync").exit_code == 0
        write_keys(tmp_path, new_key())  # the key is lost: a new one is made
        assert run_cli("--config", config, "sync").exit_code == 3
        # authorised again: the providers hand out new refresh tokens (here, the ones they hold)
        text = config_path.read_text()
        for provider, configured in (("xero", "sandbox-xero-refresh-0"), ("hubspot", "sandbox-hubspot-refresh-0")):
            (current,) = sandbox.faces[provider].oauth.refresh_tokens  # type: ignore[union-attr]
            text = text.replace(f'refresh_token = "{configured}"', f'refresh_token = "{current}"')
        config_path.write_text(text)
        for connection in ("ledger", "crm"):
            forgot = run_cli("--config", config, "tokens", "forget", connection, "--yes")
            assert forgot.exit_code == 0, forgot.stderr
        again = run_cli("--config", config, "sync")
        assert again.exit_code == 0, again.stderr
        assert_nothing_in_clear(Database("", lambda: (tmp_path / "state.db").read_bytes()), issued_tokens(sandbox))


@pytest.mark.parametrize("backend", BACKENDS)
def test_db_upgrade_seals_the_plain_tokens_of_an_older_release(
    backend: Callable[[Path], AbstractContextManager[Database]], book: dict[str, Any], tmp_path: Path, run_cli
) -> None:
    with backend(tmp_path) as database, Sandbox(book, limits="off") as sandbox:
        config = str(write_config(tmp_path, sandbox, database.url))
        write_keys(tmp_path, new_key())
        synced(Path(config), plain=True).close()
        issued = issued_tokens(sandbox)
        assert any(token.encode() in database.raw() for token in issued)

        upgraded = run_cli("--config", config, "db", "upgrade")
        assert upgraded.exit_code == 0, upgraded.stderr
        assert "sealed the stored OAuth tokens of crm, ledger (they were in clear)" in upgraded.stdout
        assert_nothing_in_clear(database, issued)  # nor in a free page or the WAL of a SQLite file
        assert run_cli("--config", config, "sync").exit_code == 0


def test_without_a_key_a_sync_with_oauth_connections_stops_before_spending_a_refresh_token(
    book: dict[str, Any], tmp_path: Path, run_cli
) -> None:
    with Sandbox(book, limits="off") as sandbox:
        config = str(write_config(tmp_path, sandbox, f"sqlite:///{tmp_path / 'state.db'}", secret_key=None))
        for command in (("sync",), ("apply", "--yes"), ("sync", "--connection", "gateway")):
            result = run_cli("--config", config, *command)
            assert result.exit_code == 2, (command, result)
            assert result.stderr == (
                "error: connections ledger, crm use OAuth, whose rotated tokens are stored encrypted, and no "
                "secret key is set: make one with `connector secret-key new` and set it in CONNECTOR_SECRET_KEY, "
                'or [database] secret_key in connector.toml ("file:PATH" or "env:NAME")\n'
            )
        assert token_requests(sandbox) == 0
        # commands that never call a provider need no key
        assert run_cli("--config", config, "invoices", "list").exit_code == 0
        doctor = run_cli("--config", config, "doctor")
        assert "warning  secret key: connections ledger, crm use OAuth" in doctor.stdout


def test_the_demo_seals_its_tokens_with_a_key_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    issued: list[set[str]] = []
    stop = Sandbox.stop

    def stop_and_keep_tokens(sandbox: Sandbox) -> None:
        issued.append(issued_tokens(sandbox))
        stop(sandbox)

    monkeypatch.setattr(Sandbox, "stop", stop_and_keep_tokens)
    run_demo(tmp_path, seed=5, echo=lambda _line: None)
    key = tmp_path / KEY_NAME
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "connector.db").st_mode) == 0o600
    assert 'secret_key = "file:connector.key"' in (tmp_path / "connector.toml").read_text()
    database = Database("", lambda: (tmp_path / "connector.db").read_bytes())
    assert_nothing_in_clear(database, issued[0])
    config = load_config(str(tmp_path / "connector.toml"))
    store = open_store(config.database_url, sealer=config.token_sealer())
    assert store.token_states() == {"crm": "sealed", "ledger": "sealed"}
    store.close()
