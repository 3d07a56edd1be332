"""Finance reports: `invoices list`, `payments list`, `customers show`, `aging`, `explain`, `drift`.

These commands only read: they load what is stored, hand it to the pure functions of
`connector.reports`, and print the rows as a table, JSON (`--json`, documented in
docs/finance.md) or CSV (`--csv`). Each reads one company's book (`--company`); `aging` and
`drift` also take `--company all`, every company's report in turn, each computed on its own
book and never added to another's.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

import click

from connector import reports
from connector.cli.company_commands import print_company_heading
from connector.cli.context import ALL_COMPANIES, AppContext, pass_app
from connector.connections import system_ranks
from connector.errors import EXIT_PROBLEMS, UsageError
from connector.lookup import find_invoice, find_payment
from connector.model import Allocation, Customer, Invoice
from connector.reconcile.run import LEDGER_RULE, invoice_allocations
from connector.state import outbox
from connector.state import reconciliation as decisions
from connector.state.bookkeeping import audit_entries, audit_entries_about
from connector.state.linking import ref_views
from connector.state.records import dangling_refs, ref_details
from connector.state.store import Store

Row = dict[str, Any]


# Options and output ---------------------------------------------------------------------


def _as_of(value: str | None) -> date:
    if value is None:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--as-of: {value!r} is not a date (use YYYY-MM-DD)") from None


def _format(as_json: bool, as_csv: bool) -> str:
    if as_json and as_csv:
        raise UsageError("give --json or --csv, not both")
    return "json" if as_json else "csv" if as_csv else "table"


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _echo_csv(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])


def _echo_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[str] = ()) -> None:
    """Columns sized to their content; the `right` columns (amounts, counts) right-aligned."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if h in right else v.ljust(w) for v, w, h in zip(values, widths, headers, strict=True)]
        return "  ".join(parts).rstrip()

    click.echo(line(list(headers)))
    for row in cells:
        click.echo(line(row))


def _flags(row: Row) -> str:
    flags = []
    if row.get("disputed"):
        flags.append("disputed")
    if row.get("promise_to_pay"):
        flags.append(f"promise {row['promise_to_pay']}")
    if row.get("in_collections"):
        flags.append("in_collections")
    if row.get("payment_plan"):
        flags.append("payment_plan")
    if row.get("customer_paused"):
        flags.append("customer_paused")
    return ",".join(flags)


# Loading --------------------------------------------------------------------------------


def _customers(store: Store) -> dict[str, Customer]:
    return {c.id: c for c in store.list_customers() if c.id}


def _invoice_allocations(store: Store, invoices: list[Invoice]) -> dict[str, list[Allocation]]:
    return invoice_allocations(store, invoices)


def _payment_allocations(store: Store) -> dict[str, list[Allocation]]:
    """Every applied allocation per payment, the ledger's own records included."""
    with store.session() as session:
        stored = decisions.load_allocations(session, status="applied")
    out: dict[str, list[Allocation]] = defaultdict(list)
    for s in stored:
        out[s.allocation.payment_id].append(s.allocation)
    return out


def _resolve_customers(customers: dict[str, Customer], query: str) -> list[Customer]:
    found = reports.match_customers(customers.values(), query)
    if not found:
        raise UsageError(f"no customer {query!r} (give our id, a provider's id or part of the name)")
    return found


# invoices list --------------------------------------------------------------------------

INVOICE_COLUMNS = [
    "number",
    "customer",
    "currency",
    "total",
    "balance",
    "status",
    "due_date",
    "days_past_due",
    "aging_bucket",
    "systems",
    "flags",
]


def _invoice_cells(row: Row) -> list[Any]:
    return [
        row["number"],
        row["customer"]["name"],
        row["currency"],
        row["total"],
        row["balance"],
        row["status"],
        row["due_date"],
        row["days_past_due"],
        row["aging_bucket"],
        " ".join(row["systems"]),
        _flags(row),
    ]


@click.group("invoices")
def invoices_group() -> None:
    """Invoices as the connector sees them: one per real invoice, whatever the systems."""


