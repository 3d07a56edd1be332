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
from e2e_support import stored_views, sync_sandbox, with_credentials
from state.store import open_store

pytestmark = pytest.mark.slow


def run_sync(config, *, kill_after: float | None = None) -> int:
    command = [sys.executable, "-m", "connector", "--config", str(config), "sync"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_after is None:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode()
        return process.returncode
    time.sleep(kill_after)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
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
        store, _ = sync_sandbox(sandbox, tmp_path / "crashy", streams=["nothing-yet"])  # writes the config, opens the db
        store.close()
        config = tmp_path / "crashy" / "connector.toml"
        killed = 0
        for delay in (0.4, 0.9, 1.4, 2.0, 2.8):
            if run_sync(config, kill_after=delay) == -signal.SIGKILL:
                killed += 1
        assert killed >= 3  # the kills landed mid-run, not after it finished
        run_sync(config)
        run_sync(config)  # and once more, incrementally, to prove nothing is stored twice
    store = open_store(f"sqlite:///{tmp_path / 'crashy' / 'state.db'}")
    assert stored_views(store) == expected
    store.close()
