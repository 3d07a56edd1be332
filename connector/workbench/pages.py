"""The workbench's HTML: plain server-side pages, no script, every resource the connector's.

Every value that came from a book (names, remittance text, reasons) is escaped; a change is a
form that POSTs with the session's CSRF token. `href(path)` is a path under the workbench's
mount point (`/` for `connector ui`, `/ui/COMPANY/` under `connector serve --ui`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from connector.workbench.chart import BUCKET_COLOURS, aging_svg

Row = dict[str, Any]
Href = Callable[[str], str]

STYLESHEET = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 10px 24px; display: flex; gap: 24px; align-items: baseline; }
header h1 { font-size: 18px; margin: 0; }
header a { color: #cfe0ff; }
main { padding: 12px 24px 40px; max-width: 1100px; }
section { background: #fff; border: 1px solid #dde1e8; border-radius: 6px; padding: 8px 18px 14px; margin: 14px 0; }
h2 { font-size: 16px; } h3 { font-size: 14px; margin: 12px 0 4px; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eceef2; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.note { background: #e8f4ec; border: 1px solid #9fd0b0; padding: 6px 12px; border-radius: 4px; }
.error { background: #fdecea; border: 1px solid #f1a9a0; padding: 6px 12px; border-radius: 4px; }
.muted { color: #667085; }
form.inline { display: inline; margin: 0 4px 0 0; }
button { font: inherit; padding: 2px 10px; border-radius: 4px; border: 1px solid #8a94a6; background: #fff; }
button { cursor: pointer; }
button.primary { background: #2456c7; color: #fff; border-color: #2456c7; }
article.proposal { border-top: 1px solid #eceef2; padding: 6px 0; }
article.proposal ol { margin: 4px 0; }
svg.aging-chart text { font: 12px system-ui, sans-serif; fill: #1d2330; }
svg.aging-chart a text { fill: #2456c7; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
details { margin: 2px 0 6px; } summary { cursor: pointer; color: #2456c7; }
"""


def swatch(bucket: str) -> str:
    """The CSS class of a bucket's colour (the page allows no inline style)."""
    return "b-" + bucket.replace("+", "plus")


STYLESHEET += "".join(f".{swatch(b)} {{ background: {colour}; }}\n" for b, colour in BUCKET_COLOURS.items())


def page(title: str, company: str, href: Href, body: str, *, note: str | None = None, error: str | None = None) -> str:
    home = escape(href(""))
    nav = " · ".join(
        f'<a href="{home}#{anchor}">{label}</a>'
        for anchor, label in (
            ("aging", "Aging"),
            ("proposals", "Proposals"),
            ("parked", "Parked actions"),
            ("drift", "Drift"),
        )
    )
    flash = ""
    if note:
        flash += f'<p class="note" role="status">{escape(note)}</p>'
    if error:
        flash += f'<p class="error" role="alert">{escape(error)}</p>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} · {escape(company)}</title>"
        f'<link rel="stylesheet" href="{escape(href("workbench.css"))}"></head><body>'
        f"<header><h1>Workbench · {escape(company)}</h1><nav>{nav}</nav></header>"
        f"<main>{flash}{body}</main></body></html>"
    )


def _form(href: Href, action: str, csrf: str, label: str, fields: dict[str, str] | None = None, **kw: str) -> str:
    hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in (fields or {}).items())
    css = f' class="{kw["button_class"]}"' if "button_class" in kw else ""
    return (
        f'<form class="inline" method="post" action="{escape(href(action))}">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">{hidden}'
        f"<button{css}>{escape(label)}</button></form>"
    )


# Home -------------------------------------------------------------------------------------


def aging_section(report: Row, customer_href: Callable[[str], str]) -> str:
    buckets = list(report["buckets"])
    parts = [f'<section id="aging"><h2>Aging as of {escape(report["as_of"])}</h2>']
    if not report["totals"]:
        parts.append("<p>Nothing is owed.</p>")
    for total in report["totals"]:
        currency = total["currency"]
        parts.append(f"<h3>{escape(currency)}</h3>")
        parts.append(aging_svg(report, currency, customer_href))
        head = "".join(f'<th class="n"><span class="swatch {swatch(b)}"></span>{escape(b)}</th>' for b in buckets)
        cells = "".join(f'<td class="n" data-bucket="{escape(b)}">{escape(total[b])}</td>' for b in buckets)
        parts.append(
            f'<table class="aging-totals" data-currency="{escape(currency)}"><tr><th>total</th>{head}'
            '<th class="n">owed</th><th class="n">in collections</th><th class="n">invoices</th></tr>'
            f'<tr><td>{escape(currency)}</td>{cells}<td class="n" data-bucket="total">{escape(total["total"])}</td>'
            f'<td class="n">{escape(total["in_collections"])}</td><td class="n">{total["invoices"]}</td></tr></table>'
        )
    window = report["dso"][0]["window_days"] if report["dso"] else ""
    dso_rows = "".join(
        f'<tr data-currency="{escape(d["currency"])}"><td>{escape(d["currency"])}</td>'
        f'<td class="n">{escape(d["receivables"])}</td><td class="n">{escape(d["credit_sales"])}</td>'
        f'<td class="n dso">{escape(d["days"] or "n/a")}</td></tr>'
        for d in report["dso"]
    )
    parts.append(
        f'<h3>DSO</h3><p class="muted">receivables / credit sales of the last {window} days × {window}</p>'
        '<table class="dso"><tr><th>currency</th><th class="n">receivables</th><th class="n">credit sales</th>'
        f'<th class="n">DSO (days)</th></tr>{dso_rows}</table></section>'
    )
    return "".join(parts)


