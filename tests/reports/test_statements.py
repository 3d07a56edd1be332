"""`connector statement`: a customer's statement as text, JSON, HTML and PDF, on a stored book.

Book (ledger Xero-like, gateway Stripe-like), statement day 2024-09-30, period 09-01 to 09-30:
- Acme (a hostile name): INV-1 USD 100.00 due 08-31, paid in the ledger by a payment received
  10-03 (after the day: still owed, 30 days late); INV-2 300.00 due 10-05 (current); INV-4 80.00
  due 07-31 with 30.00 credited by credit note CN-1 of 09-25 (owes 50.00, 61 days late). A card
  payment of 350.00 received 09-20 (remittance `=1+1`) was applied to INV-2 after the day: on
  the day it is unapplied. Total 450.00, unapplied 350.00, net 100.00.
- Zoë Ørsted: INV-9 JPY 12000 due 09-10 (20 days late).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pypdf import PdfReader

from connector.model import Allocation, CreditNote, Customer, Invoice, Payment, Ref
from connector.money import Money
from connector.reconcile.history import load_book
from connector.reports.as_at import positions_at
from connector.state import reconciliation as decisions
from connector.state.store import open_store

HOSTILE = 'Acme <script>alert("x")</script> & Sons'
CONFIG = """
[companies.default]
legal_name = "Northwind <Books> & Co"

[connections.gateway]
provider = "stripe"
base_url = "http://127.0.0.1:9/stripe"
api_key = "sk_test_statements"

