"""Invoice lines are kept beside their invoice, in a JSON column `invoices.lines`, instead of as
rows of a table of their own: a page of 1,000 invoices wrote 2,000 more rows (and deleted the
old ones first), the store's largest cost after the refs (issue #18, item 3), and every read of
an invoice with its lines took a second query.

The lines move in SQL, in order: [{"description", "quantity", "unit_price", "amount_minor",
"tax_minor"}, ...] (the currency is the invoice's; quantities and prices keep their decimal
text); an invoice without lines gets []. Then `invoice_lines` is dropped. The downgrade makes
the table again, as 0010 left it, from the column.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

_FIELDS = ("description", "quantity", "unit_price", "amount_minor", "tax_minor")

_TO_COLUMN = {
    "postgresql": f"""
        UPDATE invoices AS i SET lines = l.lines
        FROM (
            SELECT company, invoice_id,
                   jsonb_agg(jsonb_build_object({", ".join(f"'{f}', {f}" for f in _FIELDS)}) ORDER BY line_no) AS lines
            FROM invoice_lines GROUP BY company, invoice_id
        ) AS l
        WHERE i.company = l.company AND i.id = l.invoice_id
    """,
    # SQLite before 3.44 has no ORDER BY inside an aggregate: it aggregates the rows of an
    # ordered subquery in their order
    "sqlite": f"""
        UPDATE invoices SET lines = (
            SELECT json_group_array(json_object({", ".join(f"'{f}', {f}" for f in _FIELDS)}))
            FROM (
                SELECT * FROM invoice_lines AS l
                WHERE l.company = invoices.company AND l.invoice_id = invoices.id
                ORDER BY l.line_no
            )
        )
        WHERE EXISTS (
            SELECT 1 FROM invoice_lines AS l WHERE l.company = invoices.company AND l.invoice_id = invoices.id
        )
    """,
}

_TO_TABLE = {
    "postgresql": """
        INSERT INTO invoice_lines
            (company, invoice_id, line_no, description, quantity, unit_price, currency, amount_minor, tax_minor)
        SELECT i.company, i.id, t.n, t.line ->> 'description', t.line ->> 'quantity', t.line ->> 'unit_price',
               i.currency, (t.line ->> 'amount_minor')::bigint, (t.line ->> 'tax_minor')::bigint
        FROM invoices AS i, jsonb_array_elements(i.lines) WITH ORDINALITY AS t(line, n)
    """,
    "sqlite": """
        INSERT INTO invoice_lines
            (company, invoice_id, line_no, description, quantity, unit_price, currency, amount_minor, tax_minor)
        SELECT i.company, i.id, j.key + 1, json_extract(j.value, '$.description'),
               json_extract(j.value, '$.quantity'), json_extract(j.value, '$.unit_price'), i.currency,
               json_extract(j.value, '$.amount_minor'), json_extract(j.value, '$.tax_minor')
        FROM invoices AS i, json_each(i.lines) AS j
    """,
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("invoices", sa.Column("lines", _JSON, nullable=True))
    op.execute(_TO_COLUMN[dialect])
    op.execute("UPDATE invoices SET lines = '[]' WHERE lines IS NULL")
    op.drop_table("invoice_lines")


def downgrade() -> None:
    op.create_table(
        "invoice_lines",
        sa.Column("company", sa.Text, primary_key=True, nullable=False),
        sa.Column("invoice_id", sa.Text, primary_key=True, nullable=False),
        sa.Column("line_no", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("quantity", sa.Text, nullable=False),
        sa.Column("unit_price", sa.Text),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("tax_minor", sa.BigInteger),
        sa.ForeignKeyConstraint(
            ["company", "invoice_id"],
            ["invoices.company", "invoices.id"],
            name="fk_invoice_lines_invoice",
            ondelete="CASCADE",
        ),
    )
    op.execute(_TO_TABLE[op.get_bind().dialect.name])
    op.drop_column("invoices", "lines")
