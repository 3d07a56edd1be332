"""Stored views carry a content hash (`refs.data_hash`): a sync knows whether an arriving
record changed without reading its view back, and an unchanged record costs no write.

No backfill: the hash is of the view as the store encodes it now (`records.view_hash`), which
the JSON stored by earlier releases does not reproduce byte for byte. A view stored before this
revision has none (NULL), is written again the first time its record arrives, and is hashed then
(once per record, what every sync did for every record before).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("refs", sa.Column("data_hash", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("refs", "data_hash")
