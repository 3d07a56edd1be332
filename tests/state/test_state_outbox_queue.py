"""Queueing planned writes in bulk (`outbox.add_planned`): what is queued reads back as planned, a
key already queued is kept as it was (a racing writer's included), and the count says how many
were queued."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from connector.model import Action
from connector.state import Store, outbox
from connector.state.bookkeeping import jsonable
from connector.state.tables import table
from support.state_factories import ref


def _payment(n: int) -> Action:
    return Action(
        connection="ledger",
        kind="record_payment",
        target=ref(f"INV-{n}"),
        payload={"amount": Decimal("10.05"), "currency": "USD", "n": n},
    )


def test_planned_writes_read_back_as_queued_and_a_queued_key_is_kept(store: Store) -> None:
    untargeted = Action(connection="crm", kind="create_task", target=None, payload={"subject": "call ACME"})
    planned = [(_payment(n), "invoice", f"i{n}", f"payment {n}") for n in range(3)]
    planned.append((untargeted, "customer", "c1", "a task"))
    with store.session() as session:
        assert outbox.add_planned(session, planned) == 4
        assert outbox.add_planned(session, planned) == 0
    with store.session() as session:
        stored = outbox.entries(session)
        nulls = session.execute(
            sa.select(sa.func.count()).where(table("outbox_actions").c.target.is_(None))
        ).scalar_one()
    assert [
        (e.action.kind, e.action.target, e.action.payload, e.action.state, e.subject_type, e.subject_id, e.summary)
        for e in stored
    ] == [(a.kind, a.target, jsonable(a.payload), "planned", t, i, s) for a, t, i, s in planned]
    assert [e.action.idempotency_key for e in stored] == [a.idempotency_key for a, _, _, _ in planned]
    assert nulls == 0  # a write without a target holds JSON null, as SQLAlchemy's JSON type wrote it


def test_a_key_a_racing_writer_queued_meanwhile_is_kept_and_not_counted(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    with store.session() as session:
        assert outbox.add_planned(session, [(_payment(1), "invoice", "first", "the first writer's")]) == 1
    # the look-up of queued keys ran before the other writer committed: it found none
    monkeypatch.setattr(outbox, "queued_keys", lambda session, keys: set())
    again = [(_payment(n), "invoice", f"second {n}", "the second writer's") for n in (1, 2)]
    with store.session() as session:
        assert outbox.add_planned(session, again) == 1
    with store.session() as session:
        kept = {e.action.idempotency_key: e.subject_id for e in outbox.entries(session)}
    assert kept == {_payment(1).idempotency_key: "first", _payment(2).idempotency_key: "second 2"}
