"""The single entry point: a connection without a secret, unknown providers, the request type."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from connector import webhooks
from connector.webhooks import PARSERS, VERIFIERS, WebhookRejected, WebhookRequest, intake

ITR = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"S0m3r4Nd0mt3xt"}'


def xero_signed(body: bytes, key: str) -> WebhookRequest:
    sig = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
    return WebhookRequest("POST", "https://ar.example.com/webhooks/xero", {"x-xero-signature": sig}, body, 0.0)


@pytest.mark.parametrize("provider", ["stripe", "xero", "hubspot"])
@pytest.mark.parametrize("secret", [None, ""])
def test_a_connection_without_a_webhook_secret_refuses_every_event(provider, secret):
    req = xero_signed(ITR, "anything")
    with pytest.raises(WebhookRejected, match="no webhook_secret configured"):
        intake(provider, req, secret)


def test_an_unknown_provider_is_refused_naming_the_known_ones():
    with pytest.raises(WebhookRejected, match=r"'quickbooks' \(known: hubspot, stripe, xero\)"):
        intake("quickbooks", xero_signed(ITR, "k"), "k")


def test_every_provider_has_a_verifier_and_a_parser():
    assert set(VERIFIERS) == set(PARSERS) == {"stripe", "xero", "hubspot"}


def test_the_module_exports_the_whole_api():
    api = {"WebhookRequest", "Event", "WebhookRejected", "VERIFIERS", "PARSERS", "intake"}
    api |= {f"{verb}_{p}" for verb in ("verify", "parse") for p in ("stripe", "xero", "hubspot")}
    assert set(webhooks.__all__) == api
    assert all(hasattr(webhooks, name) for name in webhooks.__all__)


def test_request_headers_are_read_without_regard_to_case():
    req = WebhookRequest("POST", "https://x", {"Stripe-Signature": "t=1,v1=ab"}, b"{}", 0.0)
    assert req.headers["stripe-signature"] == req.headers["STRIPE-SIGNATURE"] == "t=1,v1=ab"
    assert "stripe-SIGNATURE" in req.headers and list(req.headers) == ["Stripe-Signature"]


def test_a_secret_that_happens_to_be_a_word_of_the_reason_is_still_not_shown():
    req = WebhookRequest("POST", "https://x", {}, ITR, 0.0)
    with pytest.raises(WebhookRejected) as caught:
        intake("xero", req, "header")
    assert "header" not in caught.value.reason and "***" in caught.value.reason


def test_a_reason_is_one_line():
    assert WebhookRejected("a\nb   c").reason == "a b c"
