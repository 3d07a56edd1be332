"""Exactly-once under crashes, at scale: send every HubSpot note and task through an exit
right between HubSpot's answer and our commit, one after another, then kill `connector apply`
N times (SIGKILL at random moments, and every other round right between a provider's answer
and our commit), then let it finish, and count effects in the sandbox's journal.

    .venv/bin/python bench/apply_crash.py --rounds 60 --seed 3
    .venv/bin/python bench/apply_crash.py --rounds 60 --seed 3 --key-setup search   # the old way

The sandbox's HubSpot search index trails writes by --search-delay seconds (30 by default):
a replay cannot find by search a note the killed process made. `--key-setup ensure` (the
default) keeps HubSpot's action key in a property with unique values; `search` gives the
portal a key property without them and looks keys up by search, for comparison.

Prints the number of planned actions, kills, failpoint exits, effects and duplicates (which
must be 0 with the unique key). Loopback only; bounded by --rounds.
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
from support.apply_crash import crash_and_finish, key_property_not_unique, prepare  # noqa: E402
from support.e2e import with_credentials  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--size", default="small", choices=["small", "medium"])
    parser.add_argument("--max-delay", type=float, default=2.0, help="latest random kill, seconds")
    parser.add_argument(
        "--search-delay", type=float, default=30.0, help="seconds before HubSpot's search sees a created object"
    )
    parser.add_argument(
        "--key-setup",
        choices=["ensure", "search"],
        default="ensure",
        help="HubSpot notes and tasks: a key with unique values (ensure) or a look-up by search",
    )
    args = parser.parse_args()
    book = with_credentials(generate(args.seed, args.size, today=date.today()).data)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory() as directory,
        Sandbox(book, limits="off", latency_ms=10, refresh_grace_s=1800, search_delay_s=args.search_delay) as sandbox,
    ):
        if args.key_setup == "search":
            key_property_not_unique(sandbox)
        config = prepare(sandbox, Path(directory), hubspot={"action_key_setup": args.key_setup})
        run = crash_and_finish(
            sandbox, config, rounds=args.rounds, seed=args.seed, max_delay=args.max_delay, hubspot_creates=True
        )
    print(
        f"rounds {args.rounds}: {run.kills} SIGKILLs at random moments, "
        f"{run.failpoint_exits} exits between answer and commit"
    )
    print(
        f"HubSpot notes and tasks ({args.key_setup}, search index {args.search_delay:g} s behind): "
        f"{run.hubspot_creates} planned, {run.hubspot_exits} exits right after HubSpot made a batch, "
        f"{run.hubspot_replayed} answered by the one HubSpot held (read by key), "
        f"{run.hubspot_refused} creates refused as repeating a key, {sum(run.hubspot_effects.values())} made, "
        f"{len(run.hubspot_duplicates)} made twice or more"
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
