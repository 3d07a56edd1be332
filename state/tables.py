"""The state database's tables, declared with SQLModel.

These classes are the schema the code reads and writes; the migrations in
`state/migrations/versions/` create the same tables with explicit `op.create_table` calls
(a test compares the two), because `create_all` cannot upgrade a database that has data.

Storage rules, so that nothing is lost between Python and either database:
- money is BigInteger minor units beside a currency column (SQLite's NUMERIC is a float);
- quantities, unit prices and confidences are TEXT decimal strings;
- timestamps are UTC; `UTCDateTime` gives back aware datetimes on SQLite too;
- canonical ids are TEXT (uuid4 hex) so that ids made by any worker never collide.
The conversion between canonical records and rows lives in `state.convert`, nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal
from sqlmodel import Field, SQLModel

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQLite only autoincrements a column declared exactly INTEGER PRIMARY KEY.
BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JsonText(sa.ColumnElement[str]):
    """The text at a path of a JSON column (`json_text(outbox.c.target, "remote_id")`), with the
    path written into the SQL rather than bound: a database uses an index on such an expression
    only for a query that spells it the same way, and SQLAlchemy's own `column["field"]` sends
    the path as a parameter. JSON null and a missing field read NULL."""

    inherit_cache = True
    type = sa.Text()
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement), ("path", InternalTraversal.dp_string_list)]

    def __init__(self, column: sa.ColumnElement[Any], path: Sequence[str]) -> None:
        if not path or not all(re.fullmatch(r"[a-z_]+", field) for field in path):
            raise ValueError(f"not a JSON path this SQL can spell: {path!r}")
        self.column = column
        self.path = list(path)


def json_text(column: sa.ColumnElement[Any], *path: str) -> JsonText:
    return JsonText(column, path)


@compiles(JsonText)
def _json_text_default(element: JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_extract({compiler.process(element.column, **kw)}, '$.{'.'.join(element.path)}')"


@compiles(JsonText, "postgresql")
def _json_text_postgresql(element: JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    if len(element.path) == 1:
        return f"({column} ->> '{element.path[0]}')"  # as `ix_outbox_actions_target` spells it
    return f"({column} #>> '{{{','.join(element.path)}}}')"


class JsonValues(sa.ColumnElement[Any]):
    """The values at several paths of a JSON column, as ONE JSON array read back as a list (each
    value with its JSON type; null where the path has nothing): the database parses each
    document once and hands over only those values, for a reader that needs a few fields of
    large documents (`view_fields`). SQLite: `json_extract` with every path (its array form);
    PostgreSQL: `jsonb_build_array` of each `#>` path."""

    inherit_cache = True
    type = JSONType
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement), ("paths", InternalTraversal.dp_plain_obj)]

    def __init__(self, column: sa.ColumnElement[Any], paths: Sequence[Sequence[str]]) -> None:
        if not paths or not all(path and all(re.fullmatch(r"[a-z_]+", f) for f in path) for path in paths):
            raise ValueError(f"not JSON paths this SQL can spell: {paths!r}")
        self.column = column
        self.paths = tuple(tuple(path) for path in paths)


def json_values(column: sa.ColumnElement[Any], paths: Sequence[Sequence[str]]) -> JsonValues:
    return JsonValues(column, paths)


@compiles(JsonValues)
def _json_values_default(element: JsonValues, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    # one path would give the bare value, not an array: the first is asked twice then
    paths = element.paths if len(element.paths) > 1 else element.paths * 2
    return f"json_extract({column}, {', '.join(repr('$.' + '.'.join(path)) for path in paths)})"


@compiles(JsonValues, "postgresql")
def _json_values_postgresql(element: JsonValues, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    values = [f"({column} #> '{{{','.join(path)}}}')" for path in element.paths]
    return f"jsonb_build_array({', '.join(values)})"


def ref_order(refs: sa.Table) -> list[sa.ColumnElement[Any]]:
    """ORDER BY system, object type, remote id, for the refs of a few records. The first term is
    an expression of the same order (`system || ''`), not the column: SQLite, which keeps no
    statistics, would rather walk `uq_refs_remote` over every ref of the company, for its order,
    than look the records' refs up in `ix_refs_entity` and sort those few (0.15 s against
    0.1 ms for one record of the 110,000-invoice book)."""
    return [refs.c.system.concat(""), refs.c.object_type, refs.c.remote_id]


def linked_to_any(refs: sa.Table, *, by_entity: bool) -> list[sa.ColumnElement[bool]]:
    """`entity_id IS NOT NULL`, unless the query names its entity ids (`by_entity`): with both,
    SQLite walks `ix_refs_entity` over every ref of the kind from the first id that is not
    NULL and tests each against the list, instead of looking each id up (1,000 invoices' refs
    of the large book: 0.15 s against 0.012 s)."""
    return [] if by_entity else [refs.c.entity_id.is_not(None)]


# Strings every JSON encoder writes as they are (no escape), in SQLite's text and in the text
# PostgreSQL gives of a JSONB value alike; and those that may stand for a JSON number.
_VERBATIM = re.compile(r"[A-Za-z0-9_.:-]+")
_NUMBER = re.compile(r"-?[0-9][0-9.eE+-]*")


def mentions(column: sa.ColumnElement[Any], value: str) -> sa.ColumnElement[bool]:
    """A sieve for the rows whose JSON `column` holds `value` somewhere (as a string, or as the
    number it may spell): a LIKE on the JSON's text for `"value"` (for what may be a number,
    `value` alone), one pass inside the database that returns only the rows whose text has it.
    It keeps every row that holds `value` and may keep some that hold it otherwise (as a key,
    inside a longer string, in another case on SQLite): the caller makes the exact test on
    what it returns. A value with characters an encoder escapes is looked for by its longest
    unescaped run."""
    runs = _VERBATIM.findall(value)
    if not runs:
        return sa.true()
    longest = max(runs, key=len)
    whole = longest == value and not _NUMBER.fullmatch(value)
    return sa.cast(column, sa.Text).contains(f'"{value}"' if whole else longest, autoescape=True)


def _col(type_: Any, *args: Any, nullable: bool = True, **kw: Any) -> Any:
    """A field backed by an explicit column, so the DDL is exactly what the migration says."""
    return Field(default=None, sa_column=sa.Column(type_, *args, nullable=nullable, **kw))


def _company(primary_key: bool = False) -> Any:
    """The company a row belongs to (0010). No default: every write names its company
    (`state.scope`), and the keys below carry it, so one query's mistake cannot put a row
    into another company's book or point one company's record at another's."""
    return _col(sa.Text, primary_key=primary_key, nullable=False)


