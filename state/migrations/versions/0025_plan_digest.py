"""Customers remember what the automatic write-back plan of their receivables was last derived
from (`plan_digest`: a digest of their invoices' and payments' rows, their views' content
hashes, the allocations on them, the CRM updates sent to them, the day and the settings), so
an engine pass plans again only the customers whose inputs moved (`connector.writeback.unchanged`),
not the book; and the payments allocated to their receivables then (`plan_payments`), which tie
customers a payment was allocated across, before as now.

No backfill: NULL until the next plan derives each customer's writes once.

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("plan_digest", sa.Text(), nullable=True))
    op.add_column("customers", sa.Column("plan_payments", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("customers", "plan_payments")
    op.drop_column("customers", "plan_digest")
