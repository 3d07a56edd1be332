"""How often reconciliation is right: labelled books synced through the sandbox, reconciled and
scored against their truth (connector.testing.precision).

    python bench/reconcile_precision.py [--seeds 3,11,29] [--ordinary-seeds 7,2] [--json]

For each seed the trap book (`generate_traps`) and, for the ordinary seeds, the small ordinary
book (`generate`) are served by the sandbox with its limits off, synced in full into a fresh
SQLite file, reconciled with the default settings and scored. Printed: the acceptance figures
(wrong auto-applied, share of knowable payments applied right, share of proposals with the
right candidate first, currencies exact), the figures per trap kind, and per rule and
confidence band how often an applied allocation or a first candidate was right; per book and
over all books together. `--json` prints the same as one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]  # the e2e test's sync-and-score

from test_e2e_traps import reconciled_score  # noqa: E402

from connector.sandbox.generator import generate  # noqa: E402
from connector.sandbox.generator_traps import generate_traps  # noqa: E402
from connector.testing.precision import Score, merge  # noqa: E402


def _seeds(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="3,11,29", help="Seeds of the trap books.")
    parser.add_argument("--ordinary-seeds", default="7,2", help="Seeds of the small ordinary books ('' for none).")
    parser.add_argument("--json", action="store_true", help="One JSON document instead of text.")
    args = parser.parse_args(argv)
    today = date.today()
    books: list[tuple[str, Score, float]] = []
    with tempfile.TemporaryDirectory(prefix="precision-") as scratch:
        plan = [(f"traps seed {s}", generate_traps(s, today=today)) for s in _seeds(args.seeds)]
        plan += [(f"small seed {s}", generate(s, "small", today=today)) for s in _seeds(args.ordinary_seeds)]
        for k, (label, scenario) in enumerate(plan):
            start = time.perf_counter()
            result = reconciled_score(scenario, Path(scratch) / f"book{k}")
            books.append((label, result, time.perf_counter() - start))
            if not args.json:
                print(f"== {label} ({time.perf_counter() - start:.1f} s)\n{result.text()}\n", flush=True)
    traps = merge(s for label, s, _ in books if label.startswith("traps"))
    everything = merge(s for _, s, _ in books)
    if args.json:
        report: dict[str, Any] = {
            "today": today.isoformat(),
            "books": {label: {**s.as_dict(), "seconds": round(t, 2)} for label, s, t in books},
            "traps_together": traps.as_dict(),
            "all_together": everything.as_dict(),
        }
        print(json.dumps(report, indent=1, default=str))
    else:
        print(f"== trap books together\n{traps.text()}\n")
        print(f"== every book together\n{everything.text()}")
        missing = traps.shortfalls()
        print("\nacceptance on the trap books: " + ("met" if not missing else "NOT met: " + "; ".join(missing)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
