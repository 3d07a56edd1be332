"""HubSpot webhook intake: `X-HubSpot-Signature-v3` verification and event parsing.

Signed as HubSpot's "Validating requests" guide documents for v3: base64 HMAC-SHA256, keyed with
the app's client secret, of method + URI + raw body + `X-HubSpot-Request-Timestamp` (epoch ms),
the URI being the full URL HubSpot called with the escapes the guide lists (%3A, %2F, %3F, ...)
decoded; requests older than 5 minutes are rejected. The guide gives no v3 example values, so
v3 signatures are computed with that scheme. The sample body is the guide's v1 example, copied
byte for byte: the test below checks it against the SHA-256 the guide prints for it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from connector.webhooks import Event, WebhookRejected, WebhookRequest, intake, parse_hubspot, verify_hubspot

SECRET = "8c2f4d7e-1a3b-4c5d-9e8f-0a1b2c3d4e5f"
NOW = 1_700_000_000.0
NOW_MS = int(NOW * 1000)
URL = "https://ar.example.com/webhooks/hubspot?connection=crm"

# HubSpot's v1 validation example: client secret, body, and the hash it documents.
DOC_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
DOC_BODY = (
    b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
    b'"changeFlag":"NEW","appId":54321}]'
)
DOC_V1_HASH = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"


def v3(method: str, uri: str, body: bytes, timestamp: int, secret: str = SECRET) -> str:
    source = method.encode() + uri.encode() + body + str(timestamp).encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


def request(body: bytes, headers: dict[str, str], *, url: str = URL, method: str = "POST", at: float = NOW):
    return WebhookRequest(method, url, {"Content-Type": "application/json", **headers}, body, at)


def signed(
    body: bytes,
    *,
    secret: str = SECRET,
    ts: int = NOW_MS,
    url: str = URL,
    signed_url: str | None = None,
    at: float = NOW,
) -> WebhookRequest:
    headers = {
        "X-HubSpot-Signature-v3": v3("POST", signed_url or url, body, ts, secret),
        "X-HubSpot-Request-Timestamp": str(ts),
    }
    return request(body, headers, url=url, at=at)


def notification(subscription_type: str, object_id: int = 1001, **extra) -> dict:
    return {
        "eventId": 4242,
        "subscriptionId": 777,
        "portalId": 62515,
        "appId": 54321,
        "occurredAt": 1_699_999_990_000,
        "subscriptionType": subscription_type,
        "attemptNumber": 0,
        "objectId": object_id,
        "changeSource": "CRM",
        **extra,
    }


def body_of(*notifications: dict) -> bytes:
    return json.dumps(list(notifications)).encode()


def test_the_sample_body_is_the_documented_one_byte_for_byte():
    assert hashlib.sha256(DOC_SECRET.encode() + DOC_BODY).hexdigest() == DOC_V1_HASH


# -- signatures ---------------------------------------------------------------------------------


def test_a_correctly_signed_request_is_accepted():
    verify_hubspot(signed(DOC_BODY), SECRET)


def test_headers_are_found_whatever_their_case():
    headers = {
        "x-hubspot-signature-v3": v3("POST", URL, DOC_BODY, NOW_MS),
        "X-HUBSPOT-REQUEST-TIMESTAMP": str(NOW_MS),
    }
    verify_hubspot(request(DOC_BODY, headers), SECRET)


def test_a_signature_made_with_another_secret_is_rejected():
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_hubspot(signed(DOC_BODY, secret=DOC_SECRET), SECRET)


def test_a_body_altered_after_signing_is_rejected():
    genuine = signed(DOC_BODY)
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_hubspot(request(DOC_BODY.replace(b'"objectId":123', b'"objectId":124'), dict(genuine.headers)), SECRET)


def test_the_signature_covers_the_method():
    genuine = signed(DOC_BODY)
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_hubspot(request(DOC_BODY, dict(genuine.headers), method="PUT"), SECRET)


def test_the_signature_covers_the_timestamp():
    genuine = dict(signed(DOC_BODY).headers)
    genuine["X-HubSpot-Request-Timestamp"] = str(NOW_MS + 1)
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_hubspot(request(DOC_BODY, genuine), SECRET)


def test_the_uri_includes_the_query_string_as_hubspot_sent_it():
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_hubspot(signed(DOC_BODY, signed_url="https://ar.example.com/webhooks/hubspot"), SECRET)


def test_behind_a_proxy_the_internal_url_does_not_verify():
    # HubSpot signed the public URL; the listener sees its own address.
    internal = "http://127.0.0.1:8780/webhooks/hubspot?connection=crm"
    with pytest.raises(WebhookRejected, match="public URL"):
        verify_hubspot(signed(DOC_BODY, url=internal, signed_url=URL), SECRET)


def test_escapes_the_guide_lists_are_decoded_before_signing():
    received = "https://ar.example.com/webhooks/hubspot?connection=crm&next=https%3A%2F%2Fapp.example.com%2Fdone"
    as_signed = "https://ar.example.com/webhooks/hubspot?connection=crm&next=https://app.example.com/done"
    verify_hubspot(signed(DOC_BODY, url=received, signed_url=as_signed), SECRET)


def test_a_timestamp_within_five_minutes_either_way_is_accepted():
    verify_hubspot(signed(DOC_BODY, ts=NOW_MS - 299_000), SECRET)
    verify_hubspot(signed(DOC_BODY, ts=NOW_MS + 299_000), SECRET)


def test_a_timestamp_older_than_five_minutes_is_rejected_as_stale():
    with pytest.raises(WebhookRejected, match="301 s old .*stale"):
        verify_hubspot(signed(DOC_BODY, ts=NOW_MS - 301_000), SECRET)


def test_a_timestamp_more_than_five_minutes_ahead_is_rejected():
    with pytest.raises(WebhookRejected, match="301 s in the future"):
        verify_hubspot(signed(DOC_BODY, ts=NOW_MS + 301_000), SECRET)


def test_a_genuine_request_replayed_later_is_rejected_as_stale():
    captured = signed(DOC_BODY)
    replay = request(captured.body, dict(captured.headers), at=NOW + 600)
    with pytest.raises(WebhookRejected, match="stale or replayed"):
        verify_hubspot(replay, SECRET)


@pytest.mark.parametrize(
    ("drop", "reason"),
    [
        ("X-HubSpot-Signature-v3", "missing X-HubSpot-Signature-v3 header"),
        ("X-HubSpot-Request-Timestamp", "missing X-HubSpot-Request-Timestamp header"),
    ],
)
def test_a_missing_header_is_rejected_with_a_clear_reason(drop, reason):
    headers = dict(signed(DOC_BODY).headers)
    del headers[drop]
    with pytest.raises(WebhookRejected, match=reason):
        verify_hubspot(request(DOC_BODY, headers), SECRET)


def test_a_timestamp_in_seconds_or_words_is_rejected():
    headers = dict(signed(DOC_BODY).headers)
    headers["X-HubSpot-Request-Timestamp"] = "2023-11-14T22:13:20Z"
    with pytest.raises(WebhookRejected, match="not an integer"):
        verify_hubspot(request(DOC_BODY, headers), SECRET)
    # Seconds instead of milliseconds sign correctly but read as 1970: stale.
    with pytest.raises(WebhookRejected, match="stale"):
        verify_hubspot(signed(DOC_BODY, ts=int(NOW)), SECRET)


@pytest.mark.parametrize(
    "bad",
    [
        request(DOC_BODY, {}),
        signed(DOC_BODY, secret="another-app-secret"),
        signed(DOC_BODY, ts=NOW_MS - 3_600_000),
        signed(DOC_BODY, ts=NOW_MS + 3_600_000),
        signed(b"[{oops"),
    ],
)
def test_no_rejection_mentions_the_secret(bad):
    with pytest.raises(WebhookRejected) as caught:
        intake("hubspot", bad, SECRET)
    assert SECRET not in caught.value.reason and SECRET not in str(caught.value)


# -- events -------------------------------------------------------------------------------------


def test_the_documented_contact_creation_becomes_a_contacts_re_read():
    [event] = intake("hubspot", signed(DOC_BODY), SECRET)
    assert event == Event(
        provider="hubspot",
        event_id="62515:12345:1:123:1564113600000",
        object_type="contact",
        object_id="123",
        stream="contacts",
        occurred_at=1564113600.0,
        raw=json.loads(DOC_BODY)[0],
    )


@pytest.mark.parametrize(
    ("item", "stream", "object_type", "object_id"),
    [
        (
            notification("deal.propertyChange", propertyName="dealstage", propertyValue="closedwon"),
            "deals",
            "deal",
            "1001",
        ),
        (notification("deal.creation"), "deals", "deal", "1001"),
        (notification("deal.deletion"), "deals", "deal", "1001"),
        (notification("company.creation", 2002), "companies", "customer", "2002"),
        (notification("company.propertyChange", 2003, propertyName="name"), "companies", "customer", "2003"),
        (notification("contact.propertyChange", 3003, propertyName="email"), "contacts", "contact", "3003"),
        (notification("object.propertyChange", 4004, objectTypeId="0-3"), "deals", "deal", "4004"),
        (notification("object.creation", 5005, objectTypeId="0-53"), "invoices", "invoice", "5005"),
    ],
)
def test_each_subscription_names_the_stream_and_object_to_re_read(item, stream, object_type, object_id):
    [event] = parse_hubspot(body_of(item))
    assert (event.stream, event.object_type, event.object_id) == (stream, object_type, object_id)
    assert event.occurred_at == 1_699_999_990.0


def test_an_association_change_re_reads_the_object_it_starts_from():
    item = notification("deal.associationChange", associationType="DEAL_TO_COMPANY", fromObjectId=6006, toObjectId=7007)
    del item["objectId"]
    [event] = parse_hubspot(body_of(item))
    assert (event.stream, event.object_id) == ("deals", "6006")


def test_a_batch_skips_objects_no_stream_holds():
    events = parse_hubspot(
        body_of(
            notification("ticket.creation", 1),
            notification("deal.creation", 2),
            notification("object.creation", 3, objectTypeId="2-999"),
        )
    )
    assert [e.object_id for e in events] == ["2"]


def test_a_retry_keeps_the_dedupe_key_and_other_events_do_not_share_it():
    first = notification("deal.propertyChange", propertyName="amount")
    retry = dict(first, attemptNumber=3)
    other_object = dict(first, objectId=1002)
    other_subscription = dict(first, subscriptionId=778)
    ids = [parse_hubspot(body_of(n))[0].event_id for n in (first, retry, other_object, other_subscription)]
    assert ids[0] == ids[1]
    assert len({ids[0], ids[2], ids[3]}) == 3


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[{oops", "not valid JSON"),
        (b'"deal.creation"', "not a list"),
        (b"[1]", "not an object"),
        (body_of({"subscriptionType": "deal.creation", "objectId": 9}), "lacks eventId or objectId"),
    ],
)
def test_a_signed_but_malformed_body_is_rejected(body, reason):
    with pytest.raises(WebhookRejected, match=reason):
        intake("hubspot", signed(body), SECRET)
