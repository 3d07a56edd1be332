"""`connector statement CUSTOMER`: a customer's statement of account, as text, JSON, HTML or PDF."""

from __future__ import annotations

import json
from pathlib import Path

import click

from connector.cli.context import AppContext, pass_app
from connector.cli.days import parse_day
from connector.errors import UsageError
from connector.model import Customer
from connector.reconcile.history import customer_book, customers_by_id
from connector.reports import match_customers
from connector.reports.statement_documents import statement_html, write_statement_pdf
from connector.reports.statements import period_start, statement, statement_text


def find_customer(customers: dict[str, Customer], query: str) -> Customer:
    """One customer by our id, a provider's id or part of the name, as `customers show` finds
    them; none or several is a usage error (several are named, with their ids)."""
    found = match_customers(customers.values(), query)
    if not found:
        raise UsageError(f"no customer {query!r} (give our id, a provider's id or part of the name)")
    if len(found) > 1:
        names = "; ".join(f"{c.name} ({c.id})" for c in found[:10])
        raise UsageError(f"{query!r} names {len(found)} customers: {names}")
    return found[0]


def _target(path: str, option: str) -> Path:
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{option}: {path} is a directory")
    if not target.parent.is_dir():
        raise UsageError(f"{option}: the folder {target.parent} does not exist")
    return target


@click.command("statement")
@click.argument("customer")
@click.option("--as-at", "as_at", metavar="DATE", help="The statement's day: the book as it stood at its end.")
@click.option(
    "--from", "start", metavar="DATE", help="Start of the period for payments and credits (default: the 1st)."
)
@click.option("--html", "html_file", metavar="FILE", help="Write the statement as an HTML page.")
@click.option("--pdf", "pdf_file", metavar="FILE", help="Write the statement as a PDF.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see docs/finance.md).")
@pass_app
def statement_command(
    app: AppContext,
    customer: str,
    as_at: str | None,
    start: str | None,
    html_file: str | None,
    pdf_file: str | None,
    as_json: bool,
) -> None:
    """A CUSTOMER's statement: open items, payments and credits in the period, unapplied cash
    and aging, per currency, in the company's name. Text on stdout unless --html or --pdf."""
    if sum(bool(x) for x in (html_file, pdf_file, as_json)) > 1:
        raise UsageError("give one of --html, --pdf or --json")
    day = parse_day(as_at, "--as-at")
    first = parse_day(start, "--from", default=period_start(day))
    if first > day:
        raise UsageError(f"--from: {first} is after the statement's day {day}")
    store = app.reader()
    chosen = find_customer(customers_by_id(store), customer)
    data = statement(app.config().display_name(), chosen, customer_book(store, chosen.id or ""), day, first)
    if html_file or pdf_file:
        option = "--html" if html_file else "--pdf"
        target = _target(html_file or pdf_file or "", option)
        try:
            if html_file:
                target.write_text(statement_html(data), encoding="utf-8")
            else:
                write_statement_pdf(data, target)
        except OSError as exc:
            raise UsageError(f"{option}: cannot write {target}: {exc.strerror or exc}") from None
        click.echo(f"statement of {chosen.name} at {day} written to {target}")
    elif as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(statement_text(data), nl=False)


COMMANDS = [statement_command]
