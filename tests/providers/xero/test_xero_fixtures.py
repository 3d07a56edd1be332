"""Every Xero fixture file validates against Xero's own OpenAPI document, so the fixtures the
tests run on cannot drift from what Xero sends."""

import json

import pytest

from support.openapi import check_response
from support.xero_fakes import FIXTURES, records

ENDPOINTS = {
    "contacts.json": ("GET", "/Contacts"),
    "invoices.json": ("GET", "/Invoices"),
    "invoices_changed.json": ("GET", "/Invoices"),
    "invoices_fx.json": ("GET", "/Invoices"),
    "credit_notes.json": ("GET", "/CreditNotes"),
    "payments.json": ("GET", "/Payments"),
    "payment_created.json": ("PUT", "/Payments"),
    "payment_refused.json": ("PUT", "/Payments"),
}


def test_every_fixture_file_is_listed_here():
    assert sorted(p.name for p in FIXTURES.glob("*.json")) == sorted(ENDPOINTS)


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_fixture_matches_xeros_openapi_document(name):
    method, path = ENDPOINTS[name]
    check_response("xero", method, path, json.loads((FIXTURES / name).read_text()))


def test_the_fakes_answers_match_the_document_too(fake_xero, make_xero):
    fake_xero.data["Invoices"] = records("invoices.json")
    list(make_xero(page_size=2).read("invoices", None))
    invoice_id = fake_xero.data["Invoices"][0]["InvoiceID"]
    provider = make_xero()
    answer = provider.http.request("GET", f"/Invoices/{invoice_id}")
    check_response("xero", "GET", f"/Invoices/{invoice_id}", answer.json())
    listing = provider.http.request("GET", "/Invoices", params={"page": "1", "pageSize": "2"})
    check_response("xero", "GET", "/Invoices", listing.json())
