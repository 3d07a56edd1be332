"""`connector plan`, `connector apply` and `connector actions list|retry|cancel`."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any

import click

from connector.actors import current_user
from connector.cli.context import AppContext, pass_app
from connector.errors import EXIT_PROBLEMS, UsageError
from connector.pipeline import plan
from connector.state import outbox
from connector.writeback.apply import apply, cancel, pending, retry, state_of


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
                click.echo(f"         next attempt at {_when(entry.next_attempt_at)}")


def _when(moment: Any) -> str:
    return str(moment.astimezone().strftime("%Y-%m-%d %H:%M:%S"))


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
                    "deferred": {
                        name: {"until": d.until.isoformat(), "reason": d.reason, "actions": d.actions}
                        for name, d in report.deferred.items()
                    },
                },
                indent=2,
                default=str,
            )
        )
    else:
        for system, kinds in sorted(report.per_system().items()):
            click.echo(f"{system}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
        if not (report.done or report.failed or report.parked or report.deferred):
            later = sorted(e.next_attempt_at for e in waiting if e.action.state == "planned" and e.next_attempt_at)
            parts = [f"{len(later)} writes wait to be retried, the first at {_when(later[0])}"] if later else []
            busy = sum(1 for e in waiting if e.action.state == "in_flight")
            parts += [f"{busy} are being sent by another worker"] if busy else []
            click.echo("nothing due now: " + "; ".join(parts or ["every pending write was taken by another worker"]))
        for entry, message in report.failed:
            click.echo(f"will retry #{entry.id} {entry.action.kind}: {message}")
        for entry, message in report.parked:
            click.echo(f"parked #{entry.id} {entry.action.kind} for a person: {message}")
        for name, deferral in sorted(report.deferred.items()):
            click.echo(
                f"{name}: writes wait until {_when(deferral.until)} (none counted as failed; "
                f"{deferral.actions} handed back): {deferral.reason}"
            )
    return EXIT_PROBLEMS if report.failed or report.parked else 0


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
@pass_app
def actions_cancel(app: AppContext, action_id: int, user: str | None) -> None:
    """Cancel a planned or failed action: it is never sent."""
    if not cancel(app.store(), action_id, current_user(user)):
        state = state_of(app.store(), action_id)
        raise UsageError(
            f"action #{action_id} is {state.replace('_', ' ')}: only a planned or failed action can be cancelled"
        )
    click.echo(f"#{action_id} cancelled")


COMMANDS = [plan_command, apply_command, actions_group]
