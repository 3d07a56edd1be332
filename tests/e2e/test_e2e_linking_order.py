"""Linking does not depend on arrival order, and a CRM deal alone is never a receivable.

The sandbox book is synced twice: once whole, once with the invoice and deal streams of every
connection completing before the contact and company streams (in runs of their own, so that
each run links what it has: the worst order there is). Both books give the same links, aging
and reconciliation. Then HubSpot's deals lose their company associations and their invoice
number property and are only named after their invoice ("Acme Ltd - INV-0042"), the way sales
teams name them: they link all the same, and a deal naming no invoice stays out of aging, the
invoice list, the reminders and drift, and is listed by `connector invoices unlinked`."""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from connector.config import load_config
from connector.model import Customer, Invoice, Payment
from connector.pipeline import sync
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state.records import ref_details
from connector.state.store import Store
from support.e2e import sync_sandbox, with_credentials

pytestmark = pytest.mark.slow

SEED = 7
# an allocation's or a proposal's id, a digest of its content (our canonical ids among it)
DERIVED_ID = re.compile(r"^[a-z]{2,4}-[0-9a-f]{12,24}$")
LATE_STREAMS = ["invoices", "deals", "payments", "credit_notes", "charges", "refunds"]


def labels(store: Store) -> dict[str, str]:
    """Canonical id -> the systems' ids of the record, which are the same in both books."""
    out = {}
    records: list[Customer | Invoice | Payment] = [
        *store.list_customers(),
        *store.list_invoices(),
        *store.list_payments(),
    ]
    for record in records:
        if record.id:
            out[record.id] = "|".join(sorted(f"{r.system}:{r.object_type}:{r.remote_id}" for r in record.refs))
    return out


