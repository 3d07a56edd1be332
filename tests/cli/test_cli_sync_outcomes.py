"""`connector sync` tells the truth about a run: exit 1 and a line per stream when a stream was
deferred by a provider's limit (until when), failed (why) or skipped records; exit 0 only when
every stream finished. And provider text too long to keep is cut once, in the mapper, with the
original length kept in the record's view.

A provider written for these tests (`flaky`, the Stripe mapping) stands in for the installed
ones, so each outcome is made on purpose, without a network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from connector.errors import ProviderUnavailableError, RateLimitDeferred
from connector.mappings.mapper import TEXT_LIMIT
from connector.providers.base import Page, Provider, ProviderSettings
from connector.providers.registry import ProviderInfo, Registry, installed
from connector.state.store import open_store
from connector.state.tables import table

HUGE_NAME = "Acme " + "x" * 2_000_000


class FlakySettings(ProviderSettings):
    defer: list[str] = []  # streams that stop after their first page: the daily limit is spent
    fail: list[str] = []  # streams that stop after their first page: the provider is down
    retry_after: float = 7200.0  # what the deferral names as the wait (0: nothing)
    huge_name: bool = False


class Flaky(Provider):
    name = "flaky"
    kind = "gateway"
    settings_model = FlakySettings
    streams = ("customers", "payouts")
    mapping_file = "connector.mappings:stripe.toml"

    def read(self, stream: str, cursor: str | None) -> Iterator[Page]:
        settings = self.settings
        assert isinstance(settings, FlakySettings)
        name = HUGE_NAME if settings.huge_name else "Acme"
        records = [{"id": "cus_1", "name": name, "email": "ap@acme.test"}] if stream == "customers" else []
        yield Page(stream=stream, records=records, cursor="page-1")
        if stream in settings.defer:
            raise RateLimitDeferred(
                "the daily limit is spent, resume on a later run",
                provider="flaky",
                retry_after=settings.retry_after or None,
            )
        if stream in settings.fail:
            raise ProviderUnavailableError("service unavailable", provider="flaky", http_status=503)


@pytest.fixture
def sync(run_cli, tmp_path, monkeypatch):
    """sync(settings...) -> the CLI's result of `connector sync` on one `flaky` connection."""
    infos = [*installed().infos, ProviderInfo(name="flaky", origin="tests 0", target="tests:Flaky", cls=Flaky)]
    monkeypatch.setattr(Registry, "discover", classmethod(lambda cls: cls(infos)))
    installed.cache_clear()

    def run(*args: str, **settings: object):
        lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
        (tmp_path / "connector.toml").write_text(
            '[database]\nurl = "sqlite:///state.db"\n\n[connections.gw]\nprovider = "flaky"\n'
            'base_url = "http://127.0.0.1:9"\n' + "".join(f"{line}\n" for line in lines)
        )
        return run_cli("sync", *args)

    yield run
    installed.cache_clear()  # the next test discovers the installed providers again


def _local(moment: datetime) -> datetime:
    return moment.astimezone().replace(tzinfo=None)


def test_a_run_whose_every_stream_was_deferred_exits_1_and_says_until_when(sync):
    before = datetime.now(UTC)
    result = sync(defer=["customers", "payouts"])
    after = datetime.now(UTC)
    assert result.exit_code == 1, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("Not finished (exit code 1):")
    problems = lines[start + 1 :]
    assert len(problems) == 2 and all(" deferred until " in line for line in problems), problems
    assert problems[0].startswith("  gw/customers deferred until ")
    assert "later run resumes from the saved cursor" in problems[0]
    shown = datetime.strptime(problems[0].split(" until ")[1][:19], "%Y-%m-%d %H:%M:%S")
    wait = timedelta(seconds=7200)
    assert _local(before + wait) - timedelta(seconds=1) <= shown <= _local(after + wait)

    report = json.loads(sync("--json", defer=["customers", "payouts"]).stdout)
    assert report["ok"] is False
    assert [s["status"] for s in report["streams"]] == ["deferred", "deferred"]
    until = datetime.fromisoformat(report["streams"][0]["deferred_until"])
    assert timedelta(hours=1, minutes=59) < until - datetime.now(UTC) <= wait


def test_a_deferral_that_names_no_time_says_so(sync):
    result = sync(defer=["payouts"], retry_after=0)
    assert result.exit_code == 1
    assert "  gw/payouts deferred until the limit resets (the provider named no time)" in result.stdout
    assert "gw/customers" not in result.stdout.split("Not finished")[1]  # it finished


def test_a_failed_stream_exits_1_and_says_why_while_the_others_are_stored(sync, tmp_path):
    result = sync(fail=["payouts"])
    assert result.exit_code == 1
    problems = result.stdout.split("Not finished (exit code 1):\n")[1].splitlines()
    assert problems == ["  gw/payouts failed: flaky: service unavailable | HTTP 503"]
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert [c.name for c in store.list_customers()] == ["Acme"]
    finally:
        store.close()


def test_a_run_where_every_stream_finished_exits_0_without_a_problem_line(sync):
    result = sync()
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Not finished" not in result.stdout
    assert json.loads(sync("--json").stdout)["ok"] is True


def test_an_overlong_name_is_stored_cut_with_its_length_in_the_view_and_one_warning(sync, tmp_path):
    result = sync(huge_name=True)
    assert result.exit_code == 0, result.stderr[-2000:]
    assert result.stderr.count("text longer than the connector keeps was cut") == 1
    assert f"name ({len(HUGE_NAME)} characters)" in result.stderr and len(result.stderr) < 5000
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        [customer] = store.list_customers()
        assert len(customer.name) == TEXT_LIMIT and customer.name.startswith("Acme xxx")
        with store.session() as session:
            [data] = session.execute(sa.select(table("refs").c.data).where(table("refs").c.remote_id == "cus_1")).one()
        data = data if isinstance(data, dict) else json.loads(data)
        assert data["name"] == customer.name
        assert data["_sync"]["truncated"] == {"name": len(HUGE_NAME)}
    finally:
        store.close()
    assert len(result.stdout) < 5000  # nothing printed the provider's two megabytes
