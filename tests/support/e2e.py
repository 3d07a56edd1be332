"""Syncing the real adapters against a running sandbox, for the end-to-end tests."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from connector.config import load_config
from connector.demo import DEMO_CREDENTIALS, demo_config
from connector.pipeline import sync
from connector.sandbox import Sandbox
from connector.state.store import Store, open_store
from connector.sync import SyncReport


def sync_sandbox(
    sandbox: Sandbox, directory: Path, *, database_url: str | None = None, **run: Any
) -> tuple[Store, SyncReport]:
    """Write a config pointing every connection at `sandbox`, sync into a fresh SQLite file
    (or `database_url`)."""
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "connector.toml"
    url = database_url or f"sqlite:///{directory / 'state.db'}"
    text = demo_config(sandbox).replace("sqlite:///connector.db", url)
    config_path.write_text(text)
    config = load_config(str(config_path))
    store = open_store(config.database_url)
    return store, sync(config, store, **run)


def with_credentials(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "credentials": DEMO_CREDENTIALS}


def stored_views(store: Store) -> set[tuple[str, str, str, str]]:
    """Every system's stored view of every record, without our generated canonical ids."""
    with store.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT system, object_type, remote_id, data FROM refs")).all()
    views = set()
    for system, object_type, remote_id, data in rows:
        record = data if isinstance(data, dict) else __import__("json").loads(data)
        record = {k: v for k, v in record.items() if k not in ("id", "customer_id")}
        views.add((system, object_type, remote_id, repr(sorted(record.items(), key=lambda kv: kv[0]))))
    return views


NON_IDEMPOTENT = ("created", "marked", "voided", "sent", "emailed", "deleted")


def _write_key(entry: dict[str, Any]) -> str:
    """Keyed so that the same action sent twice counts twice: by idempotency key (Stripe,
    Xero), or the action key stored on a HubSpot note or task."""
    payload = entry.get("payload") if isinstance(entry.get("payload"), dict) else {}
    action_key = ((payload or {}).get("properties") or {}).get("ar_action_key")
    path = entry["path"].split("?")[0]
    return f"{entry['provider']} {entry['method']} {path} {entry.get('idempotency_key') or action_key or ''}"


def writes(journal: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every write the sandbox received (searches and token requests aside)."""
    return [
        e
        for e in journal
        if e["method"] in ("PUT", "PATCH", "POST")
        and not e["path"].split("?")[0].endswith("/search")
        and "oauth" not in e["path"]
    ]


def write_counts(journal: list[dict[str, Any]]) -> Counter[str]:
    """Every write the sandbox received (searches and token requests aside), by key."""
    return Counter(_write_key(e) for e in writes(journal))


def effect_counts(journal: list[dict[str, Any]]) -> Counter[str]:
    """The writes that changed something a repeat would change again (a payment created, an
    invoice marked paid or sent, a note created), per action."""
    return Counter(_write_key(e) for e in journal if str(e.get("effect", "")).split(" ")[0] in NON_IDEMPOTENT)
