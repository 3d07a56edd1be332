"""Dunning around the pure policy: build the cases from what is stored, decide, and turn each
reminder into the actions its channel needs. Skips are audit-logged (when an invoice is first
skipped, and again when the reason changes or a reminder went to its customer since) so
`connector explain` shows why an invoice was not chased.

Channels: `ledger_email` (the ledger emails its invoice), `gateway_email` (the gateway emails
its invoice), `crm_task` (a task for a person on the customer's CRM company), `crm_note`.
An email goes for the most overdue invoice of the reminder; when the customer has a CRM
company, a note there lists every invoice of the reminder, so the account team sees the one
consolidated message. A late fee is never applied by us: it becomes a CRM task for a person.
Escalation sets the invoices' collections flag and creates a CRM task. Without a CRM company
the fee and the escalation are still written to the audit log (shown by `explain`) and listed
by `connector reminders plan` as waiting for a person.

A reminder counts as sent when the action carrying it is done in the outbox: one queued and
not sent yet is not planned again, one cancelled or parked after failing does not count.

The collections states the providers hold (a deal disputed in the CRM, a promise to pay in
the ledger, a payment plan, a paused company) are copied into the finance-owned columns by
`apply_provider_states` after linking, unless finance set the column by hand
(`connector dispute`, `promise`, `plan-payments`, `pause`): finance's word wins.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connector.config import Config
from connector.connections import check_scope, system_ranks
from connector.dunning.policy import Case, DunningPolicy, Reminder, ReminderKey, Skip, plan_reminders
from connector.dunning.states import apply_provider_states
from connector.errors import ConfigError
from connector.model import Action, ActionKind, Customer, PaymentApplication, invoice_position
from connector.money import Money
from connector.providers.registry import Registry
from connector.reconcile.types import LEDGER_RULE
from connector.state import outbox
from connector.state.bookkeeping import AuditItem, audit_each, audit_entries, audit_many, latest_entries
from connector.state.history import unsettled_payments_by_customer
from connector.state.records import set_finance_owned
from connector.state.reminders import reminder_messages
from connector.state.store import Store
from connector.writeback.facts import Around, TakenBack, gather_facts, taken_back
from connector.writeback.plan import Facts

logger = logging.getLogger(__name__)

ACTOR = "dunning"
# The actions of a reminder that carry it to the customer (or to a person who does).
MESSAGE_KINDS = ("send_invoice", "create_note", "create_task")


class CustomerDunning(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[dict[str, Any]] | None = None
    pause: bool = False


class ConnectionDunning(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[dict[str, Any]]


class DunningSection(BaseModel):
    """`[dunning]` in connector.toml: `steps`, per-connection overrides (for the customers known
    in that connection, e.g. one ledger per legal entity) and per-customer overrides by id or
    exact name. The most specific wins: customer, then connection, then the default."""

    model_config = ConfigDict(extra="forbid")

    steps: list[dict[str, Any]] | None = None
    connections: dict[str, ConnectionDunning] = Field(default_factory=dict)
    customers: dict[str, CustomerDunning] = Field(default_factory=dict)


def dunning_section(config: Config) -> DunningSection:
    raw = config.dunning
    try:
        section = DunningSection.model_validate(raw)
        policies = [section.steps] + [c.steps for c in section.connections.values()]
        policies += [c.steps for c in section.customers.values()]
        for steps in policies:
            if steps is not None:
                DunningPolicy.model_validate({"steps": steps})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(f"dunning.{where}: {message}") from None
    return section


def policy_chooser(section: DunningSection) -> Any:
    default = DunningPolicy.model_validate({"steps": section.steps}) if section.steps else DunningPolicy.default()
    by_connection = {name: DunningPolicy.model_validate({"steps": c.steps}) for name, c in section.connections.items()}

    def policy_for(customer: Customer) -> DunningPolicy:
        override = section.customers.get(customer.id or "") or section.customers.get(customer.name)
        if override and override.steps:
            return DunningPolicy.model_validate({"steps": override.steps})
        for name, policy in by_connection.items():  # in the order the config names them
            if any(ref.system == name for ref in customer.refs):
                return policy
        return default

    return policy_for


@dataclass(frozen=True)
class FollowUp:
    """Something a person must do or know about: a proposed late fee, an invoice sent to
    collections, or a reminder no system could carry. `via` names the CRM task that tells
    them, or is None when there is none (then the audit log and `reminders plan` do)."""

    kind: str  # late_fee / escalation / unsent
    customer_id: str
    invoice_id: str | None
    text: str
    via: str | None = None
    fee: Money | None = None


@dataclass
class DunningPlan:
    reminders: list[Reminder] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    actions: list[tuple[Action, str, str, str]] = field(default_factory=list)
    follow_ups: list[FollowUp] = field(default_factory=list)


# What was reminded: from the outbox -------------------------------------------------------


@dataclass
class ReminderHistory:
    sent: set[ReminderKey] = field(default_factory=set)  # the action carrying it is done
    queued: set[ReminderKey] = field(default_factory=set)  # planned or being sent
    dropped: dict[ReminderKey, set[str]] = field(default_factory=dict)  # cancelled / parked: on which days
    sent_reminders: set[tuple[str, int, str]] = field(default_factory=set)  # (customer, step, day)


def reminder_history(store: Store) -> ReminderHistory:
    """The `(customer, step, invoice)` reminders sent and queued, read from the outbox: a
    reminder is sent when the action carrying it is done; planned or in flight, it is queued;
    cancelled, or failed and parked for a person, it does not count (`dropped` keeps the day it
    was planned for: the same day's plan would only find the dropped action again)."""
    history = ReminderHistory()
    with store.session() as session:
        messages = reminder_messages(session)
    for message in messages:
        if message.kind not in MESSAGE_KINDS:
            continue
        keys = {(message.customer, step, invoice) for invoice, step in message.invoices.items()}
        if message.state == "done":
            history.sent |= keys
            history.sent_reminders.add((message.customer, message.step, str(message.as_of or message.updated_at)))
        elif message.state in ("planned", "in_flight"):
            history.queued |= keys
        else:  # cancelled, or failed and parked
            for key in keys:
                history.dropped.setdefault(key, set()).add(str(message.as_of))
    return history


def already_reminded(store: Store) -> set[tuple[str, int]]:
    """(customer, step) pairs with a reminder sent (its action done in the outbox)."""
    return {(customer, step) for customer, step, _ in reminder_history(store).sent_reminders}


# The plan ---------------------------------------------------------------------------------


# Customers planned at a time: a batch's invoices, payments and views, whatever the book's size.
PLAN_BATCH = 100


@dataclass(frozen=True)
class Planner:
    """What every part of a day's plan is decided with: the policies, the reminders sent,
    queued and dropped, and the kind of each connection."""

    section: DunningSection
    chooser: Any
    history: ReminderHistory
    dropped: frozenset[ReminderKey]
    kinds: dict[str, str]
    as_of: date

    @classmethod
    def of(cls, config: Config, store: Store, as_of: date, registry: Registry | None = None) -> Planner:
        section = dunning_section(config)
        history = reminder_history(store)
        return cls(
            section=section,
            chooser=policy_chooser(section),
            history=history,
            dropped=frozenset(key for key, days in history.dropped.items() if as_of.isoformat() in days),
            kinds={name: kind for name, (kind, _) in system_ranks(config, registry).items()},
            as_of=as_of,
        )

    def customers(self, store: Store, ids: Sequence[str]) -> dict[str, Customer]:
        """The customers of `ids` with their refs, those the config pauses paused."""
        return _with_overrides({c.id: c for c in store.list_customers(ids=ids) if c.id}, self.section)

    def plan(self, facts: Facts, customers: dict[str, Customer], holding: Collection[str] | None = None) -> DunningPlan:
        """The plan of `customers` from `facts` (which hold at least their invoices open by
        their own figures, and their payments of `holding`, the only ones that may hold
        unapplied cash: None, every payment of theirs in `facts`)."""
        cases = _cases(facts, customers, self.as_of, holding)
        reminders, skips = plan_reminders(
            cases, self.chooser, self.history.sent, self.as_of, queued=self.history.queued, dropped=self.dropped
        )
        plan = DunningPlan(reminders=reminders, skips=skips)
        for reminder in reminders:
            actions, follow_ups = _actions(reminder, facts, customers, self.kinds, self.as_of)
            plan.actions.extend(actions)
            plan.follow_ups.extend(follow_ups)
        return plan


@dataclass(frozen=True)
class Chase:
    """What a day's plan reads of the whole book first: per customer, its receivables open by
    their own figures (`owing`) and its payments that may hold unapplied cash (`holding`); the
    writes taken back (read once for every batch: each read scans the outbox)."""

    owing: dict[str, list[str]]
    holding: dict[str, list[str]]
    taken: TakenBack

    @classmethod
    def read(cls, store: Store) -> Chase:
        with store.session() as session:
            owing: dict[str, list[str]] = defaultdict(list)
            for key in store.receivable_keys(session=session, owing=True):
                if key.customer_id:
                    owing[key.customer_id].append(key.id)
            return cls(dict(owing), unsettled_payments_by_customer(session, LEDGER_RULE), taken_back(session))

    def around(self, customer_ids: Sequence[str]) -> Around:
        """The part of the book the plan of `customer_ids` reads (`Around.for_reminders`)."""
        return Around(
            invoice_ids=[i for c in customer_ids for i in self.owing.get(c, ())],
            payment_ids=[p for c in customer_ids for p in self.holding.get(c, ())],
            customer_ids=customer_ids,
            taken=self.taken,
            for_reminders=True,
        )


def build_plan(
    config: Config, store: Store, as_of: date, registry: Registry | None = None, *, batch: int = PLAN_BATCH
) -> DunningPlan:
    """The reminders of `as_of`, the skips and the actions that carry them, planned `batch`
    customers at a time (in order of id, the plan's own order), each from the facts of what
    dunning weighs of its own customers only: their invoices open by their own figures (nothing
    else is chased or skipped), the allocations on those and the payments of those allocations,
    and their payments that may hold unapplied cash (`unsettled_payments_by_customer`; the
    others hold none). Customers with no such invoice are not read. A test holds the plan equal
    to the one the whole book's facts give."""
    check_scope(config, store)  # before anything is read, as the write-back's plan does
    planner = Planner.of(config, store, as_of, registry)
    chase = Chase.read(store)
    everyone = sorted(chase.owing)
    plan = DunningPlan()
    for start in range(0, len(everyone), batch):
        chunk = everyone[start : start + batch]
        customers = planner.customers(store, chunk)
        around = chase.around(chunk)
        facts = gather_facts(config, store, registry, as_of, around=around)
        part = planner.plan(facts, customers, holding=around.payment_ids)
        plan.reminders.extend(part.reminders)
        plan.skips.extend(part.skips)
        plan.actions.extend(part.actions)
        plan.follow_ups.extend(part.follow_ups)
    return plan


def _with_overrides(customers: dict[str, Customer], section: DunningSection) -> dict[str, Customer]:
    """The customers, those the config pauses (by id or name) paused."""
    for key, override in section.customers.items():
        for listed in list(customers.values()):
            if override.pause and key in (listed.id, listed.name):
                customers[listed.id or ""] = listed.model_copy(update={"paused": True})
    return customers


def _cases(
    facts: Facts, customers: dict[str, Customer], as_of: date, holding: Collection[str] | None = None
) -> list[Case]:
    """The invoices of `customers` still open in the ledger, each with what dunning weighs."""
    pending: dict[str, Money] = {}
    for allocation in facts.allocations:
        current = pending.get(allocation.invoice_id)
        pending[allocation.invoice_id] = allocation.amount if current is None else current + allocation.amount
    credit = unapplied_credit(facts, customers, holding)
    cases = []
    for invoice_id, invoice in facts.invoices.items():
        customer = customers.get(invoice.customer_id or "")
        # The ledger's own view decides whether there is anything to chase: an invoice our
        # gateway money pays is still a case, so its `payment_pending` skip is recorded.
        if customer is None or invoice_position(invoice, as_of).status not in ("open", "partially_paid"):
            continue  # paid or void in the ledger: not worth a skip in the audit log every day
        cases.append(
            Case(
                invoice=invoice,
                position=facts.positions[invoice_id],
                customer=customer,
                pending_payment=pending.get(invoice_id),
                unapplied_credit=credit.get((customer.id or "", invoice.currency)),
            )
        )
    return cases


def unapplied_credit(
    facts: Facts, customers: Collection[str], holding: Collection[str] | None = None
) -> dict[tuple[str, str], Money]:
    """Per customer of `customers` and currency: money received and not applied to any invoice
    (overpayments), from the customers' payments in `facts` (those of `holding` only, when
    given: the others hold no cash) and every applied allocation of them (`facts.applied` holds
    them: the facts of a few customers read every applied allocation of those payments)."""
    own = sorted(
        p
        for p, payment in facts.payments.items()
        if payment.customer_id in customers and (holding is None or p in holding)
    )
    theirs = set(own)
    by_payment: dict[str, list[Any]] = defaultdict(list)
    for allocation in facts.applied:
        if allocation.payment_id in theirs:
            by_payment[allocation.payment_id].append(allocation)
    credit: dict[tuple[str, str], Money] = {}
    for payment_id in own:
        payment = facts.payments[payment_id]
        if not payment.customer_id or payment.status in ("failed", "pending"):
            continue
        try:
            left = PaymentApplication(payment=payment, allocations=by_payment.get(payment_id, [])).unapplied
        except ValidationError:
            continue  # over-allocated: a data problem `connector drift` and `explain` show
        if left.amount > 0:
            key = (payment.customer_id, left.currency)
            credit[key] = left if key not in credit else credit[key] + left
    return credit


Planned = tuple[Action, str, str, str]


def _actions(
    reminder: Reminder,
    facts: Any,
    customers: dict[str, Customer],
    kinds: dict[str, str],
    as_of: date,
) -> tuple[list[Planned], list[FollowUp]]:
    """The outbox actions of one reminder, and what a person must see about it.

    The message (an email, or the CRM task or note of a CRM channel) is tagged with the
    invoices and the step each had reached: that is what counts as reminded once it is done."""
    customer = customers[reminder.customer_id]
    step = reminder.step
    tag = {"dunning_step": step.days, "dunning_customer": reminder.customer_id, "dunning_as_of": as_of.isoformat()}
    message_tag = {**tag, "dunning_role": "message", "dunning_invoices": dict(reminder.invoice_steps)}
    crm = [r for r in customer.refs if kinds.get(r.system) == "crm" and r.object_type == "customer"][:1]
    out: list[Planned] = []
    follow_ups: list[FollowUp] = []
    first = reminder.invoices[0]
    label = f"{customer.name}, step {step.days:+d} ({step.tone})"
    subject = f"{'Collections' if reminder.escalate else 'Payment reminder'}: {customer.name}"
    channel = step.channel
    if channel in ("crm_task", "crm_note") and not crm:
        channel = "ledger_email"  # no CRM company for this customer: the ledger emails instead
    email = None
    if channel in ("ledger_email", "gateway_email"):
        views = facts.invoice_views.get(first, [])
        order = ("ledger", "gateway") if channel == "ledger_email" else ("gateway", "ledger")
        email = next((v for kind in order for v in views if v.kind == kind and v.object_type == "invoice"), None)
        if email is not None:
            action = Action(connection=email.system, kind="send_invoice", target=email.ref, payload=message_tag)
            out.append(
                (action, "customer", reminder.customer_id, f"reminder {label}: {email.system} emails {email.remote_id}")
            )
    for ref in crm:
        kind: ActionKind = "create_task" if channel == "crm_task" or reminder.escalate else "create_note"
        role = "message" if email is None else ("escalation" if reminder.escalate else "note")
        payload = {
            **(message_tag if role == "message" else {**tag, "dunning_role": role}),
            "company_id": ref.remote_id,
            "body": reminder.text,
            "subject": subject,
            "due": as_of.isoformat(),
        }
        out.append(
            (
                Action(connection=ref.system, kind=kind, payload=payload),
                "customer",
                reminder.customer_id,
                f"reminder {label}: {kind.replace('_', ' ')} on {ref.system} company {ref.remote_id}",
            )
        )
    if email is None and not crm:
        follow_ups.append(
            FollowUp(
                "unsent",
                reminder.customer_id,
                None,
                f"The day {step.days:+d} ({step.tone}) reminder to "
                f"{customer.name} cannot be sent: no ledger or gateway "
                f"holds {_number(facts, first)} and the customer has no CRM company; remind them by hand",
            )
        )
    for invoice_id, fee in reminder.late_fees:
        number = _number(facts, invoice_id)
        words = (
            f"Policy step {step.days:+d} proposes a late fee of {fee} ({step.late_fee_percent}%) on {number} "
            f"of {customer.name}. Apply it in the ledger if you agree; the connector never applies fees itself."
        )
        via = None
        for ref in crm:
            fee_payload = {
                **tag,
                "dunning_role": "late_fee",
                "company_id": ref.remote_id,
                "subject": f"Late fee {fee} on {number}?",
                "body": words,
                "due": as_of.isoformat(),
                "invoice": invoice_id,
            }
            out.append(
                (
                    Action(connection=ref.system, kind="create_task", payload=fee_payload),
                    "invoice",
                    invoice_id,
                    f"late fee {fee} on {number}: task for a person on {ref.system}",
                )
            )
            via = f"task on {ref.system} company {ref.remote_id}"
        follow_ups.append(FollowUp("late_fee", reminder.customer_id, invoice_id, words, via, fee))
    for invoice_id in reminder.escalated_invoices:
        number = _number(facts, invoice_id)
        words = (
            f"{number} of {customer.name} reached day {step.days:+d} ({step.tone}) and goes to collections "
            "(flagged in_collections)"
        )
        via = f"task on {crm[0].system} company {crm[0].remote_id}" if crm else None
        if via is None:
            words += "; the customer has no CRM company for the collections task: a person must take it up"
        follow_ups.append(FollowUp("escalation", reminder.customer_id, invoice_id, words, via))
    return out, follow_ups


def _number(facts: Any, invoice_id: str) -> str:
    invoice = facts.invoices.get(invoice_id)
    return (invoice.number if invoice is not None else None) or invoice_id


def queue(
    config: Config, store: Store, as_of: date, registry: Registry | None = None, *, states_first: bool = True
) -> DunningPlan:
    """Plan reminders, queue their actions, flag escalated invoices, audit the decisions, the
    follow-ups for a person and the skips. Nothing here marks anyone reminded: that happens
    when the reminder's action is done. `states_first` copies the providers' collections
    states first (`apply_provider_states`); the engine, which has just linked, says False."""
    if states_first:
        apply_provider_states(config, store, registry)
    plan = build_plan(config, store, as_of, registry)
    day = as_of.isoformat()
    with store.session() as session:
        outbox.add_planned(session, plan.actions)
        seen = _audited(session, ("reminder", "late_fee_proposed", "escalated", "reminder_unsent"))
        entries: list[AuditItem] = []
        for reminder in plan.reminders:
            if reminder.escalated_invoices:  # only those that reached the escalation step themselves
                set_finance_owned(session, "invoice", list(reminder.escalated_invoices), in_collections=True)
            if ("reminder", reminder.customer_id, (reminder.step.days, day)) in seen:
                continue
            said = {
                "step": reminder.step.days,
                "invoices": list(reminder.invoices),
                "channel": reminder.step.channel,
                "as_of": day,
                "queued": True,
            }
            entries.append((ACTOR, "reminder", "customer", reminder.customer_id, said, reminder.text))
        step_of: dict[str, int] = {}  # customer -> the step of its first reminder
        for reminder in plan.reminders:
            step_of.setdefault(reminder.customer_id, reminder.step.days)
        for follow_up in plan.follow_ups:
            action = {"late_fee": "late_fee_proposed", "escalation": "escalated", "unsent": "reminder_unsent"}[
                follow_up.kind
            ]
            subject_type, subject_id = (
                ("invoice", follow_up.invoice_id) if follow_up.invoice_id else ("customer", follow_up.customer_id)
            )
            step = step_of.get(follow_up.customer_id)
            if (action, subject_id, (step, day)) in seen:
                continue
            inputs: dict[str, Any] = {
                "step": step,
                "as_of": day,
                "customer": follow_up.customer_id,
                "for_a_person": follow_up.via or "no CRM task: see `connector reminders plan`",
            }
            if follow_up.fee is not None:
                inputs.update(amount=str(follow_up.fee.amount), currency=follow_up.fee.currency)
            entries.append((ACTOR, action, subject_type, subject_id, inputs, follow_up.text))
        audit_each(session, entries)  # a statement or two a run of them, not one each
        _audit_skips(session, plan.skips, as_of)
    return plan


def _audited(session: Any, actions: Sequence[str]) -> set[tuple[str, str | None, tuple[Any, str]]]:
    """(action, subject, (step, day)) of the dunning decisions already in the audit log."""
    found = set()
    for entry in audit_entries(session, actor=ACTOR, actions=actions):
        data = entry.inputs if isinstance(entry.inputs, dict) else {}
        found.add((entry.action, entry.subject_id, (data.get("step"), str(data.get("as_of")))))
    return found


# A skip the audit log does not record: a reminder queued and not sent yet. The log has the
# reminder itself (its `reminder` entry) and the plan says it again (`connector reminders
# plan`); written on the run after the one that queued the reminder, it moved the book for
# nothing but itself and made the service run its whole engine once more after every change.
UNAUDITED_SKIPS = frozenset({"reminder_queued"})


def _audit_skips(session: Any, skips: list[Skip], as_of: date) -> None:
    """Record the skips the audit log does not say yet: an invoice's first, one whose code or
    reason differs from the invoice's last recorded skip, and one that follows a reminder to its
    customer recorded since. A skip that lasts is recorded once, on the day it began (`as_of`),
    not again every day it lasts: the log grows with what changed, not with the book's size a
    day, and only the newest entries of the invoices skipped are read back."""
    recorded = [skip for skip in skips if skip.code not in UNAUDITED_SKIPS]
    if not recorded:
        return
    last = latest_entries(
        session,
        actor=ACTOR,
        action="reminder_skipped",
        subject_type="invoice",
        subject_ids={skip.invoice_id for skip in recorded},
    )
    reminded = latest_entries(
        session,
        actor=ACTOR,
        action="reminder",
        subject_type="customer",
        subject_ids={skip.customer_id for skip in recorded if skip.customer_id},
    )
    entries = []
    for skip in recorded:
        before = last.get(skip.invoice_id)
        if before is not None:
            said = before.inputs if isinstance(before.inputs, dict) else {}
            reminder = reminded.get(skip.customer_id or "")
            unchanged = said.get("code") == skip.code and before.decision == skip.reason
            if unchanged and (reminder is None or reminder.id < before.id):
                continue
        inputs = {"code": skip.code, "as_of": as_of.isoformat(), "customer": skip.customer_id}
        entries.append(("invoice", skip.invoice_id, inputs, skip.reason))
    audit_many(session, ACTOR, "reminder_skipped", entries)  # a statement or two a batch, not one a skip


# Collections states the providers hold ------------------------------------------------------

# Payment plans finance agrees -------------------------------------------------------------
