"""Kill `connector apply` again and again, then finish it, and count effects in the sandbox.

Used by tests/e2e/test_e2e_apply_crash.py (a few rounds) and bench/apply_crash.py (50+).

Two kinds of round, then a last apply that runs to the end:
- first, with `hubspot_creates`, the CRM's notes and tasks batch after batch through the
  `after_send_<kind>` failpoint (an exit right between HubSpot's answer and our commit): each
  round commits the batch killed before (a replay now) and dies right after the next one's
  answer, so every note and task is sent again after HubSpot made it, whatever the machine's
  speed. With the sandbox's `search_delay_s` (HubSpot's index trailing writes), a look-up by
  search cannot see what the killed process made: only a key HubSpot checks at write time
  (read back by that key) holds;
- then `rounds` over every connection: SIGKILL at a random moment, and every other round an
  exit right between a provider's answer and our commit (the same failpoint).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.config import load_config
from connector.pipeline import plan
from connector.reconcile.run import run_reconciliation
from connector.state import outbox
from connector.writeback.apply import pending
from support.e2e import effect_counts, sync_sandbox

CRM = "crm"
CREATES = ("create_note", "create_task")
CREATE_PATHS = ("/crm/v3/objects/notes", "/crm/v3/objects/tasks")


@dataclass
class CrashRun:
    planned: int
    kills: int
    failpoint_exits: int
    effects: Counter[str]
    duplicates: dict[str, int]
    left: int
    hubspot_creates: int = 0  # notes and tasks planned
    hubspot_exits: int = 0  # exits right after HubSpot answered a note's or task's create
    hubspot_refused: int = 0  # creates HubSpot refused as repeating a key (answered by the stored one)
    hubspot_replayed: int = 0  # notes and tasks done with the one HubSpot held already (read by key)
    hubspot_effects: Counter[str] = field(default_factory=Counter)  # notes and tasks made, per action

    @property
    def hubspot_duplicates(self) -> dict[str, int]:
        return {key: count for key, count in self.hubspot_effects.items() if count > 1}


def prepare(
    sandbox: Any, directory: Path, database_url: str | None = None, *, hubspot: dict[str, str] | None = None
) -> Path:
    """Sync the sandbox, reconcile and plan; `hubspot`: settings added to the CRM connection
    (e.g. {"action_key_setup": "search"})."""
    store, report = sync_sandbox(sandbox, directory, full=True, database_url=database_url)
    assert report.ok, report.as_dict()
    config_path = directory / "connector.toml"
    if hubspot:
        text = config_path.read_text()
        sections = [line.strip() for line in text.splitlines() if line.startswith("[")]
        assert sections[-1] == f"[connections.{CRM}]", sections  # what is added goes to the CRM
        config_path.write_text(text + "".join(f'{key} = "{value}"\n' for key, value in hubspot.items()))
    config = load_config(str(config_path))
    run_reconciliation(config, store)
    plan(config, store)
    store.close()
    return config_path


def key_property_not_unique(sandbox: Any) -> None:
    """A portal whose action key property takes the same value twice (set up before the
    connector asked for unique values): what the search fallback has to work with."""
    face = sandbox.faces["hubspot"]
    with sandbox.lock:
        for object_type in ("notes", "tasks"):
            preset = face.properties[object_type]["ar_action_key"]
            face.define_property(object_type, {**preset, "hasUniqueValue": False})


def apply_process(
    config_path: Path, env: dict[str, str] | None = None, only: list[str] | None = None, claim_size: int | None = None
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "connector", "--config", str(config_path), "apply", "--yes"]
    if claim_size is not None:
        command += ["--claim-size", str(claim_size)]
    for connection in only or []:
        command += ["--only", connection]
    return subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


def crash_and_finish(
    sandbox: Any,
    config_path: Path,
    *,
    rounds: int,
    seed: int,
    max_delay: float,
    hubspot_creates: bool = False,
) -> CrashRun:
    rng = random.Random(seed)
    kills = exits = 0
    from connector.state.store import open_store

    config = load_config(str(config_path))
    store = open_store(config.database_url)
    queue = pending(store)
    planned = len(queue)
    creates = sum(1 for e in queue if e.action.connection == CRM and e.action.kind in CREATES)
    hubspot_exits = _crash_hubspot_creates(config_path, store, rng) if hubspot_creates else 0
    # The rounds that die between the provider's answer and our commit go first, while the
    # queue is long: killed at a random moment, an `apply` that starts quickly drains most of
    # a small book's queue, and a failpoint round after it would find nothing left to send.
    for round_ in range(rounds):
        if round_ < rounds // 2:
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
    with store.session() as session:
        hubspot_replayed = sum(
            1
            for e in outbox.entries(session, states=("done",), connections=[CRM], kinds=CREATES)
            if (e.result or {}).get("replayed")
        )
    store.close()
    journal = list(sandbox.journal)
    effects = effect_counts(journal)
    duplicates = {key: count for key, count in effects.items() if count > 1}
    return CrashRun(
        planned=planned,
        kills=kills,
        failpoint_exits=exits,
        effects=effects,
        duplicates=duplicates,
        left=left,
        hubspot_creates=creates,
        hubspot_exits=hubspot_exits,
        hubspot_replayed=hubspot_replayed,
        hubspot_refused=sum(
            1
            for e in journal
            if e["provider"] == "hubspot"
            and e["method"] == "POST"
            and e["path"].split("?")[0] in (*CREATE_PATHS, *(f"{p}/batch/create" for p in CREATE_PATHS))
            and e["status"] in (400, 409)
        ),
        hubspot_effects=Counter(
            {key: n for key, n in effects.items() if key.startswith(tuple(f"hubspot POST {p} " for p in CREATE_PATHS))}
        ),
    )


def _crash_hubspot_creates(config_path: Path, store: Any, rng: random.Random, *, limit: int = 500) -> int:
    """Send the CRM's notes and tasks through the `after_send_create*` failpoint, batch after
    batch; returns how many processes died right after HubSpot answered a batch of them.

    A new batch dies right after HubSpot made it (`:1`); the next round sends that batch again
    whole, as it must, and commits its answer (the replay), dying after the next batch of notes
    or tasks if there is one (`:2`); now and then it dies after the replay instead, which kills
    that batch once more."""
    exits = 0
    for _ in range(limit):
        queue = sorted(pending(store, only=[CRM]), key=lambda e: e.id)
        creates = [e for e in queue if e.action.kind in CREATES]
        if not creates:
            return exits
        first = next((e for e in creates if e.batch_key is not None), creates[0])
        nth = 1 if first.batch_key is None or rng.random() < 0.2 else 2
        failpoint = f"after_send_create*:{nth}"  # a note's or a task's batch
        process = apply_process(config_path, {"CONNECTOR_FAILPOINT": failpoint}, only=[CRM])
        _, err = process.communicate(timeout=120)
        if process.returncode == 137:
            exits += 1
        else:
            assert process.returncode == 0, err.decode()
    raise AssertionError(f"the CRM's notes and tasks were not all sent after {limit} rounds")
