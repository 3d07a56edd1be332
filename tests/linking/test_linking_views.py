"""Linking reads a few fields of each stored view, extracted by the database (never the whole
view decoded): on both databases it reads exactly what decoding each view whole gives."""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import pytest

from connector.config import load_config
from connector.connections import system_ranks
from connector.linking.run import link_all, linking_views, reduced_view
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state import bookkeeping
from connector.state import linking as state_linking
from connector.state.linking import ref_views
from connector.state.store import open_store
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


def test_merges_and_their_audit_in_small_batches_link_the_same_book(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first link writes its merges and their audit entries a batch at a time: batches of
    three give the same records, refs and audit trail as one batch."""
    book = with_credentials(generate(13, "small", today=date.today()).data)
    with Sandbox(book, limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, tmp_path / "book", full=True, then_link=False)
    assert report.ok
    store.close()
    shutil.copytree(tmp_path / "book", tmp_path / "small-batches")
    results = []
    for name, batch in (("book", None), ("small-batches", 3)):
        if batch is not None:
            monkeypatch.setattr(state_linking, "MERGE_BATCH", batch)
            monkeypatch.setattr(bookkeeping, "AUDIT_BATCH", batch)
        path = tmp_path / name / "connector.toml"
        path.write_text(path.read_text().replace(str(tmp_path / "book"), str(tmp_path / name)))
        config = load_config(str(path))
        store = open_store(config.database_url)
        try:
            counts = link_all(config, store).counts()
            with store.session() as session:
                refs = sorted((r["system"], r["remote_id"], r["entity_id"]) for r in ref_views(session, "invoice"))
                entries = bookkeeping.audit_entries(session, actions=["link"], actor="linker")
            audited = [(e.subject_type, e.subject_id, e.inputs, e.decision) for e in entries]
            results.append((counts, refs, sorted(audited, key=repr), len(store.list_invoices())))
        finally:
            store.close()
    assert results[0][0]["invoice"] > 3 and results[0][0]["payment"] > 3
    assert results[0] == results[1]
