"""How far a company's book has moved (`state.changes.book_position`: the service's tick, every
`connector sync`, `reconcile` and `plan` ask it first) is read from indexes. The newest value
of each clock column (`refs.changed_at`, the canonical rows' and the outbox's `updated_at`, the
allocations' `created_at` with their statuses, the proposals' `created_at` and `decided_at`)
was a walk over every row of the table: 1.9 s on the 110,000-invoice book for a tick with
nothing new. An index on (company, clock) makes each one seek, or a walk of a narrow index.

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
    ("ix_allocations_status", "allocations", ["company", "status", "created_at"]),
    ("ix_refs_changed_at", "refs", ["company", "changed_at"]),
    ("ix_outbox_actions_updated_at", "outbox_actions", ["company", "updated_at"]),
    ("ix_proposals_clocks", "proposals", ["company", "created_at", "decided_at"]),
]


def upgrade() -> None:
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
