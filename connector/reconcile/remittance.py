"""Invoice numbers in remittance text, and the keys that make them comparable.

A number is compared by its key, not its spelling: letter runs upper-cased, digit runs
without leading zeros, punctuation and spaces dropped. "INV-0042", "inv 42" and "INV0042"
all have the key "INV|42"; the digits alone ("42") are the numeric key that "#42",
"Invoice 42" and a bare "42" use.

`mentions()` reads a remittance line into ordered `Mention`s:

- marked: after an invoice word ("invoice", "inv", "no", ...) or "#", and the list that
  follows it ("Invoice #42 + #43", "Invoices 42, 43 and 44"); a marked "37/38" or "37-38"
  that names no invoice as a whole is the list 37, 38 (`NumberIndex.expand`);
- prefixed: a word glued to a number ("ACME-0007", "PO 1234"), matched by its full key against
  invoice numbers and extra references (purchase orders);
- bare: a number alone, used only when a single open invoice of the payer can mean it.

Dates and amounts ("2024-03-05", "1,250.00", "12.345") are removed first, so they are never
read as invoice numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from connector.money import CURRENCY_EXPONENTS

Strength = Literal["marked", "prefixed", "bare"]

# Words that announce an invoice number.
INVOICE_WORDS = frozenset(
    [
        "INV",
        "INVS",
        "INVOICE",
        "INVOICES",
        "INVOICENO",
        "NO",
        "NOS",
        "NR",
        "NRS",
        "NUM",
        "NUMBER",
        "NUMBERS",
        "BILL",
        "BILLS",
        "FACTURE",
        "FACTURES",
        "FACTURA",
        "FACTURAS",
        "FATTURA",
        "RECHNUNG",
        "RECHNUNGEN",
        "RG",
    ]
)
# Words whose number is something else: it is matched against references, never read bare.
OTHER_NUMBER_WORDS = frozenset(
    [
        "PO",
        "PONO",
        "PURCHASE",
        "ORDER",
        "ORDERS",
        "ORD",
        "SO",
        "ACCOUNT",
        "ACCT",
        "ACC",
        "AC",
        "CUSTOMER",
        "CUST",
        "CLIENT",
        "KUNDE",
        "TEL",
        "PHONE",
        "FAX",
        "IBAN",
        "BIC",
        "SWIFT",
        "SORT",
        "CHEQUE",
        "CHECK",
        "CHK",
        "TXN",
        "TRANSACTION",
        "BATCH",
        "QTY",
        "ID",
        "REFUND",
        "CREDIT",
        "CN",
        "CREDITNOTE",
    ]
) | frozenset(CURRENCY_EXPONENTS)
# Words that join the numbers of one list.
LIST_WORDS = frozenset({"AND", "ET", "UND", "Y", "E"})

_DATE = re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b|\b\d{1,2}[./-]\d{1,2}[./-]\d{2,4}\b")
_AMOUNT = re.compile(r"\b\d{1,3}(?:,\d{3})+(?:\.\d{1,3})?\b|\b\d+[.,]\d{1,3}\b")
_TOKEN = re.compile(r"(?P<word>[^\W\d_]+)|(?P<num>\d+(?:[-/]\d+)*)|(?P<hash>[#№])|(?P<sep>[,+&;])|(?P<punct>\S)")
_PARTS = re.compile(r"[^\W\d_]+|\d+")
_DIGITS = re.compile(r"\d+")
_HAS_DIGIT = re.compile(r"\d")
# An ASCII number of one letter run and one digit run: the common shape, keyed without a loop.
_SIMPLE_NUMBER = re.compile(r"([A-Za-z]*)[ #./-]*([0-9]+)\Z")
# Every date and amount has a digit, one of "-./," and a digit in a row: without that, the
# two substitutions have nothing to remove.
_DATE_OR_AMOUNT = re.compile(r"\d[-./,]\d")


def _key(parts: Iterable[str]) -> str:
    return "|".join([part.lstrip("0") or "0" if part.isdigit() else part.upper() for part in parts])


def number_keys(number: str) -> tuple[str, str | None]:
    """(full key, numeric key) of an invoice number or reference; the numeric key is None
    when it has no digits."""
    simple = _SIMPLE_NUMBER.match(number)
    if simple is not None:  # "INV-0042", "0042": the loop below, in short
        prefix, digit_run = simple.groups()
        numeric = digit_run.lstrip("0") or "0"
        return (f"{prefix.upper()}|{numeric}" if prefix else numeric), numeric
    keys = []
    digits = []
    for part in _PARTS.findall(number):
        if part.isdigit():
            part = part.lstrip("0") or "0"
            digits.append(part)
        else:
            part = part.upper()
        keys.append(part)
    return "|".join(keys), ("|".join(digits) if digits else None)


@dataclass(frozen=True, slots=True)
class Mention:
    """One number read in a remittance line, with how sure the reading is."""

    text: str
    strength: Strength
    numeric_key: str
    full_key: str | None = None  # for a prefixed number: prefix and digits
    prefix: str | None = None
    # "inv 37/38", "inv 37-38": the digit runs of a marked number joined by "/" or "-", read
    # as a list when the whole number names no invoice (`NumberIndex.expand`).
    parts: tuple[str, ...] = ()


def mentions(remittance: str | None) -> list[Mention]:
    """The numbers in a remittance line, in the order written, each once."""
    if not remittance or _HAS_DIGIT.search(remittance) is None:
        return []  # no digit, no number
    text = remittance
    if _DATE_OR_AMOUNT.search(text) is not None:
        text = _AMOUNT.sub(" ", _DATE.sub(" ", text))
    found: list[Mention] = []
    seen: set[tuple[str, str | None]] = set()
    marked = False  # the next number is announced by an invoice word or "#"
    listing = False  # a marked number came last and only list separators followed it
    prefix: str | None = None  # the word right before this number, glued by punctuation
    list_prefix: str | None = None  # the prefix of the list being read ("INV-0042, 0043")
    # One tuple of the five groups per token; exactly one group is not empty.
    for word, token, hashmark, sep, _punct in _TOKEN.findall(text):
        if word:
            word = word.upper()
            if word in INVOICE_WORDS:
                marked, prefix = True, word
            elif word in LIST_WORDS and listing:
                marked, prefix = True, list_prefix
            else:
                marked, listing, prefix = False, False, word
            continue
        if not token:
            if hashmark:
                marked = True
                prefix = prefix if prefix in INVOICE_WORDS else None
            elif sep:
                marked, prefix = listing, (list_prefix if listing else None)
            continue
        numbers = _DIGITS.findall(token)
        digits = "|".join([part.lstrip("0") or "0" for part in numbers])
        mention: Mention
        full = None if prefix is None else _key([prefix, *numbers])
        if marked:
            mention = Mention(token, "marked", digits, full, prefix, tuple(numbers) if len(numbers) > 1 else ())
        elif prefix is not None:
            mention = Mention(token, "prefixed", digits, full, prefix)
        else:
            mention = Mention(token, "bare", digits)
        key = (digits, full)
        if key not in seen:
            seen.add(key)
            found.append(mention)
        listing = marked
        marked, list_prefix, prefix = False, prefix, None
    return found


Found = Literal["number", "reference", "bare"]


class NumberIndex:
    """Invoice ids by the keys of their numbers and of their extra references (purchase
    orders, the customer's own reference): the searchable side of remittance matching."""

    def __init__(self) -> None:
        self._numbers: dict[str, list[str]] = {}
        self._numeric: dict[str, list[str]] = {}
        self._refs: dict[str, list[str]] = {}
        self._ref_numeric: dict[str, list[str]] = {}

    def add(self, invoice_id: str, number: str | None, references: Iterable[str] = ()) -> None:
        if number:
            full, numeric = number_keys(number)
            self._numbers.setdefault(full, []).append(invoice_id)
            if numeric is not None and numeric != full:
                self._numeric.setdefault(numeric, []).append(invoice_id)
        for reference in references:
            full, numeric = number_keys(reference)
            self._refs.setdefault(full, []).append(invoice_id)
            if numeric is not None:
                self._ref_numeric.setdefault(numeric, []).append(invoice_id)

    def expand(self, found: list[Mention]) -> list[Mention]:
        """`found` with each marked number of several digit runs ("inv 37/38", "inv 37-38")
        read as a list of numbers when the whole of it names no invoice: "INV-2024-0042"
        stays one number as long as an invoice has it."""
        if not any(mention.parts for mention in found):
            return found
        out: list[Mention] = []
        seen: set[tuple[str, str | None]] = set()
        for mention in found:
            readings = [mention]
            if mention.parts and not self.lookup(mention)[0]:
                prefix = mention.prefix
                readings = [
                    Mention(
                        part,
                        "marked",
                        part.lstrip("0") or "0",
                        None if prefix is None else _key([prefix, part]),
                        prefix,
                    )
                    for part in mention.parts
                ]
            for reading in readings:
                key = (reading.numeric_key, reading.full_key)
                if key not in seen:
                    seen.add(key)
                    out.append(reading)
        return out

    def _by_number(self, numeric: str) -> list[str]:
        # A number with no letters ("0042") is its own numeric key, kept once in `_numbers`.
        return [*self._numbers.get(numeric, ()), *self._numeric.get(numeric, ())]

    def lookup(self, mention: Mention) -> tuple[list[str], Found]:
        """The invoice ids a mention may mean, and how sure the reading is."""
        if mention.full_key is not None:
            ids = self._numbers.get(mention.full_key)
            if ids:
                return list(ids), "number"
            if mention.strength == "prefixed":
                ids = self._refs.get(mention.full_key)
                if ids:
                    return list(ids), "reference"
        if mention.strength == "marked":
            return self._by_number(mention.numeric_key), "number"
        if mention.strength == "prefixed" and mention.prefix in OTHER_NUMBER_WORDS:
            return list(self._ref_numeric.get(mention.numeric_key, ())), "reference"
        return self._by_number(mention.numeric_key), "bare"
