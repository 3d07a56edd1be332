"""Webhook intake: verify a provider's signature, then parse its events. Pure: no I/O.

The service's HTTP listener builds a `WebhookRequest` from what it received and calls
`intake(provider, request, secret)`; a `WebhookRejected` means "answer 401, log the reason,
store nothing". The events that come back are thin on purpose: the caller stores them
(deduplicated by `(provider, event_id)`) and runs an incremental pull of the event's `streams`
right away (from their stored cursors, so the changed object comes with whatever else changed
since), so duplicates, order and the events' own copies of objects do not matter.

Signature schemes (each compared with `hmac.compare_digest`):

    stripe   Stripe-Signature: t=<unix s>,v1=<hex>[,v1=<hex>...]
             v1 = hex HMAC-SHA256(secret, "{t}.{raw body}"); any v1 may match (secret rolling);
             |received_at - t| <= tolerance (300 s)
    xero     x-xero-signature: base64 HMAC-SHA256(webhook key, raw body); the intent-to-receive
             check is a signed batch with no events
    hubspot  X-HubSpot-Signature-v3: base64 HMAC-SHA256(app secret,
             method + URI + raw body + X-HubSpot-Request-Timestamp); the timestamp is in ms and
             must be within 5 minutes of received_at, either way

A rejection's reason is one line and never carries the secret or a signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

__all__ = [
    "PARSERS",
    "VERIFIERS",
    "Event",
    "WebhookRejected",
    "WebhookRequest",
    "intake",
    "parse_hubspot",
    "parse_stripe",
    "parse_xero",
    "verify_hubspot",
    "verify_stripe",
    "verify_xero",
]

DEFAULT_TOLERANCE_S = 300


class WebhookRejected(Exception):
    """The request is not accepted: answer 401 (the reason is for the log, not the answer)."""

    def __init__(self, reason: str) -> None:
        self.reason = " ".join(reason.split())  # one line
        super().__init__(self.reason)


class _Headers(Mapping[str, str]):
    """Read-only headers, looked up without regard to case."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._items = {str(k).lower(): (str(k), str(v)) for k, v in headers.items()}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __repr__(self) -> str:
        return f"_Headers({dict(self.items())!r})"


@dataclass(frozen=True)
class WebhookRequest:
    method: str
    url: str  # the full URL as the provider called it (HubSpot signs it)
    headers: Mapping[str, str]  # any mapping; looked up without regard to case
    body: bytes  # the raw body, exactly as received
    received_at: float  # epoch seconds

    def __post_init__(self) -> None:
        if not isinstance(self.headers, _Headers):
            object.__setattr__(self, "headers", _Headers(self.headers))


@dataclass(frozen=True)
class Event:
    provider: str
    event_id: str  # dedupe key together with provider; stable across the provider's retries
    object_type: str  # the canonical object type of the stream's records (mappings/*.toml)
    object_id: str
    stream: str  # the provider adapter's stream that holds the object
    occurred_at: float | None  # epoch seconds
    raw: dict[str, Any]
    # Every stream the change may touch, `stream` first: the caller pulls each of them. A Xero
    # invoice UPDATE may be a payment (payments too); a Stripe charge.refunded changes the
    # charge as well as its refunds.
    streams: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        rest = tuple(s for s in self.streams if s != self.stream)
        object.__setattr__(self, "streams", (self.stream, *rest))


# -- verification -----------------------------------------------------------------------------


def _require_secret(secret: str | None) -> str:
    if not secret:
        raise WebhookRejected("no webhook_secret configured for this connection: every event is refused")
    return secret


def _header(request: WebhookRequest, name: str) -> str:
    value = request.headers.get(name)
    if value is None or not value.strip():
        raise WebhookRejected(f"missing {name} header")
    return value.strip()


def _mac(secret: str, *parts: bytes) -> bytes:
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def _matches(expected: str, given: str) -> bool:
    # Bytes, so that a non-ASCII header cannot make compare_digest raise.
    return hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "replace"))


