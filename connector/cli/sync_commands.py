"""`connector sync`: pull what changed from every connection into the state store."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from connector import pipeline
from connector.cli.company_commands import print_company_heading
from connector.cli.context import AppContext, pass_app
from connector.cli.days import local_time
from connector.cli.progress import SyncProgress
from connector.cli.writeback_commands import deferrals_json, print_apply_problems, print_entries
from connector.errors import EXIT_PROBLEMS, ConfigError, ConnectorError, UsageError, exit_code
from connector.pipeline import Then
from connector.redaction import redact
from connector.sync import StreamReport, SyncReport


@click.command("sync")
@click.option("--connection", "connections", multiple=True, metavar="NAME", help="Only this connection (repeatable).")
@click.option("--stream", "streams", multiple=True, metavar="S", help="Only this stream (repeatable).")
@click.option("--full", is_flag=True, help="Ignore saved cursors and pull everything again.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
@click.option("--apply", "then_apply", is_flag=True, help="Then reconcile, plan and send the writes (no prompt).")
@click.option("--dry-run", is_flag=True, help="Then reconcile and plan, and print the writes without sending them.")
@pass_app
def sync_command(
    app: AppContext,
    connections: tuple[str, ...],
    streams: tuple[str, ...],
    full: bool,
    as_json: bool,
    then_apply: bool,
    dry_run: bool,
) -> int:
    """Pull -> map -> store for every configured connection, resuming from saved cursors.

    With several companies and no --company, each company runs in turn (in name order), with
    its own connections and book; with --connection only, the connections' companies."""
    if then_apply and dry_run:
        raise UsageError("give --apply or --dry-run, not both")
    then: Then = "apply" if then_apply else "plan" if dry_run else "sync"
    chosen = _companies_to_sync(app, connections)
    if len(chosen) == 1:
        ((company, names),) = chosen.items()
        result, problems = _sync_company(app, company, names, streams, full, then, as_json=as_json)
        if as_json:
            click.echo(json.dumps(result, indent=2, default=str))
        return EXIT_PROBLEMS if problems else 0
    app.root_store()  # a database or key problem stops the whole run at once, in one line
    results: dict[str, dict[str, Any]] = {}
    worst = 0
    for number, (company, names) in enumerate(chosen.items()):
        if not as_json:
            print_company_heading(app.root_config(), company, first=number == 0)
        try:
            results[company], problems = _sync_company(app, company, names, streams, full, then, as_json=as_json)
            code = EXIT_PROBLEMS if problems else 0
        except ConnectorError as exc:  # one company's failure does not keep the others from running
            code = exit_code(exc)
            message = redact(str(exc), shapes=not isinstance(exc, ConfigError))
            results[company] = {"error": message, "exit_code": code}
            click.echo(f"error: company {company}: {message}", err=True)
        worst = max(worst, code)
    if as_json:
        click.echo(json.dumps({"companies": results}, indent=2, default=str))
    return worst


