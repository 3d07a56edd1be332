"""Two companies' books in one deployment, for the isolation tests: their configs (together,
and each alone), what the CLI shows of a book with our generated ids taken out, and what a
sandbox was told.

Each company's connections carry its name (`gateway_north`, `ledger_north`, `crm_north`), in
the shared config and in the config of the book alone, so that everything derived from a
connection's name (refs, idempotency keys) reads the same in both runs.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from connector.demo import demo_config
from connector.model import Customer, Invoice, Payment
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state.store import Store
from support.e2e import batch_items, with_credentials, writes

# company -> the seed of its generated book
SEEDS = {"north": 42, "south": 43}
KINDS = ("gateway", "ledger", "crm")
# The sandbox runs with its limits off: the connections need not pace themselves either.
UNLIMITED = {
    "gateway": "requests_per_second = 1000\nendpoint_requests_per_second = 1000\n",
    "ledger": "calls_per_minute = 100000\n",
    "crm": "requests_per_10_seconds = 100000\nsearch_requests_per_second = 1000\n",
}


def book(company: str, today: date) -> dict[str, Any]:
    """The company's generated book as a sandbox serves it (a fresh copy each call: a sandbox
    changes what it serves as it is written to)."""
    return copy.deepcopy(with_credentials(generate(SEEDS[company], "small", today=today).data))


# configs -------------------------------------------------------------------------------------


def connection_tables(sandbox: Sandbox, company: str, *, named: bool) -> str:
    """The company's three connections against `sandbox`, named after it; `named`: each table
    says `company = "..."`."""
    text = demo_config(sandbox)
    tables = text[text.index("[connections.gateway]") :]
    for kind in KINDS:
        header = f"[connections.{kind}]\n"
        own = f"[connections.{kind}_{company}]\n" + (f'company = "{company}"\n' if named else "")
        tables = tables.replace(header, own + UNLIMITED[kind])
    return tables


def database_table(url: str, sandbox: Sandbox) -> str:
    text = demo_config(sandbox)
    section = text[text.index("[database]") : text.index("[connections.gateway]")]
    return section.replace("sqlite:///connector.db", url)


def shared_config(url: str, sandboxes: Mapping[str, Sandbox]) -> str:
    """Every company's connections in one config, each declared under `[companies.NAME]`."""
    first = next(iter(sandboxes.values()))
    declared = "".join(f'[companies.{c}]\nlegal_name = "{c.title()} Ltd"\n\n' for c in sandboxes)
    tables = "\n".join(connection_tables(s, c, named=True) for c, s in sandboxes.items())
    return database_table(url, first) + declared + tables


def alone_config(url: str, company: str, sandbox: Sandbox) -> str:
    """The company's book in a config of its own, as before companies: no `company` key."""
    return database_table(url, sandbox) + connection_tables(sandbox, company, named=False)


def unscoped_config(url: str, sandboxes: Mapping[str, Sandbox]) -> str:
    """Every company's connections in one config that names no company (two ledgers)."""
    first = next(iter(sandboxes.values()))
    return database_table(url, first) + "\n".join(connection_tables(s, c, named=False) for c, s in sandboxes.items())


# what collides between two books ----------------------------------------------------------------


def collisions(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, set[str]]:
    """What the two books share that a linker could mistake for the same record: invoice
    numbers, customer names and e-mails, and HubSpot's object ids (numbered alike in both)."""

    def numbers(data: Mapping[str, Any]) -> set[str]:
        return {i["InvoiceNumber"] for i in data["xero"]["Invoices"]}

    def names(data: Mapping[str, Any]) -> set[str]:
        return {c["Name"] for c in data["xero"]["Contacts"]} | {
            c["name"] for c in data["stripe"]["customers"] if c.get("name")
        }

    def emails(data: Mapping[str, Any]) -> set[str]:
        found = {c["EmailAddress"] for c in data["xero"]["Contacts"] if c.get("EmailAddress")}
        return found | {c["email"] for c in data["stripe"]["customers"] if c.get("email")}

    def hubspot_ids(data: Mapping[str, Any]) -> set[str]:
        return {o["id"] for objects in data["hubspot"].values() for o in objects}

    return {
        "invoice numbers": numbers(first) & numbers(second),
        "customer names": names(first) & names(second),
        "e-mails": emails(first) & emails(second),
        "hubspot ids": hubspot_ids(first) & hubspot_ids(second),
    }


def own_ids(data: Mapping[str, Any]) -> set[str]:
    """The book's Stripe and Xero ids of customers, invoices and payments (HubSpot's are
    numbered alike in every book: they tell no book from another)."""
    stripe, xero = data["stripe"], data["xero"]
    ids = {o["id"] for name in ("customers", "invoices", "charges", "payment_intents") for o in stripe[name]}
    ids |= {c["ContactID"] for c in xero["Contacts"]} | {i["InvoiceID"] for i in xero["Invoices"]}
    return ids | {p["PaymentID"] for p in xero["Payments"]}