class CustomerRow(SQLModel, table=True):
    __tablename__ = "customers"
    # 0023: the newest write of each clock column is one index seek (`changes.book_position`)
    __table_args__ = (sa.Index("ix_customers_updated_at", "company", "updated_at"),)

    company: str = _company(primary_key=True)
    id: str = _col(sa.Text, primary_key=True, nullable=False)
    name: str = _col(sa.Text, nullable=False)
    emails: list[str] = _col(JSONType, nullable=False)
    billing_contact: str | None = _col(sa.Text)
    payment_terms_days: int | None = _col(sa.Integer)
    credit_limit_minor: int | None = _col(sa.BigInteger)
    credit_limit_currency: str | None = _col(sa.String(3))
    paused: bool = _col(sa.Boolean, nullable=False)
    # 0020: a digest of what the providers' collections states were last read from (its views'
    # hashes, the systems' ranks), so an unchanged record is not read again (`dunning.states`)
    states_digest: str | None = _col(sa.Text)
    # 0025: a digest of what the write-back plan of the customer's receivables was last derived
    # from, so an unchanged customer is not planned again (`connector.writeback.unchanged`)
    plan_digest: str | None = _col(sa.Text)
    # 0025: the payments allocated to its receivables when it was last planned (JSON list)
    plan_payments: str | None = _col(sa.Text)
    # Which connection's view the row holds, and how much that connection is trusted for
    # this record's facts (the ledger most by default): a lower-ranked system never
    # overwrites a higher-ranked one's values (0003).
    source: str | None = _col(sa.Text)
    source_rank: int = _col(sa.Integer, nullable=False, server_default="0")
    created_at: datetime = _col(UTCDateTime, nullable=False)
    updated_at: datetime = _col(UTCDateTime, nullable=False)


