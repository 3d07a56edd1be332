"""The engine after a sync works on what moved (linking only when a view moved, the providers'
states of the records whose views moved, the ledger's records of the payments we applied): on
the sandbox's book, after rounds of random changes (a deal's amount, name or collections
states, a company paused, a ledger invoice's due date moved), what the incremental path leaves
is what a full relink and re-reconcile of a copy of the same store gives: the same links, the
same states, the same allocations and proposals, the same writes planned."""

from __future__ import annotations

import random
import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connector import pipeline
from connector.config import load_config
from connector.model import Ref
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state.store import Store, open_store
from support.e2e import sync_sandbox, with_credentials
from support.sandbox_changes import change, change_deal_states

pytestmark = pytest.mark.slow

SEED = 91
ROUNDS = 4


def book_as_it_stands(store: Store) -> dict[str, Any]:
    """What the engine decided, without the moments it decided it: the links (each system's
    record -> its canonical record), the receivables' states, the customers' pauses, the
    allocations and open proposals, the writes and reminders queued."""
    with store.engine.connect() as connection:

        def rows(sql: str) -> list[tuple[str, ...]]:
            return sorted(tuple(map(str, row)) for row in connection.execute(sa.text(sql)))

        found: dict[str, Any] = {
            "links": rows("SELECT system, object_type, remote_id, entity_kind, entity_id FROM refs"),
            "allocations": rows("SELECT payment_id, invoice_id, amount_minor, currency, rule, status FROM allocations"),
            "proposals": rows("SELECT payment_id, status FROM proposals"),
            "outbox": rows("SELECT idempotency_key, kind, state FROM outbox_actions"),
        }
    found["states"] = sorted(
        (i.id, i.disputed, str(i.promise_to_pay), "" if i.payment_plan is None else i.payment_plan.model_dump_json())
        for i in store.receivable_states()
    )
    found["paused"] = sorted((c.id or "", c.paused) for c in store.list_customers())
    return found


def copy_of(store_path: Path, directory: Path, config_text: str) -> tuple[Any, Store]:
    """A copy of the SQLite store at `store_path` (through SQLite's own backup), with a config
    pointing at it."""
    directory.mkdir()
    copied = directory / "state.db"
    source, target = sqlite3.connect(store_path), sqlite3.connect(copied)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    path = directory / "connector.toml"
    path.write_text(config_text.replace(str(store_path), str(copied)))
    config = load_config(str(path))
    return config, open_store(config.database_url)


def a_change(sandbox: Sandbox, store: Store, rng: random.Random) -> None:
    """One change a person makes in a provider's screens (or that a sync brings)."""
    kind = rng.choice(["states", "states", "amount", "name", "pause", "due", "by_hand", "by_hand"])
    if kind == "states":
        change_deal_states(sandbox, rng)
    elif kind == "amount":  # a deal whose amount no longer says its invoice's total
        change(sandbox, rng, "deals", {"amount": str(rng.randint(100, 9000))})
    elif kind == "name":  # a deal renamed after another invoice's number, or after none
        numbers = sorted(i.number for i in store.list_receivables() if i.number)
        change(sandbox, rng, "deals", {"dealname": rng.choice([f"Order {rng.choice(numbers)}", "Renewal"])})
    elif kind == "pause":
        change(sandbox, rng, "companies", {"ar_dunning_paused": rng.choice(["true", ""])})
    elif kind == "by_hand":  # a card payment entered in the ledger by hand, naming its charge
        charges = [
            (payment, ref.remote_id)
            for payment in store.list_payments()
            if not any(r.system == "ledger" for r in payment.refs)
            for ref in payment.refs
            if ref.system == "gateway" and ref.object_type == "payment"
        ]
        if not charges:
            return
        payment, charge = rng.choice(charges)
        by_hand = payment.model_copy(
            update={
                "id": None,
                "customer_id": None,
                "remittance": f"card payment {charge}",
                "fee": None,
                "refs": [Ref(system="ledger", object_type="payment", remote_id=f"by-hand-{rng.randrange(10**9)}")],
            }
        )
        store.store_page("ledger", "payments", "payment", [by_hand], cursor=None)
    else:  # a ledger invoice's due date moved, as the next sync stores it
        invoice = rng.choice([i for i in store.list_receivables() if i.refs and i.due_date is not None])
        assert invoice.due_date is not None
        ledger = next(r for r in invoice.refs if r.object_type == "invoice")
        moved = invoice.model_copy(update={"due_date": invoice.due_date + timedelta(days=rng.choice([-9, 5, 20]))})
        store.store_page(ledger.system, f"{ledger.object_type}s", "invoice", [moved], cursor=None)


def test_the_incremental_engine_leaves_what_a_full_relink_and_reconcile_gives(tmp_path):
    rng = random.Random(SEED)
    with Sandbox(with_credentials(generate(SEED, "small", today=date.today()).data), limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, tmp_path / "book", full=True)
        assert report.ok
        config_path = tmp_path / "book" / "connector.toml"
        config = load_config(str(config_path))
        try:
            pipeline.reconcile_and_plan(config, store)
            moved = 0
            for round_ in range(ROUNDS):
                before = book_as_it_stands(store)
                for _ in range(rng.randint(2, 6)):
                    a_change(sandbox, store, rng)
                assert pipeline.sync(config, store).ok
                pipeline.reconcile_and_plan(config, store, link_first=False)
                incremental = book_as_it_stands(store)
                moved += incremental != before
                copy_config, copy = copy_of(
                    tmp_path / "book" / "state.db", tmp_path / f"full-{round_}", config_path.read_text()
                )
                try:
                    pipeline.link(copy_config, copy, full=True)
                    pipeline.reconcile_and_plan(copy_config, copy, link_first=False)
                    full = book_as_it_stands(copy)
                finally:
                    copy.close()
                assert incremental == full, f"round {round_}: the incremental engine differs from a full pass"
            assert moved, "the rounds changed what the engine decided"
        finally:
            store.close()
