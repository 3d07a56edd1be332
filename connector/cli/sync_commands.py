"""`connector sync`: pull what changed from every connection into the state store."""

from __future__ import annotations

import json
from typing import Any

import click

from connector.cli.main import AppContext, pass_app
from connector.cli.progress import SyncProgress
from connector.cli.writeback_commands import print_entries
from connector.errors import EXIT_PROBLEMS, UsageError
from connector.reconcile_engine import run_reconciliation
from connector.sync import SyncEngine, SyncReport
from connector.writeback import apply, pending, plan


@click.command("sync")
@click.option("--connection", "connections", multiple=True, metavar="NAME", help="Only this connection (repeatable).")
@click.option("--stream", "streams", multiple=True, metavar="S", help="Only this stream (repeatable).")
@click.option("--full", is_flag=True, help="Ignore saved cursors and pull everything again.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
@click.option("--apply", "then_apply", is_flag=True, help="Then reconcile, plan and send the writes (no prompt).")
@click.option("--dry-run", is_flag=True, help="Then reconcile and plan, and print the writes without sending them.")
@pass_app
def sync_command(
    app: AppContext, connections: tuple[str, ...], streams: tuple[str, ...], full: bool, as_json: bool,
    then_apply: bool, dry_run: bool,
) -> int:
    """Pull -> map -> store for every configured connection, resuming from saved cursors."""
    if then_apply and dry_run:
        raise UsageError("give --apply or --dry-run, not both")
    config = app.config()
    # Progress goes to stderr: a live line on a terminal, else plain lines (JSON ones with
    # `--log-format json`), whatever -v says; stdout keeps the report (pure JSON with --json).
    root = click.get_current_context().find_root()
    progress = SyncProgress(log_format=root.params.get("log_format") or "text")
    report: SyncReport | None = None
    try:
        report = SyncEngine(config, app.store(), progress=progress).run(connections=connections, streams=streams, full=full)
    finally:
        progress.finish(report)
    result: dict[str, Any] = report.as_dict()
    problems = not report.ok
    if then_apply or dry_run:
        summary = run_reconciliation(config, app.store())
        plan(config, app.store())
        waiting = pending(app.store())
        result["reconciliation"] = {"applied": len(summary.applied), "proposals": len(summary.proposals)}
        result["plan"] = [e.summary for e in waiting]
        if then_apply:
            applied = apply(config, app.store())
            result["applied"] = applied.per_system()
            problems = problems or bool(applied.failed or applied.parked)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return EXIT_PROBLEMS if problems else 0
    print_report(report)
    if dry_run:
        click.echo("")
        click.echo("Would write (dry run):")
        print_entries(waiting, empty="  nothing")
    if then_apply:
        click.echo("")
        for system, kinds in sorted(result["applied"].items()):
            click.echo(f"wrote to {system}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    return EXIT_PROBLEMS if problems else 0


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
