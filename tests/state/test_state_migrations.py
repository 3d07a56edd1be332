"""Schema versions: the upgrade keeps data, open_store refuses what it should not touch."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from connector.errors import DatabaseUnavailableError, SchemaOutdatedError, SchemaTooNewError
from connector.state import (
    check_schema,
    current_revision,
    database_url_for,
    head_revision,
    make_engine,
    open_store,
    redact_url,
    upgrade,
)
from connector.state.bookkeeping import ids_named
from connector.state.db import SQLITE_BUSY_TIMEOUT_MS
from connector.state.tables import STATE_TABLES


def tables(engine: sa.Engine) -> set[str]:
    with engine.connect() as connection:
        return set(sa.inspect(connection).get_table_names())


def test_upgrade_from_0001_keeps_rows_and_adds_oauth_tokens(empty_engine: sa.Engine) -> None:
    assert upgrade(empty_engine, "0001") == "0001"
    with empty_engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO sync_cursors (connection, stream, value, updated_at) "
                "VALUES ('ledger', 'invoices', 'c-42', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO audit_log (at, actor, action, subject_type) "
                "VALUES (CURRENT_TIMESTAMP, 'alice', 'accept_match', 'payment')"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO invoices (id, number, currency, subtotal_minor, tax_minor, total_minor, "
                "amount_paid_minor, amount_credited_minor, status, disputed, in_collections, "
                "created_at, updated_at) VALUES ('inv-1', 'INV-0042', 'KWD', 10125, 500, 10625, 0, 0, "
                "'open', FALSE, FALSE, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO invoice_lines (invoice_id, line_no, description, quantity, currency, "
                "amount_minor) VALUES ('inv-1', 0, 'Widget', '1', 'KWD', 10125)"
            )
        )
    assert "oauth_tokens" not in tables(empty_engine)
    with pytest.raises(SchemaOutdatedError, match=f"at 0001, this release needs {head_revision()}"):
        check_schema(empty_engine)
    with pytest.raises(SchemaOutdatedError, match="connector db upgrade"):
        open_store(empty_engine)

    assert upgrade(empty_engine) == head_revision()

    check_schema(empty_engine)
    store = open_store(empty_engine)
    assert store.get_cursor("ledger", "invoices") == "c-42"
    with empty_engine.connect() as connection:
        assert connection.execute(sa.text("SELECT actor FROM audit_log")).scalar_one() == "alice"
    assert "oauth_tokens" in tables(empty_engine)
    invoice = store.get_invoice("inv-1")
    assert invoice is not None
    assert [str(line.amount) for line in invoice.lines] == ["10.125 KWD"]
    assert str(invoice.total) == "10.625 KWD"
    assert store.save_tokens("xero", {"access_token": "a", "refresh_token": "r"}, None) == 1


def test_open_store_initialises_a_database_with_no_tables(empty_engine: sa.Engine) -> None:
    open_store(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    assert set(STATE_TABLES) <= tables(empty_engine)


def test_database_at_an_unknown_revision_is_too_new(empty_engine: sa.Engine) -> None:
    upgrade(empty_engine)
    with empty_engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(SchemaTooNewError, match="0099"):
        check_schema(empty_engine)
    with pytest.raises(SchemaTooNewError):
        upgrade(empty_engine)


def test_database_with_foreign_tables_but_no_version_is_refused(empty_engine: sa.Engine) -> None:
    with empty_engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE something_else (id INTEGER)"))
    with pytest.raises(SchemaOutdatedError, match="no schema version"):
        open_store(empty_engine)


def test_migrations_create_exactly_the_declared_tables(empty_engine: sa.Engine) -> None:
    upgrade(empty_engine)
    with empty_engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_name": lambda name, type_, _parent: type_ != "table" or name in STATE_TABLES,
                "compare_type": True,
            },
        )
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []


def test_unreachable_database_is_a_one_line_error_without_the_password() -> None:
    url = "postgresql://bob:s3cret-pw@127.0.0.1:1/nowhere"
    with pytest.raises(DatabaseUnavailableError) as caught:
        open_store(url, connect_args={"connect_timeout": 2})
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert "\n" not in message
    assert "bob:***@127.0.0.1:1/nowhere" in message


def test_a_file_that_is_not_a_database_is_a_one_line_error_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    content = b"these are someone's notes, not a database\n" * 200
    path.write_bytes(content)
    with pytest.raises(DatabaseUnavailableError) as caught:
        open_store(f"sqlite:///{path}")
    assert str(caught.value) == f"cannot read the state database sqlite:///{path}: file is not a database"
    assert path.read_bytes() == content


def test_postgres_urls_use_psycopg_3() -> None:
    for given in ("postgres://u@h/db", "postgresql://u@h/db"):
        assert database_url_for(given).drivername == "postgresql+psycopg"
    assert database_url_for("sqlite:///x.db").drivername == "sqlite"


def test_default_database_is_a_sqlite_file_in_the_working_directory() -> None:
    url = database_url_for(None)
    assert (url.drivername, url.database) == ("sqlite", "connector.db")


def test_redact_url_masks_the_password() -> None:
    assert redact_url("postgresql://bob:pw@db:5432/ar") == "postgresql://bob:***@db:5432/ar"


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: os.PathLike) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/s.db")
    with engine.connect() as connection:
        pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == SQLITE_BUSY_TIMEOUT_MS
    engine.dispose()


def test_upgrade_marks_unfinished_writes_tried_before_as_sent_alone(empty_engine: sa.Engine) -> None:
    """Writes an earlier release tried went out on their own with their own keys: after the
    upgrade, a provider that batches their kind still resends each alone with that key."""
    assert upgrade(empty_engine, "0016") == "0016"
    rows = {  # key: (state, attempts, batch_key)
        "tried": ("planned", 1, None),
        "claimed": ("in_flight", 1, None),
        "fresh": ("planned", 0, None),
        "finished": ("done", 1, None),
        "in-a-batch": ("planned", 1, "batch-1"),
    }
    with empty_engine.begin() as connection:
        for number, (key, (state, attempts, batch_key)) in enumerate(rows.items(), start=1):
            connection.execute(
                sa.text(
                    "INSERT INTO outbox_actions (id, company, idempotency_key, connection, kind, payload, state, "
                    "attempts, batch_key, created_at, updated_at) VALUES (:id, 'default', :key, 'ledger', "
                    "'record_payment', '{}', :state, :attempts, :batch_key, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"id": number, "key": key, "state": state, "attempts": attempts, "batch_key": batch_key},
            )
    assert upgrade(empty_engine) == head_revision()
    with empty_engine.connect() as connection:
        marked: dict[str, bool] = dict(
            connection.execute(sa.text("SELECT idempotency_key, sent_alone FROM outbox_actions")).all()
        )
    assert {key for key, alone in marked.items() if alone} == {"tried", "claimed"}


def test_upgrade_names_the_record_ids_of_the_entries_of_before_as_new_entries_name_them(
    empty_engine: sa.Engine,
) -> None:
    """0026 reads the ids each entry's inputs name beside its subject, as `ids_named` does for
    every entry written since: `explain` finds an old manual match by the invoice it names."""
    assert upgrade(empty_engine, "0025") == "0025"
    invoice, payment, other = "0" * 31 + "1", "a" * 31 + "2", "f" * 32
    inputs: list[tuple[str, object]] = [
        (payment, {"invoices": [invoice, other], "amount": "12.30 USD", "rule": "name"}),
        (invoice, {"merged": other, "self": invoice}),  # the subject itself is not a mention
        (other, {"deep": [{"in": {"side": payment}}], "n": 7, "none": None, "flag": True}),
        (invoice, {"key": f"ar-{payment}0123", "upper": payment.upper(), "batch": f"batch-{other}"}),
        (payment, None),
    ]
    with empty_engine.begin() as connection:
        for number, (subject, values) in enumerate(inputs, start=1):
            connection.execute(
                sa.text(
                    "INSERT INTO audit_log (id, company, at, actor, action, subject_type, subject_id, inputs) "
                    "VALUES (:id, 'default', CURRENT_TIMESTAMP, 'alice', 'note', 'invoice', :subject, :inputs)"
                ),
                {"id": number, "subject": subject, "inputs": None if values is None else json.dumps(values)},
            )
    assert upgrade(empty_engine) == head_revision()
    with empty_engine.connect() as connection:
        named = set(connection.execute(sa.text("SELECT entry_id, mentioned FROM audit_mentions")).all())
    assert named == {(1, invoice), (1, other), (2, other), (3, payment)}
    assert named == {
        (number, record_id)
        for number, (subject, values) in enumerate(inputs, start=1)
        for record_id in ids_named(values, subject)
    }
