"""Recovery without waiting: a worker's liveness is its heartbeat. A `connector serve` SIGKILLed
while it holds a pull is taken over by a survivor within the heartbeat timeout, not after its
ten-minute lease; a worker of another host whose heartbeat stopped is taken over by a restart
here at once; on SQLite a restart after a SIGKILL just runs (the guard is an OS file lock that
died with its process), while a second live `serve` is still refused in one line; and
`/readyz` answers 503 while a due unit has waited to start longer than its schedule allows."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

import httpx
import pytest
from e2e.test_e2e_service import serve_logged, setup_config, worker_id

from connector.config import load_config
from connector.providers.registry import installed
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.service.listener import Listener
from connector.service.loop import Service, pull_unit
from connector.state import units
from connector.state.store import Store
from support.databases import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema
from support.e2e import with_credentials

pytestmark = pytest.mark.slow

T = TypeVar("T")


@pytest.fixture(scope="module")
def book():
    return with_credentials(generate(11, "small", today=date.today()).data)


def wait_for(probe: Callable[[], T | None], seconds: float, what: str) -> T:
    """`probe()` once it answers something, within `seconds`; else the test fails saying `what`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (answer := probe()) is not None:
            return answer
        time.sleep(0.05)
    pytest.fail(f"no {what} within {seconds:g} s", pytrace=False)


def unit_rows(store: Store) -> dict[str, units.UnitRow]:
    with store.session() as session:
        return {r["unit"]: r for r in units.units(session)}


def pulls_held_by(store: Store, worker: str) -> list[str]:
    return sorted(name for name, r in unit_rows(store).items() if r["kind"] == "pull" and r["owner"] == worker)


def stop(*processes: subprocess.Popen[bytes]) -> None:
    """SIGKILL whatever still runs and reap it (a test never leaves a worker behind)."""
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(30)


def done_once(row: units.UnitRow) -> bool:
    return row["done_tick"] >= row["due_tick"] and row["owner"] is None and row["last_error"] is None


# -- PostgreSQL: a survivor, or a restart elsewhere, takes a dead worker's pull over ---------


def test_a_worker_killed_holding_a_pull_is_taken_over_within_the_heartbeat_timeout(book, tmp_path):
    """Two workers with a ten-minute lease and a 3 s heartbeat timeout: the survivor runs the
    dead worker's pull in the same tick (waiting out the lease would take ten minutes)."""
    postgres_url_or_fail()
    # Xero's 30-minute grace for a spent refresh token: the SIGKILL may land between the token
    # endpoint's answer and its save (docs/oauth.md), which is not what this test is about
    with temporary_pg_schema() as schema, Sandbox(book, limits="off", latency_ms=40, refresh_grace_s=1800) as sandbox:
        _, store = setup_config(sandbox, tmp_path, f"{POSTGRES_URL}?options=-csearch_path%3D{schema}")
        args = ("--every", "1d", "--max-ticks", "1", "--lease", "10m", "--heartbeat-timeout", "3s")
        logs = [tmp_path / f"worker{i}.log" for i in range(2)]
        workers = [serve_logged(tmp_path / "connector.toml", log, *args) for log in logs]
        try:
            ids = {worker_id(w): w for w in workers}
            victim = wait_for(
                lambda: next((r["owner"] for r in unit_rows(store).values() if r["owner"] in ids), None),
                120,
                "worker seen pulling",
            )
            ids[victim].kill()  # SIGKILL: no handler runs, its unit keeps its ten-minute lease
            ids[victim].wait(30)
            held = pulls_held_by(store, victim)
            assert held, "the victim finished its pull just before the kill: nothing held to take over"
            [survivor] = [w for w in workers if w is not ids[victim]]
            try:
                survivor.wait(240)  # the tick, the dead worker's pull included, then --max-ticks 1
            except subprocess.TimeoutExpired:
                pytest.fail(f"the survivor still works after 240 s: {held} not taken over", pytrace=False)
        finally:
            stop(*workers)
        log = logs[workers.index(survivor)].read_text(errors="replace")
        rows = unit_rows(store)
        store.close()
    assert survivor.returncode == 0, log[-1500:]
    host, _, pid = victim.rpartition(":")
    for unit in held:
        assert re.search(
            rf"took over {re.escape(unit)} from worker {pid} on {re.escape(host)}: no heartbeat for \d+ s", log
        )
        assert done_once(rows[unit]) and rows[unit]["runs"] == 1, rows[unit]  # the dead one's run never counted
    assert all(done_once(r) for r in rows.values()), [r for r in rows.values() if not done_once(r)]