def stable(value: Any, names: dict[str, str]) -> Any:
    """`value` with our generated ids replaced by the systems' ids they stand for."""
    if isinstance(value, dict):
        return {k: stable(v, names) for k, v in value.items() if k not in ("run_id", "created_at", "at")}
    if isinstance(value, list):
        return sorted((stable(v, names) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, str):
        if DERIVED_ID.match(value):
            return "<id derived from the above>"
        for entity, label in names.items():
            value = value.replace(entity, label)
    return value


def links(store: Store) -> set[tuple[str, frozenset[str]]]:
    kinds: list[tuple[str, Sequence[Customer | Invoice | Payment]]] = [
        ("customer", store.list_customers()),
        ("invoice", store.list_invoices()),
        ("payment", store.list_payments()),
    ]
    return {
        (kind, frozenset(f"{r.system}:{r.object_type}:{r.remote_id}" for r in record.refs))
        for kind, records in kinds
        for record in records
    }


def late_rules(store: Store) -> dict[str, int]:
    """How many invoice refs each linking rule joined."""
    rules: dict[str, int] = {}
    with store.session() as session:
        for invoice in store.list_invoices(session=session):
            for detail in ref_details(session, "invoice", invoice.id or ""):
                if detail["link_rule"]:
                    rules[detail["link_rule"]] = rules.get(detail["link_rule"], 0) + 1
    return rules


def report(run_cli, directory: Path, store: Store, *args: str) -> Any:
    result = run_cli("--config", str(directory / "connector.toml"), *args, "--json")
    assert result.exit_code in (0, 1), result.stderr
    return stable(json.loads(result.stdout), labels(store))


def synced_late(sandbox: Sandbox, directory: Path) -> Store:
    """Invoices, deals and payments first, each run linking what it has; contacts and companies
    arrive in a later, incremental run."""
    store, first = sync_sandbox(sandbox, directory, streams=LATE_STREAMS)
    assert first.ok and {s.stream for s in first.streams} <= set(LATE_STREAMS)
    config = load_config(str(directory / "connector.toml"))
    assert sync(config, store).ok
    return store


def unnumbered_gateway_invoices(data: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    """Stripe's invoices without their number and metadata where the customer's total is one
    of a kind: each links to the ledger's by its customer, amount and date only, which needs
    the customer the invoice names."""
    data = copy.deepcopy(data)
    totals = Counter((i["customer"], i["currency"], i["total"]) for i in truth["invoices"])
    unique = {
        i["stripe_invoice_id"]
        for i in truth["invoices"]
        if i.get("stripe_invoice_id") and totals[(i["customer"], i["currency"], i["total"])] == 1
    }
    for invoice in data["stripe"]["invoices"]:
        if invoice["id"] in unique:
            invoice["number"] = None
            invoice["metadata"] = {}
    return data


def test_streams_completing_in_another_order_give_the_same_links_aging_and_reconciliation(tmp_path, run_cli):
    scenario = generate(SEED, "small", today=date.today())
    data = with_credentials(unnumbered_gateway_invoices(scenario.data, scenario.truth))
    # one sandbox per book: each book's connections rotate their own refresh tokens
    with Sandbox(data, limits="off") as sandbox:
        whole, report_whole = sync_sandbox(sandbox, tmp_path / "whole", full=True)
    assert report_whole.ok
    with Sandbox(data, limits="off") as sandbox:
        late = synced_late(sandbox, tmp_path / "late")
    try:
        assert links(whole) == links(late)
        by_amount = sum(n for kind, n in late_rules(late).items() if kind == "customer_amount_date")
        assert by_amount > 0  # the invoices that could only link through their customer did
        assert len(whole.list_receivables()) == len(scenario.truth["invoices"])
        outputs = {}
        for name, store in (("whole", whole), ("late", late)):
            directory = tmp_path / name
            outputs[name] = [report(run_cli, directory, store, *args) for args in (["aging"], ["reconcile"])]
        assert outputs["whole"] == outputs["late"]
        assert "(unknown customer)" not in json.dumps(outputs["late"][0])
    finally:
        whole.close()
        late.close()


def named_deals(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """HubSpot's deals named after their invoice, with no association and no number property;
    and one more deal, of a company, naming an invoice that does not exist."""
    data = copy.deepcopy(data)
    hubspot = data["hubspot"]
    companies = {c["id"]: c["properties"]["name"] for c in hubspot["companies"]}
    for deal in hubspot["deals"]:
        company = deal.pop("associations")["companies"]["results"][0]["id"]
        number = deal["properties"].pop("ar_invoice_number")
        deal["properties"]["dealname"] = f"{companies[company]} - {number}"
    lone = copy.deepcopy(hubspot["deals"][0])
    lone["id"] = lone["properties"]["hs_object_id"] = "9999999"
    lone["properties"].update(dealname="Acme Ltd - INV-9999", amount="500.00", deal_currency_code="EUR")
    lone["associations"] = {
        "companies": {"results": [{"id": hubspot["companies"][0]["id"], "type": "deal_to_company"}]}
    }
    hubspot["deals"].append(lone)
    return data, lone


def test_deals_named_after_their_invoice_link_and_a_deal_alone_is_no_receivable(tmp_path, run_cli):
    scenario = generate(SEED, "small", today=date.today())
    data, lone = named_deals(scenario.data)
    with Sandbox(with_credentials(data), limits="off") as sandbox:
        store, synced = sync_sandbox(sandbox, tmp_path / "named", full=True)
    assert synced.ok
    directory = tmp_path / "named"
    try:
        truth = scenario.truth["invoices"]
        deals_of = {
            r.remote_id: invoice.number
            for invoice in store.list_receivables()
            for r in invoice.refs
            if r.object_type == "deal"
        }
        expected = {i["hubspot_deal_id"]: i["number"] for i in truth if i.get("hubspot_deal_id")}
        assert deals_of == expected  # every deal on its own invoice, none on another's
        listed = report(run_cli, directory, store, "invoices", "list")
        assert len(listed["invoices"]) == len(truth)  # each invoice once, the deal-only one not at all
        assert lone["id"] not in json.dumps(listed)

        # the deal names no invoice: out of aging, reminders and drift, listed as unlinked
        aging = report(run_cli, directory, store, "aging")
        assert "(unknown customer)" not in json.dumps(aging) and "500.00" not in json.dumps(aging["customers"])
        for args in (["reminders", "plan", "--as-of", date.today().isoformat()], ["drift"]):
            assert lone["id"] not in json.dumps(report(run_cli, directory, store, *args)), args
        unlinked = report(run_cli, directory, store, "invoices", "unlinked")
        assert unlinked["deals"] == [
            {
                "system": "crm",
                "deal_id": lone["id"],
                "name": "Acme Ltd - INV-9999",
                "amount": "500.00",
                "currency": "EUR",
                "reason": "its name 'Acme Ltd - INV-9999' gives a number no receivable has",
            }
        ]
        text = run_cli("--config", str(directory / "connector.toml"), "invoices", "unlinked")
        assert text.exit_code == 0 and "1 CRM deal(s) linked to no invoice" in text.stdout
    finally:
        store.close()