@invoices_group.command("list")
@click.option("--status", metavar="S", help=f"Only this status: {', '.join(reports.STATUS_FILTERS)}.")
@click.option("--customer", metavar="C", help="Only this customer: our id, a provider's id or part of the name.")
@click.option("--overdue", is_flag=True, help="Only invoices past their due date with a balance.")
@click.option("--as-of", "as_of", metavar="DATE", help="Position on this date (YYYY-MM-DD; default today).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see docs/finance.md).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV output.")
@pass_app
def invoices_list(
    app: AppContext,
    status: str | None,
    customer: str | None,
    overdue: bool,
    as_of: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Invoices with their balance, derived status, days past due and aging bucket."""
    if status is not None and status not in reports.STATUS_FILTERS:
        raise UsageError(f"--status: unknown status {status!r} (valid: {', '.join(reports.STATUS_FILTERS)})")
    output, day = _format(as_json, as_csv), _as_of(as_of)
    store = app.store()
    customers = _customers(store)
    if customer is not None:
        invoices = []
        for found in _resolve_customers(customers, customer):
            invoices += store.list_invoices(customer_id=found.id)
    else:
        invoices = store.list_invoices()
    rows = reports.invoice_rows(invoices, customers, _invoice_allocations(store, invoices), day)
    rows = reports.select_invoices(rows, status=status, overdue=overdue)
    if output == "json":
        _echo_json({"as_of": day.isoformat(), "invoices": rows})
    elif output == "csv":
        _echo_csv(
            ["id", *INVOICE_COLUMNS[:-2], "systems", "disputed", "promise_to_pay", "in_collections"],
            [
                [
                    r["id"],
                    *_invoice_cells(r)[:-2],
                    " ".join(r["systems"]),
                    r["disputed"],
                    r["promise_to_pay"],
                    r["in_collections"],
                ]
                for r in rows
            ],
        )
    else:
        _echo_table(INVOICE_COLUMNS, [_invoice_cells(r) for r in rows], right=("total", "balance", "days_past_due"))
        click.echo(f"{len(rows)} invoice(s) as of {day.isoformat()}")


# payments list --------------------------------------------------------------------------

PAYMENT_COLUMNS = [
    "received",
    "amount",
    "currency",
    "method",
    "customer",
    "remittance",
    "status",
    "allocated",
    "unapplied",
    "systems",
]


def _payment_cells(row: Row) -> list[Any]:
    return [
        (row["received_at"] or "")[:10],
        row["amount"],
        row["currency"],
        row["method"],
        row["customer"]["name"],
        row["remittance"],
        row["status"],
        row["allocated"],
        row["unapplied"],
        " ".join(row["systems"]),
    ]


@click.group("payments")
def payments_group() -> None:
    """Payments received, and how much of each is applied to invoices."""


@payments_group.command("list")
@click.option("--unmatched", is_flag=True, help="Only payments with an unapplied amount.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see docs/finance.md).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV output.")
@pass_app
def payments_list(app: AppContext, unmatched: bool, as_json: bool, as_csv: bool) -> None:
    """Payments with their allocated and unapplied amounts."""
    output = _format(as_json, as_csv)
    store = app.store()
    rows = reports.payment_rows(store.list_payments(), _customers(store), _payment_allocations(store))
    if unmatched:
        rows = reports.unmatched(rows)
    if output == "json":
        _echo_json({"payments": rows})
    elif output == "csv":
        _echo_csv(
            ["id", "received_at", *PAYMENT_COLUMNS[1:]],
            [[r["id"], r["received_at"], *_payment_cells(r)[1:]] for r in rows],
        )
    else:
        _echo_table(PAYMENT_COLUMNS, [_payment_cells(r) for r in rows], right=("amount", "allocated", "unapplied"))
        click.echo(f"{len(rows)} payment(s)")


# customers show -------------------------------------------------------------------------


@click.group("customers")
def customers_group() -> None:
    """Customers, with what they owe in every currency."""


@customers_group.command("show")
@click.argument("customer")
@click.option("--as-of", "as_of", metavar="DATE", help="Balances and days past due on this date (default today).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see docs/finance.md).")
@pass_app
def customers_show(app: AppContext, customer: str, as_of: str | None, as_json: bool) -> None:
    """One customer: refs in each system, open invoices, payments, unapplied credit."""
    day = _as_of(as_of)
    store = app.store()
    customers = _customers(store)
    found = _resolve_customers(customers, customer)
    if len(found) > 1:
        names = "; ".join(f"{c.name} ({c.id})" for c in found[:10])
        raise UsageError(f"{customer!r} names {len(found)} customers: {names}")
    chosen = found[0]
    invoices = store.list_invoices(customer_id=chosen.id)
    invoice_rows = reports.invoice_rows(invoices, customers, _invoice_allocations(store, invoices), day)
    payments = store.list_payments(customer_id=chosen.id)
    payment_rows = reports.payment_rows(payments, customers, _payment_allocations(store))
    story = reports.customer_story(chosen, invoice_rows, payment_rows)
    if as_json:
        _echo_json({"as_of": day.isoformat(), "customer": story})
        return
    click.echo(f"{story['name']}  ({story['id']})")
    if story["emails"]:
        click.echo(f"emails: {', '.join(story['emails'])}")
    if story["payment_terms_days"] is not None:
        click.echo(f"payment terms: {story['payment_terms_days']} days")
    if story["paused"]:
        click.echo("reminders: paused")
    click.echo("")
    click.echo("In each system:")
    _echo_table(["system", "type", "id"], [[r["system"], r["type"], r["id"]] for r in story["refs"]])
    click.echo("")
    owed = ", ".join(f"{v} {c}" for c, v in story["balance"].items()) or "nothing"
    click.echo(f"Open invoices as of {day.isoformat()} (owed: {owed}):")
    if story["open_invoices"]:
        _echo_table(
            INVOICE_COLUMNS,
            [_invoice_cells(r) for r in story["open_invoices"]],
            right=("total", "balance", "days_past_due"),
        )
    click.echo("")
    click.echo("Payments:")
    if story["payments"]:
        _echo_table(
            PAYMENT_COLUMNS, [_payment_cells(r) for r in story["payments"]], right=("amount", "allocated", "unapplied")
        )
    click.echo("")
    credit = ", ".join(f"{v} {c}" for c, v in story["unapplied"].items()) or "none"
    click.echo(f"Unapplied credit: {credit}")


# aging ----------------------------------------------------------------------------------


@click.command("aging")
@click.option("--as-of", "as_of", metavar="DATE", help="Age balances on this date (YYYY-MM-DD; default today).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see docs/finance.md).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV output.")
@pass_app
def aging_command(app: AppContext, as_of: str | None, as_json: bool, as_csv: bool) -> None:
    """Open balances per customer in current/1-30/31-60/61-90/90+, per currency, and DSO.
    `--company all` shows every company's report in turn, never summed across companies."""
    output, day = _format(as_json, as_csv), _as_of(as_of)
    side_by_side = _side_by_side(app)
    reports_by_company = {company: _aging_report(app.store(company), day) for company in app.companies()}
    if not side_by_side:
        (report,) = reports_by_company.values()
        if output == "json":
            _echo_json(report)
        elif output == "csv":
            _echo_csv(_aging_csv_headers(report), _aging_rows(report))
        else:
            _print_aging(report)
        return
    if output == "json":
        _echo_json({"companies": [{"company": c, **r} for c, r in reports_by_company.items()]})
    elif output == "csv":
        (first, *_) = reports_by_company.values()
        _echo_csv(
            ["company", *_aging_csv_headers(first)],
            [[c, *row] for c, r in reports_by_company.items() for row in _aging_rows(r)],
        )
    else:
        for number, (company, report) in enumerate(reports_by_company.items()):
            print_company_heading(app.root_config(), company, first=number == 0)
            _print_aging(report)


def _aging_report(store: Store, day: date) -> Row:
    invoices = store.list_invoices()
    return reports.aging_report(invoices, _customers(store), _invoice_allocations(store, invoices), day)


def _aging_csv_headers(report: Row) -> list[str]:
    return ["row", "customer_id", "customer", "currency", *report["buckets"], "total", "in_collections", "invoices"]


def _aging_rows(report: Row) -> list[list[Any]]:
    """The customers' rows, then the totals per currency: (row, id, name, currency, buckets...,
    total, in_collections, invoices)."""
    buckets = list(report["buckets"])
    rows = [
        [
            "customer",
            r["customer"]["id"],
            r["customer"]["name"],
            r["currency"],
            *[r[b] for b in buckets],
            r["total"],
            r["in_collections"],
            r["invoices"],
        ]
        for r in report["customers"]
    ]
    totals = [
        [
            "total",
            None,
            "TOTAL",
            r["currency"],
            *[r[b] for b in buckets],
            r["total"],
            r["in_collections"],
            r["invoices"],
        ]
        for r in report["totals"]
    ]
    return rows + totals


def _print_aging(report: Row) -> None:
    buckets = list(report["buckets"])
    headers = ["customer", "currency", *buckets, "total", "in_collections"]
    right = (*buckets, "total", "in_collections")
    _echo_table(headers, [[r[2], *r[3:-1]] for r in _aging_rows(report)], right=right)
    click.echo("")
    click.echo(
        f"DSO as of {report['as_of']} (receivables / credit sales of the last {reports.DSO_WINDOW_DAYS} days x "
        f"{reports.DSO_WINDOW_DAYS}):"
    )
    _echo_table(
        ["currency", "receivables", "credit_sales", "dso_days"],
        [[d["currency"], d["receivables"], d["credit_sales"], d["days"] or "n/a"] for d in report["dso"]],
        right=("receivables", "credit_sales", "dso_days"),
    )


# drift ----------------------------------------------------------------------------------


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


@click.command("drift")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see docs/finance.md).")
@pass_app
def drift_command(app: AppContext, as_json: bool) -> int:
    """What each system holds against what it should hold after the writes that are done, the
    open gaps, and refs that point at nothing. Exits 1 when there is drift (in any company,
    with `--company all`), 0 when none."""
    side_by_side = _side_by_side(app)
    reports_by_company = {company: _drift_report(app, company) for company in app.companies()}
    drift = any(report["drift"] for report in reports_by_company.values())
    if not side_by_side:
        (report,) = reports_by_company.values()
        if as_json:
            _echo_json(report)
        else:
            _print_drift(report)
    elif as_json:
        _echo_json({"companies": [{"company": c, **r} for c, r in reports_by_company.items()]})
    else:
        for number, (company, report) in enumerate(reports_by_company.items()):
            print_company_heading(app.root_config(), company, first=number == 0)
            _print_drift(report)
    return EXIT_PROBLEMS if drift else 0


