"""The first schema: canonical records, refs, cursors, outbox, runs and the audit log.

Written out by hand (not `create_all`) and frozen: later changes are new revisions, so a
database made by this release upgrades in place. Types are spelled here, not imported from
`state.tables`, because that module describes the newest schema, not this one.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
CUR = sa.String(3)


def _ts(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, TS, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("emails", JSON, nullable=False),
        sa.Column("billing_contact", sa.Text),
        sa.Column("payment_terms_days", sa.Integer),
        sa.Column("credit_limit_minor", sa.BigInteger),
        sa.Column("credit_limit_currency", CUR),
        sa.Column("paused", sa.Boolean, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_table(
        "invoices",
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
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_index("ix_invoices_customer_id", "invoices", ["customer_id"])
    op.create_index("ix_invoices_number", "invoices", ["number"])
    op.create_table(
        "invoice_lines",
        sa.Column(
            "invoice_id",
            sa.Text,
            sa.ForeignKey("invoices.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("line_no", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("quantity", sa.Text, nullable=False),
        sa.Column("unit_price", sa.Text),
        sa.Column("currency", CUR, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("tax_minor", sa.BigInteger),
    )
    op.create_table(
        "payments",
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
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_index("ix_payments_customer_id", "payments", ["customer_id"])
    op.create_index("ix_payments_payout_id", "payments", ["payout_id"])
    op.create_table(
        "allocations",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("payment_id", sa.Text, sa.ForeignKey("payments.id"), nullable=False),
        sa.Column("invoice_id", sa.Text, sa.ForeignKey("invoices.id"), nullable=False),
        sa.Column("currency", CUR, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("confidence", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("confirmed_by", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_allocations_payment_id", "allocations", ["payment_id"])
    op.create_index("ix_allocations_invoice_id", "allocations", ["invoice_id"])
    op.create_table(
        "refs",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("system", sa.Text, nullable=False),
        sa.Column("object_type", sa.Text, nullable=False),
        sa.Column("remote_id", sa.Text, nullable=False),
        sa.Column("entity_kind", sa.Text, nullable=False),
        sa.Column("entity_id", sa.Text),
        _ts("remote_updated_at", nullable=True),
        sa.Column("link_rule", sa.Text),
        sa.Column("data", JSON, nullable=False),
        _ts("seen_at"),
        sa.UniqueConstraint("system", "object_type", "remote_id", name="uq_refs_remote"),
    )
    op.create_index("ix_refs_entity", "refs", ["entity_kind", "entity_id"])
    op.create_table(
        "sync_cursors",
        sa.Column("connection", sa.Text, primary_key=True),
        sa.Column("stream", sa.Text, primary_key=True),
        sa.Column("value", sa.Text),
        _ts("updated_at"),
    )
    op.create_table(
        "outbox_actions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
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
        sa.UniqueConstraint("idempotency_key", name="uq_outbox_actions_idempotency_key"),
    )
    op.create_index("ix_outbox_actions_state", "outbox_actions", ["state", "next_attempt_at"])
    op.create_table(
        "runs",
        sa.Column("id", sa.Text, primary_key=True),
        _ts("started_at"),
        _ts("finished_at", nullable=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("stats", JSON),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        _ts("at"),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("subject_type", sa.Text, nullable=False),
        sa.Column("subject_id", sa.Text),
        sa.Column("inputs", JSON),
        sa.Column("decision", sa.Text),
    )
    op.create_index("ix_audit_log_subject", "audit_log", ["subject_type", "subject_id"])
    _make_audit_log_append_only()


def _make_audit_log_append_only() -> None:
    """Refuse UPDATE and DELETE on audit_log in the database itself, whoever connects."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change()"
        )
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{operation.lower()} BEFORE {operation} "
                f"ON audit_log BEGIN SELECT RAISE(ABORT, "
                f"'audit_log is append-only ({operation} refused)'); END"
            )


def downgrade() -> None:
    raise NotImplementedError("the initial schema is not downgraded: drop the database instead")
