from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from connector.mappings.mapper import load_mapping
from connector.model import Invoice
from connector.money import Money
from connector.providers.xero import XeroProvider
from support.xero_fakes import records


@pytest.fixture(scope="module")
def mapper():
    return load_mapping(XeroProvider.mapping_file, connection="ledger")


def by_id(mapped):
    return {m.ref.remote_id: m for m in mapped}


def mapped_ok(mapper, stream, fixture):
    mapped, errors = mapper.map_page(stream, records(fixture))
    assert errors == []
    return by_id(mapped)


def test_contacts_map_to_customers_with_emails_terms_and_refs(mapper):
    customers = mapped_ok(mapper, "contacts", "contacts.json")
    acme = customers["bd2270c3-8706-4c11-9cfb-000b551c3f51"]
    assert acme.record.name == "Acme Rockets Ltd"
    assert acme.record.emails == ["accounts@acme-rockets.example", "rr@acme-rockets.example"]
    assert acme.record.billing_contact == "Wile Coyote"
    assert acme.record.payment_terms_days == 30
    assert acme.ref.object_type == "customer" and acme.ref.system == "ledger"
    assert acme.ref.remote_updated_at == datetime(2026, 2, 1, 9, 15, 30, 120000, tzinfo=UTC)
    gulf = customers["3e776c4b-ea9e-4bb1-96be-6b0c7a71a37f"]
    assert gulf.record.emails == [] and gulf.record.payment_terms_days is None
    assert gulf.hints["contact_status"] == "ARCHIVED"


def test_invoices_map_with_exact_money_lines_status_links_and_hints(mapper):
    invoices = mapped_ok(mapper, "invoices", "invoices.json")
    assert len(invoices) == 4  # the mapping itself does not judge Type; the adapter filters bills
    open_one = invoices["0e64a623-c2a1-446a-93ed-eb897f118cbc"]
    invoice: Invoice = open_one.record
    assert invoice.number == "INV-0042" and invoice.currency == "USD"
    assert invoice.issue_date == date(2026, 1, 10) and invoice.due_date == date(2026, 2, 9)
    assert invoice.subtotal == Money.of("1000.00", "USD")
    assert invoice.tax == Money.of("150.00", "USD")
    assert invoice.total == Money.of("1150.00", "USD")
    assert invoice.amount_paid == Money.of("400.25", "USD")
    assert invoice.amount_credited == Money.of("0", "USD")
    assert invoice.status == "open"
    assert [(line.description, line.quantity, line.unit_price, line.amount.amount) for line in invoice.lines] == [
        ("Consulting, January", Decimal("8.0000"), Decimal("100.0000"), Decimal("800.00")),
        ("Travel", Decimal("1.0000"), Decimal("200.0000"), Decimal("200.00")),
    ]
    assert open_one.links == {"customer": "bd2270c3-8706-4c11-9cfb-000b551c3f51"}
    assert open_one.hints == {"invoice_number": "INV-0042", "reference": "PO 7781"}

    inclusive = invoices["4f7a2b19-8c3d-4e6f-a1b2-c3d4e5f60718"].record
    assert inclusive.status == "paid" and inclusive.currency == "NZD"
    assert inclusive.lines[0].amount == Money.of("1000.00", "NZD")  # 1150 inclusive less 150 tax
    assert invoices["a8c6e0f2-4b1d-4c3e-9f5a-6b7c8d9e0f1a"].record.status == "void"


def test_deleted_and_voided_invoices_become_void(mapper):
    changed = mapped_ok(mapper, "invoices", "invoices_changed.json")
    deleted = changed["d4e5f6a7-b8c9-4d0e-8f1a-2b3c4d5e6f70"]
    assert deleted.record.status == "void"
    assert deleted.record.due_date is None


