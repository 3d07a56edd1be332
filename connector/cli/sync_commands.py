"""`connector sync`: pull what changed from every connection into the state store."""

from __future__ import annotations

import json

import click

from connector.cli.main import AppContext, pass_app
from connector.cli.progress import SyncProgress
from connector.errors import EXIT_PROBLEMS
from connector.sync import SyncEngine, SyncReport


@click.command("sync")
@click.option("--connection", "connections", multiple=True, metavar="NAME", help="Only this connection (repeatable).")
@click.option("--stream", "streams", multiple=True, metavar="S", help="Only this stream (repeatable).")
@click.option("--full", is_flag=True, help="Ignore saved cursors and pull everything again.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
@pass_app
def sync_command(app: AppContext, connections: tuple[str, ...], streams: tuple[str, ...], full: bool, as_json: bool) -> int:
    """Pull -> map -> store for every configured connection, resuming from saved cursors."""
    config = app.config()
    progress = SyncProgress()
    try:
        report = SyncEngine(config, app.store(), progress=progress).run(connections=connections, streams=streams, full=full)
    finally:
        progress.finish()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        print_report(report)
    return 0 if report.ok else EXIT_PROBLEMS


def print_report(report: SyncReport) -> None:
    if not report.streams:
        click.echo("nothing to sync: no connections configured (see `connector init`)")
        return
    click.echo(f"{'connection':<12} {'stream':<22} {'status':<9} {'pages':>6} {'records':>8} {'stored':>8} {'skipped':>8} {'secs':>7}")
    for s in report.streams:
        click.echo(
            f"{s.connection:<12} {s.stream:<22} {s.status:<9} {s.pages:>6} {s.records:>8} {s.stored:>8} {s.skipped:>8} {s.seconds:>7.2f}"
        )
        for line in s.notes + s.errors:
            click.echo(f"    {line}")
    for kind, rules in report.links.items():
        if rules:
            detail = ", ".join(f"{count} by {rule}" for rule, count in sorted(rules.items()))
            click.echo(f"linked {kind} records across systems: {detail}")


COMMANDS = [sync_command]
