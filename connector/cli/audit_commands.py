"""`connector audit list`: who did what, when, about which record, across the company's book."""

from __future__ import annotations

import json
import sys

import click

from connector.cli.context import AppContext, pass_app
from connector.cli.days import parse_day, start_of
from connector.errors import UsageError
from connector.exports import write_csv
from connector.reconcile.history import customers_by_id
from connector.reports.audit_trail import Names, audit_rows
from connector.reports.statements import table_lines
from connector.state import outbox
from connector.state import reconciliation as decisions
from connector.state.history import audit_actions, audit_log

CSV_HEADERS = ["seq", "at", "user", "action", "subject_type", "subject_id", "about", "reason"]


@click.group("audit")
def audit_group() -> None:
    """The audit log: every decision and change the connector and its users made."""


@audit_group.command("list")
@click.option("--user", metavar="U", help="Only entries by this user or actor (case-insensitive).")
@click.option("--since", metavar="DATE", help="Only entries on or after this day (YYYY-MM-DD, UTC).")
@click.option("--action", "actions", metavar="A", multiple=True, help="Only this action (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see docs/finance.md).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV output (text cells safe to open in a spreadsheet).")
@click.option("--excel", is_flag=True, help="With --csv: a UTF-8 BOM and CRLF line ends, for Excel.")
@pass_app
def audit_list(
    app: AppContext,
    user: str | None,
    since: str | None,
    actions: tuple[str, ...],
    as_json: bool,
    as_csv: bool,
    excel: bool,
) -> None:
    """Audit entries, oldest first: when, who, what, and the record it is about in words."""
    if as_json and as_csv:
        raise UsageError("give --json or --csv, not both")
    if excel and not as_csv:
        raise UsageError("--excel goes with --csv")
    if user is not None and not user.strip():
        raise UsageError("--user: give a user name")
    moment = start_of(parse_day(since, "--since")) if since is not None else None
    store = app.reader()
    with store.session() as session:
        entries = audit_log(session, actor=user, since=moment, actions=actions or None)
        known_actions = audit_actions(session) if not entries else []
        allocations = {
            s.allocation.id or "": (s.allocation.payment_id, s.allocation.invoice_id)
            for s in decisions.load_allocations(session)
        }
        proposals = {p["id"]: p["payment_id"] for p in decisions.load_proposals(session, status=None)}
        summaries = {str(e.id): e.summary or e.action.kind for e in outbox.entries(session)}
    names = Names(
        customers=customers_by_id(store),
        invoices={i.id: i for i in store.list_receivables() if i.id},
        payments={p.id: p for p in store.list_payments() if p.id},
        allocations=allocations,
        proposals=proposals,
        actions=summaries,
    )
    rows = audit_rows(entries, names)
    if as_json:
        click.echo(json.dumps({"entries": rows}, indent=2, default=str))
        return
    if as_csv:
        write_csv(
            sys.stdout,
            CSV_HEADERS,
            [
                [
                    r["seq"],
                    r["at"],
                    r["user"],
                    r["action"],
                    r["subject"]["type"],
                    r["subject"]["id"],
                    r["about"],
                    r["reason"],
                ]
                for r in rows
            ],
            excel=excel,
        )
        return
    if not rows:
        recorded = ", ".join(known_actions) or "none yet"
        click.echo(f"no audit entries match (actions recorded in this book: {recorded})")
        return
    for line in table_lines(
        ["at", "user", "action", "about", "reason"],
        [[(r["at"] or "")[:19], r["user"], r["action"], r["about"], r["reason"] or ""] for r in rows],
    ):
        click.echo(line)
    click.echo(f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")


COMMANDS = [audit_group]
