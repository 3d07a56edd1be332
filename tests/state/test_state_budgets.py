"""Rate budgets in the state database: workers on one PostgreSQL share each account's windows,
slots in flight and pauses; a daily allowance survives a restart (SQLite too); the migration
makes the table `state.tables` declares."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from connector.errors import RateLimitDeferred
from connector.http.budget import AccountBudget, WindowSpec
from connector.http.ratelimit import RateLimiter
from connector.state import open_store
from connector.state.budgets import StateBudgets
from connector.state.db import make_engine
from connector.state.migrate import upgrade
from connector.state.tables import BUDGET_METADATA
from support.databases import POSTGRES_URL, postgres_url_or_fail, search_path_args, temporary_pg_schema

ACCOUNT = "xero:tenant A@http://sandbox"
DAY = WindowSpec("default/86400", 3, 86400.0)


@pytest.fixture
def pg_schema():
    postgres_url_or_fail()
    with temporary_pg_schema() as schema:
        engine = make_engine(POSTGRES_URL, connect_args=search_path_args(schema))
        upgrade(engine)
        engine.dispose()
        yield schema


def pg_worker(schema: str):
    """A store of its own, on its own engine and connections: what one worker holds."""
    return open_store(make_engine(POSTGRES_URL, connect_args=search_path_args(schema)))


def test_the_migration_makes_the_declared_table(empty_engine: sa.Engine) -> None:
    upgrade(empty_engine)
    with empty_engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_name": lambda name, type_, _p: type_ != "table" or name == "rate_budgets",
                "compare_type": True,
            },
        )
        assert compare_metadata(context, BUDGET_METADATA) == []


@pytest.mark.postgres
def test_two_workers_threads_never_put_more_than_the_limit_in_any_window(pg_schema: str) -> None:
    limit = WindowSpec("default/0.5", 4, 0.5)
    workers = [pg_worker(pg_schema) for _ in range(2)]
    granted: list[float] = []
    errors: list[BaseException] = []

    def send(budgets: StateBudgets) -> None:
        try:
            for _ in range(6):
                while (grant := budgets.take(ACCOUNT, [limit], margin=0.05, in_flight=3)).wait > 0:
                    time.sleep(grant.wait)
                assert grant.at is not None and grant.lease is not None
                granted.append(grant.at)
                budgets.release(ACCOUNT, grant.lease)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(StateBudgets(w),)) for w in workers for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and not any(t.is_alive() for t in threads)
    # every request the store let go, by its clock (the database's): 24, and no five of them
    # within half a second (the window) plus the margin
    sent = sorted(granted)
    assert len(sent) == 24
    assert all(later - earlier >= 0.55 for earlier, later in zip(sent, sent[limit.requests :], strict=False))
    for worker in workers:
        worker.close()


@pytest.mark.postgres
def test_a_pause_or_a_full_set_of_slots_in_flight_holds_back_every_worker(pg_schema: str) -> None:
    one, two = (pg_worker(pg_schema) for _ in range(2))
    first, second = StateBudgets(one), StateBudgets(two)
    minute = WindowSpec("default/60", 60, 60.0)
    held = [first.take(ACCOUNT, [minute], margin=0.05, in_flight=2) for _ in range(2)]
    assert all(g.wait == 0 and g.lease for g in held)
    assert second.take(ACCOUNT, [minute], margin=0.05, in_flight=2).wait > 0
    first.release(ACCOUNT, held[0].lease or "")
    assert second.take(ACCOUNT, [minute], margin=0.05, in_flight=2).wait == 0

    first.pause(ACCOUNT, 3600)  # a 429's Retry-After seen by the first worker
    paused = second.take(ACCOUNT, [minute], margin=0.05, in_flight=None)
    assert 3500 < paused.wait <= 3600
    limiter = RateLimiter.from_spec({"default": [(60, 60)]}).sharing(AccountBudget(second, ACCOUNT))
    with pytest.raises(RateLimitDeferred), limiter.acquire():
        pass
    assert second.usage(ACCOUNT) == {"default/60": 3}
    one.close()
    two.close()


HOLD = """
import sys
from connector.http.budget import WindowSpec
from connector.state import open_store
from connector.state.budgets import StateBudgets

