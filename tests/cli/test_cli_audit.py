"""`connector audit list`: every entry of the company's book, in words, filtered, as a table,
JSON or a CSV that a spreadsheet cannot run."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from connector.model import Customer, Invoice, Payment, Ref
from connector.money import Money
from connector.state.store import open_store

CONFIG = """
[connections.ledger]
provider = "xero"
base_url = "http://127.0.0.1:9/xero"
token_url = "http://127.0.0.1:9/xero/oauth/token"
tenant_id = "00000000-0000-4000-8000-000000000001"
client_id = "audit"
client_secret = "audit-secret"
refresh_token = "audit-refresh"
"""


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    directory = tmp_path_factory.mktemp("audit")
    config = directory / "connector.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{directory / "state.db"}"\n' + CONFIG)
    store = open_store(f"sqlite:///{directory / 'state.db'}")
    acme = Customer(id="acme", name="Acme Trading", refs=[Ref(system="ledger", object_type="customer", remote_id="C")])
    store.store_page("ledger", "contacts", "customer", [acme], None)
    usd = Money.of("120.00", "USD")
    zero = Money.zero("USD")
    inv = Invoice(
        id="inv15",
        number="INV-0015",
        customer_id="acme",
        currency="USD",
        issue_date=date(2024, 9, 1),
        due_date=date(2024, 9, 30),
        subtotal=usd,
        tax=zero,
        total=usd,
        amount_paid=zero,
        amount_credited=zero,
        refs=[Ref(system="ledger", object_type="invoice", remote_id="L-15")],
    )
    store.store_page("ledger", "invoices", "invoice", [inv], None)
    pay = Payment(
        id="pay9",
        amount=usd,
        received_at=datetime(2024, 9, 20, 9, tzinfo=UTC),
        customer_id="acme",
        refs=[Ref(system="ledger", object_type="payment", remote_id="P-9")],
    )
    store.store_page("ledger", "payments", "payment", [pay], None)
    store.audit("remittance_number", "allocate", "payment", "pay9", {"invoice": "inv15", "amount": "120.00"}, "ok")
    store.audit("alice", "match", "payment", "pay9", {"invoice": "inv15", "amount": "120.00"}, "matched by hand")
    store.audit("Bob", "reject", "payment", "pay9", {"proposal": "pr-1"}, '=HYPERLINK("http://evil","x")')
    store.audit("alice", "pause", "customer", "acme", None, "on holiday")
    store.audit("reconcile", "reverse", "allocation", "al-gone", {"payment": "pay9", "invoice": "inv15"}, "undone")
    yield str(config)
    store.close()


def run(run_cli, config, *args):
    return run_cli("--config", config, "audit", "list", *args)


def test_every_entry_is_listed_with_the_record_named_in_words(run_cli, book):
    result = run(run_cli, book, "--json")
    assert result.exit_code == 0, result.stderr
    entries = json.loads(result.stdout)["entries"]
    assert [e["action"] for e in entries] == ["allocate", "match", "reject", "pause", "reverse"]
    match = entries[1]
    assert match["user"] == "alice" and match["reason"] == "matched by hand"
    assert match["about"] == "payment of 120.00 USD from Acme Trading on 2024-09-20 -> invoice INV-0015 (Acme Trading)"
    assert match["subject"] == {"type": "payment", "id": "pay9"}
    assert entries[3]["about"] == "customer Acme Trading"
    assert entries[4]["about"] == (
        "allocation of payment of 120.00 USD from Acme Trading on 2024-09-20 to invoice INV-0015 (Acme Trading)"
    )
    assert all("inv15" not in e["about"] and "acme" not in e["about"] for e in entries)


def test_filters_by_user_action_and_day(run_cli, book):
    by_user = json.loads(run(run_cli, book, "--user", "ALICE", "--json").stdout)["entries"]
    assert [e["action"] for e in by_user] == ["match", "pause"]
    by_action = json.loads(run(run_cli, book, "--action", "reject", "--action", "pause", "--json").stdout)["entries"]
    assert [e["action"] for e in by_action] == ["reject", "pause"]
    today = datetime.now(UTC).date()
    assert len(json.loads(run(run_cli, book, "--since", today.isoformat(), "--json").stdout)["entries"]) == 5
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert json.loads(run(run_cli, book, "--since", tomorrow, "--json").stdout)["entries"] == []


def test_the_table_says_when_nothing_matches_and_which_actions_exist(run_cli, book):
    result = run(run_cli, book, "--action", "acept")
    assert result.exit_code == 0
    assert "no audit entries match (actions recorded in this book: allocate, match, pause, reject, reverse)" in (
        result.stdout
    )
    table = run(run_cli, book, "--user", "bob")
    assert table.stdout.splitlines()[0].split() == ["at", "user", "action", "about", "reason"]
    assert "1 entry" in table.stdout


def test_the_csv_neutralises_what_a_user_wrote_and_can_carry_a_bom(run_cli, book):
    result = run(run_cli, book, "--action", "reject", "--csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["seq", "at", "user", "action", "subject_type", "subject_id", "about", "reason"]
    assert rows[1][7] == '\'=HYPERLINK("http://evil","x")'
    excel = run(run_cli, book, "--csv", "--excel")
    assert excel.stdout.startswith("\ufeff") and "\r\n" in excel.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "0001-01-01"), "--since: 0001-01-01 is out of range"),
        (("--since", "٢٠٢٤-٠٩-٠١"), "is not a date"),
        (("--since", "yesterday"), "is not a date"),
        (("--json", "--csv"), "give --json or --csv, not both"),
        (("--excel",), "--excel goes with --csv"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(run_cli, book, args, message):
    result = run(run_cli, book, *args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
