"""One full engine pass over a stored book, stage by stage: where a reconcile-and-plan goes.

    .venv/bin/python bench/engine_stages.py CONFIG [--stages link,states,reconcile,writes,reminders]

CONFIG is the `connector.toml` of a book already synced, e.g. the one `bench/engine_ticks.py
--size large --keep DIR` leaves in DIR (copy its `state.db` first: the pass writes to the book,
as the service's would). Runs, in this process and in this order, what one pass of
`pipeline.reconcile_and_plan` runs: linking (`link_book`: what changed since the last pass and
its neighbourhood; `link-full`: the whole book), the providers' collections states
(of the records the link pass read, or whose views moved; `states-full`: of every record), the ledger's records of the
payments we applied (`take_ledger_records`), reconciliation, the writes' plan (of the
customers whose inputs moved since their last plan; `writes-full`: of every customer) and the
reminders' plan; prints per stage its wall seconds, CPU seconds and the process's peak RSS so
far. No provider is called.

`--touch N` first stores N of the ledger's invoices again with their due dates two days later
(`Store.store_page`, as a sync storing a provider's change does): what the next pass links,
states, reconciles and plans.

`--ticks N` then runs up to N engine ticks as `connector serve` runs them
(`pipeline.reconcile_and_plan_if_changed`, without the pulls), each in a child process of its
own (its peak RSS is its own), until one skips: what a tick with nothing new costs once the
engine has settled.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from engine_ticks import child  # noqa: E402

from connector.cli.main import GC_THRESHOLDS  # noqa: E402
from connector.config import load_config  # noqa: E402
from connector.connections import system_ranks  # noqa: E402
from connector.dunning.run import queue as queue_reminders  # noqa: E402
from connector.dunning.states import apply_provider_states  # noqa: E402
from connector.linking.run import link_all, link_book  # noqa: E402
from connector.providers.registry import installed  # noqa: E402
from connector.reconcile.run import run_reconciliation, take_ledger_records  # noqa: E402
from connector.state import open_store  # noqa: E402
from connector.writeback.apply import queue_writes  # noqa: E402

STAGES = ("link", "states", "ledger", "reconcile", "writes", "reminders")

# One tick as `connector serve` runs it, without the pulls; run by `engine_ticks.child`, which
# has the child report its own peak RSS.
TICK = """
import gc, json, sys, time
from connector import pipeline
from connector.cli.main import GC_THRESHOLDS
gc.set_threshold(*GC_THRESHOLDS)  # as the CLI runs the service
from connector.config import load_config
from connector.state import open_store
config = load_config(sys.argv[1])
store = open_store(config.database_url)
started, cpu = time.perf_counter(), time.process_time()
done = pipeline.reconcile_and_plan_if_changed(config, store)
print(json.dumps({
    "engine_s": time.perf_counter() - started,
    "engine_cpu": time.process_time() - cpu,
    "engine": "skipped" if isinstance(done, pipeline.EngineSkip) else "ran",
}))
"""


def touch(store: Any, registry: Any, config: Any, count: int) -> None:
    """`count` of the ledger's invoices stored again, each due two days later, as a sync would."""
    ledger = next(name for name, (kind, _) in system_ranks(config, registry).items() if kind == "ledger")
    invoices = [i for i in store.list_receivables(limit=count * 2) if any(r.system == ledger for r in i.refs)][:count]
    moved = [i.model_copy(update={"due_date": i.due_date + timedelta(days=2)}) for i in invoices]
    store.store_page(ledger, "invoices", "invoice", moved, cursor=None)
    print(f"{len(moved)} {ledger} invoices stored again, due two days later", flush=True)


def main() -> int:
    gc.set_threshold(*GC_THRESHOLDS)  # as the CLI runs the service's engine
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help=f"comma-separated, of {', '.join(STAGES)}, link-full (the whole book linked), "
        "states-full (every record's states read again), "
        "writes-full (every customer's writes derived again)",
    )
    parser.add_argument("--touch", type=int, default=0, help="first store N ledger invoices again, changed")
    parser.add_argument("--ticks", type=int, default=0, help="then up to N engine ticks, until one skips")
    args = parser.parse_args()
    chosen = [s for s in args.stages.split(",") if s]
    unknown = [s for s in chosen if s not in (*STAGES, "link-full", "states-full", "writes-full")]
    if unknown:
        parser.error(f"unknown stage {unknown[0]!r} (valid: {', '.join(STAGES)})")
    config = load_config(args.config)
    store = open_store(config.database_url)
    registry = installed()
    today = date.today()
    linked: list[Any] = []  # the link stage's report
    run: dict[str, Callable[[], Any]] = {
        "link": lambda: linked.append(link_book(config, store, registry)),
        "link-full": lambda: link_all(config, store, registry),
        # as the engine runs it after a link pass: of the records that pass read (every record's
        # digest weighed when the whole book was linked, or without the link stage)
        "states": lambda: apply_provider_states(config, store, registry, only=linked[0].moved if linked else None),
        "states-full": lambda: apply_provider_states(config, store, registry, full=True),
        "ledger": lambda: take_ledger_records(config, store, registry),
        "reconcile": lambda: run_reconciliation(config, store, registry=registry),
        # as the engine runs it: the customers whose inputs moved since their last plan
        "writes": lambda: queue_writes(config, store, registry, today, keep=False, only_changed=True),
        "writes-full": lambda: queue_writes(config, store, registry, today, keep=False),
        # as the engine runs it: the states were copied after linking
        "reminders": lambda: queue_reminders(config, store, today, registry, states_first="states" not in chosen),
    }
    if args.touch:
        touch(store, registry, config, args.touch)
    print("| stage | wall | CPU | peak RSS so far |\n|---|---|---|---|", flush=True)
    total_wall = total_cpu = 0.0
    for stage in chosen:
        wall, cpu = time.perf_counter(), time.process_time()
        run[stage]()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"| {stage} | {wall:.1f} s | {cpu:.1f} s | {peak:,.0f} MiB |", flush=True)
    print(f"| whole pass | {total_wall:.1f} s | {total_cpu:.1f} s | |")
    if args.ticks:
        print("\n| tick | engine | engine wall | engine CPU | process wall | process CPU | peak RSS |")
        print("|---|---|---|---|---|---|---|", flush=True)
    for n in range(1, args.ticks + 1):
        wall, cpu, rss, out = child([sys.executable, "-c", TICK, str(args.config)])
        report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        print(
            f"| {n} | {report['engine']} | {report['engine_s']:.2f} s | {report['engine_cpu']:.2f} s "
            f"| {wall:.1f} s | {cpu:.1f} s | {rss / 2**20:,.0f} MiB |",
            flush=True,
        )
        if report["engine"] == "skipped":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
