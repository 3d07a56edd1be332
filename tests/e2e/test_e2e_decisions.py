"""Finance changes its mind, end to end against the sandbox, on SQLite and PostgreSQL: the six
sequences of issue #15, each step decision -> plan -> apply -> sync -> reconcile, and after every
step the connector's balance of each invoice equals the sandbox ledger's AmountDue, no payment
stands in the ledger that no decision stands behind, and `connector drift` is empty (or lists
exactly the gap a `--keep-decision` recorded)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from connector import pipeline
from connector.config import load_config
from connector.linking.run import link_all
from connector.state.store import open_store
from connector.sync import SyncEngine
from support.decisions_book import DecisionsBook, decisions_book

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres"])
def book(request, tmp_path, run_cli):
    with decisions_book(request.param, tmp_path, run_cli) as opened:
        yield opened


def test_a_payment_split_by_hand_counts_once_on_each_invoice(book: DecisionsBook):
    payment, first, second = book.split_candidates()
    whole = book.amount_of(payment)
    half = (whole / 2).quantize(Decimal(1) / 10 ** book.exponent(payment))
    book.ok("reconcile", "match", payment, first, "--amount", str(half))
    book.ok("reconcile", "match", payment, second, "--amount", str(whole - half))
    book.cycle_and_check()
    book.reconcile_and_check()


def test_unmatch_of_a_match_planned_but_not_sent_sends_nothing(book: DecisionsBook):
    payment, invoice = book.open_pair()
    made = book.ok("reconcile", "match", payment, invoice)
    book.ok("plan")
    book.ok("reconcile", "unmatch", book.allocation_of(made))
    book.cycle_and_check()
    assert book.ledger_payments_of(payment) == []


def test_accepting_candidate_2_then_unmatching_leaves_the_payment_to_finance(book: DecisionsBook):
    proposal = book.proposal_with_two_candidates()
    book.ok("reconcile", "accept", proposal["id"], "--candidate", "2")
    allocation = book.applied_allocation(proposal["payment"]["id"])
    assert allocation is not None, "accepting candidate 2 applied the payment"
    book.ok("reconcile", "unmatch", allocation)
    book.cycle_and_check()
    assert proposal["payment"]["id"] in book.proposed_payments()  # not re-made by a rule
    assert book.applied_allocation(proposal["payment"]["id"], missing_ok=True) is None


def test_unmatch_after_the_write_back_before_the_sync_reverses_it_and_a_new_match_is_recorded_once(
    book: DecisionsBook,
):
    payment, invoice = book.open_pair(leaves_open=True)
    made = book.ok("reconcile", "match", payment, invoice)
    book.ok("plan")
    book.ok("apply", "--yes")
    [recorded] = book.ledger_payments_of(payment)
    assert len(book.ledger_fees_of(payment)) == 1
    book.ok("reconcile", "unmatch", book.allocation_of(made))  # before any sync reads the write back
    reversals = [line for line in book.ok("plan").splitlines() if "reverse:" in line]
    assert len(reversals) == 2 and any(recorded["Reference"] in line for line in reversals), reversals
    book.cycle_and_check()
    assert book.ledger_payments_of(payment) == [] and book.ledger_fees_of(payment) == []
    assert book.xero()["Payments"][recorded["PaymentID"]]["Status"] == "DELETED"
    book.ok("reconcile", "match", payment, invoice)
    book.cycle_and_check()
    [again] = book.ledger_payments_of(payment)  # a new ledger payment, never a second beside the first
    assert again["PaymentID"] != recorded["PaymentID"] and again["Amount"] == recorded["Amount"]
    assert len(book.ledger_fees_of(payment)) == 1
    book.reconcile_and_check()


def test_unmatch_of_a_match_the_gateway_marked_paid_is_refused_and_forced_leaves_exactly_that_gap(
    book: DecisionsBook,
):
    payment, invoice = book.open_pair(marks_paid=True)
    made = book.ok("reconcile", "match", payment, invoice)
    book.ok("plan")
    book.ok("apply", "--yes")
    assert book.gateway_status(invoice) == "paid"
    refused = book.run("reconcile", "unmatch", book.allocation_of(made))
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1, refused
    assert "--force" in refused.stderr
    book.ok("reconcile", "unmatch", book.allocation_of(made), "--force")
    assert len([line for line in book.ok("plan").splitlines() if "reverse:" in line]) == 2
    book.cycle(expect_drift=True)
    book.check()
    assert book.ledger_payments_of(payment) == [] and book.ledger_fees_of(payment) == []
    [gap] = book.drift(expect=1)["records"]
    assert (gap["kind"], gap["field"], gap["number"]) == ("gap", "irreversible_write", invoice)
    assert gap["resolve"] == f"connector reconcile match {payment} {invoice}"
    book.ok(*gap["resolve"].split()[1:])
    book.cycle_and_check()
    assert len(book.ledger_payments_of(payment)) == 1
    book.reconcile_and_check()


def test_cancelling_a_record_payment_returns_the_payment_to_a_proposal(book: DecisionsBook):
    payment, invoice = book.open_pair()
    book.ok("reconcile", "match", payment, invoice)
    book.ok("plan")
    action = book.pending_action("record_payment", payment)
    book.ok("actions", "cancel", str(action))
    book.cycle_and_check()
    assert book.ledger_payments_of(payment) == []
    assert book.applied_allocation(payment, missing_ok=True) is None


def test_cancelling_a_record_payment_keeping_the_decision_is_listed_as_exactly_that_gap(book: DecisionsBook):
    payment, invoice = book.open_pair()
    book.ok("reconcile", "match", payment, invoice)
    book.ok("plan")
    action = book.pending_action("record_payment", payment)
    book.ok("actions", "cancel", str(action), "--keep-decision")
    book.cycle(expect_drift=True)
    [gap] = book.drift(expect=1)["records"]
    assert (gap["kind"], gap["field"], gap["number"], gap["actions"]) == (
        "gap",
        "unwritten_decision",
        invoice,
        [action],
    )
    # the match stands (the gateway was told the invoice is paid): finance records the payment
    # in the ledger by hand, then syncs
    assert gap["resolve"] == "connector sync"
    assert f"record the payment of {gap['amount']} {gap['currency']}" in gap["reason"], gap["reason"]
    assert book.ledger_payments_of(payment) == []
    book.record_by_hand(payment, invoice, Decimal(gap["amount"]))
    book.ok(*gap["resolve"].split()[1:])
    book.reconcile_and_check()
    book.drift(expect=0)
    book.cycle_and_check()
    assert len(book.ledger_payments_of(payment)) == 1


def test_after_the_write_back_and_one_more_sync_drift_is_empty(book: DecisionsBook):
    # the fixture ran the demo's loop: sync, reconcile, plan, apply, then one more sync
    book.check()
    report = json.loads(book.run("drift", "--json").stdout)
    assert report["drift"] is False


def test_a_plan_between_the_sync_and_the_reconcile_counts_a_recorded_payment_once(book: DecisionsBook):
    """A payment we recorded in the ledger is read back by a sync before any reconcile retires
    our allocation of it: the ledger's amount paid and our allocation are the same money, so
    the invoice still owes the rest. A plan run then (`connector sync` then `connector plan`)
    marks nothing paid in the gateway, which Stripe could never take back."""
    payment, invoice, part = book.half_pair()
    left = Decimal(next(i for i in book.invoices() if i["number"] == invoice)["balance"])
    book.ok("reconcile", "match", payment, invoice, "--amount", str(part))
    book.ok("plan")
    book.ok("apply", "--yes")
    assert len(book.ledger_payments_of(payment)) == 1
    book.ok("sync")  # the ledger now holds the payment; no reconcile has run since
    [listed] = [i for i in book.invoices() if i["number"] == invoice]
    assert Decimal(listed["balance"]) == left - part, listed
    planned = book.ok("plan")
    assert "mark paid" not in planned, planned
    book.ok("apply", "--yes")
    assert book.gateway_status(invoice) == "open"
    book.cycle_and_check()
    assert book.gateway_status(invoice) == "open"


def test_a_second_match_of_a_payment_the_ledger_records_on_that_invoice_is_refused(book: DecisionsBook):
    """The write-back never writes a second part of one payment on one invoice (it could not
    tell it from the first): a match of more of that payment to that invoice would count money
    the ledger never gets, and plan a mark-paid in Stripe for an invoice still owed."""
    payment, invoice = book.open_pair(leaves_open=True)
    part = (book.amount_of(payment) / 2).quantize(Decimal(1) / 10 ** book.exponent(payment))
    book.ok("reconcile", "match", payment, invoice, "--amount", str(part))
    book.cycle_and_check()
    refused = book.run("reconcile", "match", payment, invoice)
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1, refused
    assert f"the ledger already records {part}" in refused.stderr, refused.stderr
    book.cycle_and_check()
    assert [Decimal(str(p["Amount"])) for p in book.ledger_payments_of(payment)] == [part]


def test_a_plan_after_a_link_that_has_not_taken_the_ledger_s_records_counts_the_payment_once(
    book: DecisionsBook,
):
    """Another worker's plan can read the book between the link that joins our recorded
    payment to its charge and the step that makes it the ledger's record: the position the
    writes follow from still counts that money once."""
    payment, invoice, part = book.half_pair()
    book.ok("reconcile", "match", payment, invoice, "--amount", str(part))
    book.ok("plan")
    book.ok("apply", "--yes")
    config = load_config(str(book.config_path))
    store = open_store(config.database_url)
    try:
        assert SyncEngine(config, store).run().ok
        link_all(config, store)  # linked; `take_ledger_records` not run
        planned = pipeline.plan(config, store)
    finally:
        store.close()
    assert [p.summary for p in planned if p.action.kind == "mark_paid"] == []
    assert not any("-> paid" in p.summary for p in planned if p.action.kind == "update_properties")
    book.cycle_and_check()
    assert book.gateway_status(invoice) == "open"


def test_a_ledger_payment_being_taken_back_counts_with_the_customer_it_paid_for(book: DecisionsBook):
    """One customer's payment recorded on another's invoice, then unmatched: until the reversal
    is sent and read back, the invoice is owed again in the positions (the ledger payment is
    being withdrawn). The plan reads a few customers at a time, and the invoice's customer is
    not the payment's: it still finds that ledger payment (`same_drift_a_record_at_a_time`)."""
    payment, invoice = book.open_pair(leaves_open=True, another_customer=True)
    made = book.ok("reconcile", "match", payment, invoice)
    book.ok("plan")
    book.ok("apply", "--yes")
    book.ok("sync")  # the ledger's record of it is read back, and becomes the allocation
    [recorded] = book.ledger_payments_of(payment)
    assert book.applied_allocation(payment, missing_ok=True) is None, made
    [standing] = [a["id"] for a in book.applied() if a["payment"]["id"] == payment]
    book.ok("reconcile", "unmatch", standing)
    reversals = [line for line in book.ok("plan").splitlines() if "reverse:" in line]
    assert any(recorded["Reference"] in line for line in reversals), reversals
    owed = next(i for i in book.invoices() if i["number"] == invoice)
    book.drift_report()  # compares the parts with the whole, the reversal not sent yet
    book.cycle_and_check()
    assert book.ledger_payments_of(payment) == []
    assert next(i for i in book.invoices() if i["number"] == invoice)["balance"] == owed["balance"]
