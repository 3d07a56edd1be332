"""Finance reads the book while the service writes it. On SQLite a sync, reconcile or plan of a
large book holds the database's write lock for minutes; the reports (`aging`, the lists,
`explain`, `statement`, `drift`, `audit list`, `actions list`) read without taking it, so they
answer at once instead of waiting for it and failing. A command that writes waits for its turn
and, when the lock is held too long, says the database is busy, in one line, exit 3."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from connector.config import load_config
from connector.reconcile.run import run_reconciliation
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state import db
from support.e2e import sync_sandbox, with_credentials


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "book"
    with Sandbox(with_credentials(generate(3, "small", today=date(2026, 12, 1)).data), limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, directory, full=True)
        assert report.ok, report.as_dict()
        run_reconciliation(load_config(str(directory / "connector.toml")), store)
        store.close()
    yield directory / "connector.toml"


@pytest.fixture
def writing(book: Path) -> Iterator[sqlite3.Connection]:
    """Another process in the middle of a long write: it holds the write lock throughout."""
    other = sqlite3.connect(book.parent / "state.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE invoices SET updated_at = updated_at")
    yield other
    other.execute("ROLLBACK")
    other.close()


def test_reports_answer_while_another_process_holds_the_write_lock(run_cli, book, writing, monkeypatch):
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 500)  # a report that waited would fail
    config = ["--config", str(book)]
    listed = run_cli(*config, "invoices", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    first = json.loads(listed.stdout)["invoices"][0]
    number, customer = first["number"], first["customer"]["name"]
    for args in (
        ["aging", "--json"],
        ["payments", "list", "--json"],
        ["customers", "list", "--json"],
        ["explain", number, "--json"],
        ["statement", customer],
        ["drift", "--json"],
        ["audit", "list", "--json"],
        ["actions", "list", "--json"],
    ):
        result = run_cli(*config, *args)
        assert result.exit_code in (0, 1), (args, result.stderr)  # drift exits 1 when it finds drift
        assert "busy" not in result.stderr and "locked" not in result.stderr


def test_a_command_that_writes_says_the_database_is_busy_when_the_lock_is_held_too_long(
    run_cli, book, writing, monkeypatch
):
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 200)
    result = run_cli("--config", str(book), "reconcile")
    assert result.exit_code == 3
    [line] = result.stderr.strip().splitlines()
    assert "is busy: another connector process has held its write lock for over 0.2 s" in line
