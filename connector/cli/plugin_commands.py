"""`connector plugin new NAME --kind ledger|crm|gateway [--dir PATH]`: scaffold a provider plugin."""

from __future__ import annotations

from pathlib import Path

import click

from connector.errors import EXIT_USAGE
from connector.scaffold import ScaffoldError, write_plugin


@click.group("plugin")
def plugin_group() -> None:
    """Provider plugins: scaffold a new one (see docs/plugins.md)."""


@plugin_group.command("new")
@click.argument("name")
@click.option("--kind", type=click.Choice(["ledger", "crm", "gateway"]), required=True, help="What the provider is.")
@click.option(
    "--dir", "directory", type=click.Path(path_type=Path), help="Where to write it (default ./connector-NAME)."
)
def plugin_new(name: str, kind: str, directory: Path | None) -> int:
    """Write a ready-to-install plugin package for provider NAME."""

    target = directory or Path(f"connector-{name}")
    try:
        written = write_plugin(name, kind, target)
    except ScaffoldError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_USAGE
    click.echo(f"wrote {len(written)} files to {target}")
    click.echo(f"next: pip install -e {target} && (cd {target} && pytest tests/)")
    return 0


COMMANDS = [plugin_group]
