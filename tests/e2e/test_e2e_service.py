"""`connector serve`: ticks, health and metrics, one worker on SQLite, shutdown on SIGTERM,
and four workers on PostgreSQL sharing a tick: every unit pulled once for the tick, every
planned action sent once (the sandbox's journal), and nothing lost when one of the four is
SIGKILLed, whether it was sending actions or pulling a stream.

The four-worker machinery (`run_workers`, `check_effects`) is shared with
bench/serve_workers.py, which runs the same on the large book by hand."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from connector import pipeline
from connector.config import load_config
from connector.errors import UsageError
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.service.listener import Listener
from connector.service.loop import Service
from connector.state import units
from connector.state.store import open_store
from connector.state.units import UnitRow
from support.databases import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema
from support.e2e import action_effect_key, effect_counts, sync_sandbox, with_credentials, write_counts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def book():
    return with_credentials(generate(7, "small", today=date.today()).data)


def setup_config(sandbox, directory, database_url=None):
    store, _ = sync_sandbox(sandbox, directory, streams=["(none)"], database_url=database_url)
    return load_config(str(directory / "connector.toml")), store


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_two_ticks_pull_reconcile_and_write_back_with_metrics_moving(book, tmp_path):
    with Sandbox(book, limits="off") as sandbox:
        config, store = setup_config(sandbox, tmp_path)
        service = Service(config, store, timedelta(seconds=2))
        listener = Listener(service, "127.0.0.1", 0)
        listener.start()
        before = httpx.get(listener.address + "/metrics").text
        worker = threading.Thread(target=service.run, kwargs={"max_ticks": 2})
        worker.start()
        worker.join(120)
        after = httpx.get(listener.address + "/metrics").text
        assert httpx.get(listener.address + "/healthz").status_code == 200
        ready = httpx.get(listener.address + "/readyz")
        listener.close()
        journal = list(sandbox.journal)
    assert not worker.is_alive()
    assert metric(before, "connector_records_pulled_total") == 0
    assert metric(after, "connector_records_pulled_total") > 100
    assert metric(after, 'connector_actions_total{company="default",connection="ledger"') > 0
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert any(e["method"] == "PUT" and e["path"].startswith("/Payments") for e in journal)
    with store.session() as session:
        rows = units.units(session)
    pulls = [r for r in rows if r["kind"] == "pull"]
    assert pulls and all(r["done_tick"] == r["due_tick"] and r["last_error"] is None for r in pulls)
    store.close()


def test_a_second_worker_on_one_sqlite_file_is_refused(book, tmp_path):
    with Sandbox(book, limits="off") as sandbox:
        config, store = setup_config(sandbox, tmp_path)
        first = Service(config, store, timedelta(hours=1))
        runner = threading.Thread(target=first.run)
        runner.start()
        time.sleep(1.0)
        second = Service(config, store, timedelta(hours=1), worker=f"{socket.gethostname()}:1")
        with pytest.raises(UsageError, match="one worker per SQLite file"):
            second.run(max_ticks=1)
        first.stop.set()
        first.wake.set()
        runner.join(60)
    store.close()


def serve(config_path, *extra, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "connector", "--config", str(config_path), "serve", "--listen", "127.0.0.1:0", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


def test_sigterm_stops_the_service_cleanly_with_exit_0(book, tmp_path):
    with Sandbox(book, limits="off", latency_ms=20) as sandbox:
        config, store = setup_config(sandbox, tmp_path)
        store.close()
        process = serve(tmp_path / "connector.toml", "--every", "1h")
        first = process.stderr.readline()  # "serving every ...": the signal handlers are in place
        assert b"serving every" in first, first
        time.sleep(1.0)  # mid-tick: pulling with 20 ms per request
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()[-800:]
    assert b"stopped" in err
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    with store.session() as session:
        rows = units.units(session)
    assert all(r["owner"] is None for r in rows if r["kind"] == "pull")  # no lease left behind
    store.close()


# -- four workers on PostgreSQL ---------------------------------------------------------------

# The book of the four-worker test: "medium" (2,000 invoices, ~3,900 actions) with the
# connections' own rate limits raised out of the way, ~90 s on 2 shared cores (with the
# documented client limits, Xero's 60 calls a minute made it 6-8 minutes); bench/serve_workers.py
# runs the large book (110,000 invoices) by hand: docs/benchmarks.md, "Service: 4 workers".
WORKERS_BOOK = "medium"

HUBSPOT_OBJECTS = {"deal": "deals", "invoice": "invoices", "customer": "companies"}


@dataclass
class EffectCheck:
    """Each outbox action against the writes the sandbox carried out for it."""

    actions: int
    effects: int
    missing: list[str] = field(default_factory=list)  # an action with no effect in the journal
    duplicates: dict[str, int] = field(default_factory=dict)  # an action carried out more than once
    strays: list[str] = field(default_factory=list)  # an effect that no action explains

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicates or self.strays)


def outbox_rows(store) -> list[dict[str, Any]]:
    with store.engine.connect() as connection:
        rows = (
            connection.execute(
                sa.text(
                    "SELECT id, idempotency_key, connection, kind, target, payload, "
                    "state, attempts, claimed_by, created_at, updated_at "
                    "FROM outbox_actions"
                )
            )
            .mappings()
            .all()
        )
    return [
        dict(
            r,
            target=json.loads(r["target"]) if isinstance(r["target"], str) else r["target"],
            payload=json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"],
            provider=PROVIDERS.get(r["connection"].split("_")[-1], r["connection"]),
        )
        for r in rows
    ]


PROVIDERS = {"ledger": "xero", "gateway": "stripe", "crm": "hubspot"}


def check_effects(rows: list[dict[str, Any]], journal: list[dict[str, Any]]) -> EffectCheck:
    """Every action must show exactly one effect in the sandbox's journal, counted per item of
    a batch (`effect_counts`): a Xero payment or fee by what it pays, a HubSpot note or task by
    its action key, a Stripe write or a Xero e-mail by its Idempotency-Key. HubSpot property
    updates carry no key (the same values twice leave the same state): each shows on its
    object at least once (a PATCH, or an input of a batch update), and more often only when
    the action was taken over from a dead worker (one more send per extra claim)."""
    effects = effect_counts(journal)
    sent = write_counts(journal)
    patched = Counter({key: n for key, n in sent.items() if key.startswith("hubspot PATCH ")})
    by_request_key = {key.rsplit(" ", 1)[-1]: key for key in effects if not key.endswith(" ")}
    check = EffectCheck(actions=len(rows), effects=sum(effects.values()))
    explained: set[str] = set()
    sends_allowed: Counter[str] = Counter()
    actions_on: Counter[str] = Counter()
    for row in rows:
        if row["kind"] == "update_properties":
            target: dict[str, Any] = row["target"] or {}
            objects = HUBSPOT_OBJECTS.get(target.get("object_type", ""), "?")
            path = f"hubspot PATCH /crm/v3/objects/{objects}/{target.get('remote_id')} "
            actions_on[path] += 1
            sends_allowed[path] += max(1, int(row["attempts"] or 1))
            continue
        key = action_effect_key(row) or by_request_key.get(row["idempotency_key"], row["idempotency_key"])
        explained.add(key)
        count = effects.get(key, 0)
        if count == 0:
            check.missing.append(f"{row['connection']} {row['kind']} #{row['id']}")
        elif count > 1:
            check.duplicates[f"{row['connection']} {row['kind']} #{row['id']}"] = count
    for path, wanted in actions_on.items():
        count = patched.get(path, 0)
        if count < wanted:
            check.missing.append(f"crm update_properties {path} ({count} of {wanted})")
        elif count > sends_allowed[path]:
            check.duplicates[f"crm update_properties {path}"] = count
    check.strays = sorted([k for k in effects if k not in explained] + [p for p in patched if p not in actions_on])
    return check


def serve_logged(config_path: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`connector serve` with its stderr in a file (a pipe nobody reads would fill and stall it)."""
    with open(log, "wb") as sink:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "connector",
                "--config",
                str(config_path),
                "serve",
                "--listen",
                "127.0.0.1:0",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )


