"""The plan queues the ledger's writes first; apply still sends every system's writes at
once, so a ledger backlog (or a ledger that waits for its rate limit) never holds the gateway
and the CRM back."""

from __future__ import annotations

import threading
import time
from datetime import date
from pathlib import Path

import pytest

from connector.config import load_config
from connector.http.ratelimit import STOPPING
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state import outbox
from connector.state.store import open_store
from connector.writeback.apply import ApplyReport, apply
from support.apply_crash import prepare
from support.e2e import with_credentials, writes

pytestmark = pytest.mark.slow


def test_the_gateway_and_the_crm_are_written_while_the_ledger_waits_for_its_rate_limit(tmp_path: Path) -> None:
    """Each connection is sent to in its own lane: with the ledger allowed one call a minute
    (its backlog queued first), every gateway and CRM write is done while the ledger waits;
    a stop then ends the ledger's wait at once, its writes handed back unsent."""
    book = with_credentials(generate(9, "small", today=date.today()).data)
    with Sandbox(book, limits="off") as sandbox:
        config_path = prepare(sandbox, tmp_path / "book")
        text = config_path.read_text()
        config_path.write_text(text.replace("[connections.ledger]\n", "[connections.ledger]\ncalls_per_minute = 1\n"))
        config = load_config(str(config_path))
        store = open_store(config.database_url)
        with store.session() as session:
            queued = outbox.entries(session)
        assert {e.action.connection for e in queued[:9]} == {"ledger"}  # the plan's order
        others = {e.id for e in queued if e.action.connection != "ledger"}

        stop = threading.Event()
        done: list[ApplyReport] = []
        sender = threading.Thread(target=lambda: done.append(apply(config, store, stop=stop)))
        sender.start()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with store.session() as session:
                    sent = {e.id for e in outbox.entries(session, states=("done",))}
                if others <= sent:
                    break
                time.sleep(0.1)
            with store.session() as session:
                ledger_done = [e for e in outbox.entries(session, states=("done",)) if e.action.connection == "ledger"]
        finally:
            stopped_at = time.monotonic()
            stop.set()
            STOPPING.set()  # as SIGTERM does: the ledger's wait for its slot ends
            sender.join(30)
            STOPPING.clear()
        journal = list(sandbox.journal)
        store.close()

    assert others <= sent, "the gateway's and the CRM's writes waited for the ledger"
    assert len(ledger_done) < sum(1 for e in queued if e.action.connection == "ledger")  # it was still waiting
    assert not sender.is_alive() and time.monotonic() - stopped_at < 10
    [report] = done
    assert report.stopped and report.released > 0
    assert {"stripe", "hubspot"} <= {e["provider"] for e in writes(journal)}
