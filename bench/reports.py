"""The finance reports on a stored book: wall time, CPU and peak RSS of each command.

    .venv/bin/python bench/reports.py CONFIG [--runs N] [--customer NAME] [--only aging,statement]

CONFIG is the `connector.toml` of a book already synced (and, for figures a finance team would
see, reconciled), e.g. the one `bench/engine_ticks.py --size large --keep DIR` leaves in DIR
(then `connector --config DIR/connector.toml reconcile` once). Each report runs `--runs` times
(default 1) as `connector ... --json` in a child process of its own, output thrown away; the
table gives the median wall and CPU seconds and the largest peak RSS (the child's own high-water
mark, `engine_ticks.child`). The reports only read: the book is not changed. Set `PYTHONPATH`
to another checkout's root to time that checkout on the same book (the "before" figures).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench")]

from engine_ticks import child, mib  # noqa: E402

REPORTS = {
    "aging": ["aging", "--json"],
    "aging-as-at": ["aging", "--as-at", "2026-10-31", "--json"],
    "invoices": ["invoices", "list", "--json"],
    "payments": ["payments", "list", "--json"],
    "customers": ["customers", "list", "--json"],
    "drift": ["drift", "--json"],
    "reminders": ["reminders", "plan", "--json"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--customer", help="also time `statement CUSTOMER --json` (a name or an id)")
    parser.add_argument("--only", help=f"comma-separated, of: {', '.join([*REPORTS, 'statement'])}")
    args = parser.parse_args()
    if not args.config.is_file():
        parser.error(f"{args.config}: no such config file")
    reports = dict(REPORTS)
    if args.customer:
        reports["statement"] = ["statement", args.customer, "--json"]
    if args.only:
        wanted = args.only.split(",")
        unknown = [name for name in wanted if name not in reports]
        if unknown:
            parser.error(f"--only: unknown report(s) {', '.join(unknown)}")
        reports = {name: reports[name] for name in wanted}

    rows = []
    for command in reports.values():
        walls, cpus, peaks = [], [], []
        for _ in range(args.runs):
            # exit 1 is `drift` finding drift: a finding, not a failure
            wall, cpu, peak, _ = child(
                [sys.executable, "-m", "connector", "--config", str(args.config), *command], ok=(0, 1)
            )
            walls.append(wall)
            cpus.append(cpu)
            peaks.append(peak)
        rows.append((" ".join(command), statistics.median(walls), statistics.median(cpus), max(peaks)))
        print(f"  {rows[-1][0]}: {rows[-1][1]:.1f} s", flush=True)

    print()
    print("| command | wall | CPU | peak RSS |\n|---|---:|---:|---:|")
    for command, wall, cpu, peak in rows:
        print(f"| `connector {command}` | {wall:.1f} s | {cpu:.1f} s | {mib(peak)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
