"""Which records of different systems are the same customer, invoice or payment.

Pure: views in, links out; `connector.linking.run` reads the views from the state store and
applies the links. Rules, strongest first, each recorded on the link it makes:

Customers
    explicit_id     one system names the other's id (Stripe `metadata.xero_contact_id`)
    email           the same billing e-mail address
    name            the same name once case, punctuation and spacing are ignored
Invoices
    explicit_id     one system names the other's id (Stripe `metadata.xero_invoice_id`)
    invoice_number  the same invoice number (normalised) in the same currency; a CRM deal's
                    number property counts only as `deal_name` below checks it
    deal_name       a CRM deal names a receivable's number in its name or number property
                    ("Acme Ltd - INV-0042", "Invoice 42"): exactly one invoice has it, the
                    deal's currency (when it states one) and amount (when it has one) agree
    customer_amount_date  same customer, currency and total, issued within a few days, and
                    no other candidate on either side; the customer is the one the record's
                    system names (`_sync.links.customer`), so an invoice stored before its
                    contact links as well as one stored after it
Payments
    explicit_id     the ledger's payment names the gateway's charge (Xero `Reference` = `ch_...`);
                    every ledger payment naming one charge joins it (a split write-back)

A link never joins two records of the same system and object type (save the ledger payments
that each record a part of one charge), and a rule that finds
several candidates links none of them (ambiguity is left visible, never guessed). The
surviving canonical record is the one of the most trusted system (the ledger by default),
except for payments: there the gateway's charge survives (see `link_payments`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from connector.linking.deals import Deal, DealMatch, NumberIndex, Receivable
from connector.linking.numbers import normalise_number
from connector.state.records import receivable_kind

# Hints whose value is another system's remote id: hint -> (that system's kind, object type).
EXPLICIT_ID_HINTS: dict[str, tuple[str, str]] = {
    "ledger_contact_id": ("ledger", "customer"),
    "crm_company_id": ("crm", "customer"),
    "gateway_customer_id": ("gateway", "customer"),
    "ledger_invoice_id": ("ledger", "invoice"),
    "crm_deal_id": ("crm", "deal"),
    "gateway_invoice_id": ("gateway", "invoice"),
}
DATE_WINDOW_DAYS = 3
DEAL = "deal"  # a CRM deal's object type: its number counts only as `deal_name` checks it
_LEGAL_SUFFIXES = re.compile(r"\b(inc|llc|ltd|limited|gmbh|ag|sa|s\.a|bv|plc|corp|co|kk|pty)\b\.?", re.I)


# The hints the rules read (`View.hints`); linking a stored book keeps only these of a view.
LINKING_HINTS = frozenset({*EXPLICIT_ID_HINTS, "email", "invoice_number", "deal_name", "currency_code", "reference"})


@dataclass(frozen=True, slots=True)
class View:
    """One system's record: enough of it to decide whether it is the same as another's."""

    system: str
    kind: str  # ledger / gateway / crm
    object_type: str
    remote_id: str
    entity_id: str
    rank: int
    data: dict[str, Any] = field(hash=False, compare=False)
    hints: Mapping[str, Any] = field(hash=False, compare=False, default_factory=dict)
    links: Mapping[str, Any] = field(hash=False, compare=False, default_factory=dict)

    @property
    def slot(self) -> tuple[str, str]:
        return (self.system, self.object_type)


@dataclass(frozen=True)
class Link:
    survivor: str  # the canonical id that stays
    member: str  # a canonical id merged into it
    rule: str
    reason: str


class _Groups:
    """Union-find over canonical ids that refuses a union putting two records of one system
    and object type together."""

    def __init__(self, views: Sequence[View]) -> None:
        self.parent: dict[str, str] = {}
        self.members: dict[str, list[View]] = defaultdict(list)
        for view in views:
            self.parent.setdefault(view.entity_id, view.entity_id)
            self.members[view.entity_id].append(view)
        self.rules: dict[str, tuple[str, str]] = {}

    def find(self, entity: str) -> str:
        root = entity
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[entity] != root:
            self.parent[entity], entity = root, self.parent[entity]
        return root

    def union(self, a: str, b: str, rule: str, reason: str) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        slots_a = {v.slot for v in self.members[ra]}
        if any(v.slot in slots_a for v in self.members[rb]):
            return False
        self.parent[rb] = ra
        self.members[ra].extend(self.members.pop(rb))
        # the rule is remembered on the group that joined; its earlier members keep theirs
        self.rules.setdefault(rb, (rule, reason))
        return True

    def links(self) -> list[Link]:
        out = []
        for views in self.members.values():
            entities = {v.entity_id for v in views}
            if len(entities) < 2:
                continue
            best = max(views, key=lambda v: (v.rank, v.kind == "ledger", v.system))
            group_rules = [self.rules[e] for e in sorted(entities) if e in self.rules]
            for entity in sorted(entities - {best.entity_id}):
                # the root this member joined under may be the survivor itself: then the
                # survivor's own joining rule is the one that bound them
                rule, reason = self.rules.get(entity) or self.rules.get(best.entity_id) or group_rules[0]
                out.append(Link(survivor=best.entity_id, member=entity, rule=rule, reason=reason))
        return out


def _explicit(groups: _Groups, views: Sequence[View], object_types: Iterable[str]) -> None:
    wanted = set(object_types)
    index = {(v.kind, v.object_type, v.remote_id): v for v in views}
    for view in views:
        for hint, (kind, object_type) in EXPLICIT_ID_HINTS.items():
            value = view.hints.get(hint)
            if not value or object_type not in wanted:
                continue
            other = index.get((kind, object_type, str(value)))
            if other is not None and other.system != view.system:
                groups.union(
                    other.entity_id,
                    view.entity_id,
                    "explicit_id",
                    f"{view.system} {view.object_type} {view.remote_id} names {other.system} "
                    f"{other.object_type} {other.remote_id} ({hint})",
                )


def _unique_key_links(groups: _Groups, views: Sequence[View], key_of: Any, rule: str, describe: Any) -> None:
    """Link records of different systems sharing a key, where each system has one record with
    that key (a key two records of one system share is ambiguous and links nothing)."""
    by_key: dict[Any, dict[tuple[str, str], list[View]]] = defaultdict(lambda: defaultdict(list))
    for view in views:
        for key in key_of(view):
            by_key[key][view.slot].append(view)
    for key, slots in sorted(by_key.items(), key=lambda item: repr(item[0])):
        singles = [found[0] for found in slots.values() if len(found) == 1]
        if len(singles) < 2:
            continue
        anchor = max(singles, key=lambda v: (v.rank, v.system))
        for other in singles:
            if other is not anchor:
                groups.union(anchor.entity_id, other.entity_id, rule, describe(key, anchor, other))


def normalise_name(value: Any) -> str | None:
    if not value:
        return None
    text = _LEGAL_SUFFIXES.sub(" ", str(value).lower())
    text = re.sub(r"[^a-z0-9]+", " ", text).strip()
    return text or None


def customer_emails(view: View) -> list[str]:
    """The e-mail addresses a customer's view gives (`email` rule), lowercased."""
    found = [e.strip().lower() for e in view.data.get("emails") or [] if isinstance(e, str) and "@" in e]
    hint = view.hints.get("email")
    if isinstance(hint, str) and "@" in hint:
        found.append(hint.strip().lower())
    return sorted(set(found))


