import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from connector.errors import ConfigError
from connector.mappings.mapper import Mapper, build_spec, deep_merge
from connector.mappings.transforms import parse_dotnet_date
from connector.money import Money

SPEC = {
    "provider": "books",
    "streams": {
        "invoices": {
            "record": "invoice",
            "object_type": "invoice",
            "id": "InvoiceID",
            "currency": {"path": "CurrencyCode", "transform": "currency"},
            "updated_at": {"path": "UpdatedDateUTC", "transform": "dotnet_datetime"},
            "fields": {
                "number": "InvoiceNumber",
                "issue_date": {"path": "Date", "transform": "dotnet_date"},
                "due_date": {"path": "DueDate", "transform": "dotnet_date"},
                "subtotal": {"path": "SubTotal", "transform": "money"},
                "tax": {"path": "TotalTax", "transform": "money"},
                "total": {"path": "Total", "transform": "money"},
                "amount_paid": {"path": "AmountPaid", "transform": "money", "default": "0"},
                "status": {"path": "Status", "map": "invoice_status"},
                "lines": {
                    "path": "LineItems",
                    "each": {
                        "description": "Description",
                        "quantity": {"path": "Quantity", "transform": "decimal"},
                        "amount": {"path": ".", "transform": "xero_line_amount"},
                    },
                },
            },
            "links": {"customer": "Contact.ContactID"},
            "hints": {"reference": "Reference"},
        }
    },
    "status_maps": {"invoice_status": {"AUTHORISED": "open", "PAID": "paid", "VOIDED": "void", "DELETED": "void"}},
}


def raw(**overrides):
    data = {
        "InvoiceID": "inv-1",
        "InvoiceNumber": "INV-0042",
        "CurrencyCode": "KWD",
        "UpdatedDateUTC": "/Date(1573755038314+0000)/",
        "Date": "/Date(1573689600000+0000)/",
        "DueDate": "/Date(1576281600000+0000)/",
        "LineAmountTypes": "Inclusive",
        "LineItems": [
            {
                "Description": "Widget",
                "Quantity": Decimal("2"),
                "LineAmount": Decimal("11.000"),
                "TaxAmount": Decimal("1.000"),
            }
        ],
        "SubTotal": Decimal("10.000"),
        "TotalTax": Decimal("1.000"),
        "Total": Decimal("11.000"),
        "AmountPaid": Decimal("2.125"),
        "Status": "AUTHORISED",
        "Contact": {"ContactID": "c-9"},
        "Reference": "PO 7781",
    }
    data.update(overrides)
    return data


def mapper(spec=SPEC):
    return Mapper(build_spec(spec, "test"), connection="ledger")


def test_a_raw_invoice_maps_to_a_canonical_invoice_with_its_ref_links_and_hints():
    mapped = mapper().map_one("invoices", raw())
    invoice = mapped.record
    assert invoice.number == "INV-0042"
    assert invoice.total == Money.of("11.000", "KWD")
    assert invoice.amount_paid == Money.of("2.125", "KWD")
    assert invoice.lines[0].amount == Money.of("10.000", "KWD")  # inclusive line, tax taken off
    assert invoice.issue_date == date(2019, 11, 14)
    assert mapped.ref.system == "ledger" and mapped.ref.remote_id == "inv-1"
    assert mapped.ref.remote_updated_at == datetime(2019, 11, 14, 18, 10, 38, 314000, tzinfo=UTC)
    assert invoice.refs == [mapped.ref]
    assert mapped.links == {"customer": "c-9"}
    assert mapped.hints == {"reference": "PO 7781"}


def test_voided_and_deleted_statuses_become_void():
    assert mapper().map_one("invoices", raw(Status="VOIDED")).record.status == "void"
    assert mapper().map_one("invoices", raw(Status="DELETED")).record.status == "void"


def test_records_that_cannot_be_mapped_are_reported_and_the_rest_kept():
    good, bad_status, bad_total = (
        raw(),
        raw(InvoiceID="inv-2", Status="WEIRD"),
        raw(InvoiceID="inv-3", Total=Decimal("12")),
    )
    mapped, errors = mapper().map_page("invoices", [good, bad_status, bad_total])
    assert [m.ref.remote_id for m in mapped] == ["inv-1"]
    assert [(e.provider, e.object_id, e.field) for e in errors] == [
        ("books", "inv-2", "status"),
        ("books", "inv-3", "total"),
    ]
    assert "'WEIRD' is not in status map" in str(errors[0])


def test_float_amounts_are_refused_rather_than_rounded():
    _, errors = mapper().map_page("invoices", [raw(Total=11.0)])
    assert errors and errors[0].field == "total" and "float" in errors[0].reason


def test_an_override_adds_a_status_without_code():
    spec = deep_merge(SPEC, {"status_maps": {"invoice_status": {"SUBMITTED": "draft"}}})
    assert mapper(spec).map_one("invoices", raw(Status="SUBMITTED")).record.status == "draft"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"streams": {"invoices": {"colour": "red"}}}, "streams.invoices.colour: unknown key"),
        ({"streams": {"invoices": {"fields": {"numbr": "X"}}}}, "has no mappable field 'numbr'"),
        (
            {"streams": {"invoices": {"fields": {"number": {"path": "X", "transform": "nope"}}}}},
            "unknown transform 'nope'",
        ),
        ({"status_maps": {"invoice_status": {"SUBMITTED": "pending"}}}, "'pending' is not one of"),
    ],
)
def test_bad_mapping_files_are_refused_when_loaded(change, message):
    with pytest.raises(ConfigError, match=message):
        build_spec(deep_merge(SPEC, change), "test")


