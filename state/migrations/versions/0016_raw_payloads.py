"""Refs keep the provider's raw payload (`refs.raw`: its JSON, zlib-compressed), so a mapping
change is applied to the stored book by `connector remap` without asking the provider again,
and `connector explain --raw` shows where each field came from.

No backfill: the payloads of records stored before this revision were never kept. They stay
NULL until their record arrives again (`connector sync --full` brings every one back); remap
skips them and says how many there are.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("refs", sa.Column("raw", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("refs", "raw")