class InvoiceRow(SQLModel, table=True):
    """An invoice's facts. No foreign key on customer_id: pages of different streams arrive
    in any order and the linker fills the customer in later."""

    __tablename__ = "invoices"
    __table_args__ = (
        sa.Index("ix_invoices_customer_id", "company", "customer_id"),
        sa.Index("ix_invoices_number", "company", "number"),
        sa.Index("ix_invoices_updated_at", "company", "updated_at"),  # 0023
    )

    company: str = _company(primary_key=True)
    id: str = _col(sa.Text, primary_key=True, nullable=False)
    number: str | None = _col(sa.Text)
    customer_id: str | None = _col(sa.Text)
    currency: str = _col(sa.String(3), nullable=False)
    issue_date: date | None = _col(sa.Date)
    due_date: date | None = _col(sa.Date)
    subtotal_minor: int = _col(sa.BigInteger, nullable=False)
    tax_minor: int = _col(sa.BigInteger, nullable=False)
    total_minor: int = _col(sa.BigInteger, nullable=False)
    amount_paid_minor: int = _col(sa.BigInteger, nullable=False)
    amount_credited_minor: int = _col(sa.BigInteger, nullable=False)
    status: str = _col(sa.Text, nullable=False)
    disputed: bool = _col(sa.Boolean, nullable=False)
    promise_to_pay: date | None = _col(sa.Date)
    payment_plan: dict[str, Any] | None = _col(JSONType)
    in_collections: bool = _col(sa.Boolean, nullable=False)
    # 0021: the invoice's lines, in order, beside it (they were rows of a table of their own):
    # [{"description", "quantity", "unit_price", "amount_minor", "tax_minor"}, ...], in the
    # invoice's currency, quantities and prices as decimal text (`state.convert.line_values`)
    lines: list[dict[str, Any]] | None = _col(JSONType)
    # 0020: as the customer's, with the total and due date a plan in words is laid over
    states_digest: str | None = _col(sa.Text)
    # Which connection's view the row holds, and how much that connection is trusted for
    # this record's facts (the ledger most by default): a lower-ranked system never
    # overwrites a higher-ranked one's values (0003).
    source: str | None = _col(sa.Text)
    source_rank: int = _col(sa.Integer, nullable=False, server_default="0")
    created_at: datetime = _col(UTCDateTime, nullable=False)
    updated_at: datetime = _col(UTCDateTime, nullable=False)


class PaymentRow(SQLModel, table=True):
    __tablename__ = "payments"
    __table_args__ = (
        sa.Index("ix_payments_customer_id", "company", "customer_id"),
        sa.Index("ix_payments_payout_id", "company", "payout_id"),
        sa.Index("ix_payments_updated_at", "company", "updated_at"),  # 0023
    )

    company: str = _company(primary_key=True)
    id: str = _col(sa.Text, primary_key=True, nullable=False)
    currency: str = _col(sa.String(3), nullable=False)
    amount_minor: int = _col(sa.BigInteger, nullable=False)
    received_at: datetime = _col(UTCDateTime, nullable=False)
    method: str | None = _col(sa.Text)
    customer_id: str | None = _col(sa.Text)
    payer: str | None = _col(sa.Text)
    remittance: str | None = _col(sa.Text)
    fee_minor: int | None = _col(sa.BigInteger)
    payout_id: str | None = _col(sa.Text)
    status: str = _col(sa.Text, nullable=False)
    amount_refunded_minor: int | None = _col(sa.BigInteger)
    # The payment's latest dispute (chargeback): status, amount contested, reason, when (0011).
    dispute_status: str | None = _col(sa.Text)
    amount_disputed_minor: int | None = _col(sa.BigInteger)
    dispute_reason: str | None = _col(sa.Text)
    disputed_at: datetime | None = _col(UTCDateTime)
    # What the ledger's records of the payment were last made from (0028).
    ledger_digest: str | None = _col(sa.Text)
    # Which connection's view the row holds, and how much that connection is trusted for
    # this record's facts (the ledger most by default): a lower-ranked system never
    # overwrites a higher-ranked one's values (0003).
    source: str | None = _col(sa.Text)
    source_rank: int = _col(sa.Integer, nullable=False, server_default="0")
    created_at: datetime = _col(UTCDateTime, nullable=False)
    updated_at: datetime = _col(UTCDateTime, nullable=False)


