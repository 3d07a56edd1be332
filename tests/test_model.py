import random
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from connector.model import (
    Action,
    Allocation,
    Invoice,
    InvoiceLine,
    InvoicePosition,
    Payment,
    PaymentApplication,
    Ref,
    aging_bucket,
    invoice_position,
    standing,
)
from connector.money import Money


def usd(amount):
    return Money.of(amount, "USD")


def invoice(**overrides):
    data = dict(
        number="INV-0042",
        currency="USD",
        issue_date=date(2026, 1, 1),
        due_date=date(2026, 1, 31),
        lines=[InvoiceLine(description="Consulting", quantity=Decimal(2), unit_price=Decimal(50), amount=usd(100))],
        subtotal=usd(100),
        tax=usd(10),
        total=usd(110),
    )
    data.update(overrides)
    return Invoice(**data)


def test_invoice_totals_that_do_not_add_up_name_the_total():
    with pytest.raises(ValidationError, match="total: 111.00 USD is not subtotal"):
        invoice(total=usd(111))


def test_lines_that_do_not_sum_to_the_subtotal_name_the_subtotal():
    with pytest.raises(ValidationError, match="subtotal: .* not the sum of the lines"):
        invoice(subtotal=usd(90), total=usd(100))


def test_negative_amount_on_an_invoice_is_refused_naming_the_field():
    with pytest.raises(ValidationError, match="lines.0.amount: negative amount"):
        invoice(lines=[InvoiceLine(amount=usd(-100))], subtotal=usd(0), tax=usd(0), total=usd(0))


def test_unknown_invoice_currency_is_refused():
    with pytest.raises(ValidationError) as info:
        invoice(currency="XYZ")
    assert info.value.errors()[0]["loc"] == ("currency",)


def test_amount_in_another_currency_than_the_invoice_is_refused():
    with pytest.raises(ValidationError, match="tax: currency EUR differs"):
        invoice(tax=Money.of(10, "EUR"), total=usd(110))


def test_paid_and_credited_above_total_is_refused():
    with pytest.raises(ValidationError, match="amount_paid: .* exceed total"):
        invoice(amount_paid=usd(100), amount_credited=usd(20))


def test_allocations_above_the_payment_amount_are_refused():
    payment = Payment(id="p1", amount=usd(100), received_at=datetime(2026, 2, 1, tzinfo=UTC))
    allocs = [
        Allocation(payment_id="p1", invoice_id="i1", amount=usd(60), rule="manual", confidence=Decimal(1)),
        Allocation(payment_id="p1", invoice_id="i2", amount=usd("40.01"), rule="manual", confidence=Decimal(1)),
    ]
    with pytest.raises(ValidationError, match="allocations: 100.01 USD allocated exceeds"):
        PaymentApplication(payment=payment, allocations=allocs)
    ok = PaymentApplication(payment=payment, allocations=allocs[:1])
    assert ok.unapplied == usd(40)


def test_a_refunded_payment_can_no_longer_be_allocated():
    payment = Payment(
        id="p1",
        amount=usd(100),
        received_at=datetime(2026, 2, 1, tzinfo=UTC),
        status="partially_refunded",
        amount_refunded=usd(30),
    )
    alloc = Allocation(payment_id="p1", invoice_id="i1", amount=usd(80), rule="manual", confidence=Decimal(1))
    with pytest.raises(ValidationError, match="exceeds the payment's 70.00 USD"):
        PaymentApplication(payment=payment, allocations=[alloc])


def test_payment_net_is_amount_less_fee_in_jpy():
    payment = Payment(
        amount=Money.of(10000, "JPY"), fee=Money.of(360, "JPY"), received_at=datetime(2026, 2, 1, tzinfo=UTC)
    )
    assert payment.net == Money.of(9640, "JPY")


def test_allocation_confidence_must_be_between_zero_and_one():
    with pytest.raises(ValidationError) as info:
        Allocation(payment_id="p", invoice_id="i", amount=usd(1), rule="r", confidence=Decimal("1.5"))
    assert info.value.errors()[0]["loc"] == ("confidence",)


@pytest.mark.parametrize(
    ("as_of", "days", "bucket"),
    [
        (date(2026, 1, 31), 0, "current"),
        (date(2026, 2, 1), 1, "1-30"),
        (date(2026, 3, 2), 30, "1-30"),
        (date(2026, 3, 3), 31, "31-60"),
        (date(2026, 4, 1), 60, "31-60"),
        (date(2026, 4, 2), 61, "61-90"),
        (date(2026, 5, 1), 90, "61-90"),
        (date(2026, 5, 2), 91, "90+"),
    ],
)
def test_days_past_due_and_aging_bucket_on_a_given_date(as_of, days, bucket):
    position = invoice_position(invoice(), as_of)
    assert (position.days_past_due, position.aging_bucket) == (days, bucket)
    assert position.status == "open"
    assert aging_bucket(days) == bucket


