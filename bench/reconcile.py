"""How fast `reconcile()` matches N payments against N open invoices.

    python bench/reconcile.py [--sizes 10000,100000,1000000]

Each size runs in its own process, so its peak memory is its own. The book is generated
before the clock starts: customers with five invoices each in USD, EUR, JPY or KWD, and
payments that exercise every rule (numbers in the remittance, exact amounts, fees within the
tolerance, one payment for two invoices, partial and over payments, unknown payers, and no
match at all). Printed per size: seconds in `reconcile()` (wall clock, and the process's CPU time, which
a busy machine inflates less), peak RSS of the process (inputs
included) and how much of it the run added, and what was applied or proposed.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

from connector.model import Invoice, Payment
from connector.money import Money
from connector.reconcile import reconcile

CURRENCIES = ("USD", "EUR", "JPY", "KWD")


def make_book(count: int, seed: int = 1) -> tuple[list[Invoice], list[Payment]]:
    rng = random.Random(seed)
    invoices: list[Invoice] = []
    for n in range(count):
        customer = n // 5
        currency = CURRENCIES[customer % len(CURRENCIES)]
        total = Money.from_minor(rng.randrange(1_000, 5_000_000), currency)
        zero = Money.zero(currency)
        due = date(2024, 1, 1) + timedelta(days=rng.randrange(120))
        invoices.append(
            Invoice(
                id=f"inv-{n}",
                number=f"INV-{n:07d}",
                customer_id=f"cust-{customer}",
                currency=currency,
                issue_date=due - timedelta(days=30),
                due_date=due,
                subtotal=total,
                tax=zero,
                total=total,
                amount_paid=zero,
                amount_credited=zero,
            )
        )
    payments: list[Payment] = []
    received = datetime(2024, 5, 1, tzinfo=UTC)
    for n in range(count):
        invoice = invoices[n]
        units = invoice.total.to_minor()
        customer: str | None = invoice.customer_id
        remittance = None
        kind = n % 10
        if kind in (0, 1, 2):
            remittance = rng.choice([f"INV-{n:07d}", f"inv {n}", f"Invoice #{n}", f"payment {invoice.number} thanks"])
        elif kind == 3:
            units = units // 2
            remittance = f"INV-{n:07d} part"
        elif kind == 4:
            units += 1_000
            remittance = f"#{n}"
        elif kind == 5:
            units -= units // 40  # a 2.5 % fee taken off
        elif kind == 6 and n % 5 < 4:
            units += invoices[n + 1].total.to_minor()  # this invoice and the next of the customer
        elif kind == 7:
            customer = None
            remittance = f"INV-{n:07d}"
        elif kind == 8:
            units = 7  # matches nothing
        payments.append(
            Payment(
                id=f"pay-{n}",
                amount=Money.from_minor(max(units, 1), invoice.currency),
                customer_id=customer,
                remittance=remittance,
                received_at=received + timedelta(seconds=n),
            )
        )
    return invoices, payments


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_one(count: int) -> None:
    invoices, payments = make_book(count)
    before = _rss_mib()
    start, cpu_start = time.perf_counter(), time.process_time()
    result = reconcile(invoices, payments)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    peak = _rss_mib()
    print(
        f"{count:>9,} payments x {count:>9,} invoices: {seconds:8.2f} s (CPU {cpu:.2f} s), peak RSS {peak:8.0f} MiB "
        f"(+{peak - before:6.0f} MiB in reconcile); applied {len(result.applied):,}, "
        f"proposals {len(result.proposals):,}, unmatched {len(result.unmatched):,}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args.one)
        return
    for size in (int(s) for s in args.sizes.split(",")):
        subprocess.run([sys.executable, __file__, "--one", str(size)], check=True)


if __name__ == "__main__":
    main()
