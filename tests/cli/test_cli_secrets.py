"""`connector secret-key new`, `file:` references for every secret setting, the secret key in
the config and in the environment, and what `connector doctor` says about them."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from connector.config import load_config
from connector.errors import ConfigError
from connector.redaction import redact
from connector.state.secrets import TokenSealer, new_key
from connector.state.store import open_store

STRIPE = """
[connections.gateway]
provider = "stripe"
base_url = "http://127.0.0.1:9/stripe"
api_key = "{api_key}"
"""
XERO = """
[connections.ledger]
provider = "xero"
base_url = "http://127.0.0.1:9/xero"
tenant_id = "tenant"
client_id = "client"
client_secret = "xero-secret-for-secrets-tests"
refresh_token = "xero-refresh-for-secrets-tests"
"""


@pytest.fixture(autouse=True)
def no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONNECTOR_SECRET_KEY", raising=False)
    monkeypatch.delenv("CONNECTOR_DATABASE_URL", raising=False)


def write(directory: Path, text: str) -> Path:
    path = directory / "connector.toml"
    path.write_text(text)
    return path


def test_secret_key_new_prints_a_fernet_key_and_says_how_to_set_it(run_cli) -> None:
    result = run_cli("secret-key", "new")
    assert result.exit_code == 0
    key = result.stdout.strip()
    assert result.stdout == key + "\n"  # stdout is the key alone: `connector secret-key new > FILE`
    Fernet(key)
    assert "CONNECTOR_SECRET_KEY=KEY" in result.stderr
    assert 'secret_key = "file:' in result.stderr and "connector db upgrade" in result.stderr
    assert run_cli("secret-key", "new").stdout.strip() != key


def test_secret_key_new_writes_an_owner_only_file_and_never_overwrites_one(run_cli, tmp_path: Path) -> None:
    result = run_cli("secret-key", "new", "--file", "keys/secret_key")
    assert result.exit_code == 2 and "cannot write keys/secret_key" in result.stderr  # no such folder
    created = run_cli("secret-key", "new", "--file", "secret_key")
    assert created.exit_code == 0 and created.stdout == ""
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    Fernet(path.read_text().strip())
    assert f'secret_key = "file:{path}"' in created.stderr
    before = path.read_text()
    again = run_cli("secret-key", "new", "--file", "secret_key")
    assert again.exit_code == 2 and again.stderr.count("\n") == 1
    assert "secret_key already exists: a key file is never overwritten" in again.stderr
    assert path.read_text() == before


def test_file_references_work_for_connection_secrets_the_url_and_the_key(tmp_path: Path) -> None:
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "stripe").write_text("sk_test_from_a_file_0a1b2c\n")
    key = new_key()
    (tmp_path / "secret_key").write_text(f"{key}\n")
    (tmp_path / "url").write_text(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    text = '[database]\nurl = "file:url"\nsecret_key = "file:secret_key"\n'
    path = write(tmp_path, text + STRIPE.format(api_key="file:credentials/stripe"))
    config = load_config(str(path))
    settings = config.connection("gateway").settings
    assert settings.api_key.get_secret_value() == "sk_test_from_a_file_0a1b2c"  # type: ignore[attr-defined]
    assert config.connection("gateway").literal_secrets == []  # a reference, not written in the file
    assert config.database_url == f"sqlite:///{tmp_path / 'elsewhere.db'}"
    assert config.secret_keys == (key,) and config.secret_key_source == "database.secret_key"
    assert key not in repr(config) and redact(f"key {key}") == "key ***"
    assert redact("sk_test_from_a_file_0a1b2c", shapes=False) == "***"


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("file:nowhere/stripe", "file {dir}/nowhere/stripe not found"),
        ("file:credentials", "cannot read file {dir}/credentials: it is a directory"),
        ("file:empty", "file {dir}/empty is empty"),
        ("file:", "`file:` needs a path"),
    ],
)
def test_a_file_reference_that_cannot_be_read_is_one_line_naming_the_file_the_connection_and_the_key(
    run_cli, tmp_path: Path, reference: str, message: str
) -> None:
    (tmp_path / "credentials").mkdir()
    (tmp_path / "empty").write_text(" \n")
    write(tmp_path, STRIPE.format(api_key=reference))
    expected = f"connector.toml: connections.gateway.api_key: {message.format(dir=tmp_path)}"
    with pytest.raises(ConfigError) as refused:
        load_config(str(tmp_path / "connector.toml"))
    assert str(refused.value) == f"{tmp_path}/{expected}"
    result = run_cli("invoices", "list")  # the default ./connector.toml
    assert result.exit_code == 2
    assert result.stderr == f"error: {expected}\n"


def test_a_secret_key_file_that_cannot_be_read_or_holds_no_key_is_one_line(run_cli, tmp_path: Path) -> None:
    write(tmp_path, '[database]\nsecret_key = "file:/nonexistent/secret_key"\n')
    missing = run_cli("db", "upgrade")
    assert missing.exit_code == 2
    assert missing.stderr == "error: connector.toml: database.secret_key: file /nonexistent/secret_key not found\n"
    (tmp_path / "secret_key").write_text("not-a-fernet-key-at-all\n")
    write(tmp_path, '[database]\nsecret_key = "file:secret_key"\n')
    bad = run_cli("doctor")
    assert bad.exit_code == 2 and "not-a-fernet-key" not in bad.stderr
    assert bad.stderr == (
        "error: connector.toml: database.secret_key: it is not a Fernet key (32 bytes in URL-safe base64, "
        "44 characters; make one with `connector secret-key new`)\n"
    )


def test_the_key_in_the_config_wins_over_the_environment_and_the_environment_holds_several(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, named = new_key(), new_key(), new_key()
    monkeypatch.setenv("CONNECTOR_SECRET_KEY", f"{first}, {second}")
    from_env = load_config(str(write(tmp_path, XERO)))
    assert from_env.secret_keys == (first, second) and from_env.secret_key_source == "CONNECTOR_SECRET_KEY"
    monkeypatch.setenv("NAMED_KEY", named)
    in_file = load_config(str(write(tmp_path, '[database]\nsecret_key = "env:NAMED_KEY"\n' + XERO)))
    assert in_file.secret_keys == (named,) and not in_file.literal_secret_key


def test_a_config_without_oauth_connections_needs_no_key(run_cli, tmp_path: Path) -> None:
    write(tmp_path, STRIPE.format(api_key="sk_test_no_oauth_here"))
    config = load_config(str(tmp_path / "connector.toml"))
    assert config.oauth_connections() == [] and config.secret_keys == ()
    config.require_secret_key()
    doctor = json.loads(run_cli("doctor", "--json").stdout)
    assert not [c for c in doctor["checks"] if c["check"] == "secret key"]


def test_doctor_reports_the_missing_key_a_literal_key_and_stored_tokens_it_cannot_open(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, XERO)
    checks = json.loads(run_cli("doctor", "--json").stdout)["checks"]
    missing = [c for c in checks if c["check"] == "secret key"]
    assert [c["status"] for c in missing] == ["warning"]
    assert missing[0]["detail"].startswith("connection ledger uses OAuth, whose rotated tokens are stored encrypted")
    assert "`connector sync`, `apply` and `serve` refuse to run without it" in missing[0]["detail"]

    sealed_with, configured = new_key(), new_key()
    store = open_store(f"sqlite:///{tmp_path / 'connector.db'}", sealer=TokenSealer([sealed_with]))
    store.save_tokens("ledger", {"access_token": "at-doctor-1", "refresh_token": "rt-doctor-1"}, None)
    store.close()
    write(tmp_path, f'[database]\nsecret_key = "{configured}"\n' + XERO)
    result = run_cli("doctor", "--json")
    assert configured not in result.stdout
    report = json.loads(result.stdout)
    by_check = {(c["check"], c["status"]): c["detail"] for c in report["checks"]}
    assert by_check[("secret key", "ok")] == "1 key from database.secret_key"
    assert "secret_key is written in the file" in by_check[("secret key", "warning")]
    assert by_check[("tokens ledger", "error")].startswith("tokens of connection ledger cannot be decrypted")
    assert result.exit_code == 1

    write(tmp_path, XERO)  # no key at all
    report = json.loads(run_cli("doctor", "--json").stdout)
    unreadable = [c for c in report["checks"] if c["check"] == "tokens ledger"]
    assert [c["status"] for c in unreadable] == ["error"]
    assert "cannot be decrypted without a key: none is set" in unreadable[0]["detail"]

    monkeypatch.setenv("KEYS", f"{configured},{sealed_with}")
    write(tmp_path, '[database]\nsecret_key = "env:KEYS"\n' + XERO)
    report = json.loads(run_cli("doctor", "--json").stdout)
    assert [c for c in report["checks"] if c["check"].startswith("tokens")] == []
    assert {
        "check": "secret key",
        "status": "ok",
        "detail": "2 keys from database.secret_key; the first seals new tokens",
    } in report["checks"]


def test_tokens_forget_drops_a_connections_stored_tokens_and_records_who(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'connector.db'}", sealer=TokenSealer([new_key()]))
    store.save_tokens("ledger", {"access_token": "at-forget-1", "refresh_token": "rt-forget-1"}, None)
    store.close()
    write(tmp_path, f'[database]\nsecret_key = "{new_key()}"\n' + XERO)  # another key: they cannot be opened
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    declined = run_cli("tokens", "forget", "ledger")  # asks first
    assert declined.exit_code == 2 and "forget the stored tokens of ledger?" in declined.stdout
    result = run_cli("tokens", "forget", "ledger", "--yes", "--user", "ops")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "forgot the stored tokens of ledger: the next run uses the refresh_token in the config\n"
    store = open_store(f"sqlite:///{tmp_path / 'connector.db'}")
    assert store.load_tokens("ledger") is None
    with store.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT actor, action, subject_id FROM audit_log").all()
    store.close()
    assert [tuple(row) for row in rows] == [("ops", "tokens_forgotten", "ledger")]
    again = run_cli("tokens", "forget", "ledger", "--yes")
    assert again.exit_code == 2 and again.stderr == "error: no tokens are stored for connection 'ledger'\n"
