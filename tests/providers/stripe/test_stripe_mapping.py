from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from connector.mappings.mapper import load_mapping
from connector.money import Money
from connector.providers.stripe import StripeProvider
from support.stripe_fakes import RESOURCES, fixture

USD, JPY, KWD, VOID = (
    "in_1OBa9zLkdIwHu7ixUSD00001",
    "in_1OBaA1LkdIwHu7ixJPY00001",
    "in_1OBaA2LkdIwHu7ixKWD00001",
    "in_1OBaA3LkdIwHu7ixVOID0001",
)


@pytest.fixture(scope="module")
def mapper():
    return load_mapping(StripeProvider.mapping_file, connection="gateway")


def mapped(mapper, stream, records=None):
    out, errors = mapper.map_page(stream, records if records is not None else fixture(RESOURCES[stream])["data"])
    assert errors == []
    return {m.ref.remote_id: m for m in out}


def test_the_mapping_covers_every_stream(mapper):
    assert set(mapper.spec.streams) == set(StripeProvider.streams)


@pytest.mark.parametrize("stream", [s for s in RESOURCES if s != "events"])
def test_every_fixture_record_maps_without_errors(mapper, stream):
    assert mapped(mapper, stream)


def test_usd_invoice_with_discount_and_tax_maps_exactly(mapper):
    m = mapped(mapper, "invoices")[USD]
    inv = m.record
    assert (inv.subtotal, inv.tax, inv.total) == (
        Money.of("180.00", "USD"),
        Money.of("14.40", "USD"),
        Money.of("194.40", "USD"),
    )
    assert inv.amount_paid == Money.of("50.00", "USD") and inv.status == "open" and inv.number == "ACME-0007"
    assert [(line.description, line.amount, line.quantity, line.unit_price) for line in inv.lines] == [
        ("Torque wrench", Money.of("135.00", "USD"), 3, Decimal("50.00")),
        ("Socket set", Money.of("45.00", "USD"), 1, Decimal("50.00")),
    ]
    assert inv.issue_date == date(2023, 11, 14) and inv.due_date == date(2023, 12, 12)
    assert m.links == {"customer": "cus_OzA1b2C3d4E5f6"}
    assert m.hints["ledger_invoice_id"] == "243216c5-369e-4056-ac67-05388f86dc81"


def test_zero_decimal_jpy_invoice_is_not_divided_by_100(mapper):
    inv = mapped(mapper, "invoices")[JPY].record
    assert inv.total == Money.of("123456", "JPY") and inv.total.amount == Decimal("123456")


def test_three_decimal_kwd_invoice_is_in_thousandths(mapper):
    inv = mapped(mapper, "invoices")[KWD].record
    assert inv.total.amount == Decimal("1234.560") and inv.currency == "KWD" and inv.status == "paid"


def test_void_invoice_maps_to_void(mapper):
    assert mapped(mapper, "invoices")[VOID].record.status == "void"


def test_deleted_invoice_is_flagged(mapper):
    draft = dict(fixture("invoices.json")["data"][3], status="draft", deleted=True)
    assert mapped(mapper, "invoices", [draft])[VOID].deleted is True
    assert mapped(mapper, "invoices")[VOID].deleted is False


def test_invoice_credit_notes_count_as_credited(mapper):
    raw = dict(
        fixture("invoices.json")["data"][0],
        post_payment_credit_notes_amount=0,
        amount_paid=1172830,
        pre_payment_credit_notes_amount=61730,
    )
    assert mapped(mapper, "invoices", [raw])[KWD].record.amount_credited == Money.of("61.730", "KWD")


def test_charges_map_to_payments_with_fee_status_and_refunds(mapper):
    payments = mapped(mapper, "charges")
    kwd = payments["ch_3OBaB1LkdIwHu7ix0KWD0001"]
    assert kwd.record.amount == Money.of("1234.560", "KWD") and kwd.record.fee == Money.of("37.040", "KWD")
    assert kwd.record.net == Money.of("1197.520", "KWD") and kwd.links["invoice"] == KWD
    assert kwd.links["balance_transaction"] == "txn_3OBaB1LkdIwHu7ix0KWD0001"
    jpy = payments["ch_3OBaB1LkdIwHu7ix0JPY0001"].record
    assert (jpy.amount, jpy.fee, jpy.amount_refunded, jpy.status) == (
        Money.of("50000", "JPY"),
        Money.of("1800", "JPY"),
        Money.of("20000", "JPY"),
        "partially_refunded",
    )
    assert payments["ch_3OBaB9LkdIwHu7ix0FAIL0001"].record.status == "failed"
    usd = payments["ch_3OBaB1LkdIwHu7ix0USD0001"]
    assert usd.record.method == "card" and usd.record.remittance == "Part payment ACME-0007"
    assert usd.hints["invoice_number"] == "ACME-0007"
    assert usd.record.received_at == datetime(2023, 11, 14, 21, 58, 20, tzinfo=UTC)


