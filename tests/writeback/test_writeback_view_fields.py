"""The plan reads a part of the book's views at named fields only (`PLAN_VIEW_FIELDS`): a field
no path names is refused when read, never taken for one the system left empty."""

from __future__ import annotations

import pytest

from connector.writeback.plan import PLAN_VIEW_FIELDS, FieldsRead, SystemView, crm_values


def test_a_view_read_at_named_fields_answers_those_and_refuses_the_others() -> None:
    view = FieldsRead.of(
        {
            "status": "paid",
            "amount": {"amount": "10.05", "currency": "USD"},
            "_sync": {"links": {"invoice": "INV-7"}, "hints": {"crm_payment_status": "paid"}},
        },
        PLAN_VIEW_FIELDS,
    )
    assert view.get("status") == "paid" and view["amount"] == {"amount": "10.05", "currency": "USD"}
    assert view.get("received_at") is None  # named, and the system said nothing
    assert view["_sync"].get("links").get("invoice") == "INV-7"
    assert view["_sync"].get("deleted") is None
    for unread in ("currency", "total", "customer"):
        with pytest.raises(LookupError, match="PLAN_VIEW_FIELDS"):
            view.get(unread)
    with pytest.raises(LookupError):
        view["_sync"].get("kind")
    with pytest.raises(LookupError):
        view["_sync"]["links"]["customer"]


def test_the_crm_values_the_plan_compares_are_among_the_fields_read() -> None:
    data = FieldsRead.of({"_sync": {"hints": {"crm_payment_status": "paid", "crm_days_overdue": 3}}}, PLAN_VIEW_FIELDS)
    view = SystemView("crm", "crm", "deal", "900", data)
    assert crm_values(view) == {"payment_status": "paid", "days_overdue": "3"}