def _is_integer(text: str) -> bool:
    return text.isascii() and text.isdigit()  # str.isdigit alone lets "²" through


def _check_age(header: str, age_s: float, tolerance_s: float) -> None:
    if age_s > tolerance_s:
        raise WebhookRejected(
            f"{header} timestamp is {age_s:.0f} s old (tolerance {tolerance_s:.0f} s): stale or replayed"
        )
    if -age_s > tolerance_s:
        raise WebhookRejected(f"{header} timestamp is {-age_s:.0f} s in the future (tolerance {tolerance_s:.0f} s)")


def verify_stripe(request: WebhookRequest, secret: str, *, tolerance_s: float = DEFAULT_TOLERANCE_S) -> None:
    """Stripe-Signature: `t` and one or more `v1` (other schemes such as `v0` are ignored)."""
    secret = _require_secret(secret)
    header = _header(request, "Stripe-Signature")
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamps.append(value.strip())
        elif key == "v1":
            signatures.append(value.strip())
    if len(timestamps) != 1 or not _is_integer(timestamps[0]):
        raise WebhookRejected("Stripe-Signature header has no single integer timestamp t=")
    if not signatures:
        raise WebhookRejected("Stripe-Signature header has no v1 signature")
    t = timestamps[0]
    expected = _mac(secret, t.encode("ascii"), b".", request.body).hex()
    # Every candidate is compared, so the time taken does not say which one matched.
    if not _any_match(expected, signatures):
        raise WebhookRejected("Stripe-Signature does not match: wrong secret or altered body")
    _check_age("Stripe-Signature", request.received_at - int(t), tolerance_s)


def _any_match(expected: str, candidates: list[str]) -> bool:
    found = False
    for candidate in candidates:
        found |= _matches(expected, candidate)
    return found


def verify_xero(request: WebhookRequest, secret: str) -> None:
    """x-xero-signature; valid with no events is the intent-to-receive check (answer 200)."""
    secret = _require_secret(secret)
    given = _header(request, "x-xero-signature")
    expected = base64.b64encode(_mac(secret, request.body)).decode("ascii")
    if not _matches(expected, given):
        raise WebhookRejected("x-xero-signature does not match: wrong webhook key or altered body")


# HubSpot signs the URI with these escapes decoded (its "validating requests" guide, v3).
_HUBSPOT_DECODED = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip
_HUBSPOT_ESCAPE = re.compile("|".join(_HUBSPOT_DECODED), re.IGNORECASE)


def _hubspot_uri(url: str) -> str:
    return _HUBSPOT_ESCAPE.sub(lambda m: _HUBSPOT_DECODED[m.group(0).upper()], url.split("#", 1)[0])


def verify_hubspot(request: WebhookRequest, secret: str, *, tolerance_s: float = DEFAULT_TOLERANCE_S) -> None:
    """X-HubSpot-Signature-v3 over method + URI + body + timestamp (ms)."""
    secret = _require_secret(secret)
    given = _header(request, "X-HubSpot-Signature-v3")
    timestamp = _header(request, "X-HubSpot-Request-Timestamp")
    if not _is_integer(timestamp):
        raise WebhookRejected("X-HubSpot-Request-Timestamp is not an integer (milliseconds)")
    candidates = dict.fromkeys([_hubspot_uri(request.url), request.url.split("#", 1)[0]])
    matched = False
    for uri in candidates:
        signed = _mac(secret, request.method.encode("utf-8"), uri.encode("utf-8"), request.body, timestamp.encode())
        matched |= _matches(base64.b64encode(signed).decode("ascii"), given)
    if not matched:
        raise WebhookRejected(
            "X-HubSpot-Signature-v3 does not match: wrong app secret, altered body, "
            "or a URL other than the one HubSpot called (behind a proxy, use the public URL)"
        )
    _check_age("X-HubSpot-Request-Timestamp", request.received_at - int(timestamp) / 1000, tolerance_s)


# -- parsing ----------------------------------------------------------------------------------


