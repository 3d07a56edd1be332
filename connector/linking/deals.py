"""Which receivable a CRM deal names. Sales teams put the invoice number in the deal's name
("Acme Ltd - INV-0042", "INV-0042 Acme", "Acme Ltd – Invoice 42") or in a number property;
that names the invoice even when the deal has no company association. Pure: values in, one
answer out, with the reason in words either way.

A deal names an invoice only when exactly one receivable has the number it gives, the deal's
currency agrees (when the deal states one) and its amount equals the invoice's total (when the
deal has an amount). Anything else names nothing: a wrong link would send an invoice's status to
the wrong deal, a missing one only leaves the deal listed as unlinked.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from connector.linking.numbers import normalise_number

# "Invoice 42", "Inv. #0042", "invoice no. 42", "INV-0042": the digits after the word.
_AFTER_THE_WORD = re.compile(
    r"(?<![A-Za-z])(?:invoice|inv)(?![A-Za-z])[\s.:#\-\u2013\u2014]*(?:no\.?|nr\.?|number)?[\s.:#]*(\d+)", re.I
)
_SEPARATORS = re.compile(r"[\s,;()\[\]{}\u2013\u2014|]+")
_EDGES = "-_./#:'\""


@dataclass(frozen=True)
class Receivable:
    """A receivable a deal may name: `key` is the caller's handle for it."""

    key: str
    number: str
    currency: str
    total: Decimal | None


@dataclass(frozen=True)
class Deal:
    """What a deal says: `number` its invoice number property, `currency` the currency it states
    (None when the CRM filled in a default), `amount` None or zero when it has none."""

    name: str | None
    number: str | None
    currency: str | None
    amount: Decimal | None


@dataclass(frozen=True)
class DealMatch:
    """`target` the key of the one receivable the deal names, None when it names none; `rule`
    how it names it (`invoice_number`: its number property, `deal_name`: its name)."""

    target: str | None
    rule: str | None
    reason: str


def digits_key(number: str) -> int | None:
    """The number an invoice number ends with: 42 for `INV-0042`."""
    groups = re.findall(r"\d+", number)
    return int(groups[-1]) if groups else None


def name_numbers(name: str) -> list[str]:
    """The invoice numbers a deal name may carry, normalised: each word holding both letters and
    digits (`INV-0042`), and a prefix followed by digits (`INV 0042`)."""
    words = [w.strip(_EDGES) for w in _SEPARATORS.split(name)]
    words = [w for w in words if w]
    found: list[str] = []
    for index, word in enumerate(words):
        has_digit = any(c.isdigit() for c in word)
        if has_digit and any(c.isalpha() for c in word):
            found.append(word)
        elif has_digit and index and _prefix(words[index - 1]):
            found.append(words[index - 1] + word)
    return sorted({key for word in found if (key := normalise_number(word))})


def _prefix(word: str) -> bool:
    """A word that may be the prefix of the number after it: `INV` in `INV 0042`, not `Acme`."""
    return word.isalpha() and len(word) <= 4 and (word.isupper() or word.lower() == "inv")


def name_digits(name: str) -> list[int]:
    """The numbers a deal name gives after the word invoice (`Invoice 42`, `INV-0042`)."""
    return sorted({int(match) for match in _AFTER_THE_WORD.findall(name)})


class NumberIndex:
    """The receivables by normalised number and by the number they end with."""

    def __init__(self, receivables: Iterable[Receivable]) -> None:
        self.by_number: dict[str, list[Receivable]] = defaultdict(list)
        self.by_digits: dict[int, list[Receivable]] = defaultdict(list)
        for receivable in sorted(receivables, key=lambda r: r.key):
            number = normalise_number(receivable.number)
            if number:
                self.by_number[number].append(receivable)
            digits = digits_key(receivable.number)
            if digits is not None:
                self.by_digits[digits].append(receivable)

    def match(self, deal: Deal) -> DealMatch:
        property_number = normalise_number(deal.number)
        if property_number:
            named = self.by_number.get(property_number, [])
            if not named:
                return DealMatch(None, None, f"its invoice number {deal.number} is no receivable's number")
            return _checked(deal, named, "invoice_number", f"its invoice number {deal.number}")
        if not deal.name:
            return DealMatch(None, None, "no invoice number in its name or number property")
        exact = {r.key: r for key in name_numbers(deal.name) for r in self.by_number.get(key, [])}
        if exact:
            return _checked(deal, list(exact.values()), "deal_name", f"its name {deal.name!r}")
        digits = name_digits(deal.name)
        by_digits = {r.key: r for key in digits for r in self.by_digits.get(key, [])}
        if by_digits:
            return _checked(deal, list(by_digits.values()), "deal_name", f"its name {deal.name!r}")
        if digits or name_numbers(deal.name):
            return DealMatch(None, None, f"its name {deal.name!r} gives a number no receivable has")
        return DealMatch(None, None, "no invoice number in its name or number property")


def _checked(deal: Deal, named: list[Receivable], rule: str, source: str) -> DealMatch:
    if len(named) > 1:
        numbers = ", ".join(sorted(r.number for r in named))
        return DealMatch(None, None, f"{source} fits {len(named)} receivables ({numbers}): left for a person")
    receivable = named[0]
    if deal.currency and deal.currency.upper() != receivable.currency.upper():
        return DealMatch(
            None,
            None,
            f"{source} names {receivable.number}, but the deal is in {deal.currency}, the invoice in "
            f"{receivable.currency}",
        )
    if deal.amount and receivable.total is not None and deal.amount != receivable.total:
        return DealMatch(
            None,
            None,
            f"{source} names {receivable.number}, but the deal's amount {deal.amount} is not the "
            f"invoice's total {receivable.total}",
        )
    return DealMatch(receivable.key, rule, f"{source} names invoice {receivable.number}")
