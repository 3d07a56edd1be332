"""`connector serve` with two companies in one deployment: each company's work runs apart.

Company `acme` has one Stripe account whose API answers 503 throughout (a loopback server);
company `beta` keeps its books in a sandbox (Stripe, Xero, HubSpot). Beta's tick reconciles,
plans and sends every write while acme's provider fails, and while a pull of acme's hangs on
its first request (held until beta is seen finished: a reconcile waiting for every company's
pulls would never get there). Metrics and JSON log lines name the company; an error in one
company's reconcile or apply is logged with its company and leaves the other's writes going;
the single reconcile unit an older release left behind is retired, not run.
"""

from __future__ import annotations

import io
import json
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from e2e.test_e2e_service import check_effects, outbox_rows, serve_logged, unbound_client_limits

from connector import pipeline
from connector.config import Config, load_config
from connector.demo import demo_config
from connector.logs import JsonFormatter
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.service.loop import Service
from connector.state import units
from connector.state.store import Store, open_store
from connector.state.units import UnitRow
from support.databases import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema
from support.e2e import with_credentials

pytestmark = pytest.mark.slow

BETA_CONNECTIONS = ("gateway", "ledger", "crm")
GATE_BOUND_S = 420.0  # the longest the held request of acme waits for the test to let it go
BETA_BOUND_S = 300.0  # the longest the test waits for beta's tick


@pytest.fixture(scope="module")
def book():
    return with_credentials(generate(43, "small", today=date.today()).data)


class Unavailable(ThreadingHTTPServer):
    """A provider that answers every request 503 (`Retry-After: 0`, so the client's retries
    cost no time); with `hold_first`, its first request waits for `gate` before answering."""

    daemon_threads = True

    def __init__(self, hold_first: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Unavailable)
        self.hold_first = hold_first
        self.gate = threading.Event()
        self.held = threading.Event()  # the first request arrived and waits at the gate
        self.lock = threading.Lock()
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Unavailable(BaseHTTPRequestHandler):
    server: Unavailable

    def answer(self) -> None:
        server = self.server
        with server.lock:
            server.paths.append(self.path)
            first = len(server.paths) == 1
        if first and server.hold_first:
            server.held.set()
            server.gate.wait(GATE_BOUND_S)
        body = b'{"error": {"type": "api_error", "message": "Service Unavailable"}}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", "0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = answer

    def log_message(self, *_args: Any) -> None:
        pass


@contextmanager
def unavailable(*, hold_first: bool = False) -> Iterator[Unavailable]:
    server = Unavailable(hold_first)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.gate.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def write_config(directory: Path, sandbox: Sandbox, down: Unavailable, database_url: str) -> Path:
    """Beta's three connections on the sandbox, acme's Stripe account on the 503 server."""
    text = demo_config(sandbox).replace("sqlite:///connector.db", database_url)
    for name in BETA_CONNECTIONS:
        text = text.replace(f"[connections.{name}]\n", f'[connections.{name}]\ncompany = "beta"\n')
    text += f"""
[companies.acme]
legal_name = "Acme Ltd"

[companies.beta]
legal_name = "Beta GmbH"

[connections.a_gateway]
provider = "stripe"
company = "acme"
base_url = "{down.url}/stripe"
api_key = "sk_test_acme"
timeout_seconds = {GATE_BOUND_S + 60:g}
"""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "connector.toml"
    path.write_text(text)
    unbound_client_limits(path)
    return path


def unit_rows(store: Store) -> dict[str, UnitRow]:
    with store.session() as session:
        return {r["unit"]: r for r in units.units(session)}


def outbox_states(store: Store, company: str) -> Counter[str]:
    with store.engine.connect() as connection:
        query = sa.text("SELECT state, count(*) FROM outbox_actions WHERE company = :company GROUP BY state")
        return Counter(dict(connection.execute(query, {"company": company}).all()))


def done(row: UnitRow) -> bool:
    return row["done_tick"] >= row["due_tick"] and row["owner"] is None


