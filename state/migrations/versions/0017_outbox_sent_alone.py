"""Outbox actions remember that they went out on their own (`sent_alone`), with their own
idempotency key, before any batch: such a write whose answer was lost must go again on its own
with that key (the provider replays it), never in a batch under a new key, where the provider
would make it a second time.

Writes queued and tried before this revision were all sent on their own (or by a version whose
batches are recorded in `batch_key`): the upgrade marks the unfinished ones tried at least once
and outside a recorded batch. A write claimed but never sent (its worker died first) is marked
too, which costs only a batch: it goes alone.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox_actions", sa.Column("sent_alone", sa.Boolean(), nullable=False, server_default=sa.false()))
    outbox = sa.table(
        "outbox_actions",
        sa.column("state", sa.Text),
        sa.column("attempts", sa.Integer),
        sa.column("batch_key", sa.Text),
        sa.column("sent_alone", sa.Boolean),
    )
    op.execute(
        sa.update(outbox)
        .where(
            outbox.c.state.not_in(("done", "cancelled")),
            outbox.c.attempts > 0,
            outbox.c.batch_key.is_(None),
        )
        .values(sent_alone=True)
    )


def downgrade() -> None:
    op.drop_column("outbox_actions", "sent_alone")
