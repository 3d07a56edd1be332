"""Finance's decisions on a stored book: wall time, CPU and peak RSS of each command.

    .venv/bin/python bench/decisions.py CONFIG [--keep DIR]

CONFIG is the `connector.toml` of a book on SQLite already synced, reconciled and planned (the
decisions settle the outbox the plan left), e.g. the one `bench/engine_ticks.py --size large
--keep DIR` leaves in DIR, then `connector --config DIR/connector.toml reconcile` and `plan`
once. The book is not changed: its database is copied to a temporary folder (or `--keep DIR`)
and every decision runs on the copy, one after the other, each as `connector ...` in a child
process of its own (the child's own peak RSS, `engine_ticks.child`): `reconcile unmatch` of an
allocation a rule made whose payment is queued and not sent, `reconcile accept` and `reject` of
two open proposals, `reconcile match` of a third proposal's payment to its best candidate by
hand, and `actions cancel` of a queued ledger payment. Set `PYTHONPATH` to another checkout's
root to time that checkout on the same book (the "before" figures).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
from contextlib import closing
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

from engine_ticks import child, mib  # noqa: E402

from connector.config import load_config  # noqa: E402
from connector.reconcile.types import LEDGER_RULE  # noqa: E402
from connector.state import outbox  # noqa: E402
from connector.state import reconciliation as decisions  # noqa: E402
from connector.state.store import open_store  # noqa: E402


def pick(config_path: Path) -> list[list[str]]:
    """The decisions to time, picked from the book: each on a payment of its own."""
    config = load_config(str(config_path))
    store = open_store(config.database_url)
    try:
        with store.session() as session:
            queued = outbox.entries(session, states=("planned",), kinds=("record_payment", "record_fee"))
            proposals = [p for p in decisions.load_proposals(session) if p["candidates"]]
            applied = [s.allocation for s in decisions.load_allocations(session, status="applied")]
    finally:
        store.close()
    queued_on = {(e.subject_id, str(e.action.payload.get("reference"))) for e in queued}
    by_invoice = {e.subject_id for e in queued if e.action.kind == "record_payment"}
    rule_made = [a for a in applied if a.rule != LEDGER_RULE and a.invoice_id in by_invoice]
    if not rule_made or len(proposals) < 3 or not queued_on:
        raise SystemExit(f"{config_path}: reconcile and plan the book first (nothing queued or proposed)")
    unmatch, cancelled = rule_made[0], next(e for e in queued if e.action.kind == "record_payment")
    if cancelled.subject_id == unmatch.invoice_id:
        cancelled = next(e for e in queued if e.action.kind == "record_payment" and e.subject_id != unmatch.invoice_id)
    accept, reject, matched = proposals[:3]
    user = ("--user", "bench")
    return [
        ["reconcile", "unmatch", unmatch.id or "", *user],
        ["reconcile", "accept", accept["id"], *user],
        ["reconcile", "reject", reject["id"], *user],
        ["reconcile", "match", matched["payment_id"], matched["candidates"][0]["invoice_ids"][0], *user],
        ["actions", "cancel", str(cancelled.id), *user],
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--keep", type=Path, help="copy the book here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    if not args.config.is_file():
        parser.error(f"{args.config}: no such config file")
    url = make_url(load_config(str(args.config)).database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        parser.error("the book must be on SQLite (its database is copied)")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-decisions-"))
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "state.db"
    with closing(sqlite3.connect(url.database)) as source, closing(sqlite3.connect(copy)) as target:
        source.backup(target)
    text = args.config.read_text().replace(str(url), f"sqlite:///{copy}")
    if f"sqlite:///{copy}" not in text:
        raise SystemExit(f"{args.config}: database url {url} not found in the file as written")
    config = folder / "connector.toml"
    config.write_text(text)
    try:
        rows = []
        for command in pick(config):
            wall, cpu, peak, _ = child([sys.executable, "-m", "connector", "--config", str(config), *command])
            rows.append((" ".join(command[:2]), wall, cpu, peak))
            print(f"  {rows[-1][0]}: {wall:.1f} s", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(folder)
    print()
    print("| decision | wall | CPU | peak RSS |\n|---|---:|---:|---:|")
    for name, wall, cpu, peak in rows:
        print(f"| `connector {name}` | {wall:.1f} s | {cpu:.1f} s | {mib(peak)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
