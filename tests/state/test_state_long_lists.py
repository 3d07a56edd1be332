"""Reads by a long list of ids: a large book's neighbourhoods name more records than SQLite takes
parameters in a statement (32,766; 999 before 3.32), so a long list goes as one parameter
(`upsert.one_of`). Here SQLite's limit is lowered to 999 (what SQLite before 3.32 takes) to show
it without a million rows."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa

from connector.model import Action, Allocation
from connector.money import Money
from connector.state import Store, outbox, records
from connector.state import reconciliation as decisions
from support.state_factories import invoice, payment

LIMIT = 999  # SQLite's bound-parameter limit while the reads run
MANY = 1200  # records of each kind: more than the limit, and twice as many named


def _lower_sqlite_limit(store: Store) -> None:
    if store.engine.dialect.name != "sqlite":
        return  # PostgreSQL gets one array parameter whatever the list

    @sa.event.listens_for(store.engine, "connect")
    def limited(dbapi_connection: sqlite3.Connection, _: object) -> None:
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, LIMIT)

    store.engine.dispose()  # the pooled connections were opened without the limit


def test_reads_by_more_ids_than_a_statement_takes_parameters_find_every_record(store: Store) -> None:
    stored = store.store_page("gateway", "charges", "payment", [payment(f"ch_{n}") for n in range(MANY)], None)
    payment_ids = [p.id or "" for p in stored]
    invoice_ids = [i.id or "" for i in store.upsert_invoices([invoice(f"x-{n}") for n in range(MANY)])]
    with store.session() as session:
        decisions.save_allocations(
            session,
            [
                Allocation(
                    payment_id=payment_id,
                    invoice_id=invoice_ids[n],
                    amount=Money.of("1.00", "USD"),
                    rule="explicit_link",
                    confidence=Decimal("1"),
                )
                for n, payment_id in enumerate(payment_ids)
            ],
            "applied",
        )
        outbox.add_planned(
            session,
            [
                (Action(connection="crm", kind="create_task", payload={"n": n}), "payment", payment_id, f"task {n}")
                for n, payment_id in enumerate(payment_ids)
            ],
        )
    _lower_sqlite_limit(store)
    unknown = [f"missing-{n}" for n in range(MANY)]
    with store.session() as session:
        if store.engine.dialect.name == "sqlite":  # the limit holds: a plain IN list of them fails
            try:
                names = [f"p{n}" for n in range(LIMIT + 1)]
                listed = ",".join(f":{name}" for name in names)
                session.execute(sa.text(f"SELECT 1 WHERE 1 IN ({listed})"), dict.fromkeys(names, 1))
            except sa.exc.OperationalError as error:
                assert "too many SQL variables" in str(error)
            else:
                raise AssertionError("SQLite took more parameters than its limit")
        allocations = decisions.load_allocations(session, status="applied", payment_ids=[*payment_ids, *unknown])
        assert sorted(s.allocation.payment_id for s in allocations) == sorted(payment_ids)
        by_invoice = decisions.load_allocations(session, invoice_ids=invoice_ids[::2])
        assert len(by_invoice) == MANY // 2
        entries = outbox.entries(session, subject_ids=[*payment_ids, *unknown])
        assert sorted(e.subject_id or "" for e in entries) == sorted(payment_ids)
        again = outbox.entries(session, ids=[e.id for e in entries])
        assert [e.id for e in again] == [e.id for e in entries]
        charges = [f"ch_{n}" for n in range(MANY)]
        known = records.refs_known_as(session, [(None, c) for c in [*charges, *unknown]])
        assert [(r["remote_id"], r["entity_id"]) for r in known] == sorted(zip(charges, payment_ids, strict=True))
        wanted = [("gateway", c) for c in charges[::2]] + [("ledger", c) for c in charges]
        known = records.refs_known_as(session, wanted)
        assert len(known) == MANY // 2
    found = store.list_payments(ids=[*payment_ids, *unknown])
    assert sorted(p.id or "" for p in found) == sorted(payment_ids)
    assert found[0].received_at == datetime(2024, 6, 2, 9, 15, tzinfo=UTC)
    receivables = store.list_receivables(ids=[*invoice_ids, *unknown], with_lines=False, with_refs=False)
    assert sorted(i.id or "" for i in receivables) == sorted(invoice_ids)
