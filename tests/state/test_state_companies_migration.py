"""Migration 0010: a database of one book becomes the company "default"'s book, every row and
every amount kept, with keys that carry the company; and the schema it ends with is the one
`state.tables` declares, the same as a fresh database's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.util.exc import CommandError
from sqlalchemy.dialects import postgresql
from sqlmodel import SQLModel

from connector.errors import SchemaTooNewError
from connector.state import current_revision, head_revision, open_store, upgrade
from connector.state.migrate import alembic_config
from connector.state.reconciliation import load_allocations
from connector.state.tables import STATE_TABLES
from support.databases import pg_engine_in_temporary_schema, postgres_url_or_fail, sqlite_engine_in

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# Tables revisions after 0010 add (0026: the ids audit entries name; 0027: linking's keys; none in this book's)
LATER_TABLES = ("audit_mentions", "link_keys", "link_key_sets")
BOOK_TABLES = tuple(name for name in STATE_TABLES if name not in ("oauth_tokens", *LATER_TABLES))
# The tables of 0009, parents first: today's, and the invoice lines that 0021 moved into their invoice
TABLES_0009 = tuple(
    t
    for name in STATE_TABLES
    if name not in LATER_TABLES
    for t in ((name, "invoice_lines") if name == "invoices" else (name,))
)
LINE_FIELDS = ("description", "quantity", "unit_price", "amount_minor", "tax_minor")
T0 = datetime(2026, 10, 1, 9, 30, tzinfo=UTC)
T1 = datetime(2026, 10, 2, 17, 5, 12, 345678, tzinfo=UTC)

# A small but complete book as a 0009 database holds it (no company anywhere). The ids of
# refs, outbox actions and audit log entries are the database's own (a sequence on PostgreSQL).
BOOK_0009: dict[str, list[dict[str, Any]]] = {
    "customers": [
        {
            "id": "c1",
            "name": "Acme",
            "emails": ["ap@acme.test", "cfo@acme.test"],
            "billing_contact": "Ann",
            "payment_terms_days": 30,
            "credit_limit_minor": 500000,
            "credit_limit_currency": "USD",
            "paused": False,
            "source": "ledger",
            "source_rank": 100,
            "created_at": T0,
            "updated_at": T1,
        },
        {
            "id": "c2",
            "name": "Gulf Trading",
            "emails": [],
            "billing_contact": None,
            "payment_terms_days": None,
            "credit_limit_minor": None,
            "credit_limit_currency": None,
            "paused": True,
            "source": None,
            "source_rank": 0,
            "created_at": T0,
            "updated_at": T0,
        },
    ],
    "invoices": [
        {
            "id": "inv-1",
            "number": "INV-0042",
            "customer_id": "c2",
            "currency": "KWD",
            "issue_date": date(2026, 9, 1),
            "due_date": date(2026, 10, 1),
            "subtotal_minor": 10125,
            "tax_minor": 500,
            "total_minor": 10625,
            "amount_paid_minor": 0,
            "amount_credited_minor": 0,
            "status": "open",
            "disputed": False,
            "promise_to_pay": date(2026, 10, 20),
            "payment_plan": None,
            "in_collections": False,
            "source": "ledger",
            "source_rank": 100,
            "created_at": T0,
            "updated_at": T1,
        },
        {
            "id": "inv-2",
            "number": "INV-0043",
            "customer_id": "c1",
            "currency": "USD",
            "issue_date": date(2026, 9, 15),
            "due_date": None,
            "subtotal_minor": 12000,
            "tax_minor": 0,
            "total_minor": 12000,
            "amount_paid_minor": 7000,
            "amount_credited_minor": 1000,
            "status": "partially_paid",
            "disputed": True,
            "promise_to_pay": None,
            "payment_plan": {"instalments": [["2026-11-01", {"amount": "50.00", "currency": "USD"}]]},
            "in_collections": True,
            "source": None,
            "source_rank": 0,
            "created_at": T0,
            "updated_at": T0,
        },
    ],
    "invoice_lines": [
        {
            "invoice_id": "inv-1",
            "line_no": 1,
            "description": "Widget",
            "quantity": "2",
            "unit_price": "5.0625",
            "currency": "KWD",
            "amount_minor": 10125,
            "tax_minor": 500,
        },
        {
            "invoice_id": "inv-2",
            "line_no": 1,
            "description": "Consulting",
            "quantity": "1.5",
            "unit_price": None,
            "currency": "USD",
            "amount_minor": 9000,
            "tax_minor": None,
        },
        {
            "invoice_id": "inv-2",
            "line_no": 2,
            "description": "Travel",
            "quantity": "1",
            "unit_price": "30.00",
            "currency": "USD",
            "amount_minor": 3000,
            "tax_minor": 0,
        },
    ],
    "payments": [
        {
            "id": "pay-1",
            "currency": "USD",
            "amount_minor": 7000,
            "received_at": T1,
            "method": "card",
            "customer_id": "c1",
            "payer": "Acme Inc",
            "remittance": "INV-0043",
            "fee_minor": 233,
            "payout_id": "po_1",
            "status": "succeeded",
            "amount_refunded_minor": None,
            "source": "stripe",
            "source_rank": 50,
            "created_at": T1,
            "updated_at": T1,
        },
        {
            "id": "pay-2",
            "currency": "KWD",
            "amount_minor": 10625,
            "received_at": T1,
            "method": None,
            "customer_id": None,
            "payer": "GULF TRDG",
            "remittance": None,
            "fee_minor": None,
            "payout_id": None,
            "status": "succeeded",
            "amount_refunded_minor": 0,
            "source": None,
            "source_rank": 0,
            "created_at": T1,
            "updated_at": T1,
        },
    ],
    "allocations": [
        {
            "id": "al-1",
            "payment_id": "pay-1",
            "invoice_id": "inv-2",
            "currency": "USD",
            "amount_minor": 7000,
            "rule": "exact_reference",
            "confidence": "1",
            "reason": "remittance names INV-0043",
            "confirmed_by": None,
            "status": "applied",
            "created_at": T1,
        },
        {
            "id": "al-2",
            "payment_id": "pay-2",
            "invoice_id": "inv-1",
            "currency": "KWD",
            "amount_minor": 10625,
            "rule": "amount_match",
            "confidence": "0.72",
            "reason": "same amount, payer name close",
            "confirmed_by": None,
            "status": "proposed",
            "created_at": T1,
        },
    ],
    "refs": [
        {
            "system": "xero",
            "object_type": "invoice",
            "remote_id": "x-inv-1",
            "entity_kind": "invoice",
            "entity_id": "inv-1",
            "remote_updated_at": T1,
            "link_rule": "own",
            "data": {"InvoiceNumber": "INV-0042", "Total": "10.625"},
            "seen_at": T1,
        },
        {
            "system": "stripe",
            "object_type": "payment",
            "remote_id": "ch_1",
            "entity_kind": "payment",
            "entity_id": "pay-1",
            "remote_updated_at": None,
            "link_rule": None,
            "data": {"amount": 7000},
            "seen_at": T0,
        },
    ],
    "sync_cursors": [
        {"connection": "ledger", "stream": "invoices", "value": "c-42", "updated_at": T1},
        {"connection": "psp", "stream": "charges", "value": None, "updated_at": T0},
    ],
    "outbox_actions": [
        {
            "idempotency_key": "k-send-1",
            "connection": "ledger",
            "kind": "send_invoice",
            "target": {"invoice": "x-inv-1"},
            "payload": {"dunning_step": 7, "dunning_customer": "c2"},
            "state": "planned",
            "attempts": 0,
            "last_error": None,
            "result": None,
            "next_attempt_at": T1,
            "created_at": T0,
            "updated_at": T0,
            "claimed_by": None,
            "claimed_at": None,
            "subject_type": "customer",
            "subject_id": "c2",
            "summary": "Email INV-0042 to Gulf Trading",
        },
        {
            "idempotency_key": "k-pay-1",
            "connection": "ledger",
            "kind": "apply_payment",
            "target": None,
            "payload": {"payment": "pay-1", "invoice": "inv-2", "amount": "70.00"},
            "state": "done",
            "attempts": 2,
            "last_error": "timeout",
            "result": {"id": "x-pay-9"},
            "next_attempt_at": None,
            "created_at": T0,
            "updated_at": T1,
            "claimed_by": "host:123",
            "claimed_at": T1,
            "subject_type": "invoice",
            "subject_id": "inv-2",
            "summary": "Apply 70.00 USD",
        },
    ],
    "runs": [
        {"id": "run-1", "started_at": T0, "finished_at": T1, "status": "ok", "stats": {"pulled": 12}},
        {"id": "run-2", "started_at": T1, "finished_at": None, "status": "running", "stats": None},
    ],
    "audit_log": [
        {
            "at": T0,
            "actor": "alice",
            "action": "accept_match",
            "subject_type": "payment",
            "subject_id": "pay-1",
            "inputs": {"invoice": "inv-2"},
            "decision": "applied",
        },
        {
            "at": T1,
            "actor": "dunning",
            "action": "reminder",
            "subject_type": "customer",
            "subject_id": "c2",
            "inputs": None,
            "decision": None,
        },
    ],
    "proposals": [
        {
            "id": "prop-1",
            "payment_id": "pay-2",
            "currency": "KWD",
            "amount_minor": 10625,
            "candidates": [{"invoice_id": "inv-1", "confidence": "0.72"}],
            "status": "open",
            "decided_by": None,
            "decided_at": None,
            "created_at": T1,
        },
    ],
    "work_units": [
        {
            "unit": "pull:ledger:invoices",
            "kind": "pull",
            "connection": "ledger",
            "stream": "invoices",
            "owner": "host:123",
            "lease_until": T1,
            "due_tick": 5,
            "done_tick": 4,
            "last_started_at": T1,
            "last_success_at": T0,
            "last_error": None,
            "failing_since": None,
            "runs": 4,
        },
    ],
    "webhook_events": [
        {
            "provider": "stripe",
            "event_id": "evt_1",
            "connection": "psp",
            "stream": "charges",
            "object_id": "ch_1",
            "received_at": T1,
            "payload": {"type": "charge.succeeded"},
        },
    ],
    "oauth_tokens": [
        {
            "connection": "ledger",
            "access_token": "a",
            "refresh_token": "r",
            "previous_refresh_token": None,
            "expires_at": T1,
            "updated_at": T0,
            "version": 3,
        },
    ],
}
assert set(BOOK_0009) == set(TABLES_0009)


def _type(value: Any) -> sa.types.TypeEngine[Any]:
    if isinstance(value, bool):
        return sa.Boolean()
    if isinstance(value, int):
        return sa.BigInteger()
    if isinstance(value, datetime):
        return sa.DateTime(timezone=True)
    if isinstance(value, date):
        return sa.Date()
    if isinstance(value, dict | list):
        return JSON
    if value is None:
        return sa.types.NullType()
    return sa.Text()


def insert_rows(connection: sa.Connection, name: str, rows: list[dict[str, Any]]) -> None:
    """Plain INSERTs naming the given columns (not `state.tables`, which is the newest schema)."""
    for row in rows:
        target = sa.table(name, *(sa.column(column, _type(value)) for column, value in row.items()))
        connection.execute(sa.insert(target).values(row))


def raw_rows(engine: sa.Engine, name: str) -> list[dict[str, Any]]:
    """Every row of a table as the driver gives it, in a stable order."""
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(sa.text(f"SELECT * FROM {name}"))]
    return sorted(rows, key=lambda row: repr(sorted(row.items())))


def book_at_0009(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    """Upgrade `engine` to 0009, store the book, and return every row as stored."""
    assert upgrade(engine, "0009") == "0009"
    with engine.begin() as connection:
        for name in TABLES_0009:  # parents first
            insert_rows(connection, name, BOOK_0009[name])
    return {name: raw_rows(engine, name) for name in TABLES_0009}


@pytest.fixture
def before(empty_engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    """The book at 0009 as stored; `empty_engine` is then upgraded to the head."""
    stored = book_at_0009(empty_engine)
    assert upgrade(empty_engine) == head_revision()
    return stored


@contextmanager
def another_database(like: sa.Engine, tmp_path: Path) -> Iterator[sa.Engine]:
    """A second empty database of the same kind as `like`."""
    if like.dialect.name == "sqlite":
        (tmp_path / "other").mkdir()
        with sqlite_engine_in(tmp_path / "other") as engine:
            yield engine
    else:
        with pg_engine_in_temporary_schema(postgres_url_or_fail()) as engine:
            yield engine


def declared_schema_diff(engine: sa.Engine) -> list[Any]:
    """What alembic finds different between the database and `state.tables`."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_name": lambda name, type_, _parent: type_ != "table" or name in STATE_TABLES,
                "compare_type": True,
            },
        )
        return list(compare_metadata(context, SQLModel.metadata))


