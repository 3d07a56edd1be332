"""A record's refs are read from one index alone: `ix_refs_entity` holds, beside the company,
kind and canonical id it is searched by, what a `Ref` is made of (system, object type, remote
id, when the provider last changed it) and, last, the kind of system the view came from
(`_sync.kind`, which `ix_refs_entity_kind` held since 0024; that index goes).

Every report lists each invoice's systems and ids (`invoices list`, `drift`, the statements,
`explain`), the reminders plan reads where each invoice lives, and the engine reads the refs
of each batch: without these columns in the index, each ref was a look-up of its row in the
table, whose rows carry the view and the raw payload (about 1.5 KB each), a random page read a
ref. On the 110,000-invoice book (597,000 refs), the 333,000 invoice refs read a thousand
invoices at a time: 2.0 s from the rows, 0.9 s from the index (SQLite). Whether an invoice is
a receivable (`records.receivables_only`) is answered from the same index (its few refs' kinds),
as fast as from 0024's; one index instead of two costs the sync less to keep.

An expression, spelt as `state.tables.json_text` spells it in queries (each database uses it
only for a query that writes the expression the same way): SQLite's
`json_extract(data, '$._sync.kind')`, PostgreSQL's `(data #>> '{_sync,kind}')`.

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

_SEARCHED = ["company", "entity_kind", "entity_id"]
_CARRIED = ["system", "object_type", "remote_id", "remote_updated_at"]
_KIND = {
    "sqlite": "json_extract(data, '$._sync.kind')",
    "postgresql": "(data #>> '{_sync,kind}')",
}


def upgrade() -> None:
    kind = _KIND[op.get_bind().dialect.name]
    op.drop_index("ix_refs_entity_kind", table_name="refs")
    op.drop_index("ix_refs_entity", table_name="refs")
    op.create_index("ix_refs_entity", "refs", [*_SEARCHED, *_CARRIED, sa.text(kind)])


def downgrade() -> None:
    kind = _KIND[op.get_bind().dialect.name]
    op.drop_index("ix_refs_entity", table_name="refs")
    op.create_index("ix_refs_entity", "refs", _SEARCHED)
    op.create_index("ix_refs_entity_kind", "refs", [*_SEARCHED, sa.text(kind)])
