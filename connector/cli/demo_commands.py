"""`connector demo`, `connector sandbox serve` and `connector sandbox generate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict, cast

import click
from click.core import ParameterSource

from connector.cli.sync_commands import print_report
from connector.demo import DemoResult, run_demo
from connector.errors import EXIT_PROBLEMS, UsageError
from connector.sandbox import ListenError, SandboxDataError, read_data, serve
from connector.sandbox.generator import SIZE_NAMES, Scenario, Size, generate
from connector.sandbox.generator_traps import generate_traps
from connector.sandbox.server import LIMIT_MODES, Limits


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the demo writes connector.toml and connector.db.",
)
@click.option("--seed", default=42, show_default=True, help="Seed of the generated book.")
@click.option("--size", type=click.Choice(SIZE_NAMES), default="small", show_default=True)
@click.option(
    "--ledger",
    type=click.Choice(["xero", "quickbooks"]),
    default="xero",
    show_default=True,
    help="Which ledger keeps the book.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
def demo_command(directory: str, seed: int, size: Size, ledger: str, as_json: bool) -> int:
    """Run the whole product against the built-in sandbox: no credentials, no internet."""

    echo = (lambda _line: None) if as_json else click.echo
    result = run_demo(Path(directory), seed=seed, size=size, ledger=ledger, echo=echo)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "sync": result.sync.as_dict(),
                    "stored": result.counts,
                    "reconciliation": _reconciliation_counts(result),
                    "aging": result.aging.get("totals", []),
                    "written_back": result.applied.per_system() if result.applied else {},
                    "reminders": result.reminders,
                },
                indent=2,
                default=str,
            )
        )
        return 0 if result.sync.ok else EXIT_PROBLEMS
    click.echo("")
    click.echo("Pulled from each system:")
    print_report(result.sync)
    click.echo("")
    click.echo("Stored: " + ", ".join(f"{count} {name}" for name, count in result.counts.items()))
    counts = _reconciliation_counts(result)
    click.echo("")
    click.echo(
        f"Reconciliation: {counts['recorded_by_ledger']} payments applied as the ledger records them; "
        f"{counts['matched']} matched automatically "
        f"({', '.join(f'{n} by {r}' for r, n in counts['by_rule'].items()) or 'none'}); "
        f"{counts['proposed']} proposed for finance to decide."
    )
    if result.applied is not None:
        click.echo("")
        written = result.applied.per_system()
        detail = "; ".join(
            f"{system}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            for system, kinds in sorted(written.items())
        )
        click.echo(f"Written back ({result.planned} actions planned, each sent once): {detail or 'nothing'}")
        click.echo(
            f"Reminders sent: {result.reminders} (one per customer and step; "
            "`connector reminders plan` says who was not chased and why)"
        )
        if result.applied.failed or result.applied.parked:
            click.echo(
                f"  {len(result.applied.failed)} to retry, "
                f"{len(result.applied.parked)} parked: see `connector actions list`"
            )
    if result.aging.get("totals"):
        buckets = list(result.aging["buckets"])
        click.echo("")
        click.echo(f"Aging on {result.aging['as_of']} (open balances per currency; `connector aging` per customer):")
        click.echo("  " + f"{'currency':<9}" + "".join(f"{b:>13}" for b in [*buckets, "total"]))
        for row in result.aging["totals"]:
            click.echo("  " + f"{row['currency']:<9}" + "".join(f"{row[b]:>13}" for b in [*buckets, "total"]))
    where = result.directory.resolve()
    hint = "" if where == Path.cwd().resolve() else f" --config {result.config_path}"
    click.echo("")
    click.echo(
        f"The database is in {where / 'connector.db'}; try `connector{hint} "
        "reconcile`, `invoices list`, `aging` or `explain INV-0001`."
    )
    return 0 if result.sync.ok else EXIT_PROBLEMS


class _ReconciliationCounts(TypedDict):
    recorded_by_ledger: int
    matched: int
    by_rule: dict[str, int]
    proposed: int


def _reconciliation_counts(result: DemoResult) -> _ReconciliationCounts:
    summary = result.reconciliation
    by_rule: dict[str, int] = {}
    for allocation in summary.applied if summary else []:
        by_rule[allocation.rule] = by_rule.get(allocation.rule, 0) + 1
    return {
        "recorded_by_ledger": summary.ledger if summary else 0,
        "matched": len({a.payment_id for a in summary.applied}) if summary else 0,
        "by_rule": dict(sorted(by_rule.items())),
        "proposed": len(summary.proposals) if summary else 0,
    }


@click.group("sandbox")
def sandbox_group() -> None:
    """Fake Stripe, Xero, HubSpot and QuickBooks Online on loopback, for trying the connector and for tests."""


# The books `--size` names: the ordinary sizes, and the labelled trap book (docs/scenarios.md).
BOOKS = (*SIZE_NAMES, "traps")


def _book(seed: int, size: str) -> Scenario:
    return generate_traps(seed) if size == "traps" else generate(seed, cast(Size, size))


@sandbox_group.command("generate")
@click.option("--seed", type=int, required=True, help="Seed of the book.")
@click.option("--size", type=click.Choice(BOOKS), default="small", show_default=True, help="Which book.")
@click.option("--data", "data_file", type=click.Path(dir_okay=False), required=True, help="Where the book goes.")
@click.option("--truth", "truth_file", type=click.Path(dir_okay=False), required=True, help="Where its truth goes.")
def sandbox_generate(seed: int, size: str, data_file: str, truth_file: str) -> None:
    """Write a generated book (the providers' own shapes) and its ground truth, for `serve --data`."""

    scenario = _book(seed, size)
    try:
        scenario.write(data_file, truth_file)
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename}: {exc.strerror or exc}") from None
    payments = scenario.truth["summary"]["payments"]
    click.echo(f"{size} book of seed {seed}: {payments} payments; data in {data_file}, truth in {truth_file}")


