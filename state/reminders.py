"""Reminders as the outbox holds them: the actions dunning queued to carry a reminder to a
customer, read back to tell what was reminded, and when.

Dunning tags each action of a reminder in its payload with the customer (`dunning_customer`),
the step (`dunning_step`) and the day it planned for (`dunning_as_of`); the one that carries
the reminder to the customer (the email, or the CRM note or task of a CRM channel) is
`dunning_role` "message" and names the invoices it reminds of, each with the step that
invoice had reached (`dunning_invoices`). The other actions of a reminder (a note beside an
email, an escalation or late-fee task for a person) carry other roles and remind of nothing.
Actions queued before these tags existed were tagged by migration 0007.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from connector.state.tables import table
from connector.state.upsert import mine, one_of


@dataclass(frozen=True)
class ReminderMessage:
    """One action carrying a reminder to a customer, in whatever state the outbox holds it."""

    kind: str
    state: str
    updated_at: datetime  # when it was done, for a done one
    customer: str
    step: int
    as_of: str | None  # the day the reminder was planned for
    invoices: dict[str, int] = field(default_factory=dict)  # invoice id -> the step it had reached


def reminder_messages(session: Session, customer_ids: Sequence[str] | None = None) -> list[ReminderMessage]:
    """Every outbox action on a customer (of `customer_ids`, when given) tagged as the message
    of a reminder, oldest first. An action finance queued (a note about a dispute or a pause)
    carries no step and is not one; nor is any action whose role is not "message"."""
    outbox = table("outbox_actions")
    query = (
        sa.select(outbox.c.kind, outbox.c.state, outbox.c.updated_at, outbox.c.payload)
        .where(mine(session, outbox), outbox.c.subject_type == "customer")
        .order_by(outbox.c.id)
    )
    if customer_ids is not None:
        query = query.where(one_of(session, outbox.c.subject_id, list(customer_ids)))
    found = []
    for kind, state, updated_at, payload in session.execute(query):
        data = _json(payload)
        customer, step = data.get("dunning_customer"), data.get("dunning_step")
        if customer is None or step is None or data.get("dunning_role") != "message":
            continue
        as_of = data.get("dunning_as_of")
        found.append(
            ReminderMessage(
                kind=kind,
                state=state,
                updated_at=updated_at,
                customer=str(customer),
                step=int(step),
                as_of=None if as_of is None else str(as_of),
                invoices=_invoice_steps(data.get("dunning_invoices"), int(step)),
            )
        )
    return found


def _invoice_steps(value: Any, step: int) -> dict[str, int]:
    """`dunning_invoices` as invoice id -> step: dunning writes that mapping; a plain list of
    ids names invoices at the reminder's own step."""
    if isinstance(value, dict):
        return {str(i): int(s) for i, s in value.items()}
    return {str(i): step for i in value or []}


def _json(value: Any) -> dict[str, Any]:
    """A payload as a dict, also when a driver hands the JSON back as text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}
