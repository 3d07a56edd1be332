"""`reconcile()`: payments and open invoices in, allocations, proposals and reversals out.

The run, in order:
1. reversals: failed and refunded payments give back what their allocations took;
2. the book: each invoice's balance after its own paid and credited amounts and the existing
   allocations (manual ones included: they are never changed, only respected);
3. pass by pass, every payment in (received at, id) order: explicit links, then invoice
   numbers in the remittance, then amounts (exact, within tolerance, subset sums) and, when
   nothing else fits, the payer's oldest open invoices (a partial or over payment). A strong
   rule is applied to every payment before a weaker rule may take an invoice; the passes are
   repeated over what is still open until one applies nothing (`_Run.settle`), so the next
   run over the same book finds nothing more to apply;
4. a payment's best option is applied when its confidence reaches `auto_threshold` and no
   other option is as good; otherwise its ranked options become a proposal, made last against
   the book as the run leaves it (`_Run.propose`). A held payment (finance unmatched or
   rejected one of its matches; or money of it is applied already, by this run or before) is
   never applied by a rule: its options, rejected pairs left out, wait for finance as a
   proposal;
5. evidence against an option (`evidence`: the remittance names other invoices, a named
   invoice already paid or in another currency, an exact amount beside a named invoice's
   different balance) caps it below the threshold: conflicting evidence is proposed, never
   applied. Equal payments of one payer proposed in one run get the oldest open invoices in
   turn, the oldest payment first, not all the same one.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from decimal import Decimal

from connector.errors import ReconcileInvariantError
from connector.model import Allocation, Invoice, Payment
from connector.reconcile.book import Book, OpenInvoice, OpenPayment, ToMatch, minor, money, open_payment, show
from connector.reconcile.evidence import (
    NOTHING,
    Evidence,
    Names,
    against,
    family_of,
    named_for_sure,
    rate_implied,
    weigh,
)
from connector.reconcile.remittance import Mention, NumberIndex, Period, mentions, number_keys, periods
from connector.reconcile.reversals import find_reversals
from connector.reconcile.rules import (
    Option,
    Rejected,
    exact_amount,
    explicit_link,
    joined,
    payer_open_invoice,
    remittance_number,
    several_payments,
    within_tolerance,
)
from connector.reconcile.subset import related_accounts, subset_sum
from connector.reconcile.types import (
    PAYABLE,
    Candidate,
    Proposal,
    ReconcileResult,
)
from connector.settings import ReconcileConfig
from connector.unchecked import builder

_BELOW_THRESHOLD = Decimal("0.01")
# The result's models, built from values the run made and checked itself (see `build`).
_build_candidate = builder(Candidate, "invoice_ids", "amounts", "rule", "confidence", "reason")
_build_proposal = builder(Proposal, "payment_id", "amount", "candidates", "note")
_build_result = builder(ReconcileResult, "applied", "proposals", "unapplied", "reversals", "unmatched")


def reconcile(
    invoices: Iterable[Invoice | ToMatch],
    payments: Iterable[Payment],
    *,
    links: Mapping[str, Sequence[str]] | None = None,
    allocations: Iterable[Allocation] = (),
    rejected: Iterable[tuple[str, str]] = (),
    held: Iterable[str] = (),
    references: Mapping[str, Sequence[str]] | None = None,
    config: ReconcileConfig | None = None,
    related: Mapping[str, frozenset[str]] | None = None,
    customer_names: Mapping[str, str] | None = None,
) -> ReconcileResult:
    """Match `payments` to `invoices`.

    links: payment id -> invoice ids the providers' metadata names (a Stripe charge's invoice).
    allocations: already applied and not yet in the invoices' `amount_paid` (the contract of
        `invoice_position`); manual ones are kept as they are.
    rejected: (payment id, invoice id) pairs finance refused; never proposed again.
    held: payment ids no rule may apply: finance undid a match of theirs, so they are proposed.
    references: invoice id -> extra searchable references (purchase orders, customer refs).
    related: customer id -> its related customers (parent, subsidiaries): an invoice of theirs
        the remittance names counts as the payer's own.
    customer_names: customer id -> name, for the reasons ("Acme Ltd's INV-0042").
    """
    with _collector_paused():
        return _reconcile(
            invoices,
            payments,
            links,
            allocations,
            rejected,
            frozenset(held),
            references,
            config,
            related or {},
            customer_names or {},
        )


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
    invoices: Iterable[Invoice | ToMatch],
    payments: Iterable[Payment],
    links: Mapping[str, Sequence[str]] | None,
    allocations: Iterable[Allocation],
    rejected: Iterable[tuple[str, str]],
    held: frozenset[str],
    references: Mapping[str, Sequence[str]] | None,
    config: ReconcileConfig | None,
    related: Mapping[str, frozenset[str]],
    customer_names: Mapping[str, str],
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
    paying: dict[str, set[str]] = defaultdict(set)
    for allocation in existing:
        units = minor(allocation.amount) - taken_back[id(allocation)]
        on_invoice[allocation.invoice_id] += units
        on_payment[allocation.payment_id] += units
        if units > 0:
            paying[allocation.payment_id].add(allocation.invoice_id)

    book = Book(invoices, on_invoice, customer_names)
    index = NumberIndex()
    for invoice in book.invoices.values():
        index.add(invoice.id, invoice.number, references.get(invoice.id, ()))

    settled = {payment_id for payment_id, units in on_payment.items() if units > 0}
    # What is left of a payment an earlier run (or finance) applied already: that run said the
    # rest stays unapplied credit, so no rule applies it by itself now (it is proposed, as a
    # held payment is); a payment this run applies is held from then on alike (`apply`).
    held = held | settled
    settled.update(payment_id for payment_id, _ in refused)
    run = _Run(book, index, refused, config, settled, held, related, paying)
    open_payments: list[OpenPayment] = []
    for payment in ordered:
        if payment.status in PAYABLE:
            assert payment.id is not None  # _payment_order refused a payment without one
            pending = open_payment(payment, on_payment.get(payment.id, 0))
            if pending.remaining > 0:
                open_payments.append(pending)
    for pending in open_payments:
        if pending.customer_id is not None:
            run.accounts[(pending.customer_id, pending.currency)].append(pending)
    run.settle(open_payments, links)
    for pending in open_payments:
        run.propose(pending)

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
        related: Mapping[str, frozenset[str]],
        paying: dict[str, set[str]],
    ) -> None:
        self.book = book
        self.index = index
        self.rejected = rejected
        self.config = config
        # What each payment's amount pass weighed last, and against what evidence: after the
        # last pass (which applied nothing) that is what the final book offers it.
        self._weighed_last: dict[str, tuple[list[Option], Evidence]] = {}
        self.unmatched: set[str] = set()
        # Payments with allocations already, or a rejected pair: no `payer_open_invoice` guess.
        self.settled = settled
        # Payments finance took a match away from, and payments with money applied (before or
        # by this run): proposed, never applied by a rule.
        self.held = set(held)
        self._linked: dict[str, Option] = {}
        self.applied: list[Allocation] = []
        self.proposals: list[Proposal] = []
        self._mentions: dict[str, list[Mention]] = {}
        self._names: dict[str, Names] = {}
        self._families: dict[str, frozenset[str] | None] = {}
        self._billed_periods: dict[str, list[Period]] = {}
        # Open payments per (payer, currency), in received order: payments that pay one
        # invoice together.
        self.accounts: dict[tuple[str, str], list[OpenPayment]] = defaultdict(list)
        self.related = related
        # Invoices each payment pays already (earlier runs and this one): naming one is no
        # duplicate payment.
        self.paying = paying
        # (payer, currency, amount) -> the invoices proposed first to such payments this run.
        self._proposed_first: dict[tuple[str, str, int], list[tuple[str, ...]]] = {}

    def mentions(self, payment: OpenPayment) -> list[Mention]:
        if not payment.remittance:
            return []
        found = self._mentions.get(payment.id)
        if found is None:
            found = self._mentions[payment.id] = self.index.expand(mentions(payment.remittance))
        return found

    def apply(self, payment: OpenPayment, option: Option) -> None:
        # What is left of it is weighed from now on as the next run will weigh it: held (its
        # rest only proposed), settled (no guess from the payer's open invoices).
        self.held.add(payment.id)
        self.settled.add(payment.id)
        self.paying[payment.id].update(option.invoice_ids)
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

    def settle(self, payments: Sequence[OpenPayment], links: Mapping[str, Sequence[str]]) -> None:
        """The passes over every open payment, repeated until one applies nothing. A match
        made late in a pass can leave an earlier payment a single fit; the next run would
        apply it, so this run does, and the proposals are weighed against the book as the run
        leaves it: a run and the next agree (the next applies and proposes nothing new)."""
        waiting = list(payments)
        while waiting:
            made = len(self.applied)
            for account in self.accounts.values():  # the payer's payments still open, as the next run lists them
                account[:] = [payment for payment in account if payment.remaining > 0]
            for payment in waiting:
                self.by_link(payment, links.get(payment.id, ()))
            for payment in waiting:
                self.by_remittance(payment)
            for payment in waiting:
                self.by_amount(payment)
            if len(self.applied) == made:
                return
            waiting = [payment for payment in waiting if payment.remaining > 0]

    def by_link(self, payment: OpenPayment, linked: Sequence[str]) -> None:
        self._linked.pop(payment.id, None)
        if linked:
            option = explicit_link(self.book, payment, linked, self.rejected, self.config.confidence)
            if option is not None and payment.id in self.held:
                self._linked[payment.id] = option  # proposed with the others in `by_amount`
            elif option is not None:
                self.apply(payment, option)

    def by_remittance(self, payment: OpenPayment) -> None:
        if payment.remaining <= 0 or payment.id in self.held or not payment.remittance:
            return
        evidence = self.evidence(payment)
        options = self._weighed(payment, evidence, self._remittance_options(payment))
        best = self._sure(options)
        if best is not None:
            self.apply(payment, best)

    def by_amount(self, payment: OpenPayment) -> None:
        """Applies the payment's one sure option, unless it is held; what it weighed is kept
        for `propose`."""
        if payment.remaining <= 0:
            return
        config = self.config
        evidence = self.evidence(payment)
        options = self._remittance_options(payment) if payment.remittance else []
        if payment.id in self._linked:
            options.insert(0, self._linked[payment.id])
        exact = exact_amount(self.book, payment, self.rejected, config.confidence)
        options += exact
        options += within_tolerance(self.book, payment, self.rejected, config, config.max_candidates)
        # One invoice of exactly the amount explains a payment better than a sum of several.
        if not exact and not any(o.confidence >= config.auto_threshold for o in options):
            options += subset_sum(self.book, payment, self.rejected, config)
            if payment.customer_id is not None:
                others = self.accounts.get((payment.customer_id, payment.currency), ())
                options += several_payments(self.book, payment, others, self.rejected, config.confidence)
            if not options:
                options += related_accounts(self.book, payment, self.family(payment), self.rejected, config)
        # Nothing else: the payer's open invoices, oldest due first (a partial or over payment);
        # not for what is left of a payment already applied (an overpayment's surplus stays
        # credit), nor for one whose proposal finance rejected (a guess would only come back),
        # nor for a possible duplicate or a payment naming an invoice in another currency.
        if not options and payment.id not in self.settled and evidence.note is None:
            guess = payer_open_invoice(self.book, payment, self.rejected, config)
            options = [guess] if guess is not None else []
        options = self._by_period(payment, self._hinted(payment, options))
        options = self._ranked(payment, self._weighed(payment, evidence, options))
        self._weighed_last[payment.id] = (options, evidence)
        best = self._sure(options) if payment.id not in self.held else None
        if best is not None:
            self.apply(payment, best)

    def propose(self, payment: OpenPayment) -> None:
        """After `settle`: what is left of the payment, with what the last pass weighed for it,
        as a proposal (ranked, equal payments in turn); with nothing to propose, an unmatched
        payment, unless money of it is applied (the rest is unapplied credit)."""
        if payment.remaining <= 0:
            return
        options, evidence = self._weighed_last[payment.id]
        if options or evidence.note is not None:
            options = self._in_turn(payment, options)
            self.proposals.append(
                _build_proposal(
                    payment.id,
                    money(payment.remaining, payment.currency),
                    tuple([_candidate(payment, o) for o in options[: self.config.max_candidates]]),
                    evidence.note,
                )
            )
        elif not self.paying.get(payment.id):
            self.unmatched.add(payment.id)

    # Deciding -----------------------------------------------------------------------------

    def evidence(self, payment: OpenPayment) -> Evidence:
        found = self.mentions(payment)
        if not found:
            return NOTHING
        names = self._names.get(payment.id)
        if names is None:
            family = self.family(payment)
            names = self._names[payment.id] = named_for_sure(self.book, self.index, found, family)
        if not names[0] and not names[1]:
            return NOTHING
        return weigh(
            self.book,
            payment,
            names,
            self.family(payment),
            self.paying.get(payment.id, ()),
            self.rejected,
            self.config,
        )

    def family(self, payment: OpenPayment) -> frozenset[str] | None:
        customer_id = payment.customer_id
        if customer_id is None:
            return None
        family = self._families.get(customer_id)
        if family is None:
            family = self._families[customer_id] = family_of(customer_id, self.related)
        return family

    def _remittance_options(self, payment: OpenPayment) -> list[Option]:
        return remittance_number(
            self.book,
            self.index,
            payment,
            self.mentions(payment),
            self.rejected,
            self.config.confidence,
            self.family(payment),
        )

    def _weighed(self, payment: OpenPayment, evidence: Evidence, options: list[Option]) -> list[Option]:
        """Every option the evidence contradicts capped below the threshold, saying why; the
        amount's own invoice added when it is a related customer's (no amount rule reads
        their accounts)."""
        if evidence is NOTHING:
            return options
        rival = evidence.rival
        if rival is not None and not any(o.invoice_ids == (rival.id,) for o in options):
            options = [
                *options,
                Option(
                    (rival.id,),
                    (payment.remaining,),
                    "exact_amount_unique",
                    self.config.confidence.exact_amount_unique,
                    f"amount {show(payment.remaining, payment.currency)} equals the open balance of "
                    f"{self.book.label(rival)}",
                ),
            ]
        result = [self._foreign(payment, item) for item in evidence.foreign]
        for option in options:
            if option.rule == "explicit_link":
                result.append(option)  # the provider's own record of what was paid
                continue
            if (
                evidence.short
                and option.rule == "remittance_number"
                and {*option.invoice_ids} <= {item.id for item in evidence.named}
            ):
                last = self.book.invoices[option.invoice_ids[-1]]
                option = option._replace(
                    reason=f"{option.reason}; {show(evidence.short, payment.currency)} short, within the "
                    f"tolerance: a bank fee? write it off on {self.book.label(last)} as a fee or discount"
                )
            contradicted = against(self.book, payment, evidence, option)
            if contradicted is None:
                result.append(option)
                continue
            result.append(self._capped(option, *contradicted))
        return result

    def _foreign(self, payment: OpenPayment, item: OpenInvoice) -> Option:
        """The invoice the remittance names in another currency, first among the candidates:
        finance records it in the ledger, which converts (accepting it is refused: an
        allocation never mixes currencies); the reason gives the rate the payment implies."""
        return self._capped(
            Option(
                (item.id,),
                (payment.remaining,),
                "remittance_number",
                self.config.confidence.remittance_number,
                f"remittance {payment.remittance!r} names {self.book.label(item)}, "
                f"{show(item.balance, item.currency)} open: {rate_implied(payment, item)}",
            ),
            0,
            "it is in another currency; record the payment against it in the ledger",
        )

    def _by_period(self, payment: OpenPayment, options: list[Option]) -> list[Option]:
        """Among invoices of exactly the amount, those issued in the period the remittance
        names ("April", "Q3", "Jul-Sep") first, and the only one may be applied; when the
        period covers none of them (a prepayment for March, say), none is applied."""
        if not payment.remittance:
            return options
        exact = [o for o in options if o.rule == "exact_amount_unique" and len(o.invoice_ids) == 1]
        named = periods(payment.remittance) if exact else None
        if not named:
            return options
        invoices = self.book.invoices

        def issued(option: Option) -> date | None:
            ordinal = invoices[option.invoice_ids[0]].issued
            return date.fromordinal(ordinal) if ordinal else None

        def covered(option: Option) -> bool:
            # The period the invoice's lines say it bills ("Subscription Q3 (Jul-Sep)"), else
            # the month it was issued in.
            billed = self._billed(option.invoice_ids[0])
            if billed:
                return any(_overlap(p, b) for p in named for b in billed)
            day = issued(option)
            return day is not None and any(
                day.month in p.months and (p.year is None or p.year == day.year) for p in named
            )

        matching = [o for o in exact if covered(o)]
        periods_words = named
        conf = self.config.confidence
        words = ", ".join(repr(p.text) for p in periods_words)
        result = []
        for option in options:
            if option in matching:
                raised = conf.exact_amount_period
                if len(matching) > 1:
                    raised = min(option.confidence + conf.remittance_hint_bonus, self._ceiling(0))
                how = "it bills" if self._billed(option.invoice_ids[0]) else "issued in"
                option = option._replace(
                    confidence=max(option.confidence, raised),
                    reason=f"{option.reason}; {how} the period the remittance names ({words})",
                )
            elif not matching and option in exact:
                billed = self._billed(option.invoice_ids[0])
                if billed:
                    label = self.book.label(invoices[option.invoice_ids[0]])
                    bills = ", ".join(repr(b.text) for b in billed)
                    result.append(self._capped(option, 1, f"the remittance names {words}, {label} bills {bills}"))
                    continue
                day = issued(option)
                when = f"{day:%B %Y}" if day is not None else "no known date"
                label = self.book.label(invoices[option.invoice_ids[0]])
                option = self._capped(option, 1, f"the remittance names {words}, {label} was issued in {when}")
            result.append(option)
        return result

    def _billed(self, invoice_id: str) -> list[Period]:
        """The periods an invoice's lines name, read once per invoice."""
        billed = self._billed_periods.get(invoice_id)
        if billed is None:
            text = self.book.described.get(invoice_id)
            billed = self._billed_periods[invoice_id] = periods(text) if text else []
        return billed

    def _ceiling(self, rank: int) -> Decimal:
        """The highest confidence of a contradicted option: below the threshold, by rank."""
        return max(Decimal(0), self.config.auto_threshold - _BELOW_THRESHOLD * (rank + 1))

    def _capped(self, option: Option, rank: int, why: str) -> Option:
        return option._replace(
            confidence=min(option.confidence, self._ceiling(rank)), reason=f"{option.reason}; not applied: {why}"
        )

    def _in_turn(self, payment: OpenPayment, options: list[Option]) -> list[Option]:
        """Equal payments of one payer proposed in one run: each gets first the best invoices
        no earlier one (received first) was proposed first, so five equal payments propose five
        invoices, oldest first, not the same one five times."""
        if payment.customer_id is None or not options:
            return options
        taken = self._proposed_first.setdefault((payment.customer_id, payment.currency, payment.remaining), [])
        if options[0].invoice_ids in taken:
            best = options[0].confidence
            for at, option in enumerate(options):
                if option.confidence < best:
                    break
                if option.invoice_ids not in taken:
                    # what each earlier payment was proposed first: one invoice, or several together
                    earlier = joined([" + ".join(self.book.label(self.book.invoices[i]) for i in ids) for ids in taken])
                    reason = f"{option.reason}; an earlier payment of the same amount is proposed for {earlier}"
                    options = [option._replace(reason=reason), *options[:at], *options[at + 1 :]]
                    break
        taken.append(options[0].invoice_ids)
        return options

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
            # Then by number: canonical ids are random, and equal candidates must rank the same
            # way in every book that holds the same data.
            numbers = tuple(item.number or "" for item in items)
            return (-option.confidence, after, min(item.due for item in items), len(items), numbers, option.invoice_ids)

        best: dict[tuple[str, ...], Option] = {}
        for option in sorted(options, key=key):
            best.setdefault(option.invoice_ids, option)
        return list(best.values())

    def _hinted(self, payment: OpenPayment, options: list[Option]) -> list[Option]:
        """Raise an amount-rule option whose invoice number the remittance mentions without
        naming it for sure; a hint ranks, it never lifts an option to the threshold."""
        keys = {mention.numeric_key for mention in self.mentions(payment) if not mention.reference}
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


def _overlap(named: Period, billed: Period) -> bool:
    """A period the remittance names and one an invoice bills share a month (of one year,
    where both say which)."""
    if named.year is not None and billed.year is not None and named.year != billed.year:
        return False
    return bool(named.months & billed.months)


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