def schema(engine: sa.Engine) -> dict[str, Any]:
    """Everything about the state tables (those of 0009 too) that reflection sees, and the
    triggers, comparable between two databases (column order aside)."""
    found: dict[str, Any] = {}
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        for name in (name for name in (*TABLES_0009, *LATER_TABLES) if inspector.has_table(name)):
            found[name] = {
                "columns": {
                    c["name"]: (str(c["type"]), c["nullable"], c.get("default")) for c in inspector.get_columns(name)
                },
                "primary_key": inspector.get_pk_constraint(name),
                "foreign_keys": sorted(
                    (
                        fk["name"],
                        fk["constrained_columns"],
                        fk["referred_table"],
                        fk["referred_columns"],
                        fk.get("options", {}).get("ondelete"),
                    )
                    for fk in inspector.get_foreign_keys(name)
                ),
                "indexes": sorted(
                    (ix["name"], ix["column_names"], ix["unique"])
                    for ix in inspector.get_indexes(name)
                    if ix["name"] is not None
                ),
                "unique": sorted((uq["name"], uq["column_names"]) for uq in inspector.get_unique_constraints(name)),
            }
        if engine.dialect.name == "sqlite":
            triggers = connection.exec_driver_sql(
                "SELECT tbl_name, name, sql FROM sqlite_master WHERE type = 'trigger'"
            )
        else:
            triggers = connection.exec_driver_sql(  # TRUNCATE triggers included
                "SELECT c.relname, t.tgname, replace(pg_get_triggerdef(t.oid), current_schema() || '.', '') "
                "FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace"
            )
        found["triggers"] = sorted(tuple(row) for row in triggers)
    return found


