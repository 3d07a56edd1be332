"""A small stateful Stripe behind respx: lists newest first with `starting_after` /
`ending_before` / `created[gte]` / event `type(s)`, single objects, and the invoice
pay / send / void writes with Stripe's idempotency (the first answer replayed for the same
key, `Idempotent-Replayed: true`; the same key with other parameters is a 400)."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import respx
from pydantic import SecretStr

from connector.http import RetryPolicy
from connector.providers.stripe import StripeProvider, StripeSettings

BASE = "https://api.stripe.com"
NOW = 1_700_100_000
API_KEY = "sk_test_51NxYZaLkdIwHu7ixSECRETSECRETSECRET"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe"

RESOURCES = {
    "customers": "customers.json",
    "invoices": "invoices.json",
    "charges": "charges.json",
    "payment_intents": "payment_intents.json",
    "refunds": "refunds.json",
    "payouts": "payouts.json",
    "balance_transactions": "balance_transactions.json",
    "credit_notes": "credit_notes.json",
    "disputes": "disputes.json",
    "events": "events.json",
}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def make_provider(clock: Callable[[], float] = lambda: NOW, **settings: Any) -> StripeProvider:
    # The limiter is real; its rates are raised so the probes and windows of the many full
    # pulls here do not wait (the limits themselves are tested with the shared HTTP layer).
    settings = {"requests_per_second": 1000, "endpoint_requests_per_second": 1000, **settings}
    return StripeProvider(
        StripeSettings(api_key=SecretStr(API_KEY), **settings),
        connection="gateway",
        retry=RetryPolicy(sleep=lambda s: None, jitter=0, backoff_initial=0),
        clock=clock,
    )


def _newest_first(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda o: (o.get("created", 0), o["id"]), reverse=True)


class FakeStripe:
    def __init__(self, router: respx.MockRouter, *, empty: bool = False) -> None:
        self.objects: dict[str, list[dict[str, Any]]] = {
            name: ([] if empty else fixture(file)["data"]) for name, file in RESOURCES.items()
        }
        self.extra_lines: dict[str, list[dict[str, Any]]] = {}
        self.failures: list[httpx.Response] = []  # answered, in order, before anything else
        # Called first with each request; an answer it returns is sent instead.
        self.intercept: Callable[[httpx.Request], httpx.Response | None] | None = None
        self.delay = 0.0  # seconds each answer takes (to see requests overlap)
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.requests: list[httpx.Request] = []
        self.effects: Counter[str] = Counter()
        self.keys: dict[str, tuple[str, httpx.Response]] = {}
        router.route(host="api.stripe.com").mock(side_effect=self.handle)

    # -- state -----------------------------------------------------------------------------

    def put(self, resource: str, obj: dict[str, Any]) -> None:
        items = [o for o in self.objects[resource] if o["id"] != obj["id"]]
        self.objects[resource] = items + [obj]

    def add_event(
        self, event_id: str, type_: str, created: int, obj: dict[str, Any], api_version: str = "2023-08-16"
    ) -> None:
        self.put(
            "events",
            {
                "id": event_id,
                "object": "event",
                "api_version": api_version,
                "created": created,
                "data": {"object": copy.deepcopy(obj)},
                "livemode": False,
                "pending_webhooks": 0,
                "request": {"id": None, "idempotency_key": None},
                "type": type_,
            },
        )

    def prune_events(self, before: int) -> None:
        """Forget the events created before `before`, as Stripe does after 30 days."""
        self.objects["events"] = [e for e in self.objects["events"] if e["created"] >= before]

    def find(self, resource: str, object_id: str) -> dict[str, Any] | None:
        return next((o for o in self.objects[resource] if o["id"] == object_id), None)

    def gets(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "GET" and r.url.path == path]

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            failure = self.failures.pop(0) if self.failures else None
        try:
            if self.delay:
                time.sleep(self.delay)
            if failure is not None:
                return failure
            if self.intercept is not None and (answer := self.intercept(request)) is not None:
                return answer
            with self._lock:
                return self._answer(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.strip("/").split("/")[1:]  # after "v1"
        if request.method == "POST" and len(parts) == 3 and parts[0] == "invoices":
            return self._write(request, parts[1], parts[2])
        if request.method != "GET":
            return _error(405, "invalid_request_error", "unsupported")
        if len(parts) == 1:
            return self._list(request, parts[0])
        if len(parts) == 3 and parts[0] == "invoices" and parts[2] == "lines":
            items = self.extra_lines.get(parts[1], [])
            return self._page(request, f"/v1/invoices/{parts[1]}/lines", items, ordered=True)
        if len(parts) == 2:
            obj = self.find(parts[0], parts[1])
            if obj is None:
                return _error(
                    404, "invalid_request_error", f"No such {parts[0][:-1]}: '{parts[1]}'", code="resource_missing"
                )
            return httpx.Response(200, json=obj, headers={"Request-Id": "req_get"})
        return _error(404, "invalid_request_error", "Unrecognized request URL")

    def _list(self, request: httpx.Request, resource: str) -> httpx.Response:
        q = request.url.params
        items = self.objects.get(resource)
        if items is None:
            return _error(404, "invalid_request_error", "Unrecognized request URL")
        if "created[gte]" in q:
            items = [o for o in items if o["created"] >= int(q["created[gte]"])]
        if "created[lt]" in q:
            items = [o for o in items if o["created"] < int(q["created[lt]"])]
        if "type" in q:
            pattern = q["type"]
            items = [
                o
                for o in items
                if o["type"] == pattern or (pattern.endswith("*") and o["type"].startswith(pattern[:-1]))
            ]
        if "types[]" in q:
            wanted = set(q.get_list("types[]"))
            items = [o for o in items if o["type"] in wanted]
        if "charge" in q:
            items = [o for o in items if o.get("charge") == q["charge"]]
        return self._page(request, f"/v1/{resource}", items)

    def _page(
        self, request: httpx.Request, url: str, items: list[dict[str, Any]], ordered: bool = False
    ) -> httpx.Response:
        q = request.url.params
        items = list(items) if ordered else _newest_first(items)
        limit = int(q.get("limit", 10))
        ids = [o["id"] for o in items]
        if "ending_before" in q:
            if q["ending_before"] not in ids:
                return _error(
                    404, "invalid_request_error", f"No such object: '{q['ending_before']}'", code="resource_missing"
                )
            before = items[: ids.index(q["ending_before"])]
            page, has_more = before[-limit:], len(before) > limit
        else:
            if "starting_after" in q:
                if q["starting_after"] not in ids:
                    return _error(
                        404,
                        "invalid_request_error",
                        f"No such object: '{q['starting_after']}'",
                        code="resource_missing",
                    )
                items = items[ids.index(q["starting_after"]) + 1 :]
            page, has_more = items[:limit], len(items) > limit
        return httpx.Response(
            200,
            json={"object": "list", "url": url, "has_more": has_more, "data": page},
            headers={"Request-Id": "req_list"},
        )

    def _write(self, request: httpx.Request, invoice_id: str, verb: str) -> httpx.Response:
        key = request.headers.get("Idempotency-Key")
        params = request.content.decode()
        if key in self.keys:
            seen_params, answer = self.keys[key]
            if seen_params != params or not request.url.path.endswith(verb):
                return _error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                )
            return httpx.Response(
                answer.status_code, content=answer.content, headers={**answer.headers, "Idempotent-Replayed": "true"}
            )
        answer = self._effect(invoice_id, verb, parse_qs(params))
        if key:
            self.keys[key] = (params, answer)
        return answer

    def _effect(self, invoice_id: str, verb: str, form: dict[str, list[str]]) -> httpx.Response:
        invoice = self.find("invoices", invoice_id)
        if invoice is None:
            return _error(404, "invalid_request_error", f"No such invoice: '{invoice_id}'", code="resource_missing")
        self.effects[f"{verb} {invoice_id}"] += 1
        if verb == "pay":
            if invoice["status"] != "open":
                return _error(400, "invalid_request_error", "Invoice is already paid", code="invoice_not_open")
            invoice.update(
                status="paid",
                paid=True,
                paid_out_of_band=form.get("paid_out_of_band") == ["true"],
                amount_paid=invoice["amount_due"],
                amount_remaining=0,
            )
        elif verb == "void":
            invoice.update(status="void", amount_remaining=0)
        elif verb != "send":
            return _error(404, "invalid_request_error", "Unrecognized request URL")
        return httpx.Response(200, json=invoice, headers={"Request-Id": f"req_{verb}"})


def _error(status: int, type_: str, message: str, code: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"error": {"type": type_, "message": message}}
    if code:
        body["error"]["code"] = code
    return httpx.Response(status, json=body, headers={"Request-Id": "req_err"})
