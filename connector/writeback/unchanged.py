"""Which customers the automatic write-back plan need not derive again: those whose inputs are
the ones their last plan was derived from (issue #18: an engine pass plans what changed, not
the book).

A customer's writes follow from what `facts.Around` reads for its receivables, and from nothing
else: the invoices' rows and their views, the applied allocations on them, the payments of those
allocations and the ledger payments on the invoices (their rows and views), the CRM updates done
to the invoices' records (and whether a sync has read those records since), the day each invoice
was last reminded; and, for every customer alike, the day, the connections' settings, the writes
taken back and the connector's version (`plan_salt`). `weigh` digests all of that per customer
from fingerprints the database hands over (content hashes and change times of the views, the
rows' values; no view decoded, no model built) and compares each digest with the one the
customer's last plan stored (`customers.plan_digest`).

A payment allocated to invoices of several customers ties them: they are planned together or
not at all, so the writes of that payment (a fee) are derived again by every customer that
derived them, or by none. A receivable without a customer is always planned. The unsent writes
of a customer left unplanned are what its last plan derived, from the same inputs: they are kept
(`Unchanged.kept`), where a whole-book plan would have derived them again.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from connector import __version__
from connector.config import Config
from connector.connections import settings_as_marked, system_ranks
from connector.providers.registry import Registry
from connector.state import outbox
from connector.state import plan_inputs as inputs
from connector.state.plan_inputs import NO_CUSTOMER, PlanDigest
from connector.writeback.facts import Around, TakenBack

# Bumped when what the plan derives from its facts changes: every customer is planned again.
PLAN_RULES = "1"


@dataclass(frozen=True)
class Unchanged:
    """What `weigh` found: the customers whose digest is the one their last plan stored, and
    not tied by a payment to one whose digest moved (`clean`), and the subjects of the writes
    those plans derived (`kept`: their invoices, the payments allocated to them)."""

    clean: frozenset[str]
    kept: frozenset[tuple[str, str]]


def forgotten(session: Any, by_customer: Mapping[str, Sequence[str]]) -> list[str]:
    """The customers with a digest stored and no receivable now: theirs stands for nothing
    (cleared, so that receivables of theirs coming back are planned)."""
    return [c for c in inputs.plan_digests(session) if c not in by_customer]


def to_store(digests: Mapping[str, str], payments_of: Mapping[str, set[str]]) -> dict[str, PlanDigest]:
    """What to store of the customers just planned: each one's digest and payments."""
    return {c: PlanDigest(d, frozenset(payments_of.get(c, ()))) for c, d in digests.items()}


def plan_salt(config: Config, registry: Registry | None, day: date, taken: TakenBack, session: Any) -> str:
    """What every customer's plan reads alike: the plan's rules and the connector's version, the
    day (the positions' days past due), the systems with their kinds and ranks, the connections'
    settings (a fee account), and the writes taken back with the payments those are about
    (every part reads them)."""
    payments = sorted(taken.payments)
    rows = inputs.row_fingerprints(session, "payment", payments)
    views = inputs.view_fingerprints(session, "payment", payments)
    parts = {
        "rules": PLAN_RULES,
        "connector": __version__,
        "day": day.isoformat(),
        "systems": sorted((name, kind, rank) for name, (kind, rank) in system_ranks(config, registry).items()),
        "connections": settings_as_marked(config),
        "taken": sorted(taken.keys.items()),
        "withdrawn": sorted(taken.withdrawn),
        "payments": [(p, rows.get(p), views.get(p, [])) for p in payments],
    }
    return json.dumps(parts, sort_keys=True, default=str)