def worker_id(process: subprocess.Popen[bytes]) -> str:
    return f"{socket.gethostname()}:{process.pid}"


@dataclass
class WorkersRun:
    started_at: float  # epoch seconds: the workers' start
    seconds: float  # from the workers' start to the end of the tick's work
    victim: str | None  # the worker SIGKILLed, if any
    victim_held: int  # outbox actions in flight in the victim's hands when it was killed
    units: list[UnitRow]
    outbox: list[dict[str, Any]]
    effects: EffectCheck
    exit_codes: list[int | None]
    logs: list[str]
    left_for_next_tick: Counter[str]  # writes a reconcile after the tick plans that the tick did not
    order: str  # when the reconcile started against the tick's pulls, in words


def left_for_next_tick(config_path: Path, store) -> Counter[str]:
    """Link, reconcile and plan once more after the tick, in-process, with nothing new pulled:
    the writes this plans are work the tick's own plan missed (a payment the tick pulled and
    did not record in the ledger, a fee, a gateway invoice to mark paid, a reminder). CRM
    property updates are left out: they follow from the tick's own writes being done (after a
    single worker's tick too)."""
    config = load_config(str(config_path))
    known = {row["id"] for row in outbox_rows(store)}
    pipeline.reconcile_and_plan(config, store)
    return Counter(
        f"{row['connection']} {row['kind']}"
        for row in outbox_rows(store)
        if row["id"] not in known and row["kind"] != "update_properties"
    )


