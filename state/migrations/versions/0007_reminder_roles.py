"""Reminder actions queued before reminders named their invoices get the tags of newer ones.

Dunning tags every action of a reminder with the customer and the step (`dunning_customer`,
`dunning_step`). Since reminders became per invoice, the action that carries the reminder to
the customer is also `dunning_role` "message" and names the invoices it reminds of, each with
the step it had reached (`dunning_invoices`, invoice id -> step); the readers of what was
reminded (dunning's history, the CRM's last reminder date) count only that action, once done.
Older actions carry neither tag: the readers used to match them to the audit log's `dunning`
`reminder` entries by (customer, step) on every read. This revision writes those tags once,
so that one read path serves all actions:

- the message is the reminder's email (`send_invoice`) if it had one, else its CRM note or
  task; beside an email, a CRM note is "note" and a CRM task (only an escalation made one
  there) is "escalation", as dunning tags them today;
- the message names the invoices of every `reminder` entry the audit log holds for the
  customer and step, each at that step (a reminder of that time listed its invoices at the
  reminder's step); with no such entry there is nothing it is known to remind of, and it is
  "unlisted", which no reader counts.

`dunning_as_of` is left out: the old entries never recorded the day planned for, and the
readers need it only to keep a cancelled action from being planned again the same day.
Nothing else about an action changes: not its state, its `updated_at` (the day a reminder
went out) nor its idempotency key. The audit log is only read (it refuses changes).

Downgrade is a no-op: the older release reads the tags the same way, so they can stay.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

outbox = sa.table(
    "outbox_actions",
    sa.column("id", sa.BigInteger),
    sa.column("kind", sa.Text),
    sa.column("payload", JSON),
    sa.column("subject_type", sa.Text),
)
audit_log = sa.table(
    "audit_log",
    sa.column("actor", sa.Text),
    sa.column("action", sa.Text),
    sa.column("subject_id", sa.Text),
    sa.column("inputs", JSON),
)


def _dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def upgrade() -> None:
    connection = op.get_bind()
    untagged: dict[tuple[str, int], list[tuple[int, str, dict[str, Any]]]] = defaultdict(list)
    query = sa.select(outbox.c.id, outbox.c.kind, outbox.c.payload).where(outbox.c.subject_type == "customer")
    for action_id, kind, payload in connection.execute(query):
        data = _dict(payload)
        customer, step = data.get("dunning_customer"), data.get("dunning_step")
        if not customer or step is None or "dunning_role" in data:
            continue  # not a reminder (a note finance queued), or tagged already
        untagged[(str(customer), int(step))].append((action_id, kind, data))
    if not untagged:
        return

    listed: dict[tuple[str, int], set[str]] = defaultdict(set)
    entries = sa.select(audit_log.c.subject_id, audit_log.c.inputs).where(
        audit_log.c.actor == "dunning", audit_log.c.action == "reminder"
    )
    for customer, inputs in connection.execute(entries):
        data = _dict(inputs)
        if customer and data.get("step") is not None:
            listed[(str(customer), int(data["step"]))].update(str(i) for i in data.get("invoices") or [])

    updates = []
    for (customer, step), actions in untagged.items():
        has_email = any(kind == "send_invoice" for _, kind, _ in actions)
        for action_id, kind, data in actions:
            if has_email and kind != "send_invoice":
                tags: dict[str, Any] = {"dunning_role": "escalation" if kind == "create_task" else "note"}
            elif (customer, step) in listed:
                tags = {
                    "dunning_role": "message",
                    "dunning_invoices": {invoice: step for invoice in sorted(listed[(customer, step)])},
                }
            else:
                tags = {"dunning_role": "unlisted"}
            updates.append({"action_id": action_id, "new_payload": {**data, **tags}})
    connection.execute(
        sa.update(outbox).where(outbox.c.id == sa.bindparam("action_id")).values(payload=sa.bindparam("new_payload")),
        updates,
    )


def downgrade() -> None:
    pass  # the tags are read the same way by the release before: nothing to undo