# 1. every row is kept, in the company "default" ------------------------------------------


def test_every_row_is_kept_with_its_values_in_the_company_default(
    empty_engine: sa.Engine, before: dict[str, list[dict[str, Any]]]
) -> None:
    for name in BOOK_TABLES:
        after = raw_rows(empty_engine, name)
        assert len(after) == len(BOOK_0009[name]) and after, name
        assert {row.pop("company") for row in after} == {"default"}, name
        # columns later revisions add (a payment's dispute, a proposal's note) start empty; 0017
        # marks the unfinished writes tried before as sent on their own
        if name == "outbox_actions":
            for row in after:
                tried = row["state"] not in ("done", "cancelled") and row["attempts"] > 0
                assert bool(row.pop("sent_alone")) == tried, row
        if name == "invoices":  # 0021 moved each invoice's lines into it, in order
            for row in after:
                assert stored_json(row.pop("lines")) == lines_0009(row["id"]), row["id"]
        known = set(before[name][0]) if before[name] else set()
        assert all(value is None for row in after for key, value in row.items() if key not in known), name
        assert [{k: v for k, v in row.items() if k in known} for row in after] == before[name], name
    # not a book's: left as it was
    assert raw_rows(empty_engine, "oauth_tokens") == before["oauth_tokens"]
    with empty_engine.connect() as connection:
        assert not sa.inspect(connection).has_table("invoice_lines")