def beta_finished(store: Store) -> bool:
    """Beta's pulls and reconcile done for the tick, and every write it planned sent."""
    rows = unit_rows(store)
    beta = [r for r in rows.values() if r["company"] == "beta"]
    states = outbox_states(store, "beta")
    return (
        any(r["unit"] == "reconcile:beta" and r["runs"] >= 1 for r in beta)
        and all(done(r) for r in beta)
        and sum(states.values()) > 0
        and states["planned"] + states["in_flight"] == 0
    )


def wait_for(condition: Callable[[], bool], bound: float, gone: Callable[[], bool] = lambda: False) -> bool:
    """Poll `condition` until it holds, for at most `bound` seconds; False at once when `gone()`
    says there is nobody left to make it hold (a worker exited)."""
    deadline = time.monotonic() + bound
    while not condition():
        if gone() or time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


# the acceptance test: PostgreSQL, two workers ------------------------------------------------


def test_a_company_whose_provider_answers_503_never_holds_back_another_companys_tick(book, tmp_path):
    postgres_url_or_fail()
    with (
        temporary_pg_schema() as schema,
        Sandbox(book, limits="off") as sandbox,
        unavailable(hold_first=True) as down,
    ):
        config_path = write_config(tmp_path, sandbox, down, f"{POSTGRES_URL}?options=-csearch_path%3D{schema}")
        store = open_store(load_config(str(config_path)).database_url)
        logs = [tmp_path / f"worker{i}.log" for i in range(2)]
        workers = [serve_logged(config_path, log, "--every", "1d") for log in logs]

        def exited() -> bool:
            return any(w.poll() is not None for w in workers)

        try:
            finished = wait_for(lambda: beta_finished(store), BETA_BOUND_S, exited)
            held = down.held.is_set()
            acme_waiting = [r["unit"] for r in unit_rows(store).values() if r["company"] == "acme" and not done(r)]
            down.gate.set()  # acme's held request answers 503 now; its tick ends
            everything_done = wait_for(
                lambda: all(done(r) for r in unit_rows(store).values() if r["kind"] != "lock"),
                BETA_BOUND_S,
                exited,
            )
        finally:
            down.gate.set()
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(60)
        exits = [w.returncode for w in workers]
        tails = [log.read_text(errors="replace")[-800:] for log in logs]
        banners = [log.read_text(errors="replace").partition("\n")[0] for log in logs]
        rows = unit_rows(store)
        actions = outbox_rows(store)
        journal = list(sandbox.journal)
        acme_requests = list(down.paths)
        store.close()

    assert held, f"acme's provider was never asked: {tails}"
    assert finished, f"beta's tick did not finish while acme's pull was held: {tails}"
    # when beta was done, acme's held pull (and so acme's reconcile) had not finished
    assert any(u.startswith("pull:a_gateway:") for u in acme_waiting), acme_waiting
    assert "reconcile:acme" in acme_waiting
    assert everything_done and exits == [0, 0], (exits, tails)
    assert all(banner.endswith("; companies acme, beta") for banner in banners), banners

    beta = [r for r in rows.values() if r["company"] == "beta"]
    assert {r["unit"] for r in beta if r["kind"] == "reconcile"} == {"reconcile:beta"}
    assert all(r["runs"] == 1 and r["last_error"] is None for r in beta), [
        (r["unit"], r["runs"], r["last_error"]) for r in beta
    ]
    beta_actions = [a for a in actions if a["connection"] in BETA_CONNECTIONS]
    assert beta_actions and Counter(a["state"] for a in beta_actions) == {"done": len(beta_actions)}
    effects = check_effects(beta_actions, journal)
    assert effects.ok, (effects.missing[:10], effects.duplicates, effects.strays[:10])

    acme_pulls = [r for r in rows.values() if r["unit"].startswith("pull:a_gateway:")]
    assert acme_pulls and all(r["company"] == "acme" for r in acme_pulls)
    assert all("503" in (r["last_error"] or "") for r in acme_pulls), [(r["unit"], r["last_error"]) for r in acme_pulls]
    assert rows["reconcile:acme"]["runs"] == 1 and done(rows["reconcile:acme"])
    assert not [a for a in actions if a["connection"] == "a_gateway"]
    assert acme_requests and all(path.startswith("/stripe/") for path in acme_requests)


# in process, SQLite: metrics, logs, a crash in one company, a webhook ----------------------------


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The JSON log lines of warnings and errors, as `--log-format json` writes them."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)


