"""The real adapters against the sandbox over loopback HTTP, through the sync engine."""

from __future__ import annotations

from datetime import date

import pytest

from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from support.prism import ExchangeRecorder
from e2e_support import stored_views, sync_sandbox, with_credentials

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
    for key in [("gateway", "invoices"), ("gateway", "charges"), ("ledger", "invoices"), ("ledger", "payments"),
                ("crm", "deals"), ("crm", "companies")]:
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
