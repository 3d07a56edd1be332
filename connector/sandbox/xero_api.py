"""Xero's face (the Accounting API's paths, served under /xero): paged lists with
`If-Modified-Since`, simple `where` filters and `order`; PUT /Payments that lowers the
invoice's AmountDue and POST /Payments/{id} `{"Status": "DELETED"}` that gives it back;
PUT /BankTransactions and POST /BankTransactions/{id} that deletes one; POST
/Invoices/{id}/Email; `Idempotency-Key` replay; OAuth bearer plus `xero-tenant-id`; 60/min,
5 concurrent and 5,000/day per tenant. A reconciled payment or bank transaction, or a payment
of a batch payment, is refused deletion as Xero refuses it.

Amounts are Decimals end to end and go out as JSON numbers with exactly their digits.

A list's filtered and sorted order is kept per query (everything but `If-Modified-Since` and
the page) until the data changes: every write through the face bumps `version`, and code that
changes `objects` directly must bump it too. `If-Modified-Since` then cuts that order by
bisection when it is sorted by `UpdatedDateUTC` ascending (the adapter's full pull), so a page
of a 110k-invoice book costs its own records, not a filter and sort of the whole book.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from itertools import pairwise
from typing import Any

from connector.sandbox.common import (
    Clock,
    IdempotencyStore,
    RecordCheck,
    Refusal,
    Request,
    Response,
    Window,
    copy,
    dotnet_date,
    fingerprint,
    new_uuid,
    parse_dotnet_date,
    parse_iso,
    retry_after_header,
)
from connector.sandbox.oauth import OAuthIssuer, bearer_of

PROVIDER_NAME = "AR Connector Sandbox"
COLLECTIONS = {  # collection -> its id field, and whether it pages
    "Contacts": ("ContactID", True),
    "Invoices": ("InvoiceID", True),
    "CreditNotes": ("CreditNoteID", True),
    "Payments": ("PaymentID", True),
    "Accounts": ("AccountID", False),
    "BankTransactions": ("BankTransactionID", True),
}
NUMBER_FIELDS = {"Contacts": "ContactNumber", "Invoices": "InvoiceNumber", "CreditNotes": "CreditNoteNumber"}
MAX_PAGE_SIZE = 1000
_LIST_PARAMS = ("IDs", "InvoiceNumbers", "Statuses", "ContactIDs")  # comma-separated filters
LIST_CACHE_SIZE = 64  # queries whose order is kept; more and the cache starts again

_CLAUSE = re.compile(
    r"""^\s*(?P<field>[A-Za-z][A-Za-z0-9.]*)\s*(?P<op>==|!=|>=|<=|>|<)\s*(?P<value>
        "(?P<string>[^"]*)"
      | [Gg]uid\(\s*"(?P<guid>[^"]*)"\s*\)
      | (?P<bool>true|false)
      | (?P<number>-?\d+(?:\.\d+)?)
      | DateTime\(\s*(?P<dt>\d{4}\s*,\s*\d{1,2}\s*,\s*\d{1,2})\s*\)
    )\s*$""",
    re.VERBOSE,
)


def xero_error(
    status: int,
    message: str,
    *,
    type_: str = "ValidationException",
    number: int = 10,
    elements: list[Any] | None = None,
) -> Response:
    body: dict[str, Any] = {"ErrorNumber": number, "Type": type_, "Message": message}
    if elements is not None:
        body["Elements"] = elements
    return Response(status, body, effect=f"rejected: {message}")


def problem(status: int, title: str, detail: str) -> Response:
    """Xero's answers from its gateway (401, 403, 404, 429) are RFC 7807 problems."""
    return Response(
        status,
        {"Title": title, "Status": status, "Detail": detail, "Instance": new_uuid()},
        effect=f"rejected: {title}",
    )


def _lower_or_none(value: Any) -> str | None:
    return None if value is None else str(value).lower()


def _is_true(value: Any) -> bool:
    return value is True


