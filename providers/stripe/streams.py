"""What each Stripe stream reads: its list endpoint, its object, the events that change it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StreamDef:
    name: str
    path: str  # the list endpoint; one object is at f"{path}/{id}"
    object: str  # the `object` value of its records
    # Events that create or change the objects: one `type` (a `*` wildcard allowed) or up to
    # 20 exact `types`. None and empty: the stream has no events (read by creation time).
    event_type: str | None = None
    event_types: tuple[str, ...] = ()
    list_params: dict[str, Any] = field(default_factory=dict)
    get_params: dict[str, Any] = field(default_factory=dict)
    # Re-read every changed object rather than trust the event's copy (needed when the
    # record carries expansions an event never has).
    always_refetch: bool = False
    # Whether the list takes `created[gte]` / `created[lt]` (the document's parameters): a
    # full pull of such a stream is split into created windows read side by side.
    created_filter: bool = True

    @property
    def has_events(self) -> bool:
        return bool(self.event_type or self.event_types)

    def event_params(self) -> dict[str, Any]:
        if self.event_type:
            return {"type": self.event_type}
        return {"types[]": list(self.event_types)}


# Where the adapter puts a disputed charge's disputes (`GET /v1/disputes?charge=`), newest
# first, as a list object: API 2023-08-16's charge says only `disputed: true`.
DISPUTED_KEY = "disputes"

STREAMS: dict[str, StreamDef] = {
    s.name: s
    for s in (
        StreamDef(
            "customers",
            "/v1/customers",
            "customer",
            event_types=("customer.created", "customer.updated", "customer.deleted"),
        ),
        StreamDef("invoices", "/v1/invoices", "invoice", event_type="invoice.*"),
        # The fee of a charge is on its balance transaction: expanded, so always re-read.
        StreamDef(
            "charges",
            "/v1/charges",
            "charge",
            event_type="charge.*",
            list_params={"expand[]": "data.balance_transaction"},
            get_params={"expand[]": "balance_transaction"},
            always_refetch=True,
        ),
        # Payment intents add what a charge does not say: incomplete payments (no charge yet,
        # or a failed attempt) and the intent's metadata and invoice. The money record is the
        # charge (`latest_charge`), which carries the fee (docs/providers/stripe.md).
        StreamDef("payment_intents", "/v1/payment_intents", "payment_intent", event_type="payment_intent.*"),
        # refund.* covers every refund from API 2024-10-28 on; older accounts announce refunds
        # of charges only as charge.refunded (a charge) and charge.refund.updated.
        StreamDef(
            "refunds",
            "/v1/refunds",
            "refund",
            event_types=(
                "refund.created",
                "refund.updated",
                "refund.failed",
                "charge.refund.updated",
                "charge.refunded",
            ),
        ),
        StreamDef("payouts", "/v1/payouts", "payout", event_type="payout.*"),
        # GET /v1/credit_notes has no `created` filter: one sequential list.
        StreamDef("credit_notes", "/v1/credit_notes", "credit_note", event_type="credit_note.*", created_filter=False),
        StreamDef("balance_transactions", "/v1/balance_transactions", "balance_transaction"),
        # Chargebacks. A charge's disputes ride on the charge too (`DISPUTED_KEY`): the charges
        # stream re-reads a charge on each of its charge.dispute.* events (docs/disputes.md).
        StreamDef("disputes", "/v1/disputes", "dispute", event_type="charge.dispute.*"),
    )
}
