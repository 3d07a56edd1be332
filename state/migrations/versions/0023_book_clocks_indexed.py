"""How far a company's book has moved (`state.changes.book_position`: the service's tick, every
`connector sync`, `reconcile` and `plan` ask it first) is read from indexes where it was a walk
over every row: the newest `refs.changed_at` and the canonical rows' and the outbox's
`updated_at` (1.7 s of the 1.9 s a tick with nothing new spent on the 110,000-invoice book).
An index on (company, clock) makes each one seek.

The allocations and proposals keep theirs unindexed (0.2 s on that book): SQLite, which keeps
no statistics, takes an index that gives a query's ORDER BY over one that finds its rows, and
both are read in order of `created_at`: an index on it made each lookup of one payment's
allocations a walk over all of them (7 us -> 17 ms).

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

_INDEXES = [
    ("ix_customers_updated_at", "customers", ["company", "updated_at"]),
    ("ix_invoices_updated_at", "invoices", ["company", "updated_at"]),
    ("ix_payments_updated_at", "payments", ["company", "updated_at"]),
    ("ix_refs_changed_at", "refs", ["company", "changed_at"]),
    ("ix_outbox_actions_updated_at", "outbox_actions", ["company", "updated_at"]),
]


def upgrade() -> None:
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
