"""The report commands on a generated book synced from the sandbox and reconciled."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date

import pytest

from connector.config import load_config
from connector.model import Allocation, Invoice, Ref
from connector.money import Money
from connector.reconcile.history import (
    aged_streamed,
    aging_streamed,
    customer_book,
    customers_by_id,
    invoice_listing,
    load_book,
    payment_listing,
)
from connector.reconcile.run import invoice_allocations, run_reconciliation, without_withdrawn
from connector.reports import CustomerBalances, aging_report, customer_story, invoice_rows, payment_rows
from connector.reports.as_at import aging_at
from connector.reports.statements import statement
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state.store import open_store
from support.e2e import sync_sandbox, with_credentials

pytestmark = pytest.mark.slow
TODAY = date(2024, 9, 30)


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    directory = tmp_path_factory.mktemp("reports")
    with Sandbox(with_credentials(generate(7, "small", today=TODAY).data), limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, directory, full=True)
    assert report.ok
    config = str(directory / "connector.toml")
    run_reconciliation(load_config(config), store)
    yield config, store
    store.close()


def test_every_stored_invoice_is_listed_once(run_cli, synced):
    config, store = synced
    rows = json.loads(run_cli("--config", config, "invoices", "list", "--as-of", TODAY.isoformat(), "--json").stdout)
    assert sorted(r["id"] for r in rows["invoices"]) == sorted(i.id for i in store.list_invoices())


def test_aging_totals_equal_the_customer_rows_per_currency(run_cli, synced):
    config, _ = synced
    report = json.loads(run_cli("--config", config, "aging", "--as-of", TODAY.isoformat(), "--json").stdout)
    for total in report["totals"]:
        rows = [r for r in report["customers"] if r["currency"] == total["currency"]]
        for bucket in (*report["buckets"], "total"):
            assert (
                sum(Money.of(r[bucket], r["currency"]).amount for r in rows)
                == Money.of(total[bucket], total["currency"]).amount
            )
    assert len({t["currency"] for t in report["totals"]}) == len(report["totals"]) >= 3


def test_a_won_deal_is_not_drift_but_an_open_gateway_invoice_paid_in_the_ledger_is(run_cli, synced):
    config, _ = synced
    result = run_cli("--config", config, "drift", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    # a won deal ("open") is issued, as a paid or open ledger invoice is
    assert not [r for r in report["records"] if r["type"] == "deal" and r["field"] == "status"]
    told = [r for r in report["records"] if r["system"] == "gateway" and r["field"] == "status"]
    assert any(r["holds"] == "open" and r["should_hold"] == "paid" for r in told)
    for line in report["records"]:  # nothing was written back yet: planning and sending resolves it
        assert line["resolve"] in ("connector sync --apply", "connector reconcile") or line["resolve"].startswith(
            "connector explain"
        ), line
        assert line["since"]


def test_explain_a_gateway_payment_by_its_charge_id(run_cli, synced):
    config, store = synced
    payment = next(p for p in store.list_payments() if any(r.system == "gateway" for r in p.refs))
    charge = next(r.remote_id for r in payment.refs if r.system == "gateway")
    story = json.loads(run_cli("--config", config, "explain", charge, "--json").stdout)
    assert story["kind"] == "payment" and story["id"] == payment.id
    assert ("gateway", charge) in {(r["system"], r["id"]) for r in story["refs"]}


def test_explain_shows_open_proposals_with_ranked_candidates(run_cli, synced):
    config, store = synced
    from connector.state import reconciliation as decisions

    with store.session() as session:
        proposals = decisions.load_proposals(session)
    if not proposals:
        pytest.skip("this book left nothing to propose")
    story = json.loads(run_cli("--config", config, "explain", proposals[0]["payment_id"], "--json").stdout)
    [proposal] = [p for p in story["proposals"] if p["id"] == proposals[0]["id"]]
    assert [c["rank"] for c in proposal["candidates"]] == list(range(1, len(proposal["candidates"]) + 1))
    assert {"invoices", "amounts", "currency", "rule", "confidence", "reason"} <= set(proposal["candidates"][0])


def test_drift_exits_0_when_every_system_agrees(run_cli, tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'agree.db'}")
    for system, remote, rank in (("ledger", "L-1", 3), ("gateway", "in_1", 1)):
        money = Money.of("10.00", "USD")
        record = Invoice(
            id="same",
            number="INV-1",
            currency="USD",
            subtotal=money,
            tax=Money.zero("USD"),
            total=money,
            amount_paid=Money.zero("USD"),
            amount_credited=Money.zero("USD"),
            refs=[Ref(system=system, object_type="invoice", remote_id=remote)],
        )
        store.store_page(system, "invoices", "invoice", [record], None, rank=rank)
    store.close()
    (tmp_path / "connector.toml").write_text(f'[database]\nurl = "sqlite:///{tmp_path / "agree.db"}"\n')
    result = run_cli("--config", str(tmp_path / "connector.toml"), "drift")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "no drift" in result.stdout


@pytest.mark.parametrize("batch", [7, 1000])
def test_the_reports_read_a_batch_at_a_time_equal_the_whole_books(synced, batch):
    """`aging` (as at any day, and re-aged `--as-of`) and `invoices list` read the book a
    batch at a time; on a synced, reconciled book they give what reading it whole gave."""
    _, store = synced
    customers = customers_by_id(store)
    book = load_book(store)
    assert book.credit_notes and book.recorded and book.applied  # every part of the book is there
    # the book's days, and today: reconciliation made its allocations today (they count from then)
    for day in (date.today(), TODAY, date(2024, 8, 31), date(2024, 6, 30), date(2023, 12, 31)):
        for sort, top in (("name", None), ("oldest", 2)):
            whole = aging_at(book, customers, day, sort=sort, top=top)
            assert aging_streamed(store, customers, day, sort=sort, top=top, batch=batch) == whole
    for day in (date.today(), TODAY):
        assert any(
            not Money.of(r["unapplied"], r["currency"]).is_zero for r in aging_at(book, customers, day)["customers"]
        )
    assert aging_at(book, customers, date.today()) != aging_at(book, customers, TODAY)
    invoices = without_withdrawn(store, store.list_receivables())
    assert any(not i.amount_credited.is_zero for i in invoices)  # credit notes dated on invoices
    allocations = invoice_allocations(store, invoices)
    for as_of in (TODAY, date(2024, 12, 31)):
        assert aged_streamed(store, customers, as_of, batch=batch) == aging_report(
            invoices, customers, allocations, as_of
        )
    rows = invoice_rows(invoices, customers, allocations, TODAY)
    assert list(invoice_listing(store, customers, TODAY, batch=batch)) == rows
    payments = store.list_payments()
    by_payment: dict[str, list[Allocation]] = defaultdict(list)
    for a in [*book.recorded, *(d.allocation for d in book.applied)]:
        by_payment[a.payment_id].append(a)
    whole = payment_rows(payments, customers, by_payment)
    nets = {p.id: p.net for p in payments}
    listed = list(payment_listing(store, customers, batch=batch))
    assert listed == [{**r, "net": str(nets[r["id"]].amount)} for r in whole]
    assert any(r["allocated"] != r["amount"] for r in listed) and any(r["allocated"] == r["amount"] for r in listed)
    some = {r["customer"]["id"] for r in whole[:3]}
    assert list(payment_listing(store, customers, customer_ids=some, batch=batch)) == [
        r for r in listed if r["customer"]["id"] in some
    ]


def test_customer_balances_summed_row_by_row_are_each_customers_story(synced):
    _, store = synced
    customers = customers_by_id(store)
    invoices = list(invoice_listing(store, customers, TODAY, batch=5))
    payments = list(payment_listing(store, customers, batch=5))
    sums = CustomerBalances()
    for row in invoices:
        sums.add_invoice(row)
    for row in payments:
        sums.add_payment(row)
    owing = holding = 0
    for customer in customers.values():
        mine = [r for r in invoices if r["customer"]["id"] == customer.id]
        paid = [r for r in payments if r["customer"]["id"] == customer.id]
        story = customer_story(customer, mine, paid)
        assert (sums.balance(customer.id), sums.unapplied(customer.id)) == (story["balance"], story["unapplied"])
        owing, holding = owing + bool(story["balance"]), holding + bool(story["unapplied"])
    assert owing > 3 and holding >= 2


def test_a_statement_read_from_the_customers_neighbourhood_is_the_whole_books(synced):
    _, store = synced
    book = load_book(store)
    customers = customers_by_id(store)
    shown = credits = 0
    for customer in customers.values():
        assert customer.id is not None
        own = customer_book(store, customer.id)
        for day, start in ((date.today(), date(2000, 1, 1)), (TODAY, None), (date(2024, 8, 31), date(2024, 1, 1))):
            whole = statement("Co", customer, book, day, start)
            assert statement("Co", customer, own, day, start) == whole
            shown += sum(len(c["open_items"]) + len(c["payments"]) for c in whole["currencies"])
            credits += sum(len(c["credits"]) for c in whole["currencies"])
        assert len(own.invoices) < len(book.invoices)
    assert shown > 50 and credits