def stored_json(value: Any) -> Any:
    """A JSON column's value as the driver gives it (SQLite: the text)."""
    return json.loads(value) if isinstance(value, str) else value


def lines_0009(invoice_id: str, company: str | None = None, book: list[dict[str, Any]] | None = None) -> list[Any]:
    """The lines of 0009's rows (or `book`'s) of one invoice, in order, as `invoices.lines` keeps them."""
    rows = [
        row
        for row in (BOOK_0009["invoice_lines"] if book is None else book)
        if row["invoice_id"] == invoice_id and row.get("company", company) == company
    ]
    return [{field: row[field] for field in LINE_FIELDS} for row in sorted(rows, key=lambda row: row["line_no"])]


def test_the_store_reads_the_same_money_after_the_upgrade(
    empty_engine: sa.Engine, before: dict[str, list[dict[str, Any]]]
) -> None:
    store = open_store(empty_engine)
    invoices = {invoice.id: invoice for invoice in store.list_invoices()}
    assert set(invoices) == {"inv-1", "inv-2"}
    for row in BOOK_0009["invoices"]:
        invoice = invoices[row["id"]]
        assert invoice.total.to_minor() == row["total_minor"]
        assert invoice.subtotal.to_minor() == row["subtotal_minor"]
        assert invoice.tax.to_minor() == row["tax_minor"]
        assert invoice.amount_paid.to_minor() == row["amount_paid_minor"]
        assert invoice.amount_credited.to_minor() == row["amount_credited_minor"]
        read = [
            {
                "description": line.description,
                "quantity": str(line.quantity),
                "unit_price": None if line.unit_price is None else str(line.unit_price),
                "amount_minor": line.amount.to_minor(),
                "tax_minor": None if line.tax is None else line.tax.to_minor(),
            }
            for line in invoice.lines
        ]
        assert read == lines_0009(row["id"])
    assert str(invoices["inv-1"].total) == "10.625 KWD"
    assert invoices["inv-2"].payment_plan is not None
    payments = {payment.id: payment.amount.to_minor() for payment in store.list_payments()}
    assert payments == {row["id"]: row["amount_minor"] for row in BOOK_0009["payments"]}
    with store.session() as session:
        allocations = {
            (stored.allocation.id, stored.status): stored.allocation.amount.to_minor()
            for stored in load_allocations(session)
        }
    assert allocations == {(row["id"], row["status"]): row["amount_minor"] for row in BOOK_0009["allocations"]}
    assert store.get_cursor("ledger", "invoices") == "c-42"
    store.close()