budgets = StateBudgets(open_store(sys.argv[1]))
for _ in range(2):  # both slots in flight, never given back
    assert budgets.take(sys.argv[2], [WindowSpec("default/60", 60, 60.0)], margin=0.05, in_flight=2).wait == 0
print("holding", flush=True)
sys.stdin.readline()  # until killed
"""


@pytest.mark.postgres
def test_a_worker_killed_while_its_requests_travel_frees_its_slots_in_flight_at_once(pg_schema: str) -> None:
    """Xero allows 5 requests in flight: a worker killed mid-request never gives its slots
    back. While it lives they hold every other worker back; once its process is gone (this
    host), the next take frees them, where they used to stay taken for two minutes."""
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{pg_schema}"
    worker = subprocess.Popen(
        [sys.executable, "-c", HOLD, url, ACCOUNT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "holding"
        here = pg_worker(pg_schema)
        budgets, minute = StateBudgets(here), WindowSpec("default/60", 60, 60.0)
        assert budgets.take(ACCOUNT, [minute], margin=0.05, in_flight=2).wait > 0  # alive: its slots hold
        worker.kill()
        worker.wait(timeout=30)
        granted = [budgets.take(ACCOUNT, [minute], margin=0.05, in_flight=2) for _ in range(2)]
        assert all(g.wait == 0 and g.lease for g in granted)
        assert budgets.take(ACCOUNT, [minute], margin=0.05, in_flight=2).wait > 0  # ours now hold them
        here.close()
    finally:
        worker.kill()
        worker.wait(timeout=30)


SPEND = """
import sys
from connector.errors import RateLimitDeferred
from connector.http.budget import AccountBudget
from connector.http.ratelimit import RateLimiter
from connector.state import open_store
from connector.state.budgets import StateBudgets

store = open_store(sys.argv[1])
limiter = RateLimiter.from_spec({"default": [(60, 60), (3, 86400)]}).sharing(
    AccountBudget(StateBudgets(store), sys.argv[2])
)
for _ in range(int(sys.argv[3])):
    try:
        with limiter.acquire():
            print("sent")
    except RateLimitDeferred:
        print("deferred")
"""


def spend_here(url: str, requests: int) -> None:
    """Send `requests` from this process, then close its store as a stopping worker does."""
    store = open_store(url)
    limiter = RateLimiter.from_spec({"default": [(60, 60), (3, 86400)]}).sharing(
        AccountBudget(StateBudgets(store), ACCOUNT)
    )
    for _ in range(requests):
        with limiter.acquire():
            pass
    store.close()


def spend_in_a_new_process(url: str, requests: int) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", SPEND, url, ACCOUNT, str(requests)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.split()


def test_a_spent_daily_allowance_is_still_spent_after_a_restart_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'connector.db'}"
    spend_here(url, 2)
    assert spend_in_a_new_process(url, 2) == ["sent", "deferred"]  # 3 a day: the new process knows of 2


@pytest.mark.postgres
def test_a_spent_daily_allowance_is_still_spent_after_a_restart_on_postgresql(pg_schema: str) -> None:
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{pg_schema}"
    spend_here(url, 2)
    assert spend_in_a_new_process(url, 2) == ["sent", "deferred"]  # 3 a day: the new process knows of 2
    store = pg_worker(pg_schema)
    assert StateBudgets(store).usage(ACCOUNT) == {"default/60": 3, "default/86400": 3}
    store.close()


def test_sqlite_keeps_only_the_long_windows_and_no_slots_in_flight(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'connector.db'}")
    budgets = StateBudgets(store)
    assert budgets.keeps(86400) and not budgets.keeps(60) and not budgets.keeps_in_flight()
    assert budgets.take(ACCOUNT, [DAY], margin=0.05, in_flight=None).wait == 0
    assert budgets.usage(ACCOUNT) == {"default/86400": 1}
    store.close()
