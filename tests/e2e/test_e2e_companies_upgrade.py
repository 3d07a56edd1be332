"""`connector db upgrade` of a database the previous release made (schema 0009, one company):
every figure finance reads is the same afterwards.

The previous release's database is made the way an operator's is: `connector demo` fills a
book (sync, reconcile, write-back, reminders), then the schema is taken back to 0009, as the
release before companies left it. After `connector db upgrade` the aging, the invoice list
and the reconciliation answer exactly what they did.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from connector.cli.main import main
from connector.state.db import make_engine
from connector.state.migrate import alembic_config, current_revision, head_revision

pytestmark = pytest.mark.slow

AS_OF = "2030-01-31"  # a fixed day, so both readings age the same balances the same way


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def figures(capsys: pytest.CaptureFixture[str], config: str) -> dict[str, object]:
    readings: dict[str, object] = {}
    for name, args in {
        "aging": ("aging", "--json", "--as-of", AS_OF),
        "invoices": ("invoices", "list", "--json", "--as-of", AS_OF),
        "reconcile": ("reconcile", "--json"),
    }.items():
        code, out, err = run(capsys, "--config", config, *args)
        assert code == 0, err
        readings[name] = json.loads(out)
    return readings


def take_back_to_0009(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0009")
        assert current_revision(engine) == "0009"
    finally:
        engine.dispose()


def test_an_upgraded_database_of_the_previous_release_keeps_every_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "demo", "--dir", str(tmp_path))
    assert code == 0, err
    config = str(tmp_path / "connector.toml")
    before = figures(capsys, config)
    assert before["aging"] and before["invoices"]  # a real book, not an empty one

    url = f"sqlite:///{tmp_path / 'connector.db'}"
    take_back_to_0009(url)
    code, _, err = run(capsys, "--config", config, "aging", "--json")
    assert code == 2 and "connector db upgrade" in err  # the old schema is refused until upgraded

    code, out, err = run(capsys, "--config", config, "db", "upgrade")
    assert code == 0, err
    assert f"to {head_revision()}" in out
    assert figures(capsys, config) == before
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            companies = {
                row[0]
                for row in connection.execute(
                    sa.text("SELECT DISTINCT company FROM invoices UNION SELECT DISTINCT company FROM refs")
                )
            }
        assert companies == {"default"}
    finally:
        engine.dispose()