def weigh(
    session: Any, salt: str, by_customer: Mapping[str, Sequence[str]], shared: Around, *, batch: int
) -> Unchanged:
    """Digest what each customer's plan reads (`by_customer`: its receivables; `NO_CUSTOMER`
    for those without one), about `batch` receivables at a time, and compare with the digests
    their last plans stored. `shared`: the ledger links and the days reminded, as the plan
    reads them."""
    digests: dict[str, str] = {}
    payments_of: dict[str, set[str]] = {}
    chunk: dict[str, Sequence[str]] = {}
    for customer, invoice_ids in by_customer.items():
        chunk[customer] = invoice_ids
        if sum(len(ids) for ids in chunk.values()) >= batch:
            digest_customers(session, salt, chunk, shared, digests, payments_of)
            chunk = {}
    if chunk:
        digest_customers(session, salt, chunk, shared, digests, payments_of)
    stored = inputs.plan_digests(session)
    # a customer moved when its digest did; one gone (no receivable now) moved too, and the
    # receivables without a customer are planned every time
    moved = {c for c in by_customer if c == NO_CUSTOMER or c not in stored or stored[c].digest != digests[c]}
    moved |= {c for c in stored if c not in by_customer}
    # a payment allocated across customers ties them, as it is now and as it was at their last
    # plans (a fee one of them derived, and no longer does, is decided by every other holder)
    holding = {
        c: payments_of.get(c, set()) | (stored[c].payments if c in stored else set()) for c in {*by_customer, *stored}
    }
    dirty = _tied(moved, holding)
    clean = frozenset(c for c in by_customer if c not in dirty)
    kept = {("invoice", i) for c in clean for i in by_customer[c]}
    kept |= {("payment", p) for c in clean for p in payments_of[c]}
    return Unchanged(clean=clean, kept=frozenset(kept))


def digest_customers(
    session: Any,
    salt: str,
    by_customer: Mapping[str, Sequence[str]],
    shared: Around,
    digests: dict[str, str],
    payments_of: dict[str, set[str]] | None = None,
) -> None:
    """The digests of these customers (into `digests`), and the payments allocated to each's
    receivables (into `payments_of`): one read of each kind of input for them all."""
    invoice_ids = [i for ids in by_customer.values() for i in ids]
    rows = inputs.row_fingerprints(session, "invoice", invoice_ids)
    views = inputs.view_fingerprints(session, "invoice", invoice_ids)
    allocations: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for allocation in inputs.applied_allocation_rows(session, invoice_ids):
        allocations[allocation[1]].append(allocation)
    where = {i: [inputs.where_view_lives(v) for v in views.get(i, [])] for i in invoice_ids}
    recorded = {
        i: sorted({p for s, _, r in where[i] for p in shared.ledger_links.get((s, r), ())}) for i in invoice_ids
    }
    updates = _crm_updates(session, [w for i in invoice_ids for w in where[i]])
    payment_ids = {a[0] for made in allocations.values() for a in made} | {p for ps in recorded.values() for p in ps}
    payment_rows = inputs.row_fingerprints(session, "payment", payment_ids)
    payment_views = inputs.view_fingerprints(session, "payment", payment_ids)
    reminded = shared.reminded or {}
    for customer, ids in by_customer.items():
        digest = hashlib.sha256(salt.encode())
        paid: set[str] = set()
        for invoice_id in sorted(ids):
            made = allocations.get(invoice_id, [])
            paid.update(a[0] for a in made)
            paid.update(recorded[invoice_id])
            fact = (
                invoice_id,
                rows.get(invoice_id),
                views.get(invoice_id, []),
                [updates.get(w, []) for w in where[invoice_id]],
                [a[2] for a in made],
                recorded[invoice_id],
                reminded.get(invoice_id),
            )
            digest.update(repr(fact).encode())
        for payment_id in sorted(paid):
            digest.update(repr((payment_id, payment_rows.get(payment_id), payment_views.get(payment_id, []))).encode())
        digests[customer] = digest.hexdigest()
        if payments_of is not None:
            payments_of[customer] = {a[0] for i in ids for a in allocations.get(i, [])}


def _crm_updates(session: Any, records: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], list[Any]]:
    """Per record, the CRM updates done to it (their ids: what they wrote is fixed) and whether
    each was done after a sync last read the record, as `facts.sent_crm_values` counts them."""
    done = outbox.done_updates(session, records)
    read = inputs.views_read_at(session, "invoice", {target for _, target, _ in done}) if done else {}
    found: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for update_id, target, done_at in done:
        seen = read.get(target)
        found[target].append((update_id, seen is None or done_at > seen))
    return found


def _tied(moved: set[str], payments_of: Mapping[str, set[str]]) -> set[str]:
    """`moved` with every customer a payment ties to one of them, and so on (a payment
    allocated to invoices of several customers: planned together or not at all); `payments_of`:
    the payments each customer holds."""
    customers_of: dict[str, set[str]] = defaultdict(set)
    for customer, payments in payments_of.items():
        for payment in payments:
            customers_of[payment].add(customer)
    dirty = set(moved)
    waiting = list(moved)
    while waiting:
        customer = waiting.pop()
        for payment in payments_of.get(customer, ()):
            for other in customers_of[payment]:
                if other not in dirty:
                    dirty.add(other)
                    waiting.append(other)
    return dirty
