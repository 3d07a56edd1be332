"""Record which connection's view a canonical row holds, and its rank.

Once a Xero invoice, a Stripe invoice and a HubSpot deal are one canonical invoice, the row
must hold the source of truth's figures (the ledger's by default), whichever system synced
last. Existing rows keep their values with rank 0, so the next sync of any system fills in.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("customers", "invoices", "payments")


def upgrade() -> None:
    # Plain ADD COLUMN on both databases: no table is rebuilt, so no row (and no invoice line
    # hanging off an invoice by a cascading foreign key) is ever copied or dropped.
    for name in TABLES:
        op.add_column(name, sa.Column("source", sa.Text, nullable=True))
        op.add_column(name, sa.Column("source_rank", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    for name in TABLES:
        with op.batch_alter_table(name) as batch:
            batch.drop_column("source_rank")
            batch.drop_column("source")
