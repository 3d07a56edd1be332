"""Find a stored record from what a person types: our id, any system's id, or a number.

Invoice numbers are matched as typed first, then regardless of case (`inv-0015` finds
INV-0015): people copy numbers from e-mails and remittances in any case."""

from __future__ import annotations

from connector.errors import UsageError
from connector.model import Invoice, Payment
from connector.state.records import entity_ids_for_remote_id, numbers_in_any_case
from connector.state.store import Store


def _by_remote_id(store: Store, entity_kind: str, token: str) -> list[str]:
    with store.session() as session:
        return entity_ids_for_remote_id(session, entity_kind, token)


def _by_number_any_case(store: Store, token: str) -> list[str]:
    with store.session() as session:
        numbers = numbers_in_any_case(session, token)
    return sorted({i.id for number in numbers for i in store.list_receivables(number=number) if i.id})


def find_invoice(store: Store, token: str) -> Invoice:
    """An invoice by canonical id, any system's id, or its number (in any case)."""
    found = store.get_invoice(token)
    if found is not None:
        return found
    ids = _by_remote_id(store, "invoice", token)
    if not ids:
        ids = sorted({i.id for i in store.list_receivables(number=token) if i.id})
    if not ids:
        ids = _by_number_any_case(store, token)
    if len(ids) > 1:
        raise UsageError(f"{token!r} names {len(ids)} invoices; use one of their ids: {', '.join(ids)}")
    if not ids:
        raise UsageError(f"no invoice {token!r} (give our id, a provider's id or the invoice number)")
    invoice = store.get_invoice(ids[0])
    assert invoice is not None
    return invoice


def find_payment(store: Store, token: str) -> Payment:
    """A payment by canonical id or any system's id (a Stripe charge, a Xero PaymentID)."""
    found = store.list_payments(ids=[token])
    if found:
        return found[0]
    ids = _by_remote_id(store, "payment", token)
    if len(ids) > 1:
        raise UsageError(f"{token!r} names {len(ids)} payments; use one of their ids: {', '.join(ids)}")
    if not ids:
        raise UsageError(f"no payment {token!r} (give our id or a provider's payment id)")
    return store.list_payments(ids=ids)[0]