def proposals_section(proposals: Sequence[Row], href: Href, csrf: str, limit: int = 100) -> str:
    parts = [f'<section id="proposals"><h2>Open proposals ({len(proposals)})</h2>']
    if not proposals:
        parts.append("<p>None: every payment is applied or waits for nothing.</p>")
    for proposal in proposals[:limit]:
        pid = proposal["id"]
        received = f" on {escape(proposal['received'])}" if proposal["received"] else ""
        remittance = (
            f"; remittance “{escape(proposal['remittance'])}”" if proposal["remittance"] else "; no remittance text"
        )
        items = []
        for c in proposal["candidates"]:
            invoices = " + ".join(
                f"<strong>{escape(i['number'])}</strong> of {escape(i['customer'])} ({escape(i['amount'])})"
                for i in c["invoices"]
            )
            accept = _form(
                href,
                f"proposals/{pid}/accept",
                csrf,
                "Accept" if c["rank"] == 1 else f"Accept {c['rank']}",
                {"candidate": str(c["rank"])},
                button_class="primary",
            )
            items.append(
                f"<li>{invoices}: {escape(c['amount'])} {escape(proposal['currency'])}, {escape(c['rule'])} "
                f'(confidence {escape(c["confidence"])}) <span class="muted">{escape(c["reason"])}</span> {accept}</li>'
            )
        note = f'<p class="note">{escape(proposal["note"])}</p>' if proposal.get("note") else ""
        match = (
            f'<form class="inline" method="post" action="{escape(href(f"proposals/{pid}/match"))}">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            '<input name="invoice" placeholder="invoice number" required size="14" aria-label="invoice number">'
            '<input name="amount" placeholder="amount (optional)" size="12" aria-label="amount">'
            "<button>Match</button></form>"
        )
        parts.append(
            f'<article class="proposal" data-proposal="{escape(pid)}">'
            f"<h3>{escape(proposal['payer'])} paid {escape(proposal['amount'] or '?')} {escape(proposal['currency'])}"
            f"{received}</h3><p>{escape(proposal['unapplied'])} {escape(proposal['currency'])} to apply{remittance}</p>"
            f"{note}<ol>{''.join(items)}</ol>{_form(href, f'proposals/{pid}/reject', csrf, 'Reject')} {match}</article>"
        )
    if len(proposals) > limit:
        parts.append(
            f"<p>{len(proposals) - limit} more: decide these first, or use <code>connector reconcile</code>.</p>"
        )
    parts.append("</section>")
    return "".join(parts)


def parked_section(actions: Sequence[Row], href: Href, csrf: str) -> str:
    parts = [f'<section id="parked"><h2>Parked actions ({len(actions)})</h2>']
    if not actions:
        parts.append("<p>None: no write is parked after failing.</p>")
    else:
        rows = "".join(_parked_row(a, href, csrf) for a in actions)
        parts.append(f"<table><tr><th>action</th><th>system</th><th>kind</th><th>what</th><th></th></tr>{rows}</table>")
    parts.append("</section>")
    return "".join(parts)


def _parked_row(action: Row, href: Href, csrf: str) -> str:
    number = action["id"]
    buttons = (
        _form(href, f"actions/{number}/retry", csrf, "Retry", button_class="primary")
        + _form(href, f"actions/{number}/cancel", csrf, "Cancel")
        + _form(href, f"actions/{number}/cancel", csrf, "Cancel, keep decision", {"keep_decision": "1"})
    )
    return (
        f'<tr data-action="{number}"><td>#{number}</td><td>{escape(action["connection"])}</td>'
        f'<td>{escape(action["kind"])}</td><td>{escape(action["summary"])}<br><span class="muted">'
        f"attempt {action['attempts']}: {escape(action['last_error'])}</span></td><td>{buttons}</td></tr>"
    )


