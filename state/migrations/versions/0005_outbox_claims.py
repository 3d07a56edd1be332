"""Outbox claims: who is sending an action and since when, what it is about, and what it
changes in words (for `connector plan`).

An action is claimed by a compare-and-swap on its state before it is sent; a claim whose
worker died (same host, process gone) or whose lease ran out is taken over, and the provider's
idempotency key makes the resend harmless.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox_actions", sa.Column("claimed_by", sa.Text, nullable=True))
    op.add_column("outbox_actions", sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("outbox_actions", sa.Column("subject_type", sa.Text, nullable=True))
    op.add_column("outbox_actions", sa.Column("subject_id", sa.Text, nullable=True))
    op.add_column("outbox_actions", sa.Column("summary", sa.Text, nullable=True))
    op.create_index("ix_outbox_actions_subject", "outbox_actions", ["subject_type", "subject_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_actions_subject", "outbox_actions")
    for column in ("summary", "subject_id", "subject_type", "claimed_at", "claimed_by"):
        op.drop_column("outbox_actions", column)
