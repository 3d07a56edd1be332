"""The finance report commands on a small hand-made book with known answers.

Book (as of 2024-06-30), ledger the trusted system, the gateway knowing some records too:
- Acme: INV-1 USD 100.00 due 06-20 (10 days late), 60.00 of it paid by a gateway card payment
  of 150.00 (so 90.00 of that payment is unapplied); INV-2 EUR 200.00, 50.00 paid, due 04-01
  (90 days late), in collections; INV-5 USD 40.00 paid in the ledger but still open in the
  gateway (drift).
- Globex: INV-3 USD 300.00 paid by a ledger payment; INV-4 JPY 5000 due 07-30 (current), disputed.
"""

from __future__ import annotations

import csv
import io
import json
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, event

from connector import reports
from connector.model import (
    Action,
    Allocation,
    Customer,
    Invoice,
    Payment,
    Ref,
    invoice_position,
)
from connector.money import Money
from connector.reconcile.history import customer_book, customers_by_id, invoice_listing, load_book
from connector.reconcile.run import invoice_allocations, ledger_withdrawn, without_withdrawn
from connector.reports.statements import statement
from connector.state import outbox
from connector.state import reconciliation as decisions
from connector.state.store import open_store
from support.databases import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema

AS_OF = "2024-06-30"
# The systems' kinds (ledger, gateway) tell `drift` what each should hold; nothing is called.
CONNECTIONS = """
[connections.gateway]
provider = "stripe"
base_url = "http://127.0.0.1:9/stripe"
api_key = "sk_test_reports_book"

[connections.ledger]
provider = "xero"
base_url = "http://127.0.0.1:9/xero"
token_url = "http://127.0.0.1:9/xero/oauth/token"
tenant_id = "00000000-0000-4000-8000-000000000001"
client_id = "reports-book"
client_secret = "reports-book-secret"
refresh_token = "reports-book-refresh"
"""


def usd(value: str) -> Money:
    return Money.of(value, "USD")


def invoice(id_, system, remote, number, customer, currency, total, paid="0", due=None, issued=None, **extra):
    def money(v):
        return Money.of(v, currency)

    return Invoice(
        id=id_,
        number=number,
        customer_id=customer,
        currency=currency,
        issue_date=issued or date(2024, 3, 1),
        due_date=due,
        subtotal=money(total),
        tax=money("0"),
        total=money(total),
        amount_paid=money(paid),
        amount_credited=money("0"),
        refs=[Ref(system=system, object_type="invoice", remote_id=remote)],
        **extra,
    )


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    directory = tmp_path_factory.mktemp("book")
    config = directory / "connector.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{directory / "state.db"}"\n' + CONNECTIONS)
    store = open_store(f"sqlite:///{directory / 'state.db'}")
    acme = Customer(
        id="acme", name="Acme Trading Corp.", refs=[Ref(system="ledger", object_type="customer", remote_id="C-1")]
    )
    acme_gw = Customer(id="acme", name="ACME", refs=[Ref(system="gateway", object_type="customer", remote_id="cus_1")])
    globex = Customer(
        id="globex", name="Globex GmbH", refs=[Ref(system="ledger", object_type="customer", remote_id="C-2")]
    )
    store.store_page("ledger", "contacts", "customer", [acme, globex], None, rank=3)
    store.store_page("gateway", "customers", "customer", [acme_gw], None, rank=1)
    ledger = [
        invoice("inv1", "ledger", "L-1", "INV-1", "acme", "USD", "100.00", due=date(2024, 6, 20)),
        invoice(
            "inv2",
            "ledger",
            "L-2",
            "INV-2",
            "acme",
            "EUR",
            "200.00",
            "50.00",
            due=date(2024, 4, 1),
            in_collections=True,
        ),
        invoice(
            "inv3", "ledger", "L-3", "INV-3", "globex", "USD", "300.00", "300.00", due=date(2024, 5, 1), status="paid"
        ),
        invoice("inv4", "ledger", "L-4", "INV-4", "globex", "JPY", "5000", due=date(2024, 7, 30), disputed=True),
        invoice(
            "inv5",
            "ledger",
            "L-5",
            "INV-5",
            "acme",
            "USD",
            "40.00",
            "40.00",
            due=date(2024, 6, 30),
            issued=date(2024, 6, 1),
            status="paid",
        ),
    ]
    gateway = [
        invoice("inv1", "gateway", "in_1", "INV-1", "acme", "USD", "100.00", due=date(2024, 6, 20)),
        invoice(
            "inv5", "gateway", "in_5", "INV-5", "acme", "USD", "40.00", due=date(2024, 6, 30), issued=date(2024, 6, 1)
        ),
    ]
    store.store_page("ledger", "invoices", "invoice", ledger, None, rank=3)
    store.store_page("gateway", "invoices", "invoice", gateway, None, rank=1)
    card = Payment(
        id="pay1",
        amount=usd("150.00"),
        received_at=datetime(2024, 6, 25, tzinfo=UTC),
        method="card",
        customer_id="acme",
        remittance="INV-1",
        refs=[Ref(system="gateway", object_type="payment", remote_id="ch_1")],
    )
    bank = Payment(
        id="pay2",
        amount=usd("300.00"),
        received_at=datetime(2024, 5, 1, tzinfo=UTC),
        method="bank",
        customer_id="globex",
        refs=[Ref(system="ledger", object_type="payment", remote_id="P-2")],
    )
    store.store_page("gateway", "charges", "payment", [card], None, rank=1)
    store.store_page("ledger", "payments", "payment", [bank], None, rank=3)
    with store.session() as session:
        decisions.save_allocations(
            session,
            [
                Allocation(
                    id="al-card",
                    payment_id="pay1",
                    invoice_id="inv1",
                    amount=usd("60.00"),
                    rule="remittance_number",
                    confidence=Decimal("0.98"),
                    reason="remittance 'INV-1' names INV-1",
                ),
                Allocation(
                    id="al-bank",
                    payment_id="pay2",
                    invoice_id="inv3",
                    amount=usd("300.00"),
                    rule="ledger_record",
                    confidence=Decimal(1),
                    reason="recorded in ledger",
                    confirmed_by="ledger",
                ),
            ],
            "applied",
        )
        session.execute(
            __import__("sqlalchemy").text(
                "INSERT INTO refs (company, system, object_type, remote_id, entity_kind, entity_id, data, seen_at) "
                "VALUES ('default', 'crm', 'deal', 'D-9', 'invoice', NULL, '{}', '2024-06-01 00:00:00')"
            )
        )
    store.audit("finance", "match", "payment", "pay1", {"invoice": "inv1"}, "matched by hand")
    yield str(config), store
    store.close()


