"""Syncing the real adapters against a running sandbox, for the end-to-end tests."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
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
    sandbox: Sandbox,
    directory: Path,
    *,
    database_url: str | None = None,
    settings: Mapping[str, Mapping[str, str | int]] | None = None,
    **run: Any,
) -> tuple[Store, SyncReport]:
    """Write a config pointing every connection at `sandbox`, sync into a fresh SQLite file
    (or `database_url`). `settings`: more settings of a connection (connection name -> key
    -> value), e.g. a ledger's `calls_per_minute` against a sandbox serving without limits."""
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "connector.toml"
    url = database_url or f"sqlite:///{directory / 'state.db'}"
    text = demo_config(sandbox).replace("sqlite:///connector.db", url)
    for connection, values in (settings or {}).items():
        header = f"[connections.{connection}]\n"
        assert header in text, f"the demo config has no connection {connection!r}"
        lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
        text = text.replace(header, header + lines)
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
        record = data if isinstance(data, dict) else json.loads(data)
        record = {k: v for k, v in record.items() if k not in ("id", "customer_id")}
        views.add((system, object_type, remote_id, repr(sorted(record.items(), key=lambda kv: kv[0]))))
    return views


NON_IDEMPOTENT = ("created", "marked", "voided", "sent", "emailed", "deleted")
# The first words an item's effect starts with: where a batch's joined effect is cut into its
# items' (an error message may itself hold "; ", and "then fault: ..." is no item's).
EFFECT_WORDS = (*NON_IDEMPOTENT, "rejected", "updated", "archived", "replayed", "answered", "then")
HUBSPOT_BATCH = re.compile(r"(/crm/v3/objects/[^/]+)/batch/(create|update)")
XERO_BATCHES = ("/Payments", "/BankTransactions")


def _write_key(entry: dict[str, Any]) -> str:
    """Keyed so that the same action sent twice counts twice: by idempotency key (Stripe,
    Xero), or the action key stored on a HubSpot note or task."""
    payload = entry.get("payload") if isinstance(entry.get("payload"), dict) else {}
    action_key = ((payload or {}).get("properties") or {}).get("ar_action_key")
    path = entry["path"].split("?")[0]
    return f"{entry['provider']} {entry['method']} {path} {entry.get('idempotency_key') or action_key or ''}"


def _effect_parts(effect: str) -> list[str]:
    """A journal effect cut into its items' effects, in the order of the request's items (a
    batch joins one per item with "; "); a fault's "then fault: ..." tail dropped."""
    words = "|".join(EFFECT_WORDS)
    parts = re.split(rf"; (?=(?:{words})\b)", effect)
    return [part for part in parts if not part.startswith("then fault")]


def _amount(value: Any) -> str:
    """An amount as text the same however the journal holds it (Decimal, float, str)."""
    try:
        return format(Decimal(str(value)).normalize(), "f")
    except InvalidOperation:
        return str(value)


def _xero_items(entry: dict[str, Any], items_key: str) -> list[Any]:
    payload = entry.get("payload")
    items = payload.get(items_key) if isinstance(payload, dict) and items_key in payload else [payload]
    return items if isinstance(items, list) else [items]


def _item_keys(entry: dict[str, Any]) -> list[str] | None:
    """One key per item of a request that carries several (None: key the request as a
    whole, as `_write_key` does), in the order of the items and of their effects:

    - a HubSpot batch create: each input keyed as the single create of it would be (by its
      `ar_action_key`), so a note made by a single create and again by a batch, or by two
      batches, counts twice;
    - a HubSpot batch update: each input keyed as the single PATCH of it would be (its path);
    - a Xero PUT /Payments, one payment or several: each payment by what it is (invoice,
      Reference, Amount), without the request's Idempotency-Key: a payment sent alone and
      again in a batch, or in two batches under different keys, is paid twice and counts twice;
    - a Xero PUT /BankTransactions (a gateway fee): each by Reference and total, likewise.
    `effect_counts` tells apart a payment or fee made again after ours was deleted (a
    decision taken back, then made again): that is a new one, not a duplicate.
    """
    path = entry["path"].split("?")[0]
    if entry["provider"] == "hubspot":
        batch = HUBSPOT_BATCH.fullmatch(path)
        payload = entry.get("payload")
        inputs = payload.get("inputs") if isinstance(payload, dict) else None
        if batch is None or not isinstance(inputs, list):
            return None
        base, action = batch.groups()
        if action == "create":
            return [f"hubspot POST {base} {(i.get('properties') or {}).get('ar_action_key') or ''}" for i in inputs]
        return [f"hubspot PATCH {base}/{i.get('id', '')} " for i in inputs]
    if entry["provider"] != "xero" or entry["method"] != "PUT" or path not in XERO_BATCHES:
        return None
    items = _xero_items(entry, path.lstrip("/"))
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    if path == "/Payments":
        return [f"xero PUT /Payments {_payment_identity(item)}" for item in items]
    return [f"xero PUT /BankTransactions {item.get('Reference') or ''} {_bank_total(item)}" for item in items]


def _payment_identity(item: dict[str, Any]) -> str:
    """A Xero payment by what it pays: the invoice, its Reference and its Amount."""
    invoice = item.get("Invoice") or {}
    paid = invoice.get("InvoiceID") or invoice.get("InvoiceNumber")
    return f"{paid} {item.get('Reference') or ''} {_amount(item.get('Amount'))}"


