import json

import pytest

from connector.errors import PaginationLoopError
from connector.providers.registry import contract_problems
from connector.providers.xero import XeroProvider
from support.xero_fakes import TENANT, records


def ids(pages, key):
    return [raw[key] for page in pages for raw in page.records]


def test_the_provider_declares_itself_as_the_registry_expects():
    assert contract_problems(XeroProvider, "xero") == []
    assert XeroProvider.kind == "ledger"
    assert XeroProvider.streams == ("contacts", "invoices", "credit_notes", "payments")
    assert XeroProvider.actions == ("record_payment", "record_fee", "send_invoice", "delete_payment", "delete_fee")


def test_full_pull_of_invoices_pages_until_a_short_page_and_keeps_only_sales_invoices(fake_xero, make_xero):
    fake_xero.data["Invoices"] = records("invoices.json")
    pages = list(make_xero(page_size=2).read("invoices", None))

    assert ids(pages, "InvoiceNumber") == ["INV-0042", "INV-0043", "INV-0044"]  # the ACCPAY bill never comes
    assert len(pages[-1].records) < 2  # a short page ended it
    first = fake_xero.requests[0]
    assert first.url.params["where"] == 'Type=="ACCREC"'
    assert first.url.params["order"] == "UpdatedDateUTC ASC"
    assert first.url.params["page"] == "1" and first.url.params["pageSize"] == "2"
    assert first.url.params["unitdp"] == "4"
    assert "If-Modified-Since" not in first.headers
    assert all(r.headers["xero-tenant-id"] == TENANT for r in fake_xero.requests)


def test_a_bill_is_dropped_even_when_the_server_ignores_the_where_filter(fake_xero, make_xero):
    fake_xero.data["Invoices"] = records("invoices.json")
    fake_xero.honour_where = False
    pages = list(make_xero().read("invoices", None))
    assert "SUP-9001" not in ids(pages, "InvoiceNumber")
    assert ids(pages, "InvoiceNumber") == ["INV-0042", "INV-0043", "INV-0044"]


def test_each_page_carries_the_newest_updated_time_seen_as_its_cursor(fake_xero, make_xero):
    fake_xero.data["Invoices"] = records("invoices.json")
    pages = list(make_xero(page_size=2).read("invoices", None))
    cursors = [json.loads(page.cursor)["since"] for page in pages]
    assert cursors[0] == "2026-02-01T09:15:30.870Z"
    assert cursors[-1] == "2026-02-02T11:00:05.500Z"
    assert cursors == sorted(cursors)


def test_records_sharing_the_cursor_second_are_never_skipped_nor_yielded_twice(fake_xero, make_xero):
    # INV-0042 and INV-0043 share 09:15:30; with one record a page the cursor lands between them.
    fake_xero.data["Invoices"] = records("invoices.json")
    pages = list(make_xero(page_size=1).read("invoices", None))
    assert ids(pages, "InvoiceNumber") == ["INV-0042", "INV-0043", "INV-0044"]
    headers = [r.headers.get("If-Modified-Since") for r in fake_xero.requests]
    assert headers[1] == "2026-02-01T09:15:30Z"  # the cursor itself, floored, never moved forward


def test_incremental_read_sends_if_modified_since_with_a_zone_and_gets_changes_only(fake_xero, make_xero):
    fake_xero.data["Invoices"] = records("invoices.json")
    cursor = list(make_xero().read("invoices", None))[-1].cursor
    fake_xero.data["Invoices"] = records("invoices.json")[:3] + records("invoices_changed.json")
    fake_xero.requests.clear()

    pages = list(make_xero().read("invoices", cursor))

    assert fake_xero.requests[0].headers["If-Modified-Since"] == "2026-02-02T11:00:05Z"
    # INV-0044 sits at the cursor's own moment: read again (the store dedupes), never skipped.
    assert ids(pages, "InvoiceNumber") == ["INV-0044", "INV-0042", "INV-0045"]
    statuses = {raw["InvoiceNumber"]: raw["Status"] for page in pages for raw in page.records}
    assert statuses == {"INV-0044": "VOIDED", "INV-0042": "PAID", "INV-0045": "DELETED"}
    assert json.loads(pages[-1].cursor)["since"] == "2026-02-06T12:00:00.900Z"


def test_an_incremental_read_with_nothing_new_keeps_the_cursor(fake_xero, make_xero):
    fake_xero.data["Contacts"] = records("contacts.json")
    cursor = '{"since":"2026-03-01T00:00:00.000Z"}'
    pages = list(make_xero().read("contacts", cursor))
    assert [page.records for page in pages] == [[]]
    assert pages[0].cursor == cursor


@pytest.mark.parametrize(
    ("stream", "fixture", "key", "where", "expected"),
    [
        ("contacts", "contacts.json", "ContactID", None, 2),
        ("credit_notes", "credit_notes.json", "CreditNoteID", 'Type=="ACCRECCREDIT"', 2),
        ("payments", "payments.json", "PaymentID", 'PaymentType=="ACCRECPAYMENT"', 3),
    ],
)
def test_each_stream_reads_everything_including_voided_and_deleted(
    fake_xero, make_xero, stream, fixture, key, where, expected
):
    body_key = {"contacts": "Contacts", "credit_notes": "CreditNotes", "payments": "Payments"}[stream]
    fake_xero.data[body_key] = records(fixture)
    pages = list(make_xero(page_size=2).read(stream, None))
    assert len(ids(pages, key)) == expected
    assert fake_xero.requests[0].url.params.get("where") == where
    assert fake_xero.requests[0].url.params["order"] == "UpdatedDateUTC ASC"
    assert pages[-1].cursor is not None


def test_contacts_include_archived_ones(fake_xero, make_xero):
    fake_xero.data["Contacts"] = records("contacts.json")
    pages = list(make_xero().read("contacts", None))
    assert fake_xero.requests[0].url.params["includeArchived"] == "true"
    assert "ARCHIVED" in [raw["ContactStatus"] for raw in pages[0].records]


def test_a_server_that_ignores_paging_is_stopped_as_a_loop(fake_xero, make_xero):
    fake_xero.data["Invoices"] = records("invoices.json")[:2]  # one second: paged by number
    fake_xero.ignore_page = True
    with pytest.raises(PaginationLoopError):
        list(make_xero(page_size=2).read("invoices", None))


def test_a_bad_cursor_is_refused_with_a_clear_message(make_xero):
    with pytest.raises(ValueError, match="not a Xero cursor"):
        list(make_xero().read("invoices", "page=3"))


def test_an_invoice_edited_while_paging_does_not_push_another_out_of_view(fake_xero, make_xero):
    fake_xero.data["Invoices"] = records("invoices_fx.json") + records("invoices.json")[:3]
    reader = make_xero(page_size=2).read("invoices", None)
    seen = ids([next(reader)], "InvoiceNumber")
    # INV-0042, already read, is edited now: it moves to the end of the ordered list.
    edited = fake_xero.data["Invoices"][2]
    assert edited["InvoiceNumber"] == "INV-0042"
    edited["UpdatedDateUTC"] = "/Date(1770379200900+0000)/"
    seen += ids(list(reader), "InvoiceNumber")
    assert set(seen) == {"INV-0042", "INV-0043", "INV-0044", "INV-JP-7", "INV-KW-3"}
