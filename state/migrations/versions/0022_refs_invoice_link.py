"""A payment's views are found by the invoice they say they pay: an index on the link each view
keeps (`_sync.links.invoice`, the invoice's remote id in the view's own system), so `connector
explain` and `connector statement` read the few payment views that name an invoice instead of
sieving every payment view of the book (250,000 on the 110,000-invoice book).

An expression index, spelt as `state.tables.json_text` spells it in queries (each database uses
such an index only for a query that writes the expression the same way): SQLite's
`json_extract(data, '$._sync.links.invoice')`, PostgreSQL's `(data #>> '{_sync,links,invoice}')`.
Only the views that link to an invoice are in it (a partial index): a query that names no
link (a record's refs by its id) is never drawn to it.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_INVOICE_LINK = {
    "sqlite": "json_extract(data, '$._sync.links.invoice')",
    "postgresql": "(data #>> '{_sync,links,invoice}')",
}


def upgrade() -> None:
    link = _INVOICE_LINK[op.get_bind().dialect.name]
    only_links = sa.text(f"{link} IS NOT NULL")
    op.create_index(
        "ix_refs_invoice_link",
        "refs",
        ["company", "system", sa.text(link)],
        sqlite_where=only_links,
        postgresql_where=only_links,
    )


def downgrade() -> None:
    op.drop_index("ix_refs_invoice_link", table_name="refs")
