"""What the workbench reads and decides, through the code the CLI uses.

Reading: the aging report and DSO (`connector.reconcile.history.aging_streamed`, as `connector aging`),
the open proposals, a customer's open items and payments (`reports.invoice_rows`,
`payment_rows`, `customer_story`, as `connector customers show`), the story of a record
(`reports.explain_story`, as `connector explain`), the parked actions and drift
(`reports.drift_lines` / `drift_report`, as `connector drift`).

Deciding: `connector.reconcile.decisions` (accept, reject, match, as `connector reconcile
accept|reject|match`) settled by `connector.writeback.settle.Settler`, and
`connector.writeback.apply` (retry, cancel, as `connector actions retry|cancel`).

Where a person reads, records are named by customer name and invoice number; our ids appear
only in URLs and form fields.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from connector import reports
from connector.config import Config
from connector.errors import UsageError
from connector.model import Allocation, Customer, Invoice, Payment
from connector.money import Money
from connector.reconcile.decisions import accept_proposal, match, reject_proposal
from connector.reconcile.drift_book import drift_of
from connector.reconcile.history import aging_streamed, customer_book, customers_by_id
from connector.reconcile.run import invoice_allocations, without_withdrawn
from connector.redaction import redact
from connector.reports.statements import period_start, statement
from connector.state import outbox
from connector.state import reconciliation as decisions
from connector.state.store import Store
from connector.state.story import neighbourhood
from connector.writeback.apply import cancel, retry, state_of
from connector.writeback.settle import Settlement, Settler

Row = dict[str, Any]

PARKED = ("failed",)


@dataclass(frozen=True)
class Book:
    """One company's book as the workbench works on it."""

    company: str
    config: Config
    store: Store
    user: str  # who decides: kept in the audit log as the CLI's `--user` is

    def reader(self) -> Store:
        """The book for the pages that only show it (`Store.reader`): they answer while the
        service syncs or plans, and hold back none of its writes."""
        return self.store.reader()


@dataclass
class Names:
    """Customers, invoices and payments of the book, read once per page."""

    customers: dict[str, Customer] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    payments: dict[str, Payment] = field(default_factory=dict)

    @classmethod
    def of(cls, store: Store) -> Names:
        return cls(
            {c.id: c for c in store.list_customers() if c.id},
            {i.id: i for i in store.list_receivables() if i.id},
            {p.id: p for p in store.list_payments() if p.id},
        )

    def customer(self, customer_id: str | None) -> str:
        found = self.customers.get(customer_id or "")
        return found.name if found else reports.UNKNOWN_CUSTOMER

    def invoice(self, invoice_id: str) -> str:
        found = self.invoices.get(invoice_id)
        return (found.number if found else None) or "(invoice without a number)"

    def payer(self, payment: Payment | None) -> str:
        if payment is None:
            return "(unknown payment)"
        if payment.customer_id in self.customers:
            return self.customer(payment.customer_id)
        return payment.payer or reports.UNKNOWN_CUSTOMER


# Reading ----------------------------------------------------------------------------------


def aging(book: Book, as_of: date) -> Row:
    """`connector aging --json` for the book: the same function on the same records (the
    balances at the end of `as_of`, with unapplied cash and net)."""
    return aging_streamed(book.reader(), customers_by_id(book.reader(), with_refs=False), as_of)


def customer_statement(book: Book, customer_id: str, day: date) -> Row:
    """`connector statement` for one customer at the end of `day`, from the first of its month,
    in the company's name; UsageError when there is no such customer."""
    chosen = customers_by_id(book.reader()).get(customer_id)
    if chosen is None:
        raise UsageError(f"no customer {customer_id!r}")
    return statement(
        book.config.display_name(), chosen, customer_book(book.reader(), customer_id), day, period_start(day)
    )


def open_proposals(book: Book, names: Names) -> list[Row]:
    """The open proposals with the payer, the date and each ranked candidate in words."""
    with book.reader().session() as session:
        proposals = decisions.load_proposals(session)
    rows = []
    for proposal in proposals:
        payment = names.payments.get(proposal["payment_id"])
        left = Money.from_minor(int(proposal["amount_minor"]), proposal["currency"])
        candidates = []
        for rank, candidate in enumerate(proposal["candidates"] or [], start=1):
            shares = [Money.of(a, candidate["currency"]) for a in candidate["amounts"]]
            candidates.append(
                {
                    "rank": rank,
                    "invoices": [
                        {
                            "number": names.invoice(i),
                            "customer": names.customer(getattr(names.invoices.get(i), "customer_id", None)),
                            "amount": str(share.amount),
                        }
                        for i, share in zip(candidate["invoice_ids"], shares, strict=True)
                    ],
                    "amount": str(sum(shares, Money.zero(candidate["currency"])).amount),
                    "rule": candidate["rule"],
                    "confidence": str(candidate["confidence"]),
                    "reason": candidate["reason"],
                }
            )
        rows.append(
            {
                "id": proposal["id"],
                "payment_id": proposal["payment_id"],
                "payer": names.payer(payment),
                "received": payment.received_at.date().isoformat() if payment else None,
                "amount": str(payment.amount.amount) if payment else None,
                "unapplied": str(left.amount),
                "currency": proposal["currency"],
                "remittance": payment.remittance if payment else None,
                "note": proposal.get("note"),
                "candidates": candidates,
            }
        )
    return rows


