"""How far a company's book has moved (`Store.book_position`), and open proposals that keep
when they were first made: what lets a tick with nothing new skip the engine."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from connector.state import Store
from connector.state.changes import CHANGE_CLOCKS, STATE_COLUMNS
from connector.state.reconciliation import decide_proposal, load_proposals, replace_open_proposals
from support.state_factories import SYSTEM, invoice


def proposal(number: int) -> dict[str, Any]:
    return {
        "id": f"pr-{number}",
        "payment_id": f"pay-{number}",
        "currency": "USD",
        "amount_minor": 1000 * number,
        "candidates": [{"invoice_ids": [f"inv-{number}"], "score": "0.8"}],
        "note": None,
    }


def test_storing_the_same_page_again_leaves_the_position_and_a_change_moves_it(store: Store) -> None:
    store.store_page(SYSTEM, "invoices", "invoice", [invoice("A1"), invoice("A2")], cursor=None)
    first = store.book_position()

    store.store_page(SYSTEM, "invoices", "invoice", [invoice("A1"), invoice("A2")], cursor=None)  # read again
    assert store.book_position() == first

    store.store_page(SYSTEM, "invoices", "invoice", [invoice("A1", ("99.00",))], cursor=None)
    moved = store.book_position()
    assert moved["refs"] != first["refs"] and moved["invoices"] != first["invoices"]


def test_a_decision_in_place_moves_the_position(store: Store) -> None:
    with store.session() as session:
        replace_open_proposals(session, [proposal(1)])
    before = store.book_position()
    with store.session() as session:
        decide_proposal(session, "pr-1", "rejected", "ana")
    assert store.book_position()["proposals"] != before["proposals"]


def test_open_proposals_keep_when_they_were_first_made(store: Store) -> None:
    with store.session() as session:
        replace_open_proposals(session, [proposal(1), proposal(2), proposal(4)])
        decide_proposal(session, "pr-4", "accepted", "ana")
    with store.session() as session:
        made = {p["id"]: p["created_at"] for p in load_proposals(session, status=None)}
    position = store.book_position()
    with store.session() as session:  # the next run proposes 1 again, 2 no longer, 3 for the first time
        replace_open_proposals(session, [proposal(1), proposal(3)])
        after = {p["id"]: (p["status"], p["created_at"]) for p in load_proposals(session, status=None)}
    assert set(after) == {"pr-1", "pr-3", "pr-4"}
    assert after["pr-1"] == ("open", made["pr-1"])
    assert after["pr-4"] == ("accepted", made["pr-4"])
    assert after["pr-3"][1] > made["pr-1"]
    assert store.book_position() != position

    position = store.book_position()
    with store.session() as session:  # the same proposals again: nothing moves
        replace_open_proposals(session, [proposal(1), proposal(3)])
    assert store.book_position() == position


def test_another_companys_changes_do_not_move_the_position(store: Store) -> None:
    before = store.book_position()
    store.for_company("acme").store_page(SYSTEM, "invoices", "invoice", [invoice("A1")], cursor=None)
    assert store.book_position() == before


def test_the_position_is_read_from_indexes_not_from_every_row(store: Store) -> None:
    """The aggregates of the position over the large tables (a tick with nothing new asks for
    them, and so does every `sync`, `reconcile` and `plan`) are answered from an index of the
    company (0023): the newest value of a clock column by one seek, the counts from an index's
    entries; none reads the table's rows (a walk over every row took 1.7 s on the
    110,000-invoice book). The allocations and proposals are walked (0023 says why)."""
    store.store_page(SYSTEM, "invoices", "invoice", [invoice("A1")], cursor=None)
    seen: list[tuple[str, object]] = []

    def capture(_conn: object, _cursor: object, statement: str, parameters: object, *_: object) -> None:
        seen.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        store.book_position()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)
    selects = [(s, p) for s, p in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == len(CHANGE_CLOCKS) + len(STATE_COLUMNS)
    if store.engine.dialect.name != "sqlite":
        return  # PostgreSQL chooses by its statistics; the indexes are the same (migrations test)
    walked = ("FROM allocations", "FROM proposals")
    with store.engine.connect() as connection:
        for statement, parameters in selects:
            if any(name in statement for name in walked):
                continue
            plan = " ".join(
                row[-1]
                for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()  # type: ignore[arg-type]
            )
            assert "COVERING INDEX" in plan or "PRIMARY KEY" in plan, (statement, plan)