def test_dotnet_dates_keep_the_instant_and_the_offset():
    moment = parse_dotnet_date("/Date(1573755038314+0530)/")
    assert moment.utcoffset().total_seconds() == 5.5 * 3600
    assert moment.astimezone(UTC) == datetime(2019, 11, 14, 18, 10, 38, 314000, tzinfo=UTC)
    assert parse_dotnet_date("/Date(0)/") == datetime(1970, 1, 1, tzinfo=UTC)


def test_a_default_goes_through_the_transform_and_hints_know_the_currency():
    spec = deep_merge(SPEC, {"streams": {"invoices": {"hints": {"due": {"path": "AmountDue", "transform": "money"}}}}})
    data = raw(AmountDue=Decimal("8.875"))
    del data["AmountPaid"]
    mapped = mapper(spec).map_one("invoices", {**data, "Total": Decimal("11.000")})
    assert mapped.record.amount_paid == Money.of(0, "KWD")  # default "0" through `money`
    assert mapped.hints["due"] == Money.of("8.875", "KWD")


def test_epoch_milliseconds_strings_become_utc_datetimes():
    from connector.mappings.transforms import TRANSFORMS, TransformContext

    moment = TRANSFORMS["epoch_ms"]("1573755038314", TransformContext(raw={}, provider="t"))
    assert moment == datetime(2019, 11, 14, 18, 10, 38, 314000, tzinfo=UTC)


# Provider text is bounded ------------------------------------------------------------------------


def test_an_overlong_invoice_number_is_cut_and_its_length_noted_with_one_warning(caplog):
    from connector.mappings.mapper import TEXT_LIMIT

    huge = "INV-" + "9" * 2_000_000
    with caplog.at_level("WARNING", logger="connector.mappings.mapper"):
        mapped = mapper().map_one("invoices", raw(InvoiceNumber=huge, Reference="R" * 600))
    number = mapped.record.number
    digest = hashlib.sha256(huge.encode()).hexdigest()[:12]
    assert len(number) == TEXT_LIMIT and number.startswith("INV-999") and number.endswith("…" + digest)
    reference = mapped.hints["reference"]
    assert len(reference) == TEXT_LIMIT and reference.startswith("R" * (TEXT_LIMIT - 13) + "…")
    assert mapped.truncated == {"number": len(huge), "hints.reference": 600}
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]  # one per record, naming each cut
    assert warning.getMessage() == (
        f"books invoice inv-1: text longer than the connector keeps was cut: number ({len(huge)} characters), "
        "hints.reference (600 characters)"
    )
    assert len(warning.getMessage()) < 300


def test_two_long_invoice_numbers_that_differ_after_the_cut_stay_different():
    """A cut number must not make two invoices one for linking (same number and currency) or
    for a remittance naming one of them."""
    from connector.mappings.mapper import TEXT_LIMIT

    first, second = "INV-" + "7" * 700 + "A", "INV-" + "7" * 700 + "B"
    one = mapper().map_one("invoices", raw(InvoiceNumber=first)).record.number
    other = mapper().map_one("invoices", raw(InvoiceNumber=second)).record.number
    assert one != other and len(one) == len(other) == TEXT_LIMIT


def test_text_within_its_limit_is_kept_whole_and_free_text_has_a_larger_limit(caplog):
    from connector.mappings.mapper import FREE_TEXT_LIMIT, TEXT_LIMIT

    line = {**raw()["LineItems"][0], "Description": "d" * FREE_TEXT_LIMIT}
    with caplog.at_level("WARNING", logger="connector.mappings.mapper"):
        mapped = mapper().map_one("invoices", raw(InvoiceNumber="N" * TEXT_LIMIT, LineItems=[line]))
    assert mapped.record.number == "N" * TEXT_LIMIT and mapped.record.lines[0].description == "d" * FREE_TEXT_LIMIT
    assert mapped.truncated == {} and not caplog.records

    long_line = {**line, "Description": "d" * (FREE_TEXT_LIMIT + 1)}
    mapped = mapper().map_one("invoices", raw(LineItems=[long_line]))
    assert len(mapped.record.lines[0].description) == FREE_TEXT_LIMIT
    assert mapped.truncated == {"lines.0.description": FREE_TEXT_LIMIT + 1}


def test_an_overlong_id_is_never_cut_the_record_is_refused_and_an_overlong_link_left_out():
    mapped, errors = mapper().map_page("invoices", [raw(InvoiceID="i" * 5000)])
    assert mapped == [] and [(e.field, e.object_id) for e in errors] == [("id", "i" * 59 + "…")]
    assert "is 5000 characters long; an id longer than 512 is refused" in str(errors[0])
    assert len(str(errors[0])) < 300

    linked = mapper().map_one("invoices", raw(Contact={"ContactID": "c" * 513}))
    assert linked.links == {} and linked.truncated == {"links.customer": 513}


def test_a_mapping_error_never_quotes_a_huge_raw_value():
    _, errors = mapper().map_page("invoices", [raw(Status="X" * 1_000_000)])
    assert errors and errors[0].field == "status" and len(str(errors[0])) < 300
