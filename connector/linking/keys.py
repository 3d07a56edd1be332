"""What linking keys a view by: the values its rules compare (`connector.linking.rules`), each
as a 63-bit hash. Two views that may link share a key; two that share none cannot. So a link
pass over what changed reads the views that changed, then the views sharing a key with them,
and so on (`connector.linking.run.link_changed`), instead of the whole book.

A key may be wider than its rule (a number without its currency, every number a deal's name
carries): a wider key only takes more views into a neighbourhood, which links them as the
whole book's pass would. Pure: views in, keys out; `state.linking` stores them (`link_keys`).

- customers: the e-mail addresses, the name as compared, the ids their explicit-id hints name;
- invoices: the number, the customer + currency + total, the explicit-id hints; and, looked up
  on the other side only (`ViewKeys.toward`), for a receivable the digits it ends with (what a
  deal's name may give), for a deal the number its number property gives, else the numbers and
  digits its name gives;
- payments: the gateway charge (its own id, or the ids a ledger payment's reference names).

Besides these, an invoice *depends* on its customer's record: the customer ref it links to
(`cref`) and the customer id it was stored with (`cid`). A customer whose record moves (merged,
or stored anew) gives the same keys (`customer_identity`), so its invoices, whose customer +
amount + date key moved with it, are linked again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from connector.linking.deals import digits_key, name_digits, name_numbers
from connector.linking.numbers import normalise_number
from connector.linking.rules import (
    EXPLICIT_ID_HINTS,
    View,
    amount_key,
    charges_named,
    customer_emails,
    customer_name,
    deal_of,
)

_EXPLICIT_TYPES = {
    "customer": frozenset({"customer"}),
    "invoice": frozenset({"invoice", "deal"}),
    "payment": frozenset(),
}


def key_hash(text: str) -> int:
    """A key's 64-bit signed hash: what `link_keys` holds (a collision only widens a neighbourhood)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def own_key(view: View) -> int:
    """The key another view's explicit-id hint names this one by (never stored: the views
    holding such a hint store it)."""
    return key_hash(f"x:{view.kind}|{view.object_type}|{view.remote_id}")


def named_by_hints(view: View, entity_kind: str) -> list[tuple[str, str, str]]:
    """(kind of system, object type, remote id) of the records the view's explicit-id hints name."""
    wanted = _EXPLICIT_TYPES[entity_kind]
    named = []
    for hint, (kind, object_type) in EXPLICIT_ID_HINTS.items():
        value = view.hints.get(hint)
        if value and object_type in wanted:
            named.append((kind, object_type, str(value)))
    return named


@dataclass(frozen=True)
class ViewKeys:
    """A view's keys: `shared`, looked up among every view of its kind; `toward`, looked up
    among the other side only (a deal's numbers among the invoices, a receivable's digits
    among the deals: two deals whose names both carry "LLC 2" are no neighbours unless an
    invoice has that number, and then the invoice's own look-up finds them both); `depends`,
    what an invoice holds on its customer's record."""

    shared: frozenset[int] = frozenset()
    toward: frozenset[int] = frozenset()
    depends: frozenset[int] = frozenset()


def _hashed(texts: set[str]) -> frozenset[int]:
    return frozenset(key_hash(text) for text in texts)


def customer_keys(view: View) -> ViewKeys:
    keys = {f"x:{kind}|{object_type}|{remote}" for kind, object_type, remote in named_by_hints(view, "customer")}
    keys.update(f"mail:{email}" for email in customer_emails(view))
    keys.update(f"name:{name}" for name in customer_name(view))
    return ViewKeys(shared=_hashed(keys), depends=customer_identity(view))


def customer_identity(view: View) -> frozenset[int]:
    """The keys an invoice depending on this customer's record holds (`invoice_dependencies`)."""
    keys = {f"cref:{view.system}|{view.remote_id}"}
    if view.data.get("id"):
        keys.add(f"cid:{view.data['id']}")
    return _hashed(keys)


def invoice_keys(
    view: View,
    receivable: str | None,
    customer_of: Mapping[str, str],
    customer_by_ref: Mapping[tuple[str, str], str],
) -> ViewKeys:
    shared = {f"x:{kind}|{object_type}|{remote}" for kind, object_type, remote in named_by_hints(view, "invoice")}
    toward: set[str] = set()
    stated = view.hints.get("invoice_number") or view.data.get("number")
    if view.object_type == "deal":
        # as `NumberIndex.match` reads a deal: its number property, else what its name gives
        deal = deal_of(view)
        if number := normalise_number(deal.number):
            toward.add(f"num:{number}")
        elif deal.name:
            toward.update(f"num:{number}" for number in name_numbers(deal.name))
            toward.update(f"dig:{digits}" for digits in name_digits(deal.name))
    elif number := normalise_number(stated):
        shared.add(f"num:{number}")
    if view.kind == receivable and view.object_type == "invoice" and stated:
        digits = digits_key(str(stated))
        if digits is not None:
            toward.add(f"dig:{digits}")
    shared.update(
        f"amt:{customer}|{currency}|{total}"
        for customer, currency, total in amount_key(view, customer_of, customer_by_ref)
    )
    return ViewKeys(shared=_hashed(shared), toward=_hashed(toward), depends=invoice_dependencies(view, customer_by_ref))


def invoice_dependencies(view: View, customer_by_ref: Mapping[tuple[str, str], str]) -> frozenset[int]:
    """The customer records an invoice's customer + amount + date key is read through
    (`customer_of_view`): the customer ref it links to, and while that ref is not stored, the
    customer id it was stored with (once stored, a ref stays)."""
    keys = set()
    remote = view.links.get("customer")
    if remote not in (None, ""):
        keys.add(f"cref:{view.system}|{remote}")
    if (remote in (None, "") or (view.system, str(remote)) not in customer_by_ref) and view.data.get("customer_id"):
        keys.add(f"cid:{view.data['customer_id']}")
    return _hashed(keys)


def payment_keys(view: View) -> ViewKeys:
    if view.kind == "gateway":
        return ViewKeys(shared=_hashed({f"ch:{view.remote_id}"}))
    if view.kind == "ledger":
        return ViewKeys(shared=_hashed({f"ch:{charge}" for charge in charges_named(view)}))
    return ViewKeys()
