"""What linking keyed each stored view by, so that a link pass after a sync reads the views
that changed and their neighbourhood (the views sharing a key with them, the views of the same
records), not the whole book: 21 s and a 600-800 MiB peak for the 110,000-invoice book,
whatever arrived.

A key is a hash (64 bits, `connector.linking.keys.key_hash`) of what a rule compares (an
invoice's number, a customer's e-mail address, the charge a ledger payment names...): two
views with a key in common may link, two without cannot. `link_keys` holds each (key, ref),
looked up by key; `link_key_sets` holds each ref's keys together, the keys it had when
linking last read it (what it may have stopped sharing since), by how they are looked up:
`shared_keys` among every view of its kind, `toward_keys` among the other side only (a CRM
deal's numbers among the invoices, a receivable's digits among the deals), `depends_keys` (the
keys an invoice holds on its customer's record: a customer merged moves its invoices'
customer, amount and date keys) only when customers change; their hashes are of texts no rule
compares, so a rule's key never finds them. Both tables are clustered on
their keys (SQLite: WITHOUT ROWID), which a pass over the whole book writes in their order.

No backfill: the first link pass after this upgrade runs over the whole book and keys it.

Revision ID: 0027
Revises: 0026
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "link_keys",
        sa.Column("company", sa.Text, primary_key=True, nullable=False),
        sa.Column("key", sa.BigInteger, primary_key=True, nullable=False, autoincrement=False),
        sa.Column("ref_id", ID, primary_key=True, nullable=False, autoincrement=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "link_key_sets",
        sa.Column("company", sa.Text, primary_key=True, nullable=False),
        sa.Column("ref_id", ID, primary_key=True, nullable=False, autoincrement=False),
        sa.Column("shared_keys", sa.LargeBinary, nullable=False),
        sa.Column("toward_keys", sa.LargeBinary, nullable=False),
        sa.Column("depends_keys", sa.LargeBinary, nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("link_key_sets")
    op.drop_table("link_keys")
