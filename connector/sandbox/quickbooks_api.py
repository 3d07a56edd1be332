"""QuickBooks Online's face (Accounting API v3, served under /quickbooks): the query API with
the WHERE / ORDERBY / STARTPOSITION / MAXRESULTS forms the adapter sends, Change Data Capture
(30-day look-back, at most 1,000 objects an answer, deletes as `status: "Deleted"`), reads by
id, `POST /payment` that lowers the invoice's Balance, `POST /invoice/{id}/send`, `requestid`
replay, `GET /preferences`; OAuth bearer (`/quickbooks/oauth/token`, rotating refresh
tokens); 500 requests a minute and 10 in flight per realm, answered with 429 and no
Retry-After, as QuickBooks does.

Paths are `/v3/company/{realmId}/...`; data is one company, served under any realm id
(or only those named in `credentials.quickbooks.realm_ids`). Objects are written as
QuickBooks answers them (Intuit's XSD field names); amounts are Decimals end to end and times
carry the company's local offset (`2015-10-05T14:42:19-07:00`).

`quickbooks_book(xero_section)` turns the generator's Xero book into this face's data, so the
demo can run with QuickBooks as the ledger.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.sandbox.common import (
    Clock,
    RecordCheck,
    Refusal,
    Request,
    Response,
    Window,
    copy,
    parse_dotnet_date,
    parse_iso,
)
from connector.sandbox.oauth import OAuthIssuer, bearer_of

ENTITIES = ("Customer", "Invoice", "Payment", "CreditMemo")
PATHS = {e.lower(): e for e in ENTITIES}
MAX_RESULTS = 1000
DEFAULT_RESULTS = 100
CDC_MAX = 1000
CDC_DAYS = 30
LOCAL = timezone(timedelta(hours=-7))  # the company's offset (Intuit's examples are Pacific)

_QUERY = re.compile(
    r"""^\s*SELECT\s+\*\s+FROM\s+(?P<entity>\w+)
        (?:\s+WHERE\s+(?P<where>.+?))?
        (?:\s+ORDER\s*BY\s+(?P<order>[\w.]+)(?:\s+(?P<dir>ASC|DESC))?)?
        (?:\s+STARTPOSITION\s+(?P<start>\d+))?
        (?:\s+MAXRESULTS\s+(?P<max>\d+))?\s*$""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)
_CLAUSE = re.compile(
    r"""^\s*(?P<field>[\w.]+)\s*(?:(?P<op><=|>=|<>|!=|=|<|>)\s*(?P<value>'[^']*'|true|false|-?\d+(?:\.\d+)?)
        |\s+IN\s*\((?P<list>[^)]*)\))\s*$""",
    re.IGNORECASE | re.VERBOSE,
)


def local_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, LOCAL).isoformat(timespec="seconds")


def fault(status: int, message: str, detail: str = "", code: str = "2010", type_: str = "ValidationFault") -> Response:
    body = {"Fault": {"Error": [{"Message": message, "Detail": detail or message, "code": code}], "type": type_}}
    return Response(status, body, effect=f"rejected: {message}")


def _dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value if value is not None else 0))
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _updated(obj: dict[str, Any]) -> float:
    return parse_iso(str(_get(obj, "MetaData.LastUpdatedTime") or "")) or 0.0


