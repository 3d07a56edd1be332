"""`connector companies list`: the companies of the deployment, their connections and how
recent their books are."""

from __future__ import annotations

import json
from typing import Any

import click

from connector.cli.context import AppContext, pass_app
from connector.cli.days import local_time
from connector.config import Config, Connection
from connector.errors import ConnectorError
from connector.providers.registry import installed
from connector.state.companies import Activity, activity


@click.group("companies")
def companies_group() -> None:
    """The companies whose books this deployment keeps (see `company = ` in the config)."""


@companies_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def companies_list(app: AppContext, as_json: bool) -> None:
    """Each company: its legal name, its connections and when it was last synced."""
    config = app.root_config()
    books = {name: _activity(app, name) for name in config.company_names()}
    rows = [_company_row(config, name, seen) for name, seen in books.items()]
    if as_json:
        click.echo(json.dumps({"companies": rows}, indent=2))
        return
    for number, (row, seen) in enumerate(zip(rows, books.values(), strict=True)):
        if number:
            click.echo("")
        _print_company(row, seen)


def _activity(app: AppContext, company: str) -> Activity:
    with app.store(company).session() as session:
        return activity(session)


def _company_row(config: Config, name: str, seen: Activity) -> dict[str, Any]:
    declared = config.companies.get(name)
    return {
        "company": name,
        "legal_name": declared.legal_name if declared is not None else None,
        "connections": [_connection_row(c) for c in config.company_connections(name).values()],
        "last_sync": seen.last_sync.isoformat() if seen.last_sync is not None else None,
        "last_sync_status": seen.status,
        "customers": seen.customers,
        "invoices": seen.invoices,
        "payments": seen.payments,
    }


def _connection_row(connection: Connection) -> dict[str, str | None]:
    try:
        kind: str | None = installed().get(connection.provider).kind
    except ConnectorError:  # a broken plugin: `connector doctor` says why
        kind = None
    return {"name": connection.name, "provider": connection.provider, "kind": kind}


def _print_company(row: dict[str, Any], seen: Activity) -> None:
    legal = f"  {row['legal_name']}" if row["legal_name"] else ""
    click.echo(f"{row['company']}{legal}")
    connections = ", ".join(f"{c['name']} ({c['provider']} {c['kind'] or 'unknown kind'})" for c in row["connections"])
    click.echo(f"  connections: {connections or 'none (no connection names this company)'}")
    last = "never" if seen.last_sync is None else local_time(seen.last_sync)
    if seen.status is not None:
        last += f" ({seen.status})"
    click.echo(f"  last sync:   {last}")
    click.echo(f"  book:        {row['customers']} customers, {row['invoices']} invoices, {row['payments']} payments")


def print_company_heading(config: Config, company: str, *, first: bool) -> None:
    """The line opening one company's part of a command's output (`--company all`, or a sync
    of several companies), a blank line before every one but the first."""
    if not first:
        click.echo("")
    shown = config.display_name(company)
    click.echo(f"=== company {company}" + (f" ({shown})" if shown != company else "") + " ===")


COMMANDS = [companies_group]
