"""Finance reports: `invoices list|unlinked`, `payments list`, `customers list|show`, `aging`, `drift`
(`explain` has its own module, `connector.cli.explain_commands`).

These commands only read: they load what is stored, hand it to the pure functions of
`connector.reports`, and print the rows as a table, JSON (`--json`, documented in
docs/finance.md), CSV (`--csv`; `--excel` adds the byte-order mark Excel needs) or an XLSX
workbook (`--xlsx FILE`, one sheet per currency). CSV and XLSX go through `connector.exports`,
so a payer's `=HYPERLINK(...)` stays text. Each reads one company's book (`--company`); `aging`
and `drift` also take `--company all`, every company's report in turn, each computed on its own
book and never added to another's.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import click

from connector import reports
from connector.cli.company_commands import print_company_heading
from connector.cli.context import ALL_COMPANIES, AppContext, pass_app
from connector.cli.days import parse_day
from connector.cli.printing import echo_json, echo_table, invoice_flags
from connector.cli.streaming import RowSpool, echo_json_rows, echo_json_with_rows
from connector.errors import EXIT_PROBLEMS, UsageError
from connector.exports import Column, Sheet, sheets_by_currency, write_csv, write_xlsx
from connector.linking.run import UnlinkedDeal, unlinked_deals
from connector.model import AGING_BUCKETS, Allocation, Customer, Invoice, Payment
from connector.money import Money
from connector.reconcile.drift_book import drift_of
from connector.reconcile.history import (
    aged_streamed,
    aging_streamed,
    customer_balances,
    customers_by_id,
    invoice_listing,
    payment_listing,
)
from connector.reconcile.run import invoice_allocations, without_withdrawn
from connector.reports.aging_sheets import aging_headers, aging_rows, aging_sheets
from connector.reports.as_at import SORT_KEYS, SortKey, sort_rows, top_rows
from connector.state import reconciliation as decisions
from connector.state.store import Store

Row = dict[str, Any]


# Options and output ---------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """How a report is given: `table`, `json`, `csv` (with a BOM and CRLF when `excel`) or
    `xlsx` (to the file `xlsx`)."""

    kind: str
    excel: bool = False
    xlsx: str | None = None


def _output(as_json: bool, as_csv: bool, excel: bool = False, xlsx: str | None = None) -> Output:
    chosen = [
        name for name, given in (("--json", as_json), ("--csv", as_csv or excel), ("--xlsx", xlsx is not None)) if given
    ]
    if len(chosen) > 1:
        raise UsageError(f"give one of --json, --csv or --xlsx, not {' and '.join(chosen)}")
    kind = chosen[0].lstrip("-") if chosen else "table"
    return Output(kind, excel=excel, xlsx=xlsx)


def output_options(with_xlsx: bool = True) -> Callable[[Any], Any]:
    """`--json`, `--csv`, `--excel` and (unless `with_xlsx` is false) `--xlsx FILE`."""
    options = [
        click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see docs/finance.md)."),
        click.option("--csv", "as_csv", is_flag=True, help="CSV output; text a spreadsheet would run is neutralised."),
        click.option("--excel", is_flag=True, help="CSV for Excel: a UTF-8 byte-order mark and CRLF (implies --csv)."),
    ]
    if with_xlsx:
        options.append(
            click.option("--xlsx", metavar="FILE", help="Write an XLSX workbook to FILE, one sheet per currency.")
        )

    def decorate(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def _echo_csv(output: Output, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    write_csv(sys.stdout, headers, rows, excel=output.excel)


def _save_xlsx(output: Output, sheets: Sequence[Sheet]) -> None:
    assert output.xlsx is not None
    try:
        write_xlsx(output.xlsx, sheets)
    except OSError as exc:
        raise UsageError(f"--xlsx: cannot write {output.xlsx}: {exc.strerror or exc}") from None
    click.echo(f"wrote {output.xlsx} ({len(sheets)} sheet(s))")


class Totals:
    """Per currency: how many rows (`counted`) and the sum of each amount field, never across
    currencies; rows are added as they pass (`counting`), so a streamed report totals too."""

    def __init__(self, fields: Sequence[str], counted: str) -> None:
        self.fields, self.counted = fields, counted
        # exact sums of the rows' amounts (each already at its currency's exponent), made
        # Money once at the end: a row's amounts are not parsed into Money on the way
        self._sums: dict[str, dict[str, Decimal]] = {}
        self._counts: dict[str, int] = defaultdict(int)

    def add(self, row: Row) -> None:
        currency = row["currency"]
        into = self._sums.get(currency)
        if into is None:
            into = self._sums[currency] = {f: Decimal(0) for f in self.fields}
        for f in self.fields:
            if row[f] is not None:
                into[f] += Decimal(row[f])
        self._counts[currency] += 1

    def counting(self, rows: Iterable[Row]) -> Iterator[Row]:
        for row in rows:
            self.add(row)
            yield row

    def rows(self) -> list[Row]:
        return [
            {
                "currency": currency,
                self.counted: self._counts[currency],
                **{f: reports.amount(Money.of(v, currency)) for f, v in self._sums[currency].items()},
            }
            for currency in sorted(self._sums)
        ]


def _echo_totals(totals: Sequence[Row], fields: Sequence[str], counted: str) -> None:
    for total in totals:
        amounts = ", ".join(f"{f} {total[f]}" for f in fields)
        click.echo(f"total {total['currency']}: {total[counted]} {counted}, {amounts}")


def _export_cell(row: Row, header: str) -> Any:
    if header == "customer":
        return row["customer"]["name"]
    if header == "systems":
        return " ".join(row["systems"])
    return row[header]


def _export(output: Output, title: str, columns: Sequence[Column], rows: Iterable[Row]) -> None:
    """Rows as CSV, or as an XLSX sheet per currency with a TOTAL row: the
    row's field of each column's name, then one `SYSTEM_id` column per system holding any of
    them, with that system's ids. `rows` is walked twice (the systems, then the lines): a
    list, or a `RowSpool`; CSV lines are written as they are made, an XLSX workbook is held."""
    systems = sorted({r["system"] for row in rows for r in row["refs"]})
    every = [*columns, *(Column(f"{system}_id") for system in systems)]
    lines = ([*(_export_cell(row, c.header) for c in columns), *_ids_in(row, systems)] for row in rows)
    if output.kind == "xlsx":
        currency = [c.header for c in every].index("currency")
        _save_xlsx(output, sheets_by_currency(title, every, list(lines), currency, totals=True))
    else:
        _echo_csv(output, [c.header for c in every], lines)


@dataclass(frozen=True)
class Listing:
    """What a listing (`invoices list`, `payments list`) prints: `key` of its JSON, the title of
    its XLSX sheets, its export columns, its table's columns and their right-aligned ones."""

    key: str
    title: str
    export: Sequence[Column]
    columns: Sequence[str]
    right: Sequence[str]


