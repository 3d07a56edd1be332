"""SIGTERM during `connector apply`: the write in flight is finished and recorded, every other
claim goes back unsent, the process exits 0 within seconds; a later run sends the rest, and
no write reaches a provider twice."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from support.apply_crash import apply_process, prepare
from support.apply_stop import STOP_BOUND_S, catches_sigterm, outbox_after, stop_all, wait_until
from support.databases import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema
from support.e2e import with_credentials, write_counts, writes

pytestmark = pytest.mark.slow


def stop_mid_run(tmp_path: Path, database_url: str | None, workers: int) -> None:
    book = with_credentials(generate(9, "small", today=date.today()).data)
    # every request takes 150 ms: the run lasts far longer than the wait for its first writes
    with Sandbox(book, limits="off", latency_ms=150) as sandbox:
        config_path = prepare(sandbox, tmp_path / "book", database_url)
        # small claims, so that every worker has writes in hand when the signal comes (a ledger
        # and a CRM take batches: one worker claims all of this small book's)
        processes = [apply_process(config_path, claim_size=2) for _ in range(workers)]
        try:
            wait_until(
                lambda: len(writes(sandbox.journal)) >= 4 * workers and all(catches_sigterm(p) for p in processes),
                120,
                "the workers' first writes, every worker sending",
            )
        finally:
            stopped = stop_all(processes)
        assert stopped.returncodes == [0] * workers, [e[-800:] for e in stopped.stderr]
        assert max(stopped.seconds) < STOP_BOUND_S
        assert all("stopped" in e for e in stopped.stderr), [e[-800:] for e in stopped.stderr]

        states, left = outbox_after(config_path)
        # nothing left claimed by a worker that is gone; what was not sent waits, uncounted
        assert "in_flight" not in states, states
        assert left and {e.action.state for e in left} == {"planned"}
        assert {e.attempts for e in left} == {0}

        sandbox.latency_s = 0.0  # the rest at full speed
        rerun = apply_process(config_path)
        _, err = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, err.decode()[-800:]
        states, left = outbox_after(config_path)
        journal = list(sandbox.journal)

    assert set(states) == {"done"} and not left
    counts = write_counts(journal)
    assert max(counts.values()) == 1, {k: v for k, v in counts.items() if v > 1}


def test_sigterm_during_apply_exits_0_at_once_and_the_rest_is_sent_once_later(tmp_path: Path) -> None:
    stop_mid_run(tmp_path, None, workers=1)


@pytest.mark.postgres
def test_sigterm_to_four_apply_workers_on_postgresql(tmp_path: Path) -> None:
    postgres_url_or_fail()
    with temporary_pg_schema() as schema:
        stop_mid_run(tmp_path, f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", workers=4)


def test_sigterm_while_serve_sends_writes_stops_within_seconds(tmp_path: Path) -> None:
    book = with_credentials(generate(9, "small", today=date.today()).data)
    log = tmp_path / "serve.log"
    with Sandbox(book, limits="off", latency_ms=150) as sandbox:
        config_path = prepare(sandbox, tmp_path / "book")
        command = [sys.executable, "-m", "connector", "--config", str(config_path), "serve", "--every", "1d"]
        with open(log, "wb") as sink:  # a file: a pipe nobody reads while it runs could fill and stall it
            process = subprocess.Popen([*command, "--listen", "127.0.0.1:0"], stdout=subprocess.DEVNULL, stderr=sink)
        try:
            wait_until(lambda: len(writes(sandbox.journal)) >= 4, 180, "the service's first writes")
        finally:
            stopped = stop_all([process])
        journal = list(sandbox.journal)
        sent = sum(write_counts(journal).values())  # writes carried, one per item of a batch
    text = log.read_text(errors="replace")
    assert stopped.returncodes == [0], text[-800:]
    assert stopped.seconds[0] < STOP_BOUND_S
    assert "stopped" in text
    states, left = outbox_after(config_path)
    assert "in_flight" not in states, states
    assert left and {e.attempts for e in left} == {0}  # the stop cut the sending short, nothing counted
    assert states["done"] <= sent
    counts = write_counts(journal)
    assert max(counts.values()) == 1, {k: v for k, v in counts.items() if v > 1}