def _decimal_or_none(value: Any) -> Decimal | None:
    return None if value is None else _dec(value)


def _when(value: Any) -> float | None:
    if isinstance(value, str) and value.startswith("/Date("):
        return parse_dotnet_date(value)
    if isinstance(value, str):
        return parse_iso(value if "T" in value else value + "T00:00:00Z") or parse_iso(value + "Z")
    return None


def _get(obj: dict[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _q(value: Decimal, *operands: Decimal) -> Decimal:
    """`value` with as many places as the most precise operand (at least 2)."""
    places = max([2] + [-int(o.as_tuple().exponent) for o in operands if isinstance(o.as_tuple().exponent, int)])
    return value.quantize(Decimal(1).scaleb(-places))


def _dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value if value is not None else 0))
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None


class XeroFace:
    name = "xero"

    def __init__(
        self, clock: Clock, *, limits: bool, credentials: dict[str, Any] | None = None, token_ttl_s: int = 1800
    ) -> None:
        self.clock = clock
        self.limits = limits
        self.oauth = OAuthIssuer("xero", clock, ttl_s=token_ttl_s, credentials=credentials)
        tenants = (credentials or {}).get("tenant_ids") or (credentials or {}).get("tenant_id")
        self.tenants = set([tenants] if isinstance(tenants, str) else tenants or []) or None
        self.objects: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in COLLECTIONS}
        self.idempotency = IdempotencyStore()
        self.minute: dict[str, Window] = {}
        self.day: dict[str, Window] = {}
        self.in_flight: dict[str, int] = {}
        # Bumped by every change to `objects`: a cached list order is good for one version.
        self.version = 0
        self._lists: dict[tuple[Any, ...], _Listed] = {}

    def load(self, data: dict[str, Any]) -> None:
        for name, records in data.items():
            if name not in self.objects:
                raise ValueError(f"xero: unknown collection {name!r}; known: {', '.join(COLLECTIONS)}")
            key = COLLECTIONS[name][0]
            for record in records or []:
                self.objects[name][record[key]] = record
        self.version += 1

    # ------------------------------------------------------------ gatekeeping

    def begin(self, request: Request) -> Response | None:
        """At arrival: count the request in flight for its tenant (5 at once), and against the
        tenant's minute and day windows now, before the latency (a client pacing itself by
        the limits sends at that pace; it must be counted at that pace)."""
        tenant = request.header("xero-tenant-id")
        if not tenant or request.path.startswith("/oauth/"):
            return None
        if self.limits and self.in_flight.get(tenant, 0) >= 5:
            return self._too_many("concurrent", 1.0)
        self.in_flight[tenant] = self.in_flight.get(tenant, 0) + 1
        request.headers["x-sandbox-counted"] = tenant
        try:
            request.admitted = self._gate(request)
        except Refusal as refusal:
            return refusal.response
        return None

    def end(self, request: Request) -> None:
        tenant = request.headers.pop("x-sandbox-counted", None)
        if tenant:
            self.in_flight[tenant] -= 1

    def _too_many(self, problem_name: str, wait: float) -> Response:
        response = problem(429, "Too Many Requests", f"Rate limit exceeded: {problem_name}")
        response.headers["Retry-After"] = retry_after_header(wait)
        response.headers["X-Rate-Limit-Problem"] = problem_name
        return response

    def _gate(self, request: Request) -> str:
        if not self.oauth.bearer_ok(bearer_of(request)):
            raise Refusal(problem(401, "Unauthorized", "AuthenticationUnsuccessful"))
        tenant = request.header("xero-tenant-id")
        if not tenant or (self.tenants is not None and tenant not in self.tenants):
            raise Refusal(problem(403, "Forbidden", "AuthenticationUnsuccessful"))
        if self.limits:
            minute = self.minute.setdefault(tenant, Window(60, 60.0, self.clock))
            day = self.day.setdefault(tenant, Window(5000, 86400.0, self.clock))
            for problem_name, window in (("day", day), ("minute", minute)):
                wait = window.retry_after()
                if wait > 0:
                    raise Refusal(self._too_many(problem_name, wait))
            minute.count()
            day.count()
        return tenant

    def _limit_headers(self, tenant: str) -> dict[str, str]:
        if not self.limits:
            return {}
        return {
            "X-MinLimit-Remaining": str(self.minute[tenant].remaining()),
            "X-DayLimit-Remaining": str(self.day[tenant].remaining()),
            "X-AppMinLimit-Remaining": "9999",
        }

    # ------------------------------------------------------------ dispatch

    def handle(self, request: Request) -> Response:
        if request.path == "/oauth/token" and request.method == "POST":
            return self.oauth.token_endpoint(request)
        try:
            tenant = request.admitted or self._gate(request)
            if request.method in ("PUT", "POST") and request.header("idempotency-key"):
                response = self._idempotent(request, tenant)
            else:
                response = self._route(request)
            response.headers.update(self._limit_headers(tenant))
            return response
        except Refusal as refusal:
            return refusal.response

    def _idempotent(self, request: Request, tenant: str) -> Response:
        key = request.header("idempotency-key") or ""
        if len(key) > 128:
            return xero_error(400, "Idempotency-Key must be 128 characters or fewer")
        stored = self.idempotency.get(tenant, key)
        print_ = fingerprint(request)
        if stored is not None:
            if stored.fingerprint != print_:
                return xero_error(400, f"Idempotency-Key '{key}' was already used with a different request")
            return Response(
                stored.response.status, copy(stored.response.body), dict(stored.response.headers), effect="replayed"
            )
        try:
            response = self._route(request)
        except Refusal as refusal:
            response = refusal.response
        self.idempotency.put(
            tenant, key, print_, Response(response.status, copy(response.body), dict(response.headers), response.effect)
        )
        return response

    def _route(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        name = parts[0]
        if name not in COLLECTIONS:
            raise Refusal(problem(404, "NotFound", f"The resource {request.path} cannot be found"))
        if request.method == "GET" and len(parts) == 1:
            return self._list(request, name)
        if request.method == "GET" and len(parts) == 2:
            return Response(200, self._envelope(name, [copy(self._find(name, parts[1]))]))
        if name == "Payments" and len(parts) == 1 and request.method in ("PUT", "POST"):
            return self._put_payments(request)
        if name == "BankTransactions" and len(parts) == 1 and request.method in ("PUT", "POST"):
            return self._put_bank_transactions(request)
        if name == "Payments" and len(parts) == 2 and request.method == "POST":
            return self._delete_payment(request, self._find(name, parts[1]))
        if name == "BankTransactions" and len(parts) == 2 and request.method == "POST":
            return self._delete_bank_transaction(request, self._find(name, parts[1]))
        if name == "Invoices" and len(parts) == 3 and parts[2] == "Email" and request.method == "POST":
            return self._email(self._find(name, parts[1]))
        raise Refusal(problem(404, "NotFound", f"The resource {request.method} {request.path} cannot be found"))

    def _find(self, name: str, ident: str) -> dict[str, Any]:
        found = self.objects[name].get(ident)
        if found is None and name in NUMBER_FIELDS:
            field = NUMBER_FIELDS[name]
            found = next((o for o in self.objects[name].values() if o.get(field) == ident), None)
        if found is None:
            raise Refusal(problem(404, "NotFound", "The resource you're looking for cannot be found"))
        return found

    def _envelope(
        self, name: str, records: list[dict[str, Any]], pagination: dict[str, int] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "Id": new_uuid(),
            "Status": "OK",
            "ProviderName": PROVIDER_NAME,
            "DateTimeUTC": f"/Date({int(self.clock() * 1000)})/",
        }
        if pagination is not None:
            body["pagination"] = pagination
        body[name] = records
        return body

    # ------------------------------------------------------------ reads

    def _list(self, request: Request, name: str) -> Response:
        since = self._modified_since(request)
        listed = self._listed(request, name)
        records: list[dict[str, Any]] = listed.records
        if since is not None:
            records = listed.since(since)
        pagination = None
        if COLLECTIONS[name][1] and request.arg("page") is not None:
            try:
                page = max(1, int(request.arg("page") or "1"))
                size = min(MAX_PAGE_SIZE, max(1, int(request.arg("pageSize") or "100")))
            except ValueError:
                raise Refusal(xero_error(400, "page and pageSize must be whole numbers")) from None
            total = len(records)
            records = records[(page - 1) * size : page * size]
            pagination = {"page": page, "pageSize": size, "pageCount": -(-total // size), "itemCount": total}
        # Live records, not copies: the answer is encoded under the sandbox's lock.
        return Response(200, self._envelope(name, list(records), pagination))

    def _listed(self, request: Request, name: str) -> _Listed:
        """The collection filtered (all but `If-Modified-Since`) and ordered as the request
        asks, from the cache while the data has not changed since it was made."""
        archived = name == "Contacts" and (request.arg("includeArchived") or "").lower() == "true"
        where, order = request.arg("where"), request.arg("order")
        key = (name, archived, where, order, *(request.arg(p) for p in _LIST_PARAMS))
        cached = self._lists.get(key)
        if cached is not None and cached.version == self.version:
            return cached
        records = list(self.objects[name].values())
        if name == "Contacts" and not archived:
            records = [r for r in records if r.get("ContactStatus") != "ARCHIVED"]
        records = self._by_lists(request, name, records)
        if where:
            check = self._where(where)
            records = [r for r in records if check(r)]
        if order:
            records = self._order(order, records)
        listed = _Listed(self.version, records)
        if len(self._lists) >= LIST_CACHE_SIZE:
            self._lists.clear()
        self._lists[key] = listed
        return listed

    def _modified_since(self, request: Request) -> float | None:
        text = request.header("if-modified-since")
        if not text:
            return None
        moment = parse_iso(text)
        if moment is None:
            try:
                parsed = parsedate_to_datetime(text)
            except (TypeError, ValueError):
                parsed = None
            if parsed is not None and parsed.tzinfo is not None:
                moment = parsed.timestamp()
        if moment is None:
            raise Refusal(xero_error(400, f"If-Modified-Since '{text}' is not a date-time with a time zone"))
        return moment

    def _by_lists(self, request: Request, name: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The comma-separated filters: IDs, InvoiceNumbers, Statuses, ContactIDs."""
        id_field = COLLECTIONS[name][0]
        for param, field in zip(_LIST_PARAMS, (id_field, "InvoiceNumber", "Status", "Contact.ContactID"), strict=True):
            wanted = request.arg(param)
            if wanted:
                values = {v.strip().lower() for v in wanted.split(",")}
                records = [r for r in records if str(_get(r, field) or "").lower() in values]
        return records

    def _where(self, where: str) -> RecordCheck:
        checks: list[RecordCheck] = []
        for clause in re.split(r"\s+(?:AND|and)\s+|\s*&&\s*", where.strip()):
            match = _CLAUSE.match(clause)
            if not match:
                raise Refusal(
                    xero_error(
                        400,
                        f"The where clause '{where}' is not supported by the sandbox",
                        type_="QueryParseException",
                        number=16,
                    )
                )
            checks.append(self._clause(match))
        return lambda record: all(check(record) for check in checks)

    @staticmethod
    def _clause(match: re.Match[str]) -> RecordCheck:
        field, op = match["field"], match["op"]
        wanted: Any
        convert: Callable[[Any], Any]
        if match["string"] is not None or match["guid"] is not None:
            wanted = (match["string"] if match["string"] is not None else match["guid"]).lower()
            convert = _lower_or_none
        elif match["bool"] is not None:
            wanted, convert = match["bool"] == "true", _is_true
        elif match["number"] is not None:
            wanted, convert = Decimal(match["number"]), _decimal_or_none
        else:
            y, m, d = (int(p) for p in match["dt"].split(","))
            wanted = datetime(y, m, d, tzinfo=UTC).timestamp()
            convert = _when
        ops: dict[str, Callable[[Any, Any], bool]] = {
            "==": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            ">": lambda a, b: a is not None and a > b,
            ">=": lambda a, b: a is not None and a >= b,
            "<": lambda a, b: a is not None and a < b,
            "<=": lambda a, b: a is not None and a <= b,
        }
        if op not in ("==", "!=") and isinstance(wanted, (str, bool)):
            raise Refusal(
                xero_error(400, f"Operator {op} needs a number or a DateTime", type_="QueryParseException", number=16)
            )
        compare = ops[op]
        return lambda record: compare(convert(_get(record, field)), wanted)

    @staticmethod
    def _order(order: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for term in reversed([t.strip() for t in order.split(",") if t.strip()]):
            field, _, direction = term.partition(" ")
            descending = direction.strip().upper() == "DESC"

            def key(record: dict[str, Any], field: str = field) -> tuple[int, Any]:
                value = _get(record, field)
                if isinstance(value, str) and value.startswith("/Date("):
                    return (1, parse_dotnet_date(value))
                if value is None:
                    return (0, 0)
                return (1, value if isinstance(value, (int, Decimal)) else str(value))

            records = sorted(records, key=key, reverse=descending)
        return records

    # ------------------------------------------------------------ writes

    @staticmethod
    def _body_items(request: Request, items_key: str) -> list[Any]:
        """The elements under `items_key` in the JSON body, or the body itself as the one."""
        try:
            body = request.json()
        except ValueError:
            raise Refusal(
                xero_error(400, "The request body is not valid JSON", type_="PostDataInvalidException", number=14)
            ) from None
        items = body.get(items_key) if isinstance(body, dict) and items_key in body else [body]
        return items if isinstance(items, list) else [items]

    def _put_payments(self, request: Request) -> Response:
        items = self._body_items(request, "Payments")
        if not items or not all(isinstance(i, dict) for i in items):
            raise Refusal(xero_error(400, "No payments in the request", type_="PostDataInvalidException", number=14))
        summarize = (request.arg("summarizeErrors") or "true").lower() != "false"
        checked = [(item, self._payment_errors(item)) for item in items]
        if summarize and any(errors for _, errors in checked):
            elements = [self._refused(item, errors) for item, errors in checked]
            message = "; ".join(e for _, errors in checked for e in errors)
            refused = xero_error(400, "A validation exception occurred", elements=elements)
            refused.effect = f"rejected: {message}"
            return refused
        answers, effects = [], []
        for item, errors in checked:
            if errors:
                answers.append(self._refused(item, errors))
                effects.append("rejected: " + "; ".join(errors))
            else:
                payment = self._record_payment(item)
                answers.append(copy(payment))
                effects.append(f"created payment {payment['PaymentID']}")
        return Response(200, self._envelope("Payments", answers), effect="; ".join(effects))

    def _put_bank_transactions(self, request: Request) -> Response:
        """Spend or receive money on a bank (or clearing) account: what a gateway fee is."""
        items = self._body_items(request, "BankTransactions")
        if not items or not all(isinstance(i, dict) for i in items):
            raise Refusal(
                xero_error(400, "No bank transactions in the request", type_="PostDataInvalidException", number=14)
            )
        answers, effects = [], []
        codes = {a.get("Code") for a in self.objects["Accounts"].values()}
        for item in items:
            errors = []
            if item.get("Type") not in ("SPEND", "RECEIVE"):
                errors.append("Type must be SPEND or RECEIVE")
            if self._account({"Account": item.get("BankAccount") or {}}) is None:
                errors.append("Account could not be found")
            lines = item.get("LineItems") or []
            if not lines or any(line.get("AccountCode") not in codes for line in lines):
                errors.append("Account code is not valid for this organisation")
            if errors:
                answers.append(self._refused(item, errors))
                effects.append("rejected: " + "; ".join(errors))
                continue
            total = sum((_dec(line.get("UnitAmount")) * _dec(line.get("Quantity") or 1) for line in lines), Decimal(0))
            booked = {
                **copy(item),
                "BankTransactionID": new_uuid(),
                "Status": "AUTHORISED",
                "Total": total,
                "SubTotal": total,
                "TotalTax": Decimal(0),
                "IsReconciled": False,
                "UpdatedDateUTC": dotnet_date(self.clock()),
            }
            self.objects["BankTransactions"][booked["BankTransactionID"]] = booked
            self.version += 1
            answers.append(copy(booked))
            effects.append(f"created bank transaction {booked['BankTransactionID']} ({item.get('Type')} {total})")
        return Response(200, self._envelope("BankTransactions", answers), effect="; ".join(effects))

    def _update_of(self, request: Request, items_key: str, ident_key: str, ident: str) -> dict[str, Any]:
        """The one record an update asks for: the body itself or its first `items_key` element,
        which may name the record's id only as the path does."""
        items = self._body_items(request, items_key)
        if len(items) != 1 or not isinstance(items[0], dict):
            raise Refusal(xero_error(400, f"Send one {ident_key[:-2]} to update", type_="PostDataInvalidException"))
        item: dict[str, Any] = items[0]
        if item.get(ident_key, ident) != ident:
            raise Refusal(xero_error(400, f"{ident_key} in the body differs from the one in the path"))
        return item

    def _refuse_update(self, item: dict[str, Any], message: str) -> Refusal:
        refused = xero_error(400, "A validation exception occurred", elements=[self._refused(item, [message])])
        refused.effect = f"rejected: {message}"
        return Refusal(refused)

    def _delete_payment(self, request: Request, payment: dict[str, Any]) -> Response:
        """Xero deletes a payment (it never edits one) and gives its amount back to the invoice."""
        ident = payment["PaymentID"]
        item = self._update_of(request, "Payments", "PaymentID", ident)
        if set(item) - {"PaymentID", "Status"} or str(item.get("Status", "")).upper() != "DELETED":
            raise self._refuse_update(item, "Only Status accepted for updates. Status must be DELETED")
        if payment.get("Status") == "DELETED":
            raise self._refuse_update(item, "This payment has been deleted already")
        if payment.get("IsReconciled") is True:
            raise self._refuse_update(item, "Payment cannot be deleted as it has been reconciled")
        if payment.get("BatchPaymentID"):
            raise self._refuse_update(item, "Payments made as part of a batch payment cannot be deleted individually")
        now = dotnet_date(self.clock())
        payment.update(Status="DELETED", UpdatedDateUTC=now)
        amount = _dec(payment.get("Amount"))
        invoice = self.objects["Invoices"].get((payment.get("Invoice") or {}).get("InvoiceID") or "")
        if invoice is not None:
            due, paid = _dec(invoice.get("AmountDue")), _dec(invoice.get("AmountPaid"))
            invoice["AmountDue"] = _q(due + amount, due, amount)
            invoice["AmountPaid"] = _q(paid - amount, paid, amount)
            invoice["Payments"] = [p for p in invoice.get("Payments") or [] if p.get("PaymentID") != ident]
            if invoice.get("Status") == "PAID" and invoice["AmountDue"] > 0:
                invoice["Status"] = "AUTHORISED"
                invoice.pop("FullyPaidOnDate", None)
            invoice["UpdatedDateUTC"] = now
        self.version += 1
        where = f" off invoice {invoice['InvoiceID']}" if invoice is not None else ""
        return Response(
            200, self._envelope("Payments", [copy(payment)]), effect=f"deleted payment {ident} ({amount}{where})"
        )

    def _delete_bank_transaction(self, request: Request, transaction: dict[str, Any]) -> Response:
        """A spend or receive money transaction is deleted by updating its status to DELETED
        (the only update the sandbox serves)."""
        ident = transaction["BankTransactionID"]
        item = self._update_of(request, "BankTransactions", "BankTransactionID", ident)
        if str(item.get("Status", "")).upper() != "DELETED":
            raise self._refuse_update(item, "The sandbox updates a bank transaction only to delete it: Status DELETED")
        if transaction.get("Status") in ("DELETED", "VOIDED"):
            raise self._refuse_update(item, f"This bank transaction is {transaction['Status']} and cannot be changed")
        if transaction.get("IsReconciled") is True:
            raise self._refuse_update(item, "Bank transaction cannot be deleted as it has been reconciled")
        transaction.update(Status="DELETED", UpdatedDateUTC=dotnet_date(self.clock()))
        self.version += 1
        return Response(
            200,
            self._envelope("BankTransactions", [copy(transaction)]),
            effect=f"deleted bank transaction {ident} ({transaction.get('Type')} {transaction.get('Total')})",
        )

    @staticmethod
    def _refused(item: dict[str, Any], errors: list[str]) -> dict[str, Any]:
        answer: dict[str, Any] = copy(item)
        answer.update(
            HasValidationErrors=True, StatusAttributeString="ERROR", ValidationErrors=[{"Message": e} for e in errors]
        )
        return answer

    def _account(self, item: dict[str, Any]) -> dict[str, Any] | None:
        ref = item.get("Account") or {}
        for account in self.objects["Accounts"].values():
            if (ref.get("AccountID") and account.get("AccountID") == ref["AccountID"]) or (
                ref.get("Code") and account.get("Code") == ref["Code"]
            ):
                return account
        return None

    def _invoice_of(self, item: dict[str, Any]) -> dict[str, Any] | None:
        ref = item.get("Invoice") or {}
        if ref.get("InvoiceID"):
            return self.objects["Invoices"].get(ref["InvoiceID"])
        number = ref.get("InvoiceNumber") or item.get("InvoiceNumber")
        return next((i for i in self.objects["Invoices"].values() if number and i.get("InvoiceNumber") == number), None)

    def _payment_errors(self, item: dict[str, Any]) -> list[str]:
        errors = []
        invoice = self._invoice_of(item)
        if invoice is None:
            errors.append("Invoice could not be found")
        elif invoice.get("Status") != "AUTHORISED":
            errors.append(f"Payment can only be made against an Authorised invoice, not a {invoice.get('Status')} one")
        ref = item.get("Account") or {}
        account = self._account(item)
        if account is None:
            errors.append(
                f"Account code '{ref.get('Code') or ref.get('AccountID')}' is not a valid code for this document."
            )
        elif account.get("Type") != "BANK" and not account.get("EnablePaymentsToAccount"):
            errors.append(f"Account {account.get('Code')} is not a bank account and does not accept payments")
        try:
            amount = _dec(item.get("Amount"))
        except ValueError:
            errors.append("Amount must be a number")
        else:
            if amount <= 0:
                errors.append("Payment amount must be greater than zero")
            elif invoice is not None and amount > _dec(invoice.get("AmountDue")):
                errors.append("Payment amount exceeds the amount outstanding on this document")
        if self._payment_date(item.get("Date")) is None:
            errors.append("A valid Date is required")
        return errors

    @staticmethod
    def _payment_date(value: Any) -> float | None:
        if isinstance(value, str) and value.startswith("/Date("):
            return parse_dotnet_date(value)
        try:
            day = date.fromisoformat(str(value)[:10])
        except ValueError:
            return None
        return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()

    def _record_payment(self, item: dict[str, Any]) -> dict[str, Any]:
        invoice = self._invoice_of(item)
        account = self._account(item)
        assert invoice is not None and account is not None
        amount = _dec(item["Amount"])
        now = self.clock()
        due, paid = _dec(invoice.get("AmountDue")), _dec(invoice.get("AmountPaid"))
        when = dotnet_date(self._payment_date(item["Date"]) or now)
        payment: dict[str, Any] = {
            "PaymentID": new_uuid(),
            "Date": when,
            "Amount": amount,
            "BankAmount": amount,
            "CurrencyRate": invoice.get("CurrencyRate", Decimal("1.000000")),
            "Reference": item.get("Reference", ""),
            "IsReconciled": False,
            "Status": "AUTHORISED",
            "PaymentType": "ACCRECPAYMENT" if invoice.get("Type", "ACCREC") == "ACCREC" else "ACCPAYPAYMENT",
            "UpdatedDateUTC": dotnet_date(now),
            "HasAccount": True,
            "HasValidationErrors": False,
            "Account": {"AccountID": account.get("AccountID"), "Code": account.get("Code")},
            "Invoice": {
                "Type": invoice.get("Type", "ACCREC"),
                "InvoiceID": invoice["InvoiceID"],
                "InvoiceNumber": invoice.get("InvoiceNumber", ""),
                "Contact": {k: v for k, v in (invoice.get("Contact") or {}).items() if k in ("ContactID", "Name")},
                "CurrencyCode": invoice.get("CurrencyCode"),
                "LineItems": [],
            },
        }
        self.objects["Payments"][payment["PaymentID"]] = payment
        invoice["AmountDue"] = _q(due - amount, due, amount)
        invoice["AmountPaid"] = _q(paid + amount, paid, amount)
        invoice.setdefault("Payments", []).append(
            {
                "PaymentID": payment["PaymentID"],
                "Date": when,
                "Amount": amount,
                "Reference": payment["Reference"],
                "CurrencyRate": payment["CurrencyRate"],
                "HasAccount": True,
                "HasValidationErrors": False,
            }
        )
        if invoice["AmountDue"] == 0:
            invoice["Status"] = "PAID"
            invoice["FullyPaidOnDate"] = when
        invoice["UpdatedDateUTC"] = dotnet_date(now)
        self.version += 1
        return payment

    def _email(self, invoice: dict[str, Any]) -> Response:
        if invoice.get("Type", "ACCREC") != "ACCREC" or invoice.get("Status") not in (
            "SUBMITTED",
            "AUTHORISED",
            "PAID",
        ):
            return xero_error(
                400,
                "Only sales invoices that are approved can be emailed; "
                f"this one is {invoice.get('Type')} {invoice.get('Status')}",
            )
        contact_id = (invoice.get("Contact") or {}).get("ContactID")
        contact = self.objects["Contacts"].get(contact_id) if contact_id else None
        if (
            contact is not None
            and not contact.get("EmailAddress")
            and not any(p.get("EmailAddress") for p in contact.get("ContactPersons") or [])
        ):
            return xero_error(400, f"The contact {contact.get('Name')} has no email address")
        invoice["SentToContact"] = True
        invoice["UpdatedDateUTC"] = dotnet_date(self.clock())
        self.version += 1
        return Response(204, None, effect=f"emailed invoice {invoice['InvoiceID']}")


class _Listed:
    """One query's records in their order, for one `version` of the data, with the moment
    of each (`UpdatedDateUTC`, 0 when it has none) for `If-Modified-Since`."""

    def __init__(self, version: int, records: list[dict[str, Any]]) -> None:
        self.version = version
        self.records = records
        self.moments = [_when(r.get("UpdatedDateUTC")) or 0 for r in records]
        # Ordered by UpdatedDateUTC ascending (or by chance): the records modified since a
        # moment are a tail, found by bisection.
        self.ascending = all(a <= b for a, b in pairwise(self.moments))

    def since(self, moment: float) -> list[dict[str, Any]]:
        if self.ascending:
            return self.records[bisect_left(self.moments, moment) :]
        return [r for r, m in zip(self.records, self.moments, strict=True) if m >= moment]