def _json(body: bytes, provider: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise WebhookRejected(f"{provider} webhook body is not valid JSON ({type(exc).__name__})") from None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value).strip()
    return text or None


class _Target(NamedTuple):
    """Where an event sends the pull: the adapter's stream, its records' canonical type, and
    any other stream the same change touches."""

    stream: str
    object_type: str
    also: tuple[str, ...] = ()

    def event(self, provider: str, event_id: str, object_id: str, at: float | None, raw: dict[str, Any]) -> Event:
        return Event(provider, event_id, self.object_type, object_id, self.stream, at, raw, (self.stream, *self.also))


# Stripe: the stream is chosen by the kind of object the event carries (`data.object.object`),
# so `customer.subscription.*` (a subscription) or `invoiceitem.*` are not taken for ours.
_STRIPE_STREAMS: dict[str, _Target] = {
    "invoice": _Target("invoices", "invoice"),
    "charge": _Target("charges", "payment"),
    "payment_intent": _Target("payment_intents", "payment_intent"),
    "refund": _Target("refunds", "refund"),
    "customer": _Target("customers", "customer"),
    "payout": _Target("payouts", "payout"),
    "credit_note": _Target("credit_notes", "credit_note"),
    # charge.dispute.* carry the dispute: the disputed charge changed too (its dispute status
    # and what the dispute withdrew are on the charge's payment, docs/disputes.md)
    "dispute": _Target("disputes", "dispute", ("charges",)),
}
# Accounts on API versions before 2024-10-28 announce refunds only through the charge: the
# event's id is the charge's, and the refunds stream re-reads the refunds of that charge; the
# charge itself changed too (amount_refunded, refunded).
_STRIPE_VIA_CHARGE = {"charge.refunded": _Target("refunds", "payment", ("charges",))}


def parse_stripe(body: bytes) -> list[Event]:
    """One Stripe event object (as POSTed to an endpoint) -> zero or one Event."""
    event = _json(body, "stripe")
    if not isinstance(event, dict) or event.get("object", "event") != "event":
        raise WebhookRejected("stripe webhook body is not an event object")
    event_id, type_ = _text(event.get("id")), _text(event.get("type"))
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not event_id or not type_ or not isinstance(obj, dict):
        raise WebhookRejected("stripe event lacks id, type or data.object")
    kind = _text(obj.get("object")) or type_.rsplit(".", 1)[0]
    target = _STRIPE_VIA_CHARGE.get(type_) or _STRIPE_STREAMS.get(kind)
    object_id = _text(obj.get("id"))
    if target is None:
        return []  # an event about something no stream holds
    if not object_id:
        raise WebhookRejected(f"stripe event {event_id} ({type_}) has no data.object.id")
    created = event.get("created")
    occurred_at = float(created) if isinstance(created, (int, float)) else None
    return [target.event("stripe", event_id, object_id, occurred_at, event)]


# Xero has no payment webhooks: a payment changes its invoice and arrives as an INVOICE event,
# so an invoice event pulls the payments stream as well as the invoices.
_XERO_STREAMS = {
    "INVOICE": _Target("invoices", "invoice", ("payments",)),
    "CONTACT": _Target("contacts", "customer"),
    "CREDITNOTE": _Target("credit_notes", "credit_note"),
}


def _xero_time(value: Any) -> float | None:
    text = _text(value)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # eventDateUtc carries no zone: it is UTC
    return moment.timestamp()