def metric(text: str, prefix: str) -> float | None:
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)]
    return sum(values) if values else None


def load(config_path: Path) -> tuple[Config, Store]:
    config = load_config(str(config_path))
    return config, open_store(config.database_url)


def test_metrics_and_logs_name_the_company_and_one_companys_crash_stays_its_own(
    book, tmp_path, json_lines, monkeypatch
):
    original_apply, original_reconcile = pipeline.apply, pipeline.reconcile_and_plan

    def apply(config, store, *args, **kwargs):
        if config.company == "acme":
            raise RuntimeError("acme's apply broke")
        return original_apply(config, store, *args, **kwargs)

    def reconcile_and_plan(config, store, *args, **kwargs):
        if config.company == "acme":
            raise RuntimeError("acme's reconcile broke")
        return original_reconcile(config, store, *args, **kwargs)

    monkeypatch.setattr(pipeline, "apply", apply)
    monkeypatch.setattr(pipeline, "reconcile_and_plan", reconcile_and_plan)
    with Sandbox(book, limits="off") as sandbox, unavailable() as down:
        config, store = load(write_config(tmp_path, sandbox, down, f"sqlite:///{tmp_path / 'state.db'}"))
        with store.session() as session:  # the single reconcile of a release before companies, left due
            units.ensure_units(session, [("reconcile", "reconcile", None, None)])
            units.schedule_tick(session, ["reconcile"], 1)
        service = Service(config, store, timedelta(hours=1))
        before = service.metrics.exposition().decode()
        service.run(max_ticks=1)
        after = service.metrics.exposition().decode()
        rows = unit_rows(store)
        beta_states = outbox_states(store, "beta")

        service.due_now("gateway", "charges")  # a webhook of beta's Stripe account
        requested = unit_rows(store)
    store.close()

    assert "reconcile" not in rows  # retired: it belongs to no company of this config
    # beta reconciled and sent everything; acme's failures are acme's alone
    assert rows["reconcile:beta"]["last_error"] is None and done(rows["reconcile:beta"])
    assert "acme's reconcile broke" in (rows["reconcile:acme"]["last_error"] or "")
    assert sum(beta_states.values()) > 0 and beta_states["planned"] + beta_states["in_flight"] == 0

    assert 'connector_outbox_actions{company="acme",state="planned"} 0.0' in before
    assert 'connector_outbox_actions{company="beta",state="planned"} 0.0' in before
    assert metric(after, 'connector_outbox_actions{company="beta",state="done"}') == beta_states["done"]
    assert metric(after, 'connector_actions_total{company="beta",connection="ledger",outcome="done"}')
    assert metric(after, 'connector_actions_total{company="acme"') is None
    assert metric(after, 'connector_provider_errors_total{company="acme",connection="a_gateway",source="stream"}')
    assert metric(after, 'connector_provider_errors_total{company="beta"') is None
    assert metric(after, 'connector_records_pulled_total{company="beta",connection="gateway"')
    assert metric(after, 'connector_last_success_timestamp_seconds{company="beta",connection="ledger"}')
    assert metric(after, 'connector_last_success_timestamp_seconds{company="acme"') is None
    assert metric(after, 'connector_runs_total{company="acme",kind="reconcile",outcome="error"}') == 1
    assert metric(after, 'connector_runs_total{company="beta",kind="reconcile",outcome="ok"}') == 1
    assert metric(after, 'connector_open_proposals{company="beta"}') is not None

    entries = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    failed_streams = [e for e in entries if e["message"].startswith("stream failed")]
    assert failed_streams and all(e.get("company") == "acme" for e in failed_streams), failed_streams
    crashes = {e["message"]: e.get("company") for e in entries if "broke" in e.get("exception", "")}
    assert crashes == {"company acme: reconcile and plan failed": "acme", "company acme: apply failed": "acme"}
    assert all(e.get("company") in ("acme", "beta") for e in entries if e["logger"].startswith("connector"))

    # a webhook makes its own company's reconcile due, not the other's
    assert not done(requested["reconcile:beta"]) and not done(requested["pull:gateway:charges"])
    assert requested["reconcile:acme"]["done_tick"] == rows["reconcile:acme"]["done_tick"]
    assert done(requested["pull:gateway:invoices"])
