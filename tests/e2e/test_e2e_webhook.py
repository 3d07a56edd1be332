"""Webhooks against the sandbox: a Stripe webhook for a new card payment is verified, stored
once, and the payment reaches the ledger within seconds; a Xero invoice webhook brings in a
payment recorded in Xero. Neither waits for the next scheduled run."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from connector.config import load_config
from connector.demo import DEMO_CREDENTIALS
from connector.mappings.transforms import stripe_exponent
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.sandbox.stripe_api import StripeFace
from connector.service.listener import Listener
from connector.service.loop import Service
from support.e2e import sync_sandbox, with_credentials

pytestmark = pytest.mark.slow

SECRET = "whsec_test_webhook_secret_for_e2e"


def signed(body: bytes, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    at = at or int(time.time())
    signature = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={at},v1={signature}", "Content-Type": "application/json"}


def new_charge(sandbox: Sandbox, scenario_data: dict) -> tuple[dict, str]:
    """A card payment naming an open ledger invoice of a customer known to Stripe."""
    stripe = sandbox.faces["stripe"]
    assert isinstance(stripe, StripeFace)
    customers = {
        c["metadata"].get("xero_contact_id"): c for c in scenario_data["stripe"]["customers"] if c.get("metadata")
    }
    invoice = next(
        i
        for i in scenario_data["xero"]["Invoices"]
        if i["Status"] == "AUTHORISED" and i["AmountPaid"] == 0 and i["Contact"]["ContactID"] in customers
    )
    customer = customers[invoice["Contact"]["ContactID"]]
    template = next(iter(stripe.objects["charges"].values()))
    currency = invoice["CurrencyCode"]
    amount = int((invoice["AmountDue"] * (10 ** stripe_exponent(currency))).to_integral_value())
    charge = {
        **json.loads(json.dumps(template, default=str)),
        "id": stripe.new_id("ch"),
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 0,
        "refunded": False,
        "currency": currency.lower(),
        "customer": customer["id"],
        "invoice": None,
        "payment_intent": None,
        "balance_transaction": None,
        "description": f"Payment for {invoice['InvoiceNumber']}",
        "metadata": {},
        "created": int(time.time()),
        "status": "succeeded",
        "paid": True,
        "refunds": None,
    }
    event = {
        "id": stripe.new_id("evt"),
        "object": "event",
        "api_version": "2023-08-16",
        "created": int(time.time()),
        "data": {"object": charge},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "charge.succeeded",
    }
    with sandbox.lock:
        stripe.load({"charges": [charge], "events": [event]})
    return event, invoice["InvoiceID"]


def serve_after_first_run(sandbox: Sandbox, directory, edit) -> tuple:
    """A service (hourly schedule) with its listener on the sandbox, once its first scheduled
    run is over: whatever arrives afterwards must come through a webhook."""
    store, _ = sync_sandbox(sandbox, directory, streams=["(none)"])
    path = directory / "connector.toml"
    path.write_text(edit(path.read_text()))
    service = Service(load_config(str(path)), store, timedelta(hours=1))
    listener = Listener(service, "127.0.0.1", 0)
    listener.start()
    runner = threading.Thread(target=service.run)
    runner.start()
    deadline = time.monotonic() + 120
    while service.ticks_done < 1 and time.monotonic() < deadline:  # the first scheduled run
        time.sleep(0.2)
    assert service.ticks_done >= 1, "the first scheduled run did not finish"
    return store, service, listener, runner


def test_a_stripe_webhook_gets_the_payment_into_the_ledger_within_seconds(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_STRIPE_WHSEC", SECRET)
    scenario = generate(7, "small", today=date.today())
    with Sandbox(with_credentials(scenario.data), limits="off") as sandbox:
        store, service, listener, runner = serve_after_first_run(
            sandbox,
            tmp_path,
            lambda text: text.replace(
                'api_key = "sk_test_sandbox_demo"',
                'api_key = "sk_test_sandbox_demo"\nwebhook_secret = "env:TEST_STRIPE_WHSEC"',
            ),
        )
        event, invoice_id = new_charge(sandbox, scenario.data)
        charge_id = event["data"]["object"]["id"]
        body = json.dumps(event).encode()
        url = listener.address + "/webhooks/stripe"
        assert httpx.post(url, content=body, headers=signed(body, "whsec_wrong")).status_code == 401
        stale = signed(body, at=int(time.time()) - 3600)
        assert httpx.post(url, content=body, headers=stale).status_code == 401
        sent_at = time.monotonic()
        assert httpx.post(url, content=body, headers=signed(body)).status_code == 200
        assert httpx.post(url, content=body, headers=signed(body)).status_code == 200  # a duplicate delivery
        recorded = []
        while not recorded and time.monotonic() - sent_at < 60:
            recorded = [
                e
                for e in sandbox.journal
                if e["method"] == "PUT"
                and e["path"].startswith("/Payments")
                and charge_id in json.dumps(e.get("payload"), default=str)
            ]
            time.sleep(0.2)
        elapsed = time.monotonic() - sent_at
        service.stop.set()
        service.wake.set()
        runner.join(60)
        metrics = httpx.get(listener.address + "/metrics").text
        listener.close()
    assert len(recorded) == 1, "the new card payment was recorded in the ledger once"
    assert invoice_id in json.dumps(recorded[0]["payload"], default=str)
    assert elapsed < 60  # seconds, not the hour until the next scheduled run
    assert 'connector_webhooks_total{outcome="rejected",provider="stripe"} 2.0' in metrics
    assert 'connector_webhooks_total{outcome="accepted",provider="stripe"} 2.0' in metrics
    store.close()


XERO_KEY = "xero-webhook-key-for-the-e2e-test"


def xero_signed(body: bytes) -> dict[str, str]:
    signature = base64.b64encode(hmac.new(XERO_KEY.encode(), body, hashlib.sha256).digest()).decode()
    return {"x-xero-signature": signature, "Content-Type": "application/json"}


def ledger_payment_ids(store) -> set[str]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT remote_id FROM refs WHERE system = 'ledger' AND object_type = 'payment'")
        ).all()
    return {row[0] for row in rows}


def test_a_payment_recorded_in_xero_arrives_through_its_invoice_webhook(tmp_path, monkeypatch):
    """Xero has no payment webhooks: a payment entered in Xero shows only as its invoice's
    UPDATE. That event must pull the ledger's payments too, or the payment waits for the next
    scheduled run (an hour here)."""
    monkeypatch.setenv("TEST_XERO_WEBHOOK_KEY", XERO_KEY)
    scenario = generate(7, "small", today=date.today())
    with Sandbox(with_credentials(scenario.data), limits="off") as sandbox:
        store, service, listener, runner = serve_after_first_run(
            sandbox,
            tmp_path,
            lambda text: text.replace(
                'provider = "xero"\n', 'provider = "xero"\nwebhook_secret = "env:TEST_XERO_WEBHOOK_KEY"\n'
            ),
        )
        known = ledger_payment_ids(store)
        xero = sandbox.faces["xero"]
        with sandbox.lock:  # someone records a bank payment against an open invoice, in Xero
            invoice = next(
                i
                for i in xero.objects["Invoices"].values()
                if i["Status"] == "AUTHORISED" and i["CurrencyCode"] == "USD" and i["AmountDue"] > 0
            )
            payment = xero._record_payment(
                {
                    "Invoice": {"InvoiceID": invoice["InvoiceID"]},
                    "Account": {"Code": "090"},
                    "Amount": invoice["AmountDue"],
                    "Date": date.today().isoformat(),
                }
            )
        event = {
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{invoice['InvoiceID']}",
            "resourceId": invoice["InvoiceID"],
            "eventDateUtc": datetime.now(UTC).replace(tzinfo=None).isoformat(),
            "eventType": "UPDATE",
            "eventCategory": "INVOICE",
            "tenantId": DEMO_CREDENTIALS["xero"]["tenant_ids"][0],
            "tenantType": "ORGANISATION",
        }
        body = json.dumps(
            {"events": [event], "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "E2E"}
        ).encode()
        answer = httpx.post(listener.address + "/webhooks/xero", content=body, headers=xero_signed(body))
        arrived = False
        sent_at = time.monotonic()
        while not arrived and time.monotonic() - sent_at < 60:
            arrived = payment["PaymentID"] in ledger_payment_ids(store)
            time.sleep(0.2)
        service.stop.set()
        service.wake.set()
        runner.join(60)
        listener.close()
    store.close()
    assert answer.status_code == 200
    assert payment["PaymentID"] not in known
    assert arrived, "the payment recorded in Xero was pulled after its invoice's webhook, before the next run"
