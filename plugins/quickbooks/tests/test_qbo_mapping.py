"""The QuickBooks mapping: Intuit's examples become valid canonical records; status derived
from Balance, TotalAmt and the void marker; deleted objects void; money exact per currency."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from qbo_support import credit_memo, customer, exact, invoice, payment, tombstone

from connector.plugin import Money
from connector.plugin_testing import invoice_position, load_mapping


@pytest.fixture(scope="module")
def mapper():
    return load_mapping("connector_quickbooks:mapping.toml", connection="ledger")


def test_invoice_example_maps_exactly(mapper):
    got = mapper.map_one("invoices", exact(invoice()))
    inv = got.record
    assert inv.number == "1037" and inv.currency == "USD"
    assert inv.total == Money.of("362.07", "USD")
    assert inv.subtotal == Money.of("335.25", "USD") and inv.tax == Money.of("26.82", "USD")
    assert [line.amount.amount for line in inv.lines] == [Decimal("275.00"), Decimal("12.75"), Decimal("47.50")]
    assert inv.lines[2].quantity == 5 and inv.lines[2].unit_price == Decimal("9.5")
    assert inv.issue_date == date(2014, 9, 19) and inv.due_date == date(2014, 10, 19)
    assert inv.status == "open" and inv.amount_paid == Money.zero("USD")
    assert got.links == {"customer": "24"}
    assert got.hints["invoice_number"] == "1037"
    # the local offset is kept as the moment it names
    assert got.ref.remote_updated_at == datetime(2014, 9, 19, 13, 16, 17, tzinfo=timezone(timedelta(hours=-7)))
    assert got.ref.remote_updated_at.astimezone(UTC) == datetime(2014, 9, 19, 20, 16, 17, tzinfo=UTC)


@pytest.mark.parametrize(
    ("balance", "status", "paid"),
    [("362.07", "open", "0.00"), ("100.00", "partially_paid", "262.07"), ("0", "paid", "362.07")],
)
def test_status_derived_from_balance(mapper, balance, status, paid):
    inv = mapper.map_one("invoices", exact(invoice(balance=balance))).record
    assert inv.status == status
    assert inv.amount_paid == Money.of(paid, "USD")


def test_overdue_comes_from_the_due_date_not_a_status(mapper):
    inv = mapper.map_one("invoices", exact(invoice())).record
    position = invoice_position(inv, date(2014, 11, 1))
    assert position.status == "open" and position.days_past_due == 13 and position.aging_bucket == "1-30"


def test_voided_invoice_maps_to_void(mapper):
    voided = exact(invoice(balance="0"))
    voided.update(TotalAmt=Decimal("0"), PrivateNote="Voided")
    for line in voided["Line"]:
        line["Amount"] = Decimal("0")
    voided["TxnTaxDetail"]["TotalTax"] = Decimal("0")
    inv = mapper.map_one("invoices", voided).record
    assert inv.status == "void" and inv.total == Money.zero("USD") and inv.lines == []


def test_a_zero_invoice_without_the_marker_is_not_void(mapper):
    zero = exact(invoice(balance="0"))
    zero.update(TotalAmt=Decimal("0"), Line=[], TxnTaxDetail={"TotalTax": 0})
    assert mapper.map_one("invoices", zero).record.status == "paid"


@pytest.mark.parametrize("stream", ["invoices", "payments", "credit_memos"])
def test_deleted_objects_map_to_void(mapper, stream):
    raw = {**tombstone("130", "2024-05-31T09:00:00-07:00"), "CurrencyRef": {"value": "USD"}}
    got = mapper.map_one(stream, raw)
    assert got.deleted
    record = got.record
    if stream == "payments":
        assert record.status == "failed" and record.amount == Money.zero("USD")
    else:
        assert record.status == "void" and record.total == Money.zero("USD")


@pytest.mark.parametrize(
    ("currency", "total", "tax", "expected"),
    [("JPY", "5000", "500", "4500"), ("KWD", "12.345", "0.615", "11.730"), ("USD", "0.30", "0.10", "0.20")],
)
def test_money_exact_in_the_invoice_currency(mapper, currency, total, tax, expected):
    raw = exact(invoice(balance=total))
    raw.update(
        CurrencyRef={"value": currency}, TotalAmt=Decimal(total), Line=[], TxnTaxDetail={"TotalTax": Decimal(tax)}
    )
    inv = mapper.map_one("invoices", raw).record
    assert inv.currency == currency
    assert inv.total == Money.of(total, currency) and str(inv.total.amount) == total
    assert inv.subtotal.amount == Decimal(expected)


def test_lines_left_out_when_they_do_not_add_up(mapper):
    raw = exact(invoice())
    raw["Line"].insert(
        3, {"DetailType": "DiscountLineDetail", "Amount": Decimal("10"), "DiscountLineDetail": {"PercentBased": False}}
    )
    raw["TotalAmt"], raw["Balance"] = Decimal("352.07"), Decimal("352.07")
    inv = mapper.map_one("invoices", raw).record
    assert inv.lines == [] and inv.subtotal == Money.of("325.25", "USD")


def test_customer_payment_and_credit_memo_examples(mapper):
    cust = mapper.map_one("customers", exact(customer(PrimaryEmailAddr={"Address": "a@x.test, b@x.test"})))
    assert cust.record.name == "King's Groceries" and cust.record.emails == ["a@x.test", "b@x.test"]
    assert cust.record.billing_contact == "James King"
    pay = mapper.map_one("payments", exact(payment()))
    assert pay.record.amount == Money.of("65.00", "USD") and pay.record.status == "succeeded"
    assert pay.record.received_at == datetime(2015, 1, 16, tzinfo=UTC)
    assert pay.links == {"invoice": "70", "customer": "20"} and pay.hints["linked_invoices"] == ["70"]
    assert pay.record.remittance == "1001"
    memo = mapper.map_one("credit_memos", exact(credit_memo()))
    assert memo.record.total == Money.of("50", "USD") and memo.record.status == "open"
    applied = mapper.map_one("credit_memos", exact(credit_memo(RemainingCredit=0, Balance=0))).record
    assert applied.status == "applied"


def test_long_payment_reference_is_read_back_whole(mapper):
    raw = exact(payment(PaymentRefNum="ch_3PabcdefghijklmnopQ"[:21], PrivateNote="ch_3PabcdefghijklmnopQRST"))
    assert mapper.map_one("payments", raw).record.remittance == "ch_3PabcdefghijklmnopQRST"
