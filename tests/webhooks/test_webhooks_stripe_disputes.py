"""Stripe dispute (chargeback) webhooks: `charge.dispute.*` events carry the dispute, and the
pull they cause re-reads the disputes and the disputed charge (docs/disputes.md)."""

from __future__ import annotations

import json

import pytest

from connector.providers.stripe.streams import STREAMS
from connector.webhooks import parse_stripe


def dispute_event(type_: str, *, status: str) -> bytes:
    # The shape of Stripe's Event object carrying a Dispute (specs/stripe-spec3.yaml, `dispute`).
    dispute = {
        "id": "dp_1Oabc",
        "object": "dispute",
        "amount": 12000,
        "currency": "usd",
        "charge": "ch_1Oabc",
        "created": 1699999000,
        "reason": "fraudulent",
        "status": status,
        "balance_transactions": [],
    }
    event = {
        "id": "evt_dispute_1",
        "object": "event",
        "api_version": "2023-08-16",
        "created": 1699999990,
        "data": {"object": dispute},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }
    return json.dumps(event).encode()


@pytest.mark.parametrize(
    ("type_", "status"),
    [
        ("charge.dispute.created", "needs_response"),
        ("charge.dispute.updated", "under_review"),
        ("charge.dispute.funds_withdrawn", "needs_response"),
        ("charge.dispute.closed", "lost"),
        ("charge.dispute.funds_reinstated", "won"),
    ],
)
def test_a_dispute_event_pulls_the_disputes_and_the_disputed_charge(type_, status):
    [event] = parse_stripe(dispute_event(type_, status=status))
    assert (event.provider, event.event_id, event.object_type, event.object_id) == (
        "stripe",
        "evt_dispute_1",
        "dispute",
        "dp_1Oabc",
    )
    # the charge's payment carries the dispute's status and what it withdrew: it is read again
    assert event.streams == ("disputes", "charges")


def test_the_streams_a_dispute_event_pulls_are_streams_the_stripe_adapter_reads():
    [event] = parse_stripe(dispute_event("charge.dispute.closed", status="lost"))
    assert set(event.streams) <= set(STREAMS)
    assert STREAMS["disputes"].path == "/v1/disputes"
