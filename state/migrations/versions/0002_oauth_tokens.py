"""OAuth tokens per connection, saved by compare-and-swap on `version`.

Two workers refreshing the same connection's token at once must not both win: the provider
rotates the refresh token, and the loser's copy is already dead. `version` lets a save
succeed only if nobody saved since the saver loaded.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_tokens",
        sa.Column("connection", sa.Text, primary_key=True),
        sa.Column("access_token", sa.Text),
        sa.Column("refresh_token", sa.Text),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("oauth_tokens")
