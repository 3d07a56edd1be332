"""How many requests a first write-back takes, per provider and kind of write, and how long the
providers' documented limits make it, before and after batch writes.

    .venv/bin/python bench/writeback_batches.py [--size small|medium] [--seed 42]

Generates a book, syncs, reconciles and plans it against the sandbox (limits off: the run
measures requests, not waiting), then applies every write and counts, in the sandbox's
journal, the requests each kind of write took and the writes it carried. "Before" is one
request per write (and Xero's invoice check one more per payment), as apply sent them before
batches; the times are what the documented limits allow for that many requests: Xero 60 a
minute and 5,000 a day per tenant, HubSpot 100 per 10 s, Stripe 25 a second (test mode).
Loopback only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from connector.config import load_config  # noqa: E402
from connector.sandbox import Sandbox  # noqa: E402
from connector.sandbox.generator import generate  # noqa: E402
from connector.state.store import open_store  # noqa: E402
from connector.writeback.apply import apply, pending  # noqa: E402
from support.apply_crash import prepare  # noqa: E402
from support.e2e import with_credentials  # noqa: E402

# requests per second each provider's documented limit allows, and Xero's daily allowance
RATE = {"xero": 60 / 60, "hubspot": 100 / 10, "stripe": 25.0}
XERO_PER_DAY = 5000
# requests a write took before batches: Xero's payment checked its invoice first
BEFORE = {"record_payment": 2, "mark_paid": 2, "void_invoice": 2}
PROVIDER = {"ledger": "xero", "crm": "hubspot", "gateway": "stripe"}


def duration(provider: str, requests: int) -> str:
    seconds = requests / RATE[provider]
    if provider == "xero" and requests > XERO_PER_DAY:
        return f"{requests / XERO_PER_DAY:.1f} days (5,000 a day)"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=["small", "medium"])
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    book = with_credentials(generate(args.seed, args.size, today=date.today()).data)
    with tempfile.TemporaryDirectory() as directory, Sandbox(book, limits="off", latency_ms=0) as sandbox:
        config_path = prepare(sandbox, Path(directory))
        config = load_config(str(config_path))
        store = open_store(config.database_url)
        writes = Counter((e.action.connection, e.action.kind) for e in pending(store))
        arrived = {name: seen.requests for name, seen in sandbox.traffic().items()}
        started = time.monotonic()
        report = apply(config, store)
        seconds = time.monotonic() - started
        store.close()
        sent = Counter({name: seen.requests - arrived.get(name, 0) for name, seen in sandbox.traffic().items()})
    print(f"{args.size} book, seed {args.seed}: {sum(writes.values()):,} writes, {len(report.done):,} done")
    print(f"apply: {report.requests:,} requests ({report.batches:,} batches) in {seconds:.0f} s, limits off")
    print("| connection | kind | writes | requests before (one per write) |")
    print("|---|---|---:|---:|")
    before: Counter[str] = Counter()
    for (connection, kind), count in sorted(writes.items()):
        provider = PROVIDER.get(connection, connection)
        before[provider] += count * BEFORE.get(kind, 1)
        print(f"| {connection} | {kind} | {count:,} | {count * BEFORE.get(kind, 1):,} |")
    print()
    print("| provider | requests before | time before at its limit | requests now | time now |")
    print("|---|---:|---|---:|---|")
    for provider in sorted(before):
        print(
            f"| {provider} | {before[provider]:,} | {duration(provider, before[provider])} | "
            f"{sent[provider]:,} | {duration(provider, sent[provider])} |"
        )
    return 0 if not report.failed and not report.parked else 1


if __name__ == "__main__":
    raise SystemExit(main())
