"""The service's webhook endpoints over HTTP: which streams a verified event makes due, and the
public URL HubSpot signs (with or without a trailing slash).

The loop itself is not run here (tests/e2e/test_e2e_webhook.py does that against the sandbox):
the service's `due_now` is recorded, so each test sees exactly which pulls an event starts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import cast

import httpx
import pytest
from webhooks.signing import stripe_signed

from connector.config import load_config
from connector.demo import demo_config
from connector.sandbox import Sandbox
from connector.service.listener import Listener
from connector.service.loop import Service
from connector.state.store import open_store

XERO_KEY = "xero-webhook-key-for-listener-tests"
HUBSPOT_SECRET = "hubspot-client-secret-for-listener-tests"
STRIPE_SECRET = "whsec_listener_tests"


class _Nowhere:
    """demo_config wants a sandbox's URLs; nothing here is ever called."""

    def url(self, provider: str) -> str:
        return f"http://127.0.0.1:9/{provider}"


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    monkeypatch.setenv("T_XERO_KEY", XERO_KEY)
    monkeypatch.setenv("T_HUBSPOT_SECRET", HUBSPOT_SECRET)
    monkeypatch.setenv("T_STRIPE_SECRET", STRIPE_SECRET)
    nowhere = cast(Sandbox, _Nowhere())  # demo_config reads only the sandbox's url()
    text = demo_config(nowhere).replace("sqlite:///connector.db", f"sqlite:///{tmp_path / 'state.db'}")
    text = text.replace('provider = "xero"\n', 'provider = "xero"\nwebhook_secret = "env:T_XERO_KEY"\n')
    text = text.replace('provider = "hubspot"\n', 'provider = "hubspot"\nwebhook_secret = "env:T_HUBSPOT_SECRET"\n')
    text = text.replace('provider = "stripe"\n', 'provider = "stripe"\nwebhook_secret = "env:T_STRIPE_SECRET"\n')
    (tmp_path / "connector.toml").write_text(text)
    config = load_config(str(tmp_path / "connector.toml"))
    store = open_store(config.database_url)
    svc = Service(config, store, timedelta(hours=1))
    made_due: list[tuple[str, str]] = []
    svc.made_due = made_due  # type: ignore[attr-defined]  # test-only: the pulls made due
    monkeypatch.setattr(svc, "due_now", lambda connection, stream: made_due.append((connection, stream)))
    yield svc
    store.close()


def listening(service, public_url=None) -> Listener:
    listener = Listener(service, "127.0.0.1", 0, public_url=public_url)
    listener.start()
    return listener


def xero_invoice_update(invoice_id: str) -> bytes:
    event = {
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{invoice_id}",
        "resourceId": invoice_id,
        "eventDateUtc": "2024-06-21T02:00:00.123",
        "eventType": "UPDATE",
        "eventCategory": "INVOICE",
        "tenantId": "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f",
        "tenantType": "ORGANISATION",
    }
    return json.dumps({"events": [event], "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "X"}).encode()


def xero_headers(body: bytes) -> dict[str, str]:
    sig = base64.b64encode(hmac.new(XERO_KEY.encode(), body, hashlib.sha256).digest()).decode()
    return {"x-xero-signature": sig, "Content-Type": "application/json"}


def test_a_xero_invoice_update_pulls_the_ledgers_invoices_and_payments(service):
    listener = listening(service)
    try:
        body = xero_invoice_update("4d6c8f0e-1111-4a5b-9c3d-000000000001")
        answer = httpx.post(listener.address + "/webhooks/xero", content=body, headers=xero_headers(body))
        again = httpx.post(listener.address + "/webhooks/xero", content=body, headers=xero_headers(body))
    finally:
        listener.close()
    assert (answer.status_code, answer.content) == (200, b"")
    assert again.status_code == 200
    # A payment recorded in Xero shows only as its invoice's UPDATE: both streams are pulled,
    # once (the second delivery is the same event).
    assert service.made_due == [("ledger", "invoices"), ("ledger", "payments")]


def test_a_stripe_charge_refunded_pulls_the_refunds_and_the_charges(service):
    event = {
        "id": "evt_refund_1",
        "object": "event",
        "type": "charge.refunded",
        "created": int(time.time()),
        "data": {"object": {"id": "ch_1", "object": "charge", "amount_refunded": 500}},
    }
    body, headers = stripe_signed(event, STRIPE_SECRET)
    listener = listening(service)
    try:
        answer = httpx.post(listener.address + "/webhooks/stripe", content=body, headers=headers)
    finally:
        listener.close()
    assert answer.status_code == 200
    assert service.made_due == [("gateway", "charges"), ("gateway", "refunds")]


def hubspot_headers(url: str, body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time() * 1000))
    source = b"POST" + url.encode() + body + timestamp.encode()
    signature = base64.b64encode(hmac.new(HUBSPOT_SECRET.encode(), source, hashlib.sha256).digest()).decode()
    return {
        "X-HubSpot-Signature-v3": signature,
        "X-HubSpot-Request-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


HUBSPOT_DEAL_CHANGE = json.dumps(
    [
        {
            "eventId": 1,
            "subscriptionId": 12345,
            "portalId": 62515,
            "occurredAt": 1564113600000,
            "subscriptionType": "deal.propertyChange",
            "attemptNumber": 0,
            "objectId": 9000001,
            "propertyName": "dealstage",
            "propertyValue": "closedwon",
            "changeSource": "CRM",
            "appId": 54321,
        }
    ]
).encode()


@pytest.mark.parametrize(
    ("public_url", "called"),
    [
        ("https://ar.example.com", "https://ar.example.com/webhooks/hubspot"),
        ("https://ar.example.com/", "https://ar.example.com/webhooks/hubspot"),
        ("https://ar.example.com/connector/", "https://ar.example.com/connector/webhooks/hubspot"),
    ],
)
def test_hubspot_events_verify_against_the_public_url_with_or_without_a_trailing_slash(service, public_url, called):
    # The reverse proxy forwards https://ar.example.com[/connector]/webhooks/hubspot to the
    # listener's /webhooks/hubspot; HubSpot signed the public URL it called.
    listener = listening(service, public_url)
    try:
        answer = httpx.post(
            listener.address + "/webhooks/hubspot",
            content=HUBSPOT_DEAL_CHANGE,
            headers=hubspot_headers(called, HUBSPOT_DEAL_CHANGE),
        )
        signed_for_listener = httpx.post(
            listener.address + "/webhooks/hubspot",
            content=HUBSPOT_DEAL_CHANGE,
            headers=hubspot_headers(listener.address + "/webhooks/hubspot", HUBSPOT_DEAL_CHANGE),
        )
    finally:
        listener.close()
    assert answer.status_code == 200
    assert service.made_due == [("crm", "deals")]
    # The internal address is not what HubSpot called: behind the proxy it is refused.
    assert signed_for_listener.status_code == 401


def test_without_a_public_url_hubspot_is_checked_against_the_address_it_called(service):
    listener = listening(service)
    try:
        url = listener.address + "/webhooks/hubspot"
        answer = httpx.post(url, content=HUBSPOT_DEAL_CHANGE, headers=hubspot_headers(url, HUBSPOT_DEAL_CHANGE))
    finally:
        listener.close()
    assert answer.status_code == 200
    assert service.made_due == [("crm", "deals")]