def _print_listing(
    output: Output,
    listing: Listing,
    head: Row,
    rows: Iterable[Row],
    totals: Totals,
    cells: Callable[[Row], list[Any]],
    footer: str,
) -> None:
    """A listing's rows as they come: `--json` a row a line, the totals after (`totals` counts
    the rows as they pass); CSV, XLSX and the table through a spool on disk, their columns and
    widths depending on every row."""
    if output.kind == "json":
        echo_json_rows(head, listing.key, rows, lambda: {"totals": totals.rows()})
        return
    with RowSpool() as spool:
        for row in rows:
            spool.add(row)
        if output.kind in ("csv", "xlsx"):
            _export(output, listing.title, listing.export, spool)
            return
        echo_table(listing.columns, spool.map(cells), right=listing.right)
        _echo_totals(totals.rows(), totals.fields, totals.counted)
        click.echo(f"{spool.count} {listing.key[:-1]}(s) {footer}".rstrip())


def _ids_in(row: Row, systems: Sequence[str]) -> list[str]:
    return [" ".join(r["id"] for r in row["refs"] if r["system"] == system) for system in systems]


# Loading --------------------------------------------------------------------------------


def _customers(store: Store) -> dict[str, Customer]:
    return customers_by_id(store)


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


def _payment_rows(store: Store, payments: Sequence[Payment], customers: dict[str, Customer]) -> list[Row]:
    """`reports.payment_rows` with `net`: what reaches the bank, the amount less the fee."""
    nets = {p.id: p.net for p in payments}
    rows = reports.payment_rows(payments, customers, _payment_allocations(store))
    for row in rows:
        row["net"] = reports.amount(nets[row["id"]])
    return rows


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
INVOICE_EXPORT = [
    Column("id"),
    Column("number"),
    Column("customer"),
    Column("currency"),
    Column("total", "money"),
    Column("balance", "money"),
    Column("status"),
    Column("issue_date", "date"),
    Column("due_date", "date"),
    Column("days_past_due", "integer"),
    Column("aging_bucket"),
    Column("systems"),
    Column("disputed"),
    Column("promise_to_pay", "date"),
    Column("in_collections"),
]
INVOICE_TOTALS = ("total", "balance")


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
        invoice_flags(row),
    ]


