"""Reading what `connector drift` compares, a batch of records at a time: the holdings of each
system against the book's position (`connector.reports.drift`, pure), for the CLI and the
workbench.

The whole report is never read at once. First the few things every batch may need: the open
gaps (judged on their own records' neighbourhood), the reversals (a reversal is found by the
write it takes back) and the payment views whose money left (a gateway's paid invoice is not
drift when the charge that paid it was refunded since). Then the receivables, `batch` at a time
in the report's order (number, id), each with its own views, its applied allocations, the views
of those allocations' payments and the writes aimed at its views; then the payments, `batch` at
a time by id, with their views; last the unsent money writes and the gaps. The lines are the
ones the whole book in one batch gives (a test holds them equal); memory is a batch's, whatever
the book's size."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from connector import reports
from connector.config import Config
from connector.connections import system_ranks
from connector.model import Allocation
from connector.reconcile.types import LEDGER_RULE
from connector.reports.drift import MONEY_WRITES, REVERSALS, UNSENT, VIEW_FIELDS
from connector.state import outbox
from connector.state import reconciliation as decisions
from connector.state.bookkeeping import audit_entries
from connector.state.linking import entities_by_remote, payment_views_money_left, ref_views
from connector.state.records import dangling_refs, refs_known_as
from connector.state.store import Store

Row = dict[str, Any]
Kinds = dict[str, str]

# Receivables (and then payments) read at a time: a batch's views, allocations and writes
# (large book: 1,000 at a time 537 MiB peak, 500 424 MiB, for ~10 % more time).
DRIFT_BATCH = 500


class Lines(Protocol):
    """Where the report's lines go as they are found: a list (`KeptLines`), or rows kept on
    disk for a command that prints the whole book's (`connector.cli.streaming.RowSpool`)."""

    def add(self, row: Row) -> None: ...

    def __iter__(self) -> Iterator[Row]: ...


class KeptLines(list[Row]):
    """The lines in memory."""

    def add(self, row: Row) -> None:
        self.append(row)


def drift_of(config: Config, store: Store, day: date, *, batch: int = DRIFT_BATCH, into: Lines | None = None) -> Row:
    """`connector drift --json` of the store's company on `day`: what each system holds against
    what it should hold after the writes done (`connector.reports.drift`), the open gaps and the
    dangling refs, read `batch` records at a time. The CLI and the workbench both read it here.
    The lines go `into` as they are found (a list, by default): the report's `records` is it."""
    kinds = {name: kind for name, (kind, _) in system_ranks(config).items()}
    with store.session() as session:
        gaps = [
            reports.Gap(e.at, e.subject_type, e.subject_id, e.inputs or {}, e.decision or "")
            for e in audit_entries(session, actions={"gap"})
        ]
        reversals = [_write(w) for w in outbox.write_facts(session, kinds=sorted(REVERSALS))]
        money_left = [_view(row, kinds) for row in payment_views_money_left(session, fields=VIEW_FIELDS)]
        gap_book = _gap_book(session, store, kinds, day, gaps, reversals)
        keys = store.receivable_keys(session=session)
        payment_ids = sorted(set(entities_by_remote(session, "payment").values()))
    still_open = reports.open_gaps(gap_book)
    keys.sort(key=lambda k: (k.number or "", k.id))
    lines = KeptLines() if into is None else into
    gap_lines = reports.gap_lines(gap_book)
    named = {action for line in gap_lines for action in line["actions"]}
    records = 0

    def keep(found: Iterable[Row]) -> None:
        nonlocal records
        for line in found:
            lines.add(line)
            named.update(line["actions"])
            records += 1

    for start in range(0, len(keys), batch):
        chunk = [k.id for k in keys[start : start + batch]]
        with store.session() as session:
            book = _invoice_batch(session, store, kinds, day, chunk, reversals, money_left, still_open)
        found = reports.invoice_drift(book)
        _fill_since(found, book.invoice_views)
        keep(found)
    for start in range(0, len(payment_ids), batch):
        with store.session() as session:
            views = _views(session, "payment", kinds, payment_ids[start : start + batch])
        found = reports.payment_drift(_book(day, payment_views=views, open_gaps=[]))
        _fill_since(found, views)
        keep(found)
    with store.session() as session:  # the unsent money writes, a thousand at a time: most are named already
        unsent = (_write(w) for w in outbox.write_facts(session, states=sorted(UNSENT), kinds=sorted(MONEY_WRITES)))
        keep(reports.unsent_writes(unsent, named))
        dangling = _dangling_refs(session)
    for line in gap_lines:
        lines.add(line)
    return reports.drift_report(lines, dangling, counted=(records, len(gap_lines)))