def _drift_report(app: AppContext, company: str) -> Row:
    store = app.store(company)
    kinds = {name: kind for name, (kind, _) in system_ranks(app.config(company)).items()}
    with store.session() as session:
        invoices = {i.id: i for i in store.list_invoices(session=session) if i.id}
        payments = {p.id: p for p in store.list_payments(session=session) if p.id}
        applied = decisions.load_allocations(session, status="applied")
        invoice_rows, payment_rows = ref_views(session, "invoice"), ref_views(session, "payment")
        writes = [_write(e) for e in outbox.entries(session)]
        gaps = [
            reports.Gap(e.at, e.subject_type, e.subject_id, e.inputs or {}, e.decision or "")
            for e in audit_entries(session, actions={"gap"})
        ]
        invoice_views = [_view(row, kinds) for row in invoice_rows]
        payment_views = [_view(row, kinds) for row in payment_rows]
        book = reports.DriftBook(
            invoices=invoices,
            payments=payments,
            pending=[s.allocation for s in applied if s.allocation.rule != LEDGER_RULE],
            invoice_views=invoice_views,
            payment_views=payment_views,
            writes=writes,
            gaps=gaps,
            as_of=date.today(),
        )
        lines = reports.drift_lines(book)
        _fill_since(lines, [*invoice_views, *payment_views])
        dangling = _dangling_refs(session)
    return reports.drift_report(lines, dangling)