class QuickBooksFace:
    name = "quickbooks"

    def __init__(
        self, clock: Clock, *, limits: bool, credentials: dict[str, Any] | None = None, token_ttl_s: int = 3600
    ) -> None:
        self.clock = clock
        self.limits = limits
        self.oauth = OAuthIssuer("quickbooks", clock, ttl_s=token_ttl_s, credentials=credentials)
        realms = (credentials or {}).get("realm_ids") or (credentials or {}).get("realm_id")
        self.realms = set([realms] if isinstance(realms, str) else realms or []) or None
        self.objects: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in ENTITIES}
        self.deleted: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in ENTITIES}
        self.preferences: dict[str, Any] = {
            "CurrencyPrefs": {"MultiCurrencyEnabled": True, "HomeCurrency": {"value": "USD"}}
        }
        self.requests: dict[tuple[str, str], Response] = {}  # (realm, requestid) -> first answer
        self.minute: dict[str, Window] = {}
        self.in_flight: dict[str, int] = {}
        self._next_id = 1000

    def load(self, data: dict[str, Any]) -> None:
        for name, records in data.items():
            if name == "Preferences":
                self.preferences = records
                continue
            if name not in self.objects:
                raise ValueError(f"quickbooks: unknown entity {name!r}; known: {', '.join(ENTITIES)}, Preferences")
            for record in records or []:
                self.objects[name][str(record["Id"])] = record
                if str(record["Id"]).isdigit():
                    self._next_id = max(self._next_id, int(record["Id"]) + 1)

    # ------------------------------------------------------------ test helpers

    def delete(self, entity: str, ident: str) -> dict[str, Any]:
        """Delete a transaction as QuickBooks does: gone from reads, a tombstone in CDC."""
        self.objects[entity].pop(ident)
        stamp = local_time(self.clock())
        tombstone = {"domain": "QBO", "status": "Deleted", "Id": ident, "MetaData": {"LastUpdatedTime": stamp}}
        self.deleted[entity][ident] = tombstone
        return tombstone

    def void(self, entity: str, ident: str) -> dict[str, Any]:
        """Void as QuickBooks does: amounts zeroed, "Voided" in the memo, lines kept at 0."""
        obj = self.objects[entity][ident]
        for line in obj.get("Line") or []:
            line["Amount"] = Decimal("0.00")
        obj.update(TotalAmt=Decimal("0.00"), Balance=Decimal("0.00"), PrivateNote="Voided")
        if isinstance(obj.get("TxnTaxDetail"), dict):
            obj["TxnTaxDetail"]["TotalTax"] = Decimal("0.00")
        self._touch(obj)
        return obj

    def _touch(self, obj: dict[str, Any]) -> None:
        meta = obj.setdefault("MetaData", {})
        meta["LastUpdatedTime"] = local_time(self.clock())
        obj["SyncToken"] = str(int(obj.get("SyncToken") or 0) + 1)

    # ------------------------------------------------------------ gatekeeping

    def begin(self, request: Request) -> Response | None:
        realm = self._realm_of(request.path)
        if realm is None:
            return None
        if self.limits and self.in_flight.get(realm, 0) >= 10:
            return self._throttled()
        self.in_flight[realm] = self.in_flight.get(realm, 0) + 1
        request.headers["x-sandbox-counted"] = realm
        try:  # the minute window counts at arrival, before the latency
            request.admitted = self._gate(request)
        except Refusal as refusal:
            return refusal.response
        return None

    def end(self, request: Request) -> None:
        realm = request.headers.pop("x-sandbox-counted", None)
        if realm:
            self.in_flight[realm] -= 1

    @staticmethod
    def _realm_of(path: str) -> str | None:
        parts = path.strip("/").split("/")
        return parts[2] if len(parts) >= 3 and parts[0] == "v3" and parts[1] == "company" else None

    @staticmethod
    def _throttled() -> Response:
        # QuickBooks sends no Retry-After; its documentation asks for a 60-second wait.
        return fault(
            429,
            "ThrottleExceeded",
            "Throttle exceeded: 500 requests per minute per realm or 10 in flight",
            code="003001",
            type_="SERVICE",
        )

    def handle(self, request: Request) -> Response:
        if request.path == "/oauth/token" and request.method == "POST":
            return self.oauth.token_endpoint(request)
        try:
            realm, rest = request.admitted or self._gate(request)
            key = request.arg("requestid")
            if request.method == "POST" and key:
                request.headers.setdefault("idempotency-key", key)  # the journal's column
                return self._idempotent(request, realm, key, rest)
            return self._route(request, rest)
        except Refusal as refusal:
            return refusal.response

    def _gate(self, request: Request) -> tuple[str, list[str]]:
        parts = request.path.strip("/").split("/")
        if len(parts) < 4 or parts[:2] != ["v3", "company"]:
            raise Refusal(
                fault(404, "Resource not found", f"no resource {request.path}", code="610", type_="ValidationFault")
            )
        if not self.oauth.bearer_ok(bearer_of(request)):
            body = {
                "fault": {
                    "error": [
                        {
                            "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                            "detail": "Token expired or invalid",
                            "code": "3200",
                        }
                    ],
                    "type": "AUTHENTICATION",
                }
            }
            raise Refusal(Response(401, body, effect="rejected: AuthenticationFailed"))
        realm = parts[2]
        if self.realms is not None and realm not in self.realms:
            raise Refusal(
                fault(
                    403,
                    "ApplicationAuthorizationFailed",
                    f"realm {realm} is not authorised",
                    code="003100",
                    type_="AUTHORIZATION",
                )
            )
        minor = request.arg("minorversion")
        if minor is not None and (not minor.isdigit() or int(minor) < 75):
            raise Refusal(
                fault(
                    400,
                    "Invalid minorversion",
                    f"minorversion {minor} is no longer supported; use 75 or later",
                    code="2040",
                )
            )
        if self.limits:
            window = self.minute.setdefault(realm, Window(500, 60.0, self.clock))
            if window.retry_after() > 0:
                raise Refusal(self._throttled())
            window.count()
        return realm, parts[3:]

    def _idempotent(self, request: Request, realm: str, key: str, rest: list[str]) -> Response:
        if len(key) > 50:
            return fault(400, "Invalid requestid", "requestid must be 50 characters or fewer")
        stored = self.requests.get((realm, key))
        if stored is not None:
            return Response(stored.status, copy(stored.body), dict(stored.headers), effect="replayed")
        try:
            response = self._route(request, rest)
        except Refusal as refusal:
            response = refusal.response
        if response.status < 500:
            self.requests[(realm, key)] = Response(
                response.status, copy(response.body), dict(response.headers), response.effect
            )
        return response

    def _answer(self, body: dict[str, Any], effect: str | None = None) -> Response:
        return Response(
            200,
            {**body, "time": datetime.fromtimestamp(self.clock(), LOCAL).isoformat(timespec="milliseconds")},
            effect=effect,
        )

    def _route(self, request: Request, rest: list[str]) -> Response:
        head = rest[0].lower()
        if head == "query" and request.method in ("GET", "POST"):
            text = request.arg("query") or (request.body.decode("utf-8", "replace") if request.method == "POST" else "")
            return self._query(text)
        if head == "cdc" and request.method == "GET":
            return self._cdc(request)
        if head == "preferences" and request.method == "GET":
            return self._answer({"Preferences": copy(self.preferences)})
        entity = PATHS.get(head)
        if entity is None:
            raise Refusal(
                fault(
                    400,
                    "Unsupported Operation",
                    f"Operation {request.method} {'/'.join(rest)} is not supported",
                    code="500",
                )
            )
        if request.method == "GET" and len(rest) == 2:
            return self._answer({entity: copy(self._find(entity, rest[1]))})
        if entity == "Payment" and len(rest) == 1 and request.method == "POST":
            return self._create_payment(request)
        if entity == "Invoice" and len(rest) == 3 and rest[2] == "send" and request.method == "POST":
            return self._send(self._find(entity, rest[1]), request.arg("sendTo"))
        raise Refusal(
            fault(
                400,
                "Unsupported Operation",
                f"Operation {request.method} {'/'.join(rest)} is not supported",
                code="500",
            )
        )

    def _find(self, entity: str, ident: str) -> dict[str, Any]:
        found = self.objects[entity].get(ident)
        if found is None:
            raise Refusal(
                fault(
                    400,
                    "Object Not Found",
                    "Object Not Found : Something you're trying to use "
                    f"has been made inactive or deleted: {entity} {ident}",
                    code="610",
                )
            )
        return found

    # ------------------------------------------------------------ reads

    def _query(self, text: str) -> Response:
        match = _QUERY.match(text or "")
        if not match:
            raise Refusal(
                fault(400, "QueryParserError", f"Encountered an error parsing the query: {text!r}", code="4000")
            )
        entity = next((e for e in ENTITIES if e.lower() == match["entity"].lower()), None)
        if entity is None:
            raise Refusal(fault(400, "QueryValidationError", f"unknown entity {match['entity']}", code="4001"))
        records = list(self.objects[entity].values())
        checks = (
            [self._clause(c, text) for c in re.split(r"\s+AND\s+", match["where"], flags=re.IGNORECASE)]
            if match["where"]
            else []
        )
        if entity == "Customer" and not (match["where"] and re.search(r"\bActive\b", match["where"], re.IGNORECASE)):
            records = [r for r in records if r.get("Active", True) is not False]
        records = [r for r in records if all(check(r) for check in checks)]
        order = match["order"]
        if order:
            records.sort(key=lambda r: self._sort_key(_get(r, order)), reverse=(match["dir"] or "").upper() == "DESC")
        start = max(1, int(match["start"] or 1))
        size = min(MAX_RESULTS, max(1, int(match["max"] or DEFAULT_RESULTS)))
        page = records[start - 1 : start - 1 + size]
        body: dict[str, Any] = {}
        if page:
            body = {entity: list(page), "startPosition": start, "maxResults": len(page)}  # encoded under the lock
        return self._answer({"QueryResponse": body})

    @staticmethod
    def _sort_key(value: Any) -> tuple[int, Any]:
        if value is None:
            return (0, 0)
        if isinstance(value, str):
            moment = parse_iso(value) if "T" in value else None
            return (1, moment) if moment is not None else (2, value)
        return (1, value)

    @staticmethod
    def _clause(clause: str, text: str) -> RecordCheck:
        match = _CLAUSE.match(clause)
        if not match:
            raise Refusal(
                fault(400, "QueryParserError", f"Encountered an error parsing the query: {text!r}", code="4000")
            )
        field = match["field"]

        def literal(token: str) -> Any:
            token = token.strip()
            if token.startswith("'"):
                return token[1:-1]
            if token.lower() in ("true", "false"):
                return token.lower() == "true"
            return Decimal(token)

        def comparable(value: Any, wanted: Any) -> tuple[Any, Any]:
            if isinstance(wanted, str) and "T" in wanted and parse_iso(wanted) is not None:
                return (parse_iso(str(value)) if value is not None else None), parse_iso(wanted)
            if isinstance(wanted, Decimal):
                return (_dec(value) if value is not None else None), wanted
            if isinstance(wanted, bool):
                return (value if isinstance(value, bool) else value is None or value), wanted
            return (None if value is None else str(value)), wanted

        if match["list"] is not None:
            wanted = [literal(t) for t in match["list"].split(",") if t.strip()]
            return lambda r: any(comparable(_get(r, field), w)[0] == comparable(_get(r, field), w)[1] for w in wanted)
        op, wanted = match["op"], literal(match["value"])
        ops: dict[str, Callable[[Any, Any], bool]] = {
            "=": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            "<>": lambda a, b: a != b,
            "<": lambda a, b: a is not None and a < b,
            ">": lambda a, b: a is not None and a > b,
            "<=": lambda a, b: a is not None and a <= b,
            ">=": lambda a, b: a is not None and a >= b,
        }

        def check(record: dict[str, Any]) -> bool:
            left, right = comparable(_get(record, field), wanted)
            return bool(ops[op](left, right))

        return check

    def _cdc(self, request: Request) -> Response:
        entities = [e.strip() for e in (request.arg("entities") or "").split(",") if e.strip()]
        wanted = [next((n for n in ENTITIES if n.lower() == e.lower()), None) for e in entities]
        if not entities or None in wanted:
            raise Refusal(fault(400, "Invalid entities", f"entities={request.arg('entities')!r}", code="2010"))
        text = request.arg("changedSince") or ""
        since = parse_iso(text) if "T" in text else parse_iso(text + "T00:00:00+00:00") if text else None
        if since is None:
            raise Refusal(fault(400, "Invalid changedSince", f"changedSince={text!r} is not a date-time", code="2010"))
        if since < self.clock() - CDC_DAYS * 86400:
            raise Refusal(
                fault(
                    400,
                    "Invalid Request",
                    f"Operation cdc with changedSince date {text} which is older than fixed days is not supported",
                    code="2010",
                )
            )
        changed = []
        for entity in wanted:
            assert entity is not None
            for obj in list(self.objects[entity].values()) + list(self.deleted[entity].values()):
                if _updated(obj) >= since:
                    changed.append((entity, obj))
        # The oldest changes first, at most 1,000 in one answer.
        changed.sort(key=lambda pair: (_updated(pair[1]), pair[1]["Id"]))
        changed = changed[:CDC_MAX]
        parts = []
        for entity in wanted:
            assert entity is not None
            mine = [copy(obj) for name, obj in changed if name == entity]
            parts.append({entity: mine, "startPosition": 1, "maxResults": len(mine)} if mine else {})
        return self._answer({"CDCResponse": [{"QueryResponse": parts}]})

    # ------------------------------------------------------------ writes

    def _create_payment(self, request: Request) -> Response:
        try:
            body = request.json()
        except ValueError:
            raise Refusal(
                fault(400, "Request has invalid or unsupported property", "the body is not JSON", code="2010")
            ) from None
        if not isinstance(body, dict):
            raise Refusal(
                fault(400, "Request has invalid or unsupported property", "the body is not a Payment", code="2010")
            )
        customer_id = _get(body, "CustomerRef.value")
        customer = self.objects["Customer"].get(str(customer_id)) if customer_id else None
        if customer is None:
            raise Refusal(
                fault(400, "Invalid Reference Id", f"Invalid Reference Id : Customer {customer_id}", code="2500")
            )
        try:
            total = _dec(body.get("TotalAmt"))
            lines = [(_dec(line.get("Amount")), line.get("LinkedTxn") or []) for line in body.get("Line") or []]
        except (ValueError, AttributeError):
            raise Refusal(
                fault(400, "Invalid Number", "TotalAmt and Line.Amount must be numbers", code="2090")
            ) from None
        if total <= 0:
            raise Refusal(
                fault(
                    400,
                    "Required param missing, need to supply the required value for the API",
                    "TotalAmt must be above zero",
                    code="2020",
                )
            )
        applied = Decimal(0)
        invoices = []
        for amount, linked in lines:
            for link in linked:
                if link.get("TxnType") != "Invoice":
                    raise Refusal(
                        fault(
                            400,
                            "Invalid LinkedTxn",
                            f"TxnType {link.get('TxnType')} is not supported here",
                            code="2010",
                        )
                    )
                invoice = self._find("Invoice", str(link.get("TxnId")))
                if _get(invoice, "CustomerRef.value") != customer["Id"]:
                    raise Refusal(
                        fault(
                            400,
                            "Invalid LinkedTxn",
                            f"Invoice {invoice['Id']} belongs to another customer",
                            code="6000",
                        )
                    )
                currency = _get(body, "CurrencyRef.value") or _get(invoice, "CurrencyRef.value")
                if currency != _get(invoice, "CurrencyRef.value"):
                    raise Refusal(
                        fault(
                            400,
                            "Currency mismatch",
                            f"the payment is in {currency}, invoice {invoice['Id']} "
                            f"in {_get(invoice, 'CurrencyRef.value')}",
                            code="6000",
                        )
                    )
                if amount > _dec(invoice.get("Balance")):
                    raise Refusal(
                        fault(
                            400,
                            "A business validation error has occurred while processing your request",
                            "Business Validation Error: The amount applied "
                            f"to invoice {invoice['Id']} exceeds its balance",
                            code="6000",
                        )
                    )
                invoices.append((invoice, amount))
            applied += amount
        if applied > total:
            raise Refusal(
                fault(
                    400,
                    "A business validation error has occurred while processing your request",
                    "Business Validation Error: the lines apply more than TotalAmt",
                    code="6000",
                )
            )
        now = local_time(self.clock())
        payment_id = str(self._next_id)
        self._next_id += 1
        currency = _get(body, "CurrencyRef.value") or _get(customer, "CurrencyRef.value") or "USD"
        payment: dict[str, Any] = {
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "Id": payment_id,
            "TxnDate": body.get("TxnDate") or now[:10],
            "TotalAmt": total,
            "UnappliedAmt": total - applied,
            "ProcessPayment": False,
            "CurrencyRef": {"value": currency},
            "CustomerRef": {"value": customer["Id"], "name": customer.get("DisplayName", "")},
            "Line": [{"Amount": amount, "LinkedTxn": [dict(link) for link in linked]} for amount, linked in lines],
            "MetaData": {"CreateTime": now, "LastUpdatedTime": now},
        }
        for key in ("DepositToAccountRef", "PaymentRefNum", "PrivateNote", "PaymentMethodRef"):
            if body.get(key) is not None:
                payment[key] = copy(body[key])
        self.objects["Payment"][payment_id] = payment
        for invoice, amount in invoices:
            invoice["Balance"] = _dec(invoice.get("Balance")) - amount
            invoice.setdefault("LinkedTxn", []).append({"TxnId": payment_id, "TxnType": "Payment"})
            self._touch(invoice)
        return self._answer({"Payment": copy(payment)}, effect=f"created payment {payment_id}")

    def _send(self, invoice: dict[str, Any], send_to: str | None) -> Response:
        address = send_to or _get(invoice, "BillEmail.Address")
        if not address:
            raise Refusal(
                fault(
                    400, "Invalid Email Address", f"Invoice {invoice['Id']} has no BillEmail and no sendTo", code="2050"
                )
            )
        invoice["EmailStatus"] = "EmailSent"
        invoice["DeliveryInfo"] = {"DeliveryType": "Email", "DeliveryTime": local_time(self.clock())}
        if send_to:
            invoice["BillEmail"] = {"Address": send_to}
        self._touch(invoice)
        return self._answer({"Invoice": copy(invoice)}, effect=f"emailed invoice {invoice['Id']}")


