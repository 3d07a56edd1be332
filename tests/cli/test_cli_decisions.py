"""Finance's decisions and the writes they stand behind (issue #15), through the CLI against the
sandbox, on SQLite and PostgreSQL.

The demo's book (seed 42) synced and reconciled once. Its card payment ch_3GP5... of 1,096.10
(fee 32.09) is proposed for INV-0033, an invoice of exactly that amount that Xero, Stripe (an
open invoice) and HubSpot (a deal and a CRM invoice) all hold. Matching it in full plans five
writes: the ledger payment, the fee, Stripe's mark-paid and the two CRM updates; matching 500.00
of it plans the ledger payment and the fee only (the invoice stays open).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connector.config import load_config
from connector.reconcile.run import run_reconciliation
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state import reconciliation as stored
from connector.state.store import Store
from connector.state.tables import table
from support.databases import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema
from support.e2e import sync_sandbox, with_credentials

pytestmark = pytest.mark.slow

TODAY = date.today()  # Stripe keeps events 30 days: the book must be dated around now
CHARGE = "ch_3GP5hiGguqm1jdlmpv7vdXi"  # 1,096.10 USD, fee 32.09
INVOICE = "INV-0033"  # owes 1,096.10
UNLIMITED = {
    "[connections.gateway]\n": "requests_per_second = 1000\nendpoint_requests_per_second = 1000\n",
    "[connections.ledger]\n": "calls_per_minute = 100000\n",
    "[connections.crm]\n": "requests_per_10_seconds = 100000\nsearch_requests_per_second = 1000\n",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    postgres_url_or_fail()
    with ExitStack() as stack:
        schema = stack.enter_context(temporary_pg_schema())
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


class Book:
    def __init__(self, directory: Path, sandbox: Sandbox, store: Store, run_cli: Any) -> None:
        self.directory, self.sandbox, self.store, self._run = directory, sandbox, store, run_cli
        self.config_path = directory / "connector.toml"
        text = self.config_path.read_text()
        for section, lines in UNLIMITED.items():
            text = text.replace(section, section + lines)
        self.config_path.write_text(text)

    def call(self, *args: str) -> Any:
        return self._run("--config", str(self.config_path), *args)

    def run(self, *args: str) -> Any:
        result = self.call(*args)
        assert result.exit_code == 0, (args, result.stdout[-2000:], result.stderr[-2000:])
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def match(self, *amount: str) -> str:
        made = self.run("reconcile", "match", CHARGE, INVOICE, *(("--amount", amount[0]) if amount else ()))
        return made.stdout.split()[1].rstrip(":")

    def outbox(self) -> list[dict[str, Any]]:
        return self.json("actions", "list", "--all")["actions"]

    def of_this_payment(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The entries about INV-0033 or the card payment (the writes of the match)."""
        return [
            e
            for e in entries
            if (e["summary"] or "").startswith(f"{INVOICE}:") or CHARGE in json.dumps(e["payload"]) or e["reverse"]
        ]

    def ledger_payments(self) -> list[dict[str, Any]]:
        with self.sandbox.lock:
            payments = list(self.sandbox.state.xero["Payments"].values())
        return [dict(p) for p in payments if CHARGE in str(p.get("Reference") or "")]

    def ledger_due(self) -> Decimal:
        with self.sandbox.lock:
            invoices = list(self.sandbox.state.xero["Invoices"].values())
        [invoice] = [i for i in invoices if i["InvoiceNumber"] == INVOICE]
        return Decimal(str(invoice["AmountDue"]))

    def balance(self) -> Decimal:
        rows = self.json("invoices", "list", "--as-of", TODAY.isoformat())["invoices"]
        [row] = [r for r in rows if r["number"] == INVOICE]
        return Decimal(row["balance"])

    def audit(self, action: str) -> list[dict[str, Any]]:
        log = table("audit_log")
        with self.store.session() as session:
            rows = session.execute(sa.select(log).where(log.c.action == action).order_by(log.c.id)).mappings()
            return [dict(row) for row in rows]

    def applied(self) -> set[str]:
        """The ids of the allocations applied, the ledger's own records aside."""
        with self.store.session() as session:
            return {
                s.allocation.id or ""
                for s in stored.load_allocations(session, status="applied")
                if s.allocation.rule != "ledger_record"
            }