def _companies_to_sync(app: AppContext, connections: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """company -> the connections to sync in it (empty: all of its own), in name order. With
    --company: that company, whose connections every --connection must be; else the companies
    of the --connection ones, else every company."""
    config = app.root_config()
    if app.company_option:
        company = app.company()
        for name in connections:
            owner = config.connection(name).company
            if owner != company:
                raise UsageError(f"--connection {name}: it belongs to company {owner!r}, not {company!r}")
        return {company: connections}
    if connections:
        by_company: dict[str, tuple[str, ...]] = {}
        for name in connections:
            owner = config.connection(name).company
            by_company[owner] = (*by_company.get(owner, ()), name)
        return dict(sorted(by_company.items()))
    return {company: () for company in config.company_names()}


def _sync_company(
    app: AppContext,
    company: str,
    connections: tuple[str, ...],
    streams: tuple[str, ...],
    full: bool,
    then: Then,
    *,
    as_json: bool,
) -> tuple[dict[str, Any], bool]:
    """One company's run (its own config and book): the JSON result, and whether it has
    problems; the text report printed unless `as_json`."""
    # Progress goes to stderr: a live line on a terminal, else plain lines (JSON ones with
    # `--log-format json`), whatever -v says; stdout keeps the report (pure JSON with --json).
    root = click.get_current_context().find_root()
    progress = SyncProgress(log_format=root.params.get("log_format") or "text")
    finished: list[SyncReport] = []

    def synced(report: SyncReport) -> None:
        finished.append(report)
        progress.finish(report)

    try:
        run = pipeline.run(
            app.config(company),
            app.store(company),
            then=then,
            connections=connections,
            streams=streams,
            full=full,
            progress=progress,
            on_synced=synced,
        )
    finally:
        if not finished:
            progress.finish(None)
    report = run.sync
    result: dict[str, Any] = report.as_dict()
    problems = not report.ok
    waiting = run.queued
    if run.reconciliation is not None:
        result["reconciliation"] = {
            "applied": len(run.reconciliation.applied),
            "proposals": len(run.reconciliation.proposals),
        }
        result["plan"] = [e.summary for e in waiting]
    if run.applied is not None:
        result["applied"] = run.applied.per_system()
        result["deferred_writes"] = deferrals_json(run.applied)
        problems = problems or bool(run.applied.failed or run.applied.parked)
    if as_json:
        return result, problems
    print_report(report)
    if then == "plan":
        click.echo("")
        click.echo("Would write (dry run):")
        print_entries(waiting, empty="  nothing")
    if run.applied is not None:
        click.echo("")
        for system, kinds in sorted(result["applied"].items()):
            click.echo(f"wrote to {system}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
        print_apply_problems(run.applied)
    return result, problems


def print_report(report: SyncReport) -> None:
    if not report.streams:
        click.echo("nothing to sync: no connections configured (see `connector init`)")
        return
    click.echo(
        f"{'connection':<12} {'stream':<22} {'status':<9} {'pages':>6} "
        f"{'records':>8} {'stored':>8} {'skipped':>8} {'secs':>7}"
    )
    for s in report.streams:
        click.echo(
            f"{s.connection:<12} {s.stream:<22} {s.status:<9} {s.pages:>6} "
            f"{s.records:>8} {s.stored:>8} {s.skipped:>8} {s.seconds:>7.2f}"
        )
        for line in s.notes + s.errors:
            click.echo(f"    {line}")
    for kind, rules in report.links.items():
        if rules:
            detail = ", ".join(f"{count} by {rule}" for rule, count in sorted(rules.items()))
            click.echo(f"linked {kind} records across systems: {detail}")
    unfinished = problem_lines(report)
    if unfinished:
        click.echo("")
        click.echo("Not finished (exit code 1):")
        for line in unfinished:
            click.echo(f"  {line}")


def problem_lines(report: SyncReport) -> list[str]:
    """Why the run has problems, a line per stream: deferred (until when), failed (why), or
    with records skipped. Empty when the run is ok."""
    lines = []
    for s in report.streams:
        name = f"{s.connection}/{s.stream}"
        if s.status == "deferred":
            lines.append(
                f"{name} deferred {_until(s)} by the provider's rate limit; what was stored is kept, "
                "and a later run resumes from the saved cursor"
            )
        elif s.status == "failed":
            reason = s.errors[-1] if s.errors else "no reason given"
            lines.append(f"{name} failed: {reason}")
        if s.skipped:
            records = "record" if s.skipped == 1 else "records"
            lines.append(f"{name}: {s.skipped} {records} skipped, the mapping could not read them (listed above)")
    return lines


def _until(stream: StreamReport) -> str:
    if stream.deferred_until is None:
        return "until the limit resets (the provider named no time)"
    return f"until {local_time(datetime.fromisoformat(stream.deferred_until))}"


COMMANDS = [sync_command]
