"""The write-back plan read a part of the book at a time against the whole book (issue #18:
`settle_in_parts`, which the automatic plan runs, against `settle`, which reads every record)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from connector.state import outbox
from connector.state.bookkeeping import audit_entries
from connector.writeback.apply import AUTOMATIC_CAUSE
from connector.writeback.facts import Around, gather_facts, ledger_payment_links
from connector.writeback.settle import Settlement, settle, settle_in_parts


class _Undo(Exception):
    """Raised to roll a settlement back once it has been read."""


def _settled(store: Any, run: Callable[[Any], Settlement]) -> dict[str, Any]:
    """What `run` settles in a transaction, rolled back afterwards: the outbox it leaves (each
    write's key, state, subject, payload and summary; not the ids a database gives), the audit
    entries it adds, and what it says it derived, queued, cancelled, reversed and handed over."""
    found: dict[str, Any] = {}
    try:
        with store.session() as session:
            every = ("cancel", "plan_reversal", "gap")
            before = {e.id for e in audit_entries(session, actions=every)}
            settled = run(session)
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
                for e in audit_entries(session, actions=every)
                if e.id not in before
            )
            found["derived"] = sorted(
                (p.action.idempotency_key, p.subject_type, p.subject_id, p.summary) for p in settled.derived
            )
            found["reversals"] = sorted(p.action.idempotency_key for p in settled.reversals)
            found["cancelled"] = sorted(e.action.idempotency_key for e in settled.cancelled)
            found["gaps"] = sorted(repr(g) for g in settled.gaps)
            found["queued"] = settled.queued
            raise _Undo
    except _Undo:
        pass
    return found


def same_writes_a_few_receivables_at_a_time(config: Any, store: Any, day: date, few: int = 2) -> int:
    """The automatic plan made `few` receivables at a time (`settle_in_parts`) leaves the outbox
    and the audit log as the plan made of the whole book at once (`settle`), says it derived,
    queued, cancelled and reversed the same, and hands the same over; neither is kept. Returns
    how many writes the plan derived (a caller can insist there are some)."""

    def whole(session: Any) -> Settlement:
        return settle(config, store, session, actor="plan", cause=AUTOMATIC_CAUSE, reverse=False, today=day)

    def in_parts(session: Any) -> Settlement:
        return settle_in_parts(config, store, session, actor="plan", cause=AUTOMATIC_CAUSE, today=day, batch=few)

    at_once = _settled(store, whole)
    parts = _settled(store, in_parts)
    for name, found in at_once.items():
        assert parts[name] == found, (name, found, parts[name])
    same_facts_a_few_receivables_at_a_time(config, store, day, few)
    return len(at_once["derived"])


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
