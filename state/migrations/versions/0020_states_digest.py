"""Customers and invoices remember what the providers' collections states were last read from
(`states_digest`: a digest of the record's views' content hashes and the systems' ranks), so
copying those states after a link reads only the records whose views changed, not the book.

No backfill: NULL until the next link reads each record once.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("states_digest", sa.Text(), nullable=True))
    op.add_column("invoices", sa.Column("states_digest", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("invoices", "states_digest")
    op.drop_column("customers", "states_digest")
