"""Stored views remember when they last changed (`refs.changed_at`: written new or with another
hash), apart from `seen_at`, which every sync moves: whether anything arrived since the engine
last ran is then one aggregate (`state.changes`), not a read of the book.

No backfill: NULL for views stored before this revision until they change; the engine's first
run after the upgrade has no mark to compare with and runs in full.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("refs", sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("refs", "changed_at")