# ---------------------------------------------------------------- the demo's book


def _xero_time(value: Any) -> float:
    if isinstance(value, str) and value.startswith("/Date("):
        return parse_dotnet_date(value)
    return parse_iso(str(value)) or 0.0


def _day(value: Any) -> str:
    return datetime.fromtimestamp(_xero_time(value), UTC).date().isoformat()


def quickbooks_book(xero_section: dict[str, Any]) -> dict[str, Any]:
    """The generator's Xero book (`{"Contacts", "Invoices", "CreditNotes", "Payments",
    "Accounts"}`) as one QuickBooks company: the same customers, invoice numbers, amounts,
    currencies, dates and payments, in QuickBooks' shapes with numeric Ids.

    What does not translate one to one: Xero's AmountCredited has no QuickBooks field (credit
    memos are applied through payments there), so an invoice's Balance is Xero's AmountDue
    and its credit shows as settled; voided invoices become QuickBooks voids (zero amounts,
    "Voided" memo); deleted invoices and payments are left out (CDC tombstones need a live
    company's history). Account codes become DepositToAccountRef Ids."""
    counter = {"n": 0}

    def next_id() -> str:
        counter["n"] += 1
        return str(counter["n"])

    def meta(updated: Any, created: Any = None) -> dict[str, str]:
        when = local_time(_xero_time(updated))
        return {"CreateTime": local_time(_xero_time(created)) if created else when, "LastUpdatedTime": when}

    accounts = {a.get("Code"): next_id() for a in xero_section.get("Accounts") or []}
    customers: dict[str, dict[str, Any]] = {}
    for contact in xero_section.get("Contacts") or []:
        customer: dict[str, Any] = {
            "Id": next_id(),
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "DisplayName": contact["Name"],
            "FullyQualifiedName": contact["Name"],
            "CompanyName": contact["Name"],
            "PrintOnCheckName": contact["Name"],
            "Active": contact.get("ContactStatus") != "ARCHIVED",
            "Job": False,
            "BillWithParent": False,
            "Taxable": True,
            "Balance": Decimal("0"),
            "BalanceWithJobs": Decimal("0"),
            "PreferredDeliveryMethod": "Email",
            "MetaData": meta(contact.get("UpdatedDateUTC")),
        }
        if contact.get("FirstName"):
            customer["GivenName"] = contact["FirstName"]
        if contact.get("LastName"):
            customer["FamilyName"] = contact["LastName"]
        if contact.get("EmailAddress"):
            customer["PrimaryEmailAddr"] = {"Address": contact["EmailAddress"]}
        if contact.get("AccountNumber"):
            customer["AcctNum"] = contact["AccountNumber"]
        if contact.get("DefaultCurrency"):
            customer["CurrencyRef"] = {"value": contact["DefaultCurrency"]}
        customers[contact["ContactID"]] = customer

    def customer_ref(contact: dict[str, Any]) -> dict[str, str]:
        found = customers[contact["ContactID"]]
        return {"value": found["Id"], "name": found["DisplayName"]}

    def lines(doc: dict[str, Any], zero: bool) -> tuple[list[dict[str, Any]], Decimal]:
        out, subtotal = [], Decimal(0)
        inclusive = doc.get("LineAmountTypes") == "Inclusive"
        for number, item in enumerate(doc.get("LineItems") or [], start=1):
            amount = Decimal(str(item.get("LineAmount", 0)))
            if inclusive:
                amount -= Decimal(str(item.get("TaxAmount", 0)))
            amount = Decimal(0) * amount if zero else amount
            subtotal += amount
            out.append(
                {
                    "Id": str(number),
                    "LineNum": number,
                    "Description": item.get("Description", ""),
                    "Amount": amount,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": "1", "name": "Services"},
                        "Qty": item.get("Quantity", Decimal(1)),
                        "UnitPrice": item.get("UnitAmount", amount),
                        "TaxCodeRef": {"value": "TAX" if item.get("TaxAmount") else "NON"},
                    },
                }
            )
        out.append({"Amount": subtotal, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
        return out, subtotal

    invoices: dict[str, dict[str, Any]] = {}
    for doc in xero_section.get("Invoices") or []:
        if doc.get("Type", "ACCREC") != "ACCREC" or doc.get("Status") == "DELETED":
            continue
        voided = doc.get("Status") == "VOIDED"
        line_items, _ = lines(doc, voided)
        total = Decimal(0) if voided else Decimal(str(doc.get("Total", 0)))
        invoice: dict[str, Any] = {
            "Id": next_id(),
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "DocNumber": doc.get("InvoiceNumber"),
            "TxnDate": _day(doc["Date"]),
            "CurrencyRef": {"value": doc.get("CurrencyCode", "USD")},
            "ExchangeRate": doc.get("CurrencyRate", Decimal(1)),
            "CustomerRef": customer_ref(doc["Contact"]),
            "Line": line_items,
            "TxnTaxDetail": {"TotalTax": Decimal(0) if voided else Decimal(str(doc.get("TotalTax", 0)))},
            "TotalAmt": total,
            "Balance": Decimal(0) if voided else Decimal(str(doc.get("AmountDue", total))),
            "Deposit": Decimal(0),
            "ApplyTaxAfterDiscount": False,
            "PrintStatus": "NotSet",
            "EmailStatus": "EmailSent" if doc.get("SentToContact") else "NotSet",
            "GlobalTaxCalculation": "TaxInclusive" if doc.get("LineAmountTypes") == "Inclusive" else "TaxExcluded",
            "LinkedTxn": [],
            "MetaData": meta(doc.get("UpdatedDateUTC")),
        }
        if doc.get("DueDate"):
            invoice["DueDate"] = _day(doc["DueDate"])
        if doc.get("Reference"):
            invoice["CustomerMemo"] = {"value": doc["Reference"]}
        if voided:
            invoice["PrivateNote"] = "Voided"
        email = customers[doc["Contact"]["ContactID"]].get("PrimaryEmailAddr")
        if email:
            invoice["BillEmail"] = dict(email)
        invoices[doc["InvoiceID"]] = invoice

    payments = []
    for doc in xero_section.get("Payments") or []:
        target = invoices.get(_get(doc, "Invoice.InvoiceID") or "")
        if (
            doc.get("PaymentType", "ACCRECPAYMENT") != "ACCRECPAYMENT"
            or doc.get("Status") == "DELETED"
            or target is None
        ):
            continue
        amount = Decimal(str(doc.get("Amount", 0)))
        payment: dict[str, Any] = {
            "Id": next_id(),
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "TxnDate": _day(doc["Date"]),
            "TotalAmt": amount,
            "UnappliedAmt": Decimal(0),
            "ProcessPayment": False,
            "CurrencyRef": dict(target["CurrencyRef"]),
            "ExchangeRate": doc.get("CurrencyRate", Decimal(1)),
            "CustomerRef": dict(target["CustomerRef"]),
            "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": target["Id"], "TxnType": "Invoice"}]}],
            "MetaData": meta(doc.get("UpdatedDateUTC")),
        }
        code = _get(doc, "Account.Code")
        if code in accounts:
            payment["DepositToAccountRef"] = {"value": accounts[code]}
        if doc.get("Reference"):
            payment["PaymentRefNum"] = str(doc["Reference"])[:21]
            payment["PrivateNote"] = str(doc["Reference"])
        target["LinkedTxn"].append({"TxnId": payment["Id"], "TxnType": "Payment"})
        payments.append(payment)

    memos = []
    for doc in xero_section.get("CreditNotes") or []:
        if doc.get("Type", "ACCRECCREDIT") != "ACCRECCREDIT" or doc.get("Status") == "DELETED":
            continue
        voided = doc.get("Status") == "VOIDED"
        line_items, _ = lines(doc, voided)
        total = Decimal(0) if voided else Decimal(str(doc.get("Total", 0)))
        remaining = Decimal(0) if voided else Decimal(str(doc.get("RemainingCredit", 0)))
        memo: dict[str, Any] = {
            "Id": next_id(),
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "DocNumber": doc.get("CreditNoteNumber"),
            "TxnDate": _day(doc["Date"]),
            "CurrencyRef": {"value": doc.get("CurrencyCode", "USD")},
            "CustomerRef": customer_ref(doc["Contact"]),
            "Line": line_items,
            "TxnTaxDetail": {"TotalTax": Decimal(0) if voided else Decimal(str(doc.get("TotalTax", 0)))},
            "TotalAmt": total,
            "Balance": remaining,
            "RemainingCredit": remaining,
            "MetaData": meta(doc.get("UpdatedDateUTC")),
        }
        if voided:
            memo["PrivateNote"] = "Voided"
        if doc.get("Reference"):
            memo["CustomerMemo"] = {"value": doc["Reference"]}
        memos.append(memo)

    currencies = sorted({i["CurrencyRef"]["value"] for i in invoices.values()})
    home = "USD" if "USD" in currencies or not currencies else currencies[0]
    return {
        "Customer": list(customers.values()),
        "Invoice": list(invoices.values()),
        "Payment": payments,
        "CreditMemo": memos,
        "Preferences": {
            "CurrencyPrefs": {"MultiCurrencyEnabled": len(currencies) > 1, "HomeCurrency": {"value": home}}
        },
    }
