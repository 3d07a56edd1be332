"""Rate budgets: one row per provider account, shared by every worker that calls it.

A Xero tenant allows 60 calls a minute and 5,000 a day whoever makes them; workers that each
counted their own calls sent four times that and met 429s. `rate_budgets` keeps, per account
(a Xero tenant, a Stripe account and key mode, a HubSpot portal, a QuickBooks realm), the
windows its requests are counted in and its requests in flight (JSON, see
`connector.http.budget`), and until when a 429 paused it. A worker takes a request in one short
transaction on the row (`state.budgets`). New table, no existing row changes.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rate_budgets",
        sa.Column("account", sa.Text(), primary_key=True, nullable=False),
        sa.Column("windows", JSON, nullable=False),
        sa.Column("in_flight", JSON, nullable=False),
        sa.Column("paused_until", TS),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_budgets")
