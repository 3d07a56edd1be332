"""`connector reconcile match --amount A`: an amount that no Money can hold, or that is not a
finite number, is one line on stderr and exit 2, never a traceback or a Python class name; and
nothing is matched."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from connector.model import Customer, Invoice, Payment, Ref
from connector.money import Money
from connector.state.store import open_store


@pytest.fixture
def run(tmp_path, run_cli):
    """Acme owes INV-1 100.00 USD and paid 60.00 USD by card (ch_1)."""
    config = tmp_path / "connector.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "state.db"}"\n')
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    usd = lambda value: Money.of(value, "USD")  # noqa: E731
    store.store_page(
        "ledger",
        "contacts",
        "customer",
        [Customer(id="acme", name="Acme", refs=[Ref(system="ledger", object_type="customer", remote_id="acme")])],
        None,
        rank=3,
    )
    invoice = Invoice(
        id="inv1",
        number="INV-1",
        customer_id="acme",
        currency="USD",
        issue_date=date(2024, 4, 1),
        due_date=date(2024, 5, 1),
        subtotal=usd("100.00"),
        tax=usd("0"),
        total=usd("100.00"),
        amount_paid=usd("0"),
        amount_credited=usd("0"),
        refs=[Ref(system="ledger", object_type="invoice", remote_id="L-INV-1")],
    )
    store.store_page("ledger", "invoices", "invoice", [invoice], None, rank=3)
    payment = Payment(
        id="pay1",
        amount=usd("60.00"),
        received_at=datetime(2024, 6, 10, 12, tzinfo=UTC),
        method="card",
        customer_id="acme",
        refs=[Ref(system="gateway", object_type="payment", remote_id="ch_1")],
    )
    store.store_page("gateway", "charges", "payment", [payment], None, rank=1)
    store.close()
    return lambda *args: run_cli("--config", str(config), *args)


@pytest.mark.parametrize(
    "amount, message",
    [
        ("1e400", "error: --amount 1e400 is too large for an amount in USD"),
        ("1e30", "error: --amount 1e30 is too large for an amount in USD"),
        ("123456789012345678901234567890", "error: --amount 123456789012345678901234567890 is too large"),
        ("1.00000000000000000000000000001", "has more decimal places than USD allows (2)"),
        ("NaN", "error: --amount: not a finite amount: 'NaN'"),
        ("Infinity", "error: --amount: not a finite amount: 'Infinity'"),
        ("-Infinity", "error: --amount: not a finite amount: '-Infinity'"),
    ],
)
def test_an_amount_no_money_can_hold_is_a_one_line_usage_error(run, amount, message):
    result = run("reconcile", "match", "ch_1", "INV-1", "--amount", amount)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and "class" not in result.stderr and "decimal." not in result.stderr
    applied = json.loads(run("reconcile", "--json").stdout)["applied"]
    assert not [a for a in applied if a["rule"] == "manual"]


def test_an_amount_it_can_hold_is_matched(run):
    result = run("reconcile", "match", "ch_1", "INV-1", "--amount", "60.000")
    assert result.exit_code == 0, result.stderr
    assert "60.00 USD by hand" in result.stdout
