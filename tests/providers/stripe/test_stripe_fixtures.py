"""Every Stripe fixture is in Stripe's real shape: held against the official OpenAPI document."""

import json
from pathlib import Path

import pytest

from support.openapi import check_response

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "stripe"

# fixture file -> (method, path as in the document, status)
ENDPOINTS = {
    "customers.json": ("GET", "/v1/customers", 200),
    "invoices.json": ("GET", "/v1/invoices", 200),
    "invoice_lines.json": ("GET", "/v1/invoices/in_1OBa9zLkdIwHu7ixUSD00001/lines", 200),
    "invoice_paid.json": ("POST", "/v1/invoices/in_1OBa9zLkdIwHu7ixUSD00001/pay", 200),
    "charges.json": ("GET", "/v1/charges", 200),
    "payment_intents.json": ("GET", "/v1/payment_intents", 200),
    "refunds.json": ("GET", "/v1/refunds", 200),
    "disputes.json": ("GET", "/v1/disputes", 200),
    "payouts.json": ("GET", "/v1/payouts", 200),
    "balance_transactions.json": ("GET", "/v1/balance_transactions", 200),
    "credit_notes.json": ("GET", "/v1/credit_notes", 200),
    "events.json": ("GET", "/v1/events", 200),
    "error_idempotency.json": ("POST", "/v1/invoices/in_1OBa9zLkdIwHu7ixUSD00001/pay", 400),
    "error_rate_limit.json": ("GET", "/v1/invoices", 429),
}


def test_every_fixture_file_is_checked():
    assert sorted(p.name for p in FIXTURES.glob("*.json")) == sorted(ENDPOINTS)


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_fixture_matches_the_official_stripe_document(name):
    method, path, status = ENDPOINTS[name]
    check_response("stripe", method, path, json.loads((FIXTURES / name).read_text()), status=status)
