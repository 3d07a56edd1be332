"""Exactly-once under crashes, at scale: kill `connector apply` N times (SIGKILL at random
moments, and every other round right between a provider's answer and our commit), then let it
finish, and count effects in the sandbox's journal.

    .venv/bin/python bench/apply_crash.py --rounds 60 --seed 3

Prints the number of planned actions, kills, failpoint exits, effects and duplicates (which
must be 0). Loopback only; bounded by --rounds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from connector.sandbox import Sandbox  # noqa: E402
from connector.sandbox.generator import generate  # noqa: E402
from support.apply_crash import crash_and_finish, prepare  # noqa: E402
from support.e2e import with_credentials  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--size", default="small", choices=["small", "medium"])
    parser.add_argument("--max-delay", type=float, default=2.0, help="latest random kill, seconds")
    args = parser.parse_args()
    book = with_credentials(generate(args.seed, args.size, today=date.today()).data)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory() as directory,
        Sandbox(book, limits="off", latency_ms=10, refresh_grace_s=1800) as sandbox,
    ):
        config = prepare(sandbox, Path(directory))
        run = crash_and_finish(sandbox, config, rounds=args.rounds, seed=args.seed, max_delay=args.max_delay)
    print(
        f"rounds {args.rounds}: {run.kills} SIGKILLs at random moments, "
        f"{run.failpoint_exits} exits between answer and commit"
    )
    print(
        f"planned actions {run.planned}; non-idempotent effects "
        f"{sum(run.effects.values())} on {len(run.effects)} targets"
    )
    print(
        f"duplicated effects: {len(run.duplicates)}; actions left "
        f"pending: {run.left}; {time.monotonic() - started:.0f} s"
    )
    return 1 if run.duplicates or run.left else 0


if __name__ == "__main__":
    raise SystemExit(main())
