"""`connector serve` on its schedule: cron connections fire on their own time, a webhook during
a pull is not lost, a long unit keeps its lease, a shutdown mid-pull resumes at once after a
restart, failed writes show in /metrics, and bad arguments are one-line usage errors."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest

from connector import pipeline
from connector.config import load_config
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.service.heartbeat import Heartbeat
from connector.service.loop import Service
from connector.state import units
from connector.state.store import open_store
from connector.state.units import UnitRow
from connector.sync import SyncEngine
from connector.workers import SoleWorkerLock
from support.e2e import sync_sandbox, with_credentials

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def book():
    return with_credentials(generate(7, "small", today=date.today()).data)


def setup_config(sandbox, directory, edit=lambda text: text):
    store, _ = sync_sandbox(sandbox, directory, streams=["(none)"])
    path = directory / "connector.toml"
    path.write_text(edit(path.read_text()))
    return load_config(str(path)), store


def unit_rows(store) -> dict[str, UnitRow]:
    with store.session() as session:
        return {r["unit"]: r for r in units.units(session)}


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def wait_for(condition, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)
    return result


def http_observers() -> list:
    from connector.http import provider_http

    return list(provider_http._observers)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# cron schedules ------------------------------------------------------------------------------


def with_ledger_schedule(text: str) -> str:
    return text.replace('provider = "xero"\n', 'provider = "xero"\nschedule = "*/5 * * * *"\n')


def test_the_next_wake_is_the_earliest_cron_time_not_the_next_every(book, tmp_path):
    with Sandbox(book, limits="off") as sandbox:
        config, store = setup_config(sandbox, tmp_path, with_ledger_schedule)
    service = Service(config, store, timedelta(hours=1), jitter=0.0)
    assert service.next_wake(at("2030-01-01T10:01:30")) == at("2030-01-01T10:05:00")
    assert service.next_wake(at("2030-01-01T10:57:00")) == at("2030-01-01T11:00:00")
    ledger = config.connection("ledger")
    assert service.tick_of(ledger, datetime.fromtimestamp(at("2030-01-01T10:05:00"), UTC)) == at("2030-01-01T10:05:00")
    jittered = Service(config, store, timedelta(hours=1), jitter=0.1)
    assert at("2030-01-01T10:05:00") <= jittered.next_wake(at("2030-01-01T10:01:30")) <= at("2030-01-01T10:05:30")
    store.close()


def test_a_connection_on_a_five_minute_cron_is_pulled_on_time_under_an_hourly_every(book, tmp_path):
    with Sandbox(book, limits="off") as sandbox:
        config, store = setup_config(sandbox, tmp_path, with_ledger_schedule)
        now = [at("2030-01-01T10:01:30")]
        service = Service(
            config, store, timedelta(hours=1), jitter=0.0, apply_poll=timedelta(days=1), clock=lambda: now[0]
        )

        def waited(timeout=None):  # the loop's sleep: time passes at once
            now[0] += timeout or 0
            return False

        service.wake.wait = waited
        service.run(max_ticks=2)
        rows = unit_rows(store)
    assert now[0] < at("2030-01-01T11:00:00")  # woke for the cron time, not for the next hour
    ledger = [r for name, r in rows.items() if name.startswith("pull:ledger:")]
    others = [r for name, r in rows.items() if name.startswith("pull:") and not name.startswith("pull:ledger:")]
    assert ledger and all(r["runs"] == 2 and r["done_tick"] == at("2030-01-01T10:05:00") for r in ledger)
    assert others and all(r["runs"] == 1 for r in others)  # their next tick is 11:00
    store.close()


# webhooks during a pull ----------------------------------------------------------------------


def test_a_webhook_arriving_during_the_pull_it_concerns_is_pulled_after_it(book, tmp_path, monkeypatch):
    with Sandbox(book, limits="off") as sandbox:
        config, store = setup_config(sandbox, tmp_path)
        service = Service(config, store, timedelta(hours=1))
        original = SyncEngine._store
        sent = []

        def store_page(engine, connection, stream, *args):
            stored = original(engine, connection, stream, *args)
            if (connection, stream) == ("gateway", "charges") and not sent:
                sent.append(True)
                service.due_now("gateway", "charges")  # the listener's call for a charge event
            return stored

        monkeypatch.setattr(SyncEngine, "_store", store_page)
        service.run(max_ticks=1)
        rows = unit_rows(store)
    assert sent
    charges = rows["pull:gateway:charges"]
    assert charges["runs"] == 2 and charges["done_tick"] == charges["due_tick"]
    assert all(
        r["runs"] == 1 for name, r in rows.items() if name.startswith("pull:") and name != "pull:gateway:charges"
    )
    assert rows["reconcile"]["due_tick"] == rows["pull:crm:deals"]["due_tick"]  # the webhook moved no schedule tick
    store.close()


# leases ------------------------------------------------------------------------------------


def test_a_unit_outlasting_its_lease_in_a_live_worker_is_not_taken_over(book, tmp_path, monkeypatch):
    start = datetime.now(UTC)
    clock = [start]
    monkeypatch.setattr(units, "utcnow", lambda: clock[0])  # the lease clock, moved by hand
    lease = timedelta(minutes=10)
    taken_over = []
    with Sandbox(book, limits="off") as sandbox:
        config, store = setup_config(sandbox, tmp_path)
        # the clock jumps minutes at once, between two beats of the worker's own heartbeat: a
        # heartbeat timeout of two leases keeps the jump from looking like a silent worker
        service = Service(
            config,
            store,
            timedelta(hours=1),
            worker="host-a:1",
            lease=lease,
            heartbeat=0.05,
            heartbeat_timeout=lease * 2,
        )
        original_link = pipeline.link

        def long_reconcile(*args, **kwargs):
            clock[0] = start + lease * 0.8
            wait_for(
                lambda: unit_rows(store)["reconcile"]["lease_until"] > start + lease * 1.5,
                "the heartbeat to renew the lease",
            )
            clock[0] = start + lease * 1.2  # the lease it claimed with has run out
            with store.session() as session:
                taken_over.extend(units.claim(session, "host-b:2", lease=lease, kinds=("reconcile",)))
            return original_link(*args, **kwargs)

        monkeypatch.setattr(pipeline, "link", long_reconcile)
        service.run(max_ticks=1)
        row = unit_rows(store)["reconcile"]
    assert taken_over == []
    assert row["runs"] == 1 and row["done_tick"] == row["due_tick"] and row["owner"] is None
    store.close()


def test_a_worker_whose_unit_was_taken_over_stops_at_its_next_page(tmp_path, monkeypatch):
    start = datetime.now(UTC)
    clock = [start]
    monkeypatch.setattr(units, "utcnow", lambda: clock[0])
    lease = timedelta(minutes=10)
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    with store.session() as session:
        units.ensure_units(session, [("pull:gateway:charges", "pull", "gateway", "charges")])
        units.schedule_tick(session, ["pull:gateway:charges"], 1000)
        [slow] = units.claim(session, "host-a:1", lease=lease, kinds=("pull",))
    clock[0] = start + lease * 1.5  # the worker stalled past its lease (no heartbeat meanwhile)
    with store.session() as session:
        [taken] = units.claim(session, "host-b:2", lease=lease, kinds=("pull",))

    with Heartbeat(store, slow.unit, "host-a:1", lease=lease, stop=threading.Event(), period=0.05) as heartbeat:
        assert heartbeat.halt.wait(30)  # what the sync engine checks before each page
    assert heartbeat.lost and not heartbeat.stopping
    with store.session() as session:
        assert not units.finish(session, slow, "host-a:1", error=None)
        assert units.finish(session, taken, "host-b:2", error=None)
    store.close()


# shutdown mid-pull -------------------------------------------------------------------------


def test_a_pull_stopped_by_a_shutdown_is_resumed_at_once_by_the_restart(book, tmp_path, monkeypatch):
    with Sandbox(book, limits="off") as sandbox:
        config, store = setup_config(sandbox, tmp_path)
        service = Service(config, store, timedelta(hours=1))
        original = SyncEngine._store
        interrupted = []

        def store_page(engine, connection, stream, *args):
            stored = original(engine, connection, stream, *args)
            if not interrupted:
                interrupted.append(f"pull:{connection}:{stream}")
                service.stop.set()  # SIGTERM, as the handler of `connector serve` does
                assert engine.stop.wait(30)  # the pull sees it before its next page
            return stored

        monkeypatch.setattr(SyncEngine, "_store", store_page)
        service.run(max_ticks=1)
        stopped = unit_rows(store)[interrupted[0]]
        monkeypatch.setattr(SyncEngine, "_store", original)

        restarted = Service(config, store, timedelta(hours=1))  # the same hour: no new tick
        restarted.run(max_ticks=1)
        rows = unit_rows(store)
    assert stopped["owner"] is None and stopped["runs"] == 0 and stopped["done_tick"] < stopped["due_tick"]
    assert (
        metric(
            service.metrics.exposition().decode(),
            'connector_runs_total{company="default",kind="pull",outcome="stopped"}',
        )
        == 1
    )
    resumed = rows[interrupted[0]]
    assert resumed["runs"] == 1 and resumed["done_tick"] == resumed["due_tick"]
    assert all(r["done_tick"] == r["due_tick"] for name, r in rows.items() if name.startswith("pull:"))
    store.close()


# metrics -----------------------------------------------------------------------------------


def test_failed_writes_count_as_provider_errors_and_the_outbox_is_shown_by_state(book, tmp_path):
    def bad_payment_account(text: str) -> str:
        return text.replace('payment_account_code = "615"', 'payment_account_code = "999"')

    with Sandbox(book, limits="off") as sandbox:
        config, store = setup_config(sandbox, tmp_path, bad_payment_account)
        service = Service(config, store, timedelta(hours=1))
        before = service.metrics.exposition().decode()
        service.run(max_ticks=1)
        after = service.metrics.exposition().decode()
    with store.engine.connect() as connection:
        import sqlalchemy as sa

        counts = dict(connection.execute(sa.text("SELECT state, count(*) FROM outbox_actions GROUP BY state")).all())
    assert 'connector_outbox_actions{company="default",state="failed"} 0.0' in before
    assert counts.get("failed", 0) > 0  # Xero refused the payments: no such account
    assert (
        metric(after, 'connector_provider_errors_total{company="default",connection="ledger",source="action"}')
        >= counts["failed"]
    )
    for state in ("planned", "in_flight", "done", "failed", "cancelled"):
        assert metric(after, f'connector_outbox_actions{{company="default",state="{state}"}}') == counts.get(
            state, 0
        ), state
    store.close()


def test_every_error_answer_of_a_provider_is_counted_by_status(book, tmp_path):
    """429s and 5xx that the retry policy absorbed never fail a stream, but IT sees them.
    The gateway alone: every fault costs a retry's backoff, so the fewer requests the better."""

    def gateway_only(text: str) -> str:
        kept, keep = [], True
        for line in text.splitlines(keepends=True):
            if line.startswith("[connections."):
                keep = line.startswith("[connections.gateway]")
            kept.append(line if keep else "")
        return "".join(kept)

    with Sandbox(book, limits="off", fail_rate=0.08, fault_delay_s=0.2, seed=3) as sandbox:
        config, store = setup_config(sandbox, tmp_path, gateway_only)
        assert list(config.connections) == ["gateway"]
        service = Service(config, store, timedelta(hours=1))
        assert "connector_provider_error_responses_total{" not in service.metrics.exposition().decode()
        service.run(max_ticks=1)
        after = service.metrics.exposition().decode()
    store.close()
    errors = {
        line.split("{", 1)[1].split("}", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in after.splitlines()
        if line.startswith("connector_provider_error_responses_total{")
    }
    assert errors and all('status="5' in labels for labels in errors), errors  # the injected faults, by status
    assert sum(errors.values()) >= 1
    assert service.metrics.count_response not in http_observers()  # let go when the service stops


# the command line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--listen", "127.0.0.1:99999"], "--listen: '127.0.0.1:99999' is not HOST:PORT with a port from 0 to 65535"),
        (["--every", "nan"], "--every: 'nan' is not an interval of at least 1s"),
        (["--every", "inf"], "--every: 'inf' is not an interval of at least 1s"),
        (["--every", "-5m"], "--every: '-5m' is not an interval of at least 1s"),
        (["--every", "1e300d"], "--every: '1e300d' is too long"),
        (["--lease", "xx"], "--lease: 'xx' is not an interval like 90s, 15m, 1h or 1d"),
    ],
)
def test_bad_serve_arguments_are_one_line_usage_errors(run_cli, args, words):
    result = run_cli("serve", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {words}")
    assert result.stderr.strip().count("\n") == 0 and "internal error" not in result.stderr


def test_a_refused_second_sqlite_worker_prints_only_its_error(book, tmp_path, run_cli):
    with Sandbox(book, limits="off") as sandbox:
        _, store = setup_config(sandbox, tmp_path)
    store.close()
    holder = SoleWorkerLock(str(tmp_path / "state.db"))  # a live worker holds the database
    assert holder.acquire()
    try:
        result = run_cli(
            "--config", str(tmp_path / "connector.toml"), "serve", "--listen", "127.0.0.1:0", "--max-ticks", "1"
        )
    finally:
        holder.release()
    assert result.exit_code == 2
    assert "one worker per SQLite file" in result.stderr
    assert "serving every" not in result.stderr and result.stderr.strip().count("\n") == 0
