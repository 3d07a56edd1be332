"""Each stored view's keys remember the version of the view they were made from (the
`refs.changed_at` linking read with it: `link_key_sets.view_changed_at`), so that a link pass
over what changed passes over a view its last pass already keyed as it is. A pass reads the
views changed since the one before it began, less ten minutes (a page another worker was still
committing); after a first sync (the pull shorter than those ten minutes) that was every view,
and the tick after a first sync linked the 110,000-invoice book whole again (55 s).

No backfill: NULL until the next pass keys each view; until then such a view counts as changed
when its time says so, as before.

Revision ID: 0029
Revises: 0028
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("link_key_sets", sa.Column("view_changed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("link_key_sets", "view_changed_at")
