"""CSV and XLSX an accountant can open without running a payer's text, with numbers as numbers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

from openpyxl import load_workbook

from connector.exports import Column, Sheet, money_format, safe_cell, sheets_by_currency, write_csv, write_xlsx
from connector.model import Customer, Invoice, Payment
from connector.money import Money
from connector.reports.aging_sheets import aging_headers, aging_rows, aging_sheets
from connector.reports.as_at import Book, aging_at

NAMES = ["Société Générale Crème Brûlée", "株式会社カイシャ", "شركة الخليج", "Zoë Ørsted"]


def test_a_remittance_that_is_a_formula_is_written_as_text():
    out = io.StringIO()
    write_csv(out, ["remittance", "amount"], [["=1+1", "-12.50"], ['=HYPERLINK("http://x","y")', "3"]])
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[1] == ["'=1+1", "-12.50"]
    assert rows[2][0] == '\'=HYPERLINK("http://x","y")'


def test_every_dangerous_first_character_is_neutralised_and_numbers_are_not():
    for text in ("=A1", "+A1", "-A1", "@SUM(A1)", "\tA1", "\rA1", "-", "+12"):
        assert safe_cell(text) == "'" + text
    for value in ("-12.50", "0", "1234", Decimal("-3.5"), 7):
        assert safe_cell(value) == value
    assert safe_cell(None) == "" and safe_cell(date(2024, 9, 30)) == "2024-09-30"
    assert safe_cell("plain text") == "plain text" and safe_cell("a=b") == "a=b"


def test_excel_csv_has_a_bom_and_keeps_accented_cjk_and_arabic_names(tmp_path):
    path = tmp_path / "names.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        write_csv(handle, ["customer", "balance"], [[n, "1.00"] for n in NAMES], excel=True)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r[0] for r in rows[1:]] == NAMES


COLUMNS = [Column("customer"), Column("currency"), Column("due", "date"), Column("balance", "money")]
ROWS = [
    ["=cmd|' /C calc'!A0", "USD", "2024-09-01", "100.10"],
    ["Acme", "USD", "2024-09-15", "-0.20"],
    ["株式会社カイシャ", "JPY", "2024-08-01", "50000"],
    ["شركة الخليج", "KWD", "2024-07-01", "1.250"],
    ["شركة الخليج", "KWD", "2024-07-02", "0.001"],
]


def test_the_workbook_has_one_sheet_per_currency_with_typed_cells_and_exact_totals(tmp_path):
    path = tmp_path / "book.xlsx"
    write_xlsx(path, sheets_by_currency("Aging", COLUMNS, ROWS, 1, totals=True))
    book = load_workbook(path)
    assert book.sheetnames == ["Aging JPY", "Aging KWD", "Aging USD"]
    for title, currency in (("Aging JPY", "JPY"), ("Aging KWD", "KWD"), ("Aging USD", "USD")):
        sheet = book[title]
        values = list(sheet.iter_rows(values_only=True))
        body, total = values[1:-1], values[-1]
        assert total[0] == "TOTAL"
        assert Decimal(str(total[3])).quantize(Decimal("0.001")) == sum(
            (Decimal(r[3]) for r in ROWS if r[1] == currency), Decimal(0)
        )
        assert all(isinstance(r[3], (int, float)) for r in body)
        assert all(isinstance(r[2], datetime) for r in body)  # dates are dates, not text
        assert sheet.cell(2, 4).number_format == money_format(currency)
        assert sheet.freeze_panes == "A2"  # the header stays in view
        assert all(cell.font.b for cell in sheet[1]) and all(cell.font.b for cell in sheet[sheet.max_row])
        assert not any(cell.font.b for cell in sheet[2])
        assert sheet.column_dimensions["A"].width >= len(COLUMNS[0].header) + 2
    usd = book["Aging USD"]
    assert usd.cell(2, 1).value == "=cmd|' /C calc'!A0" and usd.cell(2, 1).data_type == "s"  # text, not a formula
    assert usd.cell(3, 4).value == -0.2  # a negative amount is a number
    assert money_format("JPY") == "#,##0;-#,##0" and money_format("KWD") == "#,##0.000;-#,##0.000"


def test_a_sheet_title_is_made_valid_and_unique(tmp_path):
    path = tmp_path / "titles.xlsx"
    sheet = Sheet("a/b:c*?[d] and a very long title indeed", [Column("x")], [["1"]])
    write_xlsx(path, [sheet, sheet])
    names = load_workbook(path).sheetnames
    assert len(names) == 2 and all(len(n) <= 31 and not set("/:*?[]") & set(n) for n in names)


def test_times_are_written_as_utc_times(tmp_path):
    path = tmp_path / "times.xlsx"
    moment = datetime(2024, 9, 30, 23, 30, tzinfo=UTC)
    write_xlsx(path, [Sheet("log", [Column("at", "date")], [[moment.isoformat()]])])
    assert load_workbook(path)["log"].cell(2, 1).value == datetime(2024, 9, 30, 23, 30)


def test_the_aging_workbook_totals_equal_the_reports_totals_and_the_rows_sums(tmp_path):
    report = aging_at(as_at_book(), AGING_CUSTOMERS, date(2024, 9, 30))
    path = tmp_path / "aging.xlsx"
    write_xlsx(path, aging_sheets(report))
    book = load_workbook(path)
    assert book.sheetnames == ["Aging JPY", "Aging USD"]
    for total in report["totals"]:
        sheet = book[f"Aging {total['currency']}"]
        header, *body = list(sheet.iter_rows(values_only=True))
        rows, (last,) = body[:-1], body[-1:]
        assert last[1] == "TOTAL"
        for name in ("current", "1-30", "total", "unapplied", "net"):
            column = header.index(name)
            assert Decimal(str(last[column])) == Decimal(total[name])
            assert sum(Decimal(str(r[column])) for r in rows) == Decimal(total[name])


def test_the_aging_csv_carries_net_columns_and_neutralises_names():
    report = aging_at(as_at_book(), AGING_CUSTOMERS, date(2024, 9, 30))
    out = io.StringIO()
    write_csv(out, aging_headers(report), aging_rows(report))
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0][-3:] == ["unapplied", "credit", "net"]
    assert ["customer", "hostile", '\'=HYPERLINK("x")', "USD"] == rows[1][:4]
    assert rows[-1][:4] == ["total", "", "TOTAL", "USD"]


AGING_CUSTOMERS = {
    "hostile": Customer(id="hostile", name='=HYPERLINK("x")'),
    "kaisha": Customer(id="kaisha", name="株式会社カイシャ"),
}


def as_at_book() -> Book:
    def inv(id_, customer, currency, total, due):
        m = Money.of(total, currency)
        zero = Money.zero(currency)
        return Invoice(
            id=id_,
            customer_id=customer,
            currency=currency,
            issue_date=date(2024, 6, 1),
            due_date=due,
            subtotal=m,
            tax=zero,
            total=m,
            amount_paid=zero,
            amount_credited=zero,
        )

    return Book(
        invoices=[
            inv("a", "hostile", "USD", "100.10", date(2024, 9, 15)),
            inv("b", "hostile", "USD", "0.20", date(2024, 10, 15)),
            inv("c", "kaisha", "JPY", "5000", date(2024, 6, 30)),
        ],
        payments=[
            Payment(
                id="p",
                amount=Money.of("7.77", "USD"),
                received_at=datetime(2024, 9, 1, tzinfo=UTC),
                customer_id="hostile",
            )
        ],
    )
