"""`connector demo`: the whole product on a generated book, with no credentials and no internet.

It starts the sandbox on a free loopback port, writes a config whose connections point at it,
and runs the product loop on the embedded SQLite default: sync (pull, map, store, link across
systems), reconciliation, write-back (plan and apply), one more sync and reconciliation that
read back what was written (so `connector drift` has nothing in transit to report afterwards),
and the aging report, through `connector.pipeline` as every other run. The database stays
behind for `connector invoices`, `connector aging` and friends.

The rotated OAuth tokens are sealed as in any deployment: the demo makes its own secret key,
a file readable by its owner only beside the config (`connector.key`), and the config names it
with `secret_key = "file:connector.key"`.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from connector import pipeline
from connector.config import load_config
from connector.dunning.run import already_reminded
from connector.errors import UsageError
from connector.reconcile.run import ReconcileSummary, invoice_allocations, run_reconciliation
from connector.reports import aging_report
from connector.sandbox import Sandbox
from connector.sandbox.generator import Size, generate
from connector.sandbox.quickbooks_api import quickbooks_book
from connector.state.outbox import OutboxEntry
from connector.state.secrets import new_key
from connector.state.store import Store, open_store
from connector.sync import SyncReport
from connector.writeback.apply import ApplyReport

DEMO_MARKER = "# written by `connector demo`"
CONFIG_NAME = "connector.toml"
DATABASE_NAME = "connector.db"
KEY_NAME = "connector.key"
# The key of configs written by `demo_config` without one (the test harness's sandbox configs):
# made once per process and written into the config, like the sandbox's own credentials.
SANDBOX_SECRET_KEY = new_key()

# Sandbox credentials: accepted by the local sandbox only, so they are not secrets; the OAuth
# ones make the demo spend and rotate refresh tokens exactly as against the real providers.
DEMO_CREDENTIALS: dict[str, Any] = {
    "stripe": ["sk_test_sandbox_demo"],
    "xero": {
        "client_id": "demo-xero-client",
        "client_secret": "sandbox-xero-secret",
        "refresh_token": "sandbox-xero-refresh-0",
        "tenant_ids": ["00000000-0000-4000-8000-00000000de30"],
    },
    "hubspot": {
        "client_id": "demo-hubspot-client",
        "client_secret": "sandbox-hubspot-secret",
        "refresh_token": "sandbox-hubspot-refresh-0",
    },
}


QUICKBOOKS_CREDENTIALS: dict[str, Any] = {
    "client_id": "demo-quickbooks-client",
    "client_secret": "sandbox-quickbooks-secret",
    "refresh_token": "sandbox-quickbooks-refresh-0",
    "realm_ids": ["9130000000000000"],
}


def _quickbooks_ledger(sandbox: Sandbox) -> str:
    qbo = QUICKBOOKS_CREDENTIALS
    return f'''[connections.ledger]
provider = "quickbooks"
base_url = "{sandbox.url("quickbooks")}"
token_url = "{sandbox.url("quickbooks")}/oauth/token"
realm_id = "{qbo["realm_ids"][0]}"
client_id = "{qbo["client_id"]}"
client_secret = "{qbo["client_secret"]}"
refresh_token = "{qbo["refresh_token"]}"
'''


def demo_config(sandbox: Sandbox, ledger: str = "xero", *, secret_key: str | None = None) -> str:
    """The config of a run against `sandbox`. `secret_key` is the value of `[database]
    secret_key` (the demo gives "file:connector.key"); without it, this process's sandbox key."""
    xero, hubspot = DEMO_CREDENTIALS["xero"], DEMO_CREDENTIALS["hubspot"]
    return f'''{DEMO_MARKER} against a sandbox that has stopped since.
# The credentials below are the sandbox's own; real ones belong in the environment
# ("env:NAME") or in files ("file:PATH"), never in this file. `connector init` writes a
# template for real systems.

[database]
url = "sqlite:///{DATABASE_NAME}"
secret_key = "{secret_key or SANDBOX_SECRET_KEY}"        # seals the stored OAuth tokens

[connections.gateway]
provider = "stripe"
base_url = "{sandbox.url("stripe")}"
api_key = "{DEMO_CREDENTIALS["stripe"][0]}"

{_xero_ledger(sandbox, xero) if ledger == "xero" else _quickbooks_ledger(sandbox)}
[connections.crm]
provider = "hubspot"
base_url = "{sandbox.url("hubspot")}"
token_url = "{sandbox.url("hubspot")}/oauth/token"
client_id = "{hubspot["client_id"]}"
client_secret = "{hubspot["client_secret"]}"
refresh_token = "{hubspot["refresh_token"]}"
'''


def _xero_ledger(sandbox: Sandbox, xero: dict[str, Any]) -> str:
    return f'''[connections.ledger]
provider = "xero"
base_url = "{sandbox.url("xero")}"
token_url = "{sandbox.url("xero")}/oauth/token"
tenant_id = "{xero["tenant_ids"][0]}"
client_id = "{xero["client_id"]}"
client_secret = "{xero["client_secret"]}"
refresh_token = "{xero["refresh_token"]}"
payment_account_code = "615"                  # Stripe Clearing: card money on its way to the bank
fee_account_code = "404"                      # Bank Fees
'''


@dataclass
class DemoResult:
    directory: Path
    config_path: Path
    sync: SyncReport
    counts: dict[str, int] = field(default_factory=dict)
    reconciliation: ReconcileSummary | None = None
    aging: dict[str, Any] = field(default_factory=dict)
    planned: int = 0
    applied: ApplyReport | None = None
    reminders: int = 0