def reconcile_order(unit_rows: list[UnitRow]) -> str:
    pulls = {r["unit"]: at for r in unit_rows if r["kind"] == "pull" and (at := r["last_success_at"]) is not None}
    reconcile = next((r for r in unit_rows if r["kind"] == "reconcile"), None)
    if not pulls or reconcile is None or (started := reconcile["last_started_at"]) is None:
        return "no reconcile"
    late = sorted(unit for unit, at in pulls.items() if at > started)
    return f"reconcile started before {', '.join(late)} finished" if late else "reconcile started after every pull"


def _tick_finished(store) -> bool:
    with store.session() as session:
        rows = [r for r in units.units(session) if r["kind"] in ("pull", "reconcile")]
    with store.engine.connect() as connection:
        open_actions = connection.execute(
            sa.text("SELECT count(*) FROM outbox_actions WHERE state IN ('planned', 'in_flight')")
        ).scalar_one()
    return (
        bool(rows) and all(r["done_tick"] >= r["due_tick"] and r["owner"] is None for r in rows) and open_actions == 0
    )


# Client-side limits far above anything the sandbox can serve: with the sandbox's limits off,
# the run measures the connector, not the providers' documented rates (Xero's 60 calls a
# minute alone would make a medium book's 850 ledger writes take a quarter of an hour).
UNBOUNDED_CLIENT = {
    "gateway": "requests_per_second = 100000\nendpoint_requests_per_second = 100000\n",
    "ledger": "calls_per_minute = 10000000\ncalls_per_day = 100000000\nmax_concurrent = 64\n",
    "crm": (
        "requests_per_10_seconds = 10000000\nsearch_requests_per_second = 100000\ndaily_request_limit = 1000000000\n"
    ),
}


def unbound_client_limits(config_path: Path) -> None:
    """Raise every connection's client-side rate limits in the config file (see UNBOUNDED_CLIENT)."""
    text = config_path.read_text()
    for name, settings in UNBOUNDED_CLIENT.items():
        header = f"[connections.{name}]\n"
        assert header in text, header
        text = text.replace(header, header + settings)
    config_path.write_text(text)


def run_workers(
    sandbox: Sandbox,
    directory: Path,
    database_url: str,
    *,
    workers: int = 4,
    kill_while_sending: bool = True,
    timeout: float = 600.0,
    every: str = "1d",
    client_limits: bool = True,
) -> WorkersRun:
    """Start `workers` x `connector serve` on one PostgreSQL database against `sandbox`, SIGKILL
    one of them while it holds outbox actions in flight (if asked), let the others finish the
    tick, including what the dead one held, then SIGTERM them. Bounded by `timeout`. Without
    `client_limits` the connections' own rate limits are raised out of the way."""
    _, store = setup_config(sandbox, directory, database_url)
    config_path = directory / "connector.toml"
    if not client_limits:
        unbound_client_limits(config_path)
    logs = [directory / f"worker{i}.log" for i in range(workers)]
    started, started_at = time.monotonic(), time.time()
    processes = [serve_logged(config_path, log, "--every", every) for log in logs]
    victim, held, by_pid = None, 0, {worker_id(p): p for p in processes}
    try:
        deadline = started + timeout
        while kill_while_sending and victim is None and time.monotonic() < deadline:
            with store.engine.connect() as connection:
                holders = Counter(
                    r[0]
                    for r in connection.execute(
                        sa.text("SELECT claimed_by FROM outbox_actions WHERE state = 'in_flight'")
                    ).all()
                )
            holder = next((h for h, _ in holders.most_common() if h in by_pid), None)
            if holder is not None:
                by_pid[holder].kill()  # SIGKILL: no handler runs, its claims stay in flight
                by_pid[holder].wait(30)  # reaped, so that the survivors see the process is gone
                victim, held = holder, holders[holder]
            elif _tick_finished(store) or any(p.poll() is not None for p in processes):
                break
            else:
                time.sleep(0.05)
        while not _tick_finished(store) and time.monotonic() < deadline:
            if any(p.poll() is not None for p in processes if worker_id(p) != victim):
                break  # a survivor died: the assertions say how
            time.sleep(0.5)
        seconds = time.monotonic() - started
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)
    with store.session() as session:
        unit_rows = units.units(session)
    rows = outbox_rows(store)
    left = left_for_next_tick(config_path, store)
    store.close()
    return WorkersRun(
        left_for_next_tick=left,
        order=reconcile_order(unit_rows),
        started_at=started_at,
        seconds=seconds,
        victim=victim,
        victim_held=held,
        units=unit_rows,
        outbox=rows,
        effects=check_effects(rows, list(sandbox.journal)),
        exit_codes=[p.returncode for p in processes],
        logs=[log.read_text(errors="replace")[-600:] for log in logs],
    )


