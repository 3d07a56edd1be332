"""Evidence against a payment's options: what the remittance and the book say that contradicts
them. A contradicted option is never applied: the matcher caps its confidence below the
threshold and its reason says what contradicted it.

Weighed per payment and pass (a pass may pay an invoice another payment names):
- the invoices the remittance names for sure: a marked or prefixed number that means exactly
  one invoice of the payer or of a related customer (its family), whatever that invoice's
  balance and currency; or, when it means none of the family's, exactly one of another customer;
- named, open and in the payment's currency: an option for other invoices is contradicted.
  The named option itself is contradicted when another open invoice of the family has exactly
  the amount while the named ones do not add up to it (the amount's invoice ranks first when
  the two numbers are near, transposed digits or one digit off: a typo). Without such a rival,
  a payment below what they owe is a partial payment and one above an overpayment (the
  surplus stays credit): both are applied;
- named and paid in full (by another payment): a possible duplicate payment; every option is
  contradicted, the money stays unapplied credit and the proposal's note says so;
- named in another currency: every option is contradicted (an allocation cannot cross
  currencies); the proposal's note gives the rate the payment implies.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from connector.money import currency_exponent
from connector.reconcile.book import Book, OpenInvoice, OpenPayment, show
from connector.reconcile.remittance import Mention, NumberIndex
from connector.reconcile.rules import Option, Rejected, labels, tolerance_units
from connector.settings import ReconcileConfig

_RATE_STEP = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one payment's remittance and the book say about its options."""

    named: tuple[OpenInvoice, ...] = ()  # open, the payment's currency, the family's
    other: tuple[OpenInvoice, ...] = ()  # named, of a customer outside the family
    paid: tuple[OpenInvoice, ...] = ()  # named, paid in full by other payments
    foreign: tuple[OpenInvoice, ...] = ()  # named, open, in another currency
    rival: OpenInvoice | None = None  # of the family, its balance exactly the amount
    typo: OpenInvoice | None = None  # the named invoice whose number the rival's is near
    short: int = 0  # what the payment lacks of the named invoices' total, within the tolerance
    note: str | None = None  # for finance, when no candidate can do what the evidence says


NOTHING = Evidence()
# The invoices a remittance names for sure: (the payer's family's, other customers').
Names = tuple[tuple[OpenInvoice, ...], tuple[OpenInvoice, ...]]


def family_of(customer_id: str | None, related: Mapping[str, frozenset[str]] | None) -> frozenset[str] | None:
    """The payer and its related customers; None when the payer is unknown."""
    if customer_id is None:
        return None
    others = related.get(customer_id) if related else None
    return frozenset([customer_id, *others]) if others else frozenset([customer_id])


def weigh(
    book: Book,
    payment: OpenPayment,
    names: Names,
    family: frozenset[str] | None,
    paying: Collection[str],
    rejected: Rejected,
    config: ReconcileConfig,
) -> Evidence:
    """The evidence for `payment` from the invoices its remittance names (`named_for_sure`);
    `paying`: the invoices it already pays (naming one is no duplicate payment)."""
    sure, other = names
    if not sure and not other:
        return NOTHING
    currency = payment.currency
    if len(sure) == 1 and not other:  # the common case, in short: one invoice named, of the amount
        item = sure[0]
        if item.currency == currency and item.balance == payment.remaining:
            if not (rejected and (payment.id, item.id) in rejected):
                return Evidence(sure)
    named = tuple(
        item
        for item in sure
        if item.currency == currency and item.balance > 0 and not (rejected and (payment.id, item.id) in rejected)
    )
    paid = tuple(item for item in sure if item.balance == 0 and item.id not in paying)
    foreign = tuple(item for item in sure if item.currency != currency and item.balance > 0)
    rival = typo = None
    short = 0
    owed = sum(item.balance for item in named)
    if named and owed != payment.remaining:
        rival = _exact_rival(book, payment, family, {item.id for item in named}, rejected)
        if rival is not None:
            typo = next((item for item in named if near(item.number, rival.number)), None)
        if rival is None and 0 < owed - payment.remaining <= tolerance_units(config, currency, owed):
            short = owed - payment.remaining
    notes = []
    if paid:
        were = "was" if len(paid) == 1 else "were"
        notes.append(
            f"possible duplicate payment: {labels(book, paid)} {were} paid in full already; "
            f"keep {show(payment.remaining, currency)} as unapplied credit or refund it"
        )
    notes += [_rate_note(book, payment, item) for item in foreign]
    return Evidence(named, other, paid, foreign, rival, typo, short, "; ".join(notes) if notes else None)