def parse_xero(body: bytes) -> list[Event]:
    """A Xero batch -> Events. The intent-to-receive check has no events: []."""
    batch = _json(body, "xero")
    if not isinstance(batch, dict):
        raise WebhookRejected("xero webhook body is not an object")
    items = batch.get("events")
    if items is None:
        items = []  # seen as `null` in intent-to-receive batches
    if not isinstance(items, list):
        raise WebhookRejected("xero webhook `events` is not a list")
    events = []
    for item in items:
        if not isinstance(item, dict):
            raise WebhookRejected("xero webhook event is not an object")
        target = _XERO_STREAMS.get(str(item.get("eventCategory", "")).upper())
        if target is None:
            continue  # SUBSCRIPTION and categories no stream holds
        resource_id, event_type = _text(item.get("resourceId")), _text(item.get("eventType"))
        date = _text(item.get("eventDateUtc"))
        if not resource_id or not event_type or not date:
            raise WebhookRejected("xero webhook event lacks resourceId, eventType or eventDateUtc")
        # Xero events have no id: the same change retried carries the same three values.
        event_id = f"{resource_id}:{event_type}:{date}"
        events.append(target.event("xero", event_id, resource_id, _xero_time(date), item))
    return events


_HUBSPOT_STREAMS = {
    "contact": _Target("contacts", "contact"),
    "company": _Target("companies", "customer"),
    "deal": _Target("deals", "deal"),
    "invoice": _Target("invoices", "invoice"),
}
# The generic `object.*` subscriptions name the object by its type id.
_HUBSPOT_TYPE_IDS = {"0-1": "contact", "0-2": "company", "0-3": "deal", "0-53": "invoice"}


def parse_hubspot(body: bytes) -> list[Event]:
    """A HubSpot batch (a JSON array of notifications) -> Events."""
    batch = _json(body, "hubspot")
    if isinstance(batch, dict):
        batch = [batch]
    if not isinstance(batch, list):
        raise WebhookRejected("hubspot webhook body is not a list of events")
    events = []
    for item in batch:
        if not isinstance(item, dict):
            raise WebhookRejected("hubspot webhook event is not an object")
        subscription = str(item.get("subscriptionType", ""))
        prefix = subscription.split(".", 1)[0]
        if prefix == "object":
            prefix = _HUBSPOT_TYPE_IDS.get(str(item.get("objectTypeId", "")), "")
        target = _HUBSPOT_STREAMS.get(prefix)
        if target is None:
            continue  # tickets, conversations and other objects no stream holds
        event_id = _text(item.get("eventId"))
        # An association change names its objects fromObjectId / toObjectId.
        object_id = _text(item.get("objectId")) or _text(item.get("fromObjectId"))
        if not event_id or not object_id:
            raise WebhookRejected(f"hubspot {subscription} event lacks eventId or objectId")
        occurred = item.get("occurredAt")
        # HubSpot does not promise eventId is unique; with the portal, subscription, object and
        # time it is, and a retry (attemptNumber + 1) keeps all of them.
        dedupe_id = (
            f"{item.get('portalId', '')}:{item.get('subscriptionId', '')}:{event_id}:{object_id}:{occurred or ''}"
        )
        occurred_at = occurred / 1000 if isinstance(occurred, (int, float)) else None
        events.append(target.event("hubspot", dedupe_id, object_id, occurred_at, item))
    return events


# -- one entry point ---------------------------------------------------------------------------

VERIFIERS: dict[str, Callable[[WebhookRequest, str], None]] = {
    "stripe": verify_stripe,
    "xero": verify_xero,
    "hubspot": verify_hubspot,
}
PARSERS: dict[str, Callable[[bytes], list[Event]]] = {
    "stripe": parse_stripe,
    "xero": parse_xero,
    "hubspot": parse_hubspot,
}


def intake(provider: str, request: WebhookRequest, secret: str | None) -> list[Event]:
    """Verify, then parse. Raises WebhookRejected (answer 401, store nothing) on any doubt."""
    verify = VERIFIERS.get(provider)
    if verify is None:
        raise WebhookRejected(f"no webhook intake for provider {provider!r} (known: {', '.join(sorted(VERIFIERS))})")
    secret = _require_secret(secret)
    try:
        verify(request, secret)
        return PARSERS[provider](request.body)
    except WebhookRejected as exc:
        # Our reasons never quote the secret; this guards against a secret that happens to be
        # a word of the reason, e.g. a test value.
        if secret in exc.reason:
            raise WebhookRejected(exc.reason.replace(secret, "***")) from None
        raise
