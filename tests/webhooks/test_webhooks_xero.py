"""Xero webhook intake: `x-xero-signature` verification, intent to receive, event parsing.

Signed as Xero's webhooks guide documents: `x-xero-signature` is the base64 HMAC-SHA256 of the
raw body keyed with the app's webhook key; the "intent to receive" check sends signed batches
with no events, some correctly signed (answer 200, empty body) and some not (answer 401), and
Xero gives no key/signature pair to reproduce, so signatures are computed with that scheme.
The payloads are the examples of Xero's own webhook document (XeroAPI/Xero-OpenAPI,
xero-webhooks.yaml), serialised here as Xero sends them: compact JSON.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from connector.webhooks import WebhookRejected, WebhookRequest, intake, parse_xero, verify_xero

# The shape of a Xero webhook key (64 random bytes, base64), not a real one.
KEY = base64.b64encode(hashlib.sha512(b"test webhook key").digest()).decode()
URL = "https://ar.example.com/webhooks/xero"
NOW = 1_700_000_000.0

# xero-webhooks.yaml: the intent-to-receive batch (no events) and the contact UPDATE example.
INTENT_TO_RECEIVE = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"S0m3r4Nd0mt3xt"}'
CONTACT_UPDATE = json.dumps(
    {
        "events": [
            {
                "resourceUrl": "https://api.xero.com/api.xro/2.0/Contacts/717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",
                "resourceId": "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",
                "eventDateUtc": "2024-06-21T01:15:39.902",
                "eventType": "UPDATE",
                "eventCategory": "CONTACT",
                "tenantId": "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f",
                "tenantType": "ORGANISATION",
            }
        ],
        "lastEventSequence": 1,
        "firstEventSequence": 1,
        "entropy": "S0m3r4Nd0mt3xt",
    },
    separators=(",", ":"),
).encode()


def xero_event(category: str, event_type: str, resource_id: str, date: str) -> dict:
    return {
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/{category.title()}s/{resource_id}",
        "resourceId": resource_id,
        "eventDateUtc": date,
        "eventType": event_type,
        "eventCategory": category,
        "tenantId": "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f",
        "tenantType": "ORGANISATION",
    }


def batch(*events: dict) -> bytes:
    return json.dumps(
        {
            "events": list(events),
            "firstEventSequence": 7,
            "lastEventSequence": 6 + len(events),
            "entropy": "QWERTYUIOP",
        },
        separators=(",", ":"),
    ).encode()


def signature(body: bytes, key: str = KEY) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def request(body: bytes, header: str | None, *, name: str = "x-xero-signature") -> WebhookRequest:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if header is not None:
        headers[name] = header
    return WebhookRequest("POST", URL, headers, body, NOW)


def signed(body: bytes, key: str = KEY) -> WebhookRequest:
    return request(body, signature(body, key))


# -- intent to receive and signatures ----------------------------------------------------------


def test_intent_to_receive_correctly_signed_is_accepted_with_no_events():
    assert intake("xero", signed(INTENT_TO_RECEIVE), KEY) == []


def test_intent_to_receive_wrongly_signed_is_rejected():
    other_key = base64.b64encode(hashlib.sha512(b"another app").digest()).decode()
    with pytest.raises(WebhookRejected, match="x-xero-signature does not match"):
        intake("xero", signed(INTENT_TO_RECEIVE, other_key), KEY)


def test_intent_to_receive_with_a_made_up_signature_is_rejected():
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_xero(request(INTENT_TO_RECEIVE, "bm90IGEgc2lnbmF0dXJl"), KEY)


def test_a_correctly_signed_batch_is_accepted():
    verify_xero(signed(CONTACT_UPDATE), KEY)


def test_the_header_is_found_whatever_its_case():
    verify_xero(request(CONTACT_UPDATE, signature(CONTACT_UPDATE), name="X-Xero-Signature"), KEY)


def test_a_body_altered_after_signing_is_rejected():
    tampered = CONTACT_UPDATE.replace(b'"UPDATE"', b'"CREATE"')
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_xero(request(tampered, signature(CONTACT_UPDATE)), KEY)


def test_the_signature_covers_the_raw_bytes_not_the_parsed_json():
    # The same JSON with other whitespace is another body: the listener must pass the raw bytes.
    reformatted = json.dumps(json.loads(CONTACT_UPDATE), indent=2).encode()
    with pytest.raises(WebhookRejected):
        verify_xero(request(reformatted, signature(CONTACT_UPDATE)), KEY)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_a_missing_signature_is_rejected_with_a_clear_reason(header):
    with pytest.raises(WebhookRejected, match="missing x-xero-signature header"):
        verify_xero(request(CONTACT_UPDATE, header), KEY)


@pytest.mark.parametrize(
    "bad",
    [request(CONTACT_UPDATE, None), signed(CONTACT_UPDATE, "some other key"), signed(b"{oops")],
)
def test_no_rejection_mentions_the_key(bad):
    with pytest.raises(WebhookRejected) as caught:
        intake("xero", bad, KEY)
    assert KEY not in caught.value.reason and KEY not in str(caught.value)


# -- events -------------------------------------------------------------------------------------


def test_the_documented_contact_event_becomes_a_contacts_re_read():
    [event] = intake("xero", signed(CONTACT_UPDATE), KEY)
    assert (event.provider, event.stream, event.object_type, event.object_id) == (
        "xero",
        "contacts",
        "customer",
        "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",
    )
    assert event.occurred_at == datetime(2024, 6, 21, 1, 15, 39, 902000, tzinfo=UTC).timestamp()
    assert event.raw["tenantId"] == "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"


def test_a_payment_arrives_as_an_invoice_update_and_pulls_the_invoices_and_the_payments():
    # Xero has no payment webhooks: the payment shows only as its invoice's UPDATE, so the
    # payments stream must be pulled too, or the payment waits for the next scheduled run.
    body = batch(xero_event("INVOICE", "UPDATE", "4d6c8f0e-1111-4a5b-9c3d-000000000001", "2024-06-21T02:00:00.123"))
    [event] = parse_xero(body)
    assert (event.stream, event.object_type, event.object_id) == (
        "invoices",
        "invoice",
        "4d6c8f0e-1111-4a5b-9c3d-000000000001",
    )
    assert event.streams == ("invoices", "payments")


def test_contact_and_credit_note_events_pull_only_their_own_stream():
    body = batch(
        xero_event("CONTACT", "UPDATE", "bbbb0000-0000-4000-8000-000000000002", "2024-06-21T02:00:00.200"),
        xero_event("CREDITNOTE", "CREATE", "cccc0000-0000-4000-8000-000000000003", "2024-06-21T02:00:00.300"),
    )
    assert [e.streams for e in parse_xero(body)] == [("contacts",), ("credit_notes",)]


def test_a_batch_gives_one_event_per_item_and_skips_categories_no_stream_holds():
    body = batch(
        xero_event("INVOICE", "CREATE", "aaaa0000-0000-4000-8000-000000000001", "2024-06-21T02:00:00.100"),
        xero_event("CONTACT", "CREATE", "bbbb0000-0000-4000-8000-000000000002", "2024-06-21T02:00:00.200"),
        xero_event("CREDITNOTE", "CREATE", "cccc0000-0000-4000-8000-000000000003", "2024-06-21T02:00:00.300"),
        xero_event("SUBSCRIPTION", "UPDATE", "dddd0000-0000-4000-8000-000000000004", "2024-06-21T02:00:00.400"),
    )
    assert [(e.stream, e.object_id[:4]) for e in parse_xero(body)] == [
        ("invoices", "aaaa"),
        ("contacts", "bbbb"),
        ("credit_notes", "cccc"),
    ]


def test_the_derived_event_id_is_stable_across_deliveries_and_distinct_per_change():
    first = xero_event("INVOICE", "UPDATE", "aaaa0000-0000-4000-8000-000000000001", "2024-06-21T02:00:00.100")
    later = dict(first, eventDateUtc="2024-06-21T02:05:00.100")
    created = dict(first, eventType="CREATE")
    ids = [parse_xero(batch(e))[0].event_id for e in (first, first, later, created)]
    assert ids[0] == ids[1]
    assert len({ids[0], ids[2], ids[3]}) == 3
    assert ids[0] == "aaaa0000-0000-4000-8000-000000000001:UPDATE:2024-06-21T02:00:00.100"


def test_an_event_time_xero_cannot_write_as_iso_leaves_occurred_at_empty():
    [event] = parse_xero(batch(xero_event("INVOICE", "UPDATE", "aaaa0000-0000-4000-8000-000000000001", "yesterday")))
    assert event.occurred_at is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{oops", "not valid JSON"),
        (b"[]", "not an object"),
        (b'{"events":{}}', "not a list"),
        (b'{"events":[1]}', "not an object"),
        (batch({"eventCategory": "INVOICE", "eventType": "UPDATE"}), "lacks resourceId"),
    ],
)
def test_a_signed_but_malformed_body_is_rejected(body, reason):
    with pytest.raises(WebhookRejected, match=reason):
        intake("xero", signed(body), KEY)
