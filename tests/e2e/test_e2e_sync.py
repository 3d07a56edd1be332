"""The real adapters against the sandbox over loopback HTTP, through the sync engine."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import date, timedelta

import pytest

from connector.cli.progress import SyncProgress
from connector.demo import demo_config
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.sync import StreamReport, SyncReport
from support.e2e import stored_views, sync_sandbox, with_credentials
from support.prism import ExchangeRecorder

pytestmark = pytest.mark.slow

TODAY = date.today()  # Stripe keeps events 30 days: the book must be dated around now


@pytest.fixture(scope="module")
def book():
    return with_credentials(generate(11, "small", today=TODAY).data)


def test_sync_with_faults_and_documented_limits_stores_what_a_clean_run_stores(book, tmp_path, monkeypatch):
    with Sandbox(book, limits="documented") as clean:
        clean_store, clean_report = sync_sandbox(clean, tmp_path / "clean", full=True)
    recorder = ExchangeRecorder()
    recorder.install(monkeypatch)
    with Sandbox(book, limits="documented", fail_rate=0.2, seed=3, fault_delay_s=0.3) as faulty:
        faulty_store, faulty_report = sync_sandbox(faulty, tmp_path / "faulty", full=True)
    assert any(response.status_code >= 500 for _, response in recorder.exchanges)  # faults did happen
    assert clean_report.ok, clean_report.as_dict()
    assert faulty_report.ok, faulty_report.as_dict()
    assert stored_views(faulty_store) == stored_views(clean_store)
    assert len(stored_views(clean_store)) > 300
    clean_store.close()
    faulty_store.close()


def test_every_stream_of_every_adapter_reads_the_sandbox(book, tmp_path):
    with Sandbox(book, limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, tmp_path, full=True)
    by_stream = {(s.connection, s.stream): s for s in report.streams}
    assert {s.status for s in report.streams} == {"ok"}
    for key in [
        ("gateway", "invoices"),
        ("gateway", "charges"),
        ("ledger", "invoices"),
        ("ledger", "payments"),
        ("crm", "deals"),
        ("crm", "companies"),
    ]:
        assert by_stream[key].stored > 0, key
    assert all(s.skipped == 0 for s in report.streams), [s.errors for s in report.streams if s.errors]
    # OAuth: the rotated refresh tokens were saved in the state store
    assert store.load_tokens("ledger").refresh_token != "sandbox-xero-refresh-0"
    assert store.load_tokens("crm").refresh_token != "sandbox-hubspot-refresh-0"
    store.close()


def test_a_no_change_incremental_sync_costs_at_most_two_requests_per_stream(book, tmp_path, monkeypatch):
    with Sandbox(book, limits="off") as sandbox:
        store, first = sync_sandbox(sandbox, tmp_path, full=True)
        views = stored_views(store)
        store.close()
        recorder = ExchangeRecorder()
        recorder.install(monkeypatch)
        store, second = sync_sandbox(sandbox, tmp_path)
    assert second.ok, second.as_dict()
    api_calls = [r for r, _ in recorder.exchanges if not r.url.path.endswith("/oauth/token")]
    assert len(api_calls) <= 2 * len(second.streams), sorted(str(r.url) for r in api_calls)
    assert stored_views(store) == views
    store.close()


def test_no_change_runs_of_a_book_quiet_for_weeks_stay_incremental(tmp_path, monkeypatch):
    """Every Stripe event of this book is 45+ days old: the streams are quiet, not stale. The
    runs after the first must not read the whole stream again (the cursor notes when the
    events feed was last read, not only its newest event)."""
    quiet = with_credentials(generate(11, "small", today=TODAY - timedelta(days=45)).data)
    with Sandbox(quiet, limits="off") as sandbox:
        store, first = sync_sandbox(sandbox, tmp_path, full=True)
        store.close()
        for _ in range(2):
            recorder = ExchangeRecorder()
            with monkeypatch.context() as patch:
                recorder.install(patch)
                store, again = sync_sandbox(sandbox, tmp_path)
            store.close()
            assert again.ok, again.as_dict()
            gateway = [s for s in again.streams if s.connection == "gateway"]
            assert not any(s.notes for s in gateway), [s.notes for s in gateway]  # no full pull
            assert sum(s.records for s in gateway) == 0
            stripe_calls = [r for r, _ in recorder.exchanges if "/stripe/" in r.url.path]
            assert len(stripe_calls) <= 2 * len(gateway), sorted(str(r.url) for r in stripe_calls)
    assert first.ok, first.as_dict()


def _run_cli(directory, sandbox, *args):
    config = directory / "connector.toml"
    directory.mkdir(parents=True, exist_ok=True)
    config.write_text(demo_config(sandbox).replace("sqlite:///connector.db", f"sqlite:///{directory / 'state.db'}"))
    with open(directory / "err", "w") as err:  # stderr is a file, not a terminal
        out = subprocess.run(
            [sys.executable, "-m", "connector", "--config", str(config), *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            timeout=300,
        )
    return out, (directory / "err").read_text()


def test_sync_without_a_terminal_writes_plain_progress_lines_to_stderr(book, tmp_path):
    with Sandbox(book, limits="off") as sandbox:
        result, err = _run_cli(tmp_path / "text", sandbox, "sync")  # no -v
        assert result.returncode == 0, err
        lines = err.splitlines()
        assert any(" sync gateway/invoices: reading, " in line for line in lines), err
        assert any(" sync gateway/invoices: ok, " in line and " records stored (" in line for line in lines), err
        assert "\r" not in err  # no live line redrawn in place
        assert "gateway      invoices" in result.stdout  # the report stays on stdout

        # (Stripe only from here: the OAuth refresh tokens of the book were rotated above.)
        result, err = _run_cli(tmp_path / "json", sandbox, "sync", "--json", "--connection", "gateway")
        assert result.returncode == 0, err
        report = json.loads(result.stdout)  # stdout is the JSON report only
        assert {s["stream"] for s in report["streams"] if s["connection"] == "gateway"} >= {"invoices", "charges"}
        assert "gateway/invoices: ok, " in err

        result, err = _run_cli(
            tmp_path / "jsonlogs", sandbox, "--log-format", "json", "sync", "--json", "--connection", "gateway"
        )
        assert result.returncode == 0, err
        entries = [json.loads(line) for line in err.splitlines()]  # every stderr line is a JSON entry
        assert any(e["message"].startswith("gateway/invoices: ok, ") and e["stream"] == "invoices" for e in entries)
        json.loads(result.stdout)


def test_plain_progress_is_throttled_per_stream():
    now = [0.0]
    out = io.StringIO()
    progress = SyncProgress(out, every=5.0, clock=lambda: now[0])
    report = StreamReport(connection="gateway", provider="stripe", stream="invoices")
    other = StreamReport(connection="ledger", provider="xero", stream="invoices")
    for second in range(12):  # a page a second for 12 s
        now[0] = float(second)
        report.pages += 1
        report.stored += 100
        progress(report)
        progress(other)
    progress.finish(SyncReport(run_id="r", streams=[report, other]))
    lines = out.getvalue().splitlines()
    gateway = [line for line in lines if "gateway/invoices" in line]
    assert len(gateway) == 4, lines  # at 0 s, 5 s, 10 s, and the end
    assert "reading, 100 records stored (1 page)" in gateway[0]
    assert "still reading, 600 records stored (6 pages)" in gateway[1]
    assert "ok, 1,200 records stored (12 pages) in 0.0 s" in gateway[-1]
    assert len([line for line in lines if "ledger/invoices" in line]) == 4
