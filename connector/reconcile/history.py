"""Loading one company's book for the reports: the dated book behind `aging` (a batch at a
time) and `statement` (one customer's neighbourhood), and the invoice and payment lists a batch
at a time; the CLI and the workbench read them here (`drift`'s holdings: `drift_book`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import date
from typing import Any

from connector import reports
from connector.model import Allocation, Customer, Invoice
from connector.money import Money
from connector.reconcile.run import (
    figures_less_withdrawn,
    invoice_allocations,
    ledger_withdrawn,
    less_withdrawn,
    without_withdrawn,
)
from connector.reconcile.types import LEDGER_RULE
from connector.reports.as_at import (
    Book,
    BookAt,
    CustomerCredit,
    DatedAllocation,
    InvoiceAt,
    SortKey,
    aging_of,
    cash_at,
    credit_at,
    invoices_at,
)
from connector.state import history, listing, records
from connector.state import reconciliation as decisions
from connector.state.history import StoredCreditNote, credit_notes
from connector.state.store import Store

Row = dict[str, Any]


def load_book(store: Store) -> Book:
    """Invoices, payments, applied allocations (the ledger's own apart from the connector's,
    with the day each was made) and credit notes of the store's company, in one session: the
    whole book at once, which the reports no longer read (`aging_streamed`, `customer_book`);
    kept as the plain reading the tests hold the batched and neighbourhood readings equal to."""
    with store.session() as session:
        invoices = store.list_receivables(session=session)
        payments = store.list_payments(session=session)
        applied = decisions.load_allocations(session, status="applied")
        notes = credit_notes(session)
    recorded, dated = _split(applied)
    return Book(without_withdrawn(store, invoices), payments, recorded, dated, _credits(notes))


def customer_book(store: Store, customer_id: str) -> Book:
    """What `statement` reads of one customer, and only that (through the customer, invoice and
    payment indexes): its receivables (less what `ledger_withdrawn` finds on them), its payments
    and the payments on its invoices (their days), every applied allocation of either, and the
    credit notes of the customer or on its invoices. The customer's statement from it is the
    one the whole book gives (other customers' cash in it is not whole: a statement shows only
    its own customer's)."""
    with store.session() as session:
        invoices = store.list_receivables(session=session, customer_id=customer_id, with_lines=False)
        invoice_ids = sorted(i.id for i in invoices if i.id)
        own = store.list_payments(session=session, customer_id=customer_id, with_refs=False)
        payment_ids = sorted(p.id for p in own if p.id)
        on_invoices = decisions.load_allocations(session, status="applied", invoice_ids=invoice_ids)
        of_payments = decisions.load_allocations(session, status="applied", payment_ids=payment_ids)
        others = sorted({s.allocation.payment_id for s in on_invoices} - set(payment_ids))
        payments = own + store.list_payments(session=session, ids=others, with_refs=False)
        wanted = set(invoice_ids)
        notes = [
            n for n in credit_notes(session) if n.customer_id == customer_id or not wanted.isdisjoint(n.invoice_ids)
        ]
    stored = list({s.allocation.id: s for s in [*on_invoices, *of_payments]}.values())
    stored.sort(key=lambda s: (s.created_at, s.allocation.id or ""))
    recorded, dated = _split(stored)
    return Book(without_withdrawn(store, invoices, neighbourhood=True), payments, recorded, dated, _credits(notes))


def _credits(notes: Sequence[StoredCreditNote]) -> list[CustomerCredit]:
    return [CustomerCredit(n.note, n.customer_id, n.invoice_ids) for n in notes]


# Invoices a batch at a time: the list's memory is a batch's, whatever the book's size.
LISTING_BATCH = 1000


def invoice_listing(
    store: Store,
    customers: Mapping[str, Customer],
    day: date,
    *,
    customer_ids: Collection[str] | None = None,
    batch: int = LISTING_BATCH,
) -> Iterator[Row]:
    """`reports.invoice_rows` of every receivable (of `customer_ids`, when given), in the same
    order and with the same figures, read `batch` invoices at a time: the book's order comes
    from four columns a receivable (`Store.receivable_keys`) and the withdrawn payments' figures
    from the few payments whose money left (`ledger_withdrawn`), then each batch is read with
    its own neighbourhood only (refs and applied allocations; a row shows no lines), never the
    whole book."""
    keys = store.receivable_keys(customer_ids=None if customer_ids is None else sorted(customer_ids))

    def name(customer_id: str | None) -> str:
        found = customers.get(customer_id or "")
        return (found.name if found else reports.UNKNOWN_CUSTOMER).lower()

    keys.sort(key=lambda k: (name(k.customer_id), k.due_date.isoformat() if k.due_date else "", k.number or "", k.id))
    yield from _listed_in_batches(store, customers, day, [k.id for k in keys], batch)


def payment_listing(
    store: Store,
    customers: Mapping[str, Customer],
    *,
    customer_ids: Collection[str] | None = None,
    batch: int = LISTING_BATCH,
) -> Iterator[Row]:
    """`reports.payment_rows` of every payment (of `customer_ids`, when given) with `net`, in
    the same order, read `batch` payments at a time with their own applied allocations (the
    ledger's records included): `payments list` in a batch's memory."""
    with store.session() as session:
        keys = records.payment_keys(session, None if customer_ids is None else sorted(customer_ids))
    keys.sort(key=lambda k: (k[1].isoformat(), k[0]))
    yield from _payment_rows(store, customers, [payment_id for payment_id, _ in keys], batch)


def customer_balances(
    store: Store, customers: Mapping[str, Customer], day: date, *, batch: int = LISTING_BATCH
) -> reports.CustomerBalances:
    """What `customers list` sums per customer (`reports.CustomerBalances`) from the rows of
    `invoices list` and `payments list` on `day`, reading only the records that add something:
    the receivables today's figures leave owing (or whose ledger payment's money left) and the
    payments not applied in full (`receivables_on`, `payments_unsettled_on`, undated); the
    others owe nothing and hold no unapplied cash."""
    sums = reports.CustomerBalances()
    with store.session() as session:
        receivables = history.receivables_on(session, day, LEDGER_RULE, dated=False)
        payment_ids = history.payments_unsettled_on(session, day, LEDGER_RULE, dated=False)
    withdrawn = ledger_withdrawn(store)
    owing = [r.id for r in receivables if not r.settled or r.id in withdrawn]
    for row in _listed_in_batches(store, customers, day, owing, batch, with_refs=False, withdrawn=withdrawn):
        sums.add_invoice(row)
    for row in _payment_rows(store, customers, payment_ids, batch):
        sums.add_payment(row)
    return sums


def _listed_in_batches(
    store: Store,
    customers: Mapping[str, Customer],
    day: date,
    ids: Sequence[str],
    batch: int,
    *,
    with_refs: bool = True,
    withdrawn: Mapping[str, Money] | None = None,
) -> Iterator[Row]:
    """`reports.invoice_rows` of the receivables of `ids`, `batch` at a time (each batch sorted
    as `invoice_rows` sorts), read as a listing shows them (`state.listing`: no invoice built),
    less what `ledger_withdrawn` finds (read once: a few; `withdrawn`, when the caller has read
    it). Without `with_refs`, the rows name no system."""
    withdrawn = ledger_withdrawn(store) if withdrawn is None else withdrawn
    for start in range(0, len(ids), batch):
        chunk = list(ids[start : start + batch])
        with store.session() as session:
            figures = listing.receivable_figures(session, chunk, with_refs=with_refs)
            added = listing.applied_not_in_ledger(session, figures, LEDGER_RULE)
        figures = figures_less_withdrawn(figures, withdrawn)
        yield from reports.listing_rows(((f, added.get(f.id or "", 0)) for f in figures), customers, day)


def _payment_rows(store: Store, customers: Mapping[str, Customer], ids: Sequence[str], batch: int) -> Iterator[Row]:
    """`reports.payment_rows` of the payments of `ids` with `net`, in that order, `batch` at a
    time with their own applied allocations (the ledger's records included)."""
    for start in range(0, len(ids), batch):
        chunk = list(ids[start : start + batch])
        with store.session() as session:
            payments = store.list_payments(session=session, ids=chunk)
            stored = decisions.load_allocations(session, status="applied", payment_ids=chunk)
        allocations: dict[str, list[Allocation]] = defaultdict(list)
        for s in stored:
            allocations[s.allocation.payment_id].append(s.allocation)
        nets = {p.id: p.net for p in payments}
        for row in reports.payment_rows(payments, customers, allocations):
            row["net"] = reports.amount(nets[row["id"]])
            yield row


def _receivables_in_batches(
    store: Store,
    ids: Sequence[str],
    batch: int,
    *,
    with_refs: bool = True,
    withdrawn: Mapping[str, Money] | None = None,
) -> Iterator[list[Invoice]]:
    """The receivables of `ids`, `batch` at a time in that order, without their lines (no
    report of the book shows them), less what `ledger_withdrawn` finds (read once: a few;
    `withdrawn`, when the caller has read it)."""
    withdrawn = ledger_withdrawn(store) if withdrawn is None else withdrawn
    for start in range(0, len(ids), batch):
        chunk = list(ids[start : start + batch])
        yield less_withdrawn(store.list_receivables(ids=chunk, with_lines=False, with_refs=with_refs), withdrawn)


def aging_streamed(
    store: Store,
    customers: Mapping[str, Customer],
    day: date,
    *,
    sort: SortKey = "name",
    top: int | None = None,
    batch: int = LISTING_BATCH,
) -> Row:
    """`aging_at(load_book(store), customers, day, ...)`, reading the book `batch` invoices and
    then `batch` payments at a time (each with its own allocations and its payments' dates),
    holding only the report's sums: the same report, in a batch's memory.

    Only the records that can count on the day are read whole: the payments whose cash may be
    unapplied then (`payments_unsettled_on`) and the receivables that may owe something then
    (not `settled` by `receivables_on`, or with a credit note dated on them, or a ledger
    payment whose money left); of the others only the total, status and issue date a
    receivable adds to DSO's credit sales."""
    with store.session() as session:
        notes = _credits(credit_notes(session))
        ids = history.payments_unsettled_on(session, day, LEDGER_RULE)
        receivables = history.receivables_on(session, day, LEDGER_RULE)
    then = BookAt(day=day)  # the cash and credit unapplied on the day: sums per customer
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        with store.session() as session:
            payments = store.list_payments(session=session, ids=chunk, with_refs=False)
            stored = decisions.load_allocations(session, status="applied", payment_ids=chunk)
        recorded, applied = _split(stored)
        cash_at(then, payments, recorded, applied)
        then.payments.clear()  # each payment's own: not the report's, and a book's worth in all
    credit_at(then, notes)
    withdrawn = ledger_withdrawn(store)
    tally = reports.AgingTally(day)
    noted = {invoice_id for note in notes for invoice_id in note.invoice_ids}
    owing = _sales_of_the_settled(tally, receivables, {*withdrawn, *noted})
    invoices = _invoices_at(store, day, notes, batch, owing, withdrawn)
    return aging_of(invoices, then, customers, sort=sort, top=top, tally=tally)


def _sales_of_the_settled(
    tally: reports.AgingTally, receivables: Sequence[history.ReceivableOnDay], unsure: Collection[str]
) -> list[str]:
    """Add to `tally` the credit sales of the receivables the day leaves owing nothing (those
    `settled`, unless something their row does not hold changes their figures: `unsure`), and
    return the ids of the others, to be read whole. The sales are summed in minor units per
    currency (three quarters of a large book's receivables, one Money each, took 0.3 s)."""
    owing = []
    sold: dict[str, int] = defaultdict(int)
    is_sale = tally.is_sale
    for receivable in receivables:
        if receivable.settled and receivable.id not in unsure:
            if is_sale(receivable.status, receivable.issue_date):
                sold[receivable.currency] += receivable.total_minor
        else:
            owing.append(receivable.id)
    for currency, minor in sorted(sold.items()):
        tally.add_sales(Money.from_minor(minor, currency))
    return owing


def _split(stored: Sequence[decisions.StoredAllocation]) -> tuple[list[Allocation], list[DatedAllocation]]:
    """(the ledger's own records, the connector's applied allocations with their day), as `Book`
    keeps them."""
    recorded = [s.allocation for s in stored if s.allocation.rule == LEDGER_RULE]
    applied = [DatedAllocation(s.allocation, s.created_at) for s in stored if s.allocation.rule != LEDGER_RULE]
    return recorded, applied


def _invoices_at(
    store: Store,
    day: date,
    notes: Sequence[CustomerCredit],
    batch: int,
    ids: Sequence[str],
    withdrawn: Mapping[str, Money],
) -> Iterator[InvoiceAt]:
    """The receivables of `ids` as they stood at the end of `day` (`invoices_at`), a batch at a
    time."""
    for invoices in _receivables_in_batches(store, ids, batch, with_refs=False, withdrawn=withdrawn):
        chunk = [i.id for i in invoices if i.id]
        with store.session() as session:
            stored = decisions.load_allocations(session, status="applied", invoice_ids=chunk)
            received = records.payments_received(session, sorted({s.allocation.payment_id for s in stored}))
        recorded, applied = _split(stored)
        paid_on = {payment_id: at.date() for payment_id, at in received.items()}
        wanted = set(chunk)
        touching = [n for n in notes if not wanted.isdisjoint(n.invoice_ids)]
        yield from invoices_at(invoices, day, recorded, applied, touching, paid_on)


def aged_streamed(store: Store, customers: Mapping[str, Customer], as_of: date, *, batch: int = LISTING_BATCH) -> Row:
    """`reports.aging_report` of today's receivables (as `invoices list` has them) in the
    buckets of `as_of` (`aging --as-of`), a batch of invoices at a time; of those today's
    figures settle (`receivables_on` undated), only what they add to DSO's credit sales."""
    tally = reports.AgingTally(as_of)
    with store.session() as session:
        receivables = history.receivables_on(session, as_of, LEDGER_RULE, dated=False)
    withdrawn = ledger_withdrawn(store)
    owing = _sales_of_the_settled(tally, receivables, withdrawn)
    for invoices in _receivables_in_batches(store, owing, batch, with_refs=False, withdrawn=withdrawn):
        allocations = invoice_allocations(store, invoices, neighbourhood=True)
        for invoice in invoices:
            tally.add(invoice, allocations.get(invoice.id or "", ()))
    return tally.report(customers)


def customers_by_id(store: Store, *, with_refs: bool = True) -> dict[str, Customer]:
    """The company's customers by id (without their refs: `with_refs` false, for a report
    that only names them)."""
    return {c.id: c for c in store.list_customers(with_refs=with_refs) if c.id}
