"""Operators' mistakes are loud: no config file, a schedule that is not cron, a URL without a
scheme, and (`doctor --online`) credentials or hosts the providers refuse."""

from __future__ import annotations

import pytest

from connector.demo import DEMO_CREDENTIALS, demo_config
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate

NO_CONFIG = "error: no config file: looked for {path} (none named by --config or $CONNECTOR_CONFIG)"


@pytest.mark.parametrize(
    "args",
    [
        ["sync"],
        ["sync", "--dry-run"],
        ["serve", "--max-ticks", "1"],
        ["apply"],
        ["plan"],
        ["reconcile"],
        ["aging"],
        ["invoices", "list"],
        ["drift"],
        ["actions", "list"],
        ["doctor"],
        ["db", "upgrade"],
    ],
)
def test_without_a_config_file_a_command_exits_2_saying_where_it_looked_and_creates_nothing(run_cli, tmp_path, args):
    result = run_cli(*args)
    assert result.exit_code == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(NO_CONFIG.format(path=tmp_path / "connector.toml"))
    assert "connector init" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no connector.db left where it stood


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["sync", "--help"], ["init"]])
def test_help_version_and_init_need_no_config(run_cli, args):
    assert run_cli(*args).exit_code == 0


def test_a_config_named_by_the_environment_that_is_missing_is_named(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("CONNECTOR_CONFIG", str(tmp_path / "elsewhere.toml"))
    result = run_cli("sync")
    assert result.exit_code == 2
    assert f"config file {tmp_path / 'elsewhere.toml'} not found" in result.stderr


XERO = """[connections.ledger]
provider = "xero"
base_url = "{base_url}"
client_id = "id"
client_secret = "env:XERO_SECRET"
refresh_token = "env:XERO_SECRET"
tenant_id = "tenant"
{extra}
"""


@pytest.mark.parametrize(
    ("base_url", "extra", "message"),
    [
        (
            "api.xero.com/api.xro/2.0",
            "",
            "connections.ledger.base_url: 'api.xero.com/api.xro/2.0' is not an http(s) URL",
        ),
        ("ftp://files.example.com", "", "connections.ledger.base_url: 'ftp://files.example.com' is not an http(s) URL"),
        (
            "https://api.xero.com/api.xro/2.0",
            'schedule = "every 5 minutes"',
            "connections.ledger.schedule: 'every 5 minutes' is not a cron expression",
        ),
        (
            "https://api.xero.com/api.xro/2.0",
            'schedule = "0 25 * * *"',
            "connections.ledger.schedule: '0 25 * * *' is not a cron expression",
        ),
    ],
)
def test_a_bad_url_or_schedule_is_refused_at_load_and_by_doctor(
    run_cli, tmp_path, monkeypatch, base_url, extra, message
):
    monkeypatch.setenv("XERO_SECRET", "s3cret")
    (tmp_path / "connector.toml").write_text(XERO.format(base_url=base_url, extra=extra))
    for args in (["sync"], ["doctor"]):
        result = run_cli(*args)
        assert result.exit_code == 2, (args, result)
        assert message in result.stderr
        assert "s3cret" not in result.stderr + result.stdout
    assert not (tmp_path / "connector.db").exists()


def test_a_good_schedule_and_url_load(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("XERO_SECRET", "s3cret")
    (tmp_path / "connector.toml").write_text(
        XERO.format(base_url="https://api.xero.com/api.xro/2.0", extra='schedule = "*/15 * * * *"')
    )
    result = run_cli("doctor")
    assert "schedule" not in result.stderr
    assert "connection ledger" in result.stdout


def _sandbox_config(sandbox: Sandbox, tmp_path, *, broken: str | None = None) -> None:
    text = demo_config(sandbox).replace("sqlite:///connector.db", f"sqlite:///{tmp_path / 'state.db'}")
    if broken == "unreachable":
        # a port nothing listens on: the gateway's requests are refused at once
        text = text.replace(sandbox.url("stripe"), "http://127.0.0.1:9")
    elif broken == "revoked":
        text = text.replace(DEMO_CREDENTIALS["stripe"][0], "sk_test_revoked_key")
    (tmp_path / "connector.toml").write_text(text)


@pytest.mark.slow
def test_doctor_online_reaches_every_connection_with_its_credentials(run_cli, tmp_path):
    data = {**generate(7, "small").data, "credentials": DEMO_CREDENTIALS}
    with Sandbox(data, limits="off") as sandbox:
        _sandbox_config(sandbox, tmp_path)
        result = run_cli("doctor", "--online")
    assert result.exit_code == 0, result
    online = [line for line in result.stdout.splitlines() if " online " in f" {line.split(maxsplit=1)[1]}"]
    assert len(online) == 3, result.stdout
    assert all(line.startswith("ok") and "read the first page of" in line for line in online)
    offline = run_cli("doctor")  # without --online nothing is called
    assert " online " not in offline.stdout


@pytest.mark.slow
def test_doctor_online_names_the_connection_whose_credentials_are_refused(run_cli, tmp_path):
    data = {**generate(7, "small").data, "credentials": DEMO_CREDENTIALS}
    with Sandbox(data, limits="off") as sandbox:
        _sandbox_config(sandbox, tmp_path, broken="revoked")
        result = run_cli("doctor", "--online")
    assert result.exit_code == 1, result
    failed = [line for line in result.stdout.splitlines() if line.startswith("error")]
    assert len(failed) == 1 and "online gateway" in failed[0] and "credentials refused" in failed[0], result.stdout
    assert "sk_test_revoked_key" not in result.stdout + result.stderr  # Stripe masks it itself


@pytest.mark.slow
def test_doctor_online_names_an_unreachable_provider(run_cli, tmp_path):
    data = {**generate(7, "small").data, "credentials": DEMO_CREDENTIALS}
    with Sandbox(data, limits="off") as sandbox:
        _sandbox_config(sandbox, tmp_path, broken="unreachable")
        result = run_cli("doctor", "--online")
    assert result.exit_code == 1, result
    failed = [line for line in result.stdout.splitlines() if line.startswith("error")]
    assert len(failed) == 1 and "online gateway" in failed[0] and "127.0.0.1:9" in failed[0], result.stdout
    assert "after 2 attempt(s)" in failed[0], failed  # a probe tries twice, not a sync's five times
