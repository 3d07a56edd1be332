"""The working state of one run: what each invoice still owes and each payment still has.

Amounts are integers in the currency's minor units (exact for USD, JPY, KWD alike) and turn
back into `Money` only in the result. Every allocation goes through `Book.allocate`, the one
place that checks the invariants: never more than the payment has left or the invoice still
owes, never across currencies.

Indexes, so that no rule loops over every invoice:
- per (customer, currency), the open invoices sorted by (balance, due, id): exact amounts,
  tolerance ranges and subset pools are bisect slices of it;
- per (currency, balance), invoice ids: exact amounts when the payer is unknown;
- per (customer, currency), the open invoices sorted by (due, id), made the first time a rule
  asks for an account's oldest invoices (most accounts never need it).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from connector.errors import ReconcileInvariantError
from connector.model import Allocation, Invoice, Payment
from connector.money import CURRENCY_EXPONENTS, Money, currency_exponent
from connector.unchecked import builder

_NO_DUE = date.max.toordinal()
Account = tuple[str, str]  # (customer id, currency)
Entry = tuple[int, int, str]  # (balance, due ordinal, invoice id)


@dataclass(slots=True)
class OpenInvoice:
    id: str
    number: str | None
    customer_id: str | None
    currency: str
    due: int
    issued: int
    balance: int


class ToMatch(NamedTuple):
    """What the book takes of an invoice (`to_match`), or of a receivable's row as the store
    reads it (`state.records.receivables_to_match`): `owed` is its total less what was paid and
    credited, in minor units; `described` its lines' descriptions (None: none, or nothing owed)."""

    id: str | None
    number: str | None
    customer_id: str | None
    currency: str
    status: str
    issue_date: date | None
    due_date: date | None
    owed: int
    described: str | None


def to_match(invoice: Invoice) -> ToMatch:
    # The invoice's amounts are in its currency (the model checks it) and quantised to its
    # exponent, so the difference scaled to minor units is a whole number.
    owed = invoice.total.amount - invoice.amount_paid.amount - invoice.amount_credited.amount
    units = int(owed.scaleb(CURRENCY_EXPONENTS[invoice.currency]))
    described = (
        " ".join([line.description for line in invoice.lines if line.description])
        if units > 0 and invoice.lines
        else None
    )
    return ToMatch(
        invoice.id,
        invoice.number,
        invoice.customer_id,
        invoice.currency,
        invoice.status,
        invoice.issue_date,
        invoice.due_date,
        units,
        described or None,
    )


@dataclass(slots=True)
class OpenPayment:
    id: str
    customer_id: str | None
    currency: str
    received: int
    remaining: int
    remittance: str | None


def minor(money: Money) -> int:
    # Money is quantised to its currency's exponent, so the scaled amount is a whole number.
    return int(money.amount.scaleb(CURRENCY_EXPONENTS[money.currency]))


_build_money = builder(Money, "amount", "currency")
_build_allocation = builder(Allocation, "payment_id", "invoice_id", "amount", "rule", "confidence", "reason")


def money(units: int, currency: str) -> Money:
    # Exact by construction (an integer scaled by the currency's exponent, a known currency),
    # so the validation `Money.from_minor` would repeat is skipped: it is most of the cost at a
    # million payments.
    return _build_money(Decimal(units).scaleb(-currency_exponent(currency)), currency)


def show(units: int, currency: str) -> str:
    """An amount for a reason text, as `str(Money)` prints it."""
    return f"{Decimal(units).scaleb(-currency_exponent(currency))} {currency}"


def collected_units(payment: Payment) -> int:
    """`Payment.collected` in minor units, without building Money on the way."""
    if payment.status in ("failed", "pending"):
        return 0
    refunded = minor(payment.amount_refunded) if payment.amount_refunded is not None else 0
    return minor(payment.amount) - refunded


def open_payment(payment: Payment, allocated: int) -> OpenPayment:
    assert payment.id is not None
    amount = payment.amount
    currency = amount.currency
    if payment.status in ("failed", "pending"):
        collected = 0
    else:
        # The refund is in the payment's currency (the model checks it): one exponent.
        exponent = CURRENCY_EXPONENTS[currency]
        collected = int(amount.amount.scaleb(exponent))
        refunded = payment.amount_refunded
        if refunded is not None:
            collected -= int(refunded.amount.scaleb(exponent))
        if payment.amount_disputed is not None:  # a chargeback: what it withdrew is the model's to say
            collected = minor(payment.collected)
    return OpenPayment(
        payment.id,
        payment.customer_id,
        currency,
        payment.received_at.date().toordinal(),
        collected - allocated,
        payment.remittance,
    )


