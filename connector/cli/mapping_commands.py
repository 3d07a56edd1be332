"""`connector mappings show|check`: print and validate the effective mappings."""

from __future__ import annotations

import json
from typing import Any

import click

from connector.cli.context import AppContext, pass_app
from connector.connections import mapper_for, mapping_location
from connector.errors import EXIT_USAGE, ConfigError
from connector.mappings.mapper import load_mapping


@click.group("mappings")
def mappings_group() -> None:
    """Provider mappings: raw payload fields to canonical fields."""


def _config_option(function: Any) -> Any:
    """`mappings show|check --config PATH`: the same as the global `connector --config PATH`."""
    return click.option("--config", "config_option", metavar="PATH", help="Config file (same as the global --config).")(
        function
    )


def _use_config(app: AppContext, config_option: str | None) -> None:
    if config_option is not None:
        app.config_option = config_option
        app._config = None


@mappings_group.command("show")
@click.argument("provider")
@click.option("--connection", "connection_name", help="Show that connection's effective mapping, overrides included.")
@_config_option
@pass_app
def mappings_show(app: AppContext, provider: str, connection_name: str | None, config_option: str | None) -> None:
    """Print the mapping of PROVIDER (as JSON)."""
    _use_config(app, config_option)
    if connection_name:
        connection = app.root_config().connection(connection_name)
        if connection.provider != provider:
            raise ConfigError(f"connection {connection_name!r} uses provider {connection.provider!r}, not {provider!r}")
        mapper = mapper_for(connection)
    else:
        mapper = load_mapping(mapping_location(provider), connection=provider)
    click.echo(json.dumps(mapper.spec.model_dump(mode="json", exclude_none=True), indent=2))


@mappings_group.command("check")
@_config_option
@pass_app
def mappings_check(app: AppContext, config_option: str | None) -> int:
    """Validate the effective mapping of every configured connection."""
    _use_config(app, config_option)
    config = app.root_config()
    failed = False
    for connection in config.connections.values():
        try:
            mapper = mapper_for(connection)
        except ConfigError as exc:
            failed = True
            click.echo(f"error    {connection.name}: {exc}")
            continue
        overridden = " (with overrides)" if connection.settings.mapping else ""
        click.echo(
            f"ok       {connection.name}: {connection.provider} mapping, {len(mapper.spec.streams)} streams{overridden}"
        )
    if not config.connections:
        click.echo("no connections configured")
    return EXIT_USAGE if failed else 0


COMMANDS = [mappings_group]
