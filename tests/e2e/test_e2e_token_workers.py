"""Four worker processes on one state database refresh the same Xero connection at once, on
SQLite (a file lock beside the database) and on PostgreSQL (an advisory lock): one spends the
refresh token, the others wait, reload what it stored and use that (no invalid_grant)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest

from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from support.databases import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema
from support.e2e import sync_sandbox, with_credentials

pytestmark = pytest.mark.slow

WORKERS = 4

WORKER = textwrap.dedent("""
    import sys, time
    from connector.config import load_config
    from connector.connections import open_provider
    from connector.state.store import open_store
    config = load_config(sys.argv[1])
    store = open_store(config.database_url, sealer=config.token_sealer())
    provider = open_provider(config.connection("ledger"), store)
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all start refreshing together
    pages = list(provider.read("contacts", None))
    print(len(pages))
""")


@contextmanager
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'state.db'}"


@contextmanager
def postgres_url(tmp_path: Path) -> Iterator[str]:
    postgres_url_or_fail()
    with temporary_pg_schema() as schema:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


@pytest.mark.parametrize(
    "database",
    [pytest.param(sqlite_url, id="sqlite"), pytest.param(postgres_url, id="postgres", marks=pytest.mark.postgres)],
)
def test_four_processes_refreshing_one_connection_spend_its_refresh_token_once(tmp_path, database):
    book = with_credentials(generate(3, "small", today=date.today()).data)
    # A quarter of a second a request: the first token answer takes long enough for the others,
    # even if they start late on a busy machine, to ask while it is still on its way.
    with database(tmp_path) as url, Sandbox(book, limits="off", latency_ms=250) as sandbox:
        store, _ = sync_sandbox(sandbox, tmp_path, streams=["(none)"], database_url=url)
        store.close()
        script = tmp_path / "worker.py"
        script.write_text(WORKER)
        start = str(time.time() + 3.0)
        processes = [
            subprocess.Popen(
                [sys.executable, str(script), str(tmp_path / "connector.toml"), start],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(WORKERS)
        ]
        outcomes = [p.communicate(timeout=120) for p in processes]
        issued = [e for e in sandbox.journal if e["provider"] == "xero" and "oauth" in e["path"]]
    assert all(p.returncode == 0 for p in processes), [o[1].decode()[-600:] for o in outcomes]
    assert [e["effect"].split(";")[0] for e in issued] == ["issued access token"]
