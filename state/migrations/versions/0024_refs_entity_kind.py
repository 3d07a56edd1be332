"""Which records are receivables (`state.records.receivables_only`: those a system of the
receivable kind knows) is read from an index where it decoded views: every report of the book
(`aging`, `invoices list`, `customers list`, `drift`) asks, per invoice, whether one of its refs
came from the ledger, the kind the sync stamped in the view (`_sync.kind`). Without this index
SQLite finds the invoice's refs in `ix_refs_entity` and then parses each one's view to read its
kind: 2 s of the 110,000-invoice book's 2.6 s receivables. With the kind in the index, the
question is answered from the index alone (0.5 s).

An expression index, spelt as `state.tables.json_text` spells it in queries (each database uses
such an index only for a query that writes the expression the same way): SQLite's
`json_extract(data, '$._sync.kind')`, PostgreSQL's `(data #>> '{_sync,kind}')`.

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

_KIND = {
    "sqlite": "json_extract(data, '$._sync.kind')",
    "postgresql": "(data #>> '{_sync,kind}')",
}


def upgrade() -> None:
    kind = _KIND[op.get_bind().dialect.name]
    op.create_index("ix_refs_entity_kind", "refs", ["company", "entity_kind", "entity_id", sa.text(kind)])


def downgrade() -> None:
    op.drop_index("ix_refs_entity_kind", table_name="refs")