class AllocationRow(SQLModel, table=True):
    __tablename__ = "allocations"
    __table_args__ = (
        sa.Index("ix_allocations_payment_id", "company", "payment_id"),
        sa.Index("ix_allocations_invoice_id", "company", "invoice_id"),
        # A payment is allocated only to an invoice of its own company: both keys carry it.
        sa.ForeignKeyConstraint(
            ["company", "payment_id"], ["payments.company", "payments.id"], name="fk_allocations_payment"
        ),
        sa.ForeignKeyConstraint(
            ["company", "invoice_id"], ["invoices.company", "invoices.id"], name="fk_allocations_invoice"
        ),
    )

    company: str = _company(primary_key=True)
    id: str = _col(sa.Text, primary_key=True, nullable=False)
    payment_id: str = _col(sa.Text, nullable=False)
    invoice_id: str = _col(sa.Text, nullable=False)
    currency: str = _col(sa.String(3), nullable=False)
    amount_minor: int = _col(sa.BigInteger, nullable=False)
    rule: str = _col(sa.Text, nullable=False)
    confidence: str = _col(sa.Text, nullable=False)
    reason: str = _col(sa.Text, nullable=False)
    confirmed_by: str | None = _col(sa.Text)
    status: str = _col(sa.Text, nullable=False)  # applied / proposed / rejected
    created_at: datetime = _col(UTCDateTime, nullable=False)


class RefRow(SQLModel, table=True):
    """Where a canonical record lives in one system, with that system's view of it (`data`)."""

    __tablename__ = "refs"
    __table_args__ = (
        sa.UniqueConstraint("company", "system", "object_type", "remote_id", name="uq_refs_remote"),
        sa.Index("ix_refs_entity", "company", "entity_kind", "entity_id"),
        sa.Index("ix_refs_changed_at", "company", "changed_at"),  # 0023
        # 0024: whether a record has a view of a kind of system, from the index alone
        # (`records.receivables_only`)
        sa.Index(
            "ix_refs_entity_kind", "company", "entity_kind", "entity_id", json_text(sa.column("data"), "_sync", "kind")
        ),
        # 0022: the views that say they pay an invoice (`linking.ref_views(linked_to=)`); only
        # those: a query that names no link cannot use it
        sa.Index(
            "ix_refs_invoice_link",
            "company",
            "system",
            json_text(sa.column("data"), "_sync", "links", "invoice"),
            sqlite_where=json_text(sa.column("data"), "_sync", "links", "invoice").is_not(None),
            postgresql_where=json_text(sa.column("data"), "_sync", "links", "invoice").is_not(None),
        ),
    )

    id: int = _col(BigIntId, primary_key=True, nullable=False)
    company: str = _company()
    system: str = _col(sa.Text, nullable=False)
    object_type: str = _col(sa.Text, nullable=False)
    remote_id: str = _col(sa.Text, nullable=False)
    entity_kind: str = _col(sa.Text, nullable=False)
    entity_id: str | None = _col(sa.Text)
    remote_updated_at: datetime | None = _col(UTCDateTime)
    link_rule: str | None = _col(sa.Text)
    data: dict[str, Any] = _col(JSONType, nullable=False)
    # The content hash of `data` as the store encoded it (`records.view_hash`): a record that
    # arrives unchanged is known without reading its view back, and costs no write (0015).
    # NULL for views stored before 0015: they are written, and hashed, the next time they come.
    data_hash: str | None = _col(sa.Text)
    # The provider's raw payload as it arrived, before mapping: its JSON, zlib-compressed
    # (`state.raw`), so `connector remap` maps the book again without asking the provider (0016).
    # NULL for records stored before 0016 until they arrive again.
    raw: bytes | None = _col(sa.LargeBinary)
    seen_at: datetime = _col(UTCDateTime, nullable=False)
    # 0018: when its view was last written new or changed (`seen_at` moves with every sync)
    changed_at: datetime | None = _col(UTCDateTime)


