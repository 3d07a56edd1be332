"""The write-back plan read a part of the book at a time against the whole book (issue #18:
`settle_in_parts`, which the automatic plan runs, against `settle`, which reads every record)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from connector.errors import UsageError
from connector.state import outbox
from connector.state.bookkeeping import audit_entries
from connector.writeback.apply import AUTOMATIC_CAUSE
from connector.writeback.facts import Around, gather_facts, ledger_payment_links
from connector.writeback.settle import Settlement, settle, settle_decision, settle_in_parts


class _Undo(Exception):
    """Raised to roll a settlement back once it has been read."""


EVERY_AUDITED = ("cancel", "plan_reversal", "gap")


def settled_rolled_back(store: Any, run: Callable[[Any], Settlement]) -> dict[str, Any]:
    """What `run` settles in a transaction, rolled back afterwards (`_snapshot`)."""
    found: dict[str, Any] = {}
    try:
        with store.session() as session:
            before = {e.id for e in audit_entries(session, actions=EVERY_AUDITED)}
            found = _snapshot(session, before, run(session))
            raise _Undo
    except _Undo:
        pass
    return found


def _snapshot(session: Any, audited_before: set[int], settled: Settlement) -> dict[str, Any]:
    """The outbox `session` holds (each write's key, state, subject, payload and summary; not
    the ids a database gives), the audit entries added since `audited_before`, and what the
    settlement says it derived, queued, cancelled, reversed and handed over."""
    found: dict[str, Any] = {}
    found["outbox"] = sorted(
        (
            e.action.idempotency_key,
            e.action.kind,
            e.action.state,
            e.subject_type or "",
            e.subject_id or "",
            repr(sorted(e.action.payload.items())),
            e.summary or "",
        )
        for e in outbox.entries(session)
    )
    found["audit"] = sorted(
        (e.actor, e.action, e.subject_type, e.subject_id or "", repr(e.inputs), e.decision or "")
        for e in audit_entries(session, actions=EVERY_AUDITED)
        if e.id not in audited_before
    )
    found["derived"] = sorted(
        (p.action.idempotency_key, p.subject_type, p.subject_id, p.summary) for p in settled.derived
    )
    found["reversals"] = sorted(p.action.idempotency_key for p in settled.reversals)
    found["cancelled"] = sorted(e.action.idempotency_key for e in settled.cancelled)
    found["gaps"] = sorted(repr(g) for g in settled.gaps)
    found["queued"] = settled.queued
    found["unchanged_customers"] = settled.unchanged_customers
    return found


def same_writes_a_few_receivables_at_a_time(config: Any, store: Any, day: date, few: int = 2) -> tuple[int, int]:
    """The automatic plan made `few` receivables at a time (`settle_in_parts`) leaves the outbox
    and the audit log as the plan made of the whole book at once (`settle`), says it derived,
    queued, cancelled and reversed the same, and hands the same over; so does the plan of what
    changed since the book's last plans (`only_changed`); none is kept. Returns how many writes
    the plan derived and how many customers the plan of what changed left unplanned (a caller
    can insist there are some)."""

    def whole(session: Any) -> Settlement:
        return settle(config, store, session, actor="plan", cause=AUTOMATIC_CAUSE, reverse=False, today=day)

    def in_parts(session: Any) -> Settlement:
        return settle_in_parts(config, store, session, actor="plan", cause=AUTOMATIC_CAUSE, today=day, batch=few)

    def what_changed(session: Any) -> Settlement:  # in the plan's own parts: the digests are the point
        return settle_in_parts(
            config, store, session, actor="plan", cause=AUTOMATIC_CAUSE, today=day, only_changed=True
        )

    at_once = settled_rolled_back(store, whole)
    parts = settled_rolled_back(store, in_parts)
    for name, found in at_once.items():
        if name != "unchanged_customers":
            assert parts[name] == found, (name, found, parts[name])
    changed = settled_rolled_back(store, what_changed)
    same_writes_planning_what_changed(at_once, changed)
    same_facts_a_few_receivables_at_a_time(config, store, day, few)
    return len(at_once["derived"]), changed["unchanged_customers"]


def same_writes_planning_what_changed(whole: dict[str, Any], changed: dict[str, Any]) -> None:
    """The plan of the customers whose inputs moved since their last plan (the digests the
    book's earlier plans stored) leaves the outbox and the audit log as the whole book's plan
    does, and queues, cancels, reverses and hands over the same; what it derived, the whole
    book derived too."""
    for name in ("outbox", "audit", "reversals", "cancelled", "gaps", "queued"):
        assert changed[name] == whole[name], (name, whole[name], changed[name])
    assert set(changed["derived"]) <= set(whole["derived"]), set(changed["derived"]) - set(whole["derived"])


def same_facts_a_few_receivables_at_a_time(config: Any, store: Any, day: date, few: int) -> None:
    """Each part of `few` receivables (`facts.Around`) has the positions the whole book gives
    them, and every payment view a ledger holds on them, allocated or not (one deleted in the
    ledger is still on its invoice)."""
    whole = gather_facts(config, store, today=day)
    everything = sorted(whole.invoices)
    with store.session() as session:
        links = ledger_payment_links(config, store, session)
    for start in range(0, len(everything), few):
        chunk = everything[start : start + few]
        part = gather_facts(config, store, today=day, around=Around(invoice_ids=chunk, ledger_links=links))
        assert sorted(part.invoices) == chunk
        assert {i: part.positions[i] for i in chunk} == {i: whole.positions[i] for i in chunk}
        ledgers = {(v.system, v.remote_id) for i in chunk for v in whole.invoice_views.get(i, []) if v.kind == "ledger"}

        def on(facts: Any, ledgers: set[tuple[str, str]] = ledgers) -> dict[tuple[str, str], list[str]]:
            return {
                k: sorted(v.remote_id for v in views) for k, views in facts.ledger_payments_on.items() if k in ledgers
            }

        assert on(part) == on(whole)


# Finance's decisions, settled on their own part of the book ---------------------------------


def plan_settled(config: Any, store: Any, day: date) -> bool:
    """Whether the automatic plan would change nothing now (nothing to queue, cancel, reverse
    or hand over): the book is as the last plan left it."""
    found = settled_rolled_back(
        store,
        lambda session: settle_in_parts(config, store, session, actor="plan", cause=AUTOMATIC_CAUSE, today=day),
    )
    return not (found["queued"] or found["cancelled"] or found["reversals"] or found["gaps"])


@dataclass
class DecisionChecks:
    """Counts of the decisions `checked_decision` compared: in full (on a book the plan had
    settled) and in part (on one it had not)."""

    whole: int = 0
    partial: int = 0
    failed: str | None = None  # what a comparison found (the CLI hides an exception's message)


def checked_decision(settled_before: Callable[[], bool | None], checks: DecisionChecks) -> Callable[..., Settlement]:
    """A `settle_decision` that first settles the decision both ways in the decision's own
    transaction, each in a savepoint rolled back afterwards: on its part of the book
    (`settle_decision`) and on the whole book (`settle(reverse=True)`), then settles it for real
    on its part. Both refuse alike (the same message) or neither does. On a book the plan had
    settled before the decision (`settled_before()`), both leave the same outbox and audit
    log and say they queued, cancelled, reversed and handed over the same; what the part
    derived, the whole book derived too. Otherwise (writes elsewhere still to plan) every
    change the part makes, the whole book makes too."""

    def call(config: Any, store: Any, session: Any, **decision: Any) -> Settlement:
        try:
            compare(config, store, session, decision)
        except AssertionError as found:
            checks.failed = repr(found)[:5000]
            raise
        return settle_decision(config, store, session, **decision)

    def compare(config: Any, store: Any, session: Any, decision: dict[str, Any]) -> None:
        in_sync = settled_before()
        assert in_sync is not None, "a command that settles a decision ran without the plan checked before it"
        decision["today"] = decision.get("today") or date.today()
        before = {e.id for e in audit_entries(session, actions=EVERY_AUDITED)}
        outbox_before = set(_snapshot(session, before, Settlement())["outbox"])

        def attempt(run: Callable[[], Settlement]) -> dict[str, Any]:
            nested = session.begin_nested()
            try:
                return _snapshot(session, before, run())
            except UsageError as refused:
                return {"refused": str(refused)}
            finally:
                nested.rollback()

        part = attempt(lambda: settle_decision(config, store, session, **decision))
        whole = attempt(lambda: settle(config, store, session, reverse=True, **decision))
        assert part.get("refused") == whole.get("refused"), (part.get("refused"), whole.get("refused"))
        if "refused" not in part:
            extra = set(part["derived"]) - set(whole["derived"])
            assert not extra, (extra, [d for d in whole["derived"] if d[2] in {e[2] for e in extra}])
            if in_sync:
                checks.whole += 1
                for name in ("outbox", "audit", "reversals", "cancelled", "gaps", "queued"):
                    assert part[name] == whole[name], (name, part[name], whole[name])
            else:
                checks.partial += 1
                changed = set(part["outbox"]) - outbox_before
                assert changed <= set(whole["outbox"]) - outbox_before, changed - set(whole["outbox"])
                for name in ("audit", "reversals", "cancelled", "gaps"):
                    assert set(part[name]) <= set(whole[name]), (name, part[name], whole[name])

    return call