def _write(entry: outbox.OutboxEntry) -> reports.Write:
    target = entry.action.target
    return reports.Write(
        id=entry.id,
        connection=entry.action.connection,
        kind=entry.action.kind,
        target=None if target is None else (target.system, target.object_type, target.remote_id),
        payload=entry.action.payload,
        state=entry.action.state,
        at=entry.updated_at,
        summary=entry.summary,
        subject_type=entry.subject_type,
        subject_id=entry.subject_id,
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


def _side_by_side(app: AppContext) -> bool:
    """Whether the report shows every company in turn (`--company all`)."""
    return app.company_option == ALL_COMPANIES


def _print_drift(report: Row) -> None:
    if not report["drift"]:
        click.echo("no drift: every system holds what it should after the writes done, and no gap is open")
        return
    for line in report["records"]:
        click.echo(drift_text(line))
    for ref in report["dangling_refs"]:
        click.echo(f"dangling ref: {ref['system']} {ref['type']} {ref['id']}: {ref['problem']}")
    counts = report["counts"]
    click.echo(
        f"{counts['records']} difference(s), {counts['gaps']} open gap(s), {counts['dangling_refs']} dangling ref(s)"
    )


def drift_text(line: Row) -> str:
    """One drift line as printed: what, where, by how much, since when, and what resolves it."""
    what = f"{line['kind']} {line['number'] or line['id'] or '-'}"
    where = " ".join(str(p) for p in (line["system"], line["type"], line["remote_id"]) if p)
    by = f" by {line['amount']} {line['currency']}" if line["amount"] is not None else ""
    since = f" since {line['since']}" if line["since"] else ""
    return (
        f"{what}: {where} {line['field']}: holds {line['holds']}, should hold {line['should_hold']}{by}{since}"
        f" ({line['reason']}); resolve: {line['resolve']}"
    )


# explain --------------------------------------------------------------------------------


def _find(store: Store, token: str) -> tuple[str, Any]:
    finders: list[tuple[str, Callable[[Store, str], Any]]] = [("payment", find_payment), ("invoice", find_invoice)]
    for kind, finder in finders:
        try:
            return kind, finder(store, token)
        except UsageError as exc:
            if not str(exc).startswith("no "):  # it names several: say so
                raise
    raise UsageError(f"no payment or invoice {token!r} (give our id, a provider's id or an invoice number)")


def _ref_details(session: Any, kind: str, entity_id: str) -> list[Row]:
    return [
        {
            "system": r["system"],
            "type": r["object_type"],
            "id": r["remote_id"],
            "link_rule": r["link_rule"],
            "remote_updated_at": reports.iso(r["remote_updated_at"]),
            "seen_at": reports.iso(r["seen_at"]),
        }
        for r in ref_details(session, kind, entity_id)
    ]


def _audit_entries(session: Any, subject_ids: Sequence[str], mentioned: str) -> list[Row]:
    return [
        {
            "seq": e.id,
            "at": reports.iso(e.at),
            "actor": e.actor,
            "action": e.action,
            "subject_type": e.subject_type,
            "subject_id": e.subject_id,
            "inputs": e.inputs,
            "decision": e.decision,
        }
        for e in audit_entries_about(session, subject_ids, mentioned)
    ]


@click.command("explain")
@click.argument("record")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see docs/finance.md).")
@pass_app
def explain_command(app: AppContext, record: str, as_json: bool) -> None:
    """The full story of one PAYMENT or INVOICE (our id, a provider's id, or an invoice number)."""
    store = app.store()
    kind, found = _find(store, record)
    customers = _customers(store)
    entity_id = found.id
    with store.session() as session:
        if kind == "payment":
            stored = decisions.load_allocations(session, payment_ids=[entity_id])
            proposals = [p for p in decisions.load_proposals(session, status=None) if p["payment_id"] == entity_id]
        else:
            stored = decisions.load_allocations(session, invoice_ids=[entity_id])
            proposals = [
                p
                for p in decisions.load_proposals(session, status=None)
                if any(entity_id in c["invoice_ids"] for c in p["candidates"] or [])
            ]
        refs = _ref_details(session, kind, entity_id)
        subjects = [entity_id, *(s.allocation.id or "" for s in stored), *(p["id"] for p in proposals)]
        audit = _audit_entries(session, subjects, entity_id)
    if kind == "payment":
        applied = [s.allocation for s in stored if s.status == "applied"]
        row = reports.payment_rows([found], customers, {entity_id: applied})[0]
    else:
        row = reports.invoice_rows([found], customers, _invoice_allocations(store, [found]), date.today())[0]
    targets = {(r["system"], r["type"], r["id"]) for r in refs}
    actions = [
        {
            "connection": a.connection,
            "kind": a.kind,
            "state": a.state,
            "idempotency_key": a.idempotency_key,
            "target": None
            if a.target is None
            else {"system": a.target.system, "type": a.target.object_type, "id": a.target.remote_id},
            "payload": a.payload,
        }
        for a in store.list_actions()
        if a.target is not None and (a.target.system, a.target.object_type, a.target.remote_id) in targets
    ]
    story = reports.explain_story(
        kind,
        row,
        refs,
        [reports.allocation_row(s.allocation, s.status, s.created_at) for s in stored],
        [reports.proposal_row(p) for p in proposals],
        audit,
        actions,
    )
    if as_json:
        _echo_json(story)
    else:
        _print_story(story)


