"""`connector audit list`, pure: audit entries as a person reads them, the records they are
about named in words (customer names, invoice numbers, a payment's amount, payer and day)
instead of internal ids wherever the book still knows the record; an id that resolves to
nothing stays as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connector.model import Customer, Invoice, Payment
from connector.reports import iso

Row = dict[str, Any]


@dataclass(frozen=True)
class Names:
    """What the book knows, by id, to name the records entries are about."""

    customers: Mapping[str, Customer] = field(default_factory=dict)
    invoices: Mapping[str, Invoice] = field(default_factory=dict)
    payments: Mapping[str, Payment] = field(default_factory=dict)
    allocations: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # id -> (payment, invoice)
    proposals: Mapping[str, str] = field(default_factory=dict)  # id -> payment id
    actions: Mapping[str, str] = field(default_factory=dict)  # outbox id -> summary

    def customer(self, customer_id: str | None) -> str:
        found = self.customers.get(customer_id or "")
        return f"customer {found.name}" if found else f"customer {customer_id or '-'}"

    def invoice(self, invoice_id: str | None) -> str:
        found = self.invoices.get(invoice_id or "")
        if found is None:
            return f"invoice {invoice_id or '-'}"
        owner = self.customers.get(found.customer_id or "")
        return f"invoice {found.number or found.id}" + (f" ({owner.name})" if owner else "")

    def payment(self, payment_id: str | None) -> str:
        found = self.payments.get(payment_id or "")
        if found is None:
            return f"payment {payment_id or '-'}"
        owner = self.customers.get(found.customer_id or "")
        who = owner.name if owner else found.payer
        return (
            f"payment of {found.amount.amount} {found.amount.currency}"
            + (f" from {who}" if who else "")
            + f" on {found.received_at.date().isoformat()}"
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def about(subject_type: str, subject_id: str | None, inputs: Any, names: Names) -> str:
    """The record an entry is about, in words, with the invoice(s) it names in its inputs."""
    data = inputs if isinstance(inputs, dict) else {}
    if subject_type == "customer":
        words = names.customer(subject_id)
    elif subject_type == "invoice":
        words = names.invoice(subject_id)
    elif subject_type == "payment":
        words = names.payment(subject_id)
    elif subject_type == "allocation":
        payment_id, invoice_id = names.allocations.get(subject_id or "", (None, None))
        payment_id = payment_id or _text(data.get("payment"))
        invoice_id = invoice_id or _text(data.get("invoice"))
        if payment_id:
            words = f"allocation of {names.payment(payment_id)}"
            if invoice_id:
                words += f" to {names.invoice(invoice_id)}"
            return words
        words = f"allocation {subject_id or '-'}"
    elif subject_type == "proposal":
        payment_id = names.proposals.get(subject_id or "") or _text(data.get("payment"))
        words = f"proposal for {names.payment(payment_id)}" if payment_id else f"proposal {subject_id or '-'}"
    elif subject_type == "action":
        summary = names.actions.get(subject_id or "")
        words = f"outbox action {subject_id}" + (f": {summary}" if summary else "")
    else:
        words = f"{subject_type} {subject_id or ''}".strip()
    invoice_ids = [i for i in [_text(data.get("invoice")), *(data.get("invoices") or [])] if isinstance(i, str) and i]
    if invoice_ids and subject_type != "invoice":
        words += " -> " + ", ".join(names.invoice(i) for i in dict.fromkeys(invoice_ids))
    merged = _text(data.get("merged"))
    if merged and subject_type in ("customer", "invoice", "payment"):
        words += f" (merged {merged} into it)"
    return words


def audit_rows(entries: Iterable[Any], names: Names) -> list[Row]:
    """One row per entry (`state.bookkeeping.AuditEntry`), in the order written."""
    return [
        {
            "seq": e.id,
            "at": iso(e.at),
            "user": e.actor,
            "action": e.action,
            "subject": {"type": e.subject_type, "id": e.subject_id},
            "about": about(e.subject_type, e.subject_id, e.inputs, names),
            "reason": e.decision,
            "inputs": e.inputs,
        }
        for e in entries
    ]
