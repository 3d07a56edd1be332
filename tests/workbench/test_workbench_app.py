"""The workbench's pages through Starlette's TestClient: the token, CSRF, and that what the
page shows and decides is what the CLI shows and decides."""

from __future__ import annotations

import re
from html import escape, unescape

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from workbench.conftest import TOKEN, USER, TestClient

from connector.config import load_config
from connector.state.store import open_store
from connector.workbench import Access, Book, workbench
from connector.workbench.chart import aging_svg, worst_first

pytestmark = pytest.mark.slow


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "the page has no form"
    return found.group(1)


def first_proposal(html: str) -> str:
    found = re.search(r'data-proposal="([^"]+)"', html)
    assert found, "the page shows no open proposal"
    return found.group(1)


def totals_in_page(html: str) -> dict[str, dict[str, str]]:
    """{currency: {bucket or "total": amount}} from the page's aging totals tables."""
    out = {}
    for currency, table in re.findall(r'<table class="aging-totals" data-currency="([^"]+)">(.*?)</table>', html, re.S):
        out[currency] = dict(re.findall(r'data-bucket="([^"]+)">([^<]*)</td>', table))
    return out


def test_without_the_token_everything_answers_401(book_copy, client_on):
    client = client_on(book_copy("book"), signed_in=False)
    for path in ("/", "/workbench.css", "/customers/anyone", "/no/such/page"):
        answer = client.get(path)
        assert answer.status_code == 401, path
        assert "token" in answer.text and TOKEN not in answer.text
    assert client.get("/?token=wrong-token").status_code == 401
    assert client.post("/proposals/pr-1/accept", data={"candidate": "1"}).status_code == 401
    client.cookies.set("connector_ui", "0123.forged")
    assert client.get("/").status_code == 401


def test_the_token_becomes_a_strict_httponly_cookie_and_leaves_the_url(book_copy, client_on):
    client = client_on(book_copy("book"), signed_in=False)
    answer = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and TOKEN.lower() not in cookie
    page = client.get("/")
    assert page.status_code == 200 and TOKEN not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text and "http://" not in page.text.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_a_change_without_the_csrf_token_or_from_another_origin_changes_nothing(book_copy, client_on, json_on):
    copy = book_copy("book")
    client = client_on(copy)
    before = json_on(copy, "reconcile")
    page = client.get("/").text
    proposal = first_proposal(page)
    refused = [
        client.post(f"/proposals/{proposal}/accept", data={"candidate": "1"}),
        client.post(f"/proposals/{proposal}/accept", data={"candidate": "1", "csrf": "0" * 64}),
        client.post(
            f"/proposals/{proposal}/accept",
            data={"candidate": "1", "csrf": csrf_of(page)},
            headers={"origin": "http://evil.example"},
        ),
        client.post(
            f"/proposals/{proposal}/accept",
            data={"candidate": "1", "csrf": csrf_of(page)},
            headers={"host": "evil.example"},
        ),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403, 400]
    assert json_on(copy, "reconcile") == before


def test_accepting_in_the_page_changes_reconcile_as_reconcile_accept_does(book_copy, client_on, cli_on, json_on):
    by_page, by_cli = book_copy("page"), book_copy("cli")
    client = client_on(by_page)
    page = client.get("/").text
    proposal = first_proposal(page)
    before = json_on(by_page, "reconcile")
    answer = client.post(f"/proposals/{proposal}/accept", data={"candidate": "1", "csrf": csrf_of(page)})
    assert answer.status_code == 200 and "applied" in answer.text  # the page again, saying what it did
    accepted = cli_on(by_cli, "reconcile", "accept", proposal, "--user", USER)
    assert accepted.exit_code == 0, accepted.stderr
    after_page, after_cli = json_on(by_page, "reconcile"), json_on(by_cli, "reconcile")
    assert after_page == after_cli
    assert after_page != before and proposal not in {p["id"] for p in after_page["proposals"]}
    assert proposal not in client.get("/").text