[connections.ledger]
provider = "xero"
base_url = "http://127.0.0.1:9/xero"
token_url = "http://127.0.0.1:9/xero/oauth/token"
tenant_id = "00000000-0000-4000-8000-000000000001"
client_id = "statements"
client_secret = "statements-secret"
refresh_token = "statements-refresh"
"""


def invoice(id_, remote, number, customer, currency, total, *, issued, due, paid="0", credited="0"):
    def m(v):
        return Money.of(v, currency)

    return Invoice(
        id=id_,
        number=number,
        customer_id=customer,
        currency=currency,
        issue_date=issued,
        due_date=due,
        subtotal=m(total),
        tax=m("0"),
        total=m(total),
        amount_paid=m(paid),
        amount_credited=m(credited),
        refs=[Ref(system="ledger", object_type="invoice", remote_id=remote)],
    )


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    directory = tmp_path_factory.mktemp("statements")
    config = directory / "connector.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{directory / "state.db"}"\n' + CONFIG)
    store = open_store(f"sqlite:///{directory / 'state.db'}")
    customers = [
        Customer(id="acme", name=HOSTILE, refs=[Ref(system="ledger", object_type="customer", remote_id="C-1")]),
        Customer(id="zoe", name="Zoë Ørsted", refs=[Ref(system="ledger", object_type="customer", remote_id="C-2")]),
    ]
    store.store_page("ledger", "contacts", "customer", customers, None, rank=3)
    invoices = [
        invoice(
            "inv1",
            "L-1",
            "INV-1",
            "acme",
            "USD",
            "100.00",
            issued=date(2024, 8, 1),
            due=date(2024, 8, 31),
            paid="100.00",
        ),
        invoice("inv2", "L-2", "INV-2", "acme", "USD", "300.00", issued=date(2024, 9, 5), due=date(2024, 10, 5)),
        invoice(
            "inv4",
            "L-4",
            "INV-4",
            "acme",
            "USD",
            "80.00",
            issued=date(2024, 7, 1),
            due=date(2024, 7, 31),
            credited="30.00",
        ),
        invoice("inv9", "L-9", "INV-9", "zoe", "JPY", "12000", issued=date(2024, 8, 11), due=date(2024, 9, 10)),
    ]
    store.store_page("ledger", "invoices", "invoice", invoices, None, rank=3)
    note = CreditNote(
        number="CN-1",
        currency="USD",
        issue_date=date(2024, 9, 25),
        total=Money.of("30.00", "USD"),
        remaining=Money.of("0", "USD"),
        status="applied",
        refs=[Ref(system="ledger", object_type="credit_note", remote_id="CN-R1")],
    )
    store.store_page(
        "ledger",
        "credit_notes",
        "credit_note",
        [note],
        None,
        extras={"CN-R1": {"links": {"customer": "C-1"}, "hints": {"allocated_invoices": ["L-4"]}}},
    )
    card = Payment(
        id="g1",
        amount=Money.of("350.00", "USD"),
        received_at=datetime(2024, 9, 20, 10, tzinfo=UTC),
        method="card",
        customer_id="acme",
        remittance="=1+1",
        refs=[Ref(system="gateway", object_type="payment", remote_id="ch_1")],
    )
    bank = Payment(
        id="p1",
        amount=Money.of("100.00", "USD"),
        received_at=datetime(2024, 10, 3, 10, tzinfo=UTC),
        method="bank",
        customer_id="acme",
        refs=[Ref(system="ledger", object_type="payment", remote_id="P-1")],
    )
    store.store_page("gateway", "charges", "payment", [card], None, rank=1)
    store.store_page("ledger", "payments", "payment", [bank], None, rank=3)
    with store.session() as session:
        decisions.save_allocations(
            session,
            [
                Allocation(
                    id="al-card",
                    payment_id="g1",
                    invoice_id="inv2",
                    amount=Money.of("300.00", "USD"),
                    rule="manual",
                    confidence=Decimal(1),
                    reason="matched by hand",
                    confirmed_by="finance",
                ),
                Allocation(
                    id="al-bank",
                    payment_id="p1",
                    invoice_id="inv1",
                    amount=Money.of("100.00", "USD"),
                    rule="ledger_record",
                    confidence=Decimal(1),
                    reason="recorded in ledger",
                    confirmed_by="ledger",
                ),
            ],
            "applied",
        )
    yield str(config), store
    store.close()


def run(run_cli, book, *args):
    return run_cli("--config", book[0], *args)


def test_the_stored_book_reads_back_with_its_credit_notes_and_dates(book):
    loaded = load_book(book[1])
    (credit,) = loaded.credit_notes
    assert (credit.customer_id, credit.invoice_ids, credit.note.number) == ("acme", ("inv4",), "CN-1")
    positions = positions_at(loaded, date(2024, 9, 24))
    assert positions["inv4"].balance == Money.of("80.00", "USD")  # CN-1 is dated 09-25
    assert positions_at(loaded, date(2024, 9, 25))["inv4"].balance == Money.of("50.00", "USD")


def test_the_statement_as_json_has_the_hand_computed_figures(run_cli, book):
    result = run(run_cli, book, "statement", "acme", "--as-at", "2024-09-30", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["company"] == "Northwind <Books> & Co" and data["customer"]["name"] == HOSTILE
    assert data["period"] == {"from": "2024-09-01", "to": "2024-09-30"}
    (usd,) = data["currencies"]
    assert [(r["number"], r["balance"], r["aging_bucket"]) for r in usd["open_items"]] == [
        ("INV-4", "50.00", "61-90"),
        ("INV-1", "100.00", "1-30"),
        ("INV-2", "300.00", "current"),
    ]
    assert [(p["date"], p["amount"], p["unapplied"]) for p in usd["payments"]] == [("2024-09-20", "350.00", "350.00")]
    assert [(c["number"], c["total"]) for c in usd["credits"]] == [("CN-1", "30.00")]
    assert (usd["total"], usd["unapplied"], usd["credit"], usd["net"]) == ("450.00", "350.00", "0.00", "100.00")
    assert usd["aging"] == {"current": "300.00", "1-30": "100.00", "31-60": "0.00", "61-90": "50.00", "90+": "0.00"}


def test_the_text_statement_is_headed_with_the_company_customer_and_day(run_cli, book):
    result = run(run_cli, book, "statement", "Ørsted", "--as-at", "2024-09-30")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "Statement of account from Northwind <Books> & Co",
        "To: Zoë Ørsted",
        "Date: 2024-09-30  (period 2024-09-01 to 2024-09-30)",
    ]
    assert "== JPY ==" in lines and "Net balance:       12000 JPY" in lines
    assert any(line.startswith("INV-9") and "12000" in line and "1-30" in line for line in lines)


def test_the_html_statement_escapes_what_customers_and_payers_wrote(run_cli, book, tmp_path):
    target = tmp_path / "acme.html"
    result = run(run_cli, book, "statement", "acme", "--as-at", "2024-09-30", "--html", str(target))
    assert result.exit_code == 0, result.stderr
    page = target.read_text(encoding="utf-8")
    assert "<script>" not in page and "alert(&quot;x&quot;)" in page
    assert "Acme &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Sons" in page
    assert "Northwind &lt;Books&gt; &amp; Co" in page
    assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere


def test_the_pdf_statement_is_a_pdf_naming_the_customer(run_cli, book, tmp_path):
    target = tmp_path / "zoe.pdf"
    result = run(run_cli, book, "statement", "zoe", "--as-at", "2024-09-30", "--pdf", str(target))
    assert result.exit_code == 0, result.stderr
    assert target.read_bytes().startswith(b"%PDF")
    reader = PdfReader(str(target))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "Zoë Ørsted" in text and "Northwind" in text and "12000" in text


def test_a_payment_after_the_statement_day_is_neither_listed_nor_counted(run_cli, book):
    result = run(run_cli, book, "statement", "acme", "--as-at", "2024-10-31", "--from", "2024-10-01", "--json")
    assert result.exit_code == 0, result.stderr
    (usd,) = json.loads(result.stdout)["currencies"]
    # the period holds only October's payment; the ledger payment of 10-03 settles INV-1
    assert [p["date"] for p in usd["payments"]] == ["2024-10-03"]
    assert "INV-1" not in [r["number"] for r in usd["open_items"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--as-at", "0001-01-01"), "--as-at: 0001-01-01 is out of range"),
        (("--as-at", "２０２４-09-30"), "--as-at: '２０２４-09-30' is not a date"),
        (("--as-at", "2024-02-30"), "is not a date"),
        (("--as-at", "2024-09-30", "--from", "2024-10-01"), "--from: 2024-10-01 is after"),
        (("--html", "a.html", "--pdf", "a.pdf"), "give one of --html, --pdf or --json"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(run_cli, book, args, message):
    result = run(run_cli, book, "statement", "acme", *args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_an_unknown_or_ambiguous_customer_is_a_usage_error(run_cli, book):
    unknown = run(run_cli, book, "statement", "nobody")
    assert unknown.exit_code == 2 and "no customer 'nobody'" in unknown.stderr
    several = run(run_cli, book, "statement", "s")  # in both names
    assert several.exit_code == 2 and "names 2 customers" in several.stderr