@click.group("invoices")
def invoices_group() -> None:
    """Invoices as the connector sees them: one per real invoice, whatever the systems."""


@invoices_group.command("list")
@click.option("--status", metavar="S", help=f"Only this status: {', '.join(reports.STATUS_FILTERS)}.")
@click.option("--customer", metavar="C", help="Only this customer: our id, a provider's id or part of the name.")
@click.option("--overdue", is_flag=True, help="Only invoices past their due date with a balance.")
@click.option("--as-of", "as_of", metavar="DATE", help="Position on this date (YYYY-MM-DD; default today).")
@output_options()
@pass_app
def invoices_list(
    app: AppContext,
    status: str | None,
    customer: str | None,
    overdue: bool,
    as_of: str | None,
    as_json: bool,
    as_csv: bool,
    excel: bool,
    xlsx: str | None,
) -> None:
    """Invoices with their balance, derived status, days past due and aging bucket, and the
    totals per currency. CSV and XLSX carry the issue and due dates and every system's id."""
    if status is not None and status not in reports.STATUS_FILTERS:
        raise UsageError(f"--status: unknown status {status!r} (valid: {', '.join(reports.STATUS_FILTERS)})")
    output, day = _output(as_json, as_csv, excel, xlsx), parse_day(as_of, "--as-of")
    store = app.reader()
    customers = _customers(store)
    chosen = None if customer is None else [c.id for c in _resolve_customers(customers, customer) if c.id]
    # The book is read a batch of invoices at a time and printed as it comes (JSON), or kept
    # on disk until the columns are known (CSV's systems, a table's widths): flat memory.
    listed = invoice_listing(store, customers, day, customer_ids=chosen)
    totals = Totals(INVOICE_TOTALS, "invoices")
    rows = totals.counting(r for r in listed if reports.invoice_selected(r, status=status, overdue=overdue))
    listing = Listing("invoices", "Invoices", INVOICE_EXPORT, INVOICE_COLUMNS, ("total", "balance", "days_past_due"))
    _print_listing(
        output, listing, {"as_of": day.isoformat()}, rows, totals, _invoice_cells, f"as of {day.isoformat()}"
    )


@invoices_group.command("unlinked")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def invoices_unlinked(app: AppContext, as_json: bool) -> None:
    """CRM deals (and CRM invoices) linked to no receivable, with why each did not link. A deal
    alone is never an invoice: it is in no aging, invoice list, reminder or drift until it links
    to the ledger's invoice (or, without a ledger, the gateway's); see docs/linking.md."""
    deals = unlinked_deals(app.config(), app.reader())
    if as_json:
        echo_json({"deals": [_unlinked_row(d) for d in deals]})
        return
    echo_table(
        ["system", "deal", "name", "amount", "currency", "why"],
        [[d.system, d.remote_id, d.name or "-", d.amount, d.currency or "-", d.reason] for d in deals],
        right=("amount",),
    )
    click.echo(f"{len(deals)} CRM deal(s) linked to no invoice")


def _unlinked_row(deal: UnlinkedDeal) -> Row:
    amount = None if deal.amount is None else str(deal.amount)
    return {
        "system": deal.system,
        "deal_id": deal.remote_id,
        "name": deal.name,
        "amount": amount,
        "currency": deal.currency,
        "reason": deal.reason,
    }


# payments list --------------------------------------------------------------------------

PAYMENT_COLUMNS = [
    "id",
    "received",
    "amount",
    "currency",
    "fee",
    "net",
    "method",
    "customer",
    "remittance",
    "status",
    "allocated",
    "unapplied",
    "systems",
]
PAYMENT_EXPORT = [
    Column("id"),
    Column("received_at", "date"),
    Column("amount", "money"),
    Column("currency"),
    Column("fee", "money"),
    Column("net", "money"),
    Column("method"),
    Column("customer"),
    Column("payer"),
    Column("remittance"),
    Column("status"),
    Column("allocated", "money"),
    Column("unapplied", "money"),
    Column("systems"),
]
PAYMENT_TOTALS = ("amount", "fee", "net", "allocated", "unapplied")
PAYMENT_AMOUNTS = ("amount", "fee", "net", "allocated", "unapplied")


