"""A payment counted once, however it was split (issue #15), end to end against the sandbox.

The demo's book (seed 42) synced and reconciled, then finance's decisions and the write-back
through the CLI: `reconcile match --amount`, `plan`, `apply`, `sync`, `reconcile`. After each
round the connector's balance of every invoice must equal the sandbox ledger's (Xero's
`AmountDue`), each customer's aging the sum of those, the CRM is told nothing the ledger does
not say, and the card payment keeps the amount its gateway charged, however many ledger
payments it became:
- split by hand: a card payment of 1,096.10 as 500.00 to one invoice and 596.10 to another;
- split by a rule: an 8,940.13 charge whose remittance names two invoices;
- an overpayment: 4,103.54 on an invoice of 3,945.71, the rest left as the customer's credit;
- a written-back part being reversed (`delete_payment` queued) no longer counts as the money.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connector.config import load_config
from connector.model import Action, Ref
from connector.reconcile.run import run_reconciliation
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state import outbox
from connector.state.store import Store
from support.databases import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema
from support.e2e import sync_sandbox, with_credentials

pytestmark = pytest.mark.slow

TODAY = date.today()  # Stripe keeps events 30 days: the book must be dated around now
SEED = 42  # the demo's book
UNLIMITED = {
    "[connections.gateway]\n": "requests_per_second = 1000\nendpoint_requests_per_second = 1000\n",
    "[connections.ledger]\n": "calls_per_minute = 100000\n",
    "[connections.crm]\n": "requests_per_10_seconds = 100000\nsearch_requests_per_second = 1000\n",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> Iterator[str | None]:
    """None: a SQLite file in the book's directory; else a private PostgreSQL schema."""
    if request.param == "sqlite":
        yield None
        return
    postgres_url_or_fail()
    with ExitStack() as stack:
        schema = stack.enter_context(temporary_pg_schema())
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


class Book:
    """The demo's book in its own sandbox, synced and reconciled once, run through the CLI."""

    def __init__(self, directory: Path, sandbox: Sandbox, store: Store, run_cli: Any) -> None:
        self.directory, self.sandbox, self.store, self._run = directory, sandbox, store, run_cli
        self.config_path = directory / "connector.toml"
        text = self.config_path.read_text()
        for section, lines in UNLIMITED.items():
            text = text.replace(section, section + lines)
        self.config_path.write_text(text)

    def run(self, *args: str) -> Any:
        result = self._run("--config", str(self.config_path), *args)
        assert result.exit_code == 0, (args, result.stdout[-2000:], result.stderr[-2000:])
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def write_back_and_sync(self) -> None:
        """`plan`, `apply`, `sync`, `reconcile`: what finance runs after a decision."""
        self.run("plan")
        self.run("apply", "--yes")
        self.run("sync")
        self.run("reconcile")

    def sync_everything_again(self) -> None:
        """`sync --full` and `reconcile`: every record read again, the ledger's payments too."""
        self.run("sync", "--full")
        self.run("reconcile")

    # What the ledger holds -------------------------------------------------------------

    def ledger_invoices(self) -> dict[str, dict[str, Any]]:
        """Xero's sales invoices by number, as the sandbox holds them now."""
        with self.sandbox.lock:
            invoices = list(self.sandbox.state.xero["Invoices"].values())
        return {i["InvoiceNumber"]: dict(i) for i in invoices if i.get("Type", "ACCREC") == "ACCREC"}

    def ledger_payments_naming(self, charge: str) -> list[dict[str, Any]]:
        with self.sandbox.lock:
            payments = list(self.sandbox.state.xero["Payments"].values())
        return [dict(p) for p in payments if charge in str(p.get("Reference") or "")]

    # What the connector shows ----------------------------------------------------------

    def balances(self) -> dict[str, Decimal]:
        rows = self.json("invoices", "list", "--as-of", TODAY.isoformat())["invoices"]
        return {r["number"]: Decimal(r["balance"]) for r in rows if r["number"]}

    def payment(self, charge: str) -> dict[str, Any]:
        rows = self.json("payments", "list")["payments"]
        [found] = [r for r in rows if any(ref["id"] == charge for ref in r["refs"])]
        return found

    def assert_agrees_with_the_ledger(self) -> None:
        """Every invoice's balance, each customer's aging, and what is queued to the CRM."""
        ledger = self.ledger_invoices()
        ours = self.balances()
        owed = {n: Decimal(str(i["AmountDue"])) for n, i in ledger.items() if i["Status"] in ("AUTHORISED", "PAID")}
        differ = {n: (ours.get(n), due) for n, due in owed.items() if ours.get(n) != due}
        assert differ == {}, "the connector's balance differs from the ledger's (ours, ledger's)"

        rows = self.json("invoices", "list", "--as-of", TODAY.isoformat())["invoices"]
        expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for row in rows:
            if row["number"] in owed and row["aging_bucket"] is not None and owed[row["number"]] > 0:
                expected[(row["customer"]["name"], row["currency"])] += owed[row["number"]]
        aging = self.json("aging", "--as-of", TODAY.isoformat())
        got = {(r["customer"]["name"], r["currency"]): Decimal(r["total"]) for r in _aging_customers(aging)}
        assert got == dict(expected)

        for action in self.json("plan")["pending"]:
            properties = (action.get("payload") or {}).get("properties") or {}
            if action["kind"] == "update_properties" and "amount_outstanding" in properties:
                number = action["summary"].split(":", 1)[0]
                assert Decimal(properties["amount_outstanding"]) == owed[number], action["summary"]


