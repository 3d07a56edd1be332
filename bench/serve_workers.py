"""Four `connector serve` workers on PostgreSQL against the sandbox, one SIGKILLed while it
sends actions: every unit pulled once for the tick, every action applied once, nothing lost.

    .venv/bin/python bench/serve_workers.py --size large          # by hand: see docs/benchmarks.md
    .venv/bin/python bench/serve_workers.py --size medium --no-kill
    .venv/bin/python bench/serve_workers.py --size medium --no-kill --limits documented --client-limits documented

The same run as tests/e2e/test_e2e_service.py (which uses the medium book, client limits off, to fit the suite):
generates the book, serves it from this process on 127.0.0.1, writes a config on a throwaway
PostgreSQL schema (CONNECTOR_TEST_POSTGRES_URL, default postgres@127.0.0.1:5432/test), starts
the workers with `--every 1d`, kills one (SIGKILL) as soon as it holds outbox actions in flight,
waits until every pull, the reconcile-and-plan step and every action are done (the survivors
take over what the dead one held), then SIGTERMs them. Prints the time, the units and their
runs, the actions, the duplicates and missing effects in the sandbox's journal (both must be
0), and the writes a reconcile after the tick still plans (the tick's own plan missed them;
must be 0), and per provider the requests the sandbox saw, the share answered 429 and the most
that arrived in any window of its documented limit (Xero 60 s, Stripe 1 s, HubSpot 10 s). Exit
status 1 when anything is off. Loopback only; bounded by --timeout.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]  # test_e2e_service: the workers

from test_e2e_service import run_workers  # noqa: E402

from connector.sandbox import Sandbox  # noqa: E402
from connector.sandbox.generator import generate  # noqa: E402
from support.databases import POSTGRES_URL, postgres_unreachable_reason, temporary_pg_schema  # noqa: E402
from support.e2e import with_credentials  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="large", choices=["small", "medium", "large"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--limits",
        default="off",
        choices=["off", "documented"],
        help="the sandbox's rate limits (off: the providers' limits do not bound the run)",
    )
    parser.add_argument(
        "--client-limits",
        default="off",
        choices=["off", "documented"],
        help="the connections' own rate limits (off: raised out of the way, so the run "
        "measures the connector; documented: Xero's 60 calls a minute and the rest)",
    )
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--no-kill", action="store_true", help="let every worker live")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds before giving up on the tick")
    args = parser.parse_args()
    if reason := postgres_unreachable_reason(POSTGRES_URL):
        print(reason, file=sys.stderr)
        return 2
    started = time.monotonic()
    scenario = generate(args.seed, args.size, today=date.today())
    counts = {
        "invoices": len(scenario.data["xero"]["Invoices"]),
        "payments": len(scenario.data["xero"]["Payments"]),
        "stripe charges": len(scenario.data["stripe"]["charges"]),
    }
    print(
        f"book {args.size} (seed {args.seed}): "
        + ", ".join(f"{v:,} {k}" for k, v in counts.items())
        + f"; generated in {time.monotonic() - started:.0f} s",
        flush=True,
    )
    book = with_credentials(scenario.data)
    with tempfile.TemporaryDirectory() as directory, temporary_pg_schema() as schema:
        loading = time.monotonic()
        with Sandbox(book, limits=args.limits, latency_ms=args.latency_ms) as sandbox:
            print(f"sandbox loaded in {time.monotonic() - loading:.0f} s; {args.workers} workers start", flush=True)
            run = run_workers(
                sandbox,
                Path(directory),
                f"{POSTGRES_URL}?options=-csearch_path%3D{schema}",
                workers=args.workers,
                kill_while_sending=not args.no_kill,
                timeout=args.timeout,
                client_limits=args.client_limits == "documented",
            )
            traffic = sandbox.traffic()
    pulls = [u for u in run.units if u["kind"] == "pull"]
    others = [u for u in run.units if u["kind"] == "reconcile"]
    undone = [u["unit"] for u in pulls + others if u["done_tick"] != u["due_tick"] or u["last_error"]]
    runs = Counter(u["runs"] for u in pulls + others)
    states = Counter(a["state"] for a in run.outbox)
    kinds = Counter(f"{a['connection']} {a['kind']}" for a in run.outbox)
    survivors = [c for c in run.exit_codes if c != -signal.SIGKILL]
    effects = run.effects
    print(f"time: {run.seconds:.0f} s from the workers' start to the last action done")
    print(
        f"units: {len(pulls)} pulls + {len(others)} reconcile; runs "
        f"per unit {dict(runs)}; undone or failing: {undone or 0}"
    )
    print(
        f"actions: {len(run.outbox):,} ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}); "
        f"states {dict(states)}; taken over from the dead worker: {sum(1 for a in run.outbox if a['attempts'] > 1)}"
    )

    def at(moment) -> float:
        return moment.timestamp() - run.started_at if moment is not None else float("nan")

    pulls_done = max(at(u["last_success_at"]) for u in pulls)
    planned = [at(u["last_success_at"]) for u in others]
    print(
        f"phases: pulls done at {pulls_done:.0f} s; reconcile and plan {at(others[0]['last_started_at']):.0f}"
        f"-{planned[0]:.0f} s; last action done at {max(at(a['updated_at']) for a in run.outbox):.0f} s"
    )
    print(
        f"killed: {run.victim or 'none'} holding {run.victim_held} actions in flight; survivors' exit codes {survivors}"
    )
    print(
        f"effects in the journal: {effects.effects:,}; duplicates: {len(effects.duplicates)}; "
        f"missing: {len(effects.missing)}; unexplained: {len(effects.strays)}"
    )
    for label, items in (
        ("duplicate", list(effects.duplicates.items())),
        ("missing", effects.missing),
        ("unexplained", effects.strays),
    ):
        for item in items[:5]:
            print(f"  {label}: {item}")
    left = sum(run.left_for_next_tick.values())
    print(
        f"left for the next tick (a reconcile and plan after it): {left}"
        f"{' (' + ', '.join(f'{k} {v}' for k, v in sorted(run.left_for_next_tick.items())) + ')' if left else ''}; "
        f"{run.order}"
    )
    for provider, seen in traffic.items():
        print(
            f"{provider} traffic: {seen.requests:,} requests, {seen.rate_limited} answered 429 "
            f"({seen.rate_limited_share:.1%}), most in any {seen.window:g} s: {seen.busiest}"
        )
    print(f"total {time.monotonic() - started:.0f} s")
    bad = (
        not effects.ok
        or left
        or undone
        or set(runs) != {1}
        or set(states) != {"done"}
        or any(survivors)
        or (not args.no_kill and run.victim is None)
    )
    if bad:
        for log in run.logs:
            print("--- worker log tail ---\n" + log, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
