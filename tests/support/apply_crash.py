"""Kill `connector apply` again and again, then finish it, and count effects in the sandbox.

Used by tests/e2e/test_e2e_apply_crash.py (a few rounds) and bench/apply_crash.py (50+).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.config import load_config
from connector.pipeline import plan
from connector.reconcile.run import run_reconciliation
from connector.writeback.apply import pending
from support.e2e import effect_counts, sync_sandbox


@dataclass
class CrashRun:
    planned: int
    kills: int
    failpoint_exits: int
    effects: Counter[str]
    duplicates: dict[str, int]
    left: int


def prepare(sandbox: Any, directory: Path, database_url: str | None = None) -> Path:
    store, report = sync_sandbox(sandbox, directory, full=True, database_url=database_url)
    assert report.ok, report.as_dict()
    config_path = directory / "connector.toml"
    config = load_config(str(config_path))
    run_reconciliation(config, store)
    plan(config, store)
    store.close()
    return config_path


def apply_process(config_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "connector", "--config", str(config_path), "apply", "--yes"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


def crash_and_finish(sandbox: Any, config_path: Path, *, rounds: int, seed: int, max_delay: float) -> CrashRun:
    rng = random.Random(seed)
    kills = exits = 0
    from connector.state.store import open_store

    config = load_config(str(config_path))
    store = open_store(config.database_url)
    planned = len(pending(store))
    for round_ in range(rounds):
        if round_ % 2:
            # between the provider's answer and our commit, exactly
            process = apply_process(config_path, {"CONNECTOR_FAILPOINT": f"after_send:{rng.randint(1, 4)}"})
            process.communicate(timeout=120)
            exits += int(process.returncode == 137)
        else:
            process = apply_process(config_path)
            time.sleep(rng.uniform(0.05, max_delay))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                kills += 1
            process.communicate(timeout=60)
    final = apply_process(config_path)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()
    left = len(pending(store))
    store.close()
    effects = effect_counts(list(sandbox.journal))
    duplicates = {key: count for key, count in effects.items() if count > 1}
    return CrashRun(
        planned=planned, kills=kills, failpoint_exits=exits, effects=effects, duplicates=duplicates, left=left
    )