def _payment_cells(row: Row) -> list[Any]:
    return [
        row["id"],
        (row["received_at"] or "")[:10],
        row["amount"],
        row["currency"],
        row["fee"],
        row["net"],
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
@click.option("--customer", metavar="C", help="Only this customer: our id, a provider's id or part of the name.")
@output_options()
@pass_app
def payments_list(
    app: AppContext,
    unmatched: bool,
    customer: str | None,
    as_json: bool,
    as_csv: bool,
    excel: bool,
    xlsx: str | None,
) -> None:
    """Payments with their id (as `reconcile match` takes it), fee, net, allocated and
    unapplied amounts, and the totals per currency."""
    output = _output(as_json, as_csv, excel, xlsx)
    store = app.reader()
    customers = _customers(store)
    chosen = None if customer is None else [c.id for c in _resolve_customers(customers, customer) if c.id]
    # a batch of payments at a time, printed as it comes (as `invoices list`)
    listed = payment_listing(store, customers, customer_ids=chosen)
    totals = Totals(PAYMENT_TOTALS, "payments")
    rows = totals.counting(r for r in listed if not unmatched or reports.unmatched([r]))
    listing = Listing("payments", "Payments", PAYMENT_EXPORT, PAYMENT_COLUMNS, PAYMENT_AMOUNTS)
    _print_listing(output, listing, {}, rows, totals, _payment_cells, "")


# customers list / show ------------------------------------------------------------------

CUSTOMER_COLUMNS = ["id", "name", "email", "currency", "balance", "unapplied"]


@click.group("customers")
def customers_group() -> None:
    """Customers, with what they owe in every currency."""


def _customer_lines(row: Row) -> list[list[Any]]:
    """One line per currency the customer owes or holds cash in (one line when none)."""
    email = ", ".join(row["emails"])
    currencies = sorted(set(row["balance"]) | set(row["unapplied"]))
    if not currencies:
        return [[row["id"], row["name"], email, None, None, None]]
    return [
        [row["id"], row["name"], email, c, row["balance"].get(c, "0"), row["unapplied"].get(c, "0")] for c in currencies
    ]


@customers_group.command("list")
@output_options(with_xlsx=False)
@pass_app
def customers_list(app: AppContext, as_json: bool, as_csv: bool, excel: bool) -> None:
    """Every customer: name, e-mail, open balance and unapplied cash per currency (today)."""
    output, day = _output(as_json, as_csv, excel), date.today()
    store = app.reader()
    customers = _customers(store)
    sums = customer_balances(store, customers, day)  # a batch at a time: only the sums are held
    rows = [
        {
            "id": customer.id,
            "name": customer.name,
            "emails": customer.emails,
            "balance": sums.balance(customer.id),
            "unapplied": sums.unapplied(customer.id),
        }
        for customer in sorted(customers.values(), key=lambda c: (c.name.lower(), c.id or ""))
    ]
    lines = [line for row in rows for line in _customer_lines(row)]
    if output.kind == "json":
        echo_json({"as_of": day.isoformat(), "customers": rows})
    elif output.kind == "csv":
        _echo_csv(output, CUSTOMER_COLUMNS, lines)
    else:
        echo_table(CUSTOMER_COLUMNS[1:], [line[1:] for line in lines], right=("balance", "unapplied"))
        click.echo(f"{len(rows)} customer(s)")


@customers_group.command("show")
@click.argument("customer")
@click.option("--as-of", "as_of", metavar="DATE", help="Balances and days past due on this date (default today).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see docs/finance.md).")
@pass_app
def customers_show(app: AppContext, customer: str, as_of: str | None, as_json: bool) -> None:
    """One customer: refs in each system, open invoices, payments, unapplied credit."""
    day = parse_day(as_of, "--as-of")
    store = app.reader()
    customers = _customers(store)
    found = _resolve_customers(customers, customer)
    if len(found) > 1:
        names = "; ".join(f"{c.name} ({c.id})" for c in found[:10])
        raise UsageError(f"{customer!r} names {len(found)} customers: {names}")
    chosen = found[0]
    invoices = without_withdrawn(store, store.list_receivables(customer_id=chosen.id))
    invoice_rows = reports.invoice_rows(invoices, customers, _invoice_allocations(store, invoices), day)
    payment_rows = _payment_rows(store, store.list_payments(customer_id=chosen.id), customers)
    story = reports.customer_story(chosen, invoice_rows, payment_rows)
    if as_json:
        echo_json({"as_of": day.isoformat(), "customer": story})
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
    echo_table(["system", "type", "id"], [[r["system"], r["type"], r["id"]] for r in story["refs"]])
    click.echo("")
    owed = ", ".join(f"{v} {c}" for c, v in story["balance"].items()) or "nothing"
    click.echo(f"Open invoices as of {day.isoformat()} (owed: {owed}):")
    if story["open_invoices"]:
        echo_table(
            INVOICE_COLUMNS,
            [_invoice_cells(r) for r in story["open_invoices"]],
            right=("total", "balance", "days_past_due"),
        )
    click.echo("")
    click.echo("Payments:")
    if story["payments"]:
        echo_table(PAYMENT_COLUMNS, [_payment_cells(r) for r in story["payments"]], right=PAYMENT_AMOUNTS)
    click.echo("")
    credit = ", ".join(f"{v} {c}" for c, v in story["unapplied"].items()) or "none"
    click.echo(f"Unapplied credit: {credit}")


# aging ----------------------------------------------------------------------------------

AGING_AMOUNTS = (*AGING_BUCKETS, "total", "in_collections")


@click.command("aging")
@click.option("--as-at", "as_at", metavar="DATE", help="The book as it stood at the end of this day (for the close).")
@click.option("--as-of", "as_of", metavar="DATE", help="Age today's balances on this date (YYYY-MM-DD).")
@click.option(
    "--sort",
    type=click.Choice(SORT_KEYS),
    default="name",
    show_default=True,
    help="Customers by name, or worst first per currency: by total owed or by oldest bucket.",
)
@click.option("--top", type=int, metavar="N", help="Only the first N customers of each currency (totals stay whole).")
@output_options()
@pass_app
def aging_command(
    app: AppContext,
    as_at: str | None,
    as_of: str | None,
    sort: SortKey,
    top: int | None,
    as_json: bool,
    as_csv: bool,
    excel: bool,
    xlsx: str | None,
) -> None:
    """Open balances per customer in current/1-30/31-60/61-90/90+, unapplied cash and credit,
    net, per currency, and DSO. `--company all` shows every company's report in turn, never
    summed across companies."""
    if as_at is not None and as_of is not None:
        raise UsageError("give --as-at (the book as it stood) or --as-of (today's balances re-aged), not both")
    if top is not None and top < 1:
        raise UsageError(f"--top: {top} is not 1 or more")
    output = _output(as_json, as_csv, excel, xlsx)
    at_day = parse_day(as_at, "--as-at") if as_at is not None else None
    of_day = parse_day(as_of, "--as-of") if as_of is not None else None
    side_by_side = _side_by_side(app)
    reports_by_company = {
        company: _aging_report(app.reader(company), at_day, of_day, sort, top) for company in app.companies()
    }
    if not side_by_side:
        (report,) = reports_by_company.values()
        if output.kind == "json":
            echo_json_with_rows(report, "customers")
        elif output.kind == "csv":
            _echo_csv(output, aging_headers(report), aging_rows(report))
        elif output.kind == "xlsx":
            _save_xlsx(output, aging_sheets(report))
        else:
            _print_aging(report)
        return
    if output.kind == "json":
        echo_json({"companies": [{"company": c, **r} for c, r in reports_by_company.items()]})
    elif output.kind == "csv":
        (first, *_) = reports_by_company.values()
        _echo_csv(
            output,
            ["company", *aging_headers(first)],
            [[c, *row] for c, r in reports_by_company.items() for row in aging_rows(r)],
        )
    elif output.kind == "xlsx":
        _save_xlsx(output, [s for c, r in reports_by_company.items() for s in aging_sheets(r, title=f"{c} Aging")])
    else:
        for number, (company, report) in enumerate(reports_by_company.items()):
            print_company_heading(app.root_config(), company, first=number == 0)
            _print_aging(report)


def _aging_report(store: Store, as_at: date | None, as_of: date | None, sort: SortKey, top: int | None) -> Row:
    """`as_at`: the book as it stood at the end of that day; else today's book, aged on
    `as_of` when given (today's balances, unapplied cash and credit, in that day's buckets).
    Read a batch of invoices and of payments at a time: only the sums are held."""
    customers = customers_by_id(store, with_refs=False)  # the report names them, nothing more
    if as_of is None:
        return aging_streamed(store, customers, as_at or date.today(), sort=sort, top=top)
    now = aging_streamed(store, customers, date.today())
    aged = aged_streamed(store, customers, as_of)
    rows = _with_cash(now["customers"], aged["customers"], lambda r: (r["customer"]["id"], r["currency"]))
    totals = _with_cash(now["totals"], aged["totals"], lambda r: r["currency"])
    return {
        **aged,
        "sort": sort,
        "top": top,
        "customer_rows": len(rows),
        "customers": top_rows(sort_rows(rows, sort), top),
        "totals": sorted(totals, key=lambda r: r["currency"]),
    }


def _with_cash(now: Sequence[Row], aged: Sequence[Row], key: Callable[[Row], Any]) -> list[Row]:
    """The `aged` rows with today's unapplied cash and credit of the same customer and
    currency (from `now`), and the net; a row of `now` alone keeps its cash, buckets zero."""
    today = {key(r): r for r in now}
    then = {key(r): r for r in aged}
    out = []
    for k in [*then, *(k for k in today if k not in then)]:
        cash = today.get(k)
        row = dict(then.get(k) or cash or {})
        currency = row["currency"]
        if k not in then:
            row.update({f: reports.amount(Money.zero(currency)) for f in AGING_AMOUNTS}, invoices=0)
        unapplied = Money.of(cash["unapplied"], currency) if cash else Money.zero(currency)
        credit = Money.of(cash["credit"], currency) if cash else Money.zero(currency)
        row["unapplied"], row["credit"] = reports.amount(unapplied), reports.amount(credit)
        row["net"] = reports.amount(Money.of(row["total"], currency) - unapplied - credit)
        out.append(row)
    return out


def _print_aging(report: Row) -> None:
    headers = aging_headers(report)
    shown = [i for i, h in enumerate(headers) if h not in ("row", "customer_id", "invoices")]
    echo_table(
        [headers[i] for i in shown],
        [[row[i] for i in shown] for row in aging_rows(report)],
        right=(*AGING_AMOUNTS, "unapplied", "credit", "net"),
    )
    if report.get("top") is not None:
        click.echo(
            f"the worst {report['top']} of each currency by {report['sort']} "
            f"({report['customer_rows']} customer row(s) in all); the totals are the whole book's"
        )
    click.echo("")
    if report.get("as_at"):
        click.echo(f"balances as they stood at the end of {report['as_at']}")
    click.echo(
        f"DSO as of {report['as_of']} (receivables / credit sales of the last {reports.DSO_WINDOW_DAYS} days x "
        f"{reports.DSO_WINDOW_DAYS}):"
    )
    echo_table(
        ["currency", "receivables", "credit_sales", "dso_days"],
        [[d["currency"], d["receivables"], d["credit_sales"], d["days"] or "n/a"] for d in report["dso"]],
        right=("receivables", "credit_sales", "dso_days"),
    )


# drift ----------------------------------------------------------------------------------


@click.command("drift")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see docs/finance.md).")
@pass_app
def drift_command(app: AppContext, as_json: bool) -> int:
    """What each system holds against what it should hold after the writes that are done, the
    open gaps, and refs that point at nothing. Exits 1 when there is drift (in any company,
    with `--company all`), 0 when none."""
    if not _side_by_side(app):
        (company,) = app.companies()
        with RowSpool() as spool:  # the lines wait on disk, not in memory: a large book has a hundred thousand
            report = drift_of(app.config(company), app.reader(company), date.today(), into=spool)
            if as_json:  # a line a record, without the whole document in one string
                tail = {name: value for name, value in report.items() if name not in ("drift", "records")}
                echo_json_rows({"drift": report["drift"]}, "records", report["records"], lambda: tail)
            else:
                _print_drift(report)
                _print_unlinked_note(app, company)
        return EXIT_PROBLEMS if report["drift"] else 0
    reports_by_company = {
        company: drift_of(app.config(company), app.reader(company), date.today()) for company in app.companies()
    }
    drift = any(report["drift"] for report in reports_by_company.values())
    if as_json:
        echo_json({"companies": [{"company": c, **r} for c, r in reports_by_company.items()]})
    else:
        for number, (company, report) in enumerate(reports_by_company.items()):
            print_company_heading(app.root_config(), company, first=number == 0)
            _print_drift(report)
            _print_unlinked_note(app, company)
    return EXIT_PROBLEMS if drift else 0


def _print_unlinked_note(app: AppContext, company: str) -> None:
    """CRM deals linked to no invoice are no drift (nothing is owed on them), but finance
    should know they are there."""
    count = len(unlinked_deals(app.config(company), app.reader(company)))
    if count:
        click.echo(f"note: {count} CRM deal(s) linked to no invoice are left out (`connector invoices unlinked`)")


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


COMMANDS = [invoices_group, payments_group, customers_group, aging_command, drift_command]
