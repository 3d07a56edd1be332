"""A Stripe webhook for a new card payment: verified, stored once, and the payment reaches the
ledger within seconds, without waiting for the next scheduled run."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import date, timedelta

import httpx
import pytest

from connector.config import load_config
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.service.listener import Listener
from connector.service.loop import Service
from e2e_support import sync_sandbox, with_credentials
from mappings.transforms import stripe_exponent

pytestmark = pytest.mark.slow

SECRET = "whsec_test_webhook_secret_for_e2e"


def signed(body: bytes, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    at = at or int(time.time())
    signature = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={at},v1={signature}", "Content-Type": "application/json"}


def new_charge(sandbox: Sandbox, scenario_data: dict) -> tuple[dict, str]:
    """A card payment naming an open ledger invoice of a customer known to Stripe."""
    stripe = sandbox.faces["stripe"]
    customers = {c["metadata"].get("xero_contact_id"): c for c in scenario_data["stripe"]["customers"] if c.get("metadata")}
    invoice = next(i for i in scenario_data["xero"]["Invoices"]
                   if i["Status"] == "AUTHORISED" and i["AmountPaid"] == 0 and i["Contact"]["ContactID"] in customers)
    customer = customers[invoice["Contact"]["ContactID"]]
    template = next(iter(stripe.objects["charges"].values()))
    currency = invoice["CurrencyCode"]
    amount = int((invoice["AmountDue"] * (10 ** stripe_exponent(currency))).to_integral_value())
    charge = {**json.loads(json.dumps(template, default=str)), "id": stripe.new_id("ch"), "amount": amount,
              "amount_captured": amount, "amount_refunded": 0, "refunded": False, "currency": currency.lower(),
              "customer": customer["id"], "invoice": None, "payment_intent": None, "balance_transaction": None,
              "description": f"Payment for {invoice['InvoiceNumber']}", "metadata": {},
              "created": int(time.time()), "status": "succeeded", "paid": True, "refunds": None}
    event = {"id": stripe.new_id("evt"), "object": "event", "api_version": "2023-08-16", "created": int(time.time()),
             "data": {"object": charge}, "livemode": False, "pending_webhooks": 1,
             "request": {"id": None, "idempotency_key": None}, "type": "charge.succeeded"}
    with sandbox.lock:
        stripe.load({"charges": [charge], "events": [event]})
    return event, invoice["InvoiceID"]


def test_a_stripe_webhook_gets_the_payment_into_the_ledger_within_seconds(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_STRIPE_WHSEC", SECRET)
    scenario = generate(7, "small", today=date.today())
    with Sandbox(with_credentials(scenario.data), limits="off") as sandbox:
        store, _ = sync_sandbox(sandbox, tmp_path, streams=["(none)"])
        path = tmp_path / "connector.toml"
        path.write_text(path.read_text().replace('api_key = "sk_test_sandbox_demo"',
                                                 'api_key = "sk_test_sandbox_demo"\nwebhook_secret = "env:TEST_STRIPE_WHSEC"'))
        service = Service(load_config(str(path)), store, timedelta(hours=1))
        listener = Listener(service, "127.0.0.1", 0)
        listener.start()
        runner = threading.Thread(target=service.run)
        runner.start()
        deadline = time.monotonic() + 120
        while service.ticks_done < 1 and time.monotonic() < deadline:  # the first scheduled run
            time.sleep(0.2)
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
            recorded = [e for e in sandbox.journal if e["method"] == "PUT" and e["path"].startswith("/Payments")
                        and charge_id in json.dumps(e.get("payload"), default=str)]
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
