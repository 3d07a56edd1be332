"""Related customers: different customers that may pay for one another (a group's companies,
a parent and its subsidiaries). Reconciliation looks among them for the invoice a payment is
for when the payer's own invoices do not explain it.

`related_customers` decides (pure: what the systems say of each customer in, relations out);
`load_related` reads what is stored. Customers are related when:

- the ledger puts them in one contact group (Xero `ContactGroups`, hint `contact_groups`);
- one is the other's parent company in the CRM, or both have the same parent (HubSpot
  `hs_parent_company_id`, hint `parent_company_id`);
- their e-mail addresses share a domain that is not a public mail provider's (two customers
  writing from gmail.com are not related; two from acme-group.com are).

A relation is never a customer with itself, and it holds both ways.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from connector.state import linking as state_linking
from connector.state import records as state_records
from connector.state.store import Store

# Domains of mail providers anyone can sign up with; `yahoo.*`, `gmx.*`, ... cover their
# country domains.
PUBLIC_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "web.de",
        "t-online.de",
        "freenet.de",
        "proton.me",
        "protonmail.com",
        "pm.me",
        "mail.com",
        "email.com",
        "ymail.com",
        "zoho.com",
        "fastmail.com",
        "hey.com",
        "qq.com",
        "163.com",
        "126.com",
        "mail.ru",
        "orange.fr",
        "free.fr",
        "laposte.net",
        "libero.it",
        "btinternet.com",
        "comcast.net",
        "verizon.net",
    }
)
PUBLIC_MAIL_FAMILIES = ("yahoo.", "gmx.", "hotmail.", "outlook.", "live.", "yandex.")


@dataclass(frozen=True)
class CustomerFacts:
    """What one system says of one customer, as far as relations go: `groups` the names of its
    contact groups, `parent` the remote id (in the same system) of its parent company."""

    entity_id: str
    system: str
    remote_id: str
    emails: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    parent: str | None = None


def public_mail_domain(domain: str) -> bool:
    domain = domain.strip().lower()
    return domain in PUBLIC_MAIL_DOMAINS or domain.startswith(PUBLIC_MAIL_FAMILIES)


def email_domain(address: str) -> str | None:
    """The domain of an e-mail address, lower case; None for a public mail provider's or a
    string that is no address."""
    _, at, domain = address.strip().rpartition("@")
    domain = domain.strip().lower().rstrip(".")
    if not at or "." not in domain or public_mail_domain(domain):
        return None
    return domain


def related_customers(facts: Sequence[CustomerFacts]) -> dict[str, frozenset[str]]:
    """For every canonical customer id in `facts`, the ids of the customers related to it (an
    empty set when none)."""
    related: dict[str, set[str]] = {f.entity_id: set() for f in facts}
    for members in _circles(facts):
        for member in members:
            related[member] |= members - {member}
    return {entity: frozenset(others) for entity, others in sorted(related.items())}


def _circles(facts: Sequence[CustomerFacts]) -> Iterable[set[str]]:
    """Each set of customers that are related to one another by one fact."""
    by_group: dict[tuple[str, str], set[str]] = defaultdict(set)
    by_domain: dict[str, set[str]] = defaultdict(set)
    by_remote = {(f.system, f.remote_id): f.entity_id for f in facts}
    families: dict[tuple[str, str], set[str]] = defaultdict(set)  # (system, parent remote id) -> ids
    for fact in facts:
        for group in fact.groups:
            # a group is the ledger's own: the same name in two systems is two groups
            by_group[(fact.system, group.strip().casefold())].add(fact.entity_id)
        for address in fact.emails:
            domain = email_domain(address)
            if domain:
                by_domain[domain].add(fact.entity_id)
        if fact.parent:
            family = families[(fact.system, fact.parent)]
            family.add(fact.entity_id)
            parent = by_remote.get((fact.system, fact.parent))
            if parent:
                family.add(parent)
    yield from by_group.values()
    yield from by_domain.values()
    yield from families.values()


# Every field of a stored customer view `facts_of` reads: `load_related` has the database
# extract these (`ref_views(fields=...)`) rather than decode every customer view whole (the
# large book's 30,807 customer views, decoded, were a reconcile pass's largest holding).
RELATION_FIELDS: tuple[tuple[str, ...], ...] = (
    ("emails",),
    ("_sync", "hints", "email"),
    ("_sync", "hints", "contact_groups"),
    ("_sync", "hints", "parent_company_id"),
)


def facts_of(row: dict[str, Any]) -> CustomerFacts:
    """The relation facts in one stored customer view (`state.linking.ref_views`), whole or
    holding only `RELATION_FIELDS`."""
    data = row["data"]
    hints = (data.get("_sync") or {}).get("hints") or {}
    emails = [e for e in data.get("emails") or [] if isinstance(e, str)]
    if isinstance(hints.get("email"), str):
        emails.append(hints["email"])
    groups = hints.get("contact_groups") or []
    parent = hints.get("parent_company_id")
    return CustomerFacts(
        entity_id=row["entity_id"],
        system=row["system"],
        remote_id=row["remote_id"],
        emails=tuple(emails),
        groups=tuple(str(g) for g in groups if g) if isinstance(groups, list) else (),
        parent=str(parent) if parent not in (None, "") else None,
    )


def load_related(store: Store) -> dict[str, frozenset[str]]:
    """`related_customers` of the store's company, from every system's stored view."""
    with store.session() as session:
        rows = state_linking.ref_views(session, "customer", fields=RELATION_FIELDS)
    return related_customers([facts_of(row) for row in rows])


def customer_names(store: Store) -> dict[str, str]:
    """Canonical customer id -> the customer's name, for the store's company."""
    with store.session() as session:
        return state_records.customer_names(session)
