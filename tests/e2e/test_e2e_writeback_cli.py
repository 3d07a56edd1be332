"""`connector plan`, `apply`, `actions list|retry|cancel` and `sync --apply|--dry-run` against
the sandbox: what each system is told, the CRM's own values read back so that nothing it holds
is sent again, and a failing connection retried with backoff, parked, then retried or cancelled
by a person."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from connector.config import load_config
from connector.demo import DEMO_CREDENTIALS, demo_config
from connector.reconcile.run import run_reconciliation
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state.store import open_store
from connector.state.tables import table
from connector.writeback.apply import BACKOFF, MAX_ATTEMPTS
from support.e2e import effect_counts, sync_sandbox, with_credentials

pytestmark = pytest.mark.slow

TODAY = date.today()  # Stripe keeps events 30 days: the book must be dated around now
# The sandbox runs with its limits off: the connections need not pace themselves by the
# providers' documented ones (HubSpot's 4 searches a second alone, one before each note or task
# is created, would add seconds to every apply).
READ_ONLY_KEY = "rk_test_readonly0000000000000000"
UNLIMITED = {
    "[connections.gateway]\n": "requests_per_second = 1000\nendpoint_requests_per_second = 1000\n",
    "[connections.ledger]\n": "calls_per_minute = 100000\n",
    "[connections.crm]\n": "requests_per_10_seconds = 100000\nsearch_requests_per_second = 1000\n",
}


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """A small book synced and reconciled once; each test gets a copy and a fresh sandbox."""
    data = with_credentials(generate(9, "small", today=TODAY).data)
    book = {**data, "credentials": {**data["credentials"], "stripe": [*data["credentials"]["stripe"], READ_ONLY_KEY]}}
    directory = tmp_path_factory.mktemp("synced")
    with Sandbox(book, limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, directory, full=True)
        assert report.ok, report.as_dict()
        run_reconciliation(load_config(str(directory / "connector.toml")), store)
        store.close()
    return book, directory


class Book:
    """A copy of the synced book served by its own sandbox, run through the CLI."""

    def __init__(self, directory, sandbox, run_cli):
        self.directory, self.sandbox, self._run = directory, sandbox, run_cli
        self.config_path = directory / "connector.toml"
        self.store = open_store(f"sqlite:///{directory / 'state.db'}")
        self.configure()

    def configure(
        self,
        *,
        revoked_gateway_key: bool = False,
        read_only_gateway_key: bool = False,
        ledger_calls_per_day: int | None = None,
    ) -> None:
        text = demo_config(self.sandbox).replace("sqlite:///connector.db", f"sqlite:///{self.directory / 'state.db'}")
        for section, lines in UNLIMITED.items():
            text = text.replace(section, section + lines)
        if ledger_calls_per_day is not None:
            text = text.replace(
                "[connections.ledger]\n", f"[connections.ledger]\ncalls_per_day = {ledger_calls_per_day}\n"
            )
        if revoked_gateway_key:  # rolled in the Stripe dashboard: every request is refused with a 401
            text = text.replace(
                f'api_key = "{DEMO_CREDENTIALS["stripe"][0]}"', 'api_key = "sk_test_rolled0000000000000000"'
            )
        if read_only_gateway_key:  # a restricted key that may read: each write is refused with a 403
            text = text.replace(f'api_key = "{DEMO_CREDENTIALS["stripe"][0]}"', f'api_key = "{READ_ONLY_KEY}"')
        self.config_path.write_text(text)

    def run(self, *args: str):
        return self._run("--config", str(self.config_path), *args)

    def json(self, *args: str):
        result = self.run(*args, "--json")
        assert result.exit_code == 0, (result.stdout[-2000:], result.stderr)
        return json.loads(result.stdout)

    def pending(self, connection: str | None = None) -> list[dict]:
        return [e for e in self.json("plan")["pending"] if connection is None or e["connection"] == connection]

    def waiting(self, connection: str) -> list[dict]:
        """Pending or parked, without planning anything new."""
        return [e for e in self.json("actions", "list")["actions"] if e["connection"] == connection]

    def outbox(self, connection: str) -> list[dict]:
        return [e for e in self.json("actions", "list", "--all")["actions"] if e["connection"] == connection]

    def let_backoff_pass(self, connection: str) -> None:
        """As if the backoff of every waiting action had run out."""
        outbox = table("outbox_actions")
        with self.store.session() as session:
            session.execute(
                sa.update(outbox)
                .where(outbox.c.connection == connection, outbox.c.state == "planned")
                .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
            )


@pytest.fixture
def book(synced, tmp_path, run_cli):
    data, synced_dir = synced
    directory = tmp_path / "book"
    shutil.copytree(synced_dir, directory)
    with Sandbox(data, limits="off") as sandbox:
        copy = Book(directory, sandbox, run_cli)
        with copy.store.session() as session:  # the fresh sandbox knows only the first refresh tokens
            session.execute(sa.delete(table("oauth_tokens")))
        yield copy
        copy.store.close()


def _writes(journal, status=None):
    return [
        e
        for e in journal
        if e["method"] in ("PATCH", "POST", "PUT")
        and not e["path"].endswith("/search")
        and "oauth" not in e["path"]
        and (status is None or e["status"] == status)
    ]


def test_plan_shows_each_system_what_it_needs_and_apply_only_sends_to_one(book):
    result = book.run("plan")
    assert result.exit_code == 0, result.stderr
    headers = [line.split(" (")[0] for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert headers == ["crm", "gateway", "ledger"]
    assert "payment status (none) -> " in result.stdout  # the CRM holds none of our values yet

    pending = book.pending()
    # each system's writes under its name and their count, in order: the listing is read as it
    # is printed, a system at a time, never held whole
    listed: dict[str, list[int]] = {}
    counted: dict[str, int] = {}
    for line in result.stdout.splitlines():
        if not line.startswith(" "):
            system, count = re.fullmatch(r"(\S+) \((\d+)\):", line).groups()
            listed[system], counted[system] = [], int(count)
        elif found := re.match(r"  #(\d+) ", line):
            listed[system].append(int(found.group(1)))
    assert counted == {system: len(ids) for system, ids in listed.items()}
    assert listed == {
        system: [e["id"] for e in pending if e["connection"] == system] for system in ("crm", "gateway", "ledger")
    }
    status = [e for e in pending if e["subject"]["type"] == "invoice" and e["connection"] == "gateway"]
    assert status and {e["kind"] for e in status} <= {"mark_paid", "void_invoice"}  # (reminders aside)
    assert {"record_payment", "record_fee"} <= {e["kind"] for e in pending if e["connection"] == "ledger"}
    updates = [e for e in pending if e["kind"] == "update_properties"]
    assert updates and all(e["connection"] == "crm" for e in updates)
    first = updates[0]
    assert set(first["payload"]["properties"]) == {"payment_status", "amount_outstanding", "days_overdue"}
    assert f"crm {first['target']['type']} {first['target']['id']}: payment status (none) -> " in first["summary"]
    assert [e["id"] for e in book.pending()] == [e["id"] for e in pending]  # planning twice adds nothing

    gateway = sorted(e["id"] for e in pending if e["connection"] == "gateway")
    # without --yes and no terminal to ask on: nothing is sent, and the count is the gateway's
    unasked = book.run("apply", "--only", "gateway")
    assert unasked.exit_code == 2 and _writes(book.sandbox.journal) == []
    assert f"{len(gateway)} writes are pending; run `connector plan`" in unasked.stderr
    applied = book.json("apply", "--only", "gateway", "--yes")
    assert sorted(e["id"] for e in applied["done"]) == gateway
    assert applied["failed"] == [] and applied["parked"] == []
    assert {e["provider"] for e in _writes(book.sandbox.journal)} == {"stripe"}  # only the gateway was written
    assert not book.waiting("gateway") and book.waiting("crm") and book.waiting("ledger")
    assert book.run("apply", "--only", "nowhere", "--yes").exit_code == 2


def test_plan_run_again_on_a_book_nothing_changed_derives_nothing_and_says_since_when(book):
    first = book.run("plan")
    assert first.exit_code == 0 and "nothing changed" not in first.stderr
    # its own writes moved the book: the next plans derive again (queuing nothing new) until
    # one finds the book as the one before it left it
    for _ in range(3):
        unchanged = book.run("plan")
        assert unchanged.exit_code == 0 and unchanged.stdout == first.stdout
        if unchanged.stderr:
            break
    assert re.fullmatch(
        r"nothing changed since the plan of \d{4}-\d\d-\d\d \d\d:\d\d:\d\d: the pending writes are as it left "
        r"them \(--full derives them again\)\n",
        unchanged.stderr,
    )
    assert unchanged.stdout == first.stdout
    listed = book.json("plan")
    assert "unchanged_since" in listed and [e["summary"] for e in listed["pending"]]
    # --full derives anyway; a changed setting makes the plan run again
    assert "nothing changed" not in book.run("plan", "--full").stderr
    book.configure(ledger_calls_per_day=100000)
    changed = book.run("plan")
    assert changed.exit_code == 0 and "nothing changed" not in changed.stderr
    assert changed.stdout == first.stdout


def test_sync_dry_run_writes_nothing_and_sync_apply_tells_the_crm_only_what_it_does_not_hold(book):
    result = book.run("sync", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "Would write (dry run):" in result.stdout
    assert "mark_paid" in result.stdout and "update_properties" in result.stdout
    assert _writes(book.sandbox.journal) == []

    before = date.today()
    report = book.json("sync", "--apply")
    sent_on = {before.isoformat(), date.today().isoformat()}  # the reminders' day (the run may straddle midnight)
    assert set(report["applied"]) == {"crm", "gateway", "ledger"}
    told = report["applied"]["gateway"].get("mark_paid", 0) + report["applied"]["gateway"].get("void_invoice", 0)
    assert told == len([p for p in report["plan"] if " in gateway (status open -> " in p])
    assert book.run("actions", "list").stdout.strip() == "no actions"
    first_run = len(book.sandbox.journal)

    # The second run reads back what the first wrote: no effect twice, and the CRM is told only
    # what is new, the date of the reminders the first run sent, on each invoice they named.
    again = book.json("sync", "--apply")
    crm_lines = [p for p in again["plan"] if ": crm deal " in p or ": crm invoice " in p]
    told_days = {p.rsplit("last reminder (none) -> ", 1)[-1] for p in crm_lines}
    assert crm_lines and len(told_days) == 1 and told_days <= sent_on, crm_lines
    assert all("last reminder (none) -> " in p for p in crm_lines), crm_lines
    day = told_days.pop()
    journal = book.sandbox.journal
    assert not [e for e in _writes(journal) if e["status"] >= 400]
    assert max(effect_counts(journal).values()) == 1, {k: v for k, v in effect_counts(journal).items() if v > 1}
    # the CRM's updates go in batches (one request per object type; one left alone goes as a
    # PATCH): each input names one record
    updates = [e for e in journal[first_run:] if e["method"] == "POST" and e["path"].endswith("/batch/update")]
    patches = [e for e in journal[first_run:] if e["method"] == "PATCH"]
    patched = [(e["path"].split("/")[4], item) for e in updates for item in e["payload"]["inputs"]]
    patched += [(e["path"].split("/")[4], {"id": e["path"].rsplit("/", 1)[1], **e["payload"]}) for e in patches]
    assert len(updates) + len(patches) < len(patched)  # fewer requests than updates
    assert len(patched) == len(crm_lines) == again["applied"]["crm"]["update_properties"]
    for _, item in patched:
        assert item["properties"] == {"ar_last_reminder": day}, item
    deal = next(item["id"] for object_type, item in patched if object_type == "deals")
    assert book.sandbox.state.hubspot["deals"][deal]["properties"]["ar_last_reminder"] == day

    # Read back once more: the CRM holds every value, nothing is planned for it.
    assert book.run("sync", "--connection", "crm").exit_code == 0
    assert not [e for e in book.pending("crm") if e["kind"] == "update_properties"]


def test_a_spent_daily_limit_defers_the_connections_writes_without_failing_any(book):
    """Xero's 5,000 calls a day per tenant: once spent, the rest of the ledger's writes wait for
    the next day as they are (no attempt counted, nothing parked), and the other systems' writes
    go on."""
    book.configure(ledger_calls_per_day=3)
    ledger = sorted(e["id"] for e in book.pending("ledger"))
    assert len(ledger) > 3
    started = datetime.now(UTC)
    report = book.json("apply", "--yes")
    assert report["failed"] == [] and report["parked"] == []
    deferral = report["deferred"]["ledger"]
    assert "rate limit" in deferral["reason"] and deferral["actions"] >= 1  # handed back from its claim
    until = datetime.fromisoformat(deferral["until"])
    assert started + timedelta(hours=23) < until <= datetime.now(UTC) + timedelta(hours=24, minutes=1)
    sent = [e for e in report["done"] if e["connection"] == "ledger"]
    # the day's three calls: an invoice check and one batch of payments (up to 50) fit in them
    assert sent and len(sent) < len(ledger)
    assert not book.waiting("gateway") and not book.waiting("crm")  # the others were not held up
    waiting = book.waiting("ledger")
    assert sorted(e["id"] for e in waiting) == sorted(set(ledger) - {e["id"] for e in sent})
    # every write that waits is counted once: handed back by this run, or queued behind it
    assert deferral["waiting"] == deferral["actions"] + deferral["queued"] == len(waiting)
    assert {e["state"] for e in waiting} == {"planned"} and {e["attempts"] for e in waiting} == {0}
    assert all(e["last_error"].startswith("waits until ") for e in waiting)
    assert all(datetime.fromisoformat(e["next_attempt_at"]) == until for e in waiting)
    assert book.json("actions", "list", "--failed")["actions"] == []
    listed = book.run("actions", "list").stdout
    assert "         waits until " in listed and "last error" not in listed

    # The next run before the day is over sends nothing to the ledger and says when it will.
    again = book.run("apply", "--yes")
    assert again.exit_code == 0 and again.stdout.startswith(
        f"nothing due now: {len(waiting)} writes wait for a spent rate limit, the first until "
    )
    assert "retried" not in again.stdout  # none was tried
    ledger_writes = [e for e in _writes(book.sandbox.journal) if e["provider"] == "xero"]
    assert len(ledger_writes) <= 3


DEFERRAL_LINE = re.compile(
    r"^ledger: (\d+) writes wait until (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) "
    r"\((\d+) handed back by this run(?:, (\d+) already queued)?; none counted as a failed attempt\): .*rate limit"
)


def test_the_deferral_line_of_apply_counts_every_write_that_waits(book):
    book.configure(ledger_calls_per_day=3)
    assert len(book.pending("ledger")) > 3
    result = book.run("apply", "--yes")
    assert result.exit_code == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("ledger: ") and " wait" in line]
    found = DEFERRAL_LINE.match(line)
    assert found, line
    total, handed_back, queued = int(found[1]), int(found[3]), int(found[4] or 0)
    waiting = book.waiting("ledger")
    assert total == handed_back + queued == len(waiting) and handed_back >= 1
    until = datetime.fromisoformat(waiting[0]["next_attempt_at"]).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert found[2] == until


def test_sync_exits_1_naming_each_stream_a_spent_daily_limit_deferred_and_the_writes_that_wait(book):
    book.configure(ledger_calls_per_day=1)
    result = book.run("sync", "--apply")
    assert result.exit_code == 1, result.stderr
    problems = result.stdout.split("Not finished (exit code 1):\n")[1].split("\n\n")[0].splitlines()
    deferred = [p for p in problems if p.startswith("  ledger/") and " deferred until " in p]
    assert deferred and len(deferred) == len(problems), problems
    assert all("a later run resumes from the saved cursor" in p for p in deferred)
    streams = {s["stream"]: s for s in book.json("sync", "--connection", "gateway")["streams"]}
    assert {s["status"] for s in streams.values()} == {"ok"}  # the other connections finished
    # the writes that the ledger's spent limit holds back are counted as they wait
    [line] = [line for line in result.stdout.splitlines() if line.startswith("ledger: ") and " wait" in line]
    assert DEFERRAL_LINE.match(line), line
    assert int(DEFERRAL_LINE.match(line)[1]) == len(book.waiting("ledger"))


def test_a_failing_connection_is_retried_with_backoff_parked_then_retried_or_cancelled(book):
    # (A refused credential holds the connection's writes instead: test_e2e_apply_credentials.)
    book.configure(read_only_gateway_key=True)
    ids = sorted(e["id"] for e in book.pending("gateway"))
    assert len(ids) >= 3

    for attempt in range(1, MAX_ATTEMPTS):
        before = datetime.now(UTC)
        result = book.run("apply", "--only", "gateway", "--yes")
        after = datetime.now(UTC)
        assert result.exit_code == 1, result.stderr
        assert f"will retry #{ids[0]} " in result.stdout and "does not have the required permissions" in result.stdout
        entries = book.outbox("gateway")
        assert {e["state"] for e in entries} == {"planned"} and {e["attempts"] for e in entries} == {attempt}
        assert all("does not have the required permissions" in e["last_error"] for e in entries)
        wait = BACKOFF[attempt - 1]  # 1 min, 5 min, 30 min, 2 h
        for entry in entries:
            assert before + wait <= datetime.fromisoformat(entry["next_attempt_at"]) <= after + wait
        if attempt == 1:  # nothing is due until the backoff has run out
            again = book.run("apply", "--only", "gateway", "--yes")
            assert again.exit_code == 0
            assert again.stdout.startswith(f"nothing due now: {len(ids)} writes wait to be retried, the first at ")
            assert "next attempt at " in book.run("actions", "list").stdout
        book.let_backoff_pass("gateway")

    result = book.run("apply", "--only", "gateway", "--yes")
    assert result.exit_code == 1
    assert f"parked #{ids[0]} " in result.stdout and "for a person" in result.stdout
    parked = book.json("actions", "list", "--failed")["actions"]
    assert sorted(e["id"] for e in parked) == ids and {e["attempts"] for e in parked} == {MAX_ATTEMPTS}
    listed = book.run("actions", "list", "--failed").stdout
    assert f"last error (attempt {MAX_ATTEMPTS}): " in listed and "next attempt" not in listed
    assert book.run("apply", "--only", "gateway", "--yes").stdout.strip() == "nothing to apply"  # parked stay parked
    assert not _writes(book.sandbox.journal, status=200)

    # A person puts the new key in the config, sends one action again and cancels another.
    book.configure()
    retried, cancelled = ids[0], ids[1]
    result = book.run("actions", "retry", str(retried))
    assert result.exit_code == 0 and result.stdout.strip() == f"#{retried} queued again; `connector apply` sends it"
    result = book.run("actions", "cancel", str(cancelled), "--user", "ana")
    # a cancelled mark-paid leaves the gateway's status behind the ledger's: said, and kept for drift
    assert result.exit_code == 0 and result.stdout.startswith(f"#{cancelled} cancelled\n")
    assert "gap recorded" in result.stdout
    applied = book.json("apply", "--only", "gateway", "--yes")
    assert [e["id"] for e in applied["done"]] == [retried]
    by_id = {e["id"]: e for e in book.outbox("gateway")}
    assert by_id[retried]["state"] == "done" and by_id[cancelled]["state"] == "cancelled"
    sent = [e["path"] for e in _writes(book.sandbox.journal, status=200)]
    assert len(sent) == 1 and by_id[retried]["target"]["id"] in sent[0]  # the cancelled one never went
    assert sorted(e["id"] for e in book.json("actions", "list", "--failed")["actions"]) == ids[2:]

    for args, message in [
        (("actions", "retry", "99999"), "error: no action #99999"),
        (("actions", "cancel", "99999"), "error: no action #99999"),
        (
            ("actions", "retry", str(cancelled)),
            f"error: action #{cancelled} is cancelled: only a failed or waiting action can be queued again",
        ),
        (
            ("actions", "cancel", str(retried)),
            f"error: action #{retried} is done: only a planned or failed action can be cancelled",
        ),
    ]:
        result = book.run(*args)
        assert result.exit_code == 2 and result.stderr.strip() == message, (args, result.stderr)