def test_four_workers_on_postgresql_one_killed_while_sending_lose_nothing(tmp_path):
    postgres_url_or_fail()
    book = with_credentials(generate(7, WORKERS_BOOK, today=date.today()).data)
    with temporary_pg_schema() as schema, Sandbox(book, limits="off", latency_ms=20) as sandbox:
        run = run_workers(sandbox, tmp_path, f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", client_limits=False)
    survivors = [code for code in run.exit_codes if code != -signal.SIGKILL]
    assert run.victim is not None, f"no worker was seen sending actions: {run.logs}"
    assert run.victim_held >= 1
    assert survivors == [0, 0, 0], run.logs  # SIGTERMed after the tick, each stops cleanly
    pulls = [r for r in run.units if r["kind"] == "pull"]
    reconcile = [r for r in run.units if r["kind"] == "reconcile"]
    assert len(pulls) == 17  # every stream of the three connections (Stripe disputes included)
    # every unit once for the tick: done, by one worker, with no error
    assert all(
        r["runs"] == 1 and r["done_tick"] == r["due_tick"] and r["last_error"] is None for r in pulls + reconcile
    ), [(r["unit"], r["runs"], r["due_tick"], r["done_tick"], r["last_error"]) for r in pulls + reconcile]
    states = Counter(r["state"] for r in run.outbox)
    assert states == {"done": len(run.outbox)} and len(run.outbox) > 2000, states
    # what the dead worker held was sent by the others (a second claim), exactly once
    assert any(r["attempts"] > 1 for r in run.outbox)
    assert run.effects.ok, (run.effects.missing[:10], run.effects.duplicates, run.effects.strays[:10])
    # and the tick planned everything its pulls brought in: nothing waits for the next tick
    assert not run.left_for_next_tick, f"{dict(run.left_for_next_tick)} left for the next tick; {run.order}"


def test_a_worker_killed_while_pulling_loses_nothing(book, tmp_path):
    """One of four workers dies holding a pull: its lease runs out (3 s; renewed while a worker
    lives), a survivor takes the pull over within the same tick, and only then is the tick
    reconciled and planned; every action is still sent once, nothing waits for a restart."""
    postgres_url_or_fail()
    # Xero's 30-minute grace for a spent refresh token: the SIGKILL may land between the token
    # endpoint's answer and its save (docs/oauth.md), which is not what this test is about
    with temporary_pg_schema() as schema, Sandbox(book, limits="off", latency_ms=40, refresh_grace_s=1800) as sandbox:
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        config, store = setup_config(sandbox, tmp_path, url)
        config_path = tmp_path / "connector.toml"
        args = ("--every", "1d", "--max-ticks", "1", "--lease", "3s")
        workers = [serve_logged(config_path, tmp_path / f"worker{i}.log", *args) for i in range(4)]
        ids = {worker_id(w): w for w in workers}
        victim, unit = None, None
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline:
            with store.session() as session:
                held = next((r for r in units.units(session) if r["kind"] == "pull" and r["owner"] in ids), None)
            if held is None:
                time.sleep(0.05)
            else:
                victim, unit = held["owner"], held["unit"]
        assert victim is not None, "no worker was seen pulling"
        ids[victim].kill()  # SIGKILL mid-pull: its lease must run out before anyone retakes the unit
        ids[victim].wait(30)
        for worker in workers:
            worker.wait(300)
        survivors = [w.returncode for w in workers if w is not ids[victim]]
        assert survivors == [0, 0, 0], [(tmp_path / f"worker{i}.log").read_text()[-500:] for i in range(4)]
        journal = list(sandbox.journal)
        with store.session() as session:
            rows = units.units(session)
        actions = outbox_rows(store)
        left = left_for_next_tick(config_path, store)
        store.close()
    pulls = [r for r in rows if r["kind"] == "pull"]
    # the dead worker's pull was taken over and finished in the tick (its own run never counted)
    assert all(
        r["runs"] == 1 and r["done_tick"] == r["due_tick"] and r["owner"] is None and r["last_error"] is None
        for r in pulls
    ), [(r["unit"], r["runs"], r["due_tick"], r["done_tick"], r["owner"], r["last_error"]) for r in pulls]
    assert next(r for r in pulls if r["unit"] == unit)["runs"] == 1
    assert reconcile_order(rows) == "reconcile started after every pull"
    assert not left, f"{dict(left)} left for the next tick"
    assert Counter(a["state"] for a in actions) == {"done": len(actions)} and actions
    effects = check_effects(actions, journal)
    assert effects.ok, (effects.missing[:10], effects.duplicates, effects.strays[:10])