@pytest.fixture
def book(tmp_path, run_cli, database_url) -> Iterator[Book]:
    data = with_credentials(generate(42, "small", today=TODAY).data)
    directory = tmp_path / "book"
    with Sandbox(data, limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, directory, database_url=database_url, full=True)
        assert report.ok, report.as_dict()
        run_reconciliation(load_config(str(directory / "connector.toml")), store)
        try:
            yield Book(directory, sandbox, store, run_cli)
        finally:
            store.close()


def test_unmatch_of_a_match_not_yet_sent_cancels_all_its_writes_and_apply_sends_none(book):
    made = book.match()
    planned = book.of_this_payment(book.json("plan")["pending"])
    assert sorted(e["kind"] for e in planned) == [
        "mark_paid",
        "record_fee",
        "record_payment",
        "update_properties",
        "update_properties",
    ]

    unmatched = book.run("reconcile", "unmatch", made, "--user", "carol")
    assert unmatched.stdout.count("(not sent)") == 5
    states = {e["id"]: e["state"] for e in book.outbox()}
    assert {states[e["id"]] for e in planned} == {"cancelled"}
    cancels = [a for a in book.audit("cancel") if a["actor"] == "carol"]
    assert len(cancels) == 5 and {a["decision"] for a in cancels} == {f"no longer follows from unmatch of {made}"}

    after = book.of_this_payment(book.json("plan")["pending"])
    assert {e["kind"] for e in after} <= {"update_properties"}  # the CRM told what the ledger says
    assert not {e["id"] for e in planned} & {e["id"] for e in after}
    assert all(e["payload"]["properties"].get("payment_status") != "paid" for e in after)
    book.run("apply", "--yes")
    assert book.ledger_payments() == []
    assert book.ledger_due() == Decimal("1096.10") == book.balance()


def test_unmatch_after_the_write_back_plans_reverse_lines_that_delete_the_payment_and_the_fee(book):
    """Needs the Xero adapter's and sandbox's delete_payment / delete_fee."""
    made = book.match("500.00")
    book.run("plan")
    book.run("apply", "--yes")
    [payment] = book.ledger_payments()
    assert book.ledger_due() == Decimal("596.10")

    unmatched = book.run("reconcile", "unmatch", made, "--user", "carol")
    assert "planned reverse: INV-0033: delete payment 500.00 USD" in unmatched.stdout
    shown = book.run("plan").stdout
    reverse_lines = [line for line in shown.splitlines() if "reverse: " in line]
    assert len(reverse_lines) == 2
    assert any("delete_payment" in line for line in reverse_lines)
    assert any("delete_fee" in line and "32.09 USD" in line for line in reverse_lines)
    reversals = [e for e in book.json("plan")["pending"] if e["reverse"]]
    assert {e["kind"] for e in reversals} == {"delete_payment", "delete_fee"}
    deleting = next(e for e in reversals if e["kind"] == "delete_payment")
    assert deleting["target"] == {"system": "ledger", "type": "payment", "id": payment["PaymentID"]}

    book.run("apply", "--yes")
    book.run("sync")
    book.run("reconcile")
    assert book.ledger_due() == Decimal("1096.10") == book.balance()
    assert made not in book.applied()


def test_an_unforced_unmatch_of_a_match_stripe_marked_paid_is_refused_in_one_line(book):
    made = book.match()
    book.run("plan")
    book.run("apply", "--yes")
    refused = book.call("reconcile", "unmatch", made)
    assert refused.exit_code == 2
    message = refused.stderr.strip()
    assert "\n" not in message
    assert "INV-0033 was marked paid in gateway" in message and "--force" in message
    assert "void or refund it in gateway by hand" in message
    assert made in book.applied()  # nothing changed
    assert book.audit("gap") == []


