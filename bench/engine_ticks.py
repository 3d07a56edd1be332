"""What a service tick costs when nothing new arrived, next to the ticks that do the work.

    .venv/bin/python bench/engine_ticks.py [--size medium|large] [--database sqlite|postgresql]

Generates the book, serves it from this process on 127.0.0.1 (limits off, no latency), writes
a config on a fresh SQLite file (or a throwaway PostgreSQL schema: CONNECTOR_TEST_POSTGRES_URL,
default postgres@127.0.0.1:5432/test) and runs, each in a child process of its own so that its
peak RSS is its own:

1. `connector sync --full`, the first full pull;
2. ticks as `connector serve` runs them: every stream pulled from its cursor without linking,
   then `pipeline.reconcile_and_plan_if_changed` (link, provider states, reconcile, plan,
   unless nothing the engine reads moved since its last run), until a tick skips, then one
   more;
3. `connector sync` with nothing new (pull, then linking unless nothing was stored).

Printed per step: wall seconds, CPU seconds of the child (user + system), its peak RSS, and for
ticks the seconds (wall and CPU) of the pull and of the engine and whether the engine ran or
skipped: a running `serve` pays only those, not the start of a process. Children run with
bytecode caching on, as an installed connector has it. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from connector.demo import demo_config  # noqa: E402
from connector.sandbox import Sandbox  # noqa: E402
from connector.sandbox.generator import generate  # noqa: E402
from connector.state.db import make_engine  # noqa: E402
from support.databases import POSTGRES_URL, temporary_pg_schema  # noqa: E402
from support.e2e import with_credentials  # noqa: E402

TICK = """
import json, sys, time
from connector import pipeline
from connector.config import load_config
from connector.memory import limit_arenas
from connector.state import open_store
limit_arenas()  # as `connector serve` starts (the CLI's main)
config = load_config(sys.argv[1])
store = open_store(config.database_url, sealer=config.token_sealer())  # as `connector serve` opens it
started, cpu = time.perf_counter(), time.process_time()
report = pipeline.sync(config, store, then_link=False)
pulled, pull_cpu = time.perf_counter(), time.process_time()
done = pipeline.reconcile_and_plan_if_changed(config, store)
finished, engine_cpu = time.perf_counter(), time.process_time()
print(json.dumps({
    "ok": report.ok,
    "failed": [
        f"{s.connection}/{s.stream}: {'; '.join(s.errors) or s.status}" for s in report.streams if s.status != "ok"
    ],
    "stored": sum(s.stored for s in report.streams),
    "pull_s": pulled - started,
    "pull_cpu": pull_cpu - cpu,
    "engine_s": finished - pulled,
    "engine_cpu": engine_cpu - pull_cpu,
    "engine": "skipped" if isinstance(done, pipeline.EngineSkip) else "ran",
}))
"""


# Runs `python -m MODULE ...` or `python -c CODE ...` and writes the process's own peak RSS
# (`VmHWM`: its address space's high-water mark) to stderr as it exits. Linux keeps `ru_maxrss`
# across exec, so a child forked from this bench, which holds the generated book and the sandbox
# (gigabytes for the large book), would otherwise report the bench's size.
PEAK = """
import atexit, runpy, sys
def _peak():
    line = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(f"VmHWM-bytes {int(line.split()[1]) * 1024}", file=sys.stderr)
atexit.register(_peak)
mode, target, *rest = sys.argv[1:]
if mode == "-m":
    sys.argv = [target, *rest]
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    sys.argv = ["-c", *rest]
    exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
