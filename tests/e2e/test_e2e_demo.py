"""`connector demo`: the README's first command, end to end."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_the_product_on_the_sandbox_and_leaves_the_database(run_cli, tmp_path):
    result = run_cli("demo", "--dir", "book")
    assert result.exit_code == 0, result.stderr
    assert "Pulled from each system" in result.stdout
    assert "ledger" in result.stdout and "gateway" in result.stdout and "crm" in result.stdout
    assert (tmp_path / "book" / "connector.db").exists()
    config = (tmp_path / "book" / "connector.toml").read_text()
    assert "written by `connector demo`" in config
    status = run_cli("--config", "book/connector.toml", "db", "status")
    assert status.exit_code == 0, status.stdout + status.stderr


def test_demo_json_summary_and_a_second_run_starts_clean(run_cli, tmp_path):
    first = json.loads(run_cli("demo", "--dir", "book", "--json").stdout)
    second = run_cli("demo", "--dir", "book", "--json")
    assert second.exit_code == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["sync"]["ok"] is True
    assert summary["stored"] == first["stored"]
    assert summary["stored"]["invoices"] > 0 and summary["stored"]["payments"] > 0


def test_demo_never_overwrites_a_real_config(run_cli, tmp_path):
    (tmp_path / "connector.toml").write_text('[database]\nurl = "sqlite:///mine.db"\n')
    result = run_cli("demo")
    assert result.exit_code == 2
    assert "was not written by `connector demo`" in result.stderr
    assert (tmp_path / "connector.toml").read_text() == '[database]\nurl = "sqlite:///mine.db"\n'


def test_demo_with_quickbooks_as_the_ledger_reconciles_and_writes_back(run_cli, tmp_path):
    result = run_cli("demo", "--dir", "qbo", "--ledger", "quickbooks", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["sync"]["ok"] is True
    ledger_streams = {s["stream"] for s in summary["sync"]["streams"] if s["connection"] == "ledger"}
    assert ledger_streams == {"customers", "invoices", "payments", "credit_memos"}
    assert summary["reconciliation"]["matched"] > 0
    assert summary["written_back"]["ledger"]["record_payment"] > 0
    assert 'provider = "quickbooks"' in (tmp_path / "qbo" / "connector.toml").read_text()


def test_after_the_demo_drift_reports_nothing(run_cli, tmp_path):
    """The demo syncs once more after its write-back: every write is read back, so no system
    differs from what it should hold and the README's cron `connector drift || mail` stays quiet."""
    assert run_cli("demo", "--dir", "book").exit_code == 0
    result = run_cli("--config", "book/connector.toml", "drift", "--json")
    assert result.exit_code == 0, result.stdout
    report = json.loads(result.stdout)
    assert report["records"] == [] and report["dangling_refs"] == [] and report["drift"] is False
    text = run_cli("--config", "book/connector.toml", "drift")
    assert text.exit_code == 0 and text.stdout.startswith("no drift")