class SyncCursorRow(SQLModel, table=True):
    __tablename__ = "sync_cursors"

    company: str = _company(primary_key=True)
    connection: str = _col(sa.Text, primary_key=True, nullable=False)
    stream: str = _col(sa.Text, primary_key=True, nullable=False)
    value: str | None = _col(sa.Text)
    updated_at: datetime = _col(UTCDateTime, nullable=False)


class OutboxActionRow(SQLModel, table=True):
    __tablename__ = "outbox_actions"
    __table_args__ = (
        sa.UniqueConstraint("company", "idempotency_key", name="uq_outbox_actions_idempotency_key"),
        sa.Index("ix_outbox_actions_state", "company", "state", "next_attempt_at"),
        sa.Index("ix_outbox_actions_subject", "company", "subject_type", "subject_id"),
        sa.Index("ix_outbox_actions_batch", "company", "batch_key"),
        sa.Index("ix_outbox_actions_updated_at", "company", "updated_at"),  # 0023
        # 0019: the actions aimed at one record (`connector explain`), by their target's remote id
        sa.Index("ix_outbox_actions_target", "company", json_text(sa.column("target"), "remote_id")),
    )

    id: int = _col(BigIntId, primary_key=True, nullable=False)
    company: str = _company()
    idempotency_key: str = _col(sa.Text, nullable=False)
    connection: str = _col(sa.Text, nullable=False)
    kind: str = _col(sa.Text, nullable=False)
    target: dict[str, Any] | None = _col(JSONType)
    payload: dict[str, Any] = _col(JSONType, nullable=False)
    state: str = _col(sa.Text, nullable=False)
    attempts: int = _col(sa.Integer, nullable=False)
    last_error: str | None = _col(sa.Text)
    result: dict[str, Any] | None = _col(JSONType)
    next_attempt_at: datetime | None = _col(UTCDateTime)
    created_at: datetime = _col(UTCDateTime, nullable=False)
    updated_at: datetime = _col(UTCDateTime, nullable=False)
    # 0005: the claim of the worker sending it, and what it is about, in words
    claimed_by: str | None = _col(sa.Text)
    claimed_at: datetime | None = _col(UTCDateTime)
    subject_type: str | None = _col(sa.Text)
    subject_id: str | None = _col(sa.Text)
    summary: str | None = _col(sa.Text)
    # 0014: the batch it was sent in (one request, one idempotency key), kept until its answer
    batch_key: str | None = _col(sa.Text)
    # 0017: it went out on its own with its own key: a retry goes on its own again, never in a batch
    sent_alone: bool = _col(sa.Boolean, nullable=False, server_default=sa.false())


