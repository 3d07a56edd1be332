"""Stopping `connector apply` workers with SIGTERM mid-run, for the end-to-end tests and
bench/serve_workers.py: wait for the sandbox to see writes, signal, and read what is left."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from connector.config import load_config
from connector.state import outbox
from connector.state.store import open_store

# How long a worker may take to stop after SIGTERM: the write in flight, then the hand-back.
STOP_BOUND_S = 10.0


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.05)


def catches_sigterm(process: subprocess.Popen[bytes]) -> bool:
    """Whether the process has its own SIGTERM handler in place (Linux's /proc status lists
    the signals a process catches): a worker signalled before it got that far, still starting
    up with nothing claimed, would die of the signal, which is not what a test of stopping
    mid-run is about. Where /proc is missing (or the process is gone), assume so."""
    try:
        status = Path(f"/proc/{process.pid}/status").read_text()
    except FileNotFoundError:
        return True
    caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


@dataclass
class Stopped:
    """How each worker ended after SIGTERM: its exit code, how long it took, its stderr."""

    returncodes: list[int | None]
    seconds: list[float]
    stderr: list[str]


def stop_all(processes: Sequence[subprocess.Popen[bytes]], bound: float = STOP_BOUND_S) -> Stopped:
    """SIGTERM to every process at once, then wait for each at most `bound` seconds from the
    signal; one still running then is killed (and shows as returncode None)."""
    signalled = time.monotonic()
    for process in processes:
        process.send_signal(signal.SIGTERM)
    codes: list[int | None] = []
    seconds: list[float] = []
    errors: list[str] = []
    for process in processes:
        try:
            _, err = process.communicate(timeout=max(0.1, signalled + bound - time.monotonic()))
            codes.append(process.returncode)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate(timeout=30)
            codes.append(None)
        seconds.append(time.monotonic() - signalled)
        errors.append(err.decode(errors="replace") if err else "")
    return Stopped(codes, seconds, errors)


def outbox_after(config_path: Path) -> tuple[Counter[str], list[outbox.OutboxEntry]]:
    """The outbox's states, and its actions not done, as the database holds them."""
    store = open_store(load_config(str(config_path)).database_url)
    try:
        with store.session() as session:
            everything = outbox.entries(session)
    finally:
        store.close()
    return Counter(str(e.action.state) for e in everything), [e for e in everything if e.action.state != "done"]