def test_a_fee_in_another_settlement_currency_is_left_to_the_balance_transaction(mapper):
    raw = fixture("charges.json")["data"][1]
    raw["balance_transaction"] = dict(raw["balance_transaction"], currency="usd", fee=1210)
    assert mapped(mapper, "charges", [raw])["ch_3OBaB1LkdIwHu7ix0KWD0001"].record.fee is None


def test_unexpanded_balance_transaction_still_maps(mapper):
    raw = dict(fixture("charges.json")["data"][3], balance_transaction="txn_3OBaB1LkdIwHu7ix0USD0001")
    m = mapped(mapper, "charges", [raw])["ch_3OBaB1LkdIwHu7ix0USD0001"]
    assert m.record.fee is None and m.links["balance_transaction"] == "txn_3OBaB1LkdIwHu7ix0USD0001"


def test_refund_payout_credit_note_and_balance_transactions(mapper):
    refund = mapped(mapper, "refunds")["re_3OBaB1LkdIwHu7ix0JPY0001"]
    assert refund.record.amount == Money.of("20000", "JPY") and refund.links["payment"] == "ch_3OBaB1LkdIwHu7ix0JPY0001"
    payout = mapped(mapper, "payouts")["po_1OBaD1LkdIwHu7ixPOUT0001"].record
    assert (
        payout.amount == Money.of("48.25", "USD")
        and payout.status == "in_transit"
        and payout.arrival_date == date(2023, 11, 16)
    )
    note = mapped(mapper, "credit_notes")["cn_1OBaE1LkdIwHu7ixCRED0001"]
    assert (
        note.record.total == Money.of("61.730", "KWD")
        and note.record.remaining.is_zero
        and note.record.status == "applied"
    )
    assert note.links["invoice"] == KWD
    txns = mapped(mapper, "balance_transactions")
    kwd = txns["txn_3OBaB1LkdIwHu7ix0KWD0001"].record
    assert (kwd.amount, kwd.fee, kwd.net, kwd.kind) == (
        Money.of("1234.560", "KWD"),
        Money.of("37.040", "KWD"),
        Money.of("1197.520", "KWD"),
        "charge",
    )
    assert txns["txn_3OBaC1LkdIwHu7ixRFND0001"].record.amount == Money.of("-20000", "JPY")


def test_customers_fall_back_to_email_for_a_name_and_flag_deletion(mapper):
    customers = mapped(mapper, "customers")
    assert customers["cus_OzA1b2C3d4E5f6"].record.name == "ap@acme-hardware.example"
    assert customers["cus_OzB7g8H9i0J1k2"].record.emails == ["keiri@kobayashi-ss.co.jp"]
    assert customers["cus_OzA1b2C3d4E5f6"].hints["crm_company_id"] == "18230011"
    gone = mapped(mapper, "customers", [{"id": "cus_OzA1b2C3d4E5f6", "object": "customer", "deleted": True}])
    assert gone["cus_OzA1b2C3d4E5f6"].deleted is True


def test_event_copies_of_invoices_map_like_listed_ones(mapper):
    events = reversed(fixture("events.json")["data"])  # oldest first: the last copy of each wins
    objects = [e["data"]["object"] for e in events if e["data"]["object"]["object"] == "invoice"]
    assert mapped(mapper, "invoices", objects)[USD].record.status == "paid"


def test_payment_intents_map_to_payments_that_point_at_their_charge(mapper):
    intents = mapped(mapper, "payment_intents")
    kwd = intents["pi_3OBaB1LkdIwHu7ix0KWD0001"]
    assert kwd.record.amount == Money.of("1234.560", "KWD") and kwd.record.amount.amount == Decimal("1234.560")
    assert kwd.record.status == "succeeded" and kwd.record.fee is None  # the fee is on the charge
    assert kwd.links == {
        "customer": "cus_OzC3l4M5n6O7p8",
        "invoice": KWD,
        "charge": "ch_3OBaB1LkdIwHu7ix0KWD0001",
        "payment_method": "pm_1OBaB1LkdIwHu7ixKWDCARD1",
    }
    assert kwd.hints["money_record"] == "charge"
    jpy = intents["pi_3OBaB1LkdIwHu7ix0JPY0001"].record
    assert jpy.amount == Money.of("50000", "JPY") and jpy.amount.amount == Decimal("50000")


def test_the_charge_is_the_money_record_of_each_succeeded_intent(mapper):
    """The same money is not in two places without a pointer: every succeeded intent names
    a charge of the same amount and currency, and says the charge is what counts."""
    charges = mapped(mapper, "charges")
    for m in mapped(mapper, "payment_intents").values():
        assert m.hints["money_record"] == "charge"
        if m.record.status == "succeeded":
            charge = charges[m.links["charge"]]
            assert charge.record.amount == m.record.amount and charge.links["payment_intent"] == m.ref.remote_id


