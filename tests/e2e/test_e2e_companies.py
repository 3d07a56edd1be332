"""Two companies in one deployment (issue #13): two sandboxes serving two generated books whose
invoice numbers, customer names and e-mails collide (and whose HubSpot ids are numbered alike),
configured as two companies in one config and synced with `sync --apply`. Each sandbox is told
only its own company's writes, and each company's `aging`, `invoices list` and `reconcile`
read exactly as the same book run alone in a config of its own. The same two books in one
config that names no company are refused at load."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from connector.sandbox import Sandbox
from connector.state.store import open_store
from support.companies import (
    SEEDS,
    alone_config,
    book,
    collisions,
    comparable,
    comparable_writes,
    labels,
    mentions,
    own_ids,
    payment_amounts,
    shared_config,
    unscoped_config,
)
from support.databases import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema
from support.e2e import writes

pytestmark = pytest.mark.slow

TODAY = date.today()  # Stripe keeps events 30 days: the books are dated around now
COMPANIES = tuple(SEEDS)  # ("north", "south")


@dataclass
class Run:
    """What one run left: per company, what its sandbox was told and what the CLI shows."""

    journals: dict[str, list[dict[str, Any]]]
    views: dict[str, dict[str, Any]]  # company -> command -> its JSON, our ids taken out


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request, tmp_path) -> Iterator[Callable[[str], str]]:
    """A new, empty database per name asked for, on the backend of the test."""
    if request.param == "sqlite":
        yield lambda name: f"sqlite:///{tmp_path / name}.db"
        return
    postgres_url_or_fail()
    with ExitStack() as stack:

        def schema(_name: str) -> str:
            created = stack.enter_context(temporary_pg_schema())
            return f"{POSTGRES_URL}?options=-csearch_path%3D{created}"

        yield schema


def cli_json(run_cli, config: Path, *args: str) -> Any:
    result = run_cli("--config", str(config), *args, "--json")
    assert result.exit_code == 0, (args, result.stdout[-2000:], result.stderr[-2000:])
    return json.loads(result.stdout)


def views(run_cli, config: Path, url: str, company: str, scope: tuple[str, ...]) -> dict[str, Any]:
    """The company's aging, invoices and reconciliation as the CLI prints them, with our
    generated ids put by the records' refs (see `support.companies.comparable`)."""
    store = open_store(url)
    try:
        names = labels(store.for_company(company))
    finally:
        store.close()
    out = {}
    for command in (("aging", "--as-of", TODAY.isoformat()), ("invoices", "list", "--as-of", TODAY.isoformat())):
        result = run_cli("--config", str(config), *command, *scope, "--json")
        assert result.exit_code == 0, (command, result.stderr)
        out[command[0]] = comparable(result.stdout, names)
    result = run_cli("--config", str(config), "reconcile", *scope, "--json")
    assert result.exit_code == 0, result.stderr
    reconciliation = comparable(result.stdout, names)
    # Entries made in one run are listed by their id, a hash of our generated ids: the order
    # among them means nothing, so both sides are put in one order.
    for key in ("applied", "proposals"):
        reconciliation[key] = sorted(reconciliation[key], key=lambda e: json.dumps(e, sort_keys=True))
    out["reconcile"] = reconciliation
    return out


def run_alone(company: str, url: str, directory: Path, run_cli) -> Run:
    """The company's book alone, in a config of its own that names no company."""
    directory.mkdir()
    config = directory / "connector.toml"
    with Sandbox(book(company, TODAY), limits="off") as sandbox:
        config.write_text(alone_config(url, company, sandbox))
        report = cli_json(run_cli, config, "sync", "--apply")
        journal = sandbox.journal
    assert report["ok"] and report["applied"], report
    store = open_store(url)
    company_of_store = store.company  # a config that names no company keeps the default one
    store.close()
    return Run({company: journal}, {company: views(run_cli, config, url, company_of_store, ())})