def test_new_ids_go_on_after_the_copied_ones(empty_engine: sa.Engine, before: dict[str, list[dict[str, Any]]]) -> None:
    with empty_engine.begin() as connection:
        new_id = connection.execute(
            sa.text(
                "INSERT INTO audit_log (company, at, actor, action, subject_type) "
                "VALUES ('default', CURRENT_TIMESTAMP, 'bob', 'note', 'invoice') RETURNING id"
            )
        ).scalar_one()
    assert new_id > max(row["id"] for row in before["audit_log"])


# 2. the database enforces the company ----------------------------------------------------


FOREIGN_KEY, UNIQUE, NOT_NULL = "(?i)foreign key", "(?i)unique|duplicate key", "(?i)not null|not-null"


def refused(
    engine: sa.Engine, statement: str, match: str, error: type[sa.exc.DBAPIError] = sa.exc.IntegrityError
) -> None:
    with pytest.raises(error, match=match), engine.begin() as connection:
        connection.execute(sa.text(statement))


def accepted(engine: sa.Engine, statement: str) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text(statement))


ALLOCATION = (
    "INSERT INTO allocations (company, id, payment_id, invoice_id, currency, amount_minor, rule, "
    "confidence, reason, status, created_at) VALUES ('{company}', 'al-9', '{payment}', '{invoice}', "
    "'USD', 100, 'manual', '1', 'test', 'applied', CURRENT_TIMESTAMP)"
)