def drift_section(report: Row) -> str:
    parts = [f'<section id="drift"><h2>Drift ({len(report["records"])})</h2>']
    if not report["drift"]:
        parts.append("<p>No drift: every system holds what it should after the writes done, and no gap is open.</p>")
    items = []
    for line in report["records"]:
        what = f"{line['kind']} {line['number'] or line['remote_id'] or ''}".strip()
        where = " ".join(str(p) for p in (line["system"], line["type"]) if p)
        by = f" by {line['amount']} {line['currency']}" if line["amount"] is not None else ""
        since = f" since {line['since']}" if line["since"] else ""
        items.append(
            f"<li><strong>{escape(what)}</strong>: {escape(where)} {escape(str(line['field']))} holds "
            f"{escape(str(line['holds']))}, should hold {escape(str(line['should_hold']))}{escape(by)}{escape(since)} "
            f'<span class="muted">({escape(str(line["reason"]))}; resolve: {escape(str(line["resolve"]))})</span></li>'
        )
    for ref in report["dangling_refs"]:
        items.append(
            f"<li>{escape(ref['system'])} {escape(ref['type'])} {escape(ref['id'])}: {escape(ref['problem'])}</li>"
        )
    if items:
        parts.append(f"<ul>{''.join(items)}</ul>")
    parts.append("</section>")
    return "".join(parts)


# Customer ---------------------------------------------------------------------------------


def customer_body(story: Row, stories: dict[str, Row], as_of: str, statement: str) -> str:
    balance = ", ".join(f"{v} {c}" for c, v in story["balance"].items()) or "nothing"
    credit = ", ".join(f"{v} {c}" for c, v in story["unapplied"].items()) or "none"
    facts = [f"Owes {escape(balance)} as of {escape(as_of)}; unapplied cash: {escape(credit)}."]
    if story["emails"]:
        facts.append(f"Emails: {escape(', '.join(story['emails']))}.")
    if story["payment_terms_days"] is not None:
        facts.append(f"Terms: {story['payment_terms_days']} days.")
    if story["paused"]:
        facts.append("Reminders paused.")
    invoices = "".join(
        _row(
            r["number"] or "(no number)",
            r["issue_date"],
            r["due_date"],
            _n(f"{r['total']} {r['currency']}"),
            _n(r["balance"]),
            r["status"],
            r["aging_bucket"],
        )
        + f"<td>{story_html(stories.get(r['id'] or ''))}</td></tr>"
        for r in story["open_invoices"]
    )
    payments = "".join(
        _row(
            (r["received_at"] or "")[:10],
            _n(f"{r['amount']} {r['currency']}"),
            r["method"],
            r["remittance"],
            r["status"],
            _n(r["allocated"]),
            _n(r["unapplied"]),
        )
        + f"<td>{story_html(stories.get(r['id'] or ''))}</td></tr>"
        for r in story["payments"]
    )
    return (
        f'<section id="customer"><h2>{escape(story["name"])}</h2><p>{" ".join(facts)}</p>'
        f'<p class="statement">{statement}</p></section>'
        f'<section id="open-items"><h2>Open invoices ({len(story["open_invoices"])})</h2>'
        '<table><tr><th>number</th><th>issued</th><th>due</th><th class="n">total</th><th class="n">balance</th>'
        f"<th>status</th><th>bucket</th><th>story</th></tr>{invoices}</table></section>"
        f'<section id="payments"><h2>Payments ({len(story["payments"])})</h2>'
        '<table><tr><th>received</th><th class="n">amount</th><th>method</th><th>remittance</th><th>status</th>'
        f'<th class="n">allocated</th><th class="n">unapplied</th><th>story</th></tr>{payments}</table></section>'
    )


class _n(str):
    """A cell's value that is a number: right-aligned."""


def _row(*values: str | None) -> str:
    """`<tr>` and a cell per value, escaped (the caller closes the row)."""
    cells = "".join(
        f'<td class="n">{escape(v)}</td>' if isinstance(v, _n) else f"<td>{escape(v or '')}</td>" for v in values
    )
    return f"<tr>{cells}"


def story_html(story: Row | None) -> str:
    """The story of one record as `connector explain` tells it, folded."""
    if story is None:
        return ""
    lines = [
        f"in {escape(r['system'])} as {escape(r['type'])} {escape(r['id'])}"
        + (f" (linked by {escape(r['link_rule'])})" if r["link_rule"] else "")
        for r in story["refs"]
    ]
    lines += [
        f"[{escape(a['status'])}] {escape(a['amount'])} {escape(a['currency'])} of the payment from "
        f"{escape(a['payment_payer'])} to {escape(a['invoice_number'])} by {escape(a['rule'])} "
        f"(confidence {escape(a['confidence'])}, confirmed by {escape(a['confirmed_by'] or '-')}): "
        f"{escape(a['reason'])}"
        for a in story["allocations"]
    ]
    lines += [
        f"proposal [{escape(p['status'])}] for {escape(p['amount'])} {escape(p['currency'])}"
        + (f", decided by {escape(p['decided_by'])}" if p["decided_by"] else "")
        for p in story["proposals"]
    ]
    lines += [
        f"{escape((e['at'] or '')[:19])} {escape(e['actor'])} {escape(e['action'])}: {escape(e['decision'] or '')}"
        for e in story["audit"]
    ]
    lines += [
        f"write #{a['id']} {escape(a['kind'])} to {escape(a['connection'])} [{escape(a['state'])}]"
        for a in story["actions"]
    ]
    items = "".join(f"<li>{line}</li>" for line in lines) or "<li>nothing recorded</li>"
    return f"<details><summary>explain</summary><ul>{items}</ul></details>"
