"""Outbox actions are found by the record they are aimed at: an index on the remote id of their
`target` (JSON), so `connector explain` reads the few actions of one record instead of the whole
outbox (207,960 actions on the 110,000-invoice book).

An expression index, spelt as `state.tables.json_text` spells it in queries (each database uses
such an index only for a query that writes the expression the same way): SQLite's
`json_extract(target, '$.remote_id')`, PostgreSQL's `(target ->> 'remote_id')`. Actions without
a target index NULL.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_REMOTE_ID = {
    "sqlite": "json_extract(target, '$.remote_id')",
    "postgresql": "(target ->> 'remote_id')",
}


def upgrade() -> None:
    remote_id = _REMOTE_ID[op.get_bind().dialect.name]
    op.create_index("ix_outbox_actions_target", "outbox_actions", ["company", sa.text(remote_id)])


def downgrade() -> None:
    op.drop_index("ix_outbox_actions_target", table_name="outbox_actions")
