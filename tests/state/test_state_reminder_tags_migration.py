"""Migration 0007: reminder actions queued before reminders named their invoices are tagged
like newer ones, and read the same as the audit-log matching that used to read them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from connector.dunning.run import already_reminded, reminder_history
from connector.state import current_revision, head_revision, open_store, upgrade
from connector.state.scope import DEFAULT_COMPANY, bind
from connector.state.tables import table
from connector.writeback.facts import last_reminders

EARLIER = datetime(2026, 10, 1, 12, tzinfo=UTC)


def day(n: int) -> datetime:
    """Noon UTC of October `n`: the same local day in any timezone a test runs in."""
    return datetime(2026, 10, n, 12, tzinfo=UTC)


def queued(
    key: str, kind: str, payload: dict[str, Any], state: str, updated_at: datetime, subject: tuple[str, str]
) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "connection": "crm" if kind != "send_invoice" else "ledger",
        "kind": kind,
        "target": None,
        "payload": payload,
        "state": state,
        "attempts": 1,
        "created_at": EARLIER,
        "updated_at": updated_at,
        "subject_type": subject[0],
        "subject_id": subject[1],
        "summary": key,
    }


def legacy(customer: str, step: int, **extra: Any) -> dict[str, Any]:
    """A reminder action's payload as dunning tagged it before reminders named their invoices."""
    return {"dunning_step": step, "dunning_customer": customer, **extra}


NOTE = {"company_id": "77", "body": "Payment reminder", "subject": "Payment reminder", "due": "2026-10-01"}
NEW_ERA = {
    "dunning_step": 3,
    "dunning_customer": "c9",
    "dunning_as_of": "2026-10-02",
    "dunning_role": "message",
    "dunning_invoices": {"i90": 3},
}

ACTIONS = [
    # c1 +7: the email went out on the 5th; the note beside it on the 3rd does not remind
    queued("c1-email", "send_invoice", legacy("c1", 7), "done", day(5), ("customer", "c1")),
    queued("c1-note", "create_note", legacy("c1", 7, **NOTE), "done", day(3), ("customer", "c1")),
    # c2 +14: the email was parked; the note beside it was done, but only the email reminds
    queued("c2-email", "send_invoice", legacy("c2", 14), "failed", day(6), ("customer", "c2")),
    queued("c2-note", "create_note", legacy("c2", 14, **NOTE), "done", day(6), ("customer", "c2")),
    # c3 +1 by the CRM channel: no email, so the note is the reminder
    queued("c3-note", "create_note", legacy("c3", 1, **NOTE), "done", day(7), ("customer", "c3")),
    # c4 +30: the email was cancelled, and the escalation task beside it was done
    queued("c4-email", "send_invoice", legacy("c4", 30), "cancelled", day(8), ("customer", "c4")),
    queued("c4-task", "create_task", legacy("c4", 30, **NOTE), "done", day(8), ("customer", "c4")),
    # c5 +7: the email is still waiting to be sent
    queued("c5-email", "send_invoice", legacy("c5", 7), "planned", day(9), ("customer", "c5")),
    # c6 +7: an email the audit log has no reminder for
    queued("c6-email", "send_invoice", legacy("c6", 7), "done", day(9), ("customer", "c6")),
    # a late-fee task (on the invoice), a note finance queued, and a reminder of today's kind
    queued("fee-task", "create_task", legacy("c1", 7, invoice="i1", **NOTE), "done", day(5), ("invoice", "i1")),
    queued(
        "finance-note",
        "create_note",
        {"company_id": "77", "body": "INV-1 is disputed"},
        "done",
        day(5),
        ("invoice", "i1"),
    ),
    queued("c9-email", "send_invoice", NEW_ERA, "done", day(2), ("customer", "c9")),
]
REMINDERS = [  # the audit log's `dunning` `reminder` entries of those reminders: (customer, step, invoices)
    ("c1", 7, ["i1", "i2"]),
    ("c2", 14, ["i3"]),
    ("c3", 1, ["i4"]),
    ("c4", 30, ["i5"]),
    ("c5", 7, ["i6"]),
]


@pytest.fixture
def upgraded(empty_engine: sa.Engine) -> sa.Engine:
    """A database at 0006 holding the reminders above, upgraded to the head."""
    upgrade(empty_engine, "0006")
    with Session(empty_engine) as session, session.begin():
        session.execute(sa.insert(table("outbox_actions")), ACTIONS)
        # the audit log as 0006 kept it (no company yet): the columns of that revision only
        session.execute(
            sa.insert(table("audit_log")),
            [
                {
                    "at": datetime.now(UTC),
                    "actor": "dunning",
                    "action": "reminder",
                    "subject_type": "customer",
                    "subject_id": customer,
                    "inputs": {"step": step, "invoices": invoices, "channel": "ledger_email"},
                    "decision": "Payment reminder",
                }
                for customer, step, invoices in REMINDERS
            ],
        )
    assert upgrade(empty_engine) == head_revision()
    return empty_engine