def run_together(url: str, directory: Path, run_cli) -> Run:
    """Both books in one config, one company each."""
    directory.mkdir()
    config = directory / "connector.toml"
    with ExitStack() as stack:
        sandboxes = {c: stack.enter_context(Sandbox(book(c, TODAY), limits="off")) for c in COMPANIES}
        config.write_text(shared_config(url, sandboxes))
        # Without --company, `sync` runs each company in turn, with its own connections.
        reports = cli_json(run_cli, config, "sync", "--apply")["companies"]
        assert sorted(reports) == sorted(COMPANIES)
        for company, report in reports.items():
            assert report["ok"] and report["applied"], report
            assert {s["connection"].rsplit("_", 1)[1] for s in report["streams"]} == {company}
            assert {system.rsplit("_", 1)[1] for system in report["applied"]} == {company}
        journals = {c: s.journal for c, s in sandboxes.items()}
    scoped = {c: views(run_cli, config, url, c, ("--company", c)) for c in COMPANIES}
    return Run(journals, scoped)


def test_two_companies_in_one_config_keep_their_books_and_their_writes_apart(database, tmp_path, run_cli):
    books = {c: book(c, TODAY) for c in COMPANIES}
    shared = collisions(books["north"], books["south"])
    assert all(shared.values()), {k: len(v) for k, v in shared.items()}  # the books do collide
    assert len(shared["invoice numbers"]) == 60  # every number of one book is in the other

    together = run_together(database("together"), tmp_path / "together", run_cli)
    alone = {c: run_alone(c, database(f"alone_{c}"), tmp_path / f"alone_{c}", run_cli) for c in COMPANIES}
    for company, other in zip(COMPANIES, reversed(COMPANIES), strict=True):
        told, told_alone = together.journals[company], alone[company].journals[company]

        # Its sandbox was told what the book alone tells it: the same writes, to the same
        # records, with the same amounts and words.
        assert {e["provider"] for e in writes(told)} == {"stripe", "xero", "hubspot"}
        assert comparable_writes(told, books[company]) == comparable_writes(told_alone, books[company])
        # And nothing of the other book: none of its Stripe or Xero ids (customers, invoices,
        # charges, payments), and none of its payment amounts, bar those this book's own writes
        # hold when it runs alone.
        theirs = payment_amounts(books[other])
        own_values = {v for e in writes(told_alone) for v in mentions(e, theirs)}
        foreign = own_ids(books[other]) | (theirs - own_values)
        assert len(theirs - own_values) > 40
        leaked = [(e["method"], e["path"], sorted(mentions(e, foreign))) for e in writes(told) if mentions(e, foreign)]
        assert leaked == [], leaked

        # The CLI shows the company's book as it shows the book run alone, and every record it
        # names is one of the company's own.
        for command in ("aging", "invoices", "reconcile"):
            assert together.views[company][command] == alone[company].views[company][command], (company, command)
        assert "<unknown id>" not in json.dumps(together.views[company])
        assert together.views[company]["invoices"]["invoices"] and together.views[company]["reconcile"]["applied"]


def test_two_ledgers_in_a_config_that_names_no_company_are_refused_at_load(tmp_path, run_cli):
    config = tmp_path / "connector.toml"
    with ExitStack() as stack:
        sandboxes = {c: stack.enter_context(Sandbox(book(c, TODAY), limits="off")) for c in COMPANIES}
        config.write_text(unscoped_config(f"sqlite:///{tmp_path / 'state.db'}", sandboxes))
        result = run_cli("--config", str(config), "sync", "--apply")
        journals = [s.journal for s in sandboxes.values()]
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    # the file, the connection, the ledger it would share the books with, and the way out
    assert line.startswith(f"error: {config}: connections.ledger_south: "), line
    assert "'ledger_north'" in line and 'company = "NAME"' in line, line
    assert result.stdout == "" and journals == [[], []]  # refused before any system was called
    assert not (tmp_path / "state.db").exists()
