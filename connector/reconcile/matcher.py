"""`reconcile()`: payments and open invoices in, allocations, proposals and reversals out.

The run, in order:
1. reversals: failed and refunded payments give back what their allocations took;
2. the book: each invoice's balance after its own paid and credited amounts and the existing
   allocations (manual ones included: they are never changed, only respected);
3. pass by pass, every payment in (received at, id) order: explicit links, then invoice
   numbers in the remittance, then amounts (exact, within tolerance, subset sums) and, when
   nothing else fits, the payer's oldest open invoices (a partial or over payment). A strong
   rule is applied to every payment before a weaker rule may take an invoice;
4. a payment's best option is applied when its confidence reaches `auto_threshold` and no
   other option is as good; otherwise its ranked options become a proposal. A held payment
   (finance unmatched or rejected one of its matches) is never applied by a rule: its options,
   rejected pairs left out, always wait for finance as a proposal.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal

from connector.errors import ReconcileInvariantError
from connector.model import Allocation, Invoice, Payment
from connector.reconcile.book import Book, OpenPayment, minor, money, open_payment
from connector.reconcile.build import builder
from connector.reconcile.remittance import Mention, NumberIndex, mentions, number_keys
from connector.reconcile.reversals import find_reversals
from connector.reconcile.rules import (
    Option,
    Rejected,
    exact_amount,
    explicit_link,
    payer_open_invoice,
    remittance_number,
    within_tolerance,
)
from connector.reconcile.subset import subset_sum
from connector.reconcile.types import (
    Candidate,
    Proposal,
    ReconcileResult,
)
from connector.settings import ReconcileConfig

_PAYABLE = ("succeeded", "partially_refunded")
_BELOW_THRESHOLD = Decimal("0.01")
# The result's models, built from values the run made and checked itself (see `build`).
_build_candidate = builder(Candidate, "invoice_ids", "amounts", "rule", "confidence", "reason")
_build_proposal = builder(Proposal, "payment_id", "amount", "candidates")
_build_result = builder(ReconcileResult, "applied", "proposals", "unapplied", "reversals", "unmatched")


def reconcile(
    invoices: Iterable[Invoice],
    payments: Iterable[Payment],
    *,
    links: Mapping[str, Sequence[str]] | None = None,
    allocations: Iterable[Allocation] = (),
    rejected: Iterable[tuple[str, str]] = (),
    held: Iterable[str] = (),
    references: Mapping[str, Sequence[str]] | None = None,
    config: ReconcileConfig | None = None,
) -> ReconcileResult:
    """Match `payments` to `invoices`.

    links: payment id -> invoice ids the providers' metadata names (a Stripe charge's invoice).
    allocations: already applied and not yet in the invoices' `amount_paid` (the contract of
        `invoice_position`); manual ones are kept as they are.
    rejected: (payment id, invoice id) pairs finance refused; never proposed again.
    held: payment ids no rule may apply: finance undid a match of theirs, so they are proposed.
    references: invoice id -> extra searchable references (purchase orders, customer refs).
    """
    with _collector_paused():
        return _reconcile(invoices, payments, links, allocations, rejected, frozenset(held), references, config)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The run makes many small acyclic objects next to a large live input; the cyclic
    collector would re-scan that input again and again (half the time at 100k payments).
    Reference counting frees everything; the collector is back on as it was afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _reconcile(
    invoices: Iterable[Invoice],
    payments: Iterable[Payment],
    links: Mapping[str, Sequence[str]] | None,
    allocations: Iterable[Allocation],
    rejected: Iterable[tuple[str, str]],
    held: frozenset[str],
    references: Mapping[str, Sequence[str]] | None,
    config: ReconcileConfig | None,
) -> ReconcileResult:
    config = config or ReconcileConfig()
    links = links or {}
    references = references or {}
    refused: Rejected = frozenset(rejected)
    existing = list(allocations)
    ordered = sorted(payments, key=_payment_order)
    by_id = {payment.id: payment for payment in ordered if payment.id is not None}

    reversals = find_reversals(by_id, existing)
    taken_back: dict[int, int] = defaultdict(int)
    for reversal in reversals:
        taken_back[id(reversal.allocation)] += minor(reversal.amount)
    on_invoice: dict[str, int] = defaultdict(int)
    on_payment: dict[str, int] = defaultdict(int)
    for allocation in existing:
        units = minor(allocation.amount) - taken_back[id(allocation)]
        on_invoice[allocation.invoice_id] += units
        on_payment[allocation.payment_id] += units

    book = Book(invoices, on_invoice)
    index = NumberIndex()
    for invoice in book.invoices.values():
        index.add(invoice.id, invoice.number, references.get(invoice.id, ()))

    settled = {payment_id for payment_id, units in on_payment.items() if units > 0}
    settled.update(payment_id for payment_id, _ in refused)
    run = _Run(book, index, refused, config, settled, held)
    open_payments: list[OpenPayment] = []
    for payment in ordered:
        if payment.status in _PAYABLE:
            assert payment.id is not None  # _payment_order refused a payment without one
            pending = open_payment(payment, on_payment.get(payment.id, 0))
            if pending.remaining > 0:
                open_payments.append(pending)
    for pending in open_payments:
        run.by_link(pending, links.get(pending.id, ()))
    for pending in open_payments:
        run.by_remittance(pending)
    for pending in open_payments:
        run.by_amount(pending)

    unmatched = run.unmatched
    return _build_result(
        run.applied,
        run.proposals,
        {p.id: money(p.remaining, p.currency) for p in open_payments if p.remaining > 0},
        reversals,
        [p.id for p in open_payments if p.id in unmatched] if unmatched else [],
    )


def _payment_order(payment: Payment) -> tuple[object, str]:
    if payment.id is None:
        raise ValueError(f"payment of {payment.amount} at {payment.received_at} has no id")
    return payment.received_at, payment.id


class _Run:
    def __init__(
        self,
        book: Book,
        index: NumberIndex,
        rejected: Rejected,
        config: ReconcileConfig,
        settled: set[str],
        held: frozenset[str],
    ) -> None:
        self.book = book
        self.index = index
        self.rejected = rejected
        self.config = config
        self.decided: set[str] = set()
        self.unmatched: set[str] = set()
        # Payments with allocations already, or a rejected pair: no `payer_open_invoice` guess.
        self.settled = settled
        # Payments finance took a match away from: proposed, never applied by a rule.
        self.held = held
        self._linked: dict[str, Option] = {}
        self.applied: list[Allocation] = []
        self.proposals: list[Proposal] = []
        self._mentions: dict[str, list[Mention]] = {}

    def mentions(self, payment: OpenPayment) -> list[Mention]:
        if not payment.remittance:
            return []
        found = self._mentions.get(payment.id)
        if found is None:
            found = self._mentions[payment.id] = self.index.expand(mentions(payment.remittance))
        return found

    def apply(self, payment: OpenPayment, option: Option) -> None:
        self.decided.add(payment.id)
        for invoice_id, units in zip(option.invoice_ids, option.units, strict=True):
            self.applied.append(
                self.book.allocate(
                    payment,
                    invoice_id,
                    units,
                    rule=option.rule,
                    confidence=option.confidence,
                    reason=option.reason,
                )
            )

    # Passes -------------------------------------------------------------------------------

    def by_link(self, payment: OpenPayment, linked: Sequence[str]) -> None:
        if linked:
            option = explicit_link(self.book, payment, linked, self.rejected, self.config.confidence)
            if option is not None and payment.id in self.held:
                self._linked[payment.id] = option  # proposed with the others in `by_amount`
            elif option is not None:
                self.apply(payment, option)

    def by_remittance(self, payment: OpenPayment) -> None:
        if payment.id in self.decided or payment.id in self.held or not payment.remittance:
            return
        options = self._remittance_options(payment)
        best = self._sure(options)
        if best is not None:
            self.apply(payment, best)

    def by_amount(self, payment: OpenPayment) -> None:
        if payment.id in self.decided:
            return
        self.decided.add(payment.id)
        config = self.config
        options = self._remittance_options(payment) if payment.remittance else []
        if payment.id in self._linked:
            options.insert(0, self._linked[payment.id])
        exact = exact_amount(self.book, payment, self.rejected, config.confidence)
        options += exact
        options += within_tolerance(self.book, payment, self.rejected, config, config.max_candidates)
        # One invoice of exactly the amount explains a payment better than a sum of several.
        if not exact and not any(o.confidence >= config.auto_threshold for o in options):
            options += subset_sum(self.book, payment, self.rejected, config)
        # Nothing else: the payer's open invoices, oldest due first (a partial or over payment);
        # not for what is left of a payment already applied (an overpayment's surplus stays
        # credit) nor for one whose proposal finance rejected (a guess would only come back).
        if not options and payment.id not in self.settled:
            guess = payer_open_invoice(self.book, payment, self.rejected, config)
            options = [guess] if guess is not None else []
        options = self._ranked(payment, self._hinted(payment, options))
        best = self._sure(options) if payment.id not in self.held else None
        if best is not None:
            self.apply(payment, best)
        elif options:
            self.proposals.append(
                _build_proposal(
                    payment.id,
                    money(payment.remaining, payment.currency),
                    tuple([_candidate(payment, o) for o in options[: config.max_candidates]]),
                )
            )
        else:
            self.unmatched.add(payment.id)

    # Deciding -----------------------------------------------------------------------------

    def _remittance_options(self, payment: OpenPayment) -> list[Option]:
        return remittance_number(
            self.book, self.index, payment, self.mentions(payment), self.rejected, self.config.confidence
        )

    def _sure(self, options: list[Option]) -> Option | None:
        """The best option when it reaches the threshold and nothing else is as good."""
        if not options:
            return None
        if len(options) == 1:
            best = options[0]
            return best if best.confidence >= self.config.auto_threshold else None
        options = self._ranked(None, options)
        best = options[0]
        if best.confidence < self.config.auto_threshold:
            return None
        if len(options) > 1 and options[1].confidence >= best.confidence:
            return None
        return best

    def _ranked(self, payment: OpenPayment | None, options: list[Option]) -> list[Option]:
        """Best first, one option per set of invoices: confidence, then invoices issued by the
        payment date before later ones, then the oldest due (customers pay oldest first)."""
        if len(options) < 2:
            return list(options)
        received = payment.received if payment is not None else None
        invoices = self.book.invoices

        def key(option: Option) -> tuple[object, ...]:
            items = [invoices[i] for i in option.invoice_ids]
            after = received is not None and any(item.issued > received for item in items)
            return (-option.confidence, after, min(item.due for item in items), len(items), option.invoice_ids)

        best: dict[tuple[str, ...], Option] = {}
        for option in sorted(options, key=key):
            best.setdefault(option.invoice_ids, option)
        return list(best.values())

    def _hinted(self, payment: OpenPayment, options: list[Option]) -> list[Option]:
        """Raise an amount-rule option whose invoice number the remittance mentions without
        naming it for sure; a hint ranks, it never lifts an option to the threshold."""
        keys = {mention.numeric_key for mention in self.mentions(payment)}
        if not keys:
            return options
        conf = self.config.confidence
        threshold = self.config.auto_threshold
        result = []
        for option in options:
            hinted = [
                self.book.invoices[i]
                for i in option.invoice_ids
                if self.book.invoices[i].number and number_keys(self.book.invoices[i].number or "")[1] in keys
            ]
            if option.rule == "remittance_number" or not hinted:
                result.append(option)
                continue
            raised = option.confidence + conf.remittance_hint_bonus
            if option.confidence < threshold <= raised:
                raised = max(option.confidence, threshold - _BELOW_THRESHOLD)
            names = ", ".join(item.number or item.id for item in hinted)
            result.append(
                Option(
                    option.invoice_ids,
                    option.units,
                    option.rule,
                    raised,
                    f"{option.reason}; the remittance mentions {names}",
                )
            )
        return result


def _candidate(payment: OpenPayment, option: Option) -> Candidate:
    if len(option.invoice_ids) != len(option.units):
        raise ReconcileInvariantError("an option needs one amount per invoice")
    return _build_candidate(
        option.invoice_ids,
        tuple([money(units, payment.currency) for units in option.units]),
        option.rule,
        option.confidence,
        option.reason,
    )