def test_an_allocation_of_one_company_cannot_point_at_another_companys_records(
    empty_engine: sa.Engine, before: dict[str, list[dict[str, Any]]]
) -> None:
    accepted(
        empty_engine,
        "INSERT INTO customers (company, id, name, emails, paused, created_at, updated_at) "
        "VALUES ('B', 'c1', 'Acme B', '[]', FALSE, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    )
    # company B's own payment pay-1, beside default's pay-1 (the keys carry the company)
    accepted(
        empty_engine,
        "INSERT INTO payments (company, id, currency, amount_minor, received_at, status, created_at, "
        "updated_at) VALUES ('B', 'pay-1', 'USD', 100, CURRENT_TIMESTAMP, 'succeeded', CURRENT_TIMESTAMP, "
        "CURRENT_TIMESTAMP)",
    )
    # B's payment on default's invoice, and a B allocation between default's records: refused
    refused(empty_engine, ALLOCATION.format(company="B", payment="pay-1", invoice="inv-2"), FOREIGN_KEY)
    refused(empty_engine, ALLOCATION.format(company="default", payment="pay-9", invoice="inv-2"), FOREIGN_KEY)
    # the same allocation within default's book is fine
    accepted(empty_engine, ALLOCATION.format(company="default", payment="pay-1", invoice="inv-2"))
    with empty_engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT company, id FROM allocations ORDER BY id")).all()
    assert [tuple(row) for row in rows] == [("default", "al-1"), ("default", "al-2"), ("default", "al-9")]


def test_a_row_without_a_company_is_refused(empty_engine: sa.Engine, before: dict[str, list[dict[str, Any]]]) -> None:
    refused(
        empty_engine, "INSERT INTO runs (id, started_at, status) VALUES ('run-9', CURRENT_TIMESTAMP, 'ok')", NOT_NULL
    )
    refused(
        empty_engine,
        "INSERT INTO sync_cursors (connection, stream, value, updated_at) "
        "VALUES ('crm', 'deals', 'x', CURRENT_TIMESTAMP)",
        NOT_NULL,
    )


def test_refs_and_idempotency_keys_are_unique_within_a_company(
    empty_engine: sa.Engine, before: dict[str, list[dict[str, Any]]]
) -> None:
    ref = (
        "INSERT INTO refs (company, system, object_type, remote_id, entity_kind, entity_id, data, seen_at) "
        "VALUES ('{company}', 'xero', 'invoice', 'x-inv-1', 'invoice', 'inv-1', '{{}}', CURRENT_TIMESTAMP)"
    )
    accepted(empty_engine, ref.format(company="B"))
    refused(empty_engine, ref.format(company="default"), UNIQUE)
    refused(empty_engine, ref.format(company="B"), UNIQUE)
    with empty_engine.connect() as connection:
        companies = connection.execute(
            sa.text("SELECT company FROM refs WHERE remote_id = 'x-inv-1' ORDER BY company")
        ).scalars()
        assert list(companies) == ["B", "default"]
    action = (
        "INSERT INTO outbox_actions (company, idempotency_key, connection, kind, payload, state, attempts, "
        "created_at, updated_at) VALUES ('{company}', 'k-send-1', 'ledger', 'send_invoice', '{{}}', 'planned', "
        "0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    accepted(empty_engine, action.format(company="B"))
    refused(empty_engine, action.format(company="default"), UNIQUE)


def test_0021_moves_each_invoices_lines_into_its_own_companys_invoice_in_order(empty_engine: sa.Engine) -> None:
    """Two companies with an invoice of the same id, lines stored out of order: each invoice
    gets its own company's lines, by line number; an invoice without lines gets none."""
    book_at_0009(empty_engine)
    assert upgrade(empty_engine, "0020") == "0020"
    accepted(
        empty_engine,
        "INSERT INTO invoices (company, id, currency, subtotal_minor, tax_minor, total_minor, "
        "amount_paid_minor, amount_credited_minor, status, disputed, in_collections, created_at, updated_at) "
        "VALUES ('B', 'inv-1', 'JPY', 300, 0, 300, 0, 0, 'open', FALSE, FALSE, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),"
        " ('B', 'inv-9', 'JPY', 0, 0, 0, 0, 0, 'draft', FALSE, FALSE, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    )
    lines_b = [
        {
            "company": "B",
            "invoice_id": "inv-1",
            "line_no": 2,
            "description": "Second",
            "quantity": "1",
            "unit_price": None,
            "currency": "JPY",
            "amount_minor": 100,
            "tax_minor": None,
        },
        {
            "company": "B",
            "invoice_id": "inv-1",
            "line_no": 1,
            "description": "First",
            "quantity": "0.5",
            "unit_price": "400",
            "currency": "JPY",
            "amount_minor": 200,
            "tax_minor": 0,
        },
    ]
    with empty_engine.begin() as connection:
        insert_rows(connection, "invoice_lines", lines_b)

    assert upgrade(empty_engine) == head_revision()

    with empty_engine.connect() as connection:
        stored = {
            (company, invoice_id): stored_json(lines)
            for company, invoice_id, lines in connection.execute(sa.text("SELECT company, id, lines FROM invoices"))
        }
    assert stored[("B", "inv-1")] == lines_0009("inv-1", "B", lines_b)
    assert [line["description"] for line in stored[("B", "inv-1")]] == ["First", "Second"]
    assert stored[("B", "inv-9")] == []
    assert stored[("default", "inv-1")] == lines_0009("inv-1")
    assert stored[("default", "inv-2")] == lines_0009("inv-2")
    store = open_store(empty_engine)
    invoice = next(i for i in store.for_company("B").list_invoices() if i.id == "inv-1")
    assert [(line.description, str(line.amount)) for line in invoice.lines] == [
        ("First", "200 JPY"),
        ("Second", "100 JPY"),
    ]
    store.close()


def test_the_audit_log_is_still_append_only(empty_engine: sa.Engine, before: dict[str, list[dict[str, Any]]]) -> None:
    refused(empty_engine, "UPDATE audit_log SET actor = 'mallory'", "append-only", sa.exc.DBAPIError)
    refused(empty_engine, "DELETE FROM audit_log", "append-only", sa.exc.DBAPIError)
    accepted(
        empty_engine,
        "INSERT INTO audit_log (company, at, actor, action, subject_type) "
        "VALUES ('B', CURRENT_TIMESTAMP, 'bob', 'note', 'invoice')",
    )
    assert len(raw_rows(empty_engine, "audit_log")) == len(BOOK_0009["audit_log"]) + 1


def test_a_book_with_lines_of_a_missing_invoice_is_refused_and_left_as_it_was(empty_engine: sa.Engine) -> None:
    book_at_0009(empty_engine)
    orphan = (
        "INSERT INTO invoice_lines (invoice_id, line_no, description, quantity, currency, amount_minor) "
        "VALUES ('inv-gone', 0, 'x', '1', 'USD', 1)"
    )
    # written as a tool with the foreign keys off would have
    if empty_engine.dialect.name == "sqlite":
        raw = empty_engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None
            for statement in ("PRAGMA foreign_keys = OFF", orphan, "PRAGMA foreign_keys = ON"):
                driver.execute(statement)
        finally:
            raw.close()
    else:
        with empty_engine.begin() as connection:
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
            connection.exec_driver_sql(orphan)
    stored = {name: raw_rows(empty_engine, name) for name in TABLES_0009}
    at_0009 = schema(empty_engine)

    with pytest.raises(
        SchemaTooNewError, match="invoice_lines has rows whose invoice_id is not in invoices .'inv-gone'."
    ):
        upgrade(empty_engine)

    assert current_revision(empty_engine) == "0009"
    assert schema(empty_engine) == at_0009
    assert {name: raw_rows(empty_engine, name) for name in TABLES_0009} == stored


# 3. the schema is the declared one, whichever way the database got there ------------------


def test_the_upgraded_schema_is_the_declared_one_and_a_fresh_databases(
    empty_engine: sa.Engine, before: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    assert declared_schema_diff(empty_engine) == []
    upgraded = schema(empty_engine)
    # what alembic's comparison does not look at: primary keys, in order, and no default
    for name in STATE_TABLES:
        declared = SQLModel.metadata.tables[name]
        assert upgraded[name]["primary_key"]["constrained_columns"] == [c.name for c in declared.primary_key.columns]
        if name in BOOK_TABLES:
            assert upgraded[name]["columns"]["company"][1:] == (False, None), name  # NOT NULL, no default
    # 0001's append-only triggers are there (UPDATE and DELETE; UPDATE or DELETE, and TRUNCATE)
    assert [(table, name) for table, name, _ in upgraded["triggers"]] == (
        [("audit_log", "audit_log_no_delete"), ("audit_log", "audit_log_no_update")]
        if empty_engine.dialect.name == "sqlite"
        else [("audit_log", "audit_log_append_only"), ("audit_log", "audit_log_no_truncate")]
    )
    with another_database(empty_engine, tmp_path) as fresh:
        upgrade(fresh)
        assert schema(fresh) == upgraded


# downgrade ------------------------------------------------------------------------------


def downgrade(engine: sa.Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_downgrade_gives_back_the_0009_schema_and_rows_of_a_single_company(
    empty_engine: sa.Engine, before: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    downgrade(empty_engine, "0009")
    assert current_revision(empty_engine) == "0009"
    for name in TABLES_0009:
        assert raw_rows(empty_engine, name) == before[name], name
    with another_database(empty_engine, tmp_path) as fresh:
        upgrade(fresh, "0009")
        assert schema(empty_engine) == schema(fresh)
    refused(empty_engine, "DELETE FROM audit_log", "append-only", sa.exc.DBAPIError)
    # and up again
    assert upgrade(empty_engine) == head_revision()
    assert declared_schema_diff(empty_engine) == []


def test_downgrade_is_refused_once_a_second_company_has_rows(
    empty_engine: sa.Engine, before: dict[str, list[dict[str, Any]]]
) -> None:
    accepted(
        empty_engine,
        "INSERT INTO sync_cursors (company, connection, stream, value, updated_at) "
        "VALUES ('B', 'ledger', 'invoices', 'b-1', CURRENT_TIMESTAMP)",
    )
    with pytest.raises(CommandError, match="sync_cursors holds rows of company 'B'"):
        downgrade(empty_engine, "0009")
    assert current_revision(empty_engine) == head_revision()
    assert len(raw_rows(empty_engine, "sync_cursors")) == len(BOOK_0009["sync_cursors"]) + 1
