"""Claims share out across connections: one connection's backlog, wait or refused credential
never holds back another's writes (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from connector.model import Action
from connector.state import Store, open_store, outbox
from connector.state.records import utcnow
from support.databases import BACKENDS, pg_engine_in_temporary_schema, postgres_url_or_fail, store_on
from support.state_factories import ref

LEASE = timedelta(minutes=10)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with store_on(request.param, tmp_path) as store:
        yield store


def queue(store: Store, connection: str, count: int) -> list[int]:
    """Queue `count` writes to `connection`; their ids, in the order queued."""
    actions = [
        Action(
            connection=connection,
            kind="record_payment",
            target=ref(f"{connection}-INV-{n}"),
            payload={"amount": Decimal("10.00"), "currency": "USD", "n": n},
        )
        for n in range(count)
    ]
    with store.session() as session:
        outbox.add_planned(
            session, [(a, "invoice", f"{connection}-{n}", f"payment {n}") for n, a in enumerate(actions)]
        )
        return [e.id for e in outbox.entries(session, connections=[connection])]


def claim(store: Store, worker: str = "host:1", limit: int = 6, **kw: object) -> list[outbox.OutboxEntry]:
    with store.session() as session:
        return outbox.claim(session, worker, lease=LEASE, limit=limit, **kw)  # type: ignore[arg-type]


def test_a_ledger_backlog_queued_first_does_not_keep_the_crm_and_gateway_waiting(store: Store) -> None:
    ledger = queue(store, "ledger", 40)
    gateway = queue(store, "gateway", 3)
    crm = queue(store, "crm", 5)

    first = claim(store, limit=6)

    # every connection gets its share of the first claim, taken in turn
    assert [e.action.connection for e in first] == ["ledger", "gateway", "crm"] * 2
    # within a connection, the order the plan queued them
    assert [e.id for e in first if e.action.connection == "ledger"] == ledger[:2]
    assert [e.id for e in first if e.action.connection == "gateway"] == gateway[:2]
    assert [e.id for e in first if e.action.connection == "crm"] == crm[:2]


def test_the_shares_of_connections_with_less_work_go_to_the_others(store: Store) -> None:
    queue(store, "ledger", 40)
    queue(store, "gateway", 1)

    first = claim(store, limit=6)
    second = claim(store, limit=6)

    assert [e.action.connection for e in first] == ["ledger", "gateway"] + ["ledger"] * 4
    assert [e.action.connection for e in second] == ["ledger"] * 6
    assert not {e.id for e in first} & {e.id for e in second}


def test_a_waiting_or_held_connection_takes_no_share(store: Store) -> None:
    queue(store, "ledger", 10)
    queue(store, "crm", 10)
    queue(store, "gateway", 10)
    with store.session() as session:
        outbox.defer_connection(session, "ledger", "waits until later: limit", not_before=utcnow() + timedelta(hours=3))
        outbox.hold_connection(session, "gateway", "waits for a new credential", credential="fp-1")

    claimed = claim(store, limit=6)

    assert [e.action.connection for e in claimed] == ["crm"] * 6


@pytest.mark.postgres
def test_workers_claiming_at_once_on_postgresql_share_every_connection() -> None:
    """The second worker claims while the first's transaction is open: it gets the next rows
    of every connection (SKIP LOCKED per connection), not an empty batch."""
    with pg_engine_in_temporary_schema(postgres_url_or_fail()) as engine:
        store = open_store(engine)
        queue(store, "ledger", 20)
        queue(store, "crm", 20)
        with store.session() as first_session:
            first = outbox.claim(first_session, "host:1", lease=LEASE, limit=4)
            with store.session() as second_session:
                second_session.execute(sa.text("SET LOCAL lock_timeout = '3s'"))
                second = outbox.claim(second_session, "host:2", lease=LEASE, limit=4)

    assert [e.action.connection for e in first] == ["ledger", "crm"] * 2
    assert [e.action.connection for e in second] == ["ledger", "crm"] * 2
    assert not {e.id for e in first} & {e.id for e in second}


def test_a_stopping_worker_hands_its_claim_back_due_at_once_and_uncounted(store: Store) -> None:
    queue(store, "ledger", 4)
    claimed = claim(store, limit=4)
    with store.session() as session:
        released = outbox.unclaim(session, [e.id for e in claimed[1:]], "host:1")
        # another worker's claim is not this worker's to hand back
        assert outbox.unclaim(session, [claimed[0].id], "host:2") == 0

    assert released == 3
    with store.session() as session:
        states = {e.id: (e.action.state, e.attempts, e.claimed_by) for e in outbox.entries(session)}
    assert states[claimed[0].id] == ("in_flight", 1, "host:1")
    assert [states[e.id] for e in claimed[1:]] == [("planned", 0, None)] * 3
    again = claim(store, worker="host:2", limit=4)
    assert sorted(e.id for e in again) == sorted(e.id for e in claimed[1:])


def test_held_writes_wait_for_their_credential_and_say_so_until_resumed(store: Store) -> None:
    queue(store, "gateway", 3)
    queue(store, "crm", 2)
    with store.session() as session:
        held = outbox.hold_connection(session, "gateway", "waits for a new credential: refused", credential="fp-1")
    with store.session() as session:
        assert outbox.held_connections(session) == {"gateway": "fp-1"}
        assert outbox.waiting_by_connection(session) == {("gateway", "credential"): 3}
        gateway = outbox.entries(session, connections=["gateway"])
    assert held == 3
    assert all(outbox.is_held(e) and e.attempts == 0 for e in gateway)
    assert {e.last_error for e in gateway} == {"waits for a new credential: refused"}
    assert {e.action.connection for e in claim(store, limit=10)} == {"crm"}

    with store.session() as session:
        assert outbox.resume_connection(session, "gateway") == 3
    with store.session() as session:
        assert outbox.held_connections(session) == {}
    assert [e.action.connection for e in claim(store, limit=10)] == ["gateway"] * 3
