"""Rule 5, subset_sum: one payment equal to the sum of several open invoices of its customer.

The search is bounded, so a customer with thousands of open invoices costs the same as one
with twenty:
- only invoices with a balance below the payment can be part of a sum; of those, the
  `SCAN_FACTOR x subset_pool` largest are read, and of these the `subset_pool` (default 16)
  with the oldest due dates form the pool;
- meet in the middle: each half of the pool lists its sums of at most `max_subset_size`
  (default 5) invoices (at most 219 sums per half of 8), and each left sum looks up the
  complement among the right ones;
- the search stops after `max_subset_solutions` exact subsets: enough to know it is ambiguous.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Sequence
from heapq import merge

from connector.reconcile.book import Book, OpenPayment, show
from connector.reconcile.rules import Option, Rejected
from connector.settings import ReconcileConfig

SCAN_FACTOR = 8
Combo = tuple[int, tuple[int, ...]]  # (sum, indexes into the pool)


def _combos(values: Sequence[int], offset: int, target: int, max_size: int) -> list[Combo]:
    combos: list[Combo] = [(0, ())]
    for index, value in enumerate(values, start=offset):
        combos += [
            (total + value, members + (index,))
            for total, members in combos
            if len(members) < max_size and total + value <= target
        ]
    return combos


def find_subsets(values: Sequence[int], target: int, max_size: int, max_solutions: int) -> list[tuple[int, ...]]:
    """Index tuples of at least two and at most `max_size` values summing to `target`
    (positive integers), in a deterministic order, at most `max_solutions` of them."""
    half = len(values) // 2
    left = _combos(values[:half], 0, target, max_size)
    right: dict[int, list[tuple[int, ...]]] = {}
    for total, members in _combos(values[half:], half, target, max_size):
        right.setdefault(total, []).append(members)
    found: list[tuple[int, ...]] = []
    for total, members in left:
        for other in right.get(target - total, ()):
            if 2 <= len(members) + len(other) <= max_size:
                found.append(members + other)
                if len(found) >= max_solutions:
                    return sorted(found)
    return sorted(found)


def subset_sum(book: Book, payment: OpenPayment, rejected: Rejected, config: ReconcileConfig) -> list[Option]:
    if payment.customer_id is None:
        return []
    account = book.account(payment.customer_id, payment.currency)
    if len(account) < 2:
        return []
    below = account[: bisect_left(account, (payment.remaining,))]
    below = below[-SCAN_FACTOR * config.subset_pool :]
    if rejected:
        below = [e for e in below if (payment.id, e[2]) not in rejected]
    pool = heapq.nsmallest(config.subset_pool, below, key=lambda entry: (entry[1], entry[2]))
    if len(pool) < 2 or sum(entry[0] for entry in pool) < payment.remaining:
        return []
    solutions = find_subsets(
        [entry[0] for entry in pool], payment.remaining, config.max_subset_size, config.max_subset_solutions
    )
    conf = config.confidence
    amount = show(payment.remaining, payment.currency)
    options = []
    for members in solutions:
        items = [book.invoices[pool[i][2]] for i in members]
        items.sort(key=lambda item: (item.due, item.id))
        names = ", ".join(book.label(item) for item in items)
        if len(solutions) == 1 and len(items) == len(account):
            confidence = conf.subset_sum_whole_account
            reason = f"amount {amount} is the whole open balance of {book.who(payment.customer_id)}: {names}"
        elif len(solutions) == 1:
            confidence = conf.subset_sum_unique
            reason = f"amount {amount} is the sum of the open balances of {names}, the only such set"
        else:
            confidence = conf.subset_sum_ambiguous
            reason = (
                f"amount {amount} is the sum of the open balances of {names}, "
                f"one of {len(solutions)}{'+' if len(solutions) >= config.max_subset_solutions else ''} such sets"
            )
        options.append(
            Option(
                tuple(item.id for item in items),
                tuple(item.balance for item in items),
                "subset_sum",
                confidence,
                reason,
            )
        )
    return options


def related_accounts(
    book: Book, payment: OpenPayment, family: frozenset[str] | None, rejected: Rejected, config: ReconcileConfig
) -> list[Option]:
    """When nothing of the payer's own explains the amount: one open invoice of a related
    customer (a parent paying a subsidiary's) whose balance is exactly the amount, or a set of
    the group's open invoices adding up to it (a parent paying two subsidiaries' invoices in
    one transfer). Always proposed: the group is a hint, not the payer's own account."""
    if payment.customer_id is None or family is None or len(family) < 2:
        return []
    currency, amount = payment.currency, payment.remaining
    members = sorted(family)
    pooled = list(merge(*[book.account(customer_id, currency) for customer_id in members]))
    if rejected:
        pooled = [e for e in pooled if (payment.id, e[2]) not in rejected]
    conf = config.confidence.related_accounts
    payer = book.who(payment.customer_id)
    shown = show(amount, currency)
    exact = [e for e in pooled if e[0] == amount and book.invoices[e[2]].customer_id != payment.customer_id]
    options = [
        Option(
            (e[2],),
            (amount,),
            "exact_amount_unique",
            conf,
            f"amount {shown} equals the open balance of {book.label(book.invoices[e[2]])}, "
            f"a company related to {payer}",
        )
        for e in exact[: config.max_candidates]
    ]
    below = pooled[: bisect_left(pooled, (amount,))][-SCAN_FACTOR * config.subset_pool :]
    pool = heapq.nsmallest(config.subset_pool, below, key=lambda entry: (entry[1], entry[2]))
    if len(pool) < 2 or sum(entry[0] for entry in pool) < amount:
        return options
    solutions = find_subsets([entry[0] for entry in pool], amount, config.max_subset_size, config.max_subset_solutions)
    for found in solutions:
        items = sorted((book.invoices[pool[i][2]] for i in found), key=lambda item: (item.due, item.id))
        if all(item.customer_id == payment.customer_id for item in items):
            continue  # the payer's own set: `subset_sum` weighs it
        names = ", ".join(book.label(item) for item in items)
        how = "the only such set" if len(solutions) == 1 else f"one of {len(solutions)} such sets"
        options.append(
            Option(
                tuple(item.id for item in items),
                tuple(item.balance for item in items),
                "subset_sum",
                conf if len(solutions) == 1 else config.confidence.subset_sum_ambiguous,
                f"amount {shown} is the sum of the open balances of {names} in {payer}'s group, {how}",
            )
        )
    return options
