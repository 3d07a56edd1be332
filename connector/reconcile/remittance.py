"""Invoice numbers and periods in remittance text, read the way a clerk reads them.

A number is compared by its key, not its spelling: letter runs upper-cased, digit runs
without leading zeros, punctuation and spaces dropped. "INV-0042", "inv 42" and "INV0042"
all have the key "INV|42"; the digits alone ("42") are the numeric key that "#42",
"Invoice 42" and a bare "42" use.

`mentions()` reads a remittance line into ordered `Mention`s:

- marked: after an invoice word ("invoice", "inv", "no", ...) or "#", and the list or range
  that follows it ("Invoice #42 + #43", "Invoices 42, 43 and 44", "42 to 45", "#42-#45"); a
  list or range of plain numbers ("42, 43 & 44", "42-45") is marked too. A range counts when
  both ends share their prefix and it spans at most `MAX_RANGE` numbers. A marked "37/38" or
  "42-45" written as one number stays one until `NumberIndex.expand` finds that no invoice
  has it whole ("INV-2024-0042" is one number as long as an invoice has it);
- prefixed: a word glued to a number ("ACME-0007"), matched by its full key against invoice
  numbers and references; a payment gateway's number ("A1B2C3D4-0042") is one of these;
- references: the number after a purchase-order, order, account or customer-reference word
  ("PO#2026-0214", "order no 4711", "your ref ABC-12"), looked up among the invoices'
  references only, never among their numbers;
- bare: a number alone, used only when a single open invoice of the payer can mean it.

Numbers that a clerk reads as something else are never invoice numbers: dates ("2024-03-05",
"5 March 2026", "March 5th", "05/03"), amounts ("1,250.00", "$2000", "2000 EUR", "2.000,00"),
percentages ("50%", "50 pct"), quantities ("3 x", "qty 3", "3 licences"), years ("2026",
"FY26") and periods ("Q3", "H1", "3rd quarter").

`periods()` reads the months a line names ("March", "Jul-Sep 2026", "Q3/2026", "H1") for
the rules that compare them with an invoice's dates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from connector.money import CURRENCY_EXPONENTS


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


Strength = Literal["marked", "prefixed", "bare"]
# How a mention was written: alone, as one item of a list, or as one number of a range.
Source = Literal["single", "list", "range"]

# The longest range read as a range: "42-45" is four invoices, "100-999" is something else.
MAX_RANGE = 24

# Words that announce an invoice number.
INVOICE_WORDS = _words(
    """
    INV INVS INVOICE INVOICES INVOICENO NO NOS NR NRS NUM NUMBER NUMBERS BILL BILLS FACTURE
    FACTURES FACTURA FACTURAS FATTURA FATTURE FACTUUR FACTUREN RECHNUNG RECHNUNGEN RG
    """
)
# Words that say "number" without saying of what: "order no 4711" is an order number,
# "no 42" alone an invoice number.
NUMBER_WORDS = _words("NO NOS NR NRS NUM NUMBER NUMBERS")
# Words whose number is something else: it is matched against references, never against
# invoice numbers.
OTHER_NUMBER_WORDS = _words(
    """
    PO POS PONO PURCHASE ORDER ORDERS ORD SO BESTELLUNG BESTELLNR COMMANDE PEDIDO ORDINE
    BESTELLING ACCOUNT ACCT ACC AC CUSTOMER CUST CLIENT KUNDE KUNDENNR TEL PHONE FAX IBAN BIC
    SWIFT SORT CHEQUE CHECK CHK TXN TRANSACTION BATCH ID REFUND CREDIT CN CREDITNOTE
    """
)
# Words that announce the payer's own reference: a code with letters of its own after them
# ("your ref ABC-12") is a reference; a plain number ("ref 42") is read as before.
REFERENCE_WORDS = _words(
    """
    REF REFS REFERENCE REFERENZ RÉFÉRENCE REFERENCIA RIFERIMENTO KENMERK VZ
    """
)
# Words that join the numbers of one list, and the two ends of a range.
LIST_WORDS = _words("AND ET UND Y E EN")
RANGE_WORDS = _words("TO THROUGH THRU TILL UNTIL BIS À AU AL TOT")
# A number followed by one of these counts something: "3 licences", "3 x", "5 days".
UNIT_WORDS = _words(
    """
    X TIMES LICENCE LICENCES LICENSE LICENSES LIZENZ LIZENZEN SEAT SEATS USER USERS UNIT UNITS
    PC PCS PIECE PIECES ITEM ITEMS STK STÜCK HOUR HOURS HR HRS H STUNDEN HEURES HORAS ORE UREN
    DAY DAYS TAGE JOURS DIAS WEEK WEEKS MONTH MONTHS MO MOS MONAT MONATE MOIS MESES MESI MAANDEN
    YEAR YEARS YR YRS JAHRE ANS
    """
)
# A number after one of these is a quantity: "qty 3", "x3".
QUANTITY_WORDS = _words("QTY QUANTITY X MENGE ANZAHL QTÉ QTE CANTIDAD AANTAL")
PERCENT_WORDS = _words("PERCENT PCT PROZENT POURCENT PERCENTO PROCENT CIENTO")
# Letters glued before a period number: "Q3", "H1", "FY2026", "KW 12".
PERIOD_WORDS = _words("Q H FY GJ KW CW WK")
ORDINAL_SUFFIXES = _words("ST ND RD TH ER ÈME EME")
QUARTER_WORDS = _words("QUARTER QUARTAL TRIMESTRE KWARTAAL QTR")
HALF_WORDS = _words("HALF HALBJAHR SEMESTRE SEMESTER")
_PERIOD_NOUNS = QUARTER_WORDS | HALF_WORDS
# "5th of March", "5 de marzo", "5 di marzo"
_DAY_OF = _words("OF DE DI")
ORDINAL_WORDS = {"FIRST": 1, "SECOND": 2, "THIRD": 3, "FOURTH": 4}
# Currency codes that are also English words count only when written in capitals.
CURRENCY_CODES = frozenset(CURRENCY_EXPONENTS)
COMMON_CURRENCIES = _words("EUR USD GBP CHF JPY CAD AUD SEK NOK DKK PLN")

_MONTH_NAMES = {
    1: "JANUARY JAN JANUAR JÄNNER JANVIER JANV ENERO ENE GENNAIO GEN JANUARI",
    2: "FEBRUARY FEB FEBR FEBRUAR FÉVRIER FEVRIER FÉVR FEVR FEBRERO FEBBRAIO FEBRUARI",
    3: "MARCH MAR MÄRZ MAERZ MRZ MARS MARZO MAART MRT",
    4: "APRIL APR AVRIL AVR ABRIL ABR APRILE",
    5: "MAY MAI MAYO MAGGIO MAG MEI",
    6: "JUNE JUN JUNI JUIN JUNIO GIUGNO GIU",
    7: "JULY JUL JULI JUILLET JUIL JULIO LUGLIO LUG",
    8: "AUGUST AUG AOÛT AOUT AGOSTO AUGUSTUS",
    9: "SEPTEMBER SEP SEPT SEPTEMBRE SEPTIEMBRE SETIEMBRE SETTEMBRE SETT",
    10: "OCTOBER OCT OKTOBER OKT OCTOBRE OCTUBRE OTTOBRE OTT",
    11: "NOVEMBER NOV NOVEMBRE NOVIEMBRE",
    12: "DECEMBER DEC DEZEMBER DEZ DÉCEMBRE DECEMBRE DÉC DICIEMBRE DIC DICEMBRE",
}
MONTHS = {name: month for month, names in _MONTH_NAMES.items() for name in names.split()}
# Month names that are also ordinary words ("may", "march", "Jan", "sept" is French for
# seven): a month only when written next to a year, a day, another period word, or after
# "for", "of", "in"...; "May", "March", "June", "April" and "August" also only when
# capitalised or between two numbers ("5 may 2026").
AMBIGUOUS_MONTHS = _words("MAY MARCH MAR JAN JUNE APRIL AUGUST MARS SEPT GEN MAG")
CAPITALISED_MONTHS = _words("MAY MARCH JUNE APRIL AUGUST")
PERIOD_PREPOSITIONS = _words("FOR OF IN IM FÜR EN DE DI VAN DU AU DEL VOOR POUR")
# What a month's invoice is for, written after the month: "March subscription".
BILLED_WORDS = _words(
    """
    SUBSCRIPTION SUBSCRIPTIONS RENT FEE FEES RETAINER SERVICE SERVICES LICENCE LICENSE INVOICE
    INVOICES BILLING PAYMENT INSTALMENT INSTALLMENT ABO ABONNEMENT MIETE LOYER CUOTA ALQUILER
    HUUR CANONE
    """
)

_WordKind = Literal[
    "invoice", "number", "other", "reference", "list", "range", "unit", "quantity", "percent", "period", "ordinal"
]
# One dict lookup per word instead of a set test per kind; order matters where a word is in
# two sets ("NO" announces an invoice unless it follows an order word; "X" counts either way).
_WORD_KINDS: dict[str, _WordKind] = {
    **dict.fromkeys(ORDINAL_SUFFIXES, "ordinal"),
    **dict.fromkeys(UNIT_WORDS, "unit"),
    **dict.fromkeys(QUANTITY_WORDS, "quantity"),
    **dict.fromkeys(PERIOD_WORDS, "period"),
    **dict.fromkeys(PERCENT_WORDS, "percent"),
    **dict.fromkeys(RANGE_WORDS, "range"),
    **dict.fromkeys(LIST_WORDS, "list"),
    **dict.fromkeys(REFERENCE_WORDS, "reference"),
    **dict.fromkeys(OTHER_NUMBER_WORDS, "other"),
    **dict.fromkeys(INVOICE_WORDS, "invoice"),
    **dict.fromkeys(NUMBER_WORDS, "number"),
}

_DATE = re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b|\b\d{1,2}[./-]\d{1,2}[./-]\d{2,4}\b")
_AMOUNT = re.compile(
    r"\b\d{1,3}(?:([,.'’])\d{3})(?:\1\d{3})*(?:[.,]\d{1,3})?\b|\b\d{1,3}(?:[ \u00a0\u202f]\d{3})+[.,]\d{2}\b"
    r"|\b\d+[.,]\d{1,3}\b"
)
# A payment gateway's invoice number (Stripe: the customer's prefix of 8 capitals and digits,
# a dash, 4 digits), kept whole: its digits alone mean nothing. A prefix of letters only is
# read as a word glued to a number, to the same keys.
_GATEWAY_NUMBER = r"\b(?=[A-Z]{0,7}[0-9])[A-Z0-9]{8}-[0-9]{4}\b"
_TOKEN = re.compile(
    rf"(?P<code>{_GATEWAY_NUMBER})|(?P<word>[^\W\d_]+)|(?P<num>\d+(?:[-/]\d+)*)|(?P<mark>[#№])"
    r"|(?P<sep>[,+&;])|(?P<dash>[-–—])|(?P<sign>[%$€£¥₹])|(?P<punct>\S)"
)
# The commonest remittance of all: one invoice word or "#" and one number.
_ONE_INVOICE = re.compile(r"\s*+([^\W\d_]++)?[\s.:-]*+(#?)\s*+(\d++)\s*+\Z")
_PARTS = re.compile(r"[^\W\d_]+|\d+")
_DIGITS = re.compile(r"\d+")
_HAS_DIGIT = re.compile(r"\d")
# An ASCII number of one letter run and one digit run: the common shape, keyed without a loop.
_SIMPLE_NUMBER = re.compile(r"([A-Za-z]*)[ #./-]*([0-9]+)\Z")
# Every date and amount has a digit, one of "-./,'" and a digit in a row: without that, the
# two substitutions have nothing to remove.
_DATE_OR_AMOUNT = re.compile(r"\d[-./,'’]\d")

# (kind, text, start) of one token; kind is the name of the group that matched.
Token = tuple[str, str, int]


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
    # "inv 37/38", "inv 37-38", "42-45": the numbers a marked number written as one stands
    # for, read so when the whole number names no invoice (`NumberIndex.expand`).
    parts: tuple[str, ...] = ()
    source: Source = "single"
    # A purchase-order, order or customer reference: looked up among the invoices'
    # references, never among their numbers.
    reference: bool = False


@dataclass(frozen=True, slots=True)
class Period:
    """Months a remittance line names ("Q3 2026", "Jul-Sep", "März"), with the year when
    one is written next to them."""

    months: frozenset[int]
    year: int | None
    text: str


def _tokens(text: str) -> list[Token]:
    return [(match.lastgroup or "punct", match[0], match.start()) for match in _TOKEN.finditer(text)]


def _is_year(digits: str) -> bool:
    return len(digits) == 4 and 1990 <= int(digits) <= 2099


def _month_at(tokens: list[Token], i: int) -> int:
    """The month the word at `i` names, or 0; ambiguous names need a period's company."""
    kind, word, _ = tokens[i]
    if kind != "word":
        return 0
    upper = word.upper()
    month = MONTHS.get(upper, 0)
    if not month or upper not in AMBIGUOUS_MONTHS:
        return month
    before = tokens[i - 1] if i else None
    after = tokens[i + 1] if i + 1 < len(tokens) else None
    if upper in CAPITALISED_MONTHS and not word[0].isupper():
        between_numbers = before is not None and after is not None and before[0] == after[0] == "num"
        return month if between_numbers else 0
    for neighbour in (before, after):
        if neighbour is None:
            continue
        if neighbour[0] == "num" and (int(_DIGITS.findall(neighbour[1])[0]) <= 31 or _is_year(neighbour[1][:4])):
            return month
    if before is not None and before[0] == "word" and before[1].upper() in PERIOD_PREPOSITIONS:
        return month
    if after is not None and after[0] == "word" and after[1].upper() in BILLED_WORDS:
        return month  # "March subscription"
    # "May-Jun", "April and May": another month a joiner away
    for j in (i - 2, i + 2):
        if 0 <= j < len(tokens) and tokens[j][0] == "word" and tokens[j][1].upper() in MONTHS:
            joiner = tokens[(i + j) // 2]
            if joiner[0] in ("dash", "sep") or joiner[1].upper() in RANGE_WORDS or joiner[1].upper() in LIST_WORDS:
                return month
    return 0


def _month_follows(tokens: list[Token], i: int) -> bool:
    """Whether a month name follows the day number at `i`."""
    j = i + 1
    if j < len(tokens) and (tokens[j][1] == "." or (tokens[j][1].upper() in ORDINAL_SUFFIXES and _glued(tokens, j))):
        j += 1
    if j < len(tokens) and tokens[j][1].upper() in _DAY_OF:
        j += 1
    return j < len(tokens) and _month_at(tokens, j) > 0


def _glued(tokens: list[Token], i: int) -> bool:
    """Whether the token at `i` touches the one before it ("Q3", "5th", "3x")."""
    return i > 0 and tokens[i - 1][2] + len(tokens[i - 1][1]) == tokens[i][2]


class _Reader:
    """One pass over the tokens of a remittance line (see `mentions`)."""

    __slots__ = (
        "after_period",
        "context",
        "found",
        "last_word",
        "list_context",
        "list_head",
        "list_joined",
        "list_open",
        "list_prefix",
        "prefix",
        "seen",
        "skip",
        "tokens",
    )

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.found: list[Mention] = []
        self.seen: set[tuple[str, str | None, bool]] = set()
        # What announced the next number: an invoice word or "#", an order or account word,
        # a reference word, or nothing.
        self.context: Literal["invoice", "other", "reference"] | None = None
        self.prefix: str | None = None  # the word right before the next number
        self.last_word = ""
        self.skip: Literal["quantity", "period", "amount"] | None = None  # the next number is one
        self.after_period = -1  # token index right after a period's number ("Q3 26")
        # The list being read: open after a number while only separators follow it.
        self.list_open = False
        self.list_joined = False  # a separator or list word came since the last number
        self.list_context: Literal["invoice", "other", "reference"] | None = None
        self.list_prefix: str | None = None
        self.list_head = -1  # index in `found` of the list's first number

    def read(self) -> list[Mention]:
        tokens = self.tokens
        i = 0
        while i < len(tokens):
            kind, value, _ = tokens[i]
            if kind == "num":
                i = self._number(i)
                continue
            if kind == "word":
                self._word(i, value)
            elif kind == "code":
                self._code(value)
            elif kind == "mark":
                if self.context != "other":  # "PO#4711" stays a purchase order
                    self.context = "invoice"
                    self.prefix = self.prefix if self.prefix in INVOICE_WORDS else None
            elif kind == "sep":
                if self.list_open:
                    self.list_joined = True
                    self.context, self.prefix = self.list_context, self.list_prefix
                else:
                    self.context, self.prefix = None, None
            elif kind == "sign" and value != "%" and self._number_follows(i):
                self.skip = "amount"  # "$2000", "€ 2000"
            i += 1
        return self.found

    def _code(self, value: str) -> None:
        """A gateway's invoice number, looked up whole; after "PO" and the like, a reference."""
        full, numeric = number_keys(value)
        source = self._listed(self.list_open and self.list_joined, upgrade=False)
        if self.context == "other" and self.prefix is not None:
            full = f"{self.prefix}|{full}"
            self._emit(Mention(value, "prefixed", numeric or full, full, self.prefix, source=source, reference=True))
        else:
            self._emit(Mention(value, "prefixed", numeric or full, full, value.split("-", 1)[0], source=source))
        self._end_number()

    def _word(self, i: int, word: str) -> None:
        upper = word.upper()
        if upper == "O" and self.last_word == "P":  # "P.O."
            upper = "PO"
        self.last_word = upper
        kind = _WORD_KINDS.get(upper)
        if kind == "list" and self.list_open:
            self.list_joined = True
            self.context, self.prefix = self.list_context, self.list_prefix
            return
        self.list_open = False
        if kind == "invoice":
            self.context, self.prefix = "invoice", upper
        elif kind == "number":
            if self.context != "other":  # "order no 4711" stays an order number
                self.context, self.prefix = "invoice", upper
        elif kind == "other":
            self.context, self.prefix = "other", "PO" if upper in ("PURCHASE", "PONO") else upper
        elif kind == "reference":
            self.context, self.prefix = "reference", upper
        elif kind in ("quantity", "period") and self._number_follows(i):
            self.skip = "quantity" if kind == "quantity" else "period"
        elif (upper in CURRENCY_CODES and (word.isupper() or upper in COMMON_CURRENCIES)) and self._number_follows(i):
            self.skip = "amount"
        elif self.context == "reference" and self.prefix in REFERENCE_WORDS and self._number_follows(i):
            self.prefix = upper  # "your ref ABC-12": the reference's own letters
        else:
            self.context, self.prefix = None, upper

    def _number_follows(self, i: int, taken_out: bool = False) -> bool:
        """Whether a number comes right after the token at `i` (`taken_out`: or a date or an
        amount that `mentions` took out)."""
        tokens = self.tokens
        j = i + 1
        if j < len(tokens) and tokens[j][0] in ("dash", "punct", "mark"):
            if tokens[j][1] == "¤":
                return taken_out
            j += 1
        return j < len(tokens) and tokens[j][0] == "num"

    def _not_an_invoice_number(self, i: int, runs: list[str]) -> bool:
        """Whether the number at `i` is a quantity, percentage, amount, date, year or period."""
        tokens = self.tokens
        value = tokens[i][1]
        if self.skip is not None:
            if self.skip == "period":
                self.after_period = i + 1
            return True
        if self.after_period == i and len(runs) == 1 and (len(value) <= 2 or _is_year(value)):
            return True  # the year of "Q3 26", "Q3 2026"
        if i + 1 < len(tokens):
            kind, after, _ = tokens[i + 1]
            # "INV-0042 x3", "INV-0042 EUR 2,000": a word or sign that leads the next number
            # is that number's, not this one's
            ours = _glued(tokens, i + 1) or not self._number_follows(i + 1, taken_out=True)
            if kind == "sign" and (after == "%" or ours):
                return True  # "50%", "2000 €"
            if kind == "word":
                upper = after.upper()
                follower = _WORD_KINDS.get(upper)
                if ((upper in UNIT_WORDS or follower == "percent") and ours) or (
                    follower == "ordinal" and _glued(tokens, i + 1)
                ):
                    return True  # "3 licences", "3x", "50 pct", "5th", "3rd quarter"
                if ours and upper in CURRENCY_CODES and (after.isupper() or upper in COMMON_CURRENCIES):
                    return True  # "2000 EUR"
            if len(runs) == 1 and int(value) <= 31 and _month_follows(tokens, i):
                return True  # "5 March", "5. März", "5th of March", "5 de marzo"
        if i > 0 and len(runs) == 1 and (int(value) <= 31 or _is_year(value)):
            if _month_at(tokens, i - 1) or tokens[i - 1][1].upper() in _PERIOD_NOUNS:
                return True  # "March 5", "March 2026", "quarter 3", "3rd quarter 2026"
        if self.context is None or (self.context == "reference" and self.prefix in REFERENCE_WORDS):
            if len(runs) == 1:
                return _is_year(value)  # a year alone
            first, second = runs[0], runs[1]
            if _is_year(first) and (len(second) <= 2 or _is_year(second)):
                return True  # "2026-03", "2026/27", "2025-2026"
            if len(runs) == 2 and len(first) <= 2 and len(second) <= 2:
                day, month = int(first), int(second)
                return (1 <= day <= 31 and 1 <= month <= 12) or (1 <= day <= 12 and 1 <= month <= 31)  # "05/03"
        return False

    def _range_end(self, i: int) -> tuple[int, str] | None:
        """(index, digits) of the far end of a range that starts with the number at `i`:
        "42-45", "42 to 45", "INV-0042 to INV-0045", "#42-#45"."""
        tokens = self.tokens
        j = i + 1
        if j >= len(tokens):
            return None
        kind, value, _ = tokens[j]
        if not (kind == "dash" or (kind == "word" and value.upper() in RANGE_WORDS)):
            return None
        j += 1
        if j < len(tokens) and tokens[j][0] == "mark":
            j += 1
        elif j < len(tokens) and tokens[j][0] == "word":
            if self.prefix is None or tokens[j][1].upper() != self.prefix:
                return None
            j += 1
            if j < len(tokens) and tokens[j][0] in ("dash", "punct"):
                j += 1
        if j < len(tokens) and tokens[j][0] == "num" and tokens[j][1].isdigit():
            return j, tokens[j][1]
        return None

    def _number(self, i: int) -> int:
        """Read the number at `i`; the index of the token after what was read."""
        value = self.tokens[i][1]
        runs = value.replace("/", "-").split("-")
        end = self._range_end(i) if len(runs) == 1 else None
        if self._not_an_invoice_number(i, runs) or (
            end is not None and _range(value, end[1]) and self._not_an_invoice_number(end[0], [end[1]])
        ):
            # "March 1 to 15", "10-20 %", "2-3 days": both ends are the same kind of number
            self.skip = None
            self._end_number(listing=False)
            return (end[0] if end is not None else i) + 1
        context, prefix = self.context, self.prefix
        joined = self.list_open and self.list_joined
        if context == "other" or (context == "reference" and prefix not in REFERENCE_WORDS):
            full = None if prefix is None else _key([prefix, *runs])
            source = self._listed(joined, upgrade=False)
            self._emit(Mention(value, "prefixed", "|".join(_trim(runs)), full, prefix, source=source, reference=True))
            self._end_number()
            return i + 1
        if context == "reference":
            context = None  # "ref 42": a plain number, read as any other
        ranged = context == "invoice" or prefix is None or joined
        numbers = _range(value, end[1]) if ranged and end is not None else []
        if numbers:
            assert end is not None
            prefix = prefix if context == "invoice" else None
            for number in numbers:
                self._emit(Mention(number, "marked", _trim([number])[0], _full(prefix, number), prefix, source="range"))
            self._end_number()
            return end[0] + 1
        digits = "|".join(_trim(runs))
        full = None if prefix is None else _key([prefix, *runs])
        numbers = _range(*runs) if ranged and len(runs) == 2 and "-" in value else []
        if numbers:
            # "42-45", "INV-0042-0045": one number if an invoice has it, else the range
            if context != "invoice":
                prefix = full = None
            self._emit(Mention(value, "marked", digits, full, prefix, tuple(numbers), source="range"))
        elif context == "invoice":
            parts = tuple(runs) if len(runs) > 1 else ()
            source = self._listed(joined, upgrade=False) if joined else ("list" if parts else "single")
            self._emit(Mention(value, "marked", digits, full, prefix, parts, source))
        elif joined and prefix is None:
            # "42, 43 & 44": plain numbers in a list are read as invoice numbers
            self._emit(Mention(value, "marked", digits, source=self._listed(joined, upgrade=True)))
        elif prefix is not None:
            self._emit(Mention(value, "prefixed", digits, full, prefix, source=self._listed(joined, upgrade=False)))
        else:
            self._emit(Mention(value, "bare", digits))
        self._end_number()
        return i + 1

    def _listed(self, joined: bool, upgrade: bool) -> Source:
        """ "list" for a number that continues a list, marking the list's first number so
        too (`upgrade`: a plain first number becomes a marked one)."""
        if not joined:
            return "single"
        if self.list_head >= 0:
            head = self.found[self.list_head]
            strength: Strength = "marked" if upgrade and head.strength == "bare" else head.strength
            self.found[self.list_head] = Mention(
                head.text, strength, head.numeric_key, head.full_key, head.prefix, head.parts, "list", head.reference
            )
            self.list_head = -1
        return "list"

    def _emit(self, mention: Mention) -> None:
        key = (mention.numeric_key, mention.full_key, mention.reference)
        if key not in self.seen:
            self.seen.add(key)
            self.found.append(mention)
            if not (self.list_open and self.list_joined):
                self.list_head = len(self.found) - 1
        elif not (self.list_open and self.list_joined):
            self.list_head = -1

    def _end_number(self, listing: bool = True) -> None:
        self.list_open = listing
        self.list_joined = False
        if listing:
            self.list_context, self.list_prefix = self.context, self.prefix
            if self.list_context == "reference" and self.list_prefix in REFERENCE_WORDS:
                self.list_context = None
        self.context, self.prefix = None, None


def _trim(runs: list[str]) -> list[str]:
    return [run.lstrip("0") or "0" for run in runs]


def _full(prefix: str | None, number: str) -> str | None:
    return None if prefix is None else _key([prefix, number])


def _range(start: str, end: str) -> list[str]:
    """The numbers from `start` to `end` zero-padded like `start` ("0042".."0045"), or none
    when the two are not the ends of a short range. An end shorter than the start gives its
    last digits ("INV-0098-01" is 98 to 101)."""
    first, last = int(start), int(end)
    if last < first and len(end) < len(start):
        scale = 10 ** len(end)
        last += first - first % scale + (scale if last < first % scale else 0)
    if not first < last < first + MAX_RANGE or (_is_year(start) and _is_year(end)):
        return []
    width = len(start) if start.startswith("0") else 0
    return [str(number).zfill(width) for number in range(first, last + 1)]


def mentions(remittance: str | None) -> list[Mention]:
    """The numbers in a remittance line, in the order written, each once."""
    if not remittance or _HAS_DIGIT.search(remittance) is None:
        return []  # no digit, no number
    one = _ONE_INVOICE.match(remittance)
    if one is not None:  # "INV-0042", "Invoice #42", "#42": the reader below, in short
        word, hashmark, number = one.groups()
        numeric = number.lstrip("0") or "0"
        if word is None and hashmark:
            return [Mention(number, "marked", numeric)]
        prefix = None if word is None else word.upper()
        if prefix in INVOICE_WORDS:
            return [Mention(number, "marked", numeric, f"{prefix}|{numeric}", prefix)]
    text = remittance
    if _DATE_OR_AMOUNT.search(text) is not None:
        # A mark where each stood, so that the words around it do not meet ("42 EUR")
        text = _AMOUNT.sub(" ¤ ", _DATE.sub(" ¤ ", text))
    return _Reader(_tokens(text)).read()


def periods(remittance: str | None) -> list[Period]:
    """The months a remittance line names, in the order written: month names in English,
    German, French, Spanish, Italian and Dutch, month ranges ("Jul-Sep", "July to
    September"), quarters ("Q3", "Q3/2026", "3rd quarter") and halves ("H1")."""
    if not remittance:
        return []
    tokens = _tokens(remittance)
    found: list[Period] = []
    i = 0
    while i < len(tokens):
        reading = _period_at(tokens, i)
        if reading is None:
            i += 1
            continue
        months, last, year = reading
        if year is None:
            # "Q3 26" is the third quarter of 2026, "Mar 26" the 26th of March
            year, last = _year_after(tokens, last, short=tokens[i][1].upper() not in MONTHS)
        found.append(Period(frozenset(months), year, remittance[tokens[i][2] : tokens[last][2] + len(tokens[last][1])]))
        i = last + 1
    return found


def _period_at(tokens: list[Token], i: int) -> tuple[list[int], int, int | None] | None:
    """(months, index of the period's last token, year written inside it) of a period that
    starts at `i`."""
    kind, value, _ = tokens[i]
    after = tokens[i + 1] if i + 1 < len(tokens) else None
    if kind == "num":
        # "3rd quarter", "3. Quartal", "1st half"
        j = i + 1
        if after is not None and (after[1] == "." or (after[1].upper() in ORDINAL_SUFFIXES and _glued(tokens, j))):
            j += 1
        if j < len(tokens) and value.isdigit():
            return _numbered(tokens[j][1].upper(), int(value), j)
        return None
    if kind != "word":
        return None
    upper = value.upper()
    if upper in ("Q", "H") and after is not None and after[0] == "num" and _glued(tokens, i + 1):
        runs = _DIGITS.findall(after[1])
        reading = _numbered("QUARTER" if upper == "Q" else "HALF", int(runs[0]), i + 1)
        if reading is None or len(runs) == 1:
            return reading
        year = _year_of(runs[1])  # "Q3/2026"
        return (reading[0], i + 1, year) if year is not None else None
    if upper in ORDINAL_WORDS and after is not None:
        return _numbered(after[1].upper(), ORDINAL_WORDS[upper], i + 1)
    first = _month_at(tokens, i)
    if not first:
        return None
    if after is not None and i + 2 < len(tokens) and (after[0] == "dash" or after[1].upper() in RANGE_WORDS):
        last = MONTHS.get(tokens[i + 2][1].upper())
        if last:  # "Jul-Sep", "July to September"
            return [(first - 1 + step) % 12 + 1 for step in range((last - first) % 12 + 1)], i + 2, None
    return [first], i, None


def _numbered(word: str, number: int, at: int) -> tuple[list[int], int, int | None] | None:
    if word in QUARTER_WORDS and 1 <= number <= 4:
        return list(range(3 * number - 2, 3 * number + 1)), at, None
    if word in HALF_WORDS and 1 <= number <= 2:
        return list(range(6 * number - 5, 6 * number + 1)), at, None
    return None


def _year_of(digits: str, short: bool = True) -> int | None:
    if _is_year(digits):
        return int(digits)
    if short and len(digits) == 2:
        return 2000 + int(digits)
    return None


def _year_after(tokens: list[Token], last: int, short: bool) -> tuple[int | None, int]:
    """The year written right after a period ("March 2026", "Q3 26", "Jul–Sep 2026"), and
    the index of the period's last token with it."""
    j = last + 1
    if j < len(tokens) and tokens[j][1] in ("/", "'", "’", "-", ","):
        j += 1
    if j < len(tokens) and tokens[j][0] == "num" and tokens[j][1].isdigit():
        year = _year_of(tokens[j][1], short)
        if year is not None:
            return year, j
    return None, last


Found = Literal["number", "reference", "bare"]


class NumberIndex:
    """Invoice ids by the keys of their numbers and of their extra references (purchase
    orders, the customer's own reference, the numbers other systems give the invoice): the
    searchable side of remittance matching."""

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
        """`found` with each marked number written as several ("inv 37/38", "inv 37-38",
        "42-45") read as the list or range it stands for when the whole of it names no
        invoice: "INV-2024-0042" stays one number as long as an invoice has it."""
        if not any(mention.parts for mention in found):
            return found
        out: list[Mention] = []
        seen: set[tuple[str, str | None, bool]] = set()
        for mention in found:
            readings = [mention]
            if mention.parts:
                if self.lookup(mention)[0]:
                    readings = [replace(mention, parts=(), source="single")]
                else:
                    prefix = mention.prefix
                    readings = [
                        Mention(
                            part, "marked", part.lstrip("0") or "0", _full(prefix, part), prefix, source=mention.source
                        )
                        for part in mention.parts
                    ]
            for reading in readings:
                key = (reading.numeric_key, reading.full_key, reading.reference)
                if key not in seen:
                    seen.add(key)
                    out.append(reading)
        return out

    def _by_number(self, numeric: str) -> list[str]:
        # A number with no letters ("0042") is its own numeric key, kept once in `_numbers`.
        return [*self._numbers.get(numeric, ()), *self._numeric.get(numeric, ())]

    def lookup(self, mention: Mention) -> tuple[list[str], Found]:
        """The invoice ids a mention may mean, and how sure the reading is."""
        if mention.reference or (mention.strength == "prefixed" and mention.prefix in OTHER_NUMBER_WORDS):
            return self._by_reference(mention), "reference"
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
        return self._by_number(mention.numeric_key), "bare"

    def _by_reference(self, mention: Mention) -> list[str]:
        if mention.full_key is not None:
            ids = self._refs.get(mention.full_key)
            if ids:
                return list(ids)
        if mention.prefix is None or mention.prefix in OTHER_NUMBER_WORDS or mention.prefix in REFERENCE_WORDS:
            # "PO 7781" finds the reference "7781" or "PO-7781"; "ref ABC-12" only "ABC-12"
            return list(self._ref_numeric.get(mention.numeric_key, ()))
        return []