def run(run_cli, book, *args):
    return run_cli("--config", book[0], *args)


def test_invoice_list_shows_derived_balance_status_and_bucket(run_cli, book):
    result = run(run_cli, book, "invoices", "list", "--as-of", AS_OF, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    rows = {r["number"]: r for r in data["invoices"]}
    assert data["as_of"] == AS_OF
    assert rows["INV-1"]["balance"] == "40.00" and rows["INV-1"]["status"] == "partially_paid"
    assert rows["INV-1"]["days_past_due"] == 10 and rows["INV-1"]["aging_bucket"] == "1-30"
    assert rows["INV-1"]["systems"] == ["gateway", "ledger"]
    assert {"system": "gateway", "type": "invoice", "id": "in_1"} in rows["INV-1"]["refs"]
    assert rows["INV-2"]["aging_bucket"] == "61-90" and rows["INV-2"]["in_collections"] is True
    assert rows["INV-3"]["status"] == "paid" and rows["INV-3"]["aging_bucket"] is None
    assert rows["INV-4"]["balance"] == "5000" and rows["INV-4"]["disputed"] is True
    assert rows["INV-1"]["customer"] == {"id": "acme", "name": "Acme Trading Corp."}


def test_invoice_list_table_is_readable(run_cli, book):
    result = run(run_cli, book, "invoices", "list", "--as-of", AS_OF)
    assert result.exit_code == 0
    header, *lines = result.stdout.splitlines()
    assert header.split()[:5] == ["number", "customer", "currency", "total", "balance"]
    inv2 = next(line for line in lines if line.startswith("INV-2"))
    assert "EUR" in inv2 and "150.00" in inv2 and "in_collections" in inv2
    assert "5 invoice(s)" in lines[-1]


@pytest.mark.parametrize(
    ("args", "numbers"),
    [
        (("--status", "paid"), {"INV-3", "INV-5"}),
        (("--status", "partially_paid"), {"INV-1", "INV-2"}),
        (("--status", "in_collections"), {"INV-2"}),
        (("--status", "disputed"), {"INV-4"}),
        (("--overdue",), {"INV-1", "INV-2"}),
        (("--customer", "globex"), {"INV-3", "INV-4"}),
        (("--customer", "cus_1"), {"INV-1", "INV-2", "INV-5"}),
        (("--customer", "acme", "--overdue"), {"INV-1", "INV-2"}),
    ],
)
def test_invoice_list_filters(run_cli, book, args, numbers):
    result = run(run_cli, book, "invoices", "list", "--as-of", AS_OF, "--json", *args)
    assert result.exit_code == 0, result.stderr
    assert {r["number"] for r in json.loads(result.stdout)["invoices"]} == numbers


def test_invoice_list_csv_header(run_cli, book):
    result = run(run_cli, book, "invoices", "list", "--as-of", AS_OF, "--csv")
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == [
        "id",
        "number",
        "customer",
        "currency",
        "total",
        "balance",
        "status",
        "issue_date",
        "due_date",
        "days_past_due",
        "aging_bucket",
        "systems",
        "disputed",
        "promise_to_pay",
        "in_collections",
        "gateway_id",
        "ledger_id",
    ]
    assert len(rows) == 6


@pytest.mark.parametrize(
    "args",
    [
        ("invoices", "list", "--status", "late"),
        ("invoices", "list", "--customer", "nobody"),
        ("invoices", "list", "--json", "--csv"),
        ("aging", "--as-of", "30/06/2024"),
        ("customers", "show", "nobody"),
        ("explain", "nothing-like-this"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(run_cli, book, args):
    result = run(run_cli, book, *args)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_status_lists_the_valid_ones(run_cli, book):
    result = run(run_cli, book, "invoices", "list", "--status", "late")
    assert "in_collections" in result.stderr and "partially_paid" in result.stderr


def test_explain_unknown_id_says_no_payment_or_invoice(run_cli, book):
    assert "no payment or invoice" in run(run_cli, book, "explain", "zzz").stderr


def test_payments_list_shows_allocated_and_unapplied(run_cli, book):
    result = run(run_cli, book, "payments", "list", "--json")
    rows = {r["id"]: r for r in json.loads(result.stdout)["payments"]}
    assert rows["pay1"]["allocated"] == "60.00" and rows["pay1"]["unapplied"] == "90.00"
    assert rows["pay2"]["allocated"] == "300.00" and rows["pay2"]["unapplied"] == "0.00"
    assert rows["pay1"]["systems"] == ["gateway"] and rows["pay1"]["customer"]["name"] == "Acme Trading Corp."


def test_unmatched_payments_are_those_with_money_left(run_cli, book):
    result = run(run_cli, book, "payments", "list", "--unmatched", "--json")
    assert [r["id"] for r in json.loads(result.stdout)["payments"]] == ["pay1"]


def test_payments_csv_header(run_cli, book):
    result = run(run_cli, book, "payments", "list", "--csv")
    header = next(csv.reader(io.StringIO(result.stdout)))
    assert header == [
        "id",
        "received_at",
        "amount",
        "currency",
        "fee",
        "net",
        "method",
        "customer",
        "payer",
        "remittance",
        "status",
        "allocated",
        "unapplied",
        "systems",
        "gateway_id",
        "ledger_id",
    ]


def test_customer_show_gives_refs_open_invoices_and_unapplied_credit(run_cli, book):
    result = run(run_cli, book, "customers", "show", "ACME trading", "--as-of", AS_OF, "--json")
    story = json.loads(result.stdout)["customer"]
    assert story["id"] == "acme"
    assert {(r["system"], r["id"]) for r in story["refs"]} == {("ledger", "C-1"), ("gateway", "cus_1")}
    assert {r["number"] for r in story["open_invoices"]} == {"INV-1", "INV-2"}
    assert story["balance"] == {"EUR": "150.00", "USD": "40.00"}
    assert story["unapplied"] == {"USD": "90.00"}
    table = run(run_cli, book, "customers", "show", "acme", "--as-of", AS_OF).stdout
    assert "Unapplied credit: 90.00 USD" in table and "cus_1" in table


def test_aging_buckets_per_customer_and_currency_never_mixed(run_cli, book):
    result = run(run_cli, book, "aging", "--as-of", AS_OF, "--json")
    report = json.loads(result.stdout)
    cells = {(r["customer"]["id"], r["currency"]): r for r in report["customers"]}
    assert set(cells) == {("acme", "USD"), ("acme", "EUR"), ("globex", "JPY")}
    assert cells[("acme", "USD")]["1-30"] == "40.00" and cells[("acme", "USD")]["total"] == "40.00"
    assert cells[("acme", "EUR")]["61-90"] == "150.00" and cells[("acme", "EUR")]["in_collections"] == "150.00"
    assert cells[("globex", "JPY")]["current"] == "5000"
    totals = {r["currency"]: r for r in report["totals"]}
    assert set(totals) == {"USD", "EUR", "JPY"}
    assert totals["JPY"]["total"] == "5000" and totals["EUR"]["total"] == "150.00"
    assert report["buckets"] == ["current", "1-30", "31-60", "61-90", "90+"]


def test_dso_is_receivables_over_last_90_days_sales_times_90(run_cli, book):
    report = json.loads(run(run_cli, book, "aging", "--as-of", AS_OF, "--json").stdout)
    dso = {d["currency"]: d for d in report["dso"]}
    # USD: 40.00 owed; sales in the 90 days to 06-30: INV-5 (40.00, issued 06-01) only
    assert dso["USD"] == {
        "currency": "USD",
        "receivables": "40.00",
        "credit_sales": "40.00",
        "window_days": 90,
        "days": "90.0",
    }
    # EUR: nothing issued in the window
    assert dso["EUR"]["days"] is None


def test_aging_on_a_given_date_matches_invoice_position(run_cli, book):
    _, store = book
    for day in ("2024-06-30", "2024-08-15", "2024-12-31"):
        report = json.loads(run(run_cli, book, "aging", "--as-of", day, "--json").stdout)
        invoices = store.list_invoices()
        extra = invoice_allocations(store, invoices)
        expected: dict[tuple[str, str, str], Decimal] = {}
        for inv in invoices:
            position = invoice_position(inv, date.fromisoformat(day), extra.get(inv.id, []))
            if position.aging_bucket and not position.balance.is_zero:
                key = (inv.customer_id, inv.currency, position.aging_bucket)
                expected[key] = expected.get(key, Decimal(0)) + position.balance.amount
        got = {
            (r["customer"]["id"], r["currency"], b): Decimal(r[b])
            for r in report["customers"]
            for b in report["buckets"]
            if Decimal(r[b])
        }
        assert got == expected, day


def test_aging_csv_header_and_total_rows(run_cli, book):
    rows = list(csv.reader(io.StringIO(run(run_cli, book, "aging", "--as-of", AS_OF, "--csv").stdout)))
    assert rows[0] == [
        "row",
        "customer_id",
        "customer",
        "currency",
        "current",
        "1-30",
        "31-60",
        "61-90",
        "90+",
        "total",
        "in_collections",
        "invoices",
        "unapplied",
        "credit",
        "net",
    ]
    assert sorted(r[3] for r in rows[1:] if r[0] == "total") == ["EUR", "JPY", "USD"]


def test_drift_says_what_differs_by_how_much_since_when_and_what_resolves_it(run_cli, book):
    result = run(run_cli, book, "drift", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["drift"] is True
    by_number = {(r["number"], r["system"]): r for r in report["records"]}
    # INV-5: paid in the ledger, still open in the gateway, and nothing queued to tell it
    gateway = by_number[("INV-5", "gateway")]
    assert (gateway["field"], gateway["holds"], gateway["should_hold"]) == ("status", "open", "paid")
    assert gateway["resolve"] == "connector sync --apply" and gateway["since"]
    # INV-1: 60.00 of the card payment applied, not yet in the ledger
    ledger = by_number[("INV-1", "ledger")]
    assert (ledger["field"], ledger["amount"], ledger["currency"]) == ("amount_paid", "60.00", "USD")
    assert (ledger["holds"], ledger["should_hold"]) == ("0.00 USD", "60.00 USD")
    assert set(by_number) == {("INV-5", "gateway"), ("INV-1", "ledger")}
    assert report["dangling_refs"] == [
        {
            "system": "crm",
            "type": "deal",
            "id": "D-9",
            "entity_kind": "invoice",
            "entity_id": None,
            "problem": "not linked to any record",
        }
    ]
    assert report["counts"] == {"records": 2, "gaps": 0, "dangling_refs": 1}
    text = run(run_cli, book, "drift").stdout
    assert "invoice INV-5: gateway invoice in_5 status: holds open, should hold paid" in text
    assert "invoice INV-1: ledger invoice L-1 amount_paid: holds 0.00 USD, should hold 60.00 USD by 60.00 USD" in text
    assert "resolve: connector sync --apply" in text


def test_explain_payment_tells_refs_allocations_and_audit(run_cli, book):
    result = run(run_cli, book, "explain", "ch_1", "--json")
    assert result.exit_code == 0, result.stderr
    story = json.loads(result.stdout)
    assert story["kind"] == "payment" and story["id"] == "pay1"
    assert story["refs"][0]["system"] == "gateway" and story["refs"][0]["id"] == "ch_1"
    [allocation] = story["allocations"]
    assert (
        allocation["invoice"] == "inv1"
        and allocation["amount"] == "60.00"
        and allocation["rule"] == "remittance_number"
    )
    assert [e["decision"] for e in story["audit"]] == ["matched by hand"]
    assert set(story) == {"kind", "id", "record", "refs", "allocations", "proposals", "audit", "actions"}


def test_explain_invoice_by_number(run_cli, book):
    result = run(run_cli, book, "explain", "INV-1")
    assert result.exit_code == 0, result.stderr
    assert "invoice INV-1" in result.stdout and "remittance_number" in result.stdout
    assert "matched by hand" in result.stdout  # the audit entry names the invoice in its inputs


# explain reads one record's neighbourhood (issue #18) ------------------------------------

UNRELATED = 200  # of each: customers, invoices, ledger payments, allocations, proposals, actions


def crowded_book(store):
    """INV-7 (ledger L-7, gateway in_7; 100.00, of which the ledger counts 20.00 paid) amid
    `UNRELATED` records of every kind, and decoys whose text contains INV-7's ids (L-70, inv70).
    INV-7's own story: a card payment allocated 30.00; a ledger payment P-7b of 20.00 linked to
    L-7 that finance took back (a planned `delete_payment`, no allocation), so the ledger's
    20.00 no longer counts; one proposal naming it; two actions aimed at its refs."""
    customers = [Customer(id="acme", name="Acme", refs=[Ref(system="ledger", object_type="customer", remote_id="C-7")])]
    customers += [
        Customer(
            id=f"c{n}", name=f"Other {n}", refs=[Ref(system="ledger", object_type="customer", remote_id=f"C-o{n}")]
        )
        for n in range(UNRELATED)
    ]
    store.store_page("ledger", "contacts", "customer", customers, None, rank=3)
    ledger = [invoice("inv7", "ledger", "L-7", "INV-7", "acme", "USD", "100.00", "20.00", due=date(2024, 6, 20))]
    ledger.append(invoice("inv70", "ledger", "L-70", "INV-70", "acme", "USD", "70.00", due=date(2024, 6, 20)))
    ledger += [
        invoice(f"inv-o{n}", "ledger", f"L-o{n}", f"INV-O{n}", f"c{n}", "USD", "10.00", "10.00", due=date(2024, 6, 1))
        for n in range(UNRELATED)
    ]
    kinds = {i.refs[0].remote_id: {"kind": "ledger"} for i in ledger}
    store.store_page("ledger", "invoices", "invoice", ledger, None, rank=3, extras=kinds)
    gateway = [invoice("inv7", "gateway", "in_7", "INV-7", "acme", "USD", "100.00", due=date(2024, 6, 20))]
    store.store_page("gateway", "invoices", "invoice", gateway, None, rank=1, extras={"in_7": {"kind": "gateway"}})

    def paid(id_, system, remote, amount, customer):
        return Payment(
            id=id_,
            amount=usd(amount),
            received_at=datetime(2024, 6, 25, tzinfo=UTC),
            customer_id=customer,
            refs=[Ref(system=system, object_type="payment", remote_id=remote)],
        )

    card = paid("pay-card", "gateway", "ch_7", "30.00", "acme")
    store.store_page("gateway", "charges", "payment", [card], None, rank=1, extras={"ch_7": {"kind": "gateway"}})
    payments = [paid("pay-7b", "ledger", "P-7b", "20.00", "acme"), paid("pay-70", "ledger", "P-70", "70.00", "acme")]
    payments += [paid(f"pay-o{n}", "ledger", f"P-o{n}", "10.00", f"c{n}") for n in range(UNRELATED)]
    links = {"P-7b": "L-7", "P-70": "L-70", **{f"P-o{n}": f"L-o{n}" for n in range(UNRELATED)}}
    extras = {remote: {"kind": "ledger", "links": {"invoice": target}} for remote, target in links.items()}
    store.store_page("ledger", "payments", "payment", payments, None, rank=3, extras=extras)

    def allocation(id_, payment, invoice_id, amount, rule):
        return Allocation(
            id=id_,
            payment_id=payment,
            invoice_id=invoice_id,
            amount=usd(amount),
            rule=rule,
            confidence=Decimal(1),
            reason=f"{rule} {invoice_id}",
        )

    def proposal(payment, *invoice_sets, reason="same amount"):
        candidates = [
            {"invoice_ids": list(ids), "amounts": ["10.00"], "rule": "amount", "confidence": "0.5", "reason": reason}
            for ids in invoice_sets
        ]
        row = {"payment_id": payment, "currency": "USD", "amount_minor": 1000, "candidates": candidates, "note": None}
        return {"id": decisions.proposal_id(payment, candidates), **row}

    with store.session() as session:
        decisions.save_allocations(
            session, [allocation("al-card", "pay-card", "inv7", "30.00", "remittance_number")], "applied"
        )
        decisions.save_allocations(
            session,
            [allocation("al-70", "pay-70", "inv70", "70.00", "ledger_record")]
            + [allocation(f"al-o{n}", f"pay-o{n}", f"inv-o{n}", "10.00", "ledger_record") for n in range(UNRELATED)],
            "applied",
        )
        decisions.replace_open_proposals(
            session,
            [
                proposal("pay-o0", ["inv70"], ["inv-o1", "inv7"]),  # names INV-7
                proposal("pay-o1", ["inv70"]),  # decoy: a longer id
                proposal("pay-o2", ["inv-o2"], reason="inv7"),  # decoy: named in a reason only
                *(proposal(f"pay-o{n}", [f"inv-o{n}"]) for n in range(3, UNRELATED)),
            ],
        )
    aimed = [
        Action(
            connection="ledger",
            kind="record_payment",
            target=Ref(system="ledger", object_type="invoice", remote_id="L-7"),
            payload={"amount": "30.00"},
            state="planned",
        ),
        Action(
            connection="gateway",
            kind="mark_paid",
            target=Ref(system="gateway", object_type="invoice", remote_id="in_7"),
            payload={},
            state="done",
        ),
    ]
    decoys = [
        Action(
            connection="ledger",
            kind="delete_payment",
            target=Ref(system="ledger", object_type="payment", remote_id="P-7b"),
            payload={},
            state="planned",
        ),
        Action(
            connection="ledger",
            kind="record_fee",
            target=Ref(system="ledger", object_type="payment", remote_id="L-7"),
            payload={},
            state="planned",
        ),
        Action(
            connection="ledger",
            kind="record_payment",
            target=Ref(system="ledger", object_type="invoice", remote_id="L-70"),
            payload={},
            state="planned",
        ),
        Action(connection="ledger", kind="send_invoice", target=None, payload={"invoice": "L-7"}, state="planned"),
    ]
    unrelated = [
        Action(
            connection="ledger",
            kind="record_payment",
            target=Ref(system="ledger", object_type="invoice", remote_id=f"L-o{n}"),
            payload={"n": n},
            state="done",
        )
        for n in range(UNRELATED)
    ]
    store.add_actions([aimed[0], *decoys[:2], aimed[1], *decoys[2:], *unrelated])
    store.audit("finance", "match", "payment", "pay-card", {"invoice": "inv7"}, "matched by hand")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def crowded(request, tmp_path):
    """(config path, store) of `crowded_book` on a SQLite file or a PostgreSQL schema of its own."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'state.db'}"
        else:
            schema = stack.enter_context(temporary_pg_schema(postgres_url_or_fail()))
            url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        config = tmp_path / "connector.toml"
        config.write_text(f'[database]\nurl = "{url}"\n' + CONNECTIONS)
        store = open_store(url)
        stack.callback(store.close)
        crowded_book(store)
        yield str(config), store


@contextmanager
def rows_returned(store):
    """The number of rows each SELECT run inside the block returned (the statements are
    recorded as they run and run again afterwards: the block only reads)."""
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH", "(SELECT")):
            statements.append((statement, parameters))

    counts = []
    event.listen(Engine, "after_cursor_execute", record)
    try:
        yield counts
    finally:
        event.remove(Engine, "after_cursor_execute", record)
    with store.engine.connect() as connection:
        counts += [len(connection.exec_driver_sql(s, p).all()) for s, p in statements]


def test_explain_of_one_invoice_reads_only_its_neighbourhood(run_cli, crowded):
    config, store = crowded
    with rows_returned(store) as counts:
        result = run_cli("--config", config, "explain", "INV-7", "--json")
    assert result.exit_code == 0, result.stderr

    story = json.loads(result.stdout)
    assert story["id"] == "inv7" and story["record"]["customer"] == {"id": "acme", "name": "Acme"}
    record = story["record"]  # the ledger's 20.00 was taken back, the card's 30.00 counts
    assert (record["amount_paid"], record["balance"], record["status"]) == ("0.00", "70.00", "partially_paid")
    assert [(r["system"], r["id"]) for r in story["refs"]] == [("gateway", "in_7"), ("ledger", "L-7")]
    assert [a["id"] for a in story["allocations"]] == ["al-card"]
    [named] = story["proposals"]
    assert named["payment"] == "pay-o0" and named["candidates"][1]["invoices"] == ["inv-o1", "inv7"]
    assert [(a["kind"], a["target"]) for a in story["actions"]] == [
        ("record_payment", {"system": "ledger", "type": "invoice", "id": "L-7"}),
        ("mark_paid", {"system": "gateway", "type": "invoice", "id": "in_7"}),
    ]
    assert [e["decision"] for e in story["audit"]] == ["matched by hand"]

    # A whole-book read returns at least UNRELATED rows in one statement.
    assert counts and max(counts) < 20, counts
    assert sum(counts) < UNRELATED, counts


def test_explain_of_one_payment_reads_only_its_neighbourhood(run_cli, crowded):
    config, store = crowded
    with rows_returned(store) as counts:
        result = run_cli("--config", config, "explain", "P-o0", "--json")
    assert result.exit_code == 0, result.stderr
    story = json.loads(result.stdout)
    assert story["id"] == "pay-o0" and story["record"]["customer"] == {"id": "c0", "name": "Other 0"}
    assert [a["id"] for a in story["allocations"]] == ["al-o0"]
    assert [p["payment"] for p in story["proposals"]] == ["pay-o0"]
    assert max(counts) < 20 and sum(counts) < UNRELATED, counts


def test_each_neighbourhood_read_finds_what_filtering_the_whole_book_found(crowded):
    _, store = crowded
    withdrawn = ledger_withdrawn(store)
    actions = store.list_actions()
    with store.session() as session:
        proposals = decisions.load_proposals(session, status=None)
    for found in store.list_invoices():
        assert ledger_withdrawn(store, [found.id]) == {k: v for k, v in withdrawn.items() if k == found.id}
        targets = {(r.system, r.object_type, r.remote_id) for r in found.refs}
        with store.session() as session:
            naming = decisions.proposals_naming(session, found.id)
            aimed = [e.action for e in outbox.entries(session, targets=targets)]
        assert naming == [p for p in proposals if any(found.id in c["invoice_ids"] for c in p["candidates"])]
        assert aimed == [
            a for a in actions if a.target and (a.target.system, a.target.object_type, a.target.remote_id) in targets
        ]
    assert withdrawn == {"inv7": usd("20.00")}


def money_left_on_ledger_payments(store):
    """On top of `crowded_book`: P-70 (70.00 on L-70) half refunded, P-o3 lost to a dispute,
    P-o4 failed: each ledger payment's money (partly) left, the ledger still counting it, and
    reconciliation took the ledger's record down to what each still pays (as it does)."""
    links = {"P-70": "L-70", "P-o3": "L-o3", "P-o4": "L-o4"}
    extras = {remote: {"kind": "ledger", "links": {"invoice": target}} for remote, target in links.items()}

    def short(id_, remote, amount, customer, **update):
        return Payment(
            id=id_,
            amount=usd(amount),
            received_at=datetime(2024, 6, 25, tzinfo=UTC),
            customer_id=customer,
            refs=[Ref(system="ledger", object_type="payment", remote_id=remote)],
            **update,
        )

    changed = [
        short("pay-70", "P-70", "70.00", "acme", amount_refunded=usd("35.00"), status="partially_refunded"),
        short("pay-o3", "P-o3", "10.00", "c3", dispute_status="lost", amount_disputed=usd("10.00")),
        short("pay-o4", "P-o4", "10.00", "c4", status="failed"),
    ]
    store.store_page("ledger", "payments", "payment", changed, None, rank=3, extras=extras)
    with store.session() as session:
        decisions.reduce_allocation(session, "al-70", usd("35.00"))
        decisions.delete_allocations(session, ["al-o3", "al-o4"])


def test_the_whole_books_withdrawn_figures_read_only_short_payments_and_equal_each_neighbourhood(crowded):
    """The whole book's figures are read from the payments the database finds short and the
    reversed ones (a sieve); each invoice's neighbourhood reads its own links: the same."""
    _, store = crowded
    money_left_on_ledger_payments(store)
    withdrawn = ledger_withdrawn(store)
    # P-o4 failed: the ledger's own view says so, it never counted (nothing to take back)
    assert withdrawn == {"inv7": usd("20.00"), "inv70": usd("35.00"), "inv-o3": usd("10.00")}
    for found in store.list_invoices():
        assert ledger_withdrawn(store, [found.id]) == {k: v for k, v in withdrawn.items() if k == found.id}


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_the_invoice_list_read_a_batch_at_a_time_is_the_whole_books_list(crowded, batch):
    _, store = crowded
    money_left_on_ledger_payments(store)
    customers = customers_by_id(store)
    day = date(2024, 7, 15)
    invoices = without_withdrawn(store, store.list_receivables())
    whole = reports.invoice_rows(invoices, customers, invoice_allocations(store, invoices), day)
    assert len(whole) == UNRELATED + 2
    assert list(invoice_listing(store, customers, day, batch=batch)) == whole
    some = {"acme", "c3", "c150"}
    listed = list(invoice_listing(store, customers, day, customer_ids=some, batch=batch))
    assert listed == [r for r in whole if r["customer"]["id"] in some] and len(listed) == 4


def test_invoices_list_json_gives_a_row_a_line_and_the_same_document(run_cli, crowded):
    config, store = crowded
    money_left_on_ledger_payments(store)
    result = run_cli("--config", config, "invoices", "list", "--json", "--as-of", "2024-07-15")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    lines = result.stdout.splitlines()
    rows = [json.loads(line.strip().rstrip(",")) for line in lines if line.startswith('    {"id": ')]
    assert rows == document["invoices"] and len(rows) == UNRELATED + 2
    assert list(document) == ["as_of", "invoices", "totals"]
    [usd_total] = document["totals"]
    owed = sum(Decimal(r["balance"]) for r in rows)
    assert usd_total == {"currency": "USD", "invoices": UNRELATED + 2, "total": "2170.00", "balance": str(owed)}
    inv7, o3 = (next(r for r in rows if r["id"] == i) for i in ("inv7", "inv-o3"))
    assert (inv7["amount_paid"], inv7["balance"], inv7["status"]) == ("0.00", "70.00", "partially_paid")
    assert (o3["amount_paid"], o3["balance"], o3["status"]) == ("0.00", "10.00", "open")  # its payment was lost


def test_a_customers_statement_read_from_its_neighbourhood_is_the_whole_books(crowded):
    """`statement` reads only the customer's records (and the payments on its invoices): INV-7's
    ledger payment taken back, a refund, a lost dispute and a failed payment read as the whole
    book reads them."""
    _, store = crowded
    money_left_on_ledger_payments(store)
    book = load_book(store)
    customers = customers_by_id(store)
    for customer_id in ("acme", "c3", "c4", "c150"):
        own = customer_book(store, customer_id)
        assert len(own.invoices) <= 2 and len(own.payments) <= 3
        for day in (date(2024, 7, 15), date.today()):
            whole = statement("Co", customers[customer_id], book, day, date(2024, 1, 1))
            assert statement("Co", customers[customer_id], own, day, date(2024, 1, 1)) == whole
    acme = statement("Co", customers["acme"], customer_book(store, "acme"), date.today(), date(2024, 1, 1))
    [usd] = acme["currencies"]
    assert [(i["number"], i["balance"]) for i in usd["open_items"]] == [("INV-7", "70.00"), ("INV-70", "70.00")]