def _bank_total(item: dict[str, Any]) -> str:
    """A Xero bank transaction's total, as the sandbox books it (quantity times unit amount)."""
    lines = item.get("LineItems") or []
    return _amount(
        sum(Decimal(str(line.get("UnitAmount") or 0)) * Decimal(str(line.get("Quantity") or 1)) for line in lines)
    )


def _effect_keys(entry: dict[str, Any]) -> list[str]:
    """The keys of what `entry` did that a repeat would do again: one per item of a batch
    whose effect starts with a NON_IDEMPOTENT word, else the request's key when its effect
    does (a replayed or refused request: none)."""
    parts = _effect_parts(str(entry.get("effect", "")))
    items = _item_keys(entry)
    if items is None or len(items) != len(parts):
        # a request refused as a whole ("rejected: ...") answers one effect for all its items
        return [_write_key(entry)] if parts[0].split(" ")[0] in NON_IDEMPOTENT else []
    return [key for key, part in zip(items, parts, strict=True) if part.split(" ")[0] in NON_IDEMPOTENT]


def writes(journal: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every write the sandbox received (searches and token requests aside)."""
    return [
        e
        for e in journal
        if e["method"] in ("PUT", "PATCH", "POST")
        and not e["path"].split("?")[0].endswith(("/search", "/batch/read"))
        and "oauth" not in e["path"]
    ]


def write_counts(journal: list[dict[str, Any]]) -> Counter[str]:
    """Every write the sandbox received (searches and token requests aside), by key: one per
    item of a batch (`_item_keys`), refused or not."""
    return Counter(key for e in writes(journal) for key in (_item_keys(e) or [_write_key(e)]))


CREATED_ID = re.compile(r"created (?:payment|bank transaction) (\S+)")
DELETED_ID = re.compile(r"deleted (?:payment|bank transaction) (\S+)")


def effect_counts(journal: list[dict[str, Any]]) -> Counter[str]:
    """The writes that changed something a repeat would change again (a payment created, an
    invoice marked paid or sent, a note created), per action: per item for a batch, so the
    same note or payment made by two batches counts twice and a replayed batch not at all.

    A Xero payment or fee made again after the one made before was deleted is a new one (the
    plan took a decision back and a later decision made it again): its key gets " #N", the
    number of deletions of that payment before it."""
    counts: Counter[str] = Counter()
    made: dict[str, str] = {}  # Xero's id of a payment or fee we made -> its key
    deletions: Counter[str] = Counter()
    for entry in journal:
        for key, part in zip(_effect_keys(entry), _kept_parts(entry), strict=False):
            generation = deletions[key]
            counts[f"{key} #{generation}" if generation else key] += 1
            created = CREATED_ID.match(part)
            if created:
                made[created.group(1)] = key
        for part in _effect_parts(str(entry.get("effect", ""))):
            deleted = DELETED_ID.match(part)
            if deleted and deleted.group(1) in made:
                deletions[made[deleted.group(1)]] += 1
    return counts


def _kept_parts(entry: dict[str, Any]) -> list[str]:
    """The item effects `_effect_keys` keys, in its order (for a request keyed as a whole,
    its first)."""
    parts = _effect_parts(str(entry.get("effect", "")))
    items = _item_keys(entry)
    if items is None or len(items) != len(parts):
        return parts[:1]
    return [part for part in parts if part.split(" ")[0] in NON_IDEMPOTENT]


HUBSPOT_CREATES = {"create_note": "notes", "create_task": "tasks"}


def action_effect_key(action: dict[str, Any]) -> str | None:
    """The key `effect_counts` counts an outbox action's effect under, when it is known from
    the action alone (a row with `connection`'s provider in `provider`, `kind`, `target`,
    `payload` and `idempotency_key`): a Xero payment or fee by what it pays, a HubSpot note or
    task by its action key. None: keyed by the request's Idempotency-Key (Stripe, a Xero
    e-mail), which ends the key."""
    payload = action.get("payload") or {}
    target = action.get("target") or {}
    kind = action["kind"]
    if action.get("provider") == "xero" and kind == "record_payment":
        item = {"Invoice": {"InvoiceID": target.get("remote_id")}, **_xero_amount(payload, "Amount")}
        return f"xero PUT /Payments {_payment_identity(item)}"
    if action.get("provider") == "xero" and kind == "record_fee":
        return f"xero PUT /BankTransactions {payload.get('reference') or ''} {_amount(payload.get('amount'))}"
    if kind in HUBSPOT_CREATES:
        return f"hubspot POST /crm/v3/objects/{HUBSPOT_CREATES[kind]} {action['idempotency_key']}"
    return None


def _xero_amount(payload: dict[str, Any], name: str) -> dict[str, Any]:
    return {name: payload.get("amount"), "Reference": payload.get("reference")}


def batch_items(entry: dict[str, Any]) -> list[tuple[Any, str]] | None:
    """The items of a journal entry that carried several writes in one request (a Xero PUT of
    payments or bank transactions, a HubSpot batch create or update), each with its own effect;
    None for a request of one write (or one refused as a whole)."""
    path = entry["path"].split("?")[0]
    payload = entry.get("payload")
    if entry["provider"] == "hubspot" and HUBSPOT_BATCH.fullmatch(path) and isinstance(payload, dict):
        items = payload.get("inputs")
    elif entry["provider"] == "xero" and entry["method"] == "PUT" and path in XERO_BATCHES:
        items = _xero_items(entry, path.lstrip("/"))
    else:
        return None
    parts = _effect_parts(str(entry.get("effect", "")))
    if not isinstance(items, list) or len(items) != len(parts):
        return None
    return list(zip(items, parts, strict=True))
