"""Kill `connector sync` at several points and run it again: the stored result equals a clean
run's, with nothing lost or stored twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date

import pytest

from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state.store import open_store
from support.e2e import stored_views, sync_sandbox, with_credentials

pytestmark = pytest.mark.slow


def run_sync(config, *, die_at_page: int | None = None, kill_after: float | None = None) -> int:
    """Run `connector sync`; with `die_at_page` it dies abruptly (exit 137, as from a SIGKILL)
    at that page written but not committed, with `kill_after` it is SIGKILLed after so long."""
    command = [sys.executable, "-m", "connector", "--config", str(config), "sync"]
    env = dict(os.environ)
    if die_at_page is not None:
        env["CONNECTOR_FAILPOINT"] = f"page_written:{die_at_page}"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    if die_at_page is None and kill_after is None:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode()
        return process.returncode
    if kill_after is not None:
        time.sleep(kill_after)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=300)
    return process.returncode


def test_sync_killed_at_several_points_then_rerun_equals_a_clean_run(tmp_path):
    book = with_credentials(generate(5, "small", today=date.today()).data)
    with Sandbox(book, limits="off") as clean:  # its own token issuer: two stores never share a token set
        clean_store, report = sync_sandbox(clean, tmp_path / "clean", full=True)
        assert report.ok
        expected = stored_views(clean_store)
        clean_store.close()
    # Xero's grace period for a refresh token whose answer was lost (a kill can land between
    # the provider's answer and our commit of the rotated token).
    with Sandbox(book, limits="off", latency_ms=15, refresh_grace_s=1800) as sandbox:
        store, _ = sync_sandbox(
            sandbox, tmp_path / "crashy", streams=["nothing-yet"]
        )  # writes the config, opens the db
        store.close()
        config = tmp_path / "crashy" / "connector.toml"
        # A kill at a moment in time: it may land anywhere, a token rotation included.
        run_sync(config, kill_after=0.7)
        # Kills at pages written and not committed, each run resuming from what the one before
        # committed; counted by page, not by time, so each lands mid-run however fast the machine.
        died = [run_sync(config, die_at_page=page) for page in (1, 2, 3, 5, 8)]
        assert died.count(137) >= 3, died  # the kills landed mid-run, not after it finished
        run_sync(config)
        run_sync(config)  # and once more, incrementally, to prove nothing is stored twice
    store = open_store(f"sqlite:///{tmp_path / 'crashy' / 'state.db'}")
    assert stored_views(store) == expected
    store.close()
