"""OAuth against the sandbox's rotating token issuer, at its edges: a process killed between
the token answer and its save, an answer lost on its way back during a sync, and access tokens
that live shorter than the refresh margin."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.config import load_config
from connector.demo import DEMO_CREDENTIALS
from connector.http import auth as auth_module
from connector.pipeline import sync
from connector.providers.registry import ProviderInfo, Registry
from connector.providers.xero import XeroProvider
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state.store import Store, open_store
from support.e2e import sync_sandbox, with_credentials

pytestmark = pytest.mark.slow

CONFIGURED = DEMO_CREDENTIALS["xero"]["refresh_token"]


@pytest.fixture(autouse=True)
def no_lost_answers_from_other_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lost answers are remembered per process (for the rest of a run); each test starts
    with none and leaves none to the tests after it."""
    monkeypatch.setattr(auth_module, "_lost_answers", {})


def grants(sandbox: Sandbox, provider: str = "xero") -> list[str]:
    return [e["effect"] for e in sandbox.journal if e["provider"] == provider and "oauth" in e["path"]]


def connector_sync(config: Path, *args: str, failpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CONNECTOR_FAILPOINT"}
    if failpoint:
        env["CONNECTOR_FAILPOINT"] = failpoint
    command = [sys.executable, "-m", "connector", "--config", str(config), "sync", "--connection", "ledger", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def prepared(sandbox: Sandbox, directory: Path) -> tuple[Store, Path]:
    """The sandbox's config and a fresh database, nothing pulled and no token spent yet; the
    store seals tokens with the config's key, as `connector sync` does."""
    store, _ = sync_sandbox(sandbox, directory, streams=["(none)"])
    store.close()
    config = load_config(str(directory / "connector.toml"))
    return open_store(config.database_url, sealer=config.token_sealer()), directory / "connector.toml"


# -- a crash between the answer and the save ---------------------------------------------------


@pytest.mark.parametrize("grace", [1800, 0], ids=["within-xeros-grace", "no-grace"])
def test_a_process_killed_between_the_token_answer_and_its_save(tmp_path, grace):
    book = with_credentials(generate(3, "small", today=date.today()).data)
    with Sandbox(book, limits="off", refresh_grace_s=grace) as sandbox:
        store, config = prepared(sandbox, tmp_path)
        killed = connector_sync(config, failpoint="token_answered")
        assert killed.returncode == 137, killed.stderr[-800:]
        # the provider rotated the refresh token; we never saved what it answered
        assert [g.split(";")[0] for g in grants(sandbox)] == ["issued access token"]
        assert store.load_tokens("ledger") is None

        rerun = connector_sync(config, "--json")
        issued = grants(sandbox)
        live = set(sandbox.faces["xero"].oauth.refresh_tokens)
    saved = store.load_tokens("ledger")
    store.close()
    if grace:
        # Xero hands the lost answer's refresh token out again within its grace period
        assert rerun.returncode == 0, rerun.stdout[-800:] + rerun.stderr[-800:]
        assert [g.split(";")[0] for g in issued] == ["issued access token"] * 2
        assert saved is not None and saved.refresh_token in live
        assert saved.previous_refresh_token == CONFIGURED
    else:
        # the configured refresh token is spent and its successor lost: only now is
        # re-authorisation the truth, and the run says so
        assert rerun.returncode == 1
        assert issued[1].startswith("rejected: invalid_grant")
        assert "re-authorise the connection 'ledger'" in rerun.stdout
        assert saved is None


# -- an answer lost on its way back, in the middle of a sync ----------------------------------


class LosesTokenAnswers(httpx.BaseTransport):
    """Sends every request to the sandbox; the answer to the first token request is read and
    then lost (a ReadTimeout), as when a connection drops after the provider rotated."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.token_requests = 0
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/oauth/token"):
            with self.lock:
                self.token_requests += 1
                first = self.token_requests == 1
            if first:
                response.read()
                response.close()
                raise httpx.ReadTimeout("the answer was lost on its way back", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def losing_registry(transport: httpx.BaseTransport) -> Registry:
    class LosingXero(XeroProvider):
        def __init__(self, settings: Any, **kwargs: Any) -> None:
            super().__init__(settings, transport=transport, **kwargs)

    return Registry([ProviderInfo(name="xero", origin="tests 0", target="tests:LosingXero", cls=LosingXero)])


def test_an_answer_lost_in_a_sync_stops_the_connection_for_the_run_and_the_next_run_recovers(tmp_path):
    book = with_credentials(generate(3, "small", today=date.today()).data)
    with Sandbox(book, limits="off", latency_ms=20, refresh_grace_s=1800) as sandbox:
        store, config_path = prepared(sandbox, tmp_path)
        config = load_config(str(config_path))
        transport = LosesTokenAnswers()
        report = sync(config, store, losing_registry(transport), connections=["ledger"], then_link=False)
        # every stream of the connection stops; none spends the refresh token again
        assert {s.status for s in report.streams} == {"failed"}
        assert all("the refresh token may have been spent" in s.errors[0] for s in report.streams)
        assert not any("not spent" in s.errors[0] for s in report.streams)
        assert transport.token_requests == 1 and len(grants(sandbox)) == 1
        # a stream pulled by itself afterwards in this process (as `connector serve` pulls
        # each stream) does not spend it either
        again = sync(config, store, connections=["ledger"], streams=["contacts"], then_link=False)
        assert again.streams[0].status == "failed" and len(grants(sandbox)) == 1
        # the next run (a new process) spends the stored refresh token again: within Xero's
        # grace period it gets the lost answer's refresh token, and carries on
        rerun = connector_sync(config_path)
        assert rerun.returncode == 0, rerun.stdout[-800:] + rerun.stderr[-800:]
        assert [g.split(";")[0] for g in grants(sandbox)] == ["issued access token"] * 2
        live = set(sandbox.faces["xero"].oauth.refresh_tokens)
    saved = store.load_tokens("ledger")
    store.close()
    assert saved is not None and saved.refresh_token in live


# -- access tokens shorter-lived than the refresh margin --------------------------------------


def test_tokens_shorter_lived_than_the_margin_are_refreshed_once_per_lifetime_in_a_sync(tmp_path):
    # HubSpot refreshes 120 s before expiry; these tokens live 2 s. With a fixed margin every
    # request refreshed first (116 grants in a 36 s sync).
    book = with_credentials(generate(1, "medium", today=date.today()).data)
    with Sandbox(book, limits="off", latency_ms=40, token_ttl_s=2) as sandbox:
        started = time.monotonic()
        store, report = sync_sandbox(sandbox, tmp_path, connections=["crm"], full=True, then_link=False)
        elapsed = time.monotonic() - started
        issued = grants(sandbox, "hubspot")
    store.close()
    assert report.ok, [s.errors for s in report.streams]
    pages = sum(s.pages for s in report.streams)
    assert elapsed > 4  # several lifetimes
    # about one per 80 % of a lifetime; bounded loosely (one per half lifetime, two spare), since
    # a loaded machine stretches the requests around each refresh
    assert len(issued) <= elapsed / (0.5 * 2) + 2
    assert len(issued) * 2 < pages  # refreshing before every request: one grant a page at least
