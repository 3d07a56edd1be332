"""`connector plan`, `connector apply` and `connector actions list|retry|cancel`."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from datetime import datetime
from typing import Any

import click

from connector.actors import current_user
from connector.cli.context import AppContext, pass_app
from connector.cli.reconcile_commands import settlement_lines
from connector.errors import EXIT_PROBLEMS, UsageError
from connector.pipeline import plan
from connector.state import outbox
from connector.writeback.apply import ApplyReport, Deferral, apply, cancel, pending, retry, state_of
from connector.writeback.settle import is_reversal


def _entry_json(entry: outbox.OutboxEntry) -> dict[str, Any]:
    action = entry.action
    return {
        "id": entry.id,
        "state": action.state,
        "connection": action.connection,
        "kind": action.kind,
        "target": None
        if action.target is None
        else {"system": action.target.system, "type": action.target.object_type, "id": action.target.remote_id},
        "payload": action.payload,
        "idempotency_key": action.idempotency_key,
        "summary": entry.summary,
        "subject": {"type": entry.subject_type, "id": entry.subject_id},
        "attempts": entry.attempts,
        "last_error": entry.last_error,
        "next_attempt_at": entry.next_attempt_at.isoformat() if entry.next_attempt_at else None,
        "result": entry.result,
        "reverse": is_reversal(entry),
        "reverses": entry.action.payload.get("reverses") if is_reversal(entry) else None,
    }


def print_entries(entries: list[outbox.OutboxEntry], *, empty: str) -> None:
    if not entries:
        click.echo(empty)
        return
    by_system: dict[str, list[outbox.OutboxEntry]] = defaultdict(list)
    for entry in entries:
        by_system[entry.action.connection].append(entry)
    for system, items in sorted(by_system.items()):
        click.echo(f"{system} ({len(items)}):")
        for entry in items:
            click.echo(f"  #{entry.id:<5} {entry.action.kind:<18} {entry.summary or entry.action.payload}")
            if entry.last_error and entry.attempts == 0:  # never tried: why it waits (a spent daily limit)
                click.echo(f"         {entry.last_error}")
            elif entry.last_error:
                click.echo(f"         last error (attempt {entry.attempts}): {entry.last_error}")
            if entry.action.state == "planned" and entry.next_attempt_at:
                click.echo(f"         next attempt at {local_time(entry.next_attempt_at)}")


def local_time(moment: datetime) -> str:
    """A moment as this machine's local time, to the second (how every command prints one)."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


@click.command("plan")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def plan_command(app: AppContext, as_json: bool) -> None:
    """Derive the writes each system needs and show every pending one, per system."""
    plan(app.config(), app.store())
    entries = pending(app.store())
    if as_json:
        click.echo(json.dumps({"pending": [_entry_json(e) for e in entries]}, indent=2, default=str))
    else:
        print_entries(entries, empty="nothing to write back: every system agrees with the ledger")


