"""A sandboxed book for finance's decisions end to end (tests/e2e/test_e2e_decisions*.py).

`decisions_book(database, directory, run_cli)` serves a generated book (seed 42, small: the
demo's) from the sandbox, runs the product loop once (sync, reconcile, plan, apply) and syncs
once more, on SQLite or on a private PostgreSQL schema; then the test drives the CLI. The checks
read the sandbox's own state: each Xero invoice's AmountDue against the connector's balance, and
each Xero payment not deleted against a standing allocation. Finance's own writes by hand (a
payment recorded in Xero, an invoice marked paid in Stripe) go to the sandbox over HTTP with a
person's own credentials, never the connector's.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest.mock import patch

import httpx
from sqlalchemy.engine import make_url

from connector import pipeline
from connector.config import ENV_DATABASE_URL, load_config
from connector.demo import DEMO_CREDENTIALS
from connector.money import currency_exponent
from connector.reconcile import drift_book
from connector.reconcile.drift_book import drift_of
from connector.reconcile.run import run_reconciliation
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state.store import open_store
from connector.writeback import apply as apply_module
from connector.writeback import settle as settle_module
from connector.writeback.apply import queue_writes
from support.customers_in_parts import same_reminders_a_few_customers_at_a_time
from support.databases import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema
from support.e2e import sync_sandbox, with_credentials
from support.plan_in_parts import (
    DecisionChecks,
    checked_decision,
    plan_settled,
    same_writes_a_few_receivables_at_a_time,
)

SEED = 42
# The commands that settle a finance decision (each checked: `DecisionsBook.run`).
DECIDING = {
    *(("reconcile", verb) for verb in ("accept", "reject", "reopen", "unreject", "review", "match", "unmatch")),
    ("actions", "cancel"),
}
# A person's own session in the sandbox's Xero (the connector signs in with its own tokens).
BY_HAND_TOKEN = "finance-at-the-keyboard"
BY_HAND_STRIPE_KEY = "sk_test_finance_at_the_keyboard"


@dataclass
class DecisionsBook:
    sandbox: Sandbox
    config_path: Path
    run_cli: Callable[..., Any]
    # receivables a part of the plan checked before each `plan` (against the whole book's):
    # the fewer, the more neighbourhoods are cut; a long run may take larger parts
    plan_part: int = 2
    decision_checks: DecisionChecks = field(default_factory=DecisionChecks)
    # every how many decisions one is compared (`checked_decision`; on SQLite also made on a
    # copy the plan has settled first): a long random run compares some, not all
    check_decisions_every: int = 1
    # before every how many plans the plan is compared (`same_plan_a_few_receivables_at_a_time`;
    # the first always): a long random run compares some, not all
    check_plans_every: int = 1
    # plans checked before each `plan`, and the customers their plans of what changed left
    # unplanned, summed: a run can insist that the comparison did leave some unplanned
    plans_checked: int = 0
    customers_left_unplanned: int = 0
    _decided: int = 0
    _planned: int = 0

    # The CLI ----------------------------------------------------------------------------------

    def run(self, *args: str) -> Any:
        """The CLI on this book. Before a plan (one in `check_plans_every`), the plan made a
        few receivables at a time is checked to be the one made of the whole book at once
        (neither is kept). A decision
        is settled on its part of the book and, to compare, on the whole book
        (`checked_decision`; counted in `decision_checks`)."""
        if args and args[0] == "plan":
            self._planned += 1
            if (self._planned - 1) % self.check_plans_every == 0:
                self.same_plan_a_few_receivables_at_a_time()
        if tuple(args[:2]) in DECIDING:
            self._decided += 1
            if (self._decided - 1) % self.check_decisions_every == 0:
                self.decide_on_a_planned_copy(*args)
                return self._checked(self.plan_settled(), "--config", str(self.config_path), *args)
            return self.run_cli("--config", str(self.config_path), *args)
        return self._checked(None, "--config", str(self.config_path), *args)

    def _checked(self, settled: bool | None, *args: str) -> Any:
        """The CLI, each decision it settles compared (`checked_decision`) knowing whether the
        plan had settled the book before it (`settled`; None for a command that decides
        nothing)."""
        checked = checked_decision(lambda: settled, self.decision_checks)
        with (
            patch.object(settle_module, "settle_decision", checked),
            patch.object(apply_module, "settle_decision", checked),
        ):
            result = self.run_cli(*args)
        assert self.decision_checks.failed is None, self.decision_checks.failed
        return result

    def decide_on_a_planned_copy(self, *args: str) -> None:
        """On SQLite: the same decision on a copy of the book that the plan has settled first,
        where its part of the book and the whole book must settle it alike in every respect
        (the book itself often has writes still to plan when finance decides)."""
        config = load_config(str(self.config_path))
        url = make_url(config.database_url)
        if url.get_backend_name() != "sqlite" or not url.database:
            return
        copy = Path(url.database).with_name("planned-copy.db")
        copy.unlink(missing_ok=True)
        with closing(sqlite3.connect(url.database)) as source, closing(sqlite3.connect(copy)) as target:
            source.backup(target)
        with patch.dict(os.environ, {ENV_DATABASE_URL: f"sqlite:///{copy}"}):
            planned = load_config(str(self.config_path))
            store = open_store(planned.database_url)
            try:
                for _ in range(3):  # a plan's own reversals can make one more follow
                    if plan_settled(planned, store, date.today()):
                        break
                    queue_writes(planned, store, today=date.today())
                assert plan_settled(planned, store, date.today()), "the plan does not settle the copy"
            finally:
                store.close()
            self._checked(True, "--config", str(self.config_path), *args)
        copy.unlink()

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.exit_code == 0, (args, result.stdout[-3000:], result.stderr)
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def cycle(self, *, expect_drift: bool = False) -> None:
        """plan -> apply -> sync -> reconcile."""
        self.ok("plan")
        applied = self.run("apply", "--yes")
        assert applied.exit_code == 0, applied.stdout + applied.stderr
        self.ok("sync")
        self.ok("reconcile")
        if not expect_drift:
            self.drift(expect=0)

    def cycle_and_check(self) -> None:
        self.cycle()
        self.check()

    def reconcile_and_check(self) -> None:
        self.ok("reconcile")
        self.check()

    # What the connector holds ------------------------------------------------------------------

    def reconcile_report(self) -> dict[str, Any]:
        return self.json("reconcile", "-a")

    def applied(self) -> list[dict[str, Any]]:
        return list(self.reconcile_report()["applied"])

    def applied_allocation(self, payment_id: str, *, missing_ok: bool = False) -> str | None:
        found = [a["id"] for a in self.applied() if a["payment"]["id"] == payment_id and a["rule"] != "ledger_record"]
        if not found and missing_ok:
            return None
        assert found, f"no allocation of {payment_id}"
        return found[0]

    def proposed_payments(self) -> set[str]:
        return {p["payment"]["id"] for p in self.reconcile_report()["proposals"]}

    def proposal_with_two_candidates(self) -> dict[str, Any]:
        for proposal in self.reconcile_report()["proposals"]:
            if len(proposal["candidates"]) >= 2:
                return dict(proposal)
        raise AssertionError("the book has no proposal with two candidates")

    @staticmethod
    def allocation_of(made: str) -> str:
        """The allocation id `reconcile match` printed (`matched al-...: ...`)."""
        return next(word.rstrip(":") for word in made.split() if word.startswith("al-"))

    def invoices(self) -> list[dict[str, Any]]:
        return list(self.json("invoices", "list")["invoices"])

    def payments(self) -> list[dict[str, Any]]:
        return list(self.json("payments", "list")["payments"])

    def charge_of(self, payment_id: str) -> str:
        payment = next(p for p in self.payments() if p["id"] == payment_id)
        return next(r["id"] for r in payment["refs"] if r["system"] == "gateway")

    def amount_of(self, payment_id: str) -> Decimal:
        return Decimal(next(p for p in self.payments() if p["id"] == payment_id)["unapplied"])

    def exponent(self, payment_id: str) -> int:
        return currency_exponent(next(p for p in self.payments() if p["id"] == payment_id)["currency"])

    def open_pair(
        self, *, leaves_open: bool = False, marks_paid: bool = False, another_customer: bool = False
    ) -> tuple[str, str]:
        """A card payment with money left to apply (none of it in the ledger yet) and an open
        ledger invoice of its currency (`match` applies as much as both allow).

        `leaves_open`: an invoice owing more than the payment has left, so the match leaves it
        open and no gateway invoice is marked paid (a write Stripe cannot take back);
        `marks_paid`: an invoice the gateway also bills that the payment pays off, so the
        write-back marks it paid there; `another_customer`: an invoice of another customer than
        the payment's (one customer paying another's invoice)."""
        invoices = [
            i for i in self.invoices() if i["status"] in ("open", "partially_paid") and "ledger" in i["systems"]
        ]
        for payment, left in self._card_payments_unrecorded():
            for invoice in invoices:
                if invoice["currency"] != payment["currency"]:
                    continue
                if another_customer and (invoice["customer"] or {}).get("id") == (payment["customer"] or {}).get("id"):
                    continue
                if leaves_open and Decimal(invoice["balance"]) <= left:
                    continue
                if marks_paid and (
                    Decimal(invoice["balance"]) > left or self.gateway_status(invoice["number"]) != "open"
                ):
                    continue
                return payment["id"], invoice["number"]
        raise AssertionError("no card payment with money left and an open invoice to take it")

    def half_pair(self) -> tuple[str, str, Decimal]:
        """A card payment with nothing in the ledger yet, an open invoice the gateway also
        bills, and a part of the payment that leaves the invoice open but, counted twice,
        would pay it off."""
        invoices = [
            i
            for i in self.invoices()
            if i["status"] == "open" and "ledger" in i["systems"] and "gateway" in i["systems"]
        ]
        for payment, left in self._card_payments_unrecorded():
            for invoice in invoices:
                balance = Decimal(invoice["balance"])
                part = min(left, balance - Decimal(1) / 10 ** currency_exponent(payment["currency"]))
                if invoice["currency"] != payment["currency"] or not 0 < part < balance <= 2 * part:
                    continue
                if self.gateway_status(invoice["number"]) == "open":
                    return payment["id"], invoice["number"], part
        raise AssertionError("no card payment worth between half and all of an open gateway invoice")

    def _card_payments_unrecorded(self) -> Iterator[tuple[dict[str, Any], Decimal]]:
        """Each card payment with money left to apply and none of it in the ledger yet, with
        what it has left."""
        for payment in self.payments():
            if payment["status"] != "succeeded" or "gateway" not in payment["systems"]:
                continue
            left = Decimal(payment["unapplied"])
            if left > 0 and not self.ledger_payments_of(payment["id"]):
                yield payment, left

    def gateway_status(self, number: str) -> str | None:
        """The status of the gateway's invoice of `number` in the sandbox's Stripe, if it bills it."""
        invoice = next(i for i in self.invoices() if i["number"] == number)
        ids = [r["id"] for r in invoice["refs"] if r["system"] == "gateway" and r["type"] == "invoice"]
        if not ids:
            return None
        with self.sandbox.lock:
            return str(self.sandbox.faces["stripe"].objects["invoices"][ids[0]]["status"])

    def split_candidates(self) -> tuple[str, str, str]:
        """A card payment with money left and two open invoices of its currency, each with a
        balance of at least half of it."""
        invoices = [
            i for i in self.invoices() if i["status"] in ("open", "partially_paid") and "ledger" in i["systems"]
        ]
        for payment in self.payments():
            left = Decimal(payment["unapplied"])
            if payment["status"] != "succeeded" or "gateway" not in payment["systems"] or left <= 0:
                continue
            if self.ledger_payments_of(payment["id"]):
                continue
            fit = [i for i in invoices if i["currency"] == payment["currency"] and Decimal(i["balance"]) >= left]
            if len(fit) >= 2:
                return payment["id"], fit[0]["number"], fit[1]["number"]
        raise AssertionError("no card payment to split over two open invoices")

    def pending_action(self, kind: str, payment_id: str) -> int:
        charge = self.charge_of(payment_id)
        for entry in self.json("actions", "list")["actions"]:
            if entry["kind"] == kind and (entry.get("payload") or {}).get("reference") in (charge, payment_id):
                return int(entry["id"])
        raise AssertionError(f"no pending {kind} of {payment_id}")

    def drift_report(self) -> dict[str, Any]:
        """`connector drift --json`, whatever it finds."""
        report = json.loads(self.run("drift", "--json").stdout)
        self.same_drift_a_record_at_a_time(report)
        return dict(report)

    def drift(self, *, expect: int) -> dict[str, Any]:
        result = self.run("drift", "--json")
        report = json.loads(result.stdout)
        self.same_drift_a_record_at_a_time(report)
        assert len(report["records"]) == expect and not report["dangling_refs"], json.dumps(report, indent=1)[:6000]
        assert result.exit_code == (1 if expect else 0)
        return dict(report)

    def same_drift_a_record_at_a_time(self, report: dict[str, Any]) -> None:
        """The drift the CLI printed (its batches hold the whole of this small book at once) is
        the one read a record at a time: each invoice and payment in a batch of its own, with
        only its own neighbourhood; and the one read with every view whole (the report reads
        only `VIEW_FIELDS` of each, extracted by the database). And what the reminders plan
        reads of a few customers at a time is what the whole book says of them."""
        config = load_config(str(self.config_path))
        store = open_store(config.database_url)
        try:
            alone = json.loads(json.dumps(drift_of(config, store, date.today(), batch=1), default=str))
            assert alone == report
            with patch.object(drift_book, "VIEW_FIELDS", None):
                whole = json.loads(json.dumps(drift_of(config, store, date.today()), default=str))
            assert whole == report
            same_reminders_a_few_customers_at_a_time(config, store, date.today())
        finally:
            store.close()

    def plan_settled(self) -> bool:
        config = load_config(str(self.config_path))
        store = open_store(config.database_url)
        try:
            return plan_settled(config, store, date.today())
        finally:
            store.close()

    def same_plan_a_few_receivables_at_a_time(self) -> None:
        config = load_config(str(self.config_path))
        store = open_store(config.database_url)
        try:
            _, unchanged = same_writes_a_few_receivables_at_a_time(config, store, date.today(), self.plan_part)
            self.plans_checked += 1
            self.customers_left_unplanned += unchanged
        finally:
            store.close()

    # What the sandbox ledger holds -------------------------------------------------------------

    def xero(self) -> dict[str, dict[str, dict[str, Any]]]:
        with self.sandbox.lock:
            return json.loads(json.dumps(self.sandbox.faces["xero"].objects, default=str))

    def ledger_payments_of(self, payment_id: str) -> list[dict[str, Any]]:
        """The Xero payments (not deleted) that name the payment's charge."""
        charge = self.charge_of(payment_id)
        return [
            p for p in self.xero()["Payments"].values() if p.get("Reference") == charge and p.get("Status") != "DELETED"
        ]

    def ledger_fees_of(self, payment_id: str) -> list[dict[str, Any]]:
        """The Xero bank transactions (a fee booked, not deleted) that name the payment's charge."""
        charge = self.charge_of(payment_id)
        return [
            t
            for t in self.xero()["BankTransactions"].values()
            if t.get("Reference") == charge and t.get("Status") not in ("DELETED", "VOIDED")
        ]

    def record_by_hand(self, payment_id: str, number: str, amount: Decimal) -> None:
        """Finance records the payment in Xero itself, as a person would (PUT /Payments with the
        charge as its reference, to the clearing account card money goes to)."""
        invoice = next(i for i in self.invoices() if i["number"] == number)
        payment = next(p for p in self.payments() if p["id"] == payment_id)
        [ledger_id] = [r["id"] for r in invoice["refs"] if r["system"] == "ledger" and r["type"] == "invoice"]
        body = {
            "Payments": [
                {
                    "Invoice": {"InvoiceID": ledger_id},
                    "Account": {"Code": "615"},
                    "Amount": str(amount),
                    "Date": payment["received_at"][:10],
                    "Reference": self.charge_of(payment_id),
                }
            ]
        }
        answer = httpx.put(
            f"{self.sandbox.url('xero')}/Payments",
            json=body,
            headers={
                "Authorization": f"Bearer {BY_HAND_TOKEN}",
                "xero-tenant-id": DEMO_CREDENTIALS["xero"]["tenant_ids"][0],
            },
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

    def mark_paid_by_hand(self, number: str) -> None:
        """Finance marks the gateway's invoice paid out of band itself, in Stripe's dashboard."""
        invoice = next(i for i in self.invoices() if i["number"] == number)
        [stripe_id] = [r["id"] for r in invoice["refs"] if r["system"] == "gateway" and r["type"] == "invoice"]
        answer = httpx.post(
            f"{self.sandbox.url('stripe')}/v1/invoices/{stripe_id}/pay",
            data={"paid_out_of_band": "true"},
            headers={"Authorization": f"Bearer {BY_HAND_STRIPE_KEY}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

    def check(self) -> None:
        """Every invoice's balance equals the ledger's AmountDue, and every Xero payment the
        connector wrote (its reference names a charge) has an allocation standing behind it."""
        xero = self.xero()
        wrong = []
        for invoice in self.invoices():
            ledger = [r["id"] for r in invoice["refs"] if r["system"] == "ledger" and r["type"] == "invoice"]
            if not ledger or invoice["status"] in ("void", "draft"):
                continue
            due = Decimal(str(xero["Invoices"][ledger[0]]["AmountDue"]))
            if due != Decimal(invoice["balance"]):
                wrong.append((invoice["number"], invoice["balance"], str(due)))
        assert wrong == [], f"connector balance != ledger AmountDue: {wrong}"
        standing = {
            (ref["id"], inv["id"])
            for a in self.applied()
            for ref in a["payment"]["refs"]
            if ref["system"] == "gateway"
            for inv in a["invoice"]["refs"]
            if inv["system"] == "ledger"
        }
        behind = [
            (p["Reference"], p["Invoice"]["InvoiceID"], str(p["Amount"]))
            for p in xero["Payments"].values()
            if str(p.get("Reference", "")).startswith(("ch_", "py_")) and p.get("Status") != "DELETED"
        ]
        lacking = [b for b in behind if (b[0], b[1]) not in standing]
        assert lacking == [], f"ledger payments no decision stands behind: {lacking}"


@contextmanager
def decisions_book(database: str, directory: Path, run_cli: Callable[..., Any]) -> Iterator[DecisionsBook]:
    with ExitStack() as stack:
        url = None
        if database == "postgres":
            postgres_url_or_fail()
            schema = stack.enter_context(temporary_pg_schema())
            url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        data = with_credentials(generate(SEED, "small", today=date.today()).data)
        data["credentials"] = {
            **data["credentials"],
            "stripe": [*DEMO_CREDENTIALS["stripe"], BY_HAND_STRIPE_KEY],
            "xero": {**DEMO_CREDENTIALS["xero"], "access_tokens": [BY_HAND_TOKEN]},
        }
        sandbox = stack.enter_context(Sandbox(data, limits="off"))
        # The sandbox serves without limits: Xero's 60 calls a minute would make the test wait
        # on PostgreSQL, which counts that minute across the CLI's commands (rate limits are
        # tested in test_e2e_rate_budget.py)
        limits = {"ledger": {"calls_per_minute": 6000}}
        store, report = sync_sandbox(sandbox, directory, full=True, database_url=url, settings=limits)
        assert report.ok, report.as_dict()
        config = load_config(str(directory / "connector.toml"))
        run_reconciliation(config, store)
        pipeline.plan(config, store)
        pipeline.apply(config, store)
        pipeline.sync(config, store)
        run_reconciliation(config, store)
        store.close()
        yield DecisionsBook(sandbox, directory / "connector.toml", run_cli)