def _print_story(story: Row) -> None:
    record = story["record"]
    if story["kind"] == "payment":
        click.echo(
            f"payment {story['id']}: {record['amount']} {record['currency']} received {record['received_at']} "
            f"from {record['customer']['name']} ({record['status']}, {record['method'] or 'unknown method'})"
        )
        click.echo(f"remittance: {record['remittance'] or '-'}")
        click.echo(f"allocated {record['allocated']} {record['currency']}, unapplied {record['unapplied']}")
    else:
        click.echo(
            f"invoice {record['number'] or story['id']} ({story['id']}) of {record['customer']['name']}: "
            f"total {record['total']} {record['currency']}, balance {record['balance']}, {record['status']}, "
            f"due {record['due_date']}, {record['days_past_due']} day(s) past due"
        )
        flags = _flags(record)
        if flags:
            click.echo(f"flags: {flags}")
    click.echo("")
    click.echo("In each system:")
    _echo_table(
        ["system", "type", "id", "linked by"],
        [[r["system"], r["type"], r["id"], r["link_rule"] or "-"] for r in story["refs"]],
    )
    click.echo("")
    click.echo("Allocations:" if story["allocations"] else "Allocations: none")
    for a in story["allocations"]:
        click.echo(
            f"  {a['id']} [{a['status']}] payment {a['payment']} -> invoice {a['invoice']}: "
            f"{a['amount']} {a['currency']} by {a['rule']} (confidence {a['confidence']}, "
            f"confirmed by {a['confirmed_by'] or '-'})"
        )
        click.echo(f"      {a['reason']}")
    click.echo("Proposals:" if story["proposals"] else "Proposals: none")
    for p in story["proposals"]:
        click.echo(f"  {p['id']} [{p['status']}] payment {p['payment']}: {p['amount']} {p['currency']}")
        for c in p["candidates"]:
            click.echo(
                f"    {c['rank']}. invoices {', '.join(c['invoices'])} ({', '.join(c['amounts'])}) by {c['rule']} "
                f"(confidence {c['confidence']}): {c['reason']}"
            )
    click.echo("Audit log:" if story["audit"] else "Audit log: nothing recorded")
    for e in story["audit"]:
        click.echo(
            f"  {e['at']} {e['actor']} {e['action']} {e['subject_type']} {e['subject_id']}: {e['decision'] or ''}"
        )
    click.echo("Outbox actions:" if story["actions"] else "Outbox actions: none")
    for a in story["actions"]:
        click.echo(f"  {a['connection']} {a['kind']} [{a['state']}] {a['idempotency_key']}")


COMMANDS = [invoices_group, payments_group, customers_group, aging_command, explain_command, drift_command]
