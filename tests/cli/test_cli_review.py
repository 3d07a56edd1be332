"""Reviewing proposals at volume: `reconcile review` driven by keystrokes, bulk `accept --all`
and `reject --all` with filters, the sorted and filtered listing with names, `reconcile
reopen` (undoing a decision) and `match --amount` refusing odd numbers as usage errors.

Book (no connections, every payment goes through the matcher), all in USD:
- Acme: INV-1 100.00, INV-2 60.00, INV-3 75.00, INV-4 85.00; card payment ch_a of 160.00 on
  2024-06-12 with no remittance: two sets of invoices sum to it, so a proposal of two candidates.
- Beta Ltd: INV-B 1000.00; card payment ch_b of 400.00 on 2024-06-10: a partial payment of the
  oldest open invoice, proposed for finance to confirm.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from click.testing import CliRunner

from connector.cli.main import cli
from connector.model import Customer, Invoice, Payment, Ref
from connector.money import Money
from connector.state.store import open_store


def _invoice(id_, number, customer, total):
    def usd(v):
        return Money.of(v, "USD")

    return Invoice(
        id=id_,
        number=number,
        customer_id=customer,
        currency="USD",
        issue_date=date(2024, 4, 1),
        due_date=date(2024, 5, 1),
        subtotal=usd(total),
        tax=usd("0"),
        total=usd(total),
        amount_paid=usd("0"),
        amount_credited=usd("0"),
        refs=[Ref(system="ledger", object_type="invoice", remote_id=f"L-{number}")],
    )


def _payment(id_, charge, customer, amount, day):
    return Payment(
        id=id_,
        amount=Money.of(amount, "USD"),
        received_at=datetime(2024, 6, day, 12, tzinfo=UTC),
        method="card",
        customer_id=customer,
        refs=[Ref(system="gateway", object_type="payment", remote_id=charge)],
    )


@pytest.fixture
def book(tmp_path, run_cli):
    directory = tmp_path / "book"
    directory.mkdir()
    config = directory / "connector.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{directory / "state.db"}"\n')
    store = open_store(f"sqlite:///{directory / 'state.db'}")
    store.store_page(
        "ledger",
        "contacts",
        "customer",
        [
            Customer(id=c, name=name, refs=[Ref(system="ledger", object_type="customer", remote_id=c)])
            for c, name in (("c9f3a1", "Acme"), ("b07e22", "Beta Ltd"))
        ],
        None,
        rank=3,
    )
    store.store_page(
        "ledger",
        "invoices",
        "invoice",
        [
            _invoice("inv1", "INV-1", "c9f3a1", "100.00"),
            _invoice("inv2", "INV-2", "c9f3a1", "60.00"),
            _invoice("inv3", "INV-3", "c9f3a1", "75.00"),
            _invoice("inv4", "INV-4", "c9f3a1", "85.00"),
            _invoice("invb", "INV-B", "b07e22", "1000.00"),
        ],
        None,
        rank=3,
    )
    store.store_page(
        "gateway",
        "charges",
        "payment",
        [_payment("paya", "ch_a", "c9f3a1", "160.00", 12), _payment("payb", "ch_b", "b07e22", "400.00", 10)],
        None,
        rank=1,
    )
    store.close()

    def run(*args):
        return run_cli("--config", str(config), *args)

    def keys(typed, *args):
        """`reconcile review ARGS` with `typed` as what the person types."""
        return CliRunner().invoke(cli, ["--config", str(config), "reconcile", "review", *args], input=typed)

    assert run("reconcile").exit_code == 0  # the matcher makes the proposals
    return run, keys


def proposals(run, *args):
    result = run("reconcile", "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["proposals"]


def applied(run):
    return [a for a in json.loads(run("reconcile", "--json").stdout)["applied"]]


def audit(run, action):
    result = run("audit", "list", "--action", action, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


BETA, ACME = "pr-1015c4799a9e", "pr-8c48f49940c8"  # Beta's proposal is on the older payment


def ids(found):
    return [p["id"] for p in found]


# The listing: names, sorting, filters ----------------------------------------------------------


def test_the_listing_shows_payer_date_invoice_numbers_and_customer_names_not_ids(book):
    run, _ = book
    out = run("reconcile").stdout
    assert "Beta Ltd  2024-06-10  400.00 USD to apply  (payment ch_b)" in out
    assert "INV-1 Acme (open 100.00 USD, applies 100.00)" in out
    assert "open invoices of Beta Ltd in USD" in out
    assert "b07e22" not in out and "c9f3a1" not in out


@pytest.mark.parametrize(
    "sort, expected",
    [
        ("amount", [BETA, ACME]),
        ("age", [BETA, ACME]),
        ("payer", [ACME, BETA]),
        ("rule", [BETA, ACME]),
        ("confidence", [ACME, BETA]),
    ],
)
def test_the_listing_sorts_proposals(book, sort, expected):
    run, _ = book
    assert ids(proposals(run, "--sort", sort)) == expected


def test_the_listing_filters_by_customer_name_rule_and_confidence(book):
    run, _ = book
    assert ids(proposals(run, "--customer", "acme")) == [ACME]
    assert ids(proposals(run, "--rule", "payer_open_invoice")) == [BETA]
    assert ids(proposals(run, "--min-confidence", "0.5")) == [ACME]


@pytest.mark.parametrize("args", [("--customer", "Nobody"), ("--min-confidence", "2"), ("--sort", "colour")])
def test_a_filter_that_cannot_select_anything_is_a_usage_error(book, args):
    run, _ = book
    result = run("reconcile", *args)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1


# Interactive review ----------------------------------------------------------------------------


def test_review_accepts_a_numbered_candidate_and_skips_the_next(book):
    run, keys = book
    result = keys("1\ns\nq\n", "--user", "ann")
    assert result.exit_code == 0, result.output
    assert "Beta Ltd  2024-06-10  400.00 USD" in result.output
    assert "accepted 1, rejected 0, skipped 1" in result.output
    assert [(a["invoice"]["number"], a["amount"], a["confirmed_by"]) for a in applied(run)] == [
        ("INV-B", "400.00", "ann")
    ]
    assert ids(proposals(run)) == [ACME]
    [entry] = audit(run, "accept")["entries"]
    assert entry["user"] == "ann"


def test_review_accepts_the_second_candidate_by_its_number(book):
    run, keys = book
    keys("s\n2\n", "--user", "ann")
    assert sorted(a["invoice"]["number"] for a in applied(run)) == ["INV-3", "INV-4"]


def test_review_rejects_with_r_and_the_rejection_is_audit_logged(book):
    run, keys = book
    result = keys("r\nq\n", "--user", "ann")
    assert "rejected 1" in result.output
    assert ids(proposals(run)) == [ACME]
    [entry] = audit(run, "reject")["entries"]
    assert entry["user"] == "ann"


def test_review_undo_takes_back_the_last_decision_and_shows_that_proposal_again(book):
    run, keys = book
    result = keys("1\nu\ns\nq\n", "--user", "ann")
    assert result.exit_code == 0, result.output
    assert "undid: " + BETA in result.output
    assert result.output.count("Beta Ltd  2024-06-10") == 2
    assert applied(run) == []
    assert ids(proposals(run)) == [BETA, ACME]
    assert [e["user"] for e in audit(run, "reopen")["entries"]] == ["ann"]


def test_review_undo_of_a_rejection_proposes_the_payment_again(book):
    run, keys = book
    keys("r\nu\nq\n")
    assert ids(proposals(run)) == [BETA, ACME]


def test_review_says_so_for_an_unknown_key_or_nothing_to_undo_and_asks_again(book):
    _, keys = book
    result = keys("x\n9\nu\nq\n")
    assert result.exit_code == 0
    assert "unknown key 'x'" in result.output
    assert "unknown key '9'" in result.output
    assert "nothing to undo" in result.output


def test_review_stops_at_the_end_of_the_input(book):
    run, keys = book
    result = keys("s\n")
    assert result.exit_code == 0
    assert "accepted 0, rejected 0, skipped 1" in result.output
    assert len(proposals(run)) == 2


def test_review_goes_through_the_filtered_proposals_only(book):
    run, keys = book
    result = keys("1\n", "--customer", "Acme")
    assert "Beta Ltd" not in result.output
    assert sorted(a["invoice"]["number"] for a in applied(run)) == ["INV-1", "INV-2"]


# Bulk decisions ------------------------------------------------------------------------------


def test_accept_all_accepts_the_best_candidate_of_every_proposal_above_the_confidence(book):
    run, _ = book
    result = run("reconcile", "accept", "--all", "--min-confidence", "0.5", "--user", "ann")
    assert result.exit_code == 0, result.stderr
    assert "accepted 1 of 1 proposal(s)" in result.stdout
    assert sorted(a["invoice"]["number"] for a in applied(run)) == ["INV-1", "INV-2"]
    assert ids(proposals(run)) == [BETA]


def test_accept_all_without_a_minimum_confidence_is_refused(book):
    run, _ = book
    result = run("reconcile", "accept", "--all")
    assert result.exit_code == 2
    assert "--min-confidence" in result.stderr
    assert applied(run) == []


def test_accept_all_dry_run_lists_what_it_would_accept_and_changes_nothing(book):
    run, _ = book
    result = run("reconcile", "accept", "--all", "--min-confidence", "0", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "would accept 2 proposal(s)" in result.stdout
    assert "Beta Ltd" in result.stdout and "Acme" in result.stdout
    assert applied(run) == []
    assert len(proposals(run)) == 2


def test_accept_all_filters_by_customer_and_rule(book):
    run, _ = book
    run("reconcile", "accept", "--all", "--min-confidence", "0", "--customer", "Beta Ltd")
    assert ids(proposals(run)) == [ACME]
    run("reconcile", "accept", "--all", "--min-confidence", "0", "--rule", "payer_open_invoice")
    assert ids(proposals(run)) == [ACME]


def test_reject_all_rejects_what_the_filters_select(book):
    run, _ = book
    result = run("reconcile", "reject", "--all", "--rule", "subset_sum", "--user", "ann")
    assert result.exit_code == 0, result.stderr
    assert ids(proposals(run)) == [BETA]
    assert len(audit(run, "reject")["entries"]) == 1


def test_a_proposal_id_and_all_together_are_refused(book):
    run, _ = book
    assert run("reconcile", "reject", BETA, "--all").exit_code == 2
    assert run("reconcile", "reject").exit_code == 2


# Undoing a rejection ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["reopen", "unreject"])
def test_a_rejected_proposal_is_reopened_and_proposed_again(book, command):
    run, _ = book
    run("reconcile", "reject", ACME)
    assert ids(proposals(run)) == [BETA]
    result = run("reconcile", command, ACME, "--user", "ann", "--reason", "customer called")
    assert result.exit_code == 0, result.stderr
    assert ids(proposals(run)) == [BETA, ACME]
    [entry] = audit(run, "reopen")["entries"]
    assert (entry["user"], entry["reason"]) == ("ann", "customer called")


def test_reopening_an_open_or_unknown_proposal_is_a_usage_error(book):
    run, _ = book
    assert run("reconcile", "reopen", ACME).exit_code == 2
    assert run("reconcile", "reopen", "pr-nothing").exit_code == 2


# match --amount: odd input is a usage error --------------------------------------------------


@pytest.mark.parametrize("amount", ["1e400", "NaN", "-Infinity", "1_000", "\u0661\u0662", "\uff11\uff12", "12,50", ""])
def test_match_refuses_an_odd_amount_with_one_line_and_exit_2(book, amount):
    run, _ = book
    result = run("reconcile", "match", "ch_b", "INV-B", "--amount", amount)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("error: --amount")
    assert len(result.stderr.strip().splitlines()) == 1
    assert applied(run) == []
