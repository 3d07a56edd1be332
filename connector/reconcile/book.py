"""The working state of one run: what each invoice still owes and each payment still has.

Amounts are integers in the currency's minor units (exact for USD, JPY, KWD alike) and turn
back into `Money` only in the result. Every allocation goes through `Book.allocate`, the one
place that checks the invariants: never more than the payment has left or the invoice still
owes, never across currencies.

Indexes, so that no rule loops over every invoice:
- per (customer, currency), the open invoices sorted by (balance, due, id): exact amounts,
  tolerance ranges and subset pools are bisect slices of it;
- per (currency, balance), invoice ids: exact amounts when the payer is unknown.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from connector.model import Allocation, Invoice, Payment
from connector.money import CURRENCY_EXPONENTS, Money, currency_exponent
from connector.reconcile.types import ReconcileInvariantError

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


def money(units: int, currency: str) -> Money:
    # Exact by construction (an integer scaled by the currency's exponent), so the validation
    # `Money.from_minor` would repeat is skipped: it is most of the cost at a million payments.
    return Money.model_construct(amount=Decimal(units).scaleb(-currency_exponent(currency)), currency=currency)


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
    return OpenPayment(
        id=payment.id,
        customer_id=payment.customer_id,
        currency=payment.amount.currency,
        received=payment.received_at.date().toordinal(),
        remaining=collected_units(payment) - allocated,
        remittance=payment.remittance,
    )


class Book:
    """Open invoices with their balances after the existing allocations, and the indexes."""

    def __init__(self, invoices: Iterable[Invoice], allocated: dict[str, int]) -> None:
        self.invoices: dict[str, OpenInvoice] = {}
        self._accounts: dict[Account, list[Entry]] = defaultdict(list)
        self._by_amount: dict[tuple[str, int], set[str]] = defaultdict(set)
        for invoice in invoices:
            if invoice.id is None:
                raise ValueError(f"invoice {invoice.number!r} has no id")
            if invoice.status in ("void", "draft"):
                continue
            settled = minor(invoice.amount_paid) + minor(invoice.amount_credited)
            balance = max(minor(invoice.total) - settled - allocated.get(invoice.id, 0), 0)
            item = OpenInvoice(
                id=invoice.id,
                number=invoice.number,
                customer_id=invoice.customer_id,
                currency=invoice.currency,
                due=invoice.due_date.toordinal() if invoice.due_date else _NO_DUE,
                issued=invoice.issue_date.toordinal() if invoice.issue_date else 0,
                balance=balance,
            )
            self.invoices[item.id] = item
            if balance > 0:
                self._index(item)
        for entries in self._accounts.values():
            entries.sort()

    # Indexes ------------------------------------------------------------------------------

    def _index(self, item: OpenInvoice) -> None:
        if item.customer_id is not None:
            self._accounts[(item.customer_id, item.currency)].append(
                (item.balance, item.due, item.id)
            )
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
        item.balance = new_balance

    def account(self, customer_id: str, currency: str) -> list[Entry]:
        """The customer's open invoices in one currency, sorted by (balance, due, id)."""
        return self._accounts.get((customer_id, currency), [])

    def with_balance(self, customer_id: str, currency: str, lo: int, hi: int) -> list[Entry]:
        entries = self.account(customer_id, currency)
        return entries[bisect_left(entries, (lo,)) : bisect_right(entries, (hi, _NO_DUE + 1))]

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
                f"payment {payment.id} in {payment.currency} cannot pay invoice {item.id} "
                f"in {item.currency}"
            )
        if not 0 < units <= min(payment.remaining, item.balance):
            raise ReconcileInvariantError(
                f"allocation of {units} minor units from payment {payment.id} "
                f"(left {payment.remaining}) to invoice {item.id} (owes {item.balance})"
            )
        self._move(item, item.balance - units)
        payment.remaining -= units
        return Allocation(
            payment_id=payment.id,
            invoice_id=item.id,
            amount=money(units, item.currency),
            rule=rule,
            confidence=confidence,
            reason=reason,
        )
