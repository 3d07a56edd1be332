"""Cursors, outbox, audit log, runs and OAuth tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from connector.model import Action
from connector.state import Store
from support.state_factories import ref


def test_cursor_is_saved_and_read_back(store: Store) -> None:
    assert store.get_cursor("ledger", "invoices") is None
    store.set_cursor("ledger", "invoices", "2024-05-01T00:00:00Z")
    store.set_cursor("ledger", "invoices", "2024-06-01T00:00:00Z")
    store.set_cursor("ledger", "payments", "p-9")

    assert store.get_cursor("ledger", "invoices") == "2024-06-01T00:00:00Z"
    assert store.get_cursor("ledger", "payments") == "p-9"


def test_cursor_set_in_the_callers_transaction_rolls_back_with_it(store: Store) -> None:
    with pytest.raises(RuntimeError), store.session() as session:
        store.set_cursor("ledger", "invoices", "c1", session=session)
        raise RuntimeError("page failed")
    assert store.get_cursor("ledger", "invoices") is None


def action(amount: str) -> Action:
    return Action(
        connection="ledger",
        kind="record_payment",
        target=ref("A1"),
        payload={"amount": Decimal(amount), "currency": "USD"},
    )


def test_same_action_derived_twice_is_kept_once(store: Store) -> None:
    assert store.add_actions([action("10.00"), action("5.00")]) == 2
    assert store.add_actions([action("10.00")]) == 0

    queued = store.list_actions(state="planned")
    assert sorted(a.idempotency_key for a in queued) == sorted(
        [action("10.00").idempotency_key, action("5.00").idempotency_key]
    )
    assert queued[0].target == ref("A1")
    assert store.list_actions(state="done") == []


def test_audit_log_refuses_update_and_delete(store: Store) -> None:
    store.audit("rule:exact_amount", "apply_allocation", "payment", "p1", {"amount": Decimal("10.00")}, "applied")
    for sql in ("UPDATE audit_log SET decision = 'rejected'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with store.engine.begin() as connection:
                connection.execute(sa.text(sql))

    with store.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT actor, decision FROM audit_log")).all()
    assert rows == [("rule:exact_amount", "applied")]


def test_run_is_started_and_finished_with_its_stats(store: Store) -> None:
    run_id = store.start_run()
    store.finish_run(run_id, "succeeded", {"invoices": 3, "amount": Decimal("1.50")})
    with store.engine.connect() as connection:
        status, finished = connection.execute(
            sa.text("SELECT status, finished_at FROM runs WHERE id = :id"), {"id": run_id}
        ).one()
    assert status == "succeeded"
    assert finished is not None


TOKENS = {
    "access_token": "at-first",
    "refresh_token": "rt-first",
    "expires_at": datetime(2030, 1, 1, tzinfo=UTC),
}


def test_token_saver_with_a_stale_version_loses(store: Store) -> None:
    assert store.save_tokens("xero", TOKENS, expected_version=None) == 1
    loaded = store.load_tokens("xero")
    assert loaded is not None
    loaded_by_both = loaded.version

    winner = {**TOKENS, "access_token": "at-a", "refresh_token": "rt-a"}
    loser = {**TOKENS, "access_token": "at-b", "refresh_token": "rt-b"}
    assert store.save_tokens("xero", winner, expected_version=loaded_by_both) == 2
    assert store.save_tokens("xero", loser, expected_version=loaded_by_both) is None

    stored = store.load_tokens("xero")
    assert stored is not None
    assert (stored.refresh_token, stored.version) == ("rt-a", 2)
    assert stored.expires_at == datetime(2030, 1, 1, tzinfo=UTC)


def test_first_token_save_loses_when_another_worker_saved_first(store: Store) -> None:
    assert store.save_tokens("xero", TOKENS, expected_version=None) == 1
    assert store.save_tokens("xero", TOKENS, expected_version=None) is None


def test_token_expiry_as_epoch_seconds_is_stored_as_utc(store: Store) -> None:
    store.save_tokens("hubspot", {**TOKENS, "expires_at": 1_900_000_000}, None)
    stored = store.load_tokens("hubspot")
    assert stored is not None and stored.expires_at == datetime.fromtimestamp(1_900_000_000, UTC)


def test_stored_tokens_repr_shows_no_token_values(store: Store) -> None:
    store.save_tokens("xero", TOKENS, expected_version=None)
    text = repr(store.load_tokens("xero"))
    assert "at-first" not in text and "rt-first" not in text
