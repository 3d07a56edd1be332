"""Stripe webhook intake: `Stripe-Signature` verification and event parsing.

Requests are signed as Stripe documents it ("Check the webhook signatures" in Stripe's webhooks
guide): `Stripe-Signature: t=<unix seconds>,v1=<hex>`, v1 being the hex HMAC-SHA256 of
`"{t}.{raw body}"` keyed with the endpoint's signing secret, 300 s default tolerance. Stripe's docs
give no secret and body to go with their example header, so the signatures here are computed with
that scheme and, where stripe-python is installed, checked against Stripe's own library.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from connector.webhooks import Event, WebhookRejected, WebhookRequest, intake, parse_stripe, verify_stripe

SECRET = "whsec_4f1c2a9e8b7d6c5b4a3f2e1d0c9b8a7f"
OLD_SECRET = "whsec_0a1b2c3d4e5f60718293a4b5c6d7e8f9"
NOW = 1_700_000_000.0
URL = "https://ar.example.com/webhooks/stripe"
# The example header of Stripe's webhooks guide: its v0 is the test-mode scheme, to be ignored.
DOCUMENTED_HEADER = (
    "t=1492774577,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd,"
    "v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
)


def v1(body: bytes, secret: str, t: int) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def request(body: bytes, header: str | None, *, at: float = NOW, name: str = "Stripe-Signature") -> WebhookRequest:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers[name] = header
    return WebhookRequest("POST", URL, headers, body, at)


def signed(body: bytes, *, secret: str = SECRET, t: int = int(NOW), at: float = NOW) -> WebhookRequest:
    return request(body, f"t={t},v1={v1(body, secret, t)}", at=at)


def stripe_event(type_: str, obj: dict, *, event_id: str = "evt_1OabcDEFghiJKLmn") -> bytes:
    # The shape of Stripe's Event object (specs/stripe-spec3.yaml, schema `event`).
    event = {
        "id": event_id,
        "object": "event",
        "api_version": "2023-08-16",
        "created": 1699999990,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }
    return json.dumps(event, indent=2).encode()


INVOICE_PAID = stripe_event(
    "invoice.paid",
    {"id": "in_1OabcInvoice0001", "object": "invoice", "status": "paid", "amount_paid": 12000, "currency": "eur"},
)


# -- signatures ---------------------------------------------------------------------------------


def test_a_correctly_signed_event_is_accepted():
    verify_stripe(signed(INVOICE_PAID), SECRET)
    assert [e.object_id for e in intake("stripe", signed(INVOICE_PAID), SECRET)] == ["in_1OabcInvoice0001"]


def test_the_header_is_found_whatever_its_case():
    t = int(NOW)
    verify_stripe(request(INVOICE_PAID, f"t={t},v1={v1(INVOICE_PAID, SECRET, t)}", name="stripe-signature"), SECRET)


def test_a_signature_made_with_another_secret_is_rejected():
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_stripe(signed(INVOICE_PAID, secret="whsec_forged"), SECRET)


def test_a_body_altered_after_signing_is_rejected():
    genuine = signed(INVOICE_PAID)
    tampered = INVOICE_PAID.replace(b"12000", b"99000")
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_stripe(request(tampered, genuine.headers["Stripe-Signature"]), SECRET)


def test_a_timestamp_within_tolerance_either_way_is_accepted():
    verify_stripe(signed(INVOICE_PAID, t=int(NOW) - 299), SECRET)
    verify_stripe(signed(INVOICE_PAID, t=int(NOW) + 299), SECRET)


def test_a_timestamp_older_than_the_tolerance_is_rejected_as_stale():
    with pytest.raises(WebhookRejected, match="301 s old .*stale"):
        verify_stripe(signed(INVOICE_PAID, t=int(NOW) - 301), SECRET)


def test_a_timestamp_in_the_future_beyond_the_tolerance_is_rejected():
    with pytest.raises(WebhookRejected, match="301 s in the future"):
        verify_stripe(signed(INVOICE_PAID, t=int(NOW) + 301), SECRET)


def test_the_tolerance_can_be_narrowed():
    with pytest.raises(WebhookRejected, match="stale"):
        verify_stripe(signed(INVOICE_PAID, t=int(NOW) - 61), SECRET, tolerance_s=60)


def test_a_genuine_request_replayed_an_hour_later_is_rejected_as_stale():
    captured = signed(INVOICE_PAID, t=int(NOW))
    replay = request(captured.body, captured.headers["Stripe-Signature"], at=NOW + 3600)
    with pytest.raises(WebhookRejected, match="stale or replayed"):
        verify_stripe(replay, SECRET)


def test_a_replay_with_a_fresh_timestamp_but_the_old_signature_is_rejected():
    old_t = int(NOW) - 3600
    header = f"t={int(NOW)},v1={v1(INVOICE_PAID, SECRET, old_t)}"
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_stripe(request(INVOICE_PAID, header), SECRET)


@pytest.mark.parametrize("configured", [SECRET, OLD_SECRET])
def test_any_of_several_v1_signatures_may_match_while_a_secret_is_rolled(configured):
    t = int(NOW)
    header = f"t={t},v1={v1(INVOICE_PAID, OLD_SECRET, t)},v1={v1(INVOICE_PAID, SECRET, t)}"
    verify_stripe(request(INVOICE_PAID, header), configured)


def test_several_v1_signatures_none_matching_are_rejected():
    t = int(NOW)
    header = f"t={t},v1={v1(INVOICE_PAID, 'whsec_a', t)},v1={v1(INVOICE_PAID, 'whsec_b', t)}"
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_stripe(request(INVOICE_PAID, header), SECRET)


def test_the_documented_header_layout_parses_and_its_v0_is_ignored():
    # Stripe's example header, for a body and secret the docs do not give: a mismatch, not a
    # format error.
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_stripe(request(INVOICE_PAID, DOCUMENTED_HEADER, at=1492774577), SECRET)
    # A v0 beside a good v1 changes nothing; a v0 alone is not a signature we accept.
    t = int(NOW)
    verify_stripe(request(INVOICE_PAID, f"t={t}, v1={v1(INVOICE_PAID, SECRET, t)}, v0=6ffbb59b23"), SECRET)
    with pytest.raises(WebhookRejected, match="no v1 signature"):
        verify_stripe(request(INVOICE_PAID, f"t={t},v0={v1(INVOICE_PAID, SECRET, t)}"), SECRET)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing Stripe-Signature header"),
        ("", "missing Stripe-Signature header"),
        ("v1=abc", "no single integer timestamp"),
        ("t=soon,v1=abc", "no single integer timestamp"),
        ("t=1,t=2,v1=abc", "no single integer timestamp"),
        ("t=¹²,v1=abc", "no single integer timestamp"),
        (f"t={int(NOW)}", "no v1 signature"),
    ],
)
def test_a_missing_or_malformed_header_is_rejected_with_a_clear_reason(header, reason):
    with pytest.raises(WebhookRejected, match=reason):
        verify_stripe(request(INVOICE_PAID, header), SECRET)


@pytest.mark.parametrize(
    "bad",
    [
        request(INVOICE_PAID, None),
        signed(INVOICE_PAID, secret="whsec_other"),
        signed(INVOICE_PAID, t=int(NOW) - 4000),
        signed(INVOICE_PAID, t=int(NOW) + 4000),
        request(b"{not json", f"t={int(NOW)},v1={v1(b'{not json', SECRET, int(NOW))}"),
    ],
)
def test_no_rejection_mentions_the_secret(bad):
    with pytest.raises(WebhookRejected) as caught:
        intake("stripe", bad, SECRET)
    assert SECRET not in str(caught.value) and SECRET not in caught.value.reason
    assert "\n" not in caught.value.reason


def test_stripes_own_library_and_this_module_agree():
    stripe = pytest.importorskip("stripe")  # not a dependency: an extra check where installed
    now = int(time.time())
    payload = INVOICE_PAID.decode()
    theirs = stripe.WebhookSignature.generate_signature_header(payload, SECRET, timestamp=now)
    verify_stripe(request(INVOICE_PAID, theirs, at=now), SECRET)
    ours = signed(INVOICE_PAID, t=now, at=now).headers["Stripe-Signature"]
    assert stripe.WebhookSignature.verify_header(payload, ours, SECRET, tolerance=300)


# -- events -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "obj", "stream", "object_type", "object_id"),
    [
        ("invoice.paid", {"id": "in_1", "object": "invoice"}, "invoices", "invoice", "in_1"),
        ("invoice.voided", {"id": "in_2", "object": "invoice"}, "invoices", "invoice", "in_2"),
        ("charge.succeeded", {"id": "ch_1", "object": "charge"}, "charges", "payment", "ch_1"),
        ("charge.refund.updated", {"id": "re_1", "object": "refund"}, "refunds", "refund", "re_1"),
        ("refund.created", {"id": "re_2", "object": "refund"}, "refunds", "refund", "re_2"),
        (
            "payment_intent.succeeded",
            {"id": "pi_1", "object": "payment_intent"},
            "payment_intents",
            "payment_intent",
            "pi_1",
        ),
        ("customer.updated", {"id": "cus_1", "object": "customer"}, "customers", "customer", "cus_1"),
        ("payout.paid", {"id": "po_1", "object": "payout"}, "payouts", "payout", "po_1"),
        ("credit_note.created", {"id": "cn_1", "object": "credit_note"}, "credit_notes", "credit_note", "cn_1"),
    ],
)
def test_each_event_type_names_the_stream_and_object_to_re_read(type_, obj, stream, object_type, object_id):
    body = stripe_event(type_, obj, event_id="evt_42")
    assert parse_stripe(body) == [
        Event("stripe", "evt_42", object_type, object_id, stream, 1699999990.0, json.loads(body))
    ]
    assert parse_stripe(body)[0].streams == (stream,)  # nothing else is pulled for these


def test_a_refund_announced_through_its_charge_pulls_the_refunds_and_the_charge():
    # Before API 2024-10-28 a refund is announced through its charge (charge.refunded): the
    # charge's refunds are new, and the charge itself changed (amount_refunded, refunded).
    [event] = parse_stripe(stripe_event("charge.refunded", {"id": "ch_2", "object": "charge"}, event_id="evt_43"))
    assert (event.stream, event.object_type, event.object_id) == ("refunds", "payment", "ch_2")
    assert event.streams == ("refunds", "charges")


def test_events_about_objects_no_stream_holds_are_acknowledged_without_events():
    # customer.subscription.* carries a subscription, not a customer.
    assert parse_stripe(stripe_event("customer.subscription.updated", {"id": "sub_1", "object": "subscription"})) == []
    assert parse_stripe(stripe_event("invoiceitem.created", {"id": "ii_1", "object": "invoiceitem"})) == []


def test_the_same_event_delivered_twice_has_the_same_dedupe_key():
    first, second = parse_stripe(INVOICE_PAID), parse_stripe(INVOICE_PAID)
    assert (
        (first[0].provider, first[0].event_id)
        == (second[0].provider, second[0].event_id)
        == ("stripe", "evt_1OabcDEFghiJKLmn")
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "not an event object"),
        (json.dumps({"object": "event", "type": "invoice.paid", "data": {}}).encode(), "lacks id, type or data.object"),
        (stripe_event("invoice.paid", {"object": "invoice"}), "has no data.object.id"),
    ],
)
def test_a_signed_but_malformed_body_is_rejected(body, reason):
    with pytest.raises(WebhookRejected, match=reason):
        intake("stripe", signed(body), SECRET)