def payloads(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    outbox = table("outbox_actions")
    with Session(engine) as session:
        return {key: payload for key, payload in session.execute(sa.select(outbox.c.idempotency_key, outbox.c.payload))}


def test_the_email_is_the_message_and_names_the_invoices_of_its_audited_reminder(upgraded: sa.Engine) -> None:
    tagged = payloads(upgraded)
    assert tagged["c1-email"] == {**legacy("c1", 7), "dunning_role": "message", "dunning_invoices": {"i1": 7, "i2": 7}}
    assert tagged["c1-note"] == {**legacy("c1", 7, **NOTE), "dunning_role": "note"}
    assert tagged["c4-task"] == {**legacy("c4", 30, **NOTE), "dunning_role": "escalation"}
    # without an email, the CRM note carried the reminder
    assert tagged["c3-note"] == {**legacy("c3", 1, **NOTE), "dunning_role": "message", "dunning_invoices": {"i4": 1}}
    # no reminder in the audit log names what it reminded of
    assert tagged["c6-email"] == {**legacy("c6", 7), "dunning_role": "unlisted"}


def test_actions_that_are_not_legacy_reminders_are_left_as_they_were(upgraded: sa.Engine) -> None:
    tagged = payloads(upgraded)
    before = {a["idempotency_key"]: a["payload"] for a in ACTIONS}
    for key in ("fee-task", "finance-note", "c9-email"):
        assert tagged[key] == before[key]


def test_states_and_times_of_the_tagged_actions_are_kept(upgraded: sa.Engine) -> None:
    outbox = table("outbox_actions")
    with Session(upgraded) as session:
        rows = session.execute(sa.select(outbox.c.idempotency_key, outbox.c.state, outbox.c.updated_at)).all()
    assert {(key, state, updated) for key, state, updated in rows} == {
        (a["idempotency_key"], a["state"], a["updated_at"]) for a in ACTIONS
    }


def test_last_reminders_after_the_upgrade_are_those_the_audit_log_matching_gave(upgraded: sa.Engine) -> None:
    with Session(upgraded) as session:
        reminded = last_reminders(bind(session, DEFAULT_COMPANY))
    # c1's email (not the note beside it, done earlier), c3's note (no email), today's c9 email;
    # not c2 (its email parked), c4 (cancelled), c5 (not sent yet), c6 (no invoices known)
    assert reminded == {
        "i1": date(2026, 10, 5),
        "i2": date(2026, 10, 5),
        "i4": date(2026, 10, 7),
        "i90": date(2026, 10, 2),
    }


def test_reminder_history_after_the_upgrade_counts_only_the_message_once_done(upgraded: sa.Engine) -> None:
    store = open_store(upgraded)
    history = reminder_history(store)
    assert history.sent == {("c1", 7, "i1"), ("c1", 7, "i2"), ("c3", 1, "i4"), ("c9", 3, "i90")}
    # the parked c2 email and the cancelled c4 one do not count though the note or task beside
    # them was done (the audit-log matching counted any done action of a reminder here; the
    # CRM's last reminder date never did)
    assert ("c2", 14, "i3") not in history.sent and ("c4", 30, "i5") not in history.sent
    assert already_reminded(store) == {("c1", 7), ("c3", 1), ("c9", 3)}
    # still queued: never planned twice (the audit-log matching ignored a queued old email)
    assert history.queued == {("c5", 7, "i6")}
    # cancelled or parked never count, whatever day is planned (they name no day)
    assert set(history.dropped) == {("c2", 14, "i3"), ("c4", 30, "i5")}
    assert all(days == {"None"} for days in history.dropped.values())
    store.close()


def test_upgrade_without_legacy_reminders_changes_nothing(empty_engine: sa.Engine) -> None:
    upgrade(empty_engine, "0006")
    with Session(empty_engine) as session, session.begin():
        session.execute(sa.insert(table("outbox_actions")), [a for a in ACTIONS if a["idempotency_key"] == "c9-email"])
    assert upgrade(empty_engine, "0007") == "0007"
    assert payloads(empty_engine) == {"c9-email": NEW_ERA}


def test_downgrade_to_0006_keeps_the_tags(upgraded: sa.Engine) -> None:
    from alembic import command

    from connector.state.migrate import alembic_config

    config = alembic_config()
    with upgraded.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0006")
    assert current_revision(upgraded) == "0006"
    assert payloads(upgraded)["c1-email"]["dunning_role"] == "message"