def test_zero_and_three_decimal_currencies_map_exactly(mapper):
    fx = mapped_ok(mapper, "invoices", "invoices_fx.json")
    yen = fx["5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"].record
    assert yen.total == Money.of("16500", "JPY") and yen.total.amount == Decimal("16500")
    assert yen.amount_paid == Money.of("5000", "JPY")
    assert yen.lines[0].amount == Money.of("15000", "JPY")
    assert yen.lines[0].unit_price == Decimal("5500.0000")
    dinar = fx["7e8f9a0b-1c2d-4e3f-8a4b-5c6d7e8f9a0b"].record
    assert dinar.total.amount == Decimal("12.345") and dinar.total.currency == "KWD"
    assert dinar.amount_paid.amount == Decimal("2.125")
    assert dinar.lines[0].unit_price == Decimal("12.3450")


def test_credit_notes_map_with_remaining_credit_and_allocations(mapper):
    notes = mapped_ok(mapper, "credit_notes", "credit_notes.json")
    goodwill = notes["9a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"]
    assert goodwill.record.number == "CN-0007"
    assert goodwill.record.total == Money.of("115.00", "USD")
    assert goodwill.record.remaining == Money.of("65.00", "USD")
    assert goodwill.record.status == "open"
    assert goodwill.links == {"customer": "bd2270c3-8706-4c11-9cfb-000b551c3f51"}
    assert goodwill.hints["allocated_invoices"] == ["0e64a623-c2a1-446a-93ed-eb897f118cbc"]
    voided = notes["1c2d3e4f-5a6b-4c7d-8e8f-9a0b1c2d3e4f"].record
    assert voided.status == "void" and voided.total.amount == Decimal("1.500")


def test_payments_map_with_invoice_currency_links_and_remittance(mapper):
    payments = mapped_ok(mapper, "payments", "payments.json")
    usd = payments["b26fd49a-cbae-470a-a8f8-bcbc119e0379"]
    assert usd.record.amount == Money.of("400.25", "USD")
    assert usd.record.received_at == datetime(2026, 1, 31, tzinfo=UTC)
    assert usd.record.remittance == "INV-0042 part"
    assert usd.record.payer == "Acme Rockets Ltd"
    assert usd.record.status == "succeeded" and not usd.deleted
    assert usd.links == {
        "invoice": "0e64a623-c2a1-446a-93ed-eb897f118cbc",
        "customer": "bd2270c3-8706-4c11-9cfb-000b551c3f51",
    }
    assert usd.hints["invoice_number"] == "INV-0042"
    kwd = payments["c37ae5ab-dcbf-481b-b9a9-cdcd220f148a"].record
    assert kwd.amount.amount == Decimal("2.125") and kwd.amount.currency == "KWD"


def test_a_deleted_payment_is_marked_deleted_and_pays_nothing(mapper):
    payments = mapped_ok(mapper, "payments", "payments.json")
    gone = payments["d48bf6bc-edc0-492c-8aba-dede331f259b"]
    assert gone.deleted
    assert gone.record.status == "failed"
    assert gone.record.amount == Money.of("5000", "JPY")
    assert gone.record.collected == Money.zero("JPY")


def test_an_unknown_status_is_reported_and_the_rest_of_the_page_is_kept(mapper):
    raws = records("invoices.json")[:2]
    raws[0]["Status"] = "SCHEDULED"
    mapped, errors = mapper.map_page("invoices", raws)
    assert len(mapped) == 1
    assert (errors[0].provider, errors[0].object_id, errors[0].field) == ("xero", raws[0]["InvoiceID"], "status")


def test_a_connection_can_add_a_status_without_code():
    mapper = load_mapping(
        XeroProvider.mapping_file,
        connection="ledger",
        overrides={"status_maps": {"invoice_status": {"SCHEDULED": "open"}}},
    )
    raws = records("invoices.json")[:1]
    raws[0]["Status"] = "SCHEDULED"
    mapped, errors = mapper.map_page("invoices", raws)
    assert errors == [] and mapped[0].record.status == "open"