"""


def child(command: list[str], ok: tuple[int, ...] = (0,)) -> tuple[float, float, int, str]:
    """Run `command` (`python -m ...` or `python -c ...`), which must exit with one of `ok`;
    its wall seconds, CPU seconds, peak RSS in bytes (its own: `PEAK`) and standard output."""
    started = time.perf_counter()
    # bytecode cached, as an installed connector has it (this machine sets PYTHONDONTWRITEBYTECODE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    python, *args = command
    process = subprocess.Popen([python, "-c", PEAK, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert process.stdout is not None and process.stderr is not None
    out = process.stdout.read().decode()
    err = process.stderr.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if process.returncode not in ok:
        raise SystemExit(f"{' '.join(command[-3:])} exited {process.returncode}: {err.strip()[-2000:]}")
    peak = [line for line in err.splitlines() if line.startswith("VmHWM-bytes ")]
    if not peak:
        raise SystemExit(f"{' '.join(command[-3:])} did not report its peak RSS: {err.strip()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, int(peak[-1].split()[1]), out


def kept_pg_schema() -> str:
    """A new schema of the test PostgreSQL database that outlives the run (`--keep`), for the
    report benches; its name is printed, to drop it after."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    finally:
        admin.dispose()
    print(f"  keeping PostgreSQL schema {schema} (DROP SCHEMA {schema} CASCADE when done)", flush=True)
    return schema


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("small", "medium", "large"), default="medium")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-ticks", type=int, default=5)
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the config in this folder with the SQLite book (or the PostgreSQL schema), for the report benches",
    )
    args = parser.parse_args()

    print(f"generating the {args.size} book (seed {args.seed}) ...", flush=True)
    book = with_credentials(generate(args.seed, args.size, today=date.today()).data)
    with ExitStack() as stack:
        sandbox = stack.enter_context(Sandbox(book, limits="off"))
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            directory = args.keep
        else:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="engine-ticks-")))
        if args.database == "sqlite":
            url = f"sqlite:///{directory / 'state.db'}"
        else:
            # the config names a database URL: the schema goes in the search path, as for workers
            schema = kept_pg_schema() if args.keep else stack.enter_context(temporary_pg_schema(POSTGRES_URL))
            url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        config = directory / "connector.toml"
        config.write_text(demo_config(sandbox).replace("sqlite:///connector.db", url))
        cli = [sys.executable, "-m", "connector", "--config", str(config)]

        rows: list[tuple[str, float, float, int, str]] = []
        wall, cpu, rss, _ = child([*cli, "sync", "--full"])
        rows.append(("first full sync", wall, cpu, rss, ""))
        print(f"  first full sync: {wall:.1f} s", flush=True)
        skipped = 0
        for n in range(1, args.max_ticks + 1):
            wall, cpu, rss, out = child([sys.executable, "-c", TICK, str(config)])
            tick: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
            if tick["failed"]:  # a tick that pulled nothing would be timed as a tick with nothing new
                raise SystemExit(f"tick {n}: streams failed: {tick['failed']}")
            detail = (
                f"pull {tick['pull_s']:.2f} s, CPU {tick['pull_cpu']:.2f} s ({tick['stored']} stored); "
                f"engine {tick['engine']}: {tick['engine_s']:.2f} s, CPU {tick['engine_cpu']:.2f} s"
            )
            rows.append((f"tick {n}", wall, cpu, rss, detail))
            print(f"  tick {n}: {wall:.1f} s, {detail}", flush=True)
            skipped += tick["engine"] == "skipped"
            if skipped == 2:
                break
        for _ in range(2):  # the first links once (the ticks linked inside the engine), the second skips
            wall, cpu, rss, _ = child([*cli, "sync"])
            rows.append(("`connector sync`, nothing new", wall, cpu, rss, ""))
        wall, cpu, rss, _ = child([sys.executable, "-c", "import connector.cli"])
        rows.append(("(starting Python and importing the CLI)", wall, cpu, rss, ""))

    print()
    print(f"{args.size} book, {args.database}")
    print("| step | wall | CPU | peak RSS | detail |\n|---|---|---|---|---|")
    for name, wall, cpu, rss, detail in rows:
        print(f"| {name} | {wall:.1f} s | {cpu:.1f} s | {mib(rss)} | {detail} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