@click.command("apply")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--only", "only", multiple=True, metavar="SYSTEM", help="Only this connection (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def apply_command(app: AppContext, yes: bool, only: tuple[str, ...], as_json: bool) -> int:
    """Send the pending writes, each exactly once, with its idempotency key."""
    config = app.config()
    for name in only:
        config.connection(name)  # an unknown name is a usage error naming the valid ones
    waiting = pending(app.store(), list(only) or None)
    if not waiting:
        if as_json:
            click.echo(json.dumps({"done": [], "failed": [], "parked": []}))
        else:
            click.echo("nothing to apply")
        return 0
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"{len(waiting)} writes are pending; run `connector plan` "
                "to see them and `connector apply --yes` to send them"
            )
        print_entries(waiting, empty="")
        click.confirm(f"Send these {len(waiting)} writes?", abort=True)
    report = apply(config, app.store(), only=list(only) or None)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "done": [_entry_json(e) for e in report.done],
                    "replayed": report.replayed,
                    "failed": [{**_entry_json(e), "error": m} for e, m in report.failed],
                    "parked": [{**_entry_json(e), "error": m} for e, m in report.parked],
                    "deferred": deferrals_json(report),
                },
                indent=2,
                default=str,
            )
        )
    else:
        for system, kinds in sorted(report.per_system().items()):
            click.echo(f"{system}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
        if not (report.done or report.failed or report.parked or report.deferred):
            click.echo("nothing due now: " + "; ".join(_why_nothing_is_due(waiting)))
        print_apply_problems(report)
    return EXIT_PROBLEMS if report.failed or report.parked else 0


def _why_nothing_is_due(waiting: list[outbox.OutboxEntry]) -> list[str]:
    """Pending writes none of which was due: each kind counted once, with its first moment."""
    later = [e for e in waiting if e.action.state == "planned" and e.next_attempt_at]
    # never tried: they wait for a connection's spent limit (as `print_entries` says)
    held = sorted(e.next_attempt_at for e in later if e.next_attempt_at and e.attempts == 0)
    retried = sorted(e.next_attempt_at for e in later if e.next_attempt_at and e.attempts > 0)
    busy = sum(1 for e in waiting if e.action.state == "in_flight")
    parts = [f"{len(held)} writes wait for a spent rate limit, the first until {local_time(held[0])}"] if held else []
    parts += [f"{len(retried)} writes wait to be retried, the first at {local_time(retried[0])}"] if retried else []
    parts += [f"{busy} are being sent by another worker"] if busy else []
    return parts or ["every pending write was taken by another worker"]


def deferrals_json(report: ApplyReport) -> dict[str, dict[str, Any]]:
    """Per connection whose writes wait for its limit: until when, why, and how many wait
    (`waiting` = `actions` handed back by this run + `queued` behind them)."""
    return {
        name: {
            "until": d.until.isoformat(),
            "reason": d.reason,
            "waiting": d.waiting,
            "actions": d.actions,
            "queued": d.queued,
        }
        for name, d in report.deferred.items()
    }


def print_apply_problems(report: ApplyReport) -> None:
    """The writes of an apply that were not done: to retry, parked, or waiting for a limit."""
    for entry, message in report.failed:
        click.echo(f"will retry #{entry.id} {entry.action.kind}: {message}")
    for entry, message in report.parked:
        click.echo(f"parked #{entry.id} {entry.action.kind} for a person: {message}")
    for name, deferral in sorted(report.deferred.items()):
        click.echo(deferral_line(name, deferral))


def deferral_line(name: str, deferral: Deferral) -> str:
    """`ledger: 7 writes wait until ... (1 handed back by this run, 6 already queued; none
    counted as a failed attempt): reason`; the counts add up to the writes that wait."""
    writes = "1 write waits" if deferral.waiting == 1 else f"{deferral.waiting} writes wait"
    parts = [f"{deferral.actions} handed back by this run"]
    if deferral.queued:
        parts.append(f"{deferral.queued} already queued")
    return (
        f"{name}: {writes} until {local_time(deferral.until)} ({', '.join(parts)}; "
        f"none counted as a failed attempt): {deferral.reason}"
    )


@click.group("actions")
def actions_group() -> None:
    """The outbox of writes to the providers."""


@actions_group.command("list")
@click.option("--failed", is_flag=True, help="Only actions parked after their last attempt.")
@click.option("--all", "show_all", is_flag=True, help="Also done and cancelled ones.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def actions_list(app: AppContext, failed: bool, show_all: bool, as_json: bool) -> None:
    """Pending (or failed, or all) actions."""
    states = ("failed",) if failed else None if show_all else ("planned", "in_flight", "failed")
    with app.store().session() as session:
        entries = outbox.entries(session, states=states)
    if as_json:
        click.echo(json.dumps({"actions": [_entry_json(e) for e in entries]}, indent=2, default=str))
    else:
        print_entries(entries, empty="no actions")


@actions_group.command("retry")
@click.argument("action_id", type=int)
@pass_app
def actions_retry(app: AppContext, action_id: int) -> None:
    """Put a parked action back in the queue (its attempts start again)."""
    if not retry(app.store(), action_id):
        state = state_of(app.store(), action_id)
        raise UsageError(
            f"action #{action_id} is {state.replace('_', ' ')}: only a failed or waiting action can be queued again"
        )
    click.echo(f"#{action_id} queued again; `connector apply` sends it")


@actions_group.command("cancel")
@click.argument("action_id", type=int)
@click.option("--user", help="Who cancels (default: the OS user).")
@click.option(
    "--keep-decision",
    is_flag=True,
    help="For a payment, fee or mark-paid: keep the allocation behind it; `drift` lists the difference.",
)
@pass_app
def actions_cancel(app: AppContext, action_id: int, user: str | None, keep_decision: bool) -> None:
    """Cancel a planned or failed action: it is never sent. Cancelling a ledger payment or fee
    also takes back the match behind it (the payment returns as a proposal), unless
    --keep-decision."""
    done = cancel(app.config(), app.store(), action_id, current_user(user), keep_decision=keep_decision)
    if not done.cancelled:
        state = state_of(app.store(), action_id)
        raise UsageError(
            f"action #{action_id} is {state.replace('_', ' ')}: only a planned or failed action can be cancelled"
        )
    click.echo(f"#{action_id} cancelled")
    for allocation in done.withdrawn:
        click.echo(
            f"took back {allocation.id} ({allocation.amount} of payment {allocation.payment_id} to invoice "
            f"{allocation.invoice_id}); the payment returns as a proposal (`connector reconcile`)"
        )
    if done.settlement is not None:
        for line in settlement_lines(done.settlement):
            click.echo(line)
    if done.gap is not None:
        click.echo(f"gap recorded ({done.gap.kind}): {done.gap.reason}; `connector drift` lists it")


COMMANDS = [plan_command, apply_command, actions_group]