def customer_name(view: View) -> list[str]:
    """A customer's name as the `name` rule compares it (none, or one)."""
    return [n] if (n := normalise_name(view.data.get("name"))) else []


def link_customers(views: Sequence[View]) -> list[Link]:
    groups = _Groups(views)
    _explicit(groups, views, ["customer"])
    _unique_key_links(groups, views, customer_emails, "email", lambda key, a, b: f"same e-mail address {key}")
    _unique_key_links(
        groups,
        views,
        customer_name,
        "name",
        lambda key, a, b: f"same name ({a.data.get('name')!r} / {b.data.get('name')!r})",
    )
    return groups.links()


def number_key(view: View) -> list[tuple[str, str]]:
    """An invoice's number (normalised) and currency, as the `invoice_number` rule compares them;
    none for a deal, whose number counts only when `deal_name` checked it."""
    if view.object_type == "deal":
        return []
    number = normalise_number(view.hints.get("invoice_number") or view.data.get("number"))
    currency = view.data.get("currency")
    return [(number, str(currency))] if number and currency else []


def amount_key(
    view: View, customer_of: Mapping[str, str], customer_by_ref: Mapping[tuple[str, str], str]
) -> list[tuple[str, str, str]]:
    """An invoice's customer (canonical, now), currency and total, as the `customer_amount_date`
    rule compares them."""
    customer = customer_of_view(view, customer_of, customer_by_ref)
    total = (view.data.get("total") or {}).get("amount")
    if not customer or total is None:
        return []
    return [(customer, str(view.data.get("currency")), str(Decimal(str(total))))]