def _book(day: date, **parts: Any) -> reports.DriftBook:
    empty: dict[str, Any] = {
        "invoices": {},
        "payments": {},
        "pending": [],
        "invoice_views": [],
        "payment_views": [],
        "writes": [],
        "gaps": [],
    }
    return reports.DriftBook(**{**empty, **parts}, as_of=day)


def _invoice_batch(
    session: Any,
    store: Store,
    kinds: Kinds,
    day: date,
    invoice_ids: Sequence[str],
    reversals: Sequence[reports.Write],
    money_left: Sequence[reports.View],
    still_open: Sequence[reports.Gap],
) -> reports.DriftBook:
    """The receivables of `invoice_ids` with what their checks read: their views, the applied
    allocations on them the ledger does not record itself, every view of those allocations'
    payments (what the ledger holds of each), the views whose money left that link to them, and
    the writes aimed at their views (with every reversal, found by the write it takes back)."""
    invoices = {
        i.id: i
        for i in store.list_receivables(session=session, ids=invoice_ids, with_lines=False, with_refs=False)
        if i.id
    }
    invoice_views = _views(session, "invoice", kinds, sorted(invoices))
    pending = _pending(session, invoice_ids=sorted(invoices))
    targets = {v.target for v in invoice_views}
    remotes = {(system, remote_id) for system, _, remote_id in targets}
    linking = [v for v in money_left if (v.system, str((v.sync.get("links") or {}).get("invoice"))) in remotes]
    payment_views = _merged(_views(session, "payment", kinds, sorted({a.payment_id for a in pending})), linking)
    writes = [_write(w) for w in outbox.write_facts(session, targets=targets)] if targets else []
    return _book(
        day,
        invoices=invoices,
        pending=pending,
        invoice_views=invoice_views,
        payment_views=payment_views,
        writes=_merged_writes(writes, reversals),
        gaps=still_open,
        open_gaps=still_open,
    )


def _gap_book(
    session: Any,
    store: Store,
    kinds: Kinds,
    day: date,
    gaps: Sequence[reports.Gap],
    reversals: Sequence[reports.Write],
) -> reports.DriftBook:
    """What judging and describing the gaps reads: the invoices and payments they name, the
    invoices' views and the writes aimed at them, the writes the gaps name, every allocation of
    those invoices and payments the ledger does not record itself with the views of their
    payments, and the gateway payments the reversals' writes refer to."""
    if not gaps:
        return _book(day)
    invoice_ids = sorted({str(g.inputs["invoice"]) for g in gaps if g.inputs.get("invoice")})
    payment_ids = sorted({str(g.inputs["payment"]) for g in gaps if g.inputs.get("payment")})
    invoices = {
        i.id: i
        for i in store.list_receivables(session=session, ids=invoice_ids, with_lines=False, with_refs=False)
        if i.id
    }
    invoice_views = _views(session, "invoice", kinds, invoice_ids)
    targets = {v.target for v in invoice_views}
    named = sorted({a for g in gaps if (a := _action(g.inputs.get("action"))) is not None})
    writes = [_write(w) for w in outbox.write_facts(session, targets=targets)] if targets else []
    writes += [_write(w) for w in outbox.write_facts(session, ids=named)] if named else []
    reversed_ids = sorted({a for w in reversals if (a := _action(w.payload.get("reverses"))) is not None})
    reversed_ = [_write(w) for w in outbox.write_facts(session, ids=reversed_ids)] if reversed_ids else []
    references = {str(w.payload.get("reference")) for w in reversed_ if w.payload.get("reference")}
    pending = _pending(session, invoice_ids=invoice_ids, payment_ids=payment_ids)
    known = refs_known_as(session, {(None, r) for r in references})
    referred = {str(r["entity_id"]) for r in known if r["entity_kind"] == "payment" and r["entity_id"]}
    payment_views = _views(session, "payment", kinds, sorted({a.payment_id for a in pending} | referred))
    payments = {p.id: p for p in store.list_payments(session=session, ids=sorted(references)) if p.id}
    return _book(
        day,
        invoices=invoices,
        payments=payments,
        pending=pending,
        invoice_views=invoice_views,
        payment_views=payment_views,
        writes=_merged_writes(writes + reversed_, reversals),
        gaps=gaps,
    )


