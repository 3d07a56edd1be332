"""`connector remap` applies a changed mapping to the stored book from the raw payloads the sync
kept, without a single provider request; `explain --raw` shows those payloads.

A small generated book is synced from the sandbox into SQLite once per test; the mapping
override is a connection's `[connections.NAME.mapping]` table, as an operator writes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connector.demo import DEMO_CREDENTIALS
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state.raw import unpack
from connector.state.store import Store
from support.databases import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema
from support.e2e import sync_sandbox, with_credentials
from support.sandbox_harness import stripe

# The gateway's customers named by their e-mail instead of their name.
NAME_FROM_EMAIL = '\n[connections.gateway.mapping.streams.customers.fields]\nname = { paths = ["email"] }\n'


class Book:
    def __init__(self, directory: Path, sandbox: Sandbox, store: Store, run_cli: Any) -> None:
        self.directory, self.sandbox, self.store, self._run = directory, sandbox, store, run_cli
        self.config_path = directory / "connector.toml"

    def call(self, *args: str) -> Any:
        return self._run("--config", str(self.config_path), *args)

    def requests(self) -> int:
        return sum(traffic.requests for traffic in self.sandbox.traffic().values())

    def gateway_customers(self) -> dict[str, tuple[dict[str, Any], dict[str, Any] | None]]:
        """remote id -> (stored view, raw payload) of the gateway's customers."""
        with self.store.engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT remote_id, data, raw FROM refs WHERE system = 'gateway' AND object_type = 'customer'")
            ).all()
        return {
            remote_id: (data if isinstance(data, dict) else json.loads(data), None if raw is None else unpack(raw))
            for remote_id, data, raw in rows
        }

    def ref_rows(self) -> list[tuple[Any, ...]]:
        with self.store.engine.connect() as connection:
            return list(connection.execute(sa.text("SELECT id, data_hash, raw, seen_at FROM refs ORDER BY id")).all())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    postgres_url_or_fail()
    with ExitStack() as stack:
        schema = stack.enter_context(temporary_pg_schema())
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture
def book(tmp_path, run_cli, database_url) -> Iterator[Book]:
    data = with_credentials(generate(42, "small").data)
    directory = tmp_path / "book"
    with Sandbox(data, limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, directory, database_url=database_url, full=True)
        assert report.ok, report.as_dict()
        try:
            yield Book(directory, sandbox, store, run_cli)
        finally:
            store.close()


def test_sync_keeps_each_records_raw_payload_as_the_provider_returned_it(book):
    customers = book.gateway_customers()
    assert customers and all(raw is not None and raw["id"] == remote_id for remote_id, (_, raw) in customers.items())
    remote_id, (_view, raw) = sorted(customers.items())[0]
    with stripe(book.sandbox, DEMO_CREDENTIALS["stripe"][0]) as client:
        served = client.get(f"/v1/customers/{remote_id}").json()
    assert raw == served


def test_an_unchanged_sync_writes_no_ref_again(book):
    # the first sync stored some payments before their customers: the second fills them in
    assert book.call("sync", "--full").exit_code == 0
    before = book.ref_rows()
    result = book.call("sync", "--full", "--json")
    assert result.exit_code == 0, result.stderr
    after = book.ref_rows()
    assert [row[:3] for row in after] == [row[:3] for row in before]  # same hashes, same payloads


def test_remap_applies_a_mapping_override_without_a_provider_request(book):
    named = {remote_id: view["name"] for remote_id, (view, _raw) in book.gateway_customers().items()}
    book.config_path.write_text(book.config_path.read_text() + NAME_FROM_EMAIL)
    requests = book.requests()

    result = book.call("remap", "--connection", "gateway", "--json")

    assert result.exit_code == 0, result.stderr
    assert book.requests() == requests
    report = json.loads(result.stdout)
    customers = next(s for s in report["streams"] if s["stream"] == "customers")
    assert customers["records"] == customers["stored"] == len(named) > 0
    assert report["without_raw"] == {}
    remapped = book.gateway_customers()
    changed = 0
    for remote_id, (view, raw) in remapped.items():
        assert raw is not None
        assert view["name"] == (raw.get("email") or "")
        changed += view["name"] != named[remote_id]
    assert changed > 0


def test_remap_counts_the_records_stored_before_raw_payloads_were_kept(book):
    with book.store.engine.begin() as connection:
        forgotten = connection.execute(sa.text("UPDATE refs SET raw = NULL WHERE system = 'ledger'")).rowcount
    assert forgotten > 0

    result = book.call("remap", "--connection", "ledger")

    assert result.exit_code == 0, result.stderr
    assert (
        f"{forgotten} records have no raw payload (stored before this version): "
        "run `connector sync --full --connection ledger` to keep them"
    ) in result.stdout


def test_remap_of_an_unknown_connection_or_stream_names_the_valid_ones_in_one_line(book):
    connection = book.call("remap", "--connection", "nope")
    stream = book.call("remap", "--connection", "gateway", "--stream", "nope")

    assert connection.exit_code == stream.exit_code == 2
    assert connection.stderr.strip().count("\n") == stream.stderr.strip().count("\n") == 0
    assert "gateway" in connection.stderr and "ledger" in connection.stderr
    assert "customers" in stream.stderr and "charges" in stream.stderr


def test_explain_raw_shows_each_systems_payload(book):
    invoice = json.loads(book.call("invoices", "list", "--json").stdout)
    rows = invoice["invoices"] if isinstance(invoice, dict) else invoice
    number = rows[0]["number"]

    text = book.call("explain", number, "--raw")
    as_json = json.loads(book.call("explain", number, "--raw", "--json").stdout)

    assert text.exit_code == 0, text.stderr
    assert "Raw from ledger" in text.stdout
    assert as_json["raw"] and all(p["raw"] is not None for p in as_json["raw"])
