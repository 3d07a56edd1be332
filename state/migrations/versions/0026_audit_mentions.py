"""The ids each audit entry's inputs name beside its subject (`audit_mentions`), so that
`connector explain` finds the entries naming a record (a manual match names its invoice only
in its inputs) by an index look-up instead of a LIKE over the text of the whole log (0.55 s
of the 110,000-invoice book's `explain`, growing with the log).

A record id is spelt as `state.records.new_id` spells every canonical id: 32 lowercase hex
digits. The backfill keeps, for every entry of before, each string value anywhere in its
inputs that is spelt so and is not the entry's subject: what `state.bookkeeping.ids_named`
keeps for every entry written from now on.

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

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_BACKFILL = {
    "sqlite": """
        INSERT INTO audit_mentions (company, mentioned, entry_id)
        SELECT DISTINCT a.company, j.value, a.id
        FROM audit_log AS a, json_tree(a.inputs) AS j
        WHERE a.inputs IS NOT NULL AND j.type = 'text' AND length(j.value) = 32
          AND j.value NOT GLOB '*[^0-9a-f]*' AND j.value IS NOT a.subject_id
    """,
    "postgresql": """
        INSERT INTO audit_mentions (company, mentioned, entry_id)
        SELECT DISTINCT a.company, v #>> '{}', a.id
        FROM audit_log AS a, jsonb_path_query(a.inputs, 'strict $.**') AS v
        WHERE jsonb_typeof(v) = 'string' AND (v #>> '{}') ~ '^[0-9a-f]{32}$'
          AND (v #>> '{}') IS DISTINCT FROM a.subject_id
    """,
}


def upgrade() -> None:
    op.create_table(
        "audit_mentions",
        sa.Column("company", sa.Text, primary_key=True, nullable=False),
        sa.Column("mentioned", sa.Text, primary_key=True, nullable=False),
        sa.Column("entry_id", ID, primary_key=True, nullable=False, autoincrement=False),
        sa.ForeignKeyConstraint(["entry_id"], ["audit_log.id"], name="fk_audit_mentions_entry"),
    )
    op.execute(_BACKFILL[op.get_bind().dialect.name])


def downgrade() -> None:
    op.drop_table("audit_mentions")
