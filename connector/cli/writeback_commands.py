"""`connector plan`, `connector apply` and `connector actions list|retry|cancel`."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

from connector import reports
from connector.actors import current_user
from connector.cli.context import AppContext, pass_app
from connector.cli.days import local_time
from connector.cli.reconcile_commands import settlement_lines
from connector.cli.streaming import echo_json_rows
from connector.errors import EXIT_PROBLEMS, UsageError
from connector.http.ratelimit import STOPPING
from connector.pipeline import plan_if_changed
from connector.state import outbox
from connector.writeback.apply import (
    ApplyReport,
    Deferral,
    Hold,
    apply,
    cancel,
    each_pending,
    pending_by_connection,
    pending_counts,
    retry,
    retry_connection,
    state_of,
)
from connector.writeback.settle import is_reversal

logger = logging.getLogger(__name__)


def _entry_json(entry: outbox.OutboxEntry) -> dict[str, Any]:
    action = entry.action
    return {
        "id": entry.id,
        "state": action.state,
        "connection": action.connection,
        "kind": action.kind,
        "target": None if action.target is None else reports.ref_row(action.target),
        "payload": action.payload,
        "idempotency_key": action.idempotency_key,
        "summary": entry.summary,
        "subject": {"type": entry.subject_type, "id": entry.subject_id},
        "attempts": entry.attempts,
        "last_error": entry.last_error,
        # a write held for its connection's credential has no time: it waits for a new one
        "next_attempt_at": entry.next_attempt_at.isoformat()
        if entry.next_attempt_at and not outbox.is_held(entry)
        else None,
        "waits_for": "credential" if outbox.is_held(entry) else None,
        "result": None if outbox.is_held(entry) else entry.result,
        "reverse": is_reversal(entry),
        "reverses": entry.action.payload.get("reverses") if is_reversal(entry) else None,
    }


def print_entries(entries: list[outbox.OutboxEntry], *, empty: str) -> None:
    by_system: dict[str, list[outbox.OutboxEntry]] = defaultdict(list)
    for entry in entries:
        by_system[entry.action.connection].append(entry)
    print_by_system(((s, len(items), iter(items)) for s, items in sorted(by_system.items())), empty=empty)


def print_by_system(systems: Iterable[tuple[str, int, Iterable[outbox.OutboxEntry]]], *, empty: str) -> None:
    """Each system's writes under its name and count, a line or a few each, as they come."""
    shown = False
    for system, count, entries in systems:
        shown = True
        click.echo(f"{system} ({count}):")
        for entry in entries:
            _print_entry(entry)
    if not shown:
        click.echo(empty)


def _print_entry(entry: outbox.OutboxEntry) -> None:
    click.echo(f"  #{entry.id:<5} {entry.action.kind:<18} {entry.summary or entry.action.payload}")
    if entry.last_error and (entry.attempts == 0 or outbox.is_held(entry)):  # never tried: why it waits
        click.echo(f"         {entry.last_error}")
    elif entry.last_error:
        click.echo(f"         last error (attempt {entry.attempts}): {entry.last_error}")
    if outbox.is_held(entry):
        return  # its note says what it waits for: a new credential
    if entry.action.state == "planned" and entry.next_attempt_at:
        click.echo(f"         next attempt at {local_time(entry.next_attempt_at)}")


@click.command("plan")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--full", is_flag=True, help="Derive every write again even when nothing changed since the last plan.")
@pass_app
def plan_command(app: AppContext, as_json: bool, full: bool) -> None:
    """Derive the writes each system needs and show every pending one, per system. With
    nothing changed since the last plan (the book, the day, the settings), nothing is derived
    again: the pending writes are as it left them."""
    skipped = plan_if_changed(app.config(), app.store(), full=full)
    if skipped is not None:
        click.echo(
            f"nothing changed since the plan of {local_time(skipped.last_run)}: the pending writes are as it "
            "left them (--full derives them again)",
            err=True,
        )
    if as_json:  # a write a line, as they are read: a large book queues hundreds of thousands
        head = {} if skipped is None else {"unchanged_since": skipped.last_run.isoformat(timespec="seconds")}
        echo_json_rows(head, "pending", map(_entry_json, each_pending(app.store())), dict)
    else:
        empty = "nothing to write back: every system agrees with the ledger"
        print_by_system(pending_by_connection(app.store()), empty=empty)