def customer_page(book: Book, customer_id: str, as_of: date) -> Row:
    """As `connector customers show --json`: open invoices, payments, unapplied credit."""
    customers = {c.id: c for c in book.reader().list_customers() if c.id}
    customer = customers.get(customer_id)
    if customer is None:
        raise UsageError("no such customer")
    invoices = without_withdrawn(book.reader(), book.reader().list_receivables(customer_id=customer_id))
    invoice_rows = reports.invoice_rows(invoices, customers, invoice_allocations(book.reader(), invoices), as_of)
    payments = book.reader().list_payments(customer_id=customer_id)
    payment_rows = reports.payment_rows(payments, customers, _payment_allocations(book.reader()))
    return reports.customer_story(customer, invoice_rows, payment_rows)


def _payment_allocations(store: Store) -> dict[str, list[Allocation]]:
    with store.session() as session:
        stored = decisions.load_allocations(session, status="applied")
    out: dict[str, list[Allocation]] = defaultdict(list)
    for s in stored:
        out[s.allocation.payment_id].append(s.allocation)
    return out


def record_story(book: Book, kind: str, entity_id: str, names: Names) -> Row:
    """As `connector explain --json`: the refs, allocations, proposals, audit log and writes of
    one invoice or payment."""
    with book.reader().session() as session:
        around = neighbourhood(session, kind, entity_id)
    stored, proposals = around.allocations, around.proposals
    refs = [
        {"system": r["system"], "type": r["object_type"], "id": r["remote_id"], "link_rule": r["link_rule"]}
        for r in around.refs
    ]
    audit = [
        {"at": reports.iso(e.at), "actor": e.actor, "action": e.action, "decision": e.decision, "seq": e.id}
        for e in around.audit
    ]
    actions = [
        {"id": e.id, "kind": e.action.kind, "state": e.action.state, "connection": e.action.connection}
        for e in around.actions
    ]
    allocations = [
        {
            **reports.allocation_row(s.allocation, s.status, s.created_at),
            "payment_payer": names.payer(names.payments.get(s.allocation.payment_id)),
            "invoice_number": names.invoice(s.allocation.invoice_id),
        }
        for s in stored
    ]
    record = {"id": entity_id}
    return reports.explain_story(
        kind, record, refs, allocations, [reports.proposal_row(p) for p in proposals], audit, actions
    )


def parked_actions(book: Book) -> list[Row]:
    """Writes parked after their last attempt failed: to retry or cancel."""
    with book.reader().session() as session:
        entries = outbox.entries(session, states=PARKED)
    return [
        {
            "id": e.id,
            "connection": e.action.connection,
            "kind": e.action.kind,
            "summary": redact(e.summary or ""),
            "attempts": e.attempts,
            "last_error": redact(e.last_error or ""),
            "updated_at": reports.iso(e.updated_at),
        }
        for e in entries
    ]


def drift(book: Book, as_of: date) -> Row:
    """As `connector drift --json`: what each system holds against what it should hold."""
    return drift_of(book.config, book.reader(), as_of)


# Deciding ---------------------------------------------------------------------------------


def accept(book: Book, proposal_id: str, candidate: int, names: Names) -> list[str]:
    """`connector reconcile accept PROPOSAL --candidate N`."""
    settler = Settler(book.config, book.store)
    made = accept_proposal(book.store, proposal_id, settle=settler, candidate=candidate, user=book.user)
    lines = [f"applied {a.amount} to invoice {names.invoice(a.invoice_id)}" for a in made]
    return lines + _settled(settler.settlements)


def reject(book: Book, proposal_id: str) -> list[str]:
    """`connector reconcile reject PROPOSAL`."""
    settler = Settler(book.config, book.store)
    reject_proposal(book.store, proposal_id, settle=settler, user=book.user)
    return ["rejected: none of its candidates will be proposed again for that payment", *_settled(settler.settlements)]


def match_by_hand(book: Book, payment_id: str, invoice_number: str, amount: str | None) -> list[str]:
    """`connector reconcile match PAYMENT INVOICE [--amount A]`."""
    settler = Settler(book.config, book.store)
    made = match(book.store, payment_id, invoice_number, settle=settler, amount=amount, user=book.user)
    return [f"applied {made.amount} to invoice {invoice_number} by hand", *_settled(settler.settlements)]


def retry_action(book: Book, action_id: int) -> list[str]:
    """`connector actions retry ID`."""
    if not retry(book.store, action_id):
        state = state_of(book.store, action_id).replace("_", " ")
        raise UsageError(f"action #{action_id} is {state}: only a failed or waiting action can be queued again")
    return [f"#{action_id} queued again; the next `connector apply` (or the service) sends it"]


def cancel_action(book: Book, action_id: int, keep_decision: bool) -> list[str]:
    """`connector actions cancel ID [--keep-decision]`."""
    done = cancel(book.config, book.store, action_id, book.user, keep_decision=keep_decision)
    if not done.cancelled:
        state = state_of(book.store, action_id).replace("_", " ")
        raise UsageError(f"action #{action_id} is {state}: only a planned or failed action can be cancelled")
    lines = [f"#{action_id} cancelled"]
    lines += [f"took back {a.amount}: the payment returns as a proposal" for a in done.withdrawn]
    lines += _settled([done.settlement] if done.settlement else [])
    if done.gap is not None:
        lines.append(f"gap recorded: {done.gap.reason}")
    return lines


def _settled(settlements: Sequence[Settlement]) -> list[str]:
    lines = []
    for settlement in settlements:
        lines += [f"cancelled unsent write #{e.id} {e.action.kind}" for e in settlement.cancelled]
        lines += [f"planned {p.summary}" for p in settlement.reversals]
        lines += [f"gap recorded: {g.reason}" for g in settlement.gaps]
    return lines
