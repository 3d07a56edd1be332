"""Outbox actions remember the batch they were sent in: a provider that takes several writes
in one request (Xero's `PUT /Payments`, HubSpot's batch endpoints) gets them under one
idempotency key, recorded before the request goes out, so a resend after a crash or a
request without an answer carries the same actions with the same key and the provider
replays its first answer. Nullable: an action sent on its own has none.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox_actions", sa.Column("batch_key", sa.Text(), nullable=True))
    op.create_index("ix_outbox_actions_batch", "outbox_actions", ["company", "batch_key"])


def downgrade() -> None:
    op.drop_index("ix_outbox_actions_batch", table_name="outbox_actions")
    op.drop_column("outbox_actions", "batch_key")
