"""Linking reads a few fields of each stored view, extracted by the database (never the whole
view decoded): on both databases it reads exactly what decoding each view whole gives."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import date
from pathlib import Path

import pytest

from connector.config import load_config
from connector.connections import system_ranks
from connector.linking.run import linking_views, reduced_view
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state.linking import ref_views
from support.databases import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema
from support.e2e import sync_sandbox, with_credentials


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_fields_linking_reads_are_the_whole_views(database: str, tmp_path: Path) -> None:
    book = with_credentials(generate(5, "small", today=date.today()).data)
    with ExitStack() as stack:
        url = None
        if database == "postgresql":
            postgres_url_or_fail()
            schema = stack.enter_context(temporary_pg_schema())
            url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        with Sandbox(book, limits="off") as sandbox:
            store, report = sync_sandbox(sandbox, tmp_path, database_url=url, full=True)
        stack.callback(store.close)
        assert report.ok
        systems = system_ranks(load_config(str(tmp_path / "connector.toml")))
        with store.session() as session:
            for kind in ("customer", "invoice", "payment"):
                extracted = linking_views(session, kind, systems)
                decoded = [reduced_view(row, kind, systems) for row in ref_views(session, kind)]
                assert len(extracted) > 10
                assert [(v, v.data, dict(v.hints), dict(v.links)) for v in extracted] == [
                    (v, v.data, dict(v.hints), dict(v.links)) for v in decoded
                ]
                # what the rules read is there
                wanted = {"customer": "emails", "invoice": "total", "payment": "remittance"}[kind]
                assert any(v.data.get(wanted) for v in extracted) and any(v.hints for v in extracted)
