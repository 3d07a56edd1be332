"""The workbench's routes, for one company's book or several (`connector serve --ui`).

    GET  /                            aging chart and DSO, open proposals, parked actions, drift
    GET  /customers/{id}              open invoices, payments, each record's story
    GET  /workbench.css               the stylesheet (the page loads nothing else)
    POST /proposals/{id}/accept       candidate=N          as `connector reconcile accept`
    POST /proposals/{id}/reject                            as `connector reconcile reject`
    POST /proposals/{id}/match        invoice=NUMBER [amount=A]   as `connector reconcile match`
    POST /actions/{id}/retry                               as `connector actions retry`
    POST /actions/{id}/cancel         [keep_decision=1]    as `connector actions cancel`

A decision answers 303 to the page with what it did; one refused by the decision code
(already decided, more than the payment has left, ...) answers 400 with its one line.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping
from datetime import date
from html import escape
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from connector.errors import ConnectorError, UsageError
from connector.redaction import redact
from connector.reports.statement_documents import statement_html, write_statement_pdf
from connector.workbench import book as books
from connector.workbench import pages
from connector.workbench.access import ACCESS, MAX_BODY, SESSION, Access, Guard, refusal

logger = logging.getLogger("connector.workbench")

T = TypeVar("T")

STATEMENT_FORMATS = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}


def workbench(books_by_company: Mapping[str, books.Book], access: Access) -> ASGIApp:
    """The guarded app: one company's pages at `/`, or each company's under `/COMPANY/`."""
    if len(books_by_company) == 1:
        (only,) = books_by_company.values()
        return Guard(book_app(only), access)
    routes: list[Any] = [Route("/", _index(sorted(books_by_company)))]
    routes += [Mount(f"/{name}", app=book_app(b)) for name, b in sorted(books_by_company.items())]
    return Guard(Starlette(routes=routes, exception_handlers=_HANDLERS), access)


def book_app(book: books.Book) -> Starlette:
    pages_of = _Pages(book)
    routes = [
        Route("/", pages_of.home),
        Route("/workbench.css", _stylesheet),
        Route("/customers/{customer_id}", pages_of.customer),
        Route("/customers/{customer_id}/statement.{kind}", pages_of.statement),
        Route("/proposals/{proposal_id}/{verb}", pages_of.proposal, methods=["POST"]),
        Route("/actions/{action_id}/{verb}", pages_of.action, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers=_HANDLERS)


def href_for(request: Request) -> pages.Href:
    root = request.scope.get("root_path", "").rstrip("/")
    return lambda path: f"{root}/{path}"


class _Pages:
    def __init__(self, book: books.Book) -> None:
        self.book = book

    async def home(self, request: Request) -> Response:
        href = href_for(request)
        body = await _off_loop(self._home, href, _csrf(request))
        query = request.query_params
        text = pages.page("Workbench", self.book.company, href, body, note=query.get("note"))
        return HTMLResponse(text)

    def _home(self, href: pages.Href, csrf: str) -> str:
        today = date.today()
        names = books.Names.of(self.book.reader())
        return "".join(
            [
                pages.aging_section(books.aging(self.book, today), lambda c: href(f"customers/{c}")),
                pages.proposals_section(books.open_proposals(self.book, names), href, csrf),
                pages.parked_section(books.parked_actions(self.book), href, csrf),
                pages.drift_section(books.drift(self.book, today)),
            ]
        )

    async def customer(self, request: Request) -> Response:
        href = href_for(request)
        customer_id = request.path_params["customer_id"]
        body, name = await _off_loop(self._customer, customer_id)
        return HTMLResponse(pages.page(name, self.book.company, href, body))

    def _customer(self, customer_id: str) -> tuple[str, str]:
        today = date.today()
        try:
            story = books.customer_page(self.book, customer_id, today)
        except UsageError:
            raise HTTPException(404, "no such customer") from None
        names = books.Names.of(self.book.reader())
        stories = {r["id"]: books.record_story(self.book, "invoice", r["id"], names) for r in story["open_invoices"]}
        stories |= {r["id"]: books.record_story(self.book, "payment", r["id"], names) for r in story["payments"]}
        links = " ".join(
            f'<a href="{escape(customer_id)}/statement.{kind}" download>statement ({kind.upper()})</a>'
            for kind in STATEMENT_FORMATS
        )
        return pages.customer_body(story, stories, today.isoformat(), links), story["name"]

    async def statement(self, request: Request) -> Response:
        """The customer's statement at today's end, as `connector statement --html|--pdf`."""
        customer_id, kind = request.path_params["customer_id"], request.path_params["kind"]
        if kind not in STATEMENT_FORMATS:
            raise HTTPException(404, "a statement is .html or .pdf")
        document = await _off_loop(self._statement, customer_id, kind)
        disposition = f'attachment; filename="statement-{date.today().isoformat()}.{kind}"'
        return Response(document, media_type=STATEMENT_FORMATS[kind], headers={"Content-Disposition": disposition})

    def _statement(self, customer_id: str, kind: str) -> bytes:
        try:
            data = books.customer_statement(self.book, customer_id, date.today())
        except UsageError:
            raise HTTPException(404, "no such customer") from None
        if kind == "html":
            return statement_html(data).encode("utf-8")
        buffer = io.BytesIO()
        write_statement_pdf(data, buffer)
        return buffer.getvalue()

    async def proposal(self, request: Request) -> Response:
        form = await decision_form(request)
        proposal_id, verb = request.path_params["proposal_id"], request.path_params["verb"]
        book = self.book
        if verb == "accept":
            candidate = _positive(form.get("candidate", "1"), "candidate")
            names = await _off_loop(books.Names.of, book.reader())
            lines = await _decide(books.accept, book, proposal_id, candidate, names)
        elif verb == "reject":
            lines = await _decide(books.reject, book, proposal_id)
        elif verb == "match":
            payment_id = await _decide(_proposal_payment, book, proposal_id)
            invoice = form.get("invoice", "").strip()
            if not invoice:
                raise HTTPException(400, "give the invoice number to match the payment to")
            amount = form.get("amount", "").strip() or None
            lines = await _decide(books.match_by_hand, book, payment_id, invoice, amount)
        else:
            raise HTTPException(404, "no such decision")
        return _done(request, lines, "proposals")

    async def action(self, request: Request) -> Response:
        form = await decision_form(request)
        action_id, verb = _positive(request.path_params["action_id"], "action"), request.path_params["verb"]
        if verb == "retry":
            lines = await _decide(books.retry_action, self.book, action_id)
        elif verb == "cancel":
            lines = await _decide(books.cancel_action, self.book, action_id, form.get("keep_decision") == "1")
        else:
            raise HTTPException(404, "no such decision")
        return _done(request, lines, "parked")


def _proposal_payment(book: books.Book, proposal_id: str) -> str:
    found = [p for p in books.open_proposals(book, books.Names()) if p["id"] == proposal_id]
    if not found:
        raise UsageError("that proposal is no longer open (decided meanwhile?): reload the page")
    return str(found[0]["payment_id"])


async def decision_form(request: Request) -> dict[str, str]:
    """A decision's form fields, after the CSRF check: the session's token in `csrf`."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise HTTPException(415, "send the form as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"a request body is at most {MAX_BODY} bytes here")
    try:
        fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body)))
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "the form could not be read") from None
    nonce = request.scope.get(SESSION)
    given = fields.pop("csrf", "")
    if not isinstance(nonce, str) or not _access_of(request).csrf_matches(nonce, given):
        raise HTTPException(403, "the form's CSRF token is missing or wrong: reload the page and try again")
    return fields