def test_incomplete_payment_intents_are_pending_or_failed_with_stripes_reason(mapper):
    intents = mapped(mapper, "payment_intents")
    declined = intents["pi_3OBaB9LkdIwHu7ix0FAIL0001"]
    assert declined.record.status == "pending" and declined.hints["intent_status"] == "requires_payment_method"
    assert (declined.hints["last_payment_error"], declined.hints["decline_code"]) == (
        "card_declined",
        "insufficient_funds",
    )
    assert (
        declined.hints["invoice_number"] == "ACME-0007" and declined.links["charge"] == "ch_3OBaB9LkdIwHu7ix0FAIL0001"
    )
    waiting = intents["pi_3OBaBBLkdIwHu7ix0OPEN0001"]
    assert (
        waiting.record.status == "pending"
        and waiting.record.amount == Money.of("3000000", "JPY")
        and "charge" not in waiting.links
    )
    canceled = intents["pi_3OBaBCLkdIwHu7ix0CNCL0001"]
    assert canceled.record.status == "failed" and canceled.hints["cancellation_reason"] == "abandoned"


def test_an_expanded_latest_charge_still_links_by_id(mapper):
    raw = dict(
        fixture("payment_intents.json")["data"][5],
        latest_charge={"id": "ch_3OBaB1LkdIwHu7ix0USD0001", "object": "charge"},
    )
    assert (
        mapped(mapper, "payment_intents", [raw])["pi_3OBaB1LkdIwHu7ix0USD0001"].links["charge"]
        == "ch_3OBaB1LkdIwHu7ix0USD0001"
    )


# Disputes --------------------------------------------------------------------------------

LOST = "dp_1OBaD1LkdIwHu7ixLOST0001"


def disputed_charge(status: str, *, amount: int = 5000, currency: str = "usd", disputed: int | None = None) -> dict:
    """The fixture's USD charge, disputed: its dispute as the adapter attaches it."""
    charge = {c["id"]: c for c in fixture(RESOURCES["charges"])["data"]}["ch_3OBaB1LkdIwHu7ix0USD0001"]
    dispute = {
        **fixture(RESOURCES["disputes"])["data"][0],
        "status": status,
        "amount": amount if disputed is None else disputed,
        "currency": currency,
        "charge": charge["id"],
    }
    return {
        **charge,
        "amount": amount,
        "currency": currency,
        "balance_transaction": None,
        "disputed": True,
        "disputes": {"object": "list", "data": [dispute]},
    }


def test_a_lost_dispute_maps_onto_its_charge_and_withdraws_the_money(mapper):
    [m] = mapped(mapper, "charges", [disputed_charge("lost")]).values()
    payment = m.record
    assert (payment.dispute_status, payment.dispute_reason) == ("lost", "fraudulent")
    assert payment.amount_disputed == Money.of("50.00", "USD")
    assert payment.disputed_at == datetime(2023, 11, 13, tzinfo=UTC)
    assert payment.collected == Money.of("0.00", "USD")


@pytest.mark.parametrize(
    ("stripe_status", "status", "collected"),
    [
        ("warning_needs_response", "inquiry", "50.00"),
        ("warning_closed", "inquiry", "50.00"),
        ("needs_response", "open", "0.00"),
        ("under_review", "open", "0.00"),
        ("won", "won", "50.00"),
    ],
)
def test_dispute_statuses_map_to_what_the_money_does(mapper, stripe_status, status, collected):
    [m] = mapped(mapper, "charges", [disputed_charge(stripe_status)]).values()
    assert m.record.dispute_status == status
    assert m.record.collected == Money.of(collected, "USD")


def test_disputed_amounts_keep_jpy_and_kwd_exponents(mapper):
    [jpy] = mapped(mapper, "charges", [disputed_charge("lost", amount=50000, currency="jpy", disputed=20000)]).values()
    assert jpy.record.amount_disputed == Money.of("20000", "JPY")
    assert jpy.record.collected == Money.of("30000", "JPY")
    [kwd] = mapped(
        mapper, "charges", [disputed_charge("under_review", amount=12340, currency="kwd", disputed=2340)]
    ).values()
    assert kwd.record.amount_disputed == Money.of("2.340", "KWD")


def test_an_undisputed_charge_has_no_dispute(mapper):
    payment = mapped(mapper, "charges")["ch_3OBaB1LkdIwHu7ix0USD0001"].record
    assert payment.dispute_status is None and payment.amount_disputed is None


def test_a_disputed_charge_without_its_disputes_is_a_clear_mapping_error(mapper):
    charge = {**disputed_charge("lost"), "disputes": {"object": "list", "data": []}}
    out, errors = mapper.map_page("charges", [charge])
    assert out == [] and len(errors) == 1
    assert "is disputed but its disputes were not read" in str(errors[0])


def test_the_disputes_stream_keeps_the_dispute_beside_its_charge(mapper):
    m = mapped(mapper, "disputes")[LOST]
    assert m.ref.object_type == "dispute"
    assert m.record.dispute_status == "lost" and m.record.amount_disputed == Money.of("50.00", "USD")
    assert m.links["payment"] == "ch_3OBaC1LkdIwHu7ixDISP0001"