def test_rejecting_in_the_page_changes_reconcile_as_reconcile_reject_does(book_copy, client_on, cli_on, json_on):
    by_page, by_cli = book_copy("page"), book_copy("cli")
    client = client_on(by_page)
    page = client.get("/").text
    proposal = first_proposal(page)
    assert client.post(f"/proposals/{proposal}/reject", data={"csrf": csrf_of(page)}).status_code == 200
    assert cli_on(by_cli, "reconcile", "reject", proposal, "--user", USER).exit_code == 0
    assert json_on(by_page, "reconcile") == json_on(by_cli, "reconcile")


def test_the_aging_totals_and_dso_in_the_page_are_those_of_aging_json(book_copy, client_on, json_on):
    copy = book_copy("book")
    page = client_on(copy).get("/").text
    report = json_on(copy, "aging")
    assert report["totals"], "the demo book owes something"
    assert totals_in_page(page) == {
        t["currency"]: {**{b: t[b] for b in report["buckets"]}, "total": t["total"]} for t in report["totals"]
    }
    for dso in report["dso"]:
        row = re.search(rf'<tr data-currency="{dso["currency"]}">.*?<td class="n dso">([^<]*)</td>', page, re.S)
        assert row and row.group(1) == (dso["days"] or "n/a")
    for total in report["totals"]:
        assert f'<svg class="aging-chart" data-currency="{total["currency"]}"' in page


def test_the_page_names_customers_and_invoice_numbers_not_our_ids(book_copy, client_on, json_on):
    copy = book_copy("book")
    page = client_on(copy).get("/").text
    reconcile = json_on(copy, "reconcile")
    proposal = reconcile["proposals"][0]
    shown = unescape(re.sub(r"<[^>]+>", " ", page))  # the text a person reads, without markup
    assert proposal["candidates"][0]["invoice"]["number"] in shown
    assert proposal["payment"]["id"] not in shown and proposal["candidates"][0]["invoice"]["id"] not in shown


def test_the_customer_page_shows_open_items_payments_and_their_story(book_copy, client_on, json_on):
    copy = book_copy("book")
    client = client_on(copy)
    worst = worst_first(json_on(copy, "aging")["customers"], json_on(copy, "aging")["totals"][0]["currency"])[0]
    page = client.get(f"/customers/{worst['customer']['id']}")
    assert page.status_code == 200
    shown = unescape(page.text)
    assert worst["customer"]["name"] in shown and "Open invoices" in shown and "explain" in shown
    assert client.get("/customers/no-such-customer").status_code == 404


