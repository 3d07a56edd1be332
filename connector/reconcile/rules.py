"""The matching rules. Each reads the book and one payment and returns `Option`s: invoices with
the amount each would get, the rule's name, a confidence and a reason a person can check.

Rules never allocate; the matcher decides which option to apply or to propose.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from typing import NamedTuple

from connector.money import Money, currency_exponent
from connector.reconcile.book import Book, OpenInvoice, OpenPayment, show
from connector.reconcile.remittance import Mention, NumberIndex
from connector.reconcile.types import RuleName
from connector.settings import Confidences, ReconcileConfig

Rejected = frozenset[tuple[str, str]]
_CONFIDENCE_STEP = Decimal("0.0001")


class Option(NamedTuple):
    """One way to apply a payment (a named tuple: the run makes one per candidate it weighs)."""

    invoice_ids: tuple[str, ...]
    units: tuple[int, ...]
    rule: RuleName
    confidence: Decimal
    reason: str


def labels(book: Book, items: Sequence[OpenInvoice]) -> str:
    """ "INV-1", "INV-1 and INV-2", "INV-1, INV-2 and INV-3" (with customers' names when known)."""
    return joined([book.label(item) for item in items])


def joined(names: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"; "" for none."""
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def spread(payment: OpenPayment, items: Sequence[OpenInvoice]) -> tuple[list[OpenInvoice], list[int]]:
    """The payment applied to `items` in order, each up to its balance (partial payments
    leave the last one open; what is left over stays unapplied)."""
    left = payment.remaining
    used: list[OpenInvoice] = []
    units: list[int] = []
    for item in items:
        if left <= 0:
            break
        amount = min(left, item.balance)
        if amount > 0:
            used.append(item)
            units.append(amount)
            left -= amount
    return used, units


def _outcome(payment: OpenPayment, items: Sequence[OpenInvoice], units: Sequence[int]) -> str:
    """The partial- or over-payment part of a reason."""
    owed = sum(item.balance for item in items)
    paid = sum(units)
    surplus = payment.remaining - paid
    parts = []
    if paid < owed:
        parts.append(f"partial payment: {show(owed - paid, payment.currency)} stays open")
    if surplus > 0:
        parts.append(f"overpayment: {show(surplus, payment.currency)} kept as unapplied credit")
    return "; ".join(parts)


def _option(
    payment: OpenPayment,
    items: Sequence[OpenInvoice],
    rule: RuleName,
    confidence: Decimal,
    reason: str,
) -> Option | None:
    used, units = spread(payment, items)
    if not used:
        return None
    outcome = _outcome(payment, used, units)
    return Option(
        tuple(item.id for item in used),
        tuple(units),
        rule,
        confidence,
        f"{reason}; {outcome}" if outcome else reason,
    )


def _allowed(book: Book, payment: OpenPayment, ids: Sequence[str], rejected: Rejected) -> list[OpenInvoice]:
    """Open invoices among `ids` that this payment may pay: same currency, not rejected."""
    items = []
    invoices = book.invoices
    currency = payment.currency
    for invoice_id in ids:
        item = invoices.get(invoice_id)
        if (
            item is not None
            and item.balance > 0
            and item.currency == currency
            and (not rejected or (payment.id, invoice_id) not in rejected)
        ):
            items.append(item)
    return items


def _unique(items: Sequence[OpenInvoice]) -> list[OpenInvoice]:
    """Each invoice once, where it first appears."""
    seen: set[str] = set()
    unique = []
    for item in items:
        if item.id not in seen:
            seen.add(item.id)
            unique.append(item)
    return unique


# 1. explicit_link ---------------------------------------------------------------------------


def explicit_link(
    book: Book, payment: OpenPayment, linked: Sequence[str], rejected: Rejected, conf: Confidences
) -> Option | None:
    items = _unique(_allowed(book, payment, linked, rejected))
    if not items:
        return None
    reason = f"the provider's metadata links the payment to {labels(book, items)}"
    return _option(payment, items, "explicit_link", conf.explicit_link, reason)


# 2. remittance_number -----------------------------------------------------------------------


def remittance_number(
    book: Book,
    index: NumberIndex,
    payment: OpenPayment,
    found: Sequence[Mention],
    rejected: Rejected,
    conf: Confidences,
    family: frozenset[str] | None = None,
) -> list[Option]:
    """One option for the invoices the text names for sure (in the order written), and one
    per reading of a number that could mean several invoices. `family`: the payer and its
    related customers (parent, subsidiaries), whose invoices count as the payer's own; by
    default the payer alone, or anyone when the payer is unknown."""
    if family is None and payment.customer_id is not None:
        family = frozenset([payment.customer_id])
    named: list[OpenInvoice] = []
    bare: list[OpenInvoice] = []
    sure = conf.remittance_number if payment.customer_id else conf.remittance_number_unknown_payer
    weakest = sure
    doubtful: list[Option] = []
    quoted = f"remittance {payment.remittance!r}"
    amount_digits: str | None = None
    for mention in found:
        ids, how = index.lookup(mention)
        items = _allowed(book, payment, ids, rejected)
        if not items:
            continue
        own = items if family is None else [i for i in items if i.customer_id in family]
        if how == "bare":
            # A lone number counts only when one open invoice of the known payer can mean it
            # and it is not simply the amount; it stays a hint when several such numbers exist.
            if len(own) == 1 and payment.customer_id:
                if amount_digits is None:
                    amount_digits = str(payment.remaining // 10 ** currency_exponent(payment.currency))
                if mention.numeric_key != amount_digits:
                    bare.append(own[0])
            continue
        if len(own) == 1:
            named.append(own[0])
            continue
        if own:
            reading, confidence = "could mean", conf.remittance_ambiguous
        else:
            own, reading, confidence = items, "names an invoice of another customer:", conf.remittance_other_customer
        for item in own:
            option = _option(
                payment,
                [item],
                "remittance_number",
                confidence,
                f"{quoted} {reading} {book.label(item)} ({mention.text!r})",
            )
            if option is not None:
                doubtful.append(option)
    options = []
    if len(_unique(bare)) == 1:
        named += bare
        weakest = min(weakest, conf.remittance_bare_number)
    named = _unique(named)
    if named:
        how_named = "a bare number in the " if weakest == conf.remittance_bare_number else ""
        option = _option(
            payment,
            named,
            "remittance_number",
            weakest,
            f"{how_named}{quoted} names {labels(book, named)}",
        )
        if option is not None:
            options.append(option)
    return options + doubtful


# 3. exact_amount_unique ---------------------------------------------------------------------


def exact_amount(book: Book, payment: OpenPayment, rejected: Rejected, conf: Confidences) -> list[Option]:
    amount = show(payment.remaining, payment.currency)
    if payment.customer_id is None:
        ids = book.anyone_with_balance(payment.currency, payment.remaining)
        items = _allowed(book, payment, ids, rejected)
        return [
            Option(
                (item.id,),
                (payment.remaining,),
                "exact_amount_unique",
                conf.exact_amount_unknown_payer,
                f"amount {amount} equals the open balance of {book.label(item)} "
                f"({book.who(item.customer_id)}); the payer is unknown",
            )
            for item in items
        ]
    entries = book.with_balance(payment.customer_id, payment.currency, payment.remaining, payment.remaining)
    items = _allowed(book, payment, [entry[2] for entry in entries], rejected)
    if len(items) == 1:
        return [
            Option(
                (items[0].id,),
                (payment.remaining,),
                "exact_amount_unique",
                conf.exact_amount_unique,
                f"amount {amount} equals the open balance of {book.label(items[0])}, the only open "
                f"invoice of {book.who(payment.customer_id)} with that balance",
            )
        ]
    return [
        Option(
            (item.id,),
            (payment.remaining,),
            "exact_amount_unique",
            conf.exact_amount_ambiguous,
            f"amount {amount} equals the open balance of {book.label(item)}, one of {len(items)} "
            f"open invoices of {book.who(payment.customer_id)} with that balance",
        )
        for item in items
    ]


# 4. amount_within_tolerance -----------------------------------------------------------------


def tolerance_units(config: ReconcileConfig, currency: str, balance: int) -> int:
    """How far a payment may be from `balance`: max(fraction x balance, absolute)."""
    by_fraction = int(config.tolerance_fraction * balance)
    absolute = config.tolerance_absolute.get(currency)
    by_absolute = _absolute_units(absolute, currency) if absolute else 0
    return max(by_fraction, by_absolute)


@lru_cache(maxsize=256)
def _absolute_units(absolute: Decimal, currency: str) -> int:
    return Money.of(absolute, currency).to_minor()


def within_tolerance(
    book: Book, payment: OpenPayment, rejected: Rejected, config: ReconcileConfig, limit: int
) -> list[Option]:
    if payment.customer_id is None:
        return []
    conf = config.confidence
    pay = payment.remaining
    fraction = config.tolerance_fraction
    absolute = tolerance_units(config, payment.currency, 0)
    lo = min(pay - absolute, int(pay / (1 + fraction)))
    hi = max(pay + absolute, int(pay / (1 - fraction)) + 1)
    entries = book.with_balance(payment.customer_id, payment.currency, max(lo, 1), hi)
    # The nearest balances first, so a huge account costs no more than `limit` options.
    entries = sorted(entries, key=lambda entry: (abs(entry[0] - pay), entry[1], entry[2]))
    options: list[Option] = []
    for balance, _due, invoice_id in entries:
        if len(options) >= limit:
            break
        gap = abs(balance - pay)
        bound = tolerance_units(config, payment.currency, balance)
        if gap == 0 or gap > bound or (rejected and (payment.id, invoice_id) in rejected):
            continue
        item = book.invoices[invoice_id]
        confidence = conf.amount_within_tolerance - conf.tolerance_spread * Decimal(gap) / Decimal(bound)
        side = "below" if pay < balance else "above"
        reason = (
            f"amount {show(pay, payment.currency)} is {show(gap, payment.currency)} {side} "
            f"the open balance {show(balance, payment.currency)} of {book.label(item)}, within the "
            f"tolerance {show(bound, payment.currency)}"
        )
        option = _option(payment, [item], "amount_within_tolerance", confidence.quantize(_CONFIDENCE_STEP), reason)
        if option is not None:
            options.append(option)
    return options


# 6. several_payments ------------------------------------------------------------------------

# At most this many other open payments of the payer are paired with a payment.
PAIRED_PAYMENTS = 32


def several_payments(
    book: Book, payment: OpenPayment, others: Sequence[OpenPayment], rejected: Rejected, conf: Confidences
) -> list[Option]:
    """The payment and one other open payment of the payer (the first `PAIRED_PAYMENTS` of
    `others`, in received order) together pay an open invoice's balance exactly: an option
    for this payment's part, naming the other payment."""
    if payment.customer_id is None:
        return []
    options = []
    for other in others[:PAIRED_PAYMENTS]:
        if other.id == payment.id or other.remaining <= 0:
            continue
        total = payment.remaining + other.remaining
        for _balance, _due, invoice_id in book.with_balance(payment.customer_id, payment.currency, total, total):
            if rejected and (payment.id, invoice_id) in rejected:
                continue
            item = book.invoices[invoice_id]
            reason = (
                f"with payment {other.id} ({show(other.remaining, payment.currency)}) this pays "
                f"{book.label(item)} ({show(item.balance, item.currency)}) in full"
            )
            options.append(Option((item.id,), (payment.remaining,), "several_payments", conf.several_payments, reason))
    return options


# 7. payer_open_invoice ----------------------------------------------------------------------


def payer_open_invoice(book: Book, payment: OpenPayment, rejected: Rejected, config: ReconcileConfig) -> Option | None:
    """When no other rule explains a payment of a known payer: the payment spread over the
    payer's open invoices in its currency, oldest due first (as the ledgers apply a payment by
    default), at most `oldest_first_invoices` of them. A smaller payment pays the oldest in part
    (the rest stays open); a larger one pays them in full and the surplus stays as credit on the
    customer. A guess for finance to confirm: its confidence is below the default threshold."""
    if payment.customer_id is None:
        return None
    items: list[OpenInvoice] = []
    left = payment.remaining
    for _due, invoice_id in book.oldest(payment.customer_id, payment.currency):
        if len(items) >= config.oldest_first_invoices or left <= 0:
            break
        if rejected and (payment.id, invoice_id) in rejected:
            continue
        item = book.invoices[invoice_id]
        items.append(item)
        left -= item.balance
    if not items:
        return None
    reason = (
        f"no invoice number, link or amount explains {show(payment.remaining, payment.currency)}; "
        f"applied oldest due first to the open invoices of {book.who(payment.customer_id)} in "
        f"{payment.currency}: {labels(book, items)}"
    )
    return _option(payment, items, "payer_open_invoice", config.confidence.payer_open_invoice, reason)