def _action(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _views(session: Any, kind: str, kinds: Kinds, entity_ids: Sequence[str]) -> list[reports.View]:
    """The views of those records of `kind`, in `ref_views`' order (system, type, remote id),
    each holding only what the report reads of it (`VIEW_FIELDS`)."""
    if not entity_ids:
        return []
    return [_view(row, kinds) for row in ref_views(session, kind, entity_ids=entity_ids, fields=VIEW_FIELDS)]


def _pending(session: Any, *, invoice_ids: Sequence[str] = (), payment_ids: Sequence[str] = ()) -> list[Allocation]:
    """The applied allocations on `invoice_ids` or of `payment_ids` that the ledger does not
    record itself, each once, in the order they were made (as the whole book has them)."""
    found: dict[str | None, decisions.StoredAllocation] = {}
    if invoice_ids:
        found.update(
            (s.allocation.id, s) for s in decisions.load_allocations(session, status="applied", invoice_ids=invoice_ids)
        )
    if payment_ids:
        found.update(
            (s.allocation.id, s) for s in decisions.load_allocations(session, status="applied", payment_ids=payment_ids)
        )
    stored = sorted(found.values(), key=lambda s: (s.created_at, s.allocation.id or ""))
    return [s.allocation for s in stored if s.allocation.rule != LEDGER_RULE]


def _merged(views: Iterable[reports.View], more: Iterable[reports.View]) -> list[reports.View]:
    """`views` and `more`, each view once, in `ref_views`' order."""
    by_target = {v.target: v for v in [*views, *more]}
    return [by_target[t] for t in sorted(by_target)]


def _merged_writes(writes: Iterable[reports.Write], more: Iterable[reports.Write]) -> list[reports.Write]:
    """`writes` and `more`, each once, by id (the outbox's order)."""
    by_id = {w.id: w for w in [*writes, *more]}
    return [by_id[i] for i in sorted(by_id)]


def _dangling_refs(session: Any) -> list[Row]:
    out = []
    for ref in dangling_refs(session):
        kind, entity_id = ref["entity_kind"], ref["entity_id"]
        out.append(
            {
                "system": ref["system"],
                "type": ref["object_type"],
                "id": ref["remote_id"],
                "entity_kind": kind,
                "entity_id": entity_id,
                "problem": "not linked to any record" if entity_id is None else f"{kind} {entity_id} is missing",
            }
        )
    return out


def _write(facts: outbox.WriteFacts) -> reports.Write:
    return reports.Write(
        id=facts.id,
        connection=facts.connection,
        kind=facts.kind,
        target=facts.target,
        payload=facts.payload,
        state=facts.state,
        at=facts.updated_at,
        summary=facts.summary,
        subject_type=facts.subject_type,
        subject_id=facts.subject_id,
    )


def _view(row: Row, kinds: dict[str, str]) -> reports.View:
    return reports.View(
        system=row["system"],
        kind=kinds.get(row["system"], ""),
        object_type=row["object_type"],
        remote_id=row["remote_id"],
        entity_id=row["entity_id"],
        data=row["data"],
        seen_at=row["seen_at"],
    )


def _fill_since(lines: list[Row], views: Sequence[reports.View]) -> None:
    """A record's line without a moment gets the record's last sync (in that line's system)."""
    seen: dict[tuple[str, str], list[tuple[str, datetime]]] = defaultdict(list)
    for view in views:
        if view.seen_at is not None:
            kind = "payment" if view.object_type in ("payment", "payment_intent") else "invoice"
            seen[(kind, view.entity_id)].append((view.system, view.seen_at))
    for line in lines:
        if line["since"] is not None or line["kind"] not in ("invoice", "payment") or not line["id"]:
            continue
        moments = [at for system, at in seen.get((line["kind"], line["id"]), []) if line["system"] in (None, system)]
        line["since"] = reports.iso(max(moments)) if moments else None
