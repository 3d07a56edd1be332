"""bench/state_upsert.py runs through on a few pages, on SQLite and PostgreSQL, and its
databases' own bulk path stores exactly the rows it is compared with (a column added to the
invoices table without the bench knowing it once broke the run)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import state_upsert  # noqa: E402  (bench/state_upsert.py)

from connector.state.db import make_engine  # noqa: E402
from support.databases import pg_engine_in_temporary_schema, postgres_url_or_fail  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _counts(engine: sa.Engine) -> tuple[int, int]:
    with engine.connect() as connection:
        refs = connection.execute(sa.text("SELECT count(*) FROM refs")).scalar_one()
        invoices = connection.execute(sa.text("SELECT count(*) FROM invoices")).scalar_one()
    return refs, invoices


def test_the_bench_prints_every_figure_for_both_databases(capsys: pytest.CaptureFixture[str]) -> None:
    url = postgres_url_or_fail()
    state_upsert.main(["--records", "1200", "--batch", "500", "--pg-url", url])
    out = capsys.readouterr().out
    for name in ("sqlite", "postgresql"):
        for figure in ("", " unchanged", " changed", " bulk"):
            assert f"{name}{figure} " in out, out
        ratio = next(line for line in out.splitlines() if line.startswith(f"{name} ratio"))
        assert float(ratio.split()[2]) > 0, ratio


def test_the_bulk_path_stores_a_ref_and_an_invoice_per_record(tmp_path: Path) -> None:
    invoices = state_upsert.make_invoices(300)
    engine = make_engine(f"sqlite:///{tmp_path}/bulk.db")
    try:
        assert state_upsert.bulk_sqlite(engine, invoices) > 0
        assert _counts(engine) == (300, 300)
    finally:
        engine.dispose()
    with pg_engine_in_temporary_schema(postgres_url_or_fail()) as pg:
        assert state_upsert.bulk_postgresql(pg, invoices) > 0
        assert _counts(pg) == (300, 300)