def test_a_forced_unmatch_of_a_marked_paid_match_files_a_task_and_records_a_gap(book):
    made = book.match()
    book.run("plan")
    book.run("apply", "--yes")
    forced = book.run("reconcile", "unmatch", made, "--force", "--user", "carol")
    assert "gap recorded (irreversible_write)" in forced.stdout
    [gap] = book.audit("gap")
    assert gap["actor"] == "carol" and gap["subject_type"] == "invoice"
    inputs = gap["inputs"]
    assert (inputs["gap"], inputs["connection"], inputs["currency"]) == ("irreversible_write", "gateway", "USD")
    assert inputs["amount"] == "1096.10"
    pending = book.json("plan")["pending"]
    [task] = [e for e in pending if e["kind"] == "create_task" and (e["payload"] or {}).get("gap")]
    assert task["connection"] == "crm" and task["payload"]["action"] == inputs["action"]
    assert {e["kind"] for e in pending if e["reverse"]} == {"delete_payment", "delete_fee"}
    assert made not in book.applied()


def test_cancel_of_a_record_payment_takes_back_the_match_and_the_payment_returns_as_a_proposal(book):
    made = book.match("500.00")
    pending = book.of_this_payment(book.json("plan")["pending"])
    [record] = [e for e in pending if e["kind"] == "record_payment"]
    [fee] = [e for e in pending if e["kind"] == "record_fee"]

    cancelled = book.run("actions", "cancel", str(record["id"]), "--user", "dave")
    assert f"took back {made}" in cancelled.stdout
    assert made not in book.applied()
    states = {e["id"]: e["state"] for e in book.outbox()}
    assert (states[record["id"]], states[fee["id"]]) == ("cancelled", "cancelled")
    [taken] = book.audit("cancel_decision")
    assert (taken["actor"], taken["inputs"]["allocation"]) == ("dave", made)

    proposals = book.json("reconcile")["proposals"]
    assert any(CHARGE in [r["id"] for r in p["payment"]["refs"]] for p in proposals)
    book.run("apply", "--yes")
    assert book.ledger_payments() == []


def test_cancel_keep_decision_keeps_the_allocation_and_records_the_gap(book):
    made = book.match("500.00")
    [record] = [e for e in book.of_this_payment(book.json("plan")["pending"]) if e["kind"] == "record_payment"]
    kept = book.run("actions", "cancel", str(record["id"]), "--keep-decision", "--user", "dave")
    assert "gap recorded (unwritten_decision)" in kept.stdout
    assert made in book.applied()
    [gap] = book.audit("gap")
    assert gap["inputs"]["gap"] == "unwritten_decision" and gap["inputs"]["action"] == record["id"]
    assert (gap["inputs"]["amount"], gap["inputs"]["currency"]) == ("500.00", "USD")
    # never planned again: the decision stands, the write stays cancelled
    assert record["id"] not in {e["id"] for e in book.json("plan")["pending"]}


def test_the_automatic_plan_cancels_a_planned_crm_update_that_no_longer_follows(book):
    made = book.match()
    crm = [e for e in book.of_this_payment(book.json("plan")["pending"]) if e["kind"] == "update_properties"]
    assert crm and all('"paid"' in json.dumps(e["payload"]) for e in crm)
    with book.store.session() as session:  # as a reconciliation run would reverse it (a refund)
        stored.delete_allocations(session, [made])
    book.run("plan")
    states = {e["id"]: e for e in book.outbox()}
    assert {states[e["id"]]["state"] for e in crm} == {"cancelled"}
    assert all(states[e["id"]]["last_error"].startswith("no longer follows from ") for e in crm)
    assert {a["actor"] for a in book.audit("cancel")} == {"plan"}