def test_a_restart_takes_over_at_once_a_pull_held_by_a_silent_worker_of_another_host(book, tmp_path, monkeypatch):
    """A worker on another host held a pull under a ten-minute lease and stopped beating 75 s
    ago (its host died): a `serve` started here runs that pull in its first tick."""
    postgres_url_or_fail()
    with temporary_pg_schema() as schema, Sandbox(book, limits="off") as sandbox:
        _, store = setup_config(sandbox, tmp_path, f"{POSTGRES_URL}?options=-csearch_path%3D{schema}")
        config = load_config(str(tmp_path / "connector.toml"))
        stream = installed().get(config.connections["gateway"].provider).streams[0]
        unit = pull_unit("gateway", stream)
        real = datetime.now(UTC)
        with store.session() as session:
            units.ensure_units(session, [units.Declared(unit, "pull", "gateway", stream)])
            units.schedule_tick(session, [unit], int(real.timestamp()))
            [claimed] = units.claim(session, "elsewhere:4242", lease=timedelta(minutes=10), kinds=("pull",))
        monkeypatch.setattr(units, "utcnow", lambda: real - timedelta(seconds=75))
        with store.session() as session:  # its last beat, 75 s ago, good for 60 s
            units.beat(session, "elsewhere:4242", timeout=timedelta(seconds=60))
        monkeypatch.undo()
        log = tmp_path / "restart.log"
        restart = serve_logged(tmp_path / "connector.toml", log, "--every", "1d", "--max-ticks", "1")
        try:
            restart.wait(240)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the restart still works after 240 s: {unit} not taken over", pytrace=False)
        finally:
            stop(restart)
        text = log.read_text(errors="replace")
        row = unit_rows(store)[unit]
        store.close()
    assert claimed.unit == unit and restart.returncode == 0, text[-1500:]
    assert re.search(rf"took over {re.escape(unit)} from worker 4242 on elsewhere: no heartbeat for \d+ s", text)
    assert done_once(row) and row["runs"] == 1, row


# -- SQLite: the guard dies with its process ----------------------------------------------------


def test_sqlite_serve_restarts_at_once_after_sigkill_and_a_second_live_one_is_refused(book, tmp_path):
    # Xero's 30-minute grace for a spent refresh token: the SIGKILL may land between the token
    # endpoint's answer and its save (docs/oauth.md), which is not what this test is about
    with Sandbox(book, limits="off", latency_ms=200, refresh_grace_s=1800) as sandbox:
        _, store = setup_config(sandbox, tmp_path)
        with store.session() as session:  # the lock row an older release left: a 3,650-day lease
            units.ensure_units(session, [(units.OLD_SERVICE_LOCK, "lock", None, None)])
            units.claim(session, "old-host:1", lease=timedelta(days=3650), kinds=("lock",))
        config_path = tmp_path / "connector.toml"
        first = serve_logged(config_path, tmp_path / "first.log", "--every", "1h")
        try:
            wait_for(lambda: pulls_held_by(store, worker_id(first)) or None, 60, "pull held by the first serve")
            second = subprocess.run(
                [sys.executable, "-m", "connector", "--config", str(config_path), "serve", "--listen", "127.0.0.1:0"],
                capture_output=True,
                timeout=120,
            )
            first.kill()  # SIGKILL mid-pull: the kernel lets go of its lock, the database keeps its claims
            first.wait(30)
            held = pulls_held_by(store, worker_id(first))
            assert held, "the first serve held no pull when killed"
        finally:
            stop(first)
        sandbox.latency_s = 0
        log = tmp_path / "restart.log"
        restart = serve_logged(config_path, log, "--every", "1h", "--max-ticks", "1")
        try:
            restart.wait(240)
        except subprocess.TimeoutExpired:
            pytest.fail("the restart still works after 240 s", pytrace=False)
        finally:
            stop(restart)
        text = log.read_text(errors="replace")
        rows = unit_rows(store)
        store.close()
    refusal = second.stderr.decode().strip()
    assert second.returncode == 2 and refusal.count("\n") == 0, refusal
    assert f"another `connector serve` ({worker_id(first)}) already runs on this SQLite database" in refusal
    assert restart.returncode == 0 and "already runs" not in text and "serving every" in text, text[-1500:]
    assert re.search(rf"took over {re.escape(held[0])}.* from a worker that is gone", text), text[-1500:]
    assert units.OLD_SERVICE_LOCK not in rows  # the old lock row is gone, not merely ignored
    assert all(done_once(r) for r in rows.values()), [r for r in rows.values() if not done_once(r)]


# -- /readyz: a due unit that waits too long ---------------------------------------------------


def test_readyz_is_503_while_a_due_unit_has_not_started_for_longer_than_its_schedule_allows(book, tmp_path):
    with Sandbox(book, limits="off") as sandbox:
        config, store = setup_config(sandbox, tmp_path)
        now = [time.time()]
        service = Service(
            config, store, timedelta(seconds=10), jitter=0.0, start_grace=timedelta(seconds=2), clock=lambda: now[0]
        )
        stream = installed().get(config.connections["ledger"].provider).streams[0]
        unit = pull_unit("ledger", stream)
        with store.session() as session:  # due now; nobody works (the loop is stuck, or no worker is left)
            units.ensure_units(session, [units.Declared(unit, "pull", "ledger", stream)])
            units.schedule_tick(session, [unit], int(now[0]))
        listener = Listener(service, "127.0.0.1", 0)
        listener.start()
        try:
            ready = lambda: httpx.get(listener.address + "/readyz", timeout=30)  # noqa: E731
            fresh = ready()
            now[0] += 13  # its schedule allows 10 s + 2 s of grace
            late = ready()
            runner = threading.Thread(target=service.run, kwargs={"max_ticks": 1})
            runner.start()
            runner.join(240)
            assert not runner.is_alive(), "the tick did not end within 240 s"
            after = ready()
        finally:
            service.stop.set()
            listener.close()
        store.close()
    assert fresh.status_code == 200, fresh.text
    assert late.status_code == 503
    [problem] = late.json()["problems"]
    assert problem.startswith(f"{unit} due since") and "not started for 13 s (its schedule allows 12 s)" in problem
    assert after.status_code == 200, after.text  # the tick ran it