def _access_of(request: Request) -> Access:
    access = request.scope.get(ACCESS)
    assert isinstance(access, Access)
    return access


def _csrf(request: Request) -> str:
    nonce = request.scope.get(SESSION)
    return _access_of(request).csrf(nonce) if isinstance(nonce, str) else ""


def _positive(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 2**31:
        raise HTTPException(400, f"{what}: {text[:20]!r} is not a number from 1")
    return int(text)


async def _off_loop(call: Callable[..., T], *args: Any) -> T:
    """The store's work, in a thread: the event loop keeps answering."""
    return await run_in_threadpool(call, *args)


async def _decide(call: Callable[..., T], *args: Any) -> T:
    """A decision through the CLI's code; its refusal (a usage error) is a 400 with its line."""
    try:
        return await _off_loop(call, *args)
    except UsageError as exc:
        raise HTTPException(400, redact(str(exc))) from None
    except ConnectorError as exc:
        raise HTTPException(409, redact(str(exc))) from None


def _done(request: Request, lines: list[str], section: str) -> Response:
    note = "; ".join(lines)
    return RedirectResponse(f"{href_for(request)('')}?{urlencode({'note': note})}#{section}", 303)


async def _stylesheet(request: Request) -> Response:
    return Response(pages.STYLESHEET, media_type="text/css")


def _index(names: list[str]) -> Callable[[Request], Any]:
    async def index(request: Request) -> Response:
        href = href_for(request)
        items = "".join(f'<li><a href="{escape(href(n + "/"))}">{escape(n)}</a></li>' for n in names)
        return HTMLResponse(f'<!doctype html><html lang="en"><body><h1>Companies</h1><ul>{items}</ul></body></html>')

    return index


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return refusal(exc.status_code, f"{exc.status_code}: {escape(str(exc.detail))}")


async def _internal_error(request: Request, exc: Exception) -> Response:
    logger.error("workbench: %s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return refusal(500, "500: internal error (the connector's log has the details)")


_HANDLERS: dict[Any, Any] = {HTTPException: _http_error, Exception: _internal_error}