def link_invoices(
    views: Sequence[View],
    customer_of: Mapping[str, str],
    customer_by_ref: Mapping[tuple[str, str], str] | None = None,
    *,
    receivable: str | None = None,
) -> list[Link]:
    """`customer_by_ref` maps a customer's (system, remote id) to its canonical id now, which
    is how an invoice's customer is known whatever the order the two were stored in;
    `customer_of` maps a pre-link customer id to its surviving id, for views that carry no
    customer link (customers link first). `receivable`: the kind of system whose invoices are
    the book's receivables, when `views` are part of a book (`receivable_views`)."""
    groups = _Groups(views)
    _explicit(groups, views, ["invoice", "deal"])
    _deal_links(groups, views, receivable)
    _unique_key_links(
        groups,
        views,
        number_key,
        "invoice_number",
        lambda key, a, b: f"same invoice number {key[0]} in {key[1]}",
    )
    _date_window_links(groups, views, lambda view: amount_key(view, customer_of, customer_by_ref or {}))
    return groups.links()


def receivable_views(views: Sequence[View], kind: str | None = None) -> list[View]:
    """The invoices that are receivables (`state.records.receivable_kind`): the ledger's, or the
    gateway's in a company without a ledger. `kind`: of that kind of system (a part of a book,
    whose receivables' kind the whole book tells); by default the kind `views` tell."""
    kind = kind or receivable_kind({v.kind for v in views})
    return [v for v in views if v.kind == kind and v.object_type == "invoice"]


def deal_of(view: View) -> Deal:
    """What a CRM deal's view says of the invoice it is for."""
    stated = view.hints.get("currency_code")
    amount = (view.data.get("total") or {}).get("amount")
    return Deal(
        name=str(view.hints.get("deal_name") or "") or None,
        number=str(view.hints.get("invoice_number") or "") or None,
        currency=str(stated) if stated else None,
        amount=Decimal(str(amount)) if amount not in (None, "") else None,
    )


def deal_index(views: Sequence[View], receivable: str | None = None) -> NumberIndex:
    """The receivables among `views` by number, keyed by canonical id."""
    found = []
    for view in receivable_views(views, receivable):
        number = view.hints.get("invoice_number") or view.data.get("number")
        total = (view.data.get("total") or {}).get("amount")
        if number:
            found.append(
                Receivable(
                    key=view.entity_id,
                    number=str(number),
                    currency=str(view.data.get("currency") or ""),
                    total=Decimal(str(total)) if total is not None else None,
                )
            )
    return NumberIndex(found)


def match_deals(views: Sequence[View], receivable: str | None = None) -> dict[str, DealMatch]:
    """For each CRM deal among `views` (by canonical id), the receivable it names, if any. Two
    deals of one system naming one invoice name nothing: which one it is for is a person's call."""
    index = deal_index(views, receivable)
    deals = sorted((v for v in views if v.kind == "crm" and v.object_type == "deal"), key=lambda v: v.remote_id)
    matches = {deal.entity_id: index.match(deal_of(deal)) for deal in deals}
    claims: dict[tuple[str, str], list[View]] = defaultdict(list)
    for deal in deals:
        target = matches[deal.entity_id].target
        if target:
            claims[(target, deal.system)].append(deal)
    for claimants in claims.values():
        if len(claimants) > 1:
            names = ", ".join(d.remote_id for d in claimants)
            for deal in claimants:
                matches[deal.entity_id] = DealMatch(None, None, f"deals {names} name the same invoice")
    return matches


