"""Payments remember what the ledger's records of them were last made from (`ledger_digest`:
a digest of the payment's own figures and status, its ledger payments as reconciliation reads
them, and its ledger-record allocations as that run left them), so that a reconciliation
makes the ledger's allocations again only for the payments where one of those moved, not for
every payment the ledger records (6.6 s of the 110,000-invoice book's run).

No backfill: NULL until the next reconciliation reads each payment once.

Revision ID: 0028
Revises: 0027
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("ledger_digest", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("payments", "ledger_digest")
