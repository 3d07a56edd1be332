"""Proposals keep their note: what finance should know when no candidate can do what the
evidence says (a possible duplicate payment naming an invoice paid already; a payment naming
an invoice in another currency, with the rate it implies). Nullable: most proposals have none.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("proposals", sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("proposals", "note")
