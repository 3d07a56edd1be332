"""Open proposals as a person reads them: payer, date, amount, and each candidate with its
invoice numbers, customer names, open balances and the reason with names instead of ids; the
filters and sort orders `reconcile`, `reconcile review` and the bulk decisions share."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import click

from connector.errors import UsageError
from connector.model import Payment
from connector.money import Money
from connector.reconcile.decisions import invoice_balances
from connector.state import reconciliation as decisions
from connector.state.store import Store

SORTS = ("amount", "age", "payer", "rule", "confidence")


@dataclass(frozen=True)
class InvoiceLine:
    number: str
    customer: str
    open_balance: Money
    share: Money


@dataclass(frozen=True)
class CandidateView:
    rank: int
    invoices: list[InvoiceLine]
    rule: str
    confidence: Decimal
    reason: str


@dataclass(frozen=True)
class ProposalView:
    id: str
    payment: str  # the provider's id a person can look up, else ours
    payer: str
    received: date
    amount: Money  # what the payment has left to apply
    candidates: list[CandidateView]
    customer_ids: frozenset[str]  # of the payer and of the best candidate's invoices
    # What finance should know when no candidate can do what the evidence says (a possible
    # duplicate payment, an invoice named in another currency).
    note: str | None = None

    @property
    def best(self) -> CandidateView | None:
        return self.candidates[0] if self.candidates else None

    def customers(self) -> set[str]:
        invoices = self.best.invoices if self.best is not None else []
        return {line.customer.casefold() for line in invoices} | {self.payer.casefold()}


CUSTOMER_IN_REASON = re.compile(r"\bcustomer ([\w.:-]+)")


def readable(reason: str, names: dict[str, str]) -> str:
    """The matcher's reason with `customer <id>` written as the customer's name."""
    return CUSTOMER_IN_REASON.sub(lambda m: f"customer {names.get(m[1], m[1])}", reason)


def proposal_views(store: Store) -> list[ProposalView]:
    """The open proposals, oldest first, with what a person needs to decide each: their
    payments, candidate invoices and customers read, not the whole book."""
    with store.session() as session:
        proposals = decisions.load_proposals(session)
        wanted = sorted({i for p in proposals for c in p["candidates"] for i in c["invoice_ids"]})
        paying = sorted({p["payment_id"] for p in proposals})
        payments = {p.id: p for p in store.list_payments(session=session, ids=paying)} if paying else {}
        read = store.list_receivables(session=session, ids=wanted, with_lines=False) if wanted else []
        invoices = {i.id: i for i in read}
        named = {p.customer_id for p in payments.values() if p.customer_id}
        named |= {i.customer_id for i in read if i.customer_id}
        named |= {m[1] for p in proposals for c in p["candidates"] for m in CUSTOMER_IN_REASON.finditer(c["reason"])}
        customers = store.list_customers(session=session, ids=sorted(named)) if named else []
        names = {c.id or "": c.name for c in customers}
        balances = invoice_balances(session, read)
    views = []
    for proposal in proposals:
        payment = payments.get(proposal["payment_id"])
        candidates = []
        for rank, c in enumerate(proposal["candidates"], start=1):
            lines = []
            for invoice_id, share in zip(c["invoice_ids"], c["amounts"], strict=True):
                invoice = invoices.get(invoice_id)
                customer = invoice.customer_id if invoice else None
                lines.append(
                    InvoiceLine(
                        number=(invoice.number if invoice else None) or invoice_id,
                        customer=names.get(customer or "", customer or "?"),
                        open_balance=balances.get(invoice_id, Money.zero(c["currency"])),
                        share=Money.of(share, c["currency"]),
                    )
                )
            candidates.append(
                CandidateView(rank, lines, c["rule"], Decimal(c["confidence"]), readable(c["reason"], names))
            )
        first = proposal["candidates"][0]["invoice_ids"] if proposal["candidates"] else []
        best_customers = {invoices[i].customer_id or "" for i in first if i in invoices}
        views.append(
            ProposalView(
                id=proposal["id"],
                payment=_label(payment) if payment else proposal["payment_id"],
                payer=_payer(payment, names),
                received=payment.received_at.date() if payment else proposal["created_at"].date(),
                amount=Money.from_minor(int(proposal["amount_minor"]), proposal["currency"]),
                candidates=candidates,
                customer_ids=frozenset(best_customers | {payment.customer_id or ""} if payment else best_customers),
                note=proposal.get("note"),
            )
        )
    return views


def _label(payment: Payment) -> str:
    return ",".join(r.remote_id for r in payment.refs) if payment.refs else payment.id or ""


def _payer(payment: Payment | None, names: dict[str, str]) -> str:
    if payment is None:
        return "?"
    if payment.customer_id and payment.customer_id in names:
        return names[payment.customer_id]
    return payment.payer or payment.customer_id or "unknown payer"


def select(
    views: Sequence[ProposalView],
    *,
    customer: str | None = None,
    rule: str | None = None,
    min_confidence: Decimal | None = None,
) -> list[ProposalView]:
    """The proposals whose best candidate matches every filter given: `customer` by name
    (any case) or id, of the payer or of an invoice of the best candidate."""
    chosen = list(views)
    if customer is not None:
        wanted = customer.casefold()
        chosen = [v for v in chosen if wanted in v.customers() or customer in v.customer_ids]
    if rule is not None:
        chosen = [v for v in chosen if v.best is not None and v.best.rule == rule]
    if min_confidence is not None:
        chosen = [v for v in chosen if v.best is not None and v.best.confidence >= min_confidence]
    return chosen


_KEYS: dict[str, Callable[[ProposalView], Any]] = {
    "amount": lambda v: (v.amount.currency, -v.amount.amount),  # largest first, per currency
    "age": lambda v: v.received,  # oldest first
    "payer": lambda v: v.payer.casefold(),
    "rule": lambda v: v.best.rule if v.best is not None else "",
    "confidence": lambda v: -v.best.confidence if v.best is not None else 0,  # surest first
}


def ordered(views: Sequence[ProposalView], sort: str | None) -> list[ProposalView]:
    return sorted(views, key=_KEYS[sort]) if sort else list(views)


def confidence_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Decimal | None:
    """`--min-confidence` as a Decimal from 0 to 1 (a usage error otherwise)."""
    if value is None:
        return None
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        number = Decimal("NaN")
    if not re.fullmatch(r"\d*\.?\d+|\d+\.", value.strip(), re.ASCII) or not 0 <= number <= 1:
        raise click.BadParameter(f"a number from 0 to 1, not {value[:40]!r}")
    return number


def check_customer(store: Store, customer: str | None) -> None:
    """A `--customer` that names no customer is a usage error, not an empty list."""
    if customer is None:
        return
    known = store.list_customers()
    if not any(customer.casefold() == (c.name or "").casefold() or customer == c.id for c in known):
        raise UsageError(f"no customer named {customer!r} by name or id")


def describe(view: ProposalView) -> list[str]:
    """The proposal in lines: a header, then each candidate numbered."""
    lines = [f"{view.id}  {view.payer}  {view.received}  {view.amount} to apply  (payment {view.payment})"]
    if view.note:
        lines.append(f"    note: {view.note}")
    for c in view.candidates:
        invoices = "; ".join(
            f"{i.number} {i.customer} (open {i.open_balance}, applies {i.share.amount})" for i in c.invoices
        )
        lines.append(f"    {c.rank}. {invoices}")
        lines.append(f"       {c.rule} ({c.confidence}): {c.reason}")
    return lines


@dataclass
class Reviewed:
    accepted: int = 0
    rejected: int = 0
    skipped: int = 0


def run_review(
    views: Sequence[ProposalView],
    *,
    accept: Callable[[ProposalView, int], object],
    reject: Callable[[ProposalView], object],
    undo: Callable[[ProposalView], object],
) -> Reviewed:
    """The interactive pass: each proposal is shown and a key read. A number accepts that
    candidate, r rejects, s skips, u undoes the last decision (and shows its proposal again),
    q or the end of the input stops. A decision refused (UsageError) is said and asked again."""
    done = Reviewed()
    history: list[tuple[int, str]] = []  # (place in views, "accepted" or "rejected")
    place = 0
    while place < len(views):
        view = views[place]
        click.echo("")
        click.echo(f"[{place + 1}/{len(views)}] " + "\n".join(describe(view)))
        keys = f"1-{len(view.candidates)}" if len(view.candidates) > 1 else "1" if view.candidates else "nothing to"
        try:
            key = click.prompt(f"{keys} accept, r reject, s skip, u undo, q quit", default="", show_default=False)
        except click.exceptions.Abort:
            break
        key = key.strip().lower()
        try:
            if key == "q":
                break
            if key == "s":
                done.skipped += 1
                place += 1
            elif key == "r":
                reject(view)
                click.echo(f"rejected {view.id}")
                done.rejected += 1
                history.append((place, "rejected"))
                place += 1
            elif key == "u":
                if not history:
                    click.echo("nothing to undo")
                    continue
                place, what = history.pop()
                undo(views[place])
                click.echo(f"undid: {views[place].id} is open again")
                done.accepted -= what == "accepted"
                done.rejected -= what == "rejected"
            elif key.isascii() and key.isdigit() and 1 <= int(key) <= len(view.candidates):
                accept(view, int(key))
                click.echo(f"accepted candidate {key} of {view.id}")
                done.accepted += 1
                history.append((place, "accepted"))
                place += 1
            else:
                click.echo(f"unknown key {key[:20]!r}: {keys} accept, r reject, s skip, u undo, q quit")
        except UsageError as exc:
            click.echo(f"not done: {exc}")
    return done