@sandbox_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option(
    "--data",
    "data_file",
    type=click.Path(dir_okay=False, exists=True),
    help="A JSON book in the providers' own shapes (see docs/sandbox.md).",
)
@click.option(
    "--seed",
    type=int,
    help="Generate a book with this seed instead of --data (Stripe, Xero and HubSpot; QuickBooks stays empty).",
)
@click.option(
    "--size",
    type=click.Choice(BOOKS),
    default="small",
    show_default=True,
    help="With --seed: how big a book to generate ('traps': the labelled trap book).",
)
@click.option("--latency-ms", default=0.0, show_default=True, help="Delay added to every request.")
@click.option("--limits", type=click.Choice(LIMIT_MODES), default="documented", show_default=True)
@click.option("--fail-rate", default=0.0, show_default=True, help="Share of requests answered with a fault.")
@click.option(
    "--search-delay",
    "search_delay",
    default=0.0,
    show_default=True,
    metavar="S",
    help="Seconds before a created HubSpot object shows in search (HubSpot's index trails writes).",
)
@click.option(
    "--truth",
    "truth_file",
    type=click.Path(dir_okay=False),
    help="With --seed: also write the book's ground truth to this file.",
)
def sandbox_serve(
    host: str,
    port: int,
    data_file: str | None,
    seed: int | None,
    size: str,
    latency_ms: float,
    limits: Limits,
    fail_rate: float,
    search_delay: float,
    truth_file: str | None,
) -> None:
    """Serve the sandbox until Ctrl-C (or SIGTERM)."""

    if data_file and seed is not None:
        raise UsageError("give --data FILE or --seed N, not both")
    if seed is None and click.get_current_context().get_parameter_source("size") is not ParameterSource.DEFAULT:
        raise UsageError("--size needs --seed: it sizes the book generated from that seed")
    if not 0 <= fail_rate < 1:
        raise UsageError("--fail-rate must be at least 0 and below 1")
    if latency_ms < 0:
        raise UsageError("--latency-ms cannot be negative")
    if search_delay < 0:
        raise UsageError("--search-delay cannot be negative")
    if truth_file and seed is None:
        raise UsageError("--truth needs --seed")
    data: dict[str, Any] | None = None
    if data_file:
        try:
            data = read_data(data_file)
        except SandboxDataError as exc:
            raise UsageError(f"--data {data_file}: {exc}") from None
    if seed is not None:
        scenario = _book(seed, size)
        data = scenario.data
        if truth_file:
            try:
                Path(truth_file).write_text(json.dumps(scenario.truth, indent=1, default=str), encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"--truth {truth_file}: cannot write it: {exc.strerror or exc}") from None
    try:
        serve(
            host,
            port,
            data,
            latency_ms,
            limits,
            fail_rate,
            seed=seed or 0,
            search_delay_s=search_delay,
            echo=click.echo,
        )
    except ListenError as exc:
        raise UsageError(str(exc)) from None


COMMANDS = [demo_command, sandbox_group]