class Book:
    """Open invoices with their balances after the existing allocations, and the indexes.

    `invoices` holds every invoice but void and draft ones, paid ones too (balance 0): a
    remittance may name an invoice already paid (a duplicate payment), and that is evidence.
    `names`: customer id -> the name a person knows the customer by, for reasons."""

    def __init__(
        self, invoices: Iterable[Invoice | ToMatch], allocated: dict[str, int], names: Mapping[str, str] | None = None
    ) -> None:
        self.names: Mapping[str, str] = names or {}
        self.invoices: dict[str, OpenInvoice] = {}
        self._accounts: dict[Account, list[Entry]] = defaultdict(list)
        self._by_amount: dict[tuple[str, int], set[str]] = defaultdict(set)
        self._by_due: dict[Account, list[tuple[int, str]]] = {}
        # What the open invoices' lines say ("Subscription Q3 (Jul-Sep)"): the period an invoice
        # bills, read only when a remittance names one.
        self.described: dict[str, str] = {}
        described = self.described
        items = self.invoices
        accounts = self._accounts
        by_amount = self._by_amount
        no_allocations = not allocated
        for invoice in invoices:
            if invoice.status in ("void", "draft"):
                if invoice.id is None:
                    raise ValueError(f"invoice {invoice.number!r} has no id")
                continue
            entry = invoice if isinstance(invoice, ToMatch) else to_match(invoice)
            invoice_id = entry.id
            if invoice_id is None:
                raise ValueError(f"invoice {entry.number!r} has no id")
            balance = entry.owed
            if not no_allocations:
                balance -= allocated.get(invoice_id, 0)
            if balance < 0:
                balance = 0
            due = entry.due_date
            issued = entry.issue_date
            customer_id = entry.customer_id
            currency = entry.currency
            item = OpenInvoice(
                invoice_id,
                entry.number,
                customer_id,
                currency,
                due.toordinal() if due else _NO_DUE,
                issued.toordinal() if issued else 0,
                balance,
            )
            items[invoice_id] = item
            if balance > 0:
                if entry.described:
                    described[invoice_id] = entry.described
                if customer_id is not None:
                    accounts[(customer_id, currency)].append((balance, item.due, invoice_id))
                by_amount[(currency, balance)].add(invoice_id)
        for entries in self._accounts.values():
            entries.sort()

    # Names --------------------------------------------------------------------------------

    def who(self, customer_id: str | None) -> str:
        """The customer as a reason names it: its name, else "customer ID"."""
        if customer_id is None:
            return "an unknown customer"
        return self.names.get(customer_id) or f"customer {customer_id}"

    def label(self, item: OpenInvoice) -> str:
        """The invoice as a reason names it: "Acme Ltd's INV-0042" when the customer's name is
        known, else its number (its id when it has none)."""
        number = item.number or item.id
        if not self.names:
            return number
        name = self.names.get(item.customer_id) if item.customer_id is not None else None
        return f"{name}'s {number}" if name else number

    # Indexes ------------------------------------------------------------------------------

    def _index(self, item: OpenInvoice) -> None:
        if item.customer_id is not None:
            self._accounts[(item.customer_id, item.currency)].append((item.balance, item.due, item.id))
        self._by_amount[(item.currency, item.balance)].add(item.id)

    def _move(self, item: OpenInvoice, new_balance: int) -> None:
        old: Entry = (item.balance, item.due, item.id)
        if item.customer_id is not None:
            entries = self._accounts[(item.customer_id, item.currency)]
            at = bisect_left(entries, old)
            if at < len(entries) and entries[at] == old:
                del entries[at]
            if new_balance > 0:
                insort(entries, (new_balance, item.due, item.id))
        same = self._by_amount.get((item.currency, item.balance))
        if same is not None:
            same.discard(item.id)
            if not same:
                del self._by_amount[(item.currency, item.balance)]
        if new_balance > 0:
            self._by_amount[(item.currency, new_balance)].add(item.id)
        if item.customer_id is not None and (new_balance > 0) != (item.balance > 0):
            by_due = self._by_due.get((item.customer_id, item.currency))
            if by_due is not None:
                key = (item.due, item.id)
                if new_balance > 0:
                    insort(by_due, key)
                else:
                    at = bisect_left(by_due, key)
                    if at < len(by_due) and by_due[at] == key:
                        del by_due[at]
        item.balance = new_balance

    def account(self, customer_id: str, currency: str) -> list[Entry]:
        """The customer's open invoices in one currency, sorted by (balance, due, id)."""
        return self._accounts.get((customer_id, currency), [])

    def with_balance(self, customer_id: str, currency: str, lo: int, hi: int) -> list[Entry]:
        entries = self.account(customer_id, currency)
        return entries[bisect_left(entries, (lo,)) : bisect_right(entries, (hi, _NO_DUE + 1))]

    def oldest(self, customer_id: str, currency: str) -> list[tuple[int, str]]:
        """The customer's open invoices in one currency as (due, id), oldest due first."""
        account = (customer_id, currency)
        by_due = self._by_due.get(account)
        if by_due is None:
            by_due = self._by_due[account] = sorted((due, invoice_id) for _, due, invoice_id in self.account(*account))
        return by_due

    def anyone_with_balance(self, currency: str, balance: int) -> list[str]:
        return sorted(self._by_amount.get((currency, balance), ()))

    # Allocation ---------------------------------------------------------------------------

    def allocate(
        self,
        payment: OpenPayment,
        invoice_id: str,
        units: int,
        *,
        rule: str,
        confidence: Decimal,
        reason: str,
    ) -> Allocation:
        item = self.invoices[invoice_id]
        if item.currency != payment.currency:
            raise ReconcileInvariantError(
                f"payment {payment.id} in {payment.currency} cannot pay invoice {item.id} in {item.currency}"
            )
        if not 0 < units <= min(payment.remaining, item.balance):
            raise ReconcileInvariantError(
                f"allocation of {units} minor units from payment {payment.id} "
                f"(left {payment.remaining}) to invoice {item.id} (owes {item.balance})"
            )
        if not 0 <= confidence <= 1:
            raise ReconcileInvariantError(f"confidence {confidence} of rule {rule} is not between 0 and 1")
        self._move(item, item.balance - units)
        payment.remaining -= units
        # Checked just above (positive, within both balances, one currency, a confidence) and exact in minor
        # units: built without pydantic's validation, which would only repeat these checks.
        return _build_allocation(payment.id, item.id, money(units, item.currency), rule, confidence, reason)
