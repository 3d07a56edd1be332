"""Payments keep their dispute (chargeback): status, amount contested, reason and when.

A dispute opened on a card payment withdraws the money it contests (Stripe takes it when the
dispute opens); a lost dispute keeps it, a won one gives it back. The payment's collected amount
leaves the withdrawn money out, so reconciliation takes its allocations back and the invoice
reopens (docs/disputes.md). Nullable columns: payments stored before this revision, and every
payment without a dispute, have none. SQLite and PostgreSQL both add and drop a column in
place (no table rebuild, so the allocations' foreign keys to payments are left alone).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COLUMNS = (
    ("dispute_status", sa.Text()),
    ("amount_disputed_minor", sa.BigInteger()),
    ("dispute_reason", sa.Text()),
    ("disputed_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("payments", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        op.drop_column("payments", name)