def prepare_directory(directory: Path) -> Path:
    """The demo's config path in `directory`; a config that is not the demo's is never
    overwritten, and a previous demo's database is removed so the demo starts clean."""
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / CONFIG_NAME
    if config_path.exists() and DEMO_MARKER not in config_path.read_text(encoding="utf-8", errors="replace"):
        raise UsageError(
            f"{config_path} exists and was not written by `connector demo`; "
            "run the demo in another directory with `connector demo --dir PATH`"
        )
    for suffix in ("", "-wal", "-shm"):
        database = directory / f"{DATABASE_NAME}{suffix}"
        if database.exists():
            database.unlink()
    return config_path


def write_key_file(path: Path) -> None:
    """A new secret key in `path`, readable and writable by its owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.chmod(path, 0o600)  # a file left by an earlier demo keeps its mode otherwise
        os.write(descriptor, (new_key() + "\n").encode("ascii"))
    finally:
        os.close(descriptor)


def run_demo(
    directory: Path,
    *,
    seed: int = 42,
    size: Size = "small",
    today: date | None = None,
    ledger: str = "xero",
    echo: Callable[[str], None] = print,
) -> DemoResult:
    config_path = prepare_directory(directory)
    # The book is dated around today, so its ages, due dates and Stripe events are current.
    scenario = generate(seed, size, today=today or date.today())
    data = {**scenario.data, "credentials": DEMO_CREDENTIALS}
    if ledger == "quickbooks":  # the same book, with QuickBooks Online keeping it
        xero_book = data.pop("xero")
        data["quickbooks"] = quickbooks_book(xero_book)
        data["credentials"] = {**DEMO_CREDENTIALS, "quickbooks": QUICKBOOKS_CREDENTIALS}
    elif ledger != "xero":
        raise UsageError(f"--ledger must be xero or quickbooks, not {ledger!r}")
    with Sandbox(data, limits="documented") as sandbox:  # started on a free loopback port
        ledger_name = "QuickBooks Online" if ledger == "quickbooks" else "Xero"
        echo(f"sandbox: Stripe, {ledger_name} and HubSpot on {sandbox.base_url} (book: seed {seed}, {size})")
        write_key_file(directory / KEY_NAME)  # a new database, a new key
        config_path.write_text(demo_config(sandbox, ledger, secret_key=f"file:{KEY_NAME}"), encoding="utf-8")
        config = load_config(str(config_path))  # its SQLite file and its key lie beside it
        config.require_secret_key()
        store = open_store(config.database_url, sealer=config.token_sealer())
        try:
            shown = WriteBackProgress(echo)
            run = pipeline.run(
                config,
                store,
                then="apply",
                full=True,
                on_synced=lambda synced: echo(
                    f"pulled {sum(s.records for s in synced.streams):,} records; reconciling and planning"
                ),
                on_planned=shown.planned,
                on_applying=shown.sent,
            )
            shown.finished()
            assert run.reconciliation is not None and run.applied is not None  # then="apply" ran them
            report, reconciliation, planned, applied = run.sync, run.reconciliation, run.planned, run.applied
            # Read back what was written, so that the book shows every system as it now is
            # and `connector drift` has nothing in transit to report.
            pipeline.sync(config, store)
            run_reconciliation(config, store)
            reminders = len(already_reminded(store))
            counts = _counts(store)
            invoices = store.list_receivables()
            customers = {c.id: c for c in store.list_customers() if c.id}
            aging = aging_report(invoices, customers, invoice_allocations(store, invoices), date.today())
        finally:
            store.close()
    return DemoResult(
        directory=directory,
        config_path=config_path,
        sync=report,
        counts=counts,
        reconciliation=reconciliation,
        aging=aging,
        planned=len(planned),
        applied=applied,
        reminders=reminders,
    )


class WriteBackProgress:
    """What the demo says while it writes back: how many writes are planned, then every few
    seconds how many are sent and in how many requests (batches count once)."""

    EVERY_S = 5.0

    def __init__(self, echo: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.echo, self.clock = echo, clock
        self.total = 0
        self.started = self.last = clock()
        self.report: ApplyReport | None = None

    def planned(self, pending: list[OutboxEntry]) -> None:
        self.total = len(pending)
        self.started = self.last = self.clock()
        by_connection = Counter(entry.action.connection for entry in pending)
        detail = ", ".join(f"{n:,} to {name}" for name, n in sorted(by_connection.items()))
        self.echo(f"writing back {self.total:,} actions ({detail or 'none'}) at the providers' documented rate limits")

    def sent(self, report: ApplyReport) -> None:
        self.report = report
        now = self.clock()
        if now - self.last >= self.EVERY_S:
            self.last = now
            self.echo(self.line(report, now))

    def line(self, report: ApplyReport, now: float) -> str:
        return (
            f"  {len(report.done):,} of {self.total:,} written in {report.requests:,} requests "
            f"({report.batches:,} batches), {now - self.started:.0f} s"
        )

    def finished(self) -> None:
        if self.report is not None and self.total:
            self.echo(self.line(self.report, self.clock()))


def _counts(store: Store) -> dict[str, int]:
    return {
        "customers": len(store.list_customers()),
        "invoices": len(store.list_receivables()),
        "payments": len(store.list_payments()),
    }