def _aging_customers(aging: dict[str, Any]) -> list[dict[str, Any]]:
    report = aging
    if "companies" in aging:  # one company's report, whatever the layout
        [report] = list(aging["companies"].values()) if isinstance(aging["companies"], dict) else aging["companies"]
    return report["customers"]


@pytest.fixture
def book(tmp_path, run_cli, database_url) -> Iterator[Book]:
    data = with_credentials(generate(SEED, "small", today=TODAY).data)
    directory = tmp_path / "book"
    with Sandbox(data, limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, directory, database_url=database_url, full=True)
        assert report.ok, report.as_dict()
        run_reconciliation(load_config(str(directory / "connector.toml")), store)
        try:
            yield Book(directory, sandbox, store, run_cli)
        finally:
            store.close()


def test_a_card_payment_split_by_hand_is_counted_once_after_the_write_back(book):
    charge = "ch_3GP5hiGguqm1jdlmpv7vdXi"  # 1,096.10: INV-0033 and INV-0034 each owe exactly that
    assert Decimal(book.payment(charge)["amount"]) == Decimal("1096.10")
    book.run("reconcile", "match", charge, "INV-0033", "--amount", "500.00")
    book.run("reconcile", "match", charge, "INV-0034")
    before = book.balances()
    assert (before["INV-0033"], before["INV-0034"]) == (Decimal("596.10"), Decimal("500.00"))

    book.write_back_and_sync()
    assert sorted(Decimal(str(p["Amount"])) for p in book.ledger_payments_naming(charge)) == [
        Decimal("500.00"),
        Decimal("596.10"),
    ]
    book.assert_agrees_with_the_ledger()
    after = book.balances()
    assert (after["INV-0033"], after["INV-0034"]) == (Decimal("596.10"), Decimal("500.00"))
    payment = book.payment(charge)
    assert (payment["amount"], payment["allocated"], payment["unapplied"]) == ("1096.10", "1096.10", "0.00")

    book.sync_everything_again()  # nothing moves
    assert book.balances() == after
    assert book.payment(charge) == payment


def test_a_charge_a_rule_split_over_two_invoices_keeps_its_amount_after_the_write_back(book):
    charge = "ch_3jdoPn4uHAicCSBE9lARQIE"  # 8,940.13; its remittance names INV-0031 and INV-0032
    payment = book.payment(charge)
    assert (payment["amount"], payment["allocated"]) == ("8940.13", "8940.13")

    book.write_back_and_sync()
    assert sorted(Decimal(str(p["Amount"])) for p in book.ledger_payments_naming(charge)) == [
        Decimal("2675.73"),
        Decimal("6264.40"),
    ]
    book.assert_agrees_with_the_ledger()
    payment = book.payment(charge)  # one payment, the charge's amount, not one ledger part of it
    assert (payment["amount"], payment["allocated"], payment["unapplied"]) == ("8940.13", "8940.13", "0.00")
    assert {"gateway", "ledger"} <= set(payment["systems"])

    book.sync_everything_again()
    book.assert_agrees_with_the_ledger()
    assert book.payment(charge) == payment


def test_an_overpayment_keeps_its_unapplied_credit_after_the_write_back(book):
    charge = "ch_3esAKaBf6UnwXTjp7gSS4Nr"  # 4,103.54 on INV-0012 of 3,945.71
    payment = book.payment(charge)
    assert (payment["amount"], payment["allocated"], payment["unapplied"]) == ("4103.54", "3945.71", "157.83")

    book.write_back_and_sync()
    assert [Decimal(str(p["Amount"])) for p in book.ledger_payments_naming(charge)] == [Decimal("3945.71")]
    book.assert_agrees_with_the_ledger()
    payment = book.payment(charge)
    assert (payment["amount"], payment["allocated"], payment["unapplied"]) == ("4103.54", "3945.71", "157.83")
    assert book.balances()["INV-0012"] == Decimal("0.00")

    book.sync_everything_again()
    book.assert_agrees_with_the_ledger()
    assert book.payment(charge) == payment


def test_a_ledger_payment_being_reversed_no_longer_pays_the_charges_invoice(book):
    """While a `delete_payment` of a written-back part is planned, in flight or done, the part
    is not counted as the charge's money; a cancelled reversal gives it back."""
    charge = "ch_3GP5hiGguqm1jdlmpv7vdXi"
    book.run("reconcile", "match", charge, "INV-0033", "--amount", "500.00")
    book.run("reconcile", "match", charge, "INV-0034")
    book.write_back_and_sync()
    [part] = [p for p in book.ledger_payments_naming(charge) if Decimal(str(p["Amount"])) == Decimal("500.00")]
    reversal = Action(
        connection="ledger",
        kind="delete_payment",
        target=Ref(system="ledger", object_type="payment", remote_id=part["PaymentID"]),
        payload={"reverses": 0, "amount": "500.00", "currency": "USD"},
    )
    with book.store.session() as session:
        outbox.add_planned(session, [(reversal, "payment", "", "reverse: the 500.00 on INV-0033")])

    book.run("reconcile")
    payment = book.payment(charge)
    assert (payment["allocated"], payment["unapplied"]) == ("596.10", "500.00")
    book.run("reconcile")  # not made again by the next run
    assert book.payment(charge)["allocated"] == "596.10"

    with book.store.session() as session:
        [entry] = outbox.entries(session, kinds=["delete_payment"])
        outbox.set_state(session, entry.id, "cancelled", from_states=("planned",))
    book.run("reconcile")
    assert book.payment(charge)["allocated"] == "1096.10"
