"""The finance report rules of `connector.reports`, called directly with plain values.

The CLI tests (test_reports_book.py) run one small book end to end; these pin each rule at its
edges: the aging buckets' boundaries, DSO's window and rounding, per-currency totals, exact JPY
and KWD amounts, allocations the ledger does not hold yet, status filters, unapplied money,
customer look-up, drift between systems' views, and the explain rows.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from connector import reports
from connector.model import AGING_BUCKETS, Allocation, Customer, Invoice, Payment, Ref
from connector.money import Money

AS_OF = date(2024, 6, 30)

ACME = Customer(
    id="acme",
    name="Acme Trading",
    emails=["ap@acme.example"],
    refs=[
        Ref(system="ledger", object_type="customer", remote_id="C-1"),
        Ref(system="gateway", object_type="customer", remote_id="cus_acme"),
    ],
)
GLOBEX = Customer(id="globex", name="globex gmbh", refs=[Ref(system="ledger", object_type="customer", remote_id="C-2")])
CUSTOMERS = {"acme": ACME, "globex": GLOBEX}


def invoice(
    invoice_id: str,
    total: str,
    *,
    currency: str = "USD",
    customer: str | None = "acme",
    paid: str = "0",
    due: date = AS_OF,
    issued: date | None = None,
    status: str = "open",
    number: str | None = None,
    **flags: Any,
) -> Invoice:
    money = lambda value: Money.of(value, currency)  # noqa: E731
    return Invoice(
        id=invoice_id,
        number=number or invoice_id.upper(),
        customer_id=customer,
        currency=currency,
        issue_date=issued or min(due, AS_OF) - timedelta(days=120),
        due_date=due,
        subtotal=money(total),
        tax=money("0"),
        total=money(total),
        amount_paid=money(paid),
        amount_credited=money("0"),
        status=status,  # type: ignore[arg-type]
        refs=[Ref(system="ledger", object_type="invoice", remote_id=f"L-{invoice_id}")],
        **flags,
    )


def payment(
    payment_id: str,
    amount: str,
    *,
    currency: str = "USD",
    customer: str | None = "acme",
    day: int = 1,
    status: str = "succeeded",
    refunded: str | None = None,
) -> Payment:
    return Payment(
        id=payment_id,
        amount=Money.of(amount, currency),
        received_at=datetime(2024, 6, day, 12, tzinfo=UTC),
        customer_id=customer,
        status=status,  # type: ignore[arg-type]
        amount_refunded=None if refunded is None else Money.of(refunded, currency),
        refs=[Ref(system="gateway", object_type="payment", remote_id=f"ch_{payment_id}")],
    )


def allocation(payment_id: str, invoice_id: str, amount: str, currency: str = "USD", **extra: Any) -> Allocation:
    fields: dict[str, Any] = {"rule": "remittance_number", "confidence": Decimal("0.98"), **extra}
    return Allocation(payment_id=payment_id, invoice_id=invoice_id, amount=Money.of(amount, currency), **fields)


def rows_of(*invoices: Invoice, allocations: dict[str, list[Allocation]] | None = None) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in reports.invoice_rows(invoices, CUSTOMERS, allocations or {}, AS_OF)}


def aging(*invoices: Invoice, allocations: dict[str, list[Allocation]] | None = None) -> dict[str, Any]:
    return reports.aging_report(invoices, CUSTOMERS, allocations or {}, AS_OF)


def cells(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["customer"]["id"], r["currency"]): r for r in report["customers"]}


# Aging buckets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days_late", "bucket"),
    [
        (-15, "current"),
        (0, "current"),
        (1, "1-30"),
        (30, "1-30"),
        (31, "31-60"),
        (60, "31-60"),
        (61, "61-90"),
        (90, "61-90"),
        (91, "90+"),
        (400, "90+"),
    ],
)
def test_aging_bucket_edges_by_days_past_due(days_late, bucket):
    late = invoice("inv1", "100.00", due=AS_OF - timedelta(days=days_late))
    row = rows_of(late)["inv1"]
    assert row["days_past_due"] == max(days_late, 0)
    assert row["aging_bucket"] == bucket
    [cell] = aging(late)["customers"]
    assert {b: cell[b] for b in AGING_BUCKETS} == {b: ("100.00" if b == bucket else "0.00") for b in AGING_BUCKETS}
    assert cell["total"] == "100.00" and cell["invoices"] == 1


def test_an_invoice_issued_after_the_as_of_date_is_not_in_aging_nor_in_credit_sales():
    future = invoice("inv1", "100.00", issued=AS_OF + timedelta(days=1), due=AS_OF + timedelta(days=31))
    report = aging(future)
    assert report["customers"] == [] and report["totals"] == [] and report["dso"] == []


def test_paid_void_and_draft_invoices_are_not_in_aging_but_uncollectible_is():
    late = AS_OF - timedelta(days=45)
    report = aging(
        invoice("paid", "100.00", paid="100.00", due=late, status="paid"),
        invoice("void", "200.00", due=late, status="void"),
        invoice("draft", "300.00", due=late, status="draft"),
        invoice("lost", "400.00", due=late, status="uncollectible"),
    )
    [cell] = report["customers"]
    assert (cell["31-60"], cell["total"], cell["invoices"]) == ("400.00", "400.00", 1)


def test_aging_totals_are_per_currency_and_never_add_two_currencies():
    report = aging(
        invoice("a-usd", "100.00", due=AS_OF - timedelta(days=5)),
        invoice("a-eur", "200.00", currency="EUR", due=AS_OF - timedelta(days=40)),
        invoice("g-usd", "50.25", customer="globex", due=AS_OF - timedelta(days=95)),
        invoice("g-jpy", "7000", currency="JPY", customer="globex", due=AS_OF),
    )
    assert set(cells(report)) == {("acme", "USD"), ("acme", "EUR"), ("globex", "USD"), ("globex", "JPY")}
    totals = {r["currency"]: r for r in report["totals"]}
    assert set(totals) == {"EUR", "JPY", "USD"}
    assert (totals["USD"]["1-30"], totals["USD"]["90+"], totals["USD"]["total"], totals["USD"]["invoices"]) == (
        "100.00",
        "50.25",
        "150.25",
        2,
    )
    assert (totals["EUR"]["31-60"], totals["EUR"]["total"]) == ("200.00", "200.00")
    assert (totals["JPY"]["current"], totals["JPY"]["total"]) == ("7000", "7000")
    # no grand total: nothing anywhere adds 150.25 USD, 200.00 EUR and 7000 JPY together
    assert [r["currency"] for r in report["totals"]] == ["EUR", "JPY", "USD"]
    assert all(set(r) >= {"currency", "total"} for r in report["totals"])


def test_aging_rows_are_sorted_by_customer_name_then_currency():
    report = aging(
        invoice("g", "1.00", customer="globex"),
        invoice("a-usd", "1.00"),
        invoice("a-eur", "1.00", currency="EUR"),
    )
    assert [(r["customer"]["name"], r["currency"]) for r in report["customers"]] == [
        ("Acme Trading", "EUR"),
        ("Acme Trading", "USD"),
        ("globex gmbh", "USD"),
    ]


def test_in_collections_is_part_of_the_bucket_total_not_added_to_it():
    report = aging(
        invoice("chased", "300.00", paid="100.00", due=AS_OF - timedelta(days=70), in_collections=True),
        invoice("normal", "50.00", due=AS_OF - timedelta(days=70)),
    )
    [cell] = report["customers"]
    assert (cell["61-90"], cell["in_collections"], cell["total"]) == ("250.00", "200.00", "250.00")
    [total] = report["totals"]
    assert total["in_collections"] == "200.00"


def test_jpy_and_kwd_amounts_stay_exact_in_invoice_rows_and_aging():
    yen = invoice("jpy", "123457", currency="JPY", paid="457", due=AS_OF - timedelta(days=3))
    fils = invoice("kwd", "10.125", currency="KWD", due=AS_OF - timedelta(days=33))
    allocations = {"kwd": [allocation("p1", "kwd", "5.005", "KWD")]}
    rows = rows_of(yen, fils, allocations=allocations)
    assert (rows["jpy"]["total"], rows["jpy"]["amount_paid"], rows["jpy"]["balance"]) == ("123457", "457", "123000")
    kwd = rows["kwd"]
    assert (kwd["total"], kwd["balance"], kwd["status"]) == ("10.125", "5.120", "partially_paid")
    report = aging(yen, fils, allocations=allocations)
    assert cells(report)[("acme", "JPY")]["1-30"] == "123000"
    assert cells(report)[("acme", "KWD")]["31-60"] == "5.120"
    assert {r["currency"]: r["total"] for r in report["totals"]} == {"JPY": "123000", "KWD": "5.120"}


# DSO -------------------------------------------------------------------------------------------


def dso_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["currency"]: d for d in report["dso"]}


def test_dso_is_receivables_over_the_last_90_days_credit_sales_times_90():
    report = aging(
        invoice("recent", "300.00", paid="150.00", issued=date(2024, 6, 1), due=date(2024, 7, 1)),
        invoice("old", "100.00", issued=date(2024, 1, 1), due=date(2024, 1, 31)),
    )
    # receivables 150.00 + 100.00 = 250.00; credit sales in the window: 300.00 -> 250/300 x 90 = 75.0
    assert dso_of(report)["USD"] == {
        "currency": "USD",
        "receivables": "250.00",
        "credit_sales": "300.00",
        "window_days": 90,
        "days": "75.0",
    }


def test_dso_window_takes_the_as_of_day_and_leaves_out_the_day_90_days_before():
    start = AS_OF - timedelta(days=90)
    report = aging(
        invoice("too-old", "1000.00", paid="1000.00", status="paid", issued=start, due=start),
        invoice("first-day", "100.00", paid="100.00", status="paid", issued=start + timedelta(days=1), due=AS_OF),
        invoice("as-of", "20.00", issued=AS_OF, due=AS_OF + timedelta(days=30)),
    )
    dso = dso_of(report)["USD"]
    assert (dso["credit_sales"], dso["receivables"]) == ("120.00", "20.00")
    assert dso["days"] == "15.0"


def test_dso_leaves_draft_and_void_invoices_out_of_credit_sales():
    issued = AS_OF - timedelta(days=10)
    report = aging(
        invoice("sold", "100.00", issued=issued, due=AS_OF + timedelta(days=20)),
        invoice("draft", "900.00", status="draft", issued=issued, due=AS_OF + timedelta(days=20)),
        invoice("void", "900.00", status="void", issued=issued, due=AS_OF + timedelta(days=20)),
    )
    assert (dso_of(report)["USD"]["credit_sales"], dso_of(report)["USD"]["days"]) == ("100.00", "90.0")


def test_dso_is_null_without_credit_sales_and_zero_when_nothing_is_owed():
    report = aging(
        invoice("old-eur", "100.00", currency="EUR", issued=date(2023, 1, 1), due=date(2023, 2, 1)),
        invoice("new-usd", "80.00", paid="80.00", status="paid", issued=AS_OF - timedelta(days=5), due=AS_OF),
    )
    dso = dso_of(report)
    assert (dso["EUR"]["receivables"], dso["EUR"]["credit_sales"], dso["EUR"]["days"]) == ("100.00", "0.00", None)
    assert (dso["USD"]["receivables"], dso["USD"]["credit_sales"], dso["USD"]["days"]) == ("0.00", "80.00", "0.0")


def test_dso_rounds_half_up_to_one_decimal():
    # 1.00 owed on 1800.00 sold: 1/1800 x 90 = 0.05 days, which rounds up to 0.1 (not to 0.0)
    report = aging(invoice("big", "1800.00", paid="1799.00", issued=AS_OF - timedelta(days=1), due=AS_OF))
    assert dso_of(report)["USD"]["days"] == "0.1"


def test_dso_is_kept_per_currency():
    issued = AS_OF - timedelta(days=30)
    report = aging(
        invoice("usd", "100.00", issued=issued, due=AS_OF),
        invoice("jpy", "9000", currency="JPY", paid="6000", issued=issued, due=AS_OF),
    )
    dso = dso_of(report)
    assert (dso["USD"]["days"], dso["JPY"]["days"]) == ("90.0", "30.0")
    assert (dso["JPY"]["receivables"], dso["JPY"]["credit_sales"]) == ("3000", "9000")


# Invoice rows: allocations the ledger does not hold yet ------------------------------------------


def test_an_allocation_the_ledger_does_not_hold_yet_lowers_the_balance_shown():
    rows = rows_of(
        invoice("inv1", "100.00", due=AS_OF - timedelta(days=10)),
        allocations={"inv1": [allocation("card", "inv1", "60.00")]},
    )
    row = rows["inv1"]
    assert row["amount_paid"] == "0.00"  # the ledger's own figure, unchanged
    assert (row["balance"], row["status"], row["aging_bucket"]) == ("40.00", "partially_paid", "1-30")


def test_an_allocation_covering_the_balance_makes_the_invoice_paid_and_never_negative():
    rows = rows_of(
        invoice("inv1", "100.00", paid="30.00", due=AS_OF - timedelta(days=10)),
        allocations={"inv1": [allocation("card", "inv1", "80.00")]},
    )
    row = rows["inv1"]
    assert (row["balance"], row["status"], row["days_past_due"], row["aging_bucket"]) == ("0.00", "paid", 0, None)
    assert reports.select_invoices([row], overdue=True) == []


def test_allocations_of_another_invoice_do_not_lower_this_one():
    rows = rows_of(
        invoice("inv1", "100.00"),
        invoice("inv2", "100.00"),
        allocations={"inv2": [allocation("card", "inv2", "100.00")]},
    )
    assert (rows["inv1"]["balance"], rows["inv2"]["balance"]) == ("100.00", "0.00")


def test_allocations_lower_the_aging_report_too():
    report = aging(
        invoice("inv1", "100.00", due=AS_OF - timedelta(days=45)),
        allocations={"inv1": [allocation("card", "inv1", "25.50")]},
    )
    [cell] = report["customers"]
    assert (cell["31-60"], cell["total"]) == ("74.50", "74.50")


def test_an_invoice_row_names_an_unknown_customer_as_unknown():
    row = rows_of(invoice("inv1", "1.00", customer="ghost"))["inv1"]
    assert row["customer"] == {"id": "ghost", "name": "(unknown customer)"}


def test_invoice_rows_sort_by_customer_name_then_due_date_then_number():
    rows = reports.invoice_rows(
        [
            invoice("g1", "1.00", customer="globex", due=date(2024, 1, 1)),
            invoice("a2", "1.00", due=date(2024, 5, 1), number="INV-2"),
            invoice("a1", "1.00", due=date(2024, 5, 1), number="INV-1"),
            invoice("a0", "1.00", due=date(2024, 6, 1), number="INV-0"),
        ],
        CUSTOMERS,
        {},
        AS_OF,
    )
    assert [r["id"] for r in rows] == ["a1", "a2", "a0", "g1"]


def test_invoice_row_shows_systems_and_flags():
    flagged = invoice("inv1", "10.00", disputed=True, in_collections=True, promise_to_pay=date(2024, 7, 15))
    deal = Ref(system="crm", object_type="deal", remote_id="D-1")
    flagged = flagged.model_copy(update={"refs": [*flagged.refs, deal]})
    row = rows_of(flagged)["inv1"]
    assert row["systems"] == ["crm", "ledger"]
    assert {"system": "crm", "type": "deal", "id": "D-1"} in row["refs"]
    assert (row["disputed"], row["in_collections"], row["promise_to_pay"]) == (True, True, "2024-07-15")


# Status filters --------------------------------------------------------------------------------

LATE = AS_OF - timedelta(days=20)
BOOK = [
    invoice("open", "100.00", due=LATE),
    invoice("part", "100.00", paid="40.00", due=LATE),
    invoice("paid", "100.00", paid="100.00", status="paid", due=LATE),
    invoice("void", "100.00", status="void", due=LATE),
    invoice("draft", "100.00", status="draft", due=LATE),
    invoice("notdue", "100.00", due=AS_OF + timedelta(days=5)),
    invoice("duetoday", "100.00", due=AS_OF),
    invoice("disputed", "100.00", due=LATE, disputed=True),
    invoice("chased", "100.00", due=LATE, in_collections=True),
    invoice("settled-chase", "100.00", paid="100.00", status="paid", due=LATE, in_collections=True),
]


def selected(**criteria: Any) -> set[str]:
    rows = reports.invoice_rows(BOOK, CUSTOMERS, {}, AS_OF)
    return {r["id"] for r in reports.select_invoices(rows, **criteria)}


@pytest.mark.parametrize(
    ("status", "ids"),
    [
        ("open", {"open", "notdue", "duetoday", "disputed", "chased"}),
        ("partially_paid", {"part"}),
        ("paid", {"paid", "settled-chase"}),
        ("void", {"void"}),
        ("draft", {"draft"}),
        ("uncollectible", set()),
        ("disputed", {"disputed"}),
        ("in_collections", {"chased", "settled-chase"}),
    ],
)
def test_select_invoices_by_derived_status_or_flag(status, ids):
    assert selected(status=status) == ids


def test_overdue_keeps_invoices_past_due_with_something_owed():
    assert selected(overdue=True) == {"open", "part", "disputed", "chased"}


def test_overdue_combines_with_a_status_or_a_flag():
    assert selected(status="in_collections", overdue=True) == {"chased"}
    assert selected(status="partially_paid", overdue=True) == {"part"}
    assert selected(status="paid", overdue=True) == set()


def test_no_filter_keeps_every_invoice():
    assert selected() == {i.id for i in BOOK}


# Payments: unapplied money ---------------------------------------------------------------------


def payment_row(p: Payment, *allocations: Allocation) -> dict[str, Any]:
    assert p.id is not None
    [row] = reports.payment_rows([p], CUSTOMERS, {p.id: list(allocations)})
    return row


def test_an_overpayment_leaves_the_excess_unapplied():
    row = payment_row(payment("p1", "150.00"), allocation("p1", "inv1", "100.00"), allocation("p1", "inv2", "20.00"))
    assert (row["allocated"], row["unapplied"]) == ("120.00", "30.00")
    assert reports.unmatched([row]) == [row]


def test_a_fully_applied_payment_is_not_unmatched():
    row = payment_row(payment("p1", "150.00"), allocation("p1", "inv1", "150.00"))
    assert (row["allocated"], row["unapplied"]) == ("150.00", "0.00")
    assert reports.unmatched([row]) == []


def test_a_refund_lowers_what_is_left_to_apply():
    p = payment("p1", "100.00", status="partially_refunded", refunded="30.00")
    allocated, unapplied = reports.payment_application(p, [allocation("p1", "inv1", "50.00")])
    assert (allocated, unapplied) == (Money.of("50.00", "USD"), Money.of("20.00", "USD"))


def test_unapplied_is_never_negative_before_a_refund_is_reversed():
    p = payment("p1", "100.00", status="refunded", refunded="100.00")
    row = payment_row(p, allocation("p1", "inv1", "100.00"))
    assert (row["allocated"], row["unapplied"], row["amount_refunded"]) == ("100.00", "0.00", "100.00")


@pytest.mark.parametrize("status", ["failed", "pending"])
def test_failed_and_pending_payments_have_nothing_to_apply(status):
    row = payment_row(payment("p1", "100.00", status=status))
    assert (row["allocated"], row["unapplied"]) == ("0.00", "0.00")
    assert reports.unmatched([row]) == []


def test_unmatched_lists_only_payments_with_money_left():
    rows = reports.payment_rows(
        [payment("none", "10.00", day=3), payment("part", "10.00", day=2), payment("full", "10.00", day=1)],
        CUSTOMERS,
        {"part": [allocation("part", "inv1", "9.99")], "full": [allocation("full", "inv1", "10.00")]},
    )
    assert [r["id"] for r in rows] == ["full", "part", "none"]  # oldest first
    assert [(r["id"], r["unapplied"]) for r in reports.unmatched(rows)] == [("part", "0.01"), ("none", "10.00")]


def test_payment_rows_keep_jpy_and_kwd_exact():
    yen = payment_row(payment("y", "5000", currency="JPY"), allocation("y", "inv", "4999", "JPY"))
    fils = payment_row(payment("k", "5.125", currency="KWD"), allocation("k", "inv", "5.005", "KWD"))
    assert (yen["amount"], yen["allocated"], yen["unapplied"], yen["currency"]) == ("5000", "4999", "1", "JPY")
    assert (fils["amount"], fils["allocated"], fils["unapplied"], fils["currency"]) == (
        "5.125",
        "5.005",
        "0.120",
        "KWD",
    )


def test_a_payment_row_names_its_customer_and_systems():
    row = payment_row(payment("p1", "1.00", customer="globex"))
    assert row["customer"] == {"id": "globex", "name": "globex gmbh"}
    assert row["systems"] == ["gateway"] and row["refs"] == [{"system": "gateway", "type": "payment", "id": "ch_p1"}]


# Customers -------------------------------------------------------------------------------------

ACME_GROUP = Customer(id="acme-group", name="ACME Group Holdings")


def test_match_customers_by_canonical_id_wins_over_a_name_match():
    assert [c.id for c in reports.match_customers([ACME, GLOBEX, ACME_GROUP], "acme")] == ["acme"]


def test_match_customers_by_any_systems_remote_id():
    assert [c.id for c in reports.match_customers([ACME, GLOBEX], "cus_acme")] == ["acme"]
    assert [c.id for c in reports.match_customers([ACME, GLOBEX], "C-2")] == ["globex"]


def test_match_customers_by_part_of_the_name_ignoring_case_and_spaces():
    found = reports.match_customers([GLOBEX, ACME_GROUP, ACME], "  ACM ")
    assert [c.name for c in found] == ["ACME Group Holdings", "Acme Trading"]  # sorted by name
    assert [c.id for c in reports.match_customers([ACME, GLOBEX], "GmbH")] == ["globex"]


def test_match_customers_finds_nothing_for_an_unknown_query():
    assert reports.match_customers([ACME, GLOBEX], "initech") == []


def test_customer_story_keeps_balances_and_unapplied_credit_per_currency():
    invoices = reports.invoice_rows(
        [
            invoice("usd", "100.00", due=AS_OF - timedelta(days=3)),
            invoice("usd2", "20.50", due=AS_OF),
            invoice("eur", "80.00", currency="EUR", paid="30.00", due=AS_OF),
            invoice("paid", "500.00", paid="500.00", status="paid", due=AS_OF),
            invoice("void", "500.00", status="void", due=AS_OF),
        ],
        CUSTOMERS,
        {"usd": [allocation("p1", "usd", "60.00")]},
        AS_OF,
    )
    payments = reports.payment_rows(
        [payment("p1", "75.00"), payment("p2", "10.000", currency="KWD"), payment("p3", "5.00", currency="EUR")],
        CUSTOMERS,
        {"p1": [allocation("p1", "usd", "60.00")], "p3": [allocation("p3", "eur", "5.00", "EUR")]},
    )
    story = reports.customer_story(ACME, invoices, payments)
    assert {r["id"] for r in story["open_invoices"]} == {"usd", "usd2", "eur"}
    assert story["balance"] == {"EUR": "50.00", "USD": "60.50"}
    # EUR is fully applied, so it is left out; no currency is added to another
    assert story["unapplied"] == {"KWD": "10.000", "USD": "15.00"}
    assert story["emails"] == ["ap@acme.example"]
    assert {(r["system"], r["id"]) for r in story["refs"]} == {("ledger", "C-1"), ("gateway", "cus_acme")}


def test_customer_story_shows_the_credit_limit_with_its_currency():
    limited = ACME.model_copy(update={"credit_limit": Money.of("5000", "KWD")})
    story = reports.customer_story(limited, [], [])
    assert story["credit_limit"] == {"amount": "5000.000", "currency": "KWD"}
    assert (story["balance"], story["unapplied"], story["open_invoices"]) == ({}, {}, [])


# Rows of allocations, proposals and stories -----------------------------------------------------


def test_allocation_row_gives_the_amount_at_its_exponent_and_who_confirmed():
    made = allocation(
        "pay1",
        "inv1",
        "5.1",
        "KWD",
        id="al-1",
        rule="manual",
        confidence=Decimal(1),
        reason="by hand",
        confirmed_by="ana",
    )
    row = reports.allocation_row(made, "applied", datetime(2024, 6, 2, 9, 0, tzinfo=UTC))
    assert row == {
        "id": "al-1",
        "status": "applied",
        "payment": "pay1",
        "invoice": "inv1",
        "amount": "5.100",
        "currency": "KWD",
        "rule": "manual",
        "confidence": "1",
        "reason": "by hand",
        "confirmed_by": "ana",
        "created_at": "2024-06-02T09:00:00+00:00",
    }


def test_proposal_row_converts_minor_units_and_ranks_candidates():
    row = reports.proposal_row(
        {
            "id": "pr-1",
            "payment_id": "payk",
            "currency": "KWD",
            "amount_minor": 5125,
            "candidates": [
                {
                    "invoice_ids": ["inv1", "inv2"],
                    "amounts": ["3.000", "2.125"],
                    "rule": "subset_sum",
                    "confidence": "0.55",
                    "reason": "sum of two",
                },
                {
                    "invoice_ids": ["inv3"],
                    "amounts": ["5.125"],
                    "currency": "KWD",
                    "rule": "exact_amount_unique",
                    "confidence": "0.80",
                    "reason": "same amount",
                },
            ],
        }
    )
    assert (row["amount"], row["currency"], row["status"], row["decided_by"], row["decided_at"]) == (
        "5.125",
        "KWD",
        "open",
        None,
        None,
    )
    assert [(c["rank"], c["invoices"], c["amounts"], c["currency"], c["rule"]) for c in row["candidates"]] == [
        (1, ["inv1", "inv2"], ["3.000", "2.125"], "KWD", "subset_sum"),
        (2, ["inv3"], ["5.125"], "KWD", "exact_amount_unique"),
    ]
    yen = reports.proposal_row(
        {
            "id": "pr-2",
            "payment_id": "payj",
            "currency": "JPY",
            "amount_minor": 5000,
            "candidates": [],
            "status": "rejected",
            "decided_by": "bob",
            "decided_at": datetime(2024, 6, 3, tzinfo=UTC),
        }
    )
    assert (yen["amount"], yen["status"], yen["decided_by"], yen["decided_at"]) == (
        "5000",
        "rejected",
        "bob",
        "2024-06-03T00:00:00+00:00",
    )


def test_explain_story_tells_events_oldest_first_without_repeating_refs():
    record = {"id": "pay1", "amount": "10.00", "refs": [{"system": "gateway"}]}
    later = {"id": "al-2", "created_at": "2024-06-03T00:00:00+00:00"}
    earlier = {"id": "al-1", "created_at": "2024-06-01T00:00:00+00:00"}
    audit = [
        {"at": "2024-06-02T00:00:00", "seq": 2, "action": "match"},
        {"at": "2024-06-02T00:00:00", "seq": 1, "action": "propose"},
        {"at": "2024-06-01T00:00:00", "seq": 9, "action": "allocate"},
    ]
    story = reports.explain_story("payment", record, [{"system": "gateway"}], [later, earlier], [], audit, [])
    assert (story["kind"], story["id"]) == ("payment", "pay1")
    assert story["record"] == {"id": "pay1", "amount": "10.00"}
    assert [a["id"] for a in story["allocations"]] == ["al-1", "al-2"]
    assert [e["action"] for e in story["audit"]] == ["allocate", "propose", "match"]
