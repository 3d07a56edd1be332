"""`connector reconcile` and finance's decisions on it: accept, reject, match, unmatch.

`--json` shape (stable, documented with an example in docs/finance.md): {"applied": [entry...],
"proposals": [entry + {"id", "payment_unapplied", "invoices", "candidates": [entry + {"rank",
"invoices"}...]}], "summary": {...}} where an entry is {"status": "applied"|"proposed"|"candidate",
"payment": {"id", "refs": [{"system", "type", "id"}]}, "invoice": {"id", "number", "refs": [...]},
"amount": "12.340", "currency": "KWD", "rule", "confidence", "reason"} (applied ones add "id" and
"confirmed_by").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

import click

from connector import reports
from connector.cli.context import AppContext, pass_app
from connector.cli.days import local_time
from connector.cli.review import (
    SORTS,
    ProposalView,
    check_customer,
    confidence_option,
    describe,
    ordered,
    proposal_views,
    run_review,
    select,
)
from connector.cli.streaming import echo_json_rows
from connector.errors import UsageError
from connector.model import Allocation
from connector.money import Money
from connector.pipeline import EngineSkip, reconcile_if_changed
from connector.reconcile.decisions import accept_proposal, match, reject_proposal, reopen_proposal, unmatch
from connector.reconcile.run import ReconcileSummary
from connector.reconcile.types import LEDGER_RULE
from connector.state import reconciliation as decisions
from connector.state.store import Store
from connector.writeback.settle import Settlement, Settler


class _Describe:
    """Refs and numbers of the payments and invoices a batch of entries names, read for that
    batch alone (never the book's), and only those: not the records themselves."""

    def __init__(self, store: Store, payment_ids: Iterable[str], invoice_ids: Iterable[str]) -> None:
        with store.session() as session:
            self.numbers = store.receivable_numbers(sorted(set(invoice_ids)), session=session)
            self.invoice_refs = store.ref_ids_of("invoice", sorted(self.numbers), session=session)
            self.payment_refs = store.ref_ids_of("payment", sorted(set(payment_ids)), session=session)

    def payment(self, payment_id: str) -> dict[str, Any]:
        return {"id": payment_id, "refs": reports.ref_id_rows(self.payment_refs.get(payment_id, []))}

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        return {
            "id": invoice_id,
            "number": self.numbers.get(invoice_id),
            "refs": reports.ref_id_rows(self.invoice_refs.get(invoice_id, [])),
        }


def _entry(
    describe: _Describe,
    status: str,
    payment_id: str,
    invoice_id: str,
    amount: Money | str,
    currency: str,
    rule: str,
    confidence: Any,
    reason: str,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "status": status,
        "payment": describe.payment(payment_id),
        "invoice": describe.invoice(invoice_id),
        "amount": str(amount.amount if isinstance(amount, Money) else amount),
        "currency": currency,
        "rule": rule,
        "confidence": str(confidence),
        "reason": reason,
        **extra,
    }


def _candidate(describe: _Describe, payment_id: str, candidate: dict[str, Any], rank: int) -> dict[str, Any]:
    """One ranked way to apply a proposal's payment, with the fields of an allocation: the
    first is what the proposal proposes (`proposed`), the others are `candidate`s. `invoice` is
    the first (usually only) invoice, `invoices` each invoice with its share, `amount` the total."""
    currency = candidate["currency"]
    shares = [Money.of(a, currency) for a in candidate["amounts"]]
    return {
        "rank": rank,
        **_entry(
            describe,
            "proposed" if rank == 1 else "candidate",
            payment_id,
            candidate["invoice_ids"][0],
            sum(shares, Money.zero(currency)),
            currency,
            candidate["rule"],
            candidate["confidence"],
            candidate["reason"],
        ),
        "invoices": [
            {"invoice": describe.invoice(i), "amount": str(a.amount)}
            for i, a in zip(candidate["invoice_ids"], shares, strict=True)
        ],
    }


# Applied allocations read (with their payments' and invoices' refs) a batch at a time.
REPORT_BATCH = 1000


def applied_entries(store: Store, *, with_ledger: bool = True) -> Iterator[dict[str, Any]]:
    """Every applied allocation as the report's entry, in the order they were made, read
    `REPORT_BATCH` at a time with the refs of their own payments and invoices: the report of a
    large book in a batch's memory. Without `with_ledger`, the ledger's own records are left
    out (what the text report lists unless -a)."""
    with store.session() as session:
        ids = decisions.allocation_ids(session, status="applied", other_than=None if with_ledger else LEDGER_RULE)
    for start in range(0, len(ids), REPORT_BATCH):
        with store.session() as session:
            stored = decisions.load_allocations(session, status="applied", ids=ids[start : start + REPORT_BATCH])
        chunk = [s.allocation for s in stored]
        describe = _Describe(store, [a.payment_id for a in chunk], [a.invoice_id for a in chunk])
        for a in chunk:
            yield _entry(
                describe,
                "applied",
                a.payment_id,
                a.invoice_id,
                a.amount,
                a.amount.currency,
                a.rule,
                a.confidence,
                a.reason,
                id=a.id,
                confirmed_by=a.confirmed_by,
            )


def proposal_entries(store: Store) -> list[dict[str, Any]]:
    """Every open proposal as the report's entry, its candidates ranked."""
    with store.session() as session:
        proposals = decisions.load_proposals(session)
    describe = _Describe(
        store,
        [p["payment_id"] for p in proposals],
        [i for p in proposals for c in p["candidates"] for i in c["invoice_ids"]],
    )
    out = []
    for proposal in proposals:
        left = Money.from_minor(int(proposal["amount_minor"]), proposal["currency"])
        candidates = [
            _candidate(describe, proposal["payment_id"], c, rank)
            for rank, c in enumerate(proposal["candidates"], start=1)
        ]
        # Without a candidate (a possible duplicate kept as credit) the proposal still says
        # whose payment it is and what it holds; `note` says why nothing can be accepted.
        top = (
            {k: v for k, v in candidates[0].items() if k != "rank"}
            if candidates
            else {
                "status": "proposed",
                "payment": describe.payment(proposal["payment_id"]),
                "invoice": None,
                "amount": str(left.amount),
                "currency": left.currency,
                "rule": None,
                "confidence": None,
                "reason": proposal.get("note") or "",
            }
        )
        out.append(
            {
                **top,
                "id": proposal["id"],
                "payment_unapplied": str(left.amount),
                "note": proposal.get("note"),
                "candidates": candidates,
            }
        )
    return out


def run_summary(summary: ReconcileSummary | None, open_proposals: int) -> dict[str, int]:
    """What this run did (nothing, when it was skipped) and what is open."""
    return {
        "applied_this_run": len(summary.applied) if summary else 0,
        "ledger_recorded_this_run": summary.ledger if summary else 0,
        "reversed_this_run": summary.reversed if summary else 0,
        "open_proposals": open_proposals,
        "unmatched_payments": len(summary.unmatched) if summary else 0,
    }


def print_reconcile(store: Store, views: list[ProposalView], *, verbose: bool = False) -> None:
    with store.session() as session:
        ledger = decisions.count_allocations(session, status="applied", rule=LEDGER_RULE)
    click.echo(f"Applied allocations ({ledger} more recorded by the ledger itself; -v lists them):")
    shown = 0
    for a in applied_entries(store, with_ledger=verbose):
        shown += 1
        click.echo(
            f"  {a['id']}  {_label(a['payment'])} -> {a['invoice']['number'] or a['invoice']['id']}  "
            f"{a['amount']} {a['currency']}  {a['rule']} ({a['confidence']})"
        )
        click.echo(f"      {a['reason']}")
    if not shown:
        click.echo("  none")
    click.echo("")
    click.echo(f"Open proposals ({len(views)}): `connector reconcile accept ID` or `reject ID`, or `reconcile review`")
    for view in views:
        for line in describe(view):
            click.echo(f"  {line}")


def _label(payment: dict[str, Any]) -> str:
    refs = payment["refs"]
    return ",".join(r["id"] for r in refs) if refs else payment["id"]


_sort = click.option(
    "--sort", type=click.Choice(SORTS), help="Order of the proposals (default: oldest proposal first)."
)
_customer = click.option("--customer", help="Only proposals for this customer (name or id), payer or invoice.")
_rule = click.option("--rule", help="Only proposals whose best candidate comes from this rule.")
_min_confidence = click.option(
    "--min-confidence",
    callback=confidence_option,
    help="Only proposals whose best candidate is at least this sure (0-1).",
)


def _views(
    app: AppContext, customer: str | None, rule: str | None, min_confidence: Decimal | None, sort: str | None = None
) -> list[ProposalView]:
    check_customer(app.store(), customer)
    chosen = select(proposal_views(app.store()), customer=customer, rule=rule, min_confidence=min_confidence)
    return ordered(chosen, sort)


@click.group("reconcile", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (shape in docs/finance.md).")
@click.option("-a", "--all", "show_all", is_flag=True, help="Also list the allocations the ledger records itself.")
@click.option("--full", is_flag=True, help="Match the whole book again even when nothing changed since the last run.")
@_sort
@_customer
@_rule
@_min_confidence
@pass_app
@click.pass_context
def reconcile_group(
    ctx: click.Context,
    app: AppContext,
    as_json: bool,
    show_all: bool,
    full: bool,
    sort: str | None,
    customer: str | None,
    rule: str | None,
    min_confidence: Decimal | None,
) -> None:
    """Match payments to invoices on what is stored; show applied allocations and proposals
    (filtered and sorted with --customer, --rule, --min-confidence, --sort). With nothing
    changed since the last run (the book, the day, the settings), nothing is matched again."""
    if ctx.invoked_subcommand is not None:
        return
    store = app.store()
    done = reconcile_if_changed(app.config(), store, full=full)
    summary = None if isinstance(done, EngineSkip) else done
    if isinstance(done, EngineSkip):
        click.echo(
            f"nothing changed since the reconcile of {local_time(done.last_run)}: nothing matched again (--full does)",
            err=True,
        )
    views = _views(app, customer, rule, min_confidence, sort)
    if not as_json:
        print_reconcile(store, views, verbose=show_all)
        return
    proposals = proposal_entries(store)
    by_id = {p["id"]: p for p in proposals}
    tail: dict[str, Any] = {
        "proposals": [by_id[v.id] for v in views if v.id in by_id],
        "summary": run_summary(summary, len(proposals)),
    }
    if isinstance(done, EngineSkip):
        tail["unchanged_since"] = done.last_run.isoformat(timespec="seconds")
    echo_json_rows({}, "applied", applied_entries(store), lambda: tail)


_user = click.option("--user", help="Who decides (default: the OS user); kept in the audit log.")
_reason = click.option("--reason", default="", help="Why; kept in the audit log.")
_force = click.option(
    "--force",
    is_flag=True,
    help="Keep the decision even where a write already sent cannot be taken back "
    "(a task is filed for a person and `drift` reports the difference).",
)


def print_settlement(settler: Settler) -> None:
    """What the decision did to the outbox: writes cancelled, reversals planned, gaps recorded."""
    for settlement in settler.settlements:
        for line in settlement_lines(settlement):
            click.echo(line)


def settlement_lines(settlement: Settlement) -> list[str]:
    lines = [f"cancelled #{e.id} {e.action.kind} (not sent): {e.summary or ''}" for e in settlement.cancelled]
    lines += [f"planned {p.summary}" for p in settlement.reversals]
    for gap in settlement.gaps:
        task = f"; {gap.task}" if gap.task else "; no CRM company to file a task on"
        lines.append(f"gap recorded ({gap.kind}): {gap.reason}{task}; `connector drift` lists it")
    if settlement.reversals:
        lines.append("`connector plan` shows the reversals, `connector apply` sends them")
    return lines


def _one_or_all(proposal_id: str | None, every: bool) -> None:
    if every and proposal_id:
        raise click.UsageError("give a PROPOSAL_ID or --all, not both")
    if not every and not proposal_id:
        raise click.UsageError("give a PROPOSAL_ID, or --all with filters")


def _decide_all(
    views: list[ProposalView],
    dry_run: bool,
    verb: str,
    decide: Callable[[ProposalView], list[str]],
    settler: Settler,
) -> None:
    """Decide each proposal in turn (each in its own transaction); one refused is reported and
    the others still decided, and the command then exits 1."""
    if dry_run:
        click.echo(f"would {verb} {len(views)} proposal(s) (dry run: nothing changed):")
        for view in views:
            click.echo(f"  {describe(view)[0]}")
            click.echo(f"  {describe(view)[1].strip()}")
        return
    refused = 0
    for view in views:
        try:
            lines = decide(view)
        except UsageError as exc:
            refused += 1
            click.echo(f"not {verb}ed {view.id}: {exc}", err=True)
            continue
        for line in lines:
            click.echo(line)
    print_settlement(settler)
    click.echo(f"{verb}ed {len(views) - refused} of {len(views)} proposal(s)")
    if refused:
        raise click.exceptions.Exit(1)


def _applied_lines(store: Store, made: list[Allocation]) -> list[str]:
    """A line per allocation made, naming its invoice by number (only those invoices read)."""
    ids = sorted({a.invoice_id for a in made})
    read = store.list_receivables(ids=ids, with_lines=False, with_refs=False) if ids else []
    numbers = {i.id: i.number for i in read if i.number}
    return [f"applied {a.id}: {a.amount} to invoice {numbers.get(a.invoice_id, a.invoice_id)}" for a in made]


@reconcile_group.command("accept")
@click.argument("proposal_id", required=False)
@click.option("--candidate", default=1, show_default=True, help="Which ranked candidate to accept.")
@click.option("--all", "every", is_flag=True, help="Accept the best candidate of every proposal the filters select.")
@_customer
@_rule
@_min_confidence
@click.option("--dry-run", is_flag=True, help="With --all: list what would be accepted, change nothing.")
@_user
@_reason
@pass_app
def accept_command(
    app: AppContext,
    proposal_id: str | None,
    candidate: int,
    every: bool,
    customer: str | None,
    rule: str | None,
    min_confidence: Decimal | None,
    dry_run: bool,
    user: str | None,
    reason: str,
) -> None:
    """Accept a proposal (its first candidate unless --candidate N), or with --all and
    --min-confidence every proposal whose best candidate matches the filters."""
    _one_or_all(proposal_id, every)
    store = app.store()
    settler = Settler(app.config(), store)
    if proposal_id:
        made = accept_proposal(store, proposal_id, settle=settler, candidate=candidate, user=user, reason=reason)
        for line in _applied_lines(store, made):
            click.echo(line)
        print_settlement(settler)
        return
    if min_confidence is None:
        raise click.UsageError("--all needs --min-confidence, so nothing is accepted blindly")
    if candidate != 1:
        raise click.UsageError("--all accepts each proposal's best candidate; --candidate is for one proposal")

    def decide(view: ProposalView) -> list[str]:
        made = accept_proposal(store, view.id, settle=settler, user=user, reason=reason)
        return [f"accepted {view.id} ({view.payer}, {view.amount})", *_applied_lines(store, made)]

    _decide_all(_views(app, customer, rule, min_confidence), dry_run, "accept", decide, settler)


@reconcile_group.command("reject")
@click.argument("proposal_id", required=False)
@click.option("--all", "every", is_flag=True, help="Reject every proposal whose best candidate matches the filters.")
@_customer
@_rule
@_min_confidence
@click.option("--dry-run", is_flag=True, help="With --all: list what would be rejected, change nothing.")
@_user
@_reason
@_force
@pass_app
def reject_command(
    app: AppContext,
    proposal_id: str | None,
    every: bool,
    customer: str | None,
    rule: str | None,
    min_confidence: Decimal | None,
    dry_run: bool,
    user: str | None,
    reason: str,
    force: bool,
) -> None:
    """Reject a proposal (or with --all every one the filters select): none of its candidates
    is proposed again for that payment, until `reconcile reopen` undoes it."""
    _one_or_all(proposal_id, every)
    store = app.store()
    settler = Settler(app.config(), store, force=force)
    if proposal_id:
        reject_proposal(store, proposal_id, settle=settler, user=user, reason=reason)
        click.echo(f"rejected {proposal_id}")
        print_settlement(settler)
        return

    def decide(view: ProposalView) -> list[str]:
        reject_proposal(store, view.id, settle=settler, user=user, reason=reason)
        return [f"rejected {view.id} ({view.payer}, {view.amount})"]

    _decide_all(_views(app, customer, rule, min_confidence), dry_run, "reject", decide, settler)


@click.command("reopen")
@click.argument("proposal_id")
@_user
@_reason
@_force
@pass_app
def reopen_command(app: AppContext, proposal_id: str, user: str | None, reason: str, force: bool) -> None:
    """Undo a decision on a proposal: a rejection is forgotten, an acceptance's allocations are
    removed; the proposal is open again."""
    settler = Settler(app.config(), app.store(), force=force)
    reopen_proposal(app.store(), proposal_id, settle=settler, user=user, reason=reason)
    click.echo(f"reopened {proposal_id}: it is open again (`connector reconcile` lists it)")
    print_settlement(settler)


reconcile_group.add_command(reopen_command)
reconcile_group.add_command(reopen_command, "unreject")


@reconcile_group.command("review")
@_sort
@_customer
@_rule
@_min_confidence
@_user
@_force
@pass_app
def review_command(
    app: AppContext,
    sort: str | None,
    customer: str | None,
    rule: str | None,
    min_confidence: Decimal | None,
    user: str | None,
    force: bool,
) -> None:
    """Go through the open proposals one by one: a candidate's number accepts it, r rejects,
    s skips, u undoes the last decision, q quits."""
    store = app.store()
    views = _views(app, customer, rule, min_confidence, sort)
    settler = Settler(app.config(), store, force=force)
    done = run_review(
        views,
        accept=lambda v, n: accept_proposal(store, v.id, settle=settler, candidate=n, user=user, reason="review"),
        reject=lambda v: reject_proposal(store, v.id, settle=settler, user=user, reason="review"),
        undo=lambda v: reopen_proposal(store, v.id, settle=settler, user=user, reason="undone in review"),
    )
    print_settlement(settler)
    click.echo(f"accepted {done.accepted}, rejected {done.rejected}, skipped {done.skipped}")


@reconcile_group.command("match")
@click.argument("payment")
@click.argument("invoice")
@click.option("--amount", help="Amount to apply (default: as much as both allow).")
@_user
@_reason
@pass_app
def match_command(
    app: AppContext, payment: str, invoice: str, amount: str | None, user: str | None, reason: str
) -> None:
    """Match PAYMENT to INVOICE by hand (ids of any system, or the invoice number)."""
    settler = Settler(app.config(), app.store())
    allocation = match(app.store(), payment, invoice, settle=settler, amount=amount, user=user, reason=reason)
    click.echo(f"applied {allocation.id}: {allocation.amount} by hand")
    print_settlement(settler)


@reconcile_group.command("unmatch")
@click.argument("allocation_id")
@_user
@_reason
@_force
@pass_app
def unmatch_command(app: AppContext, allocation_id: str, user: str | None, reason: str, force: bool) -> None:
    """Remove an allocation; its rule will not make it again. Writes it caused that were not
    sent are cancelled; a payment and fee already in the ledger get `reverse:` deletions."""
    settler = Settler(app.config(), app.store(), force=force)
    allocation = unmatch(app.store(), allocation_id, settle=settler, user=user, reason=reason)
    click.echo(f"removed {allocation_id} ({allocation.amount}); the pair will not be matched again by a rule")
    print_settlement(settler)


COMMANDS = [reconcile_group]
