"""The month-end side of the finance workbench, through the CLI, on a hand-made book with
payments after the close.

Book, closed at D = 2024-09-30 (today is long after):
- Acme Ltd (USD): INV-0015 100.00 issued 08-01 due 08-31, paid in the ledger by P-1 received
  10-03. INV-0016 300.00 issued 09-01 due 10-05; a card payment of 350.00 (fee 10.45, remittance
  `=1+1`) received 09-20 was applied to it by the connector after the close (today). INV-0017
  40.00 issued 10-02, open.
- Kaisha KK (JPY): INV-J1 50000 issued 06-01 due 06-30; 20000 paid by P-2 on 09-15 and 10000 by
  P-3 on 10-10 (ledger).

Hand-computed, as at D: Acme USD INV-0015 owes 100.00, 30 days late (1-30); INV-0016 owes 300.00
(current); INV-0017 does not exist yet; the card's 350.00 sits unapplied (P-1 is not received):
total 400.00, unapplied 350.00, net 50.00. Kaisha JPY owes 30000, 92 days late (90+), net 30000.
Today: Acme USD owes 40.00 (INV-0017), 50.00 of the card unapplied, net -10.00; Kaisha 20000.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from connector.model import Allocation, Customer, Invoice, Payment, Ref
from connector.money import Money
from connector.state import reconciliation as decisions
from connector.state.store import open_store

D = "2024-09-30"
LEDGER = """
[connections.ledger]
provider = "xero"
base_url = "http://127.0.0.1:9/xero"
token_url = "http://127.0.0.1:9/xero/oauth/token"
tenant_id = "00000000-0000-4000-8000-000000000001"
client_id = "workbench-book"
client_secret = "workbench-book-secret"
refresh_token = "workbench-book-refresh"
"""


def invoice(id_, number, customer, currency, total, *, issued, due, paid="0"):
    def money(value):
        return Money.of(value, currency)

    return Invoice(
        id=id_,
        number=number,
        customer_id=customer,
        currency=currency,
        issue_date=issued,
        due_date=due,
        subtotal=money(total),
        tax=money("0"),
        total=money(total),
        amount_paid=money(paid),
        amount_credited=money("0"),
        refs=[Ref(system="ledger", object_type="invoice", remote_id=f"L-{number}")],
    )


def payment(id_, customer, currency, value, received, system="ledger", **extra):
    return Payment(
        id=id_,
        amount=Money.of(value, currency),
        received_at=datetime(*received, 14, 0, tzinfo=UTC),
        customer_id=customer,
        refs=[Ref(system=system, object_type="payment", remote_id=f"R-{id_}")],
        **extra,
    )


def recorded(id_, payment_id, invoice_id, value, currency, rule="ledger_record"):
    return Allocation(
        id=id_,
        payment_id=payment_id,
        invoice_id=invoice_id,
        amount=Money.of(value, currency),
        rule=rule,
        confidence=Decimal(1),
        reason="recorded in ledger" if rule == "ledger_record" else "remittance names INV-0016",
    )


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    directory = tmp_path_factory.mktemp("workbench_book")
    config = directory / "connector.toml"
    url = f"sqlite:///{directory / 'state.db'}"
    config.write_text(f'[database]\nurl = "{url}"\n' + LEDGER)
    store = open_store(url)
    customers = [
        Customer(
            id="acme",
            name="Acme Ltd",
            emails=["ap@acme.test"],
            refs=[Ref(system="ledger", object_type="customer", remote_id="C-1")],
        ),
        Customer(id="kaisha", name="Kaisha KK", refs=[Ref(system="ledger", object_type="customer", remote_id="C-2")]),
    ]
    store.store_page("ledger", "contacts", "customer", customers, None, rank=3)
    invoices = [
        invoice(
            "i15", "INV-0015", "acme", "USD", "100.00", issued=date(2024, 8, 1), due=date(2024, 8, 31), paid="100.00"
        ),
        invoice("i16", "INV-0016", "acme", "USD", "300.00", issued=date(2024, 9, 1), due=date(2024, 10, 5)),
        invoice("i17", "INV-0017", "acme", "USD", "40.00", issued=date(2024, 10, 2), due=date(2024, 11, 1)),
        invoice(
            "ij1", "INV-J1", "kaisha", "JPY", "50000", issued=date(2024, 6, 1), due=date(2024, 6, 30), paid="30000"
        ),
    ]
    store.store_page("ledger", "invoices", "invoice", invoices, None, rank=3)
    card = payment(
        "card",
        "acme",
        "USD",
        "350.00",
        (2024, 9, 20),
        system="gateway",
        fee=Money.of("10.45", "USD"),
        method="card",
        remittance="=1+1",
    )
    store.store_page("gateway", "charges", "payment", [card], None, rank=1)
    ledger_payments = [
        payment("p1", "acme", "USD", "100.00", (2024, 10, 3)),
        payment("p2", "kaisha", "JPY", "20000", (2024, 9, 15)),
        payment("p3", "kaisha", "JPY", "10000", (2024, 10, 10)),
    ]
    store.store_page("ledger", "payments", "payment", ledger_payments, None, rank=3)
    with store.session() as session:
        decisions.save_allocations(
            session,
            [
                recorded("a1", "p1", "i15", "100.00", "USD"),
                recorded("a2", "p2", "ij1", "20000", "JPY"),
                recorded("a3", "p3", "ij1", "10000", "JPY"),
                recorded("a4", "card", "i16", "300.00", "USD", rule="remittance_number"),
            ],
            "applied",
        )
    yield str(config)
    store.close()


def run(run_cli, config, *args):
    return run_cli("--config", config, *args)


def json_of(result):
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def by_customer(report):
    return {(r["customer"]["name"], r["currency"]): r for r in report["customers"]}


# aging --as-at ----------------------------------------------------------------------------


def test_aging_as_at_gives_the_balances_of_that_day_not_todays(run_cli, book):
    report = json_of(run(run_cli, book, "aging", "--as-at", D, "--json"))
    rows = by_customer(report)
    acme = rows[("Acme Ltd", "USD")]
    assert (acme["current"], acme["1-30"], acme["total"], acme["invoices"]) == ("300.00", "100.00", "400.00", 2)
    assert (acme["unapplied"], acme["credit"], acme["net"]) == ("350.00", "0.00", "50.00")
    kaisha = rows[("Kaisha KK", "JPY")]
    assert (kaisha["90+"], kaisha["total"], kaisha["unapplied"], kaisha["net"]) == ("30000", "30000", "0", "30000")
    totals = {t["currency"]: t for t in report["totals"]}
    assert (totals["USD"]["total"], totals["USD"]["unapplied"], totals["USD"]["net"]) == ("400.00", "350.00", "50.00")
    assert totals["JPY"]["total"] == "30000"


def test_todays_aging_gains_the_unapplied_and_net_columns(run_cli, book):
    report = json_of(run(run_cli, book, "aging", "--json"))
    acme = by_customer(report)[("Acme Ltd", "USD")]
    assert (acme["total"], acme["unapplied"], acme["net"]) == ("40.00", "50.00", "-10.00")
    assert by_customer(report)[("Kaisha KK", "JPY")]["total"] == "20000"
    assert {"as_of", "buckets", "customers", "totals", "dso"} <= set(report)


def test_aging_as_of_still_re_ages_todays_balances(run_cli, book):
    report = json_of(run(run_cli, book, "aging", "--as-of", D, "--json"))
    kaisha = by_customer(report)[("Kaisha KK", "JPY")]
    assert (kaisha["90+"], kaisha["total"], kaisha["net"]) == ("20000", "20000", "20000")


def test_aging_sorted_worst_first_and_cut_to_the_top_keeps_whole_totals(run_cli, book):
    report = json_of(run(run_cli, book, "aging", "--as-at", D, "--sort", "total", "--top", "1", "--json"))
    assert [(r["customer"]["name"], r["currency"]) for r in report["customers"]] == [
        ("Kaisha KK", "JPY"),
        ("Acme Ltd", "USD"),
    ]
    table = run(run_cli, book, "aging", "--as-at", D, "--top", "1").stdout
    assert "unapplied" in table.splitlines()[0] and "the totals are the whole book's" in table


def test_aging_xlsx_totals_equal_aging_json(run_cli, book, tmp_path):
    report = json_of(run(run_cli, book, "aging", "--as-at", D, "--json"))
    path = tmp_path / "aging.xlsx"
    result = run(run_cli, book, "aging", "--as-at", D, "--xlsx", str(path))
    assert result.exit_code == 0, result.stderr
    workbook = load_workbook(path)
    assert workbook.sheetnames == ["Aging JPY", "Aging USD"]
    for total in report["totals"]:
        sheet = workbook[f"Aging {total['currency']}"]
        header = [c.value for c in sheet[1]]
        (line,) = [[c.value for c in row] for row in sheet.iter_rows(min_row=2) if row[1].value == "TOTAL"]
        for field in [*report["buckets"], "total", "unapplied", "net"]:
            assert Decimal(str(line[header.index(field)])) == Decimal(total[field]), field


def test_aging_csv_for_excel_starts_with_a_bom(run_cli, book):
    result = run(run_cli, book, "aging", "--as-at", D, "--excel")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("\ufeffrow,customer_id,customer,currency")
    assert "\r\n" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("aging", "--as-of", "0001-01-01"),
        ("aging", "--as-of", "9999-12-31"),
        ("aging", "--as-at", "２０２４-09-30"),
        ("invoices", "list", "--as-of", "0001-01-01"),
        ("customers", "show", "acme", "--as-of", "9999-12-31"),
        ("aging", "--top", "0"),
        ("aging", "--sort", "size"),
        ("aging", "--as-at", D, "--as-of", D),
    ],
)
def test_out_of_range_dates_and_bad_options_are_a_one_line_usage_error(run_cli, book, args):
    result = run(run_cli, book, *args)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "internal error" not in result.stderr


# invoices and payments --------------------------------------------------------------------


def test_an_invoice_number_is_found_whatever_its_case(run_cli, book):
    story = json_of(run(run_cli, book, "explain", "inv-0015", "--json"))
    assert story["kind"] == "invoice" and story["record"]["number"] == "INV-0015"


def test_invoice_list_has_totals_per_currency(run_cli, book):
    data = json_of(run(run_cli, book, "invoices", "list", "--json"))
    assert data["totals"] == [
        {"currency": "JPY", "invoices": 1, "total": "50000", "balance": "20000"},
        {"currency": "USD", "invoices": 3, "total": "440.00", "balance": "40.00"},
    ]
    table = run(run_cli, book, "invoices", "list").stdout
    assert "total USD: 3 invoices, total 440.00, balance 40.00" in table


def test_invoice_export_carries_issue_and_due_dates_and_each_systems_id(run_cli, book, tmp_path):
    rows = list(csv.DictReader(io.StringIO(run(run_cli, book, "invoices", "list", "--csv").stdout)))
    inv15 = next(r for r in rows if r["number"] == "INV-0015")
    assert (inv15["issue_date"], inv15["due_date"], inv15["ledger_id"]) == ("2024-08-01", "2024-08-31", "L-INV-0015")
    path = tmp_path / "invoices.xlsx"
    assert run(run_cli, book, "invoices", "list", "--xlsx", str(path)).exit_code == 0
    sheet = load_workbook(path)["Invoices USD"]
    header = [c.value for c in sheet[1]]
    first = [c.value for c in sheet[2]]
    assert isinstance(first[header.index("issue_date")], datetime)
    assert [c.value for c in sheet[sheet.max_row]][header.index("total")] == 440


def test_payments_list_shows_ids_fee_net_and_totals(run_cli, book):
    data = json_of(run(run_cli, book, "payments", "list", "--customer", "acme", "--json"))
    card = next(r for r in data["payments"] if r["id"] == "card")
    assert (card["fee"], card["net"], card["unapplied"]) == ("10.45", "339.55", "50.00")
    assert {r["id"] for r in data["payments"]} == {"card", "p1"}
    assert data["totals"] == [
        {
            "currency": "USD",
            "payments": 2,
            "amount": "450.00",
            "fee": "10.45",
            "net": "439.55",
            "allocated": "400.00",
            "unapplied": "50.00",
        }
    ]
    header, *lines = run(run_cli, book, "payments", "list").stdout.splitlines()
    assert header.split()[:6] == ["id", "received", "amount", "currency", "fee", "net"]
    assert any(line.startswith("card ") and "339.55" in line for line in lines)
    assert "total JPY: 2 payments, amount 30000, fee 0, net 30000, allocated 30000, unapplied 0" in lines


def test_payment_csv_neutralises_a_remittance_formula(run_cli, book):
    result = run(run_cli, book, "payments", "list", "--csv")
    card = next(r for r in csv.DictReader(io.StringIO(result.stdout)) if r["id"] == "card")
    assert card["remittance"] == "'=1+1"
    assert card["net"] == "339.55"
    assert run(run_cli, book, "payments", "list", "--excel").stdout.startswith("\ufeffid,")


# customers list ---------------------------------------------------------------------------


def test_customers_list_gives_name_email_balance_and_unapplied(run_cli, book):
    data = json_of(run(run_cli, book, "customers", "list", "--json"))
    assert data["customers"] == [
        {
            "id": "acme",
            "name": "Acme Ltd",
            "emails": ["ap@acme.test"],
            "balance": {"USD": "40.00"},
            "unapplied": {"USD": "50.00"},
        },
        {"id": "kaisha", "name": "Kaisha KK", "emails": [], "balance": {"JPY": "20000"}, "unapplied": {}},
    ]
    rows = list(csv.reader(io.StringIO(run(run_cli, book, "customers", "list", "--csv").stdout)))
    assert rows[0] == ["id", "name", "email", "currency", "balance", "unapplied"]
    assert rows[1] == ["acme", "Acme Ltd", "ap@acme.test", "USD", "40.00", "50.00"]
    table = run(run_cli, book, "customers", "list").stdout
    assert "2 customer(s)" in table
