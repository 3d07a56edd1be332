"""Two `connector apply` processes at once on one database: every action is sent once."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from connector.config import load_config
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state import outbox
from connector.state.store import open_store
from support.apply_crash import apply_process, prepare
from support.databases import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema
from support.e2e import effect_counts, with_credentials, write_counts

pytestmark = pytest.mark.slow


def run_two_workers(tmp_path, database_url):
    book = with_credentials(generate(9, "small", today=date.today()).data)
    with Sandbox(book, limits="off", latency_ms=60) as sandbox:
        config_path = prepare(sandbox, tmp_path, database_url)
        # small claims: the gateway's writes (one per request) are shared out between the two
        first, second = (apply_process(config_path, claim_size=3) for _ in range(2))
        outcomes = [p.communicate(timeout=300) for p in (first, second)]
        assert first.returncode == 0 and second.returncode == 0, [o[1].decode()[-500:] for o in outcomes]
        journal = list(sandbox.journal)
    store = open_store(load_config(str(config_path)).database_url)
    with store.session() as session:
        states = Counter(e.action.state for e in outbox.entries(session))
        workers = Counter(e.claimed_by for e in outbox.entries(session))
    store.close()
    effects = effect_counts(journal)
    writes = write_counts(journal)
    return states, effects, writes, workers


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_apply_processes_send_every_action_once(backend, tmp_path):
    if backend == "sqlite":
        states, effects, writes, workers = run_two_workers(tmp_path, None)
    else:
        postgres_url_or_fail()
        with temporary_pg_schema() as schema:
            url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
            states, effects, writes, workers = run_two_workers(tmp_path, url)
    assert set(states) == {"done"}
    assert len(workers) == 2, workers  # both processes really took part
    assert effects and max(effects.values()) == 1, {k: v for k, v in effects.items() if v > 1}
    # no write of any kind reached a provider twice (PATCHes included)
    assert max(writes.values()) == 1, {k: v for k, v in writes.items() if v > 1}