class RunRow(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (sa.Index("ix_runs_company", "company", "started_at"),)

    id: str = _col(sa.Text, primary_key=True, nullable=False)
    company: str = _company()
    started_at: datetime = _col(UTCDateTime, nullable=False)
    finished_at: datetime | None = _col(UTCDateTime)
    status: str = _col(sa.Text, nullable=False)
    stats: dict[str, Any] | None = _col(JSONType)


class AuditLogRow(SQLModel, table=True):
    """Append-only: database triggers refuse UPDATE and DELETE (see migration 0001)."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_subject", "company", "subject_type", "subject_id"),)

    id: int = _col(BigIntId, primary_key=True, nullable=False)
    company: str = _company()
    at: datetime = _col(UTCDateTime, nullable=False)
    actor: str = _col(sa.Text, nullable=False)
    action: str = _col(sa.Text, nullable=False)
    subject_type: str = _col(sa.Text, nullable=False)
    subject_id: str | None = _col(sa.Text)
    inputs: dict[str, Any] | None = _col(JSONType)
    decision: str | None = _col(sa.Text)


class AuditMentionRow(SQLModel, table=True):
    """An id an audit entry's inputs name that is not its subject (0026): one row per id and
    entry, so the entries naming a record (a manual match names its invoices only in its
    inputs) are an index look-up, not a scan of the whole log's text."""

    __tablename__ = "audit_mentions"
    __table_args__ = (sa.ForeignKeyConstraint(["entry_id"], ["audit_log.id"], name="fk_audit_mentions_entry"),)

    company: str = _company(primary_key=True)
    mentioned: str = _col(sa.Text, primary_key=True, nullable=False)
    entry_id: int = _col(BigIntId, primary_key=True, nullable=False, autoincrement=False)


class LinkKeyRow(SQLModel, table=True):
    """A key linking gave a stored view (0027): a hash of what one of its rules compares (a
    number, an e-mail address, a charge named), or of the customer record an invoice depends
    on, so the views that may link to a changed one are an index look-up
    (`connector.linking.keys`). No foreign key: refs are never deleted, and a key of a ref
    linked elsewhere since only widens a neighbourhood."""

    __tablename__ = "link_keys"
    __table_args__ = {"sqlite_with_rowid": False}

    company: str = _company(primary_key=True)
    key: int = _col(sa.BigInteger, primary_key=True, nullable=False, autoincrement=False)
    ref_id: int = _col(BigIntId, primary_key=True, nullable=False, autoincrement=False)


class LinkKeySetRow(SQLModel, table=True):
    """The keys of one stored view, together (0027): what it shared when linking last read
    it (`link_keys` by ref), by how they are looked up (`connector.linking.keys.ViewKeys`).
    Each a packed array of signed 64-bit integers (`state.linking`)."""

    __tablename__ = "link_key_sets"
    __table_args__ = {"sqlite_with_rowid": False}

    company: str = _company(primary_key=True)
    ref_id: int = _col(BigIntId, primary_key=True, nullable=False, autoincrement=False)
    shared_keys: bytes = _col(sa.LargeBinary, nullable=False)
    toward_keys: bytes = _col(sa.LargeBinary, nullable=False)
    depends_keys: bytes = _col(sa.LargeBinary, nullable=False)
    # The version of the view the keys were made from (its `refs.changed_at` as linking read
    # it, 0029): a pass over what changed passes over a view keyed as it is now.
    view_changed_at: datetime | None = _col(UTCDateTime)


class OAuthTokenRow(SQLModel, table=True):
    """One connection's OAuth tokens; `version` makes a save a compare-and-swap (0002);
    `previous_refresh_token` is the one the current refresh token replaced (0009)."""

    __tablename__ = "oauth_tokens"

    connection: str = _col(sa.Text, primary_key=True, nullable=False)
    access_token: str | None = _col(sa.Text)
    refresh_token: str | None = _col(sa.Text)
    previous_refresh_token: str | None = _col(sa.Text)
    expires_at: datetime | None = _col(UTCDateTime)
    updated_at: datetime = _col(UTCDateTime, nullable=False)
    version: int = _col(sa.Integer, nullable=False)


class ProposalRow(SQLModel, table=True):
    """A payment waiting for finance, with its ranked candidates (0004). `id` is derived from
    the payment and its candidates, so the same open question keeps its id across runs."""

    __tablename__ = "proposals"
    __table_args__ = (
        sa.Index("ix_proposals_status", "company", "status"),
        sa.Index("ix_proposals_payment_id", "company", "payment_id"),
    )

    company: str = _company(primary_key=True)
    id: str = _col(sa.Text, primary_key=True, nullable=False)
    payment_id: str = _col(sa.Text, nullable=False)
    currency: str = _col(sa.String(3), nullable=False)
    amount_minor: int = _col(sa.BigInteger, nullable=False)
    candidates: list[dict[str, Any]] = _col(JSONType, nullable=False)
    # What finance should know when no candidate can do what the evidence says (0013).
    note: str | None = _col(sa.Text)
    status: str = _col(sa.Text, nullable=False)  # open / accepted / rejected
    decided_by: str | None = _col(sa.Text)
    decided_at: datetime | None = _col(UTCDateTime)
    created_at: datetime = _col(UTCDateTime, nullable=False)


class WorkUnitRow(SQLModel, table=True):
    """One piece of a schedule tick, claimed with a lease by one worker (0006)."""

    __tablename__ = "work_units"

    unit: str = _col(sa.Text, primary_key=True, nullable=False)
    kind: str = _col(sa.Text, nullable=False)  # pull / reconcile
    company: str = _company()
    connection: str | None = _col(sa.Text)
    stream: str | None = _col(sa.Text)
    owner: str | None = _col(sa.Text)
    lease_until: datetime | None = _col(UTCDateTime)
    due_tick: int = _col(sa.BigInteger, nullable=False, server_default="0")
    done_tick: int = _col(sa.BigInteger, nullable=False, server_default="-1")
    last_started_at: datetime | None = _col(UTCDateTime)
    last_success_at: datetime | None = _col(UTCDateTime)
    last_error: str | None = _col(sa.Text)
    failing_since: datetime | None = _col(UTCDateTime)
    runs: int = _col(sa.BigInteger, nullable=False, server_default="0")


class WebhookEventRow(SQLModel, table=True):
    """A provider's event, kept once by its id (0006)."""

    __tablename__ = "webhook_events"

    provider: str = _col(sa.Text, primary_key=True, nullable=False)
    event_id: str = _col(sa.Text, primary_key=True, nullable=False)
    connection: str = _col(sa.Text, nullable=False)
    company: str = _company()
    stream: str | None = _col(sa.Text)
    object_id: str | None = _col(sa.Text)
    received_at: datetime = _col(UTCDateTime, nullable=False)
    payload: dict[str, Any] = _col(JSONType, nullable=False)


# One provider account's shared rate budget (0012): the windows and requests in flight that
# every worker counts its requests in (`state.budgets`), and until when a 429 paused it. Not a
# table of any company's book (an account's budget is shared by whoever calls the account), so
# it is a Core table on metadata of its own, outside STATE_TABLES and the book's schema checks.
BUDGET_METADATA = sa.MetaData()
RATE_BUDGETS = sa.Table(
    "rate_budgets",
    BUDGET_METADATA,
    sa.Column("account", sa.Text, primary_key=True, nullable=False),
    # window key ("default/60") -> {"log": [epoch seconds, ...]} or {"slots": [[start, count], ...]}
    sa.Column("windows", JSONType, nullable=False),
    # lease id -> epoch seconds at which the slot in flight frees itself
    sa.Column("in_flight", JSONType, nullable=False),
    sa.Column("paused_until", UTCDateTime),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)


STATE_TABLES: tuple[str, ...] = (
    "customers",
    "invoices",
    "payments",
    "allocations",
    "refs",
    "sync_cursors",
    "outbox_actions",
    "runs",
    "audit_log",
    "audit_mentions",
    "link_keys",
    "link_key_sets",
    "oauth_tokens",
    "proposals",
    "work_units",
    "webhook_events",
)


def table(name: str) -> sa.Table:
    """The Core table of one of ours, for set-based statements."""
    return SQLModel.metadata.tables[name]
