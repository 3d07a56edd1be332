"""Companies: every row of a book belongs to a company, and the keys carry it.

One database may keep the books of several companies (legal entities, or client companies).
Every book table gets a NOT NULL `company` column with no default (every write names its
company), and the keys carry it: the primary keys of the canonical records, proposals and
cursors, the unique keys of refs and outbox actions, and the foreign keys from invoice lines
and allocations, so that a payment can only be allocated to an invoice of its own company
and one company's records can never point at another's. The indexes lead with `company`,
since every query of a book filters on it. `oauth_tokens` belongs to a connection, not to a
book, and is left alone.

Every existing row goes to the company "default" (`state.scope.DEFAULT_COMPANY`, written out
here: a migration does not import the application), and every row is kept. A database holding
invoice lines or allocations whose invoice or payment is missing (written with foreign keys
off) is refused before anything changes, naming the rows: the new keys could not hold them.

PostgreSQL changes the tables in place: ADD COLUMN with a constant default (no rewrite of
the table) then DROP DEFAULT; the foreign keys, primary keys (keeping their `<table>_pkey`
names), unique constraints and indexes are dropped and made again with `company`. Sequences,
the audit_log triggers and the rows stay where they are.

SQLite cannot change a primary key or drop an unnamed foreign key in place, nor add a
NOT NULL column without a default to a table, and `PRAGMA foreign_keys` cannot be switched
off inside the migration's transaction (where dropping a parent table cascades to its
children). So every book table is rebuilt: with foreign keys checked at the commit, the
named indexes are dropped, each table is renamed to `<table>__0009` (SQLite makes the
children's foreign keys follow their renamed parent), the new tables are created as
`state.tables` declares them, the rows are copied with company "default", parents first,
the old tables are dropped children first (so that no cascade reaches a row), `PRAGMA
foreign_key_check` confirms every reference, and the audit_log triggers (dropped with the
old table) are made again. The ids of refs, outbox
actions and audit log entries are copied as they are, so new rows go on numbering after them.

Downgrade undoes all this the same way (SQLite rebuilds the tables as 0009 had them), but
only while every row is the company "default": with a second company's rows, keys without a
company would merge two books or collide, so it is refused and nothing changes.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from alembic.util.exc import CommandError
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

DEFAULT_COMPANY = "default"  # state.scope.DEFAULT_COMPANY when this revision was written

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
CUR = sa.String(3)

# Every table that belongs to a company's book, parents before children (the copy order on
# SQLite; the old tables are dropped in the reverse order).
BOOK_TABLES = (
    "customers",
    "invoices",
    "invoice_lines",
    "payments",
    "allocations",
    "refs",
    "sync_cursors",
    "outbox_actions",
    "runs",
    "audit_log",
    "proposals",
    "work_units",
    "webhook_events",
)

# name -> (table, columns): the indexes of 0009, and of this revision
OLD_INDEXES = {
    "ix_invoices_customer_id": ("invoices", ["customer_id"]),
    "ix_invoices_number": ("invoices", ["number"]),
    "ix_payments_customer_id": ("payments", ["customer_id"]),
    "ix_payments_payout_id": ("payments", ["payout_id"]),
    "ix_allocations_payment_id": ("allocations", ["payment_id"]),
    "ix_allocations_invoice_id": ("allocations", ["invoice_id"]),
    "ix_refs_entity": ("refs", ["entity_kind", "entity_id"]),
    "ix_outbox_actions_state": ("outbox_actions", ["state", "next_attempt_at"]),
    "ix_outbox_actions_subject": ("outbox_actions", ["subject_type", "subject_id"]),
    "ix_audit_log_subject": ("audit_log", ["subject_type", "subject_id"]),
    "ix_proposals_status": ("proposals", ["status"]),
    "ix_proposals_payment_id": ("proposals", ["payment_id"]),
}
NEW_INDEXES = {
    **{name: (table, ["company", *columns]) for name, (table, columns) in OLD_INDEXES.items()},
    "ix_runs_company": ("runs", ["company", "started_at"]),
}

# The primary keys that take `company` first (PostgreSQL names them `<table>_pkey`)
OLD_PRIMARY_KEYS = {
    "customers": ["id"],
    "invoices": ["id"],
    "invoice_lines": ["invoice_id", "line_no"],
    "payments": ["id"],
    "allocations": ["id"],
    "sync_cursors": ["connection", "stream"],
    "proposals": ["id"],
}
# name -> (table, columns)
OLD_UNIQUE_KEYS = {
    "uq_refs_remote": ("refs", ["system", "object_type", "remote_id"]),
    "uq_outbox_actions_idempotency_key": ("outbox_actions", ["idempotency_key"]),
}

ForeignKey = tuple[str, list[str], str, list[str], str | None]
# name -> (table, columns, referred table, referred columns, ON DELETE). 0001 declared these
# without names: the names are PostgreSQL's (SQLite keeps them unnamed).
OLD_FOREIGN_KEYS: dict[str, ForeignKey] = {
    "invoice_lines_invoice_id_fkey": ("invoice_lines", ["invoice_id"], "invoices", ["id"], "CASCADE"),
    "allocations_payment_id_fkey": ("allocations", ["payment_id"], "payments", ["id"], None),
    "allocations_invoice_id_fkey": ("allocations", ["invoice_id"], "invoices", ["id"], None),
}
NEW_FOREIGN_KEYS: dict[str, ForeignKey] = {
    "fk_invoice_lines_invoice": ("invoice_lines", ["company", "invoice_id"], "invoices", ["company", "id"], "CASCADE"),
    "fk_allocations_payment": ("allocations", ["company", "payment_id"], "payments", ["company", "id"], None),
    "fk_allocations_invoice": ("allocations", ["company", "invoice_id"], "invoices", ["company", "id"], None),
}


def _with_company(columns: list[str]) -> list[str]:
    return ["company", *columns]


def upgrade() -> None:
    _refuse_broken_references()
    if op.get_bind().dialect.name == "postgresql":
        _add_company_in_place()
    else:
        _rebuild_sqlite_tables(company=True)


def downgrade() -> None:
    _refuse_other_companies()
    if op.get_bind().dialect.name == "postgresql":
        _drop_company_in_place()
    else:
        _rebuild_sqlite_tables(company=False)


def _refuse_broken_references() -> None:
    """Refuse rows that 0009's foreign keys forbid but that a database written with its foreign
    keys off (SQLite's default outside the connector) may hold: the new keys refuse them too,
    and SQLite's deferred check would not see rows that were wrong before it started."""
    connection = op.get_bind()
    for _name, (child, (column,), parent, (parent_column,), _ondelete) in OLD_FOREIGN_KEYS.items():
        rows, parents = sa.table(child, sa.column(column)), sa.table(parent, sa.column(parent_column))
        orphans = sa.select(rows.c[column]).where(~sa.exists().where(parents.c[parent_column] == rows.c[column]))
        missing = connection.execute(orphans.distinct().order_by(rows.c[column]).limit(3)).scalars().all()
        if missing:
            raise CommandError(
                f"{child} has rows whose {column} is not in {parent} ({', '.join(map(repr, missing))}): "
                f"delete or repair them, then upgrade again"
            )


def _refuse_other_companies() -> None:
    connection = op.get_bind()
    for name in BOOK_TABLES:
        book = sa.table(name, sa.column("company", sa.Text))
        other = connection.execute(
            sa.select(book.c.company).where(book.c.company != DEFAULT_COMPANY).limit(1)
        ).scalar_one_or_none()
        if other is not None:
            raise CommandError(
                f"cannot downgrade below 0010: {name} holds rows of company {other!r}, and the "
                f"schema before companies keeps only one book (restore a backup instead)"
            )


# PostgreSQL ---------------------------------------------------------------------------------


def _add_company_in_place() -> None:
    for table in BOOK_TABLES:
        # A constant default fills the existing rows without rewriting the table (PostgreSQL
        # 11+); dropped at once, so that every later write has to name its company.
        op.add_column(table, sa.Column("company", sa.Text, nullable=False, server_default=DEFAULT_COMPANY))
        op.alter_column(table, "company", server_default=None)
    _replace_keys(company=True)


def _drop_company_in_place() -> None:
    _replace_keys(company=False)
    for table in BOOK_TABLES:
        op.drop_column(table, "company")


def _replace_keys(company: bool) -> None:
    """Swap the keys and indexes of one generation for those of the other (PostgreSQL)."""
    old_fks, new_fks = (OLD_FOREIGN_KEYS, NEW_FOREIGN_KEYS) if company else (NEW_FOREIGN_KEYS, OLD_FOREIGN_KEYS)
    old_indexes, new_indexes = (OLD_INDEXES, NEW_INDEXES) if company else (NEW_INDEXES, OLD_INDEXES)
    for name, (table, *_rest) in old_fks.items():  # they hang on the primary keys replaced below
        op.drop_constraint(name, table, type_="foreignkey")
    for table, columns in OLD_PRIMARY_KEYS.items():
        op.drop_constraint(f"{table}_pkey", table, type_="primary")
        op.create_primary_key(f"{table}_pkey", table, _with_company(columns) if company else columns)
    for name, (table, columns) in OLD_UNIQUE_KEYS.items():
        op.drop_constraint(name, table, type_="unique")
        op.create_unique_constraint(name, table, _with_company(columns) if company else columns)
    for name, (table, _columns) in old_indexes.items():
        op.drop_index(name, table_name=table)
    for name, (table, columns) in new_indexes.items():
        op.create_index(name, table, columns)
    for name, (table, columns, referred, referred_columns, ondelete) in new_fks.items():
        op.create_foreign_key(name, table, referred, columns, referred_columns, ondelete=ondelete)


# SQLite -------------------------------------------------------------------------------------


def _rebuild_sqlite_tables(company: bool) -> None:
    """Rebuild every book table with (upgrade) or without (downgrade) its company."""
    suffix = "__0009" if company else "__0010"
    # Foreign keys are checked at the commit rather than statement by statement while parents
    # and children are in two generations (the copy and the drops below are ordered so that
    # none is broken even meanwhile).
    op.execute("PRAGMA defer_foreign_keys = ON")
    for name, (table, _columns) in (OLD_INDEXES if company else NEW_INDEXES).items():
        op.drop_index(name, table_name=table)  # index names are global: the new tables reuse them
    for table in BOOK_TABLES:
        op.rename_table(table, table + suffix)
    new_tables = _create_tables(company)
    for name, (table, columns) in (NEW_INDEXES if company else OLD_INDEXES).items():
        op.create_index(name, table, columns)
    connection = op.get_bind()
    for new in new_tables:  # parents first: each copied row finds its parent already there
        columns = [column.name for column in new.columns if column.name != "company"]
        old = sa.table(new.name + suffix, *(sa.column(name) for name in columns))
        values: list[sa.ColumnElement[object]] = [old.c[name] for name in columns]
        if company:
            values.append(sa.literal(DEFAULT_COMPANY, sa.Text))
        connection.execute(
            sa.insert(new).from_select([*columns, "company"] if company else columns, sa.select(*values))
        )
    for table in reversed(BOOK_TABLES):  # children first: dropping a parent cascades to them
        op.drop_table(table + suffix)
    # SQLite counts deferred violations rather than looking: check the rows themselves
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        table, rowid, parent, _fk = broken[0]
        raise CommandError(f"{table} row {rowid} refers to a missing {parent} row ({len(broken)} such rows)")
    _make_audit_log_append_only()


def _ts(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, TS, nullable=nullable)


def _create_tables(company: bool) -> list[sa.Table]:
    """The book tables of this revision (`company`) or of 0009, in BOOK_TABLES's order; the
    columns in `state.tables`'s order (SQLite only)."""

    def key() -> list[sa.Column[str]]:  # the company as the first part of the primary key
        return [sa.Column("company", sa.Text, primary_key=True, nullable=False)] if company else []

    def plain() -> list[sa.Column[str]]:  # the company as a plain column
        return [sa.Column("company", sa.Text, nullable=False)] if company else []

    fks, uqs = _foreign_keys(company), _unique_keys(company)
    tables = [
        op.create_table(
            "customers",
            *key(),
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("name", sa.Text, nullable=False),
            sa.Column("emails", JSON, nullable=False),
            sa.Column("billing_contact", sa.Text),
            sa.Column("payment_terms_days", sa.Integer),
            sa.Column("credit_limit_minor", sa.BigInteger),
            sa.Column("credit_limit_currency", CUR),
            sa.Column("paused", sa.Boolean, nullable=False),
            sa.Column("source", sa.Text),
            sa.Column("source_rank", sa.Integer, nullable=False, server_default="0"),
            _ts("created_at"),
            _ts("updated_at"),
        ),
        op.create_table(
            "invoices",
            *key(),
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("number", sa.Text),
            sa.Column("customer_id", sa.Text),
            sa.Column("currency", CUR, nullable=False),
            sa.Column("issue_date", sa.Date),
            sa.Column("due_date", sa.Date),
            sa.Column("subtotal_minor", sa.BigInteger, nullable=False),
            sa.Column("tax_minor", sa.BigInteger, nullable=False),
            sa.Column("total_minor", sa.BigInteger, nullable=False),
            sa.Column("amount_paid_minor", sa.BigInteger, nullable=False),
            sa.Column("amount_credited_minor", sa.BigInteger, nullable=False),
            sa.Column("status", sa.Text, nullable=False),
            sa.Column("disputed", sa.Boolean, nullable=False),
            sa.Column("promise_to_pay", sa.Date),
            sa.Column("payment_plan", JSON),
            sa.Column("in_collections", sa.Boolean, nullable=False),
            sa.Column("source", sa.Text),
            sa.Column("source_rank", sa.Integer, nullable=False, server_default="0"),
            _ts("created_at"),
            _ts("updated_at"),
        ),
        op.create_table(
            "invoice_lines",
            *key(),
            sa.Column("invoice_id", sa.Text, primary_key=True),
            sa.Column("line_no", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("description", sa.Text, nullable=False),
            sa.Column("quantity", sa.Text, nullable=False),
            sa.Column("unit_price", sa.Text),
            sa.Column("currency", CUR, nullable=False),
            sa.Column("amount_minor", sa.BigInteger, nullable=False),
            sa.Column("tax_minor", sa.BigInteger),
            *fks["invoice_lines"],
        ),
        op.create_table(
            "payments",
            *key(),
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("currency", CUR, nullable=False),
            sa.Column("amount_minor", sa.BigInteger, nullable=False),
            _ts("received_at"),
            sa.Column("method", sa.Text),
            sa.Column("customer_id", sa.Text),
            sa.Column("payer", sa.Text),
            sa.Column("remittance", sa.Text),
            sa.Column("fee_minor", sa.BigInteger),
            sa.Column("payout_id", sa.Text),
            sa.Column("status", sa.Text, nullable=False),
            sa.Column("amount_refunded_minor", sa.BigInteger),
            sa.Column("source", sa.Text),
            sa.Column("source_rank", sa.Integer, nullable=False, server_default="0"),
            _ts("created_at"),
            _ts("updated_at"),
        ),
        op.create_table(
            "allocations",
            *key(),
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("payment_id", sa.Text, nullable=False),
            sa.Column("invoice_id", sa.Text, nullable=False),
            sa.Column("currency", CUR, nullable=False),
            sa.Column("amount_minor", sa.BigInteger, nullable=False),
            sa.Column("rule", sa.Text, nullable=False),
            sa.Column("confidence", sa.Text, nullable=False),
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("confirmed_by", sa.Text),
            sa.Column("status", sa.Text, nullable=False),
            _ts("created_at"),
            *fks["allocations"],
        ),
        op.create_table(
            "refs",
            sa.Column("id", ID, primary_key=True, autoincrement=True),
            *plain(),
            sa.Column("system", sa.Text, nullable=False),
            sa.Column("object_type", sa.Text, nullable=False),
            sa.Column("remote_id", sa.Text, nullable=False),
            sa.Column("entity_kind", sa.Text, nullable=False),
            sa.Column("entity_id", sa.Text),
            _ts("remote_updated_at", nullable=True),
            sa.Column("link_rule", sa.Text),
            sa.Column("data", JSON, nullable=False),
            _ts("seen_at"),
            *uqs["refs"],
        ),
        op.create_table(
            "sync_cursors",
            *key(),
            sa.Column("connection", sa.Text, primary_key=True),
            sa.Column("stream", sa.Text, primary_key=True),
            sa.Column("value", sa.Text),
            _ts("updated_at"),
        ),
        op.create_table(
            "outbox_actions",
            sa.Column("id", ID, primary_key=True, autoincrement=True),
            *plain(),
            sa.Column("idempotency_key", sa.Text, nullable=False),
            sa.Column("connection", sa.Text, nullable=False),
            sa.Column("kind", sa.Text, nullable=False),
            sa.Column("target", JSON),
            sa.Column("payload", JSON, nullable=False),
            sa.Column("state", sa.Text, nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("last_error", sa.Text),
            sa.Column("result", JSON),
            _ts("next_attempt_at", nullable=True),
            _ts("created_at"),
            _ts("updated_at"),
            sa.Column("claimed_by", sa.Text),
            _ts("claimed_at", nullable=True),
            sa.Column("subject_type", sa.Text),
            sa.Column("subject_id", sa.Text),
            sa.Column("summary", sa.Text),
            *uqs["outbox_actions"],
        ),
        op.create_table(
            "runs",
            sa.Column("id", sa.Text, primary_key=True),
            *plain(),
            _ts("started_at"),
            _ts("finished_at", nullable=True),
            sa.Column("status", sa.Text, nullable=False),
            sa.Column("stats", JSON),
        ),
        op.create_table(
            "audit_log",
            sa.Column("id", ID, primary_key=True, autoincrement=True),
            *plain(),
            _ts("at"),
            sa.Column("actor", sa.Text, nullable=False),
            sa.Column("action", sa.Text, nullable=False),
            sa.Column("subject_type", sa.Text, nullable=False),
            sa.Column("subject_id", sa.Text),
            sa.Column("inputs", JSON),
            sa.Column("decision", sa.Text),
        ),
        op.create_table(
            "proposals",
            *key(),
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("payment_id", sa.Text, nullable=False),
            sa.Column("currency", CUR, nullable=False),
            sa.Column("amount_minor", sa.BigInteger, nullable=False),
            sa.Column("candidates", JSON, nullable=False),
            sa.Column("status", sa.Text, nullable=False),
            sa.Column("decided_by", sa.Text),
            _ts("decided_at", nullable=True),
            _ts("created_at"),
        ),
        op.create_table(
            "work_units",
            sa.Column("unit", sa.Text, primary_key=True),
            sa.Column("kind", sa.Text, nullable=False),
            *plain(),
            sa.Column("connection", sa.Text),
            sa.Column("stream", sa.Text),
            sa.Column("owner", sa.Text),
            _ts("lease_until", nullable=True),
            sa.Column("due_tick", sa.BigInteger, nullable=False, server_default="0"),
            sa.Column("done_tick", sa.BigInteger, nullable=False, server_default="-1"),
            _ts("last_started_at", nullable=True),
            _ts("last_success_at", nullable=True),
            sa.Column("last_error", sa.Text),
            _ts("failing_since", nullable=True),
            sa.Column("runs", sa.BigInteger, nullable=False, server_default="0"),
        ),
        op.create_table(
            "webhook_events",
            sa.Column("provider", sa.Text, primary_key=True),
            sa.Column("event_id", sa.Text, primary_key=True),
            sa.Column("connection", sa.Text, nullable=False),
            *plain(),
            sa.Column("stream", sa.Text),
            sa.Column("object_id", sa.Text),
            _ts("received_at"),
            sa.Column("payload", JSON, nullable=False),
        ),
    ]
    assert [t.name for t in tables] == list(BOOK_TABLES)
    return tables


def _foreign_keys(company: bool) -> dict[str, list[sa.ForeignKeyConstraint]]:
    """table -> its foreign keys in one generation (0001's unnamed on SQLite, as 0001 made them)."""
    found: dict[str, list[sa.ForeignKeyConstraint]] = {}
    for name, (table, columns, referred, referred_columns, ondelete) in (
        NEW_FOREIGN_KEYS if company else OLD_FOREIGN_KEYS
    ).items():
        found.setdefault(table, []).append(
            sa.ForeignKeyConstraint(
                columns,
                [f"{referred}.{column}" for column in referred_columns],
                name=name if company else None,
                ondelete=ondelete,
            )
        )
    return found


def _unique_keys(company: bool) -> dict[str, list[sa.UniqueConstraint]]:
    return {
        table: [sa.UniqueConstraint(*(_with_company(columns) if company else columns), name=name)]
        for name, (table, columns) in OLD_UNIQUE_KEYS.items()
    }


def _make_audit_log_append_only() -> None:
    """0001's SQLite triggers, dropped with the old audit_log: UPDATE and DELETE refused."""
    for operation in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER audit_log_no_{operation.lower()} BEFORE {operation} "
            f"ON audit_log BEGIN SELECT RAISE(ABORT, "
            f"'audit_log is append-only ({operation} refused)'); END"
        )
