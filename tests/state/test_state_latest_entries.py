"""`latest_entries`: the newest audit entry about each subject, by one actor and action, of the
store's own company, however many older ones the log holds (dunning compares a skip with the
last one it recorded)."""

from __future__ import annotations

from connector.state.bookkeeping import audit, latest_entries


def test_the_newest_entry_of_each_subject_by_actor_and_action_in_its_own_company(store):
    other = store.for_company("other")
    with store.session() as session:
        for day in range(1, 4):
            audit(session, "dunning", "reminder_skipped", "invoice", "inv-1", {"as_of": f"2026-01-0{day}"}, "old")
        audit(session, "dunning", "reminder_skipped", "invoice", "inv-2", {"as_of": "2026-01-01"}, "one")
        audit(session, "finance", "reminder_skipped", "invoice", "inv-1", {"as_of": "2026-01-09"}, "another actor")
        audit(session, "dunning", "reminder", "invoice", "inv-1", {"as_of": "2026-01-09"}, "another action")
        audit(session, "dunning", "reminder_skipped", "customer", "inv-1", {"as_of": "2026-01-09"}, "another type")
    with other.session() as session:
        audit(session, "dunning", "reminder_skipped", "invoice", "inv-1", {"as_of": "2026-02-01"}, "other company")
    with store.reader().session() as session:
        found = latest_entries(
            session,
            actor="dunning",
            action="reminder_skipped",
            subject_type="invoice",
            subject_ids={"inv-1", "inv-2", "inv-3"},
        )
    assert {subject: (e.inputs, e.decision) for subject, e in found.items()} == {
        "inv-1": ({"as_of": "2026-01-03"}, "old"),
        "inv-2": ({"as_of": "2026-01-01"}, "one"),
    }
