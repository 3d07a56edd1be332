"""Linking on the generated book: every invoice and customer of the ground truth becomes one
canonical record carrying the refs of each system it is in."""

from __future__ import annotations

from datetime import date

import pytest

from connector.config import load_config
from connector.linking.run import link_all
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from support.e2e import sync_sandbox, with_credentials

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    scenario = generate(7, "small", today=date.today())
    directory = tmp_path_factory.mktemp("linked")
    with Sandbox(with_credentials(scenario.data), limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, directory, full=True)
    assert report.ok
    config = load_config(str(directory / "connector.toml"))
    # sync links as its step 4; the report says by which rules
    yield scenario.truth, store, report, config
    store.close()


def refs_of(store, kind, entity_id):
    return {(r.system, r.object_type, r.remote_id) for r in store.refs_for(kind, entity_id)}


def test_every_invoice_of_the_truth_is_one_canonical_invoice_with_its_refs(linked):
    truth, store, _, _ = linked
    invoices = store.list_invoices()
    assert len(invoices) == len(truth["invoices"])
    by_ledger_id = {}
    for invoice in invoices:
        for ref in invoice.refs:
            if ref.system == "ledger":
                by_ledger_id[ref.remote_id] = invoice
    for expected in truth["invoices"]:
        invoice = by_ledger_id[expected["xero_invoice_id"]]
        refs = refs_of(store, "invoice", invoice.id)
        if expected.get("stripe_invoice_id"):
            assert ("gateway", "invoice", expected["stripe_invoice_id"]) in refs, expected["number"]
        if expected.get("hubspot_deal_id"):
            assert ("crm", "deal", expected["hubspot_deal_id"]) in refs, expected["number"]
        if expected.get("hubspot_invoice_id"):
            assert ("crm", "invoice", expected["hubspot_invoice_id"]) in refs, expected["number"]
        # the ledger is the source of truth for the figures
        assert invoice.number == expected["number"]
        assert str(invoice.total.amount) == expected["total"]


def test_every_customer_is_one_canonical_customer_in_each_of_its_systems(linked):
    truth, store, _, _ = linked
    customers = store.list_customers()
    assert len(customers) == len(truth["customers"])
    for expected in truth["customers"]:
        owner = next(
            c
            for c in customers
            if ("ledger", "customer", expected["xero_contact_id"]) in refs_of(store, "customer", c.id)
        )
        refs = refs_of(store, "customer", owner.id)
        if expected.get("stripe_customer_id"):
            assert ("gateway", "customer", expected["stripe_customer_id"]) in refs, expected["name"]
        if expected.get("hubspot_company_id"):
            assert ("crm", "customer", expected["hubspot_company_id"]) in refs, expected["name"]


def test_invoices_point_at_their_linked_customer(linked):
    truth, store, _, _ = linked
    customer_ids = {c.id for c in store.list_customers()}
    assert all(i.customer_id in customer_ids for i in store.list_invoices())


def test_a_card_payment_already_in_the_ledger_is_one_payment(linked):
    truth, store, _, _ = linked
    recorded = [p for p in truth["payments"] if p.get("stripe_charge_id") and p.get("xero_payment_ids")]
    assert recorded
    payments = store.list_payments()
    for expected in recorded:
        owners = [
            p
            for p in payments
            if ("gateway", "payment", expected["stripe_charge_id"]) in refs_of(store, "payment", p.id)
        ]
        assert len(owners) == 1
        assert ("ledger", "payment", expected["xero_payment_ids"][0]) in refs_of(store, "payment", owners[0].id)


def test_linking_again_changes_nothing_and_every_link_is_audited(linked):
    import sqlalchemy as sa

    _, store, sync_report, config = linked
    linked_by_sync = sum(sum(rules.values()) for rules in sync_report.links.values())
    assert linked_by_sync > 0 and set(sync_report.links["invoice"]) <= {
        "explicit_id",
        "invoice_number",
        "customer_amount_date",
    }
    assert link_all(config, store).counts() == {"customer": 0, "invoice": 0, "payment": 0}
    with store.engine.connect() as connection:
        audited = connection.execute(sa.text("SELECT count(*) FROM audit_log WHERE actor = 'linker'")).scalar_one()
    assert audited == linked_by_sync