@click.command("apply")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--only", "only", multiple=True, metavar="SYSTEM", help="Only this connection (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--claim-size",
    type=click.IntRange(min=1, max=10_000),
    default=20,
    show_default=True,
    help="Writes one claim takes from a connection that sends them one at a time (one that takes "
    "batches claims four batches' worth); smaller claims spread a short queue over more workers.",
)
@pass_app
def apply_command(app: AppContext, yes: bool, only: tuple[str, ...], as_json: bool, claim_size: int) -> int:
    """Send the pending writes, each exactly once, with its idempotency key."""
    config = app.config()
    for name in only:
        config.connection(name)  # an unknown name is a usage error naming the valid ones
    # counted, not read: a large book's plan queues hundreds of thousands
    waiting = sum(pending_counts(app.store(), list(only) or None).values())
    if not waiting:
        if as_json:
            click.echo(json.dumps({"done": [], "failed": [], "parked": []}))
        else:
            click.echo("nothing to apply")
        return 0
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"{waiting} writes are pending; run `connector plan` "
                "to see them and `connector apply --yes` to send them"
            )
        print_by_system(pending_by_connection(app.store(), list(only) or None), empty="")
        click.confirm(f"Send these {waiting} writes?", abort=True)
    with stop_on_signals() as stop:
        report = apply(config, app.store(), only=list(only) or None, stop=stop, batch=claim_size)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "done": [_entry_json(e) for e in report.done],
                    "replayed": report.replayed,
                    "failed": [{**_entry_json(e), "error": m} for e, m in report.failed],
                    "parked": [{**_entry_json(e), "error": m} for e, m in report.parked],
                    "deferred": deferrals_json(report),
                    "held": holds_json(report),
                    "stopped": report.stopped,
                    "released": report.released,
                },
                indent=2,
                default=str,
            )
        )
    else:
        for system, kinds in sorted(report.per_system().items()):
            click.echo(f"{system}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
        if not (report.done or report.failed or report.parked or report.deferred or report.held or report.stopped):
            click.echo(
                "nothing due now: " + "; ".join(_why_nothing_is_due(each_pending(app.store(), list(only) or None)))
            )
        print_apply_problems(report)
    if report.stopped:
        click.echo(
            f"stopped: the write in flight was finished and recorded, {report.released} claimed writes went back "
            "to the queue unsent; `connector apply` sends them",
            err=True,
        )
    return EXIT_PROBLEMS if report.failed or report.parked else 0


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT while the block runs (the handlers before are put
    back after it): the apply loop finishes the request in flight, hands back the rest of its
    claim and returns, so the process exits 0 within seconds (systemd's `TimeoutStopSec`)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach the main thread only
        return

    def handler(signum: int, _frame: object) -> None:
        logger.warning("received %s: finishing the write in flight, then stopping", signal.Signals(signum).name)
        stop.set()
        STOPPING.set()  # a request waiting for its rate-limit slot is not sent

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        STOPPING.clear()


def _why_nothing_is_due(waiting: Iterable[outbox.OutboxEntry]) -> list[str]:
    """Pending writes none of which was due: each kind counted once, with its first moment
    (one pass, none held)."""
    limited: list[datetime] = []  # never tried: they wait for a connection's spent limit (`print_entries`)
    retried: list[datetime] = []
    busy = 0
    refused: set[str] = set()
    for entry in waiting:
        if outbox.is_held(entry):
            refused.add(entry.action.connection)
        elif entry.action.state == "in_flight":
            busy += 1
        elif entry.action.state == "planned" and entry.next_attempt_at:
            (limited if entry.attempts == 0 else retried).append(entry.next_attempt_at)
    first = local_time(min(limited)) if limited else ""
    parts = [f"{len(limited)} writes wait for a spent rate limit, the first until {first}"] if limited else []
    parts += [f"{len(retried)} writes wait to be retried, the first at {local_time(min(retried))}"] if retried else []
    parts += [f"{busy} are being sent by another worker"] if busy else []
    parts += (
        [f"the writes to {', '.join(sorted(refused))} wait for a new credential (`connector actions list`)"]
        if refused
        else []
    )
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


def holds_json(report: ApplyReport) -> dict[str, dict[str, Any]]:
    """Per connection whose writes wait for a new credential: why, and how many wait."""
    return {
        name: {"reason": h.reason, "waiting": h.waiting, "actions": h.actions, "queued": h.queued}
        for name, h in report.held.items()
    }


def print_apply_problems(report: ApplyReport) -> None:
    """The writes of an apply that were not done: to retry, parked, or waiting for a limit
    or a new credential."""
    for entry, message in report.failed:
        click.echo(f"will retry #{entry.id} {entry.action.kind}: {message}")
    for entry, message in report.parked:
        click.echo(f"parked #{entry.id} {entry.action.kind} for a person: {message}")
    for name, deferral in sorted(report.deferred.items()):
        click.echo(deferral_line(name, deferral))
    for name, count in sorted(report.resumed.items()):
        click.echo(f"{name}: its credential changed; {count} writes held for it were due again")
    for name, hold in sorted(report.held.items()):
        click.echo(hold_line(name, hold))


def hold_line(name: str, hold: Hold) -> str:
    """`crm: 12 writes wait for a new credential (none counted as a failed attempt): reason`."""
    writes = "1 write waits" if hold.waiting == 1 else f"{hold.waiting} writes wait"
    return f"{name}: {writes} for a new credential (none counted as a failed attempt): {hold.reason}"


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
    with app.reader().session() as session:
        entries = outbox.entries(session, states=states)
    if as_json:
        click.echo(json.dumps({"actions": [_entry_json(e) for e in entries]}, indent=2, default=str))
    else:
        print_entries(entries, empty="no actions")


@actions_group.command("retry")
@click.argument("action_id", type=int, required=False)
@click.option(
    "--connection",
    metavar="NAME",
    help="Instead of one action: every write held for NAME's refused credential (once it is fixed).",
)
@click.option("--user", help="Who queues them again (default: the OS user).")
@pass_app
def actions_retry(app: AppContext, action_id: int | None, connection: str | None, user: str | None) -> None:
    """Put a parked action back in the queue (its attempts start again), or with --connection
    the writes held for a connection's refused credential."""
    if (action_id is None) == (connection is None):
        raise UsageError("give an ACTION_ID or --connection NAME (one of them)")
    if connection is not None:
        count = retry_connection(app.config(), app.store(), connection, current_user(user))
        if not count:
            click.echo(f"no write of {connection} waits for its credential")
            return
        click.echo(f"{count} writes of {connection} queued again; `connector apply` sends them")
        return
    assert action_id is not None
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
