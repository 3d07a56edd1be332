"""Collections states finance sets by hand: `dispute`, `promise`, `plan-payments`, `pause` (and
`reminders`). A state set here wins over the one a provider holds (a CRM property, a ledger
field), which fills it otherwise."""

from __future__ import annotations

from datetime import date

import click

from connector.cli.context import AppContext, pass_app
from connector.cli.streaming import echo_json_rows
from connector.connections import system_ranks
from connector.dunning.collections import describe_plan, set_dispute, set_pause, set_payment_plan, set_promise
from connector.dunning.policy import parse_every
from connector.dunning.run import build_plan
from connector.errors import UsageError


def _crm_systems(app: AppContext) -> list[str]:
    return [name for name, (kind, _) in system_ranks(app.config()).items() if kind == "crm"]


def _date_option(option: str, value: str | None) -> date | None:
    """The date an option names (YYYY-MM-DD), None when not given; else a one-line usage error."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option}: {value!r} is not a date like 2026-12-31") from None


@click.command("dispute")
@click.argument("invoice")
@click.option("--clear", is_flag=True, help="The dispute is settled: remind again.")
@click.option("--reason", default="", help="Why (kept in the audit log and the CRM note).")
@click.option("--user", help="Who (default: the OS user).")
@pass_app
def dispute_command(app: AppContext, invoice: str, clear: bool, reason: str, user: str | None) -> None:
    """Mark INVOICE disputed: no reminder goes out for it until cleared."""
    found = set_dispute(
        app.store(), invoice, disputed=not clear, reason=reason, user=user, crm_systems=_crm_systems(app)
    )
    click.echo(
        f"{found.number or found.id}: {'dispute cleared' if clear else 'disputed'}; "
        "a CRM note is queued (`connector apply`)"
    )


@click.command("promise")
@click.argument("invoice")
@click.option("--date", "promised", metavar="YYYY-MM-DD", help="The date the customer promised to pay by.")
@click.option("--clear", is_flag=True, help="Forget the promise.")
@click.option("--reason", default="")
@click.option("--user", help="Who (default: the OS user).")
@pass_app
def promise_command(
    app: AppContext, invoice: str, promised: str | None, clear: bool, reason: str, user: str | None
) -> None:
    """Record a promise to pay: no reminder for INVOICE before that date."""
    if clear == bool(promised):
        raise UsageError("give --date YYYY-MM-DD, or --clear")
    day = _date_option("--date", promised)
    found = set_promise(app.store(), invoice, promised=day, user=user, reason=reason, crm_systems=_crm_systems(app))
    click.echo(f"{found.number or found.id}: " + (f"promised by {day}" if day else "promise cleared"))


@click.command("pause")
@click.argument("customer")
@click.option("--resume", is_flag=True, help="Resume reminders for the customer.")
@click.option("--reason", default="")
@click.option("--user", help="Who (default: the OS user).")
@pass_app
def pause_command(app: AppContext, customer: str, resume: bool, reason: str, user: str | None) -> None:
    """Pause all reminders to CUSTOMER (our id, a provider's id or the name)."""
    found = set_pause(app.store(), customer, paused=not resume, user=user, reason=reason, crm_systems=_crm_systems(app))
    click.echo(f"{found.name}: reminders {'resumed' if resume else 'paused'}")


@click.command("plan-payments")
@click.argument("invoice")
@click.option(
    "--instalments",
    "count",
    type=click.IntRange(min=1, max=120),
    metavar="N",
    help="How many instalments the open balance is split in (equal shares, the last takes the rounding).",
)
@click.option("--every", metavar="PERIOD", help="How far apart: month, week, fortnight, quarter, or 14d, 2w, 2m.")
@click.option("--first", metavar="YYYY-MM-DD", help="The first instalment's date (default today).")
@click.option("--clear", is_flag=True, help="Take the invoice off its plan: reminders follow the policy again.")
@click.option("--reason", default="", help="Why (kept in the audit log and the CRM note).")
@click.option("--user", help="Who (default: the OS user).")
@pass_app
def plan_payments_command(
    app: AppContext,
    invoice: str,
    count: int | None,
    every: str | None,
    first: str | None,
    clear: bool,
    reason: str,
    user: str | None,
) -> None:
    """Put INVOICE on a payment plan: no reminder while its instalments are paid on time.

    What the invoice still owes is split in N instalments, the first on --first, then one
    every PERIOD. A plan that falls behind (an instalment unpaid the day after its date) is
    reminded at the invoice's own step."""

    if clear and (count or every or first):
        raise UsageError("give --clear alone, or --instalments N --every PERIOD")
    if not clear and not (count and every):
        raise UsageError("give --instalments N --every PERIOD (and --first YYYY-MM-DD), or --clear")
    period = None
    if every:
        try:
            period = parse_every(every)
        except ValueError as exc:
            raise UsageError(f"--every: {exc}") from None
    start = _date_option("--first", first)
    found, plan = set_payment_plan(
        app.store(),
        invoice,
        count=None if clear else count,
        every=period,
        first=start,
        user=user,
        reason=reason,
        crm_systems=_crm_systems(app),
    )
    label = found.number or found.id
    if plan is None:
        click.echo(f"{label}: payment plan cleared; reminders follow the policy again")
        return
    paid_before = 1 if len(plan.instalments) > (count or 0) else 0
    click.echo(
        f"{label}: payment plan of {describe_plan(plan, paid_before)} ({period}); no reminder while it is paid on time"
    )


COMMANDS = [dispute_command, promise_command, plan_payments_command, pause_command]


@click.group("reminders")
def reminders_group() -> None:
    """Dunning: who gets reminded of what, and why not."""


@reminders_group.command("plan")
@click.option("--as-of", "as_of", metavar="YYYY-MM-DD", help="Plan as on this day (default today).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def reminders_plan(app: AppContext, as_of: str | None, as_json: bool) -> None:
    """Preview the reminders due (consolidated per customer) and every skip with its reason.
    Nothing is queued: `connector plan` queues them."""

    day = _date_option("--as-of", as_of) or date.today()
    plan = build_plan(app.config(), app.store(), day)
    if as_json:  # a skip a line: a large book skips tens of thousands of invoices a day
        head = {
            "as_of": day.isoformat(),
            "reminders": [
                {
                    "customer": r.customer_id,
                    "step": r.step.days,
                    "tone": r.step.tone,
                    "channel": r.step.channel,
                    "invoices": list(r.invoices),
                    "balances": {c: str(m.amount) for c, m in r.balances.items()},
                    "late_fees": [
                        {"invoice": i, "amount": str(m.amount), "currency": m.currency} for i, m in r.late_fees
                    ],
                    "escalate": r.escalate,
                    "escalated_invoices": list(r.escalated_invoices),
                    "text": r.text,
                }
                for r in plan.reminders
            ],
            "for_a_person": [
                {"kind": f.kind, "customer": f.customer_id, "invoice": f.invoice_id, "text": f.text, "via": f.via}
                for f in plan.follow_ups
            ],
        }
        skips = (
            {"invoice": s.invoice_id, "customer": s.customer_id, "code": s.code, "reason": s.reason} for s in plan.skips
        )
        actions = [
            {"connection": a.connection, "kind": a.kind, "summary": summary} for a, _, _, summary in plan.actions
        ]
        echo_json_rows(head, "skips", skips, lambda: {"actions": actions})
        return
    click.echo(f"Reminders due on {day} ({len(plan.reminders)}):")
    for reminder in plan.reminders:
        click.echo("  " + reminder.text.replace("\n", "\n    "))
    click.echo("")
    if plan.follow_ups:
        click.echo(f"For a person ({len(plan.follow_ups)}):")
        for follow_up in plan.follow_ups:
            how = (
                f"a {follow_up.via}"
                if follow_up.via
                else "no CRM task: only this list and the audit log (`connector explain`)"
            )
            click.echo(f"  {follow_up.kind:<22} {follow_up.text} [{how}]")
        click.echo("")
    click.echo(f"Not reminded ({len(plan.skips)}):")
    for skip in plan.skips:
        if skip.code != "paid_or_void":
            click.echo(f"  {skip.code:<22} {skip.reason}")
    paid = sum(1 for s in plan.skips if s.code == "paid_or_void")
    if paid:
        click.echo(f"  and {paid} paid or void invoices")


COMMANDS.append(reminders_group)