def _deal_links(groups: _Groups, views: Sequence[View], receivable: str | None) -> None:
    for deal, match in sorted(match_deals(views, receivable).items()):
        if match.target and match.rule:
            groups.union(match.target, deal, match.rule, match.reason)


def customer_of_view(
    view: View, customer_of: Mapping[str, str], customer_by_ref: Mapping[tuple[str, str], str]
) -> str | None:
    """The canonical customer a view's system names: through its customer link (the remote id
    of the customer in the same system) when that customer is stored, else the customer id
    the record was stored with, as linked since."""
    remote = view.links.get("customer")
    if remote not in (None, ""):
        found = customer_by_ref.get((view.system, str(remote)))
        if found:
            return found
    stored = view.data.get("customer_id")
    return customer_of.get(str(stored), str(stored)) if stored else None


def _date_window_links(groups: _Groups, views: Sequence[View], key_of: Any) -> None:
    by_key: dict[Any, list[View]] = defaultdict(list)
    for view in views:
        for key in key_of(view):
            by_key[key].append(view)
    for key, candidates in sorted(by_key.items(), key=lambda item: repr(item[0])):
        slots = {v.slot for v in candidates}
        if len(slots) < 2:
            continue
        per_slot: dict[tuple[str, str], list[View]] = defaultdict(list)
        for view in candidates:
            per_slot[view.slot].append(view)
        if any(len(found) > 1 for found in per_slot.values()):
            continue  # two invoices of one customer with the same amount: leave it to a person
        ordered = sorted(candidates, key=lambda v: (-v.rank, v.system))
        anchor = ordered[0]
        anchor_date = _issue_date(anchor)
        for other in ordered[1:]:
            other_date = _issue_date(other)
            if anchor_date and other_date and abs((anchor_date - other_date).days) <= DATE_WINDOW_DAYS:
                groups.union(
                    anchor.entity_id,
                    other.entity_id,
                    "customer_amount_date",
                    f"same customer and total {key[2]} {key[1]}, issued {anchor_date} / {other_date}",
                )


def _issue_date(view: View) -> date | None:
    value = view.data.get("issue_date")
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def charges_named(view: View) -> list[str]:
    """The gateway charges (or payment intents) a ledger payment's reference names."""
    reference = str(view.hints.get("reference") or view.data.get("remittance") or "")
    return re.findall(r"\b(?:ch|py|pi)_[A-Za-z0-9]+", reference)


def link_payments(views: Sequence[View]) -> list[Link]:
    """A ledger payment that names the gateway's charge (or payment intent) in its reference is
    the same money: one canonical payment, so it is never counted twice. The charge may have
    become several ledger payments (one per invoice it paid, written back or entered by hand):
    all of them join it. The charge's record survives, whatever the ranks: it is the money (what
    was collected, its fee, its refunds); each ledger payment records a part of it against one
    invoice. A ledger payment naming two charges is ambiguous and links to neither."""
    charges = {v.remote_id: v for v in views if v.kind == "gateway"}
    charge_of_entity: dict[str, set[str]] = defaultdict(set)  # entity -> the charges already in it
    for charge in charges.values():
        charge_of_entity[charge.entity_id].add(charge.remote_id)
    links: dict[str, Link] = {}
    for view in views:
        if view.kind != "ledger":
            continue
        named = {charges[t] for t in charges_named(view) if t in charges}
        if len(named) != 1:
            continue
        charge = named.pop()
        member = view.entity_id
        if member == charge.entity_id or member in links:
            continue
        if charge_of_entity.get(member, set()) - {charge.remote_id}:
            continue  # the ledger payment is another charge's already
        links[member] = Link(
            survivor=charge.entity_id,
            member=member,
            rule="explicit_id",
            reason=f"{view.system} payment {view.remote_id} names {charge.system} {charge.remote_id} in its reference",
        )
    return [links[member] for member in sorted(links)]
