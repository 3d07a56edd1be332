"""The plan queues the ledger's writes first; apply still sends every system's writes from
its first claim on, so a ledger backlog (or a ledger that waits) never holds the gateway and
the CRM back."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from connector.config import load_config
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state import outbox
from connector.state.store import open_store
from connector.writeback.apply import apply
from support.apply_crash import prepare
from support.e2e import with_credentials, writes

pytestmark = pytest.mark.slow


def test_the_first_claim_sends_writes_to_every_system_while_the_ledger_backlog_waits(tmp_path: Path) -> None:
    book = with_credentials(generate(9, "small", today=date.today()).data)
    with Sandbox(book, limits="off") as sandbox:
        config_path = prepare(sandbox, tmp_path / "book")
        config = load_config(str(config_path))
        store = open_store(config.database_url)
        with store.session() as session:
            queued = outbox.entries(session)
        first_ids = [e.id for e in queued[:9]]
        assert {e.action.connection for e in queued if e.id in first_ids} == {"ledger"}  # the plan's order

        report = apply(config, store, batch=9, rounds=1)  # one claim, then stop
        with store.session() as session:
            left = Counter(e.action.connection for e in outbox.entries(session, states=("planned",)))
        store.close()
        journal = list(sandbox.journal)

    assert Counter(e.action.connection for e in report.done) == {"ledger": 3, "gateway": 3, "crm": 3}
    assert not report.drained
    # the ledger's backlog still waits, the gateway's and the CRM's writes reached them
    assert left["ledger"] == sum(1 for e in queued if e.action.connection == "ledger") - 3
    providers = [e["provider"] for e in writes(journal)]
    assert {"stripe", "hubspot", "xero"} <= set(providers[:6]), providers[:6]
