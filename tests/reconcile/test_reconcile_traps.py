"""Labelled books of the traps finance teams meet every month, on several seeds, in JPY, USD
and KWD: nothing wrong is ever applied, what can be known is applied, and a proposal's first
candidate is the right one.

Each payment carries its label: the allocations that are right (empty when the money must stay
unapplied credit), and whether a rule should apply them itself ("auto") or finance decides
("propose", with the right candidate first).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import pytest

from connector.model import Invoice, Payment
from connector.money import currency_exponent
from connector.reconcile import reconcile
from support.reconcile_cases import RECEIVED, check_invariants, inv, pay

CURRENCIES = ("JPY", "USD", "KWD")
MONTHS = ("January", "February", "March", "April", "May", "June")


@dataclass
class Label:
    expected: dict[str | None, Decimal]  # invoice id -> amount; empty: nothing may be applied
    how: str  # "auto" or "propose"


@dataclass
class TrapBook:
    rng: random.Random
    invoices: list[Invoice] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    labels: dict[str, Label] = field(default_factory=dict)
    related: dict[str, frozenset[str]] = field(default_factory=dict)
    _numbers: set[str] = field(default_factory=set)
    _amounts: set[int] = field(default_factory=set)
    _count: int = 0

    def number(self, digits: str | None = None) -> str:
        while digits is None or f"INV-{digits}" in self._numbers:
            digits = f"{self.rng.randrange(10000, 99999)}"
        self._numbers.add(f"INV-{digits}")
        return f"INV-{digits}"

    def amount(self, currency: str) -> Decimal:
        units = self.rng.randrange(10_000, 5_000_000)
        while units in self._amounts:
            units += 1
        self._amounts.add(units)
        return Decimal(units).scaleb(-currency_exponent(currency))

    def invoice(self, customer: str, currency: str, total: Decimal, **kw: object) -> Invoice:
        self._count += 1
        kw.setdefault("number", self.number())
        item = inv(f"i{self._count}", str(total), currency=currency, customer=customer, **kw)  # type: ignore[arg-type]
        self.invoices.append(item)
        return item

    def payment(
        self, customer: str, currency: str, amount: Decimal, label: Label, remittance: str | None = None
    ) -> str:
        self._count += 1
        payment_id = f"p{self._count}"
        received = RECEIVED + timedelta(minutes=self._count)
        self.payments.append(
            pay(payment_id, str(amount), currency=currency, customer=customer, remittance=remittance, received=received)
        )
        self.labels[payment_id] = label
        return payment_id


def build(seed: int) -> TrapBook:
    book = TrapBook(random.Random(seed))
    for family in range(6):
        cur = CURRENCIES[family % 3]
        parent, sub = f"parent{family}", f"sub{family}"
        book.related[parent] = frozenset({sub})
        book.related[sub] = frozenset({parent})

        # ordinary: named and exact; exact amount without a remittance
        x = book.invoice(parent, cur, book.amount(cur))
        book.payment(parent, cur, x.total.amount, Label({x.id: x.total.amount}, "auto"), f"Payment {x.number}")
        y = book.invoice(parent, cur, book.amount(cur), due=date(2024, 2, 1))
        book.payment(parent, cur, y.total.amount, Label({y.id: y.total.amount}, "auto"))

        # a subsidiary's named invoice beside the parent's invoice of the same amount
        same = book.amount(cur)
        named = book.invoice(sub, cur, same)
        book.invoice(parent, cur, same, due=date(2023, 12, 1))
        book.payment(parent, cur, same, Label({named.id: same}, "auto"), f"for {named.number}")

        # a duplicate payment of a paid invoice, next month's invoice of the same amount open
        twice = book.amount(cur)
        paid = book.invoice(parent, cur, twice, paid=str(twice), status="paid")
        book.invoice(parent, cur, twice, due=date(2024, 3, 1))
        book.payment(parent, cur, twice, Label({}, "propose"), f"{paid.number}")

        # a typo: the named invoice's number is a transposition of the exact one's
        digits = f"{book.rng.randrange(1, 9)}{book.rng.randrange(1, 9)}0{book.rng.randrange(1, 9)}"
        if digits[0] == digits[1]:
            digits = f"{digits[0]}{(int(digits[1]) % 9) + 1}{digits[2:]}"
        if f"INV-{digits}" in book._numbers or f"INV-{digits[1]}{digits[0]}{digits[2:]}" in book._numbers:
            continue
        wrong = book.invoice(parent, cur, book.amount(cur), number=f"INV-{digits}")
        right = book.invoice(parent, cur, book.amount(cur), number=f"INV-{digits[1]}{digits[0]}{digits[2:]}")
        book.payment(parent, cur, right.total.amount, Label({right.id: right.total.amount}, "propose"), wrong.number)

        # a lump sum for two named invoices, short by a bank fee of 1 %
        a = book.invoice(parent, cur, book.amount(cur))
        b = book.invoice(parent, cur, book.amount(cur))
        owed = a.total.amount + b.total.amount
        fee = (owed / 100).quantize(Decimal(1).scaleb(-currency_exponent(cur)))
        label = Label({a.id: a.total.amount, b.id: b.total.amount - fee}, "auto")
        book.payment(parent, cur, owed - fee, label, f"{a.number}, {b.number}")

        # subscriptions of one amount: months named, then months not named
        fixed = book.amount(cur)
        subs = [
            book.invoice(sub, cur, fixed, issued=date(2024, m, 1), due=date(2024, m, 28), number=book.number())
            for m in (1, 2, 3)
        ]
        for item, month in sorted(zip(subs, MONTHS[:3], strict=True), key=lambda _: book.rng.random()):
            book.payment(sub, cur, fixed, Label({item.id: fixed}, "auto"), f"{month} subscription")
        plain = book.amount(cur)
        later = [
            book.invoice(sub, cur, plain, issued=date(2024, m, 1), due=date(2024, m, 28), number=book.number())
            for m in (4, 5)
        ]
        for item in later:
            book.payment(sub, cur, plain, Label({item.id: plain}, "propose"))

        # another currency than the named invoice: never applied
        foreign = CURRENCIES[(family + 1) % 3]
        other = book.invoice(parent, foreign, book.amount(foreign))
        book.payment(parent, cur, book.amount(cur), Label({}, "propose"), f"{other.number}")
    return book


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_labelled_trap_books_are_reconciled_without_a_wrong_allocation(seed):
    book = build(seed)
    result = reconcile(book.invoices, book.payments, related=book.related)
    check_invariants(book.invoices, book.payments, result)
    got: dict[str, dict[str, Decimal]] = {}
    for allocation in result.applied:
        got.setdefault(allocation.payment_id, {})[allocation.invoice_id] = allocation.amount.amount
    wrong = [
        (payment_id, amounts, book.labels[payment_id].expected)
        for payment_id, amounts in got.items()
        if amounts != book.labels[payment_id].expected
    ]
    assert wrong == []
    auto = [payment_id for payment_id, label in book.labels.items() if label.how == "auto"]
    assert len([p for p in auto if p in got]) >= 0.95 * len(auto)
    proposals = {p.payment_id: p for p in result.proposals}
    to_propose = [p for p, label in book.labels.items() if label.how == "propose" and label.expected]
    first_right = [
        p
        for p in to_propose
        if p in proposals
        and proposals[p].candidates
        and set(proposals[p].candidates[0].invoice_ids) == set(book.labels[p].expected)
    ]
    assert len(first_right) >= 0.9 * len(to_propose)
    # money that must stay credit stays credit, to the minor unit
    for payment in book.payments:
        if not book.labels[payment.id or ""].expected:
            assert result.unapplied[payment.id or ""] == payment.amount