def test_the_customer_page_downloads_the_customers_statement(book_copy, client_on, json_on):
    """The statement links on the customer page give `connector statement --html|--pdf`."""
    copy = book_copy("book")
    client = client_on(copy)
    worst = worst_first(json_on(copy, "aging")["customers"], json_on(copy, "aging")["totals"][0]["currency"])[0]
    customer = worst["customer"]
    page = client.get(f"/customers/{customer['id']}")
    assert f'href="{customer["id"]}/statement.html"' in page.text and "statement.pdf" in page.text
    html = client.get(f"/customers/{customer['id']}/statement.html")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "attachment" in html.headers["content-disposition"]
    assert escape(customer["name"]) in html.text and worst["currency"] in html.text
    pdf = client.get(f"/customers/{customer['id']}/statement.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert client.get("/customers/no-such-customer/statement.pdf").status_code == 404
    assert client.get(f"/customers/{customer['id']}/statement.exe").status_code == 404


def test_bad_requests_get_a_clear_4xx_and_no_traceback(book_copy, client_on):
    client = client_on(book_copy("book"))
    page = client.get("/").text
    csrf, proposal = csrf_of(page), first_proposal(page)
    answers = {
        "candidate abc": client.post(f"/proposals/{proposal}/accept", data={"candidate": "abc", "csrf": csrf}),
        "candidate 99": client.post(f"/proposals/{proposal}/accept", data={"candidate": "99", "csrf": csrf}),
        "no such proposal": client.post("/proposals/pr-nope/reject", data={"csrf": csrf}),
        "amount 1e400": client.post(
            f"/proposals/{proposal}/match", data={"invoice": "INV-0001", "amount": "1e400", "csrf": csrf}
        ),
        "no invoice": client.post(f"/proposals/{proposal}/match", data={"invoice": "", "csrf": csrf}),
        "action abc": client.post("/actions/abc/retry", data={"csrf": csrf}),
        "no such action": client.post("/actions/999999/cancel", data={"csrf": csrf}),
        "unknown verb": client.post(f"/proposals/{proposal}/approve", data={"csrf": csrf}),
        "json body": client.post(f"/proposals/{proposal}/reject", json={"csrf": csrf}),
        "GET a decision": client.get(f"/proposals/{proposal}/reject"),
    }
    statuses = {what: answer.status_code for what, answer in answers.items()}
    assert statuses == {
        "candidate abc": 400,
        "candidate 99": 400,
        "no such proposal": 400,
        "amount 1e400": 400,
        "no invoice": 400,
        "action abc": 400,
        "no such action": 400,
        "unknown verb": 404,
        "json body": 415,
        "GET a decision": 405,
    }
    for answer in answers.values():
        assert "Traceback" not in answer.text and answer.text.count("<p>") == 1
    assert "candidates 1 to" in answers["candidate 99"].text


def test_the_chart_puts_the_worst_customer_first_and_escapes_names():
    def row(name, total, old):
        return {
            "customer": {"id": name, "name": name},
            "currency": "EUR",
            "current": "0.00",
            "1-30": "0.00",
            "31-60": "0.00",
            "61-90": "0.00",
            "90+": old,
            "total": total,
        }

    report = {
        "buckets": ["current", "1-30", "31-60", "61-90", "90+"],
        "customers": [row("Small", "10.00", "0.00"), row("<b>Big</b>", "900.00", "900.00")],
    }
    svg = aging_svg(report, "EUR", lambda c: f"/customers/{c}")
    assert svg.index("&lt;b&gt;Big&lt;/b&gt;") < svg.index("Small") and "<b>" not in svg
    assert [r["customer"]["name"] for r in worst_first(report["customers"], "EUR")] == ["<b>Big</b>", "Small"]


def test_mounted_under_ui_the_cookie_and_links_stay_under_the_mount(book_copy):
    copy = book_copy("book")
    config = load_config(str(copy / "connector.toml"))
    store = open_store(config.database_url, sealer=config.token_sealer())
    try:
        company = config.company_names()[0]
        book = Book(company, config.for_company(company), store.for_company(company), USER)
        app = Starlette(routes=[Mount("/ui", app=workbench({company: book}, Access(TOKEN)))])
        client = TestClient(app)
        assert client.get("/ui/").status_code == 401
        answer = client.get(f"/ui/?token={TOKEN}", follow_redirects=False)
        assert answer.headers["location"] == "/ui/" and "path=/ui" in answer.headers["set-cookie"].lower()
        page = client.get("/ui/").text
        assert 'href="/ui/workbench.css"' in page and 'action="/ui/proposals/' in page
    finally:
        store.close()


def test_serve_ui_refuses_to_start_without_a_token_and_ui_stays_on_loopback(book_copy, cli_on, monkeypatch):
    copy = book_copy("book")
    monkeypatch.delenv("CONNECTOR_UI_TOKEN", raising=False)
    refused = cli_on(copy, "serve", "--ui", "--listen", "127.0.0.1:0", "--max-ticks", "0")
    assert refused.exit_code == 2 and "CONNECTOR_UI_TOKEN" in refused.stderr
    remote = cli_on(copy, "ui", "--listen", "0.0.0.0:0")
    assert remote.exit_code == 2 and "--allow-remote" in remote.stderr
    monkeypatch.setenv("CONNECTOR_UI_TOKEN", "short")
    assert cli_on(copy, "ui").exit_code == 2
