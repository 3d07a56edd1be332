"""Two worker processes on one PostgreSQL database refresh the same Xero connection at once:
one spends the refresh token, the other waits and uses what it stored (no invalid_grant)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date

import pytest

from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from support.databases import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema
from support.e2e import sync_sandbox, with_credentials

pytestmark = pytest.mark.slow

WORKER = textwrap.dedent("""
    import sys, time
    from connector.config import load_config
    from connector.connections import open_provider
    from connector.state.store import open_store
    config = load_config(sys.argv[1])
    store = open_store(config.database_url)
    provider = open_provider(config.connection("ledger"), store)
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # both start refreshing together
    pages = list(provider.read("contacts", None))
    print(len(pages))
""")


def test_two_processes_refreshing_one_connection_spend_its_refresh_token_once(tmp_path):
    postgres_url_or_fail()
    book = with_credentials(generate(3, "small", today=date.today()).data)
    with temporary_pg_schema() as schema, Sandbox(book, limits="off", latency_ms=30) as sandbox:
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        store, _ = sync_sandbox(sandbox, tmp_path, streams=["(none)"], database_url=url)
        store.close()
        script = tmp_path / "worker.py"
        script.write_text(WORKER)
        import time

        start = str(time.time() + 3.0)
        processes = [
            subprocess.Popen(
                [sys.executable, str(script), str(tmp_path / "connector.toml"), start],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        outcomes = [p.communicate(timeout=120) for p in processes]
        issued = [e for e in sandbox.journal if e["provider"] == "xero" and "oauth" in e["path"]]
    assert all(p.returncode == 0 for p in processes), [o[1].decode()[-600:] for o in outcomes]
    assert [e["effect"].split(";")[0] for e in issued] == ["issued access token"]