def test_partial_payment_leaves_balance_open():
    position = invoice_position(invoice(amount_paid=usd(40)), date(2026, 2, 15))
    assert position.status == "partially_paid"
    assert position.balance == usd(70)
    assert position.aging_bucket == "1-30"


def test_fully_paid_invoice_is_paid_and_not_aged():
    position = invoice_position(invoice(amount_paid=usd(100), amount_credited=usd(10)), date(2026, 6, 1))
    assert (position.status, position.balance, position.days_past_due, position.aging_bucket) == (
        "paid",
        usd(0),
        0,
        None,
    )


def test_allocations_not_yet_in_the_ledger_lower_the_balance():
    alloc = Allocation(payment_id="p", invoice_id="i", amount=usd(110), rule="explicit", confidence=Decimal(1))
    position = invoice_position(invoice(), date(2026, 3, 1), [alloc])
    assert position.status == "paid"


def test_void_invoice_owes_nothing_whatever_its_amounts():
    position = invoice_position(invoice(status="void"), date(2026, 6, 1))
    assert (position.status, position.balance, position.aging_bucket) == ("void", usd(0), None)


def test_kwd_invoice_balance_is_exact_to_the_fils():
    kwd = lambda a: Money.of(a, "KWD")  # noqa: E731
    inv = Invoice(
        currency="KWD", subtotal=kwd("10.125"), tax=kwd("0.500"), total=kwd("10.625"), amount_paid=kwd("3.333")
    )
    assert invoice_position(inv, date(2026, 1, 1)).balance == kwd("7.292")


def test_action_key_is_deterministic_and_depends_on_content():
    target = Ref(system="ledger", object_type="invoice", remote_id="INV-1")
    a = Action(connection="ledger", kind="record_payment", target=target, payload={"amount": "10.00"})
    b = Action(connection="ledger", kind="record_payment", target=target, payload={"amount": "10.00"})
    c = Action(connection="ledger", kind="record_payment", target=target, payload={"amount": "10.01"})
    assert a.idempotency_key == b.idempotency_key != c.idempotency_key
    assert len(a.idempotency_key) <= 50  # QuickBooks' requestid limit, the tightest
    with pytest.raises(ValidationError, match="idempotency_key"):
        Action(connection="ledger", kind="record_payment", target=target, payload={}, idempotency_key="forged")


def test_a_position_built_without_validation_is_the_validated_one():
    """`invoice_position` builds its result unchecked (a report makes 110,000 of them): it is
    the model pydantic would validate from the same values, frozen and comparable."""
    position = invoice_position(invoice(amount_paid=usd(40)), date(2026, 2, 15))
    assert position == InvoicePosition.model_validate(position.model_dump())
    assert position.model_fields_set == set(InvoicePosition.model_fields)
    with pytest.raises(ValidationError):
        position.balance = usd(1)


def test_the_position_rule_in_minor_units_is_invoice_positions() -> None:
    """`standing` on minor units (what a listing reads) gives the balance, status, days and
    bucket `invoice_position` gives the built invoice, whatever is paid, credited or allocated."""
    rng = random.Random(11)
    as_of = date(2026, 12, 1)
    for _ in range(2000):
        currency = rng.choice(["USD", "JPY", "KWD"])
        total = rng.randrange(0, 10_000)
        paid = rng.randrange(0, total + 1)
        credited = rng.randrange(0, total - paid + 1)
        invoice = Invoice(
            currency=currency,
            status=rng.choice(["open", "paid", "void", "draft", "uncollectible", "partially_paid"]),
            due_date=rng.choice([None, date(2026, 2, 1), date(2026, 11, 30), date(2026, 12, 20)]),
            subtotal=Money.from_minor(total, currency),
            tax=Money.zero(currency),
            total=Money.from_minor(total, currency),
            amount_paid=Money.from_minor(paid, currency),
            amount_credited=Money.from_minor(credited, currency),
        )
        extra = [rng.randrange(1, max(2, total)) for _ in range(rng.randrange(3))]
        allocations = [
            Allocation(
                payment_id="p",
                invoice_id="i",
                amount=Money.from_minor(units, currency),
                rule="exact",
                confidence=Decimal(1),
            )
            for units in extra
        ]
        position = invoice_position(invoice, as_of, allocations)
        balance, status, days, bucket = standing(
            total, paid + credited + sum(extra), invoice.status, invoice.due_date, as_of
        )
        assert (balance, status, days, bucket) == (
            position.balance.to_minor(),
            position.status,
            position.days_past_due,
            position.aging_bucket,
        )
