"""Stripe's face: lists newest first with cursors and `created` filters, events, expansions,
invoice pay (out of band) / send / void with events, idempotency keys, 25 or 100 requests/s.

Objects are kept exactly as the data file gives them (minor units, epoch seconds); a write
changes the stored object and records the `invoice.*` events Stripe would send.
"""

from __future__ import annotations

import base64
import itertools
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from connector.sandbox.common import (
    Clock,
    IdempotencyStore,
    Refusal,
    Request,
    Response,
    Window,
    copy,
    fingerprint,
    retry_after_header,
)

API_VERSION = "2023-08-16"

COLLECTIONS = (
    "customers",
    "invoices",
    "charges",
    "payment_intents",
    "refunds",
    "payouts",
    "balance_transactions",
    "events",
    "credit_notes",
    "disputes",
)
# GET /v1/{collection}?{param}=... filters on the field of the same name (or the one named).
EQUALITY_FILTERS = {
    "customers": {"email": "email"},
    "invoices": {
        "customer": "customer",
        "status": "status",
        "subscription": "subscription",
        "collection_method": "collection_method",
    },
    "charges": {"customer": "customer", "payment_intent": "payment_intent"},
    "payment_intents": {"customer": "customer"},
    "refunds": {"charge": "charge", "payment_intent": "payment_intent"},
    "payouts": {"status": "status", "destination": "destination"},
    "balance_transactions": {"type": "type", "source": "source", "currency": "currency"},
    "credit_notes": {"customer": "customer", "invoice": "invoice"},
    "disputes": {"charge": "charge", "payment_intent": "payment_intent"},
    "events": {},
}
_RANGE_OPS: dict[str, Callable[[int, int], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def _eq(a: int, b: int) -> bool:
    return a == b


def error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> Response:
    body: dict[str, Any] = {"type": type_, "message": message}
    if code:
        body["code"] = code
    if param:
        body["param"] = param
    return Response(status, {"error": body}, effect=f"rejected: {message}")


def refuse(status: int, message: str, **kwargs: Any) -> Refusal:
    return Refusal(error(status, message, **kwargs))


class StripeFace:
    name = "stripe"

    def __init__(self, clock: Clock, *, limits: bool, credentials: list[str] | None = None) -> None:
        self.clock = clock
        self.limits = limits
        self.keys = set(credentials) if credentials else None
        self.objects: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in COLLECTIONS}
        self.owner: dict[str, str] = {}  # object id -> collection
        self.idempotency = IdempotencyStore()
        self.windows: dict[str, Window] = {}
        self._sorted: dict[str, _Ordered] = {}
        self._ids = itertools.count(1)

    # ------------------------------------------------------------ data

    def load(self, data: dict[str, Any]) -> None:
        for name, records in data.items():
            if name not in self.objects:
                raise ValueError(f"stripe: unknown collection {name!r}; known: {', '.join(COLLECTIONS)}")
            for record in records or []:
                self.objects[name][record["id"]] = record
                self.owner[record["id"]] = name
            self._sorted.pop(name, None)

    def _ordered(self, name: str) -> _Ordered:
        """Newest first by `created`, ties by id (descending), with each id's position."""
        cached = self._sorted.get(name)
        if cached is None:
            items = sorted(self.objects[name].values(), key=lambda o: (o.get("created") or 0, o["id"]), reverse=True)
            cached = _Ordered(
                items, {o["id"]: i for i, o in enumerate(items)}, [-(o.get("created") or 0) for o in items]
            )
            self._sorted[name] = cached
        return cached

    def new_id(self, prefix: str) -> str:
        # Sortable within one second (ties sort by id): a fixed-width counter.
        return f"{prefix}_1Sbx{next(self._ids):012d}"

    # ------------------------------------------------------------ gatekeeping

    def authenticate(self, request: Request) -> str:
        header = request.header("authorization") or ""
        key = ""
        if header.lower().startswith("bearer "):
            key = header[7:].strip()
        elif header.lower().startswith("basic "):
            try:
                key = base64.b64decode(header[6:].strip()).decode().partition(":")[0]
            except ValueError:
                key = ""
        if not key:
            raise refuse(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization "
                "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        if self.keys is not None and key not in self.keys:
            raise refuse(401, f"Invalid API Key provided: {key[:8]}{'*' * 8}{key[-4:]}")
        if key.startswith("rk_") and request.method != "GET":
            # A restricted key with read permissions only: Stripe refuses each write with a 403,
            # a permission on that endpoint, not a refused credential.
            raise refuse(
                403,
                f"The provided key '{key[:8]}{'*' * 8}{key[-4:]}' does not have the required permissions for "
                "this endpoint. Having the 'rak_invoice_write' permission would allow this request to continue.",
            )
        return key

    def rate_limit(self, request: Request, key: str) -> Response | None:
        if not self.limits:
            return None
        per_second = 25 if key.startswith(("sk_test_", "rk_test_")) else 100
        window = self.windows.setdefault(key, Window(per_second, 1.0, self.clock))
        wait = window.retry_after()
        if wait > 0:
            response = error(
                429,
                "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
                code="rate_limit",
            )
            response.headers["Retry-After"] = retry_after_header(wait)
            response.headers["Stripe-Should-Retry"] = "true"
            return response
        window.count()
        return None

    # ------------------------------------------------------------ dispatch

    def begin(self, request: Request) -> Response | None:
        """At arrival: the key, and its rate window counted now, before the latency (a client
        pacing itself by the limit sends at that pace; it must be counted at that pace)."""
        try:
            key = self.authenticate(request)
        except Refusal as refusal:
            return refusal.response
        limited = self.rate_limit(request, key)
        if limited is not None:
            return limited
        request.admitted = key
        return None

    def handle(self, request: Request) -> Response:
        try:
            key = request.admitted
            if key is None:  # not through begin (a direct call)
                key = self.authenticate(request)
                limited = self.rate_limit(request, key)
                if limited is not None:
                    return limited
            if request.method == "POST":
                return self._idempotent(request, key)
            if request.method != "GET":
                raise refuse(404, f"Unrecognized request URL ({request.method}: {request.path}).")
            return self._get(request)
        except Refusal as refusal:
            return refusal.response

    def _idempotent(self, request: Request, key: str) -> Response:
        idem = request.header("idempotency-key")
        if not idem:
            return self._post(request)
        if len(idem) > 255:
            raise refuse(400, "Idempotency keys may be at most 255 characters long.", param="Idempotency-Key")
        stored = self.idempotency.get(key, idem)
        print_ = fingerprint(request)
        if stored is not None:
            if stored.fingerprint != print_:
                return error(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they were first used with. "
                    f"Try using a key other than '{idem}' if you meant to execute a different request.",
                    type_="idempotency_error",
                )
            replay = Response(
                stored.response.status, copy(stored.response.body), dict(stored.response.headers), effect="replayed"
            )
            replay.headers["Idempotent-Replayed"] = "true"
            replay.headers["Original-Request"] = stored.response.headers.get("Request-Id", "")
            return replay
        try:
            response = self._post(request)
        except Refusal as refusal:
            response = refusal.response
        response.headers["Idempotency-Key"] = idem
        response.headers["Request-Id"] = request.request_id
        self.idempotency.put(
            key, idem, print_, Response(response.status, copy(response.body), dict(response.headers), response.effect)
        )
        return response

    def _get(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "v1":
            raise refuse(404, f"Unrecognized request URL (GET: {request.path}).")
        name = parts[1]
        if name not in self.objects:
            raise refuse(404, f"Unrecognized request URL (GET: {request.path}).")
        if len(parts) == 2:
            return Response(200, self._list(request, name))
        obj = self._find(name, parts[2])
        if len(parts) == 3:
            return Response(
                200, self._expand(copy(obj), request.query.get("expand[]", []) + request.query.get("expand", []))
            )
        if len(parts) == 4 and name == "invoices" and parts[3] == "lines":
            lines = (obj.get("lines") or {}).get("data") or []
            positions = {line["id"]: i for i, line in enumerate(lines)}
            return Response(
                200, self._page(request, f"/v1/invoices/{obj['id']}/lines", lines, positions, lambda o: True)
            )
        raise refuse(404, f"Unrecognized request URL (GET: {request.path}).")

    def _find(self, name: str, ident: str) -> dict[str, Any]:
        obj = self.objects[name].get(ident)
        if obj is None:
            singular = name[:-1].replace("_", " ")
            raise refuse(404, f"No such {singular}: '{ident}'", code="resource_missing", param="id")
        return obj

    # ------------------------------------------------------------ lists

    def _list(self, request: Request, name: str) -> dict[str, Any]:
        ordered = self._ordered(name)
        checks = self._filters(request, name)
        bounds = self._created_bounds(request)

        def match(obj: dict[str, Any]) -> bool:
            created = obj.get("created") or 0
            if obj.get("deleted"):
                return False
            return all(op(created, value) for op, value in bounds) and all(check(obj) for check in checks)

        lower = [v + (op is _RANGE_OPS["gt"]) for op, v in bounds if op in (_RANGE_OPS["gt"], _RANGE_OPS["gte"], _eq)]
        upper = [v - (op is _RANGE_OPS["lt"]) for op, v in bounds if op in (_RANGE_OPS["lt"], _RANGE_OPS["lte"], _eq)]
        # Newest first: what `created` allows is one run of the list, found by bisection
        # (a window of a large list starts where it starts, not after a walk to it).
        span = (
            bisect_left(ordered.keys, -min(upper)) if upper else 0,
            bisect_right(ordered.keys, -max(lower)) if lower else len(ordered.items),
        )
        body = self._page(request, f"/v1/{name}", ordered.items, ordered.positions, match, span)
        expand = [
            e[len("data.") :]
            for e in request.query.get("expand[]", []) + request.query.get("expand", [])
            if e.startswith("data.")
        ]
        if expand:
            body["data"] = [self._expand(dict(obj), expand) for obj in body["data"]]
        return body

    def _page(
        self,
        request: Request,
        url: str,
        items: list[dict[str, Any]],
        positions: dict[str, int],
        match: Any,
        span: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """One page of `items` from a cursor; only `items[first:end]` (`span`) can match."""
        first, end = span or (0, len(items))
        limit_text = request.arg("limit", "10") or "10"
        try:
            limit = int(limit_text)
        except ValueError:
            raise refuse(400, f"Invalid integer: {limit_text}", param="limit") from None
        if not 1 <= limit <= 100:
            raise refuse(400, "This value must be between 1 and 100 (inclusive).", param="limit")
        after, before = request.arg("starting_after"), request.arg("ending_before")
        if after and before:
            raise refuse(400, "You may only specify one of these parameters: ending_before, starting_after.")
        picked: list[dict[str, Any]] = []
        if before:
            if before not in positions:
                raise refuse(400, f"No such object: '{before}'", code="resource_missing", param="ending_before")
            for i in range(min(positions[before], end) - 1, first - 1, -1):
                if match(items[i]):
                    picked.append(items[i])
                    if len(picked) > limit:
                        break
            has_more = len(picked) > limit
            page = list(reversed(picked[:limit]))
        else:
            start = first
            if after:
                if after not in positions:
                    raise refuse(400, f"No such object: '{after}'", code="resource_missing", param="starting_after")
                start = max(first, positions[after] + 1)
            for obj in _from(items, start, end):
                if match(obj):
                    picked.append(obj)
                    if len(picked) > limit:
                        break
            has_more = len(picked) > limit
            page = picked[:limit]
        # Live records, not copies: the answer is encoded under the sandbox's lock.
        return {"object": "list", "data": page, "has_more": has_more, "url": url}

    def _created_bounds(self, request: Request) -> list[tuple[Callable[[int, int], bool], int]]:
        bounds: list[tuple[Callable[[int, int], bool], int]] = []
        for key, values in request.query.items():
            if key == "created" or key.startswith("created["):
                op = "eq" if key == "created" else key[len("created[") : -1]
                try:
                    value = int(values[-1])
                except ValueError:
                    raise refuse(400, f"Invalid integer: {values[-1]}", param=key) from None
                if op == "eq":
                    bounds.append((_eq, value))
                elif op in _RANGE_OPS:
                    bounds.append((_RANGE_OPS[op], value))
                else:
                    raise refuse(400, f"Received unknown parameter: {key}", param=key)
        return bounds

    def _filters(self, request: Request, name: str) -> list[Callable[[dict[str, Any]], bool]]:
        checks: list[Callable[[dict[str, Any]], bool]] = []
        for param, field in EQUALITY_FILTERS[name].items():
            wanted = request.arg(param)
            if wanted is not None:
                checks.append(_field_equals(field, wanted))
        if name == "events":
            single = request.arg("type")
            many = request.query.get("types[]") or request.query.get("types") or []
            if single and many:
                raise refuse(400, "You may only specify one of these parameters: type, types.")
            if len(many) > 20:
                raise refuse(400, "You may pass at most 20 event types.", param="types")
            if single:
                checks.append(_type_is(single))
            elif many:
                checks.append(_type_in(frozenset(many)))
        return checks

    def _expand(self, obj: dict[str, Any], paths: list[str]) -> dict[str, Any]:
        for path in paths:
            field = path.split(".")[0]
            value = obj.get(field)
            if isinstance(value, str) and value in self.owner:
                obj[field] = self.objects[self.owner[value]][value]  # encoded under the lock
        return obj

    # ------------------------------------------------------------ writes

    def _post(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if len(parts) == 4 and parts[:2] == ["v1", "invoices"] and parts[3] in ("pay", "send", "void"):
            invoice = self._find("invoices", parts[2])
            form = {k: v[-1] for k, v in request.form().items()}
            action = {"pay": self._pay, "send": self._send, "void": self._void}[parts[3]]
            return action(invoice, form, request)
        raise refuse(404, f"Unrecognized request URL (POST: {request.path}).")

    def _pay(self, invoice: dict[str, Any], form: dict[str, str], request: Request) -> Response:
        if invoice.get("status") == "paid":
            raise refuse(400, "Invoice is already paid.", code="invoice_already_paid")
        if invoice.get("status") not in ("open", "uncollectible", "draft"):
            raise refuse(
                400, f"You can only pay an invoice that is open or uncollectible; this one is {invoice.get('status')}."
            )
        if form.get("paid_out_of_band", "").lower() != "true":
            raise refuse(
                402,
                "This sandbox has no payment methods: pay with paid_out_of_band=true.",
                type_="card_error",
                code="card_declined",
            )
        before = copy(invoice)
        now = int(self.clock())
        transitions = invoice.setdefault("status_transitions", {})
        if invoice.get("status") == "draft":
            transitions["finalized_at"] = now
        invoice.update(
            status="paid",
            paid=True,
            paid_out_of_band=True,
            amount_paid=invoice.get("amount_due", 0),
            amount_remaining=0,
        )
        transitions["paid_at"] = now
        self._emit("invoice.updated", invoice, before, request)
        self._emit("invoice.paid", invoice, before, request)
        return Response(200, copy(invoice), effect=f"marked invoice {invoice['id']} paid out of band")

    def _send(self, invoice: dict[str, Any], form: dict[str, str], request: Request) -> Response:
        if invoice.get("collection_method") != "send_invoice":
            raise refuse(400, "You can only manually send an invoice if its collection method is 'send_invoice'.")
        if invoice.get("status") != "open":
            raise refuse(400, f"You can only send an open invoice; this one is {invoice.get('status')}.")
        self._emit("invoice.sent", invoice, None, request)
        return Response(200, copy(invoice), effect=f"sent invoice {invoice['id']}")

    def _void(self, invoice: dict[str, Any], form: dict[str, str], request: Request) -> Response:
        if invoice.get("status") not in ("open", "uncollectible"):
            raise refuse(
                400, f"You can only void an open or uncollectible invoice; this one is {invoice.get('status')}."
            )
        before = copy(invoice)
        invoice["status"] = "void"
        invoice.setdefault("status_transitions", {})["voided_at"] = int(self.clock())
        self._emit("invoice.updated", invoice, before, request)
        self._emit("invoice.voided", invoice, before, request)
        return Response(200, copy(invoice), effect=f"voided invoice {invoice['id']}")

    def _emit(self, type_: str, obj: dict[str, Any], before: dict[str, Any] | None, request: Request) -> None:
        data: dict[str, Any] = {"object": copy(obj)}
        if before is not None and type_.endswith(".updated"):
            data["previous_attributes"] = {k: v for k, v in before.items() if obj.get(k) != v}
        event_id = self.new_id("evt")
        event = {
            "id": event_id,
            "object": "event",
            "api_version": API_VERSION,
            "created": int(self.clock()),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": request.request_id, "idempotency_key": request.header("idempotency-key")},
            "type": type_,
        }
        self.objects["events"][event_id] = event
        self.owner[event_id] = "events"
        self._sorted.pop("events", None)


@dataclass
class _Ordered:
    """A collection newest first, each id's position, and `keys`: minus `created` of each
    (so that they ascend, for bisection)."""

    items: list[dict[str, Any]]
    positions: dict[str, int]
    keys: list[int]


def _from(items: list[dict[str, Any]], start: int, end: int) -> Iterator[dict[str, Any]]:
    for i in range(start, end):
        yield items[i]


def _field_equals(field: str, wanted: str) -> Callable[[dict[str, Any]], bool]:
    """Whether the field (or the id of the object expanded into it) is `wanted`."""

    def check(obj: dict[str, Any]) -> bool:
        value = obj.get(field)
        return str(value.get("id") if isinstance(value, dict) else value) == wanted

    return check


def _type_is(wanted: str) -> Callable[[dict[str, Any]], bool]:
    return lambda obj: _type_matches(obj.get("type", ""), wanted)


def _type_in(wanted: frozenset[str]) -> Callable[[dict[str, Any]], bool]:
    return lambda obj: obj.get("type") in wanted


def _type_matches(actual: str, wanted: str) -> bool:
    if wanted.endswith("*"):
        return actual.startswith(wanted[:-1])
    return actual == wanted
