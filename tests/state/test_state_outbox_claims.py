"""Claiming outbox actions: disjoint batches, and workers claiming at the same moment both get work."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from connector.model import Action
from connector.state import Store, open_store, outbox
from connector.state.records import utcnow
from support.databases import pg_engine_in_temporary_schema, postgres_url_or_fail
from support.state_factories import ref

LEASE = timedelta(minutes=10)


def queue(store: Store, count: int) -> None:
    actions = [
        Action(
            connection="ledger",
            kind="record_payment",
            target=ref(f"INV-{n}"),
            payload={"amount": Decimal("10.00"), "currency": "USD"},
        )
        for n in range(count)
    ]
    with store.session() as session:
        outbox.add_planned(session, [(a, "invoice", str(n), f"payment {n}") for n, a in enumerate(actions)])


def test_claims_in_turn_take_disjoint_batches_until_none_is_left(store: Store) -> None:
    queue(store, 5)
    with store.session() as session:
        first = outbox.claim(session, "host:1", lease=LEASE, limit=3)
    with store.session() as session:
        second = outbox.claim(session, "host:2", lease=LEASE, limit=3)
    with store.session() as session:
        third = outbox.claim(session, "host:1", lease=LEASE, limit=3)

    assert [len(first), len(second), third] == [3, 2, []]
    assert not {e.id for e in first} & {e.id for e in second}
    assert {e.claimed_by for e in first} == {"host:1"} and {e.claimed_by for e in second} == {"host:2"}


@pytest.mark.postgres
def test_two_workers_claiming_at_once_on_postgresql_both_get_a_batch() -> None:
    """The second worker's claim runs while the first's transaction is still open: it gets the
    next rows at once (SKIP LOCKED), rather than waiting on the first's rows and finding them
    all taken, which made it stop with work left for the other worker alone."""
    with pg_engine_in_temporary_schema(postgres_url_or_fail()) as engine:
        store = open_store(engine)
        queue(store, 6)
        with store.session() as first_session:
            first = outbox.claim(first_session, "host:1", lease=LEASE, limit=3)
            with store.session() as second_session:
                # without SKIP LOCKED this claim would wait for the first transaction forever
                second_session.execute(sa.text("SET LOCAL lock_timeout = '3s'"))
                second = outbox.claim(second_session, "host:2", lease=LEASE, limit=3)

        assert len(first) == 3 and len(second) == 3
        assert not {e.id for e in first} & {e.id for e in second}
        with store.session() as session:
            owners = {e.id: e.claimed_by for e in outbox.entries(session, states=("in_flight",))}
        assert sorted(owners.values(), key=str) == ["host:1"] * 3 + ["host:2"] * 3


def test_a_deferred_connection_hands_its_claim_back_uncounted_and_its_queue_waits(store: Store) -> None:
    """A spent daily limit is no fault of the actions: the claimed one goes back to planned
    with its claim not counted, every planned one of the connection waits until the given
    moment with a note, and none of them can be claimed before then."""
    queue(store, 5)
    until = utcnow() + timedelta(hours=20)
    with store.session() as session:
        failed = outbox.claim(session, "host:1", lease=LEASE, limit=1)[0]
        outbox.fail(session, failed.id, "host:1", "HTTP 500", retry_at=utcnow() + timedelta(minutes=1))
    with store.session() as session:
        claimed = outbox.claim(session, "host:1", lease=LEASE, limit=1)
    with store.session() as session:
        assert outbox.release(session, claimed[0].id, "host:1", "waits until tomorrow", not_before=until)
        assert not outbox.release(session, claimed[0].id, "host:1", "again", not_before=until)  # no longer held
        assert outbox.defer_connection(session, "ledger", "waits until tomorrow", not_before=until) == 4
    with store.session() as session:
        kept = outbox.entries(session, ids=[failed.id])[0]
    assert kept.attempts == 1 and kept.last_error == "HTTP 500"  # a failed one keeps its error
    with store.session() as session:
        rows = outbox.entries(session, states=("planned",))
        assert outbox.claim(session, "host:2", lease=LEASE, limit=10) == []
        assert outbox.claim(session, "host:2", lease=LEASE, limit=10, skip_connections=["ledger"]) == []
    rows = [r for r in rows if r.id != failed.id]
    assert len(rows) == 4 and {r.attempts for r in rows} == {0}
    assert {r.last_error for r in rows} == {"waits until tomorrow"}
    assert all(r.next_attempt_at is not None and abs((r.next_attempt_at - until).total_seconds()) < 1 for r in rows)