def payment_amounts(data: Mapping[str, Any]) -> set[str]:
    """The book's payment amounts as the providers write them: Xero's as written, Stripe's
    minor units both as they are and in major units (JPY has none, KWD three places)."""
    amounts = {format(Decimal(str(p["Amount"])), "f") for p in data["xero"]["Payments"]}
    for charge in data["stripe"]["charges"]:
        minor, currency = charge["amount"], charge["currency"].upper()
        places = {"JPY": 0, "KWD": 3}.get(currency, 2)
        amounts |= {str(minor), format(Decimal(minor).scaleb(-places), "f")}
    return amounts


# what a sandbox was told ------------------------------------------------------------------------

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NUMBERED = re.compile(r"(created \w+) \d+")  # HubSpot numbers what it creates in the order it comes
_ACTION_KEY = re.compile(r"\bar-[0-9a-f]{40}\b")
_SENT_AT = re.compile(r'("hs_timestamp": "\d{4}-\d\d-\d\d)T[0-9:.]+Z"')


def comparable_writes(journal: list[dict[str, Any]], data: Mapping[str, Any]) -> list[str]:
    """The writes, sorted, as two runs sending the same actions to the sandbox serving `data`
    send them. Taken out: when each came and its request id; the ids the sandbox made up for
    what it created (Xero's random uuids, not in `data`; HubSpot's numbers in the order the
    writes came); the hour a CRM note was sent (its day stays); and the actions' keys, hashes
    of their content, which for a reminder names our generated ids of its customer and
    invoices (what the reminder says is kept and compared)."""
    known = set(leaves(data))
    out = []
    for entry in writes(journal):
        kept = {k: v for k, v in entry.items() if k not in ("at", "request_id")}
        items = batch_items(entry)
        if items is not None:
            # a batch is compared item by item, each as the request sending it alone: which
            # items a run put together, and under which key, depends on when each was claimed
            out += [_comparable(_as_single(kept, item, effect), known) for item, effect in items]
            continue
        out.append(_comparable(kept, known))
    return sorted(out)


def _comparable(kept: dict[str, Any], known: set[str]) -> str:
    text = json.dumps(kept, sort_keys=True, default=str)
    text = _UUID.sub(lambda m: m.group(0) if m.group(0) in known else "<created>", text)
    text = _NUMBERED.sub(r"\1 <created>", _ACTION_KEY.sub("ar-<key>", text))
    return _SENT_AT.sub(r'\1"', text)


def _as_single(entry: dict[str, Any], item: Any, effect: str) -> dict[str, Any]:
    """One item of a batch as the request that sends it alone would look: a HubSpot batch
    update's input as the PATCH of its record, a batch create's as the create; a Xero payment
    or bank transaction as a PUT of that one."""
    path = entry["path"].split("?")[0]
    single = {**entry, "effect": effect}
    single.pop("idempotency_key", None)
    if path.endswith("/batch/update"):
        base = path.removesuffix("/batch/update")
        properties = item.get("properties") if isinstance(item, dict) else None
        return {**single, "method": "PATCH", "path": f"{base}/{item.get('id')}", "payload": {"properties": properties}}
    if path.endswith("/batch/create"):
        return {**single, "path": path.removesuffix("/batch/create"), "payload": item}
    return {**single, "payload": {path.lstrip("/"): [item]}}


def leaves(value: Any) -> Iterator[str]:
    """Every scalar in a write (path and payload), as text."""
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from leaves(item)
    elif value is not None:
        yield str(value)


def mentions(entry: dict[str, Any], values: set[str]) -> set[str]:
    """Which of `values` a write names: in its path, or as (or inside) a value of its payload."""
    texts = [*entry["path"].split("?")[0].split("/"), *leaves(entry.get("payload"))]
    return {v for v in values for text in texts if v == text or (len(v) > 12 and v in text)}


# what the CLI shows of a book ---------------------------------------------------------------------

_CANONICAL = re.compile(r"\b[0-9a-f]{32}\b")
_DERIVED = re.compile(r"\b(al|pr)-[0-9a-f]{12,24}\b")


def labels(store: Store) -> dict[str, str]:
    """Our generated id of each customer, invoice and payment of the store's company -> a name
    that is the same in every run: its first ref (connection, type, the provider's id)."""
    out: dict[str, str] = {}
    records: list[Customer | Invoice | Payment] = [*store.list_customers(), *store.list_invoices()]
    records += store.list_payments()
    for record in records:
        first = min(f"{r.system}/{r.object_type}/{r.remote_id}" for r in record.refs)
        assert record.id is not None
        out[record.id] = f"<{first}>"
    return out


def comparable(output: str, names: Mapping[str, str]) -> Any:
    """A command's JSON with our generated ids put by `names` (random uuids, different in every
    database; an id not in `names` becomes "<unknown id>"), and the ids hashed from them
    (allocations `al-`, proposals `pr-`) blanked."""
    text = _CANONICAL.sub(lambda m: names.get(m.group(0), "<unknown id>"), output)
    text = _DERIVED.sub(lambda m: f"{m.group(1)}-<hash>", text)
    return json.loads(text)
