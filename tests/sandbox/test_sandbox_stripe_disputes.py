"""The Stripe face serves disputes: the list (pages, `created` and `charge` filters), one by
id, and the charge.dispute.* events of its data."""

from __future__ import annotations

from typing import Any

from support.sandbox_books import T0
from support.sandbox_harness import running, stripe


def dispute(number: int, status: str, *, created: int, charge: str | None = None) -> dict[str, Any]:
    ident = f"dp_{number:04d}"
    return {
        "id": ident,
        "object": "dispute",
        "amount": 5000,
        "currency": "usd",
        "charge": charge or f"ch_{number:04d}",
        "payment_intent": None,
        "status": status,
        "reason": "fraudulent",
        "created": created,
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "evidence": {},
        "balance_transactions": [],
    }


def book() -> dict[str, Any]:
    disputes = [dispute(n, "lost" if n % 2 else "needs_response", created=T0 + 60 * n) for n in range(7)]
    events = [
        {
            "id": "evt_dispute_closed",
            "object": "event",
            "api_version": "2023-08-16",
            "created": T0 + 3600,
            "type": "charge.dispute.closed",
            "data": {"object": disputes[1]},
        }
    ]
    return {"stripe": {"disputes": disputes, "events": events}}


def test_disputes_list_pages_newest_first_and_filters():
    with running(book()) as sandbox, stripe(sandbox) as client:
        first = client.get("/v1/disputes", params={"limit": 3}).json()
        rest = client.get("/v1/disputes", params={"limit": 10, "starting_after": first["data"][-1]["id"]}).json()
        recent = client.get("/v1/disputes", params={"created[gte]": T0 + 60 * 5}).json()
        of_charge = client.get("/v1/disputes", params={"charge": "ch_0003"}).json()
    assert first["object"] == "list" and first["url"] == "/v1/disputes" and first["has_more"] is True
    assert [d["id"] for d in first["data"] + rest["data"]] == [f"dp_{n:04d}" for n in range(6, -1, -1)]
    assert rest["has_more"] is False
    assert [d["id"] for d in recent["data"]] == ["dp_0006", "dp_0005"]
    assert [(d["id"], d["status"]) for d in of_charge["data"]] == [("dp_0003", "lost")]


def test_a_dispute_is_read_by_id_and_an_unknown_one_is_a_404():
    with running(book()) as sandbox, stripe(sandbox) as client:
        found = client.get("/v1/disputes/dp_0002")
        missing = client.get("/v1/disputes/dp_nope")
    assert found.status_code == 200 and found.json()["status"] == "needs_response"
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "No such dispute: 'dp_nope'"


def test_the_events_feed_carries_the_dispute_events_of_the_data():
    with running(book()) as sandbox, stripe(sandbox) as client:
        events = client.get("/v1/events", params={"type": "charge.dispute.*"}).json()["data"]
    assert [(e["type"], e["data"]["object"]["id"]) for e in events] == [("charge.dispute.closed", "dp_0001")]
