"""`connector reconcile` as finance uses it, on a small hand-made book: matching by hand with
exact amounts, the `[reconcile]` settings, the `--json` shape and the history in `explain`.

Book (no connections configured, so every payment goes through the matcher):
- Acme (USD): INV-1 1000.00 due 2024-05-01, INV-2 250.00 due 2024-06-01; card payments ch_1
  250.00 (no remittance: INV-2 by exact amount) and ch_2 400.00 (no remittance, no amount
  match: a partial payment of the oldest open invoice, for finance to confirm).
- Kuwait Co (KWD): INV-K 10.000 and a card payment ch_k of 5.000.
- Tokyo KK (JPY): INV-J 10000 and a card payment ch_j of 5000.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from connector.model import Customer, Invoice, Payment, Ref
from connector.money import Money
from connector.state.store import open_store


def _invoice(id_, number, customer, total, currency, due):
    def money(v):
        return Money.of(v, currency)

    return Invoice(
        id=id_,
        number=number,
        customer_id=customer,
        currency=currency,
        issue_date=date(2024, 4, 1),
        due_date=due,
        subtotal=money(total),
        tax=money("0"),
        total=money(total),
        amount_paid=money("0"),
        amount_credited=money("0"),
        refs=[Ref(system="ledger", object_type="invoice", remote_id=f"L-{number}")],
    )


def _payment(id_, charge, customer, amount, currency, day):
    return Payment(
        id=id_,
        amount=Money.of(amount, currency),
        received_at=datetime(2024, 6, day, 12, tzinfo=UTC),
        method="card",
        customer_id=customer,
        refs=[Ref(system="gateway", object_type="payment", remote_id=charge)],
    )


@pytest.fixture
def book(tmp_path, run_cli):
    """(run, write_settings): run the CLI against a fresh copy of the book; write_settings puts a
    `[reconcile]` table into its connector.toml."""
    directory = tmp_path / "book"
    directory.mkdir()
    config = directory / "connector.toml"
    database = f'[database]\nurl = "sqlite:///{directory / "state.db"}"\n'
    config.write_text(database)
    store = open_store(f"sqlite:///{directory / 'state.db'}")
    store.store_page(
        "ledger",
        "contacts",
        "customer",
        [
            Customer(id=c, name=name, refs=[Ref(system="ledger", object_type="customer", remote_id=c)])
            for c, name in (("acme", "Acme"), ("kw", "Kuwait Co"), ("jp", "Tokyo KK"))
        ],
        None,
        rank=3,
    )
    store.store_page(
        "ledger",
        "invoices",
        "invoice",
        [
            _invoice("inv1", "INV-1", "acme", "1000.00", "USD", date(2024, 5, 1)),
            _invoice("inv2", "INV-2", "acme", "250.00", "USD", date(2024, 6, 1)),
            _invoice("invk", "INV-K", "kw", "10.000", "KWD", date(2024, 5, 1)),
            _invoice("invj", "INV-J", "jp", "10000", "JPY", date(2024, 5, 1)),
        ],
        None,
        rank=3,
    )
    store.store_page(
        "gateway",
        "charges",
        "payment",
        [
            _payment("pay1", "ch_1", "acme", "250.00", "USD", 10),
            _payment("pay2", "ch_2", "acme", "400.00", "USD", 11),
            _payment("payk", "ch_k", "kw", "5.000", "KWD", 10),
            _payment("payj", "ch_j", "jp", "5000", "JPY", 10),
        ],
        None,
        rank=1,
    )
    store.close()

    def run(*args):
        return run_cli("--config", str(config), *args)

    def write_settings(table):
        config.write_text(database + "\n[reconcile]\n" + table)

    return run, write_settings


def report(run):
    result = run("reconcile", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


# Matching by hand: the amount is exact or refused --------------------------------------------


@pytest.mark.parametrize(
    "payment, invoice, amount, message",
    [
        ("ch_1", "INV-1", "1.234", "--amount 1.234 has more decimal places than USD allows (2)"),
        ("ch_j", "INV-J", "10.5", "--amount 10.5 has more decimal places than JPY allows (0)"),
        ("ch_k", "INV-K", "1.2345", "--amount 1.2345 has more decimal places than KWD allows (3)"),
        ("ch_1", "INV-1", "-5", "--amount must be positive"),
        ("ch_1", "INV-1", "0", "--amount must be positive"),
        ("ch_1", "INV-1", "0.00", "--amount must be positive"),
        ("ch_1", "INV-1", "ten", "--amount: not a number"),
    ],
)
def test_a_manual_match_refuses_an_amount_it_would_have_to_round_or_that_is_not_positive(
    book, payment, invoice, amount, message
):
    run, _ = book
    result = run("reconcile", "match", payment, invoice, "--amount", amount)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not [a for a in report(run)["applied"] if a["rule"] == "manual"]


@pytest.mark.parametrize(
    "payment, invoice, amount, applied",
    [("ch_1", "INV-1", "1.230", "1.23"), ("ch_k", "INV-K", "1.234", "1.234"), ("ch_j", "INV-J", "100", "100")],
)
def test_a_manual_match_applies_exactly_the_amount_given(book, payment, invoice, amount, applied):
    run, _ = book
    result = run("reconcile", "match", payment, invoice, "--amount", amount)
    assert result.exit_code == 0, result.stderr
    [manual] = [a for a in report(run)["applied"] if a["rule"] == "manual"]
    assert (manual["invoice"]["number"], manual["amount"]) == (invoice, applied)


# [reconcile] settings ---------------------------------------------------------------------------


def test_the_auto_threshold_in_connector_toml_decides_what_is_applied_and_what_is_proposed(book):
    run, write_settings = book
    write_settings("auto_threshold = 0.99\n")
    strict = report(run)
    # the exact amount (confidence 0.95) no longer applies itself: finance sees it first
    assert strict["applied"] == []
    proposals = {p["payment"]["refs"][0]["id"]: p for p in strict["proposals"]}
    assert (proposals["ch_1"]["invoice"]["number"], proposals["ch_1"]["rule"]) == ("INV-2", "exact_amount_unique")


def test_by_default_an_exact_amount_applies_itself(book):
    run, _ = book
    applied = report(run)["applied"]
    assert [(a["payment"]["refs"][0]["id"], a["invoice"]["number"], a["rule"]) for a in applied] == [
        ("ch_1", "INV-2", "exact_amount_unique")
    ]


def test_a_lower_auto_threshold_applies_what_the_default_only_proposes(book):
    run, write_settings = book
    write_settings("auto_threshold = 0.4\n")
    # the JPY and KWD payments are partial payments of their customers' only open invoice
    applied = {a["payment"]["refs"][0]["id"]: a for a in report(run)["applied"]}
    assert (applied["ch_k"]["invoice"]["number"], applied["ch_k"]["amount"]) == ("INV-K", "5.000")
    assert applied["ch_k"]["rule"] == "payer_open_invoice"
    assert (applied["ch_j"]["invoice"]["number"], applied["ch_j"]["amount"]) == ("INV-J", "5000")


def test_the_tolerance_in_connector_toml_widens_a_fee_match(book):
    run, write_settings = book
    write_settings('tolerance_fraction = "0"\ntolerance_absolute = { KWD = 5.000 }\n')
    proposals = {p["payment"]["refs"][0]["id"]: p for p in report(run)["proposals"]}
    assert proposals["ch_k"]["rule"] == "amount_within_tolerance"
    assert "within the tolerance 5.000 KWD" in proposals["ch_k"]["reason"]


@pytest.mark.parametrize(
    "table, message",
    [
        ("auto_treshold = 0.9\n", "reconcile.auto_treshold: unknown key (known: auto_threshold,"),
        ("auto_threshold = 1.5\n", "reconcile.auto_threshold: Input should be less than or equal to 1"),
        ("tolerance_absolute = { USD = 0.001 }\n", "USD 0.001 has more decimal places than USD allows (2)"),
        ("[reconcile.confidence]\nexact_amount_unique = 2\n", "exact_amount_unique must be between 0 and 1"),
    ],
)
def test_a_bad_reconcile_setting_is_one_line_and_exit_2(book, table, message):
    run, write_settings = book
    write_settings(table)
    result = run("reconcile")
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


# reconcile --json -------------------------------------------------------------------------------

FIELDS = {"status", "payment", "invoice", "amount", "currency", "rule", "confidence", "reason"}


def test_json_gives_every_allocation_proposal_and_candidate_the_same_fields(book):
    run, _ = book
    data = report(run)
    [applied] = data["applied"]
    assert FIELDS | {"id", "confirmed_by"} <= set(applied)
    assert applied["status"] == "applied"
    assert applied["payment"] == {"id": "pay1", "refs": [{"system": "gateway", "type": "payment", "id": "ch_1"}]}
    assert applied["invoice"] == {
        "id": "inv2",
        "number": "INV-2",
        "refs": [{"system": "ledger", "type": "invoice", "id": "L-INV-2"}],
    }
    assert (applied["amount"], applied["currency"], applied["rule"]) == ("250.00", "USD", "exact_amount_unique")

    proposals = {p["payment"]["refs"][0]["id"]: p for p in data["proposals"]}
    partial = proposals["ch_2"]
    assert FIELDS | {"id", "payment_unapplied", "invoices", "candidates"} <= set(partial)
    assert (partial["status"], partial["invoice"]["number"], partial["amount"], partial["rule"]) == (
        "proposed",
        "INV-1",
        "400.00",
        "payer_open_invoice",
    )
    assert "partial payment: 600.00 USD stays open" in partial["reason"]
    for proposal in data["proposals"]:
        for rank, candidate in enumerate(proposal["candidates"], start=1):
            assert FIELDS | {"rank", "invoices"} <= set(candidate)
            assert candidate["status"] == ("proposed" if rank == 1 else "candidate")
            assert candidate["payment"] == proposal["payment"]
            assert candidate["invoice"]["refs"] and candidate["invoice"]["number"]
    assert proposals["ch_k"]["candidates"][0]["amount"] == "5.000"
    assert proposals["ch_j"]["candidates"][0]["amount"] == "5000"


# History ----------------------------------------------------------------------------------------


def test_explain_still_shows_a_proposal_a_later_run_dropped(book):
    run, _ = book
    [proposal] = [p for p in report(run)["proposals"] if p["payment"]["refs"][0]["id"] == "ch_2"]
    assert run("reconcile", "match", "ch_2", "INV-1", "--user", "carol").exit_code == 0
    assert not [p for p in report(run)["proposals"] if p["id"] == proposal["id"]]

    story = json.loads(run("explain", "INV-1", "--json").stdout)
    about = [(e["action"], e["subject_id"]) for e in story["audit"] if e["subject_id"] == proposal["id"]]
    assert about == [("propose", proposal["id"]), ("supersede", proposal["id"])]
    text = run("explain", "INV-1").stdout
    assert proposal["id"] in text and "no longer proposed" in text and "400.00 to inv1" in text
    # a run that changes nothing writes no new history
    before = len(story["audit"])
    report(run)
    assert len(json.loads(run("explain", "INV-1", "--json").stdout)["audit"]) == before
