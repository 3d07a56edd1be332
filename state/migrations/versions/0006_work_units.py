"""Work units of the scheduled service, and webhook events received.

A unit is one piece of a schedule tick (a connection's stream pull, the reconcile-and-plan
step). Workers claim due units with leases (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so
several `connector serve` processes share a tick and nothing runs twice; a dead worker's
lease runs out and another takes the unit over.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "work_units",
        sa.Column("unit", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("connection", sa.Text),
        sa.Column("stream", sa.Text),
        sa.Column("owner", sa.Text),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("due_tick", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("done_tick", sa.BigInteger, nullable=False, server_default="-1"),
        sa.Column("last_started_at", sa.DateTime(timezone=True)),
        sa.Column("last_success_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.Column("failing_since", sa.DateTime(timezone=True)),
        sa.Column("runs", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "webhook_events",
        sa.Column("provider", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("connection", sa.Text, nullable=False),
        sa.Column("stream", sa.Text),
        sa.Column("object_id", sa.Text),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_events")
    op.drop_table("work_units")
