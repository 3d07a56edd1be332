"""`connector remap`: apply a changed mapping to the stored book without asking any provider."""

from __future__ import annotations

import json

import click

from connector import pipeline
from connector.cli.context import AppContext, pass_app
from connector.errors import EXIT_PROBLEMS, UsageError
from connector.sync import RemapReport, remappable_streams


@click.command("remap")
@click.option("--connection", "connections", multiple=True, metavar="NAME", help="Only this connection (repeatable).")
@click.option("--stream", "streams", multiple=True, metavar="S", help="Only this stream (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
@pass_app
def remap_command(app: AppContext, connections: tuple[str, ...], streams: tuple[str, ...], as_json: bool) -> int:
    """Map the stored raw payloads again through the current mapping (with the config's
    overrides) and store them as a sync would, then link; no provider request is made.

    Records stored before raw payloads were kept are left as they are and counted: `connector
    sync --full --connection C` brings them back with theirs."""
    config = app.config()
    chosen = [config.connection(name) for name in connections] or list(config.connections.values())
    known = sorted({s for connection in chosen for s in remappable_streams(connection)})
    unknown = [s for s in streams if s not in known]
    if unknown:
        raise UsageError(f"no stream named {unknown[0]!r} (streams: {', '.join(known) or 'none'})")
    store = app.store()
    report = pipeline.remap(config, store, connections=connections, streams=streams)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        _print_report(report)
    return 0 if report.ok else EXIT_PROBLEMS


def _print_report(report: RemapReport) -> None:
    for s in report.streams:
        line = f"{s.connection}/{s.stream}: {s.records} remapped, {s.stored} stored"
        if s.skipped:
            line += f", {s.skipped} skipped (the mapping cannot read them)"
        click.echo(line)
        for error in s.errors:
            click.echo(f"  skipped: {error}")
    for connection, count in report.without_raw.items():
        click.echo(
            f"{count} records have no raw payload (stored before this version): "
            f"run `connector sync --full --connection {connection}` to keep them"
        )
    linked = sum(sum(rules.values()) for rules in report.links.values())
    click.echo(f"linked {linked} records" if linked else "no new links")


COMMANDS = [remap_command]