def against(book: Book, payment: OpenPayment, evidence: Evidence, option: Option) -> tuple[int, str] | None:
    """Why `option` must not be applied, with its rank among the contradicted ones (0 ranks
    first), or None when nothing contradicts it."""
    if evidence is NOTHING:
        return None
    ids = set(option.invoice_ids)
    currency = payment.currency
    if evidence.paid:
        return 1, f"the remittance names {labels(book, evidence.paid)}, paid in full already"
    if evidence.foreign:
        return 1, f"the remittance names {labels(book, evidence.foreign)}, in another currency"
    named, rival, typo = evidence.named, evidence.rival, evidence.typo
    if named:
        if not ids <= {item.id for item in named}:
            if rival is not None and typo is not None and ids == {rival.id}:
                return 0, (
                    f"{book.label(typo)} looks like a typo for {book.label(rival)}: the remittance names "
                    f"{book.label(typo)} ({show(typo.balance, currency)} open), the amount is "
                    f"{book.label(rival)}'s balance exactly"
                )
            owed = show(sum(item.balance for item in named), currency)
            return 1, f"the remittance names {labels(book, named)} ({owed} open)"
        if rival is not None:
            if typo is not None:
                return 1, f"{book.label(typo)} looks like a typo for {book.label(rival)}, whose balance is the amount"
            return 0, f"the amount is exactly the open balance of {book.label(rival)}"
        return None
    if evidence.other and not ids <= {item.id for item in evidence.other}:
        owners = sorted({book.who(item.customer_id) for item in evidence.other})
        return 1, f"the remittance names {labels(book, evidence.other)} of {', '.join(owners)}"
    return None


def near(first: str | None, second: str | None) -> bool:
    """Two invoice numbers one slip apart: the same letters, digits of one length that differ
    in one place or by two neighbours swapped ("INV-0120" and "INV-0210", "INV-0042" and
    "INV-0043")."""
    if not first or not second or first == second or len(first) != len(second):
        return False
    diff = [i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b]
    if not all(first[i].isdigit() and second[i].isdigit() for i in diff):
        return False
    if len(diff) == 1:
        return True
    left, right = diff if len(diff) == 2 else (0, 0)
    return right == left + 1 and first[left] == second[right] and first[right] == second[left]


def named_for_sure(book: Book, index: NumberIndex, found: Sequence[Mention], family: frozenset[str] | None) -> Names:
    """The invoices the mentions name for sure: (the family's, another customer's), each once,
    whatever their balance and currency. The same all run long: read once per payment."""
    sure: dict[str, OpenInvoice] = {}
    other: dict[str, OpenInvoice] = {}
    for mention in found:
        ids, how = index.lookup(mention)
        if how == "bare" or not ids:
            continue
        items = [book.invoices[i] for i in ids if i in book.invoices]
        own = items if family is None else [item for item in items if item.customer_id in family]
        if len(own) == 1:
            sure.setdefault(own[0].id, own[0])
        elif not own and len(items) == 1:
            other.setdefault(items[0].id, items[0])
    return tuple(sure.values()), tuple(other.values())


def _exact_rival(
    book: Book, payment: OpenPayment, family: frozenset[str] | None, named: set[str], rejected: Rejected
) -> OpenInvoice | None:
    """The one open invoice of the family, not named, whose balance is exactly the amount."""
    if family is None:
        return None
    found = [
        entry[2]
        for customer_id in sorted(family)
        for entry in book.with_balance(customer_id, payment.currency, payment.remaining, payment.remaining)
        if entry[2] not in named and not (rejected and (payment.id, entry[2]) in rejected)
    ]
    return book.invoices[found[0]] if len(found) == 1 else None


def rate_implied(payment: OpenPayment, item: OpenInvoice) -> str:
    """ "2000.00 EUR for 2180.00 USD = 1.09 USD per EUR if it pays it in full"."""
    paid = Decimal(payment.remaining).scaleb(-currency_exponent(payment.currency))
    owed = Decimal(item.balance).scaleb(-currency_exponent(item.currency))
    rate = (owed / paid).quantize(_RATE_STEP).normalize()
    return (
        f"{show(payment.remaining, payment.currency)} for {show(item.balance, item.currency)} = "
        f"{rate:f} {item.currency} per {payment.currency} if it pays it in full"
    )


def _rate_note(book: Book, payment: OpenPayment, item: OpenInvoice) -> str:
    return (
        f"the remittance names {book.label(item)} in {item.currency}: {rate_implied(payment, item)}; "
        f"an allocation cannot cross currencies: record this payment against it in the ledger"
    )
