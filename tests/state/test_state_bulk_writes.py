"""The bulk write's racing writer: rows written as new (`new=True`: ids just made, refs just
looked up) whose key another writer stored meanwhile. PostgreSQL COPYs new rows straight into
the table and, refused for the duplicate key, moves them through the staging table instead:
the row is updated, nothing is lost, the write does not fail."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from connector.state import Store
from connector.state.tables import table
from connector.state.upsert import Bulk, bulk_write

CUSTOMERS = Bulk(
    table("customers"),
    ["id", "name", "emails", "paused"],
    key=("id",),
    constants=("created_at", "updated_at"),
)
MADE = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def _names(store: Store) -> dict[str, tuple[str, datetime]]:
    customers = table("customers")
    with store.session() as session:
        rows = session.execute(sa.select(customers.c.id, customers.c.name, customers.c.created_at)).all()
    return {row.id: (row.name, row.created_at) for row in rows}


def test_rows_written_as_new_that_a_racing_writer_stored_meanwhile_are_updated(store: Store) -> None:
    with store.session() as session:
        bulk_write(
            session, CUSTOMERS, [("cus-1", "Acme", ["a@acme.test"], False)], new=True, created_at=MADE, updated_at=MADE
        )
        session.commit()
    with store.session() as session:
        # cus-1 was stored "meanwhile": the writer believed both ids new
        rows = [("cus-1", "Acme Ltd", ["a@acme.test"], False), ("cus-2", "Borealis", [], False)]
        bulk_write(session, CUSTOMERS, rows, new=True, created_at=LATER, updated_at=LATER)
        session.commit()
    assert _names(store) == {"cus-1": ("Acme Ltd", MADE), "cus-2": ("Borealis", LATER)}
