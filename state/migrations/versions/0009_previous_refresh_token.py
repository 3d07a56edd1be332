"""OAuth tokens keep the refresh token the current one replaced.

When a refresh answer is lost (a timeout after the request left, a crash between the answer
and the save) the stored refresh token may be spent while its successor never reached us.
The next attempt tries the stored refresh token (Xero accepts a spent one again for 30
minutes when its answer was lost), then this previous one, and only then asks for the
connection to be authorised again. Nullable: rows saved before this revision have none.

Revision ID: 0009
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_tokens") as batch:
        batch.add_column(sa.Column("previous_refresh_token", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("oauth_tokens") as batch:
        batch.drop_column("previous_refresh_token")
