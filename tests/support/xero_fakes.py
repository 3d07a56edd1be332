"""A stateful fake of the parts of Xero the adapter uses, served through respx.

It behaves as Xero documents: `If-Modified-Since` (inclusive here), `where` equality filters,
`order=UpdatedDateUTC ASC`, `page` / `pageSize`, OAuth refresh tokens that rotate (the old one
stops working), and `Idempotency-Key` replays of the first answer to a write.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import respx

from connector.http import dumps_exact
from connector.mappings.transforms import parse_dotnet_date, parse_iso_datetime

API = "https://api.xero.com/api.xro/2.0"
TOKEN_URL = "https://identity.xero.com/connect/token"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "xero"
TENANT = "a3f1c2d4-5b6e-4f70-8a9b-0c1d2e3f4a5b"
CLIENT_ID = "4C1D2E3F4A5B6C7D8E9F0A1B2C3D4E5F"
CLIENT_SECRET = "xero-client-secret-do-not-log"
REFRESH_TOKEN = "rt-initial-7f3a9c2e5b"

LISTS = {"/Contacts": "Contacts", "/Invoices": "Invoices", "/CreditNotes": "CreditNotes", "/Payments": "Payments"}


def fixture(name: str) -> dict[str, Any]:
    """A fixture file with its numbers as Decimals, as the adapter reads Xero's answers."""
    return json.loads((FIXTURES / name).read_text(), parse_float=Decimal)


def records(name: str) -> list[dict[str, Any]]:
    body = fixture(name)
    key = next(k for k in ("Contacts", "Invoices", "CreditNotes", "Payments") if k in body)
    return list(body[key])


def _updated(raw: dict[str, Any]):
    return parse_dotnet_date(raw["UpdatedDateUTC"])


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        content=dumps_exact(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


class FakeXero:
    def __init__(self) -> None:
        self.data: dict[str, list[dict[str, Any]]] = {key: [] for key in LISTS.values()}
        self.honour_where = True
        self.ignore_page = False  # a broken proxy that always answers page 1
        self.requests: list[httpx.Request] = []
        self.token_requests: list[dict[str, str]] = []
        # Answers to hand out before the real ones, by request number (1-based, API only).
        self.injected: dict[int, httpx.Response] = {}
        self.valid_refresh = {REFRESH_TOKEN}
        self.valid_access = {"at-configured-1d9e"}
        self._issued = 0
        self.replays: dict[str, httpx.Response] = {}
        self.payments_made: list[dict[str, Any]] = []
        self.emails_sent: list[str] = []
        self.payment_answer: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    # -- routing -----------------------------------------------------------------------

    def install(self, router: respx.Router) -> None:
        router.post(TOKEN_URL).mock(side_effect=self._token)
        for path in LISTS:
            router.get(API + path).mock(side_effect=self._api(self._list))
        router.get(url__regex=re.escape(API) + r"/Invoices/(?P<ident>[0-9a-f-]{36})$").mock(
            side_effect=self._api(self._invoice)
        )
        router.put(API + "/Payments").mock(side_effect=self._api(self._put_payment))
        router.post(url__regex=re.escape(API) + r"/Invoices/(?P<ident>[0-9a-f-]{36})/Email$").mock(
            side_effect=self._api(self._email)
        )

    def _api(self, handler: Callable[..., httpx.Response]) -> Callable[..., httpx.Response]:
        def serve(request: httpx.Request, **kwargs: Any) -> httpx.Response:
            self.requests.append(request)
            injected = self.injected.pop(len(self.requests), None)
            if injected is not None:
                return injected
            if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.valid_access:
                return json_response(
                    401, {"Title": "Unauthorized", "Status": 401, "Detail": "AuthenticationUnsuccessful"}
                )
            if request.headers.get("xero-tenant-id") != TENANT:
                return json_response(403, {"Title": "Forbidden", "Status": 403, "Detail": "AuthorizationUnsuccessful"})
            return handler(request, **kwargs)

        return serve

    # -- OAuth ---------------------------------------------------------------------------

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.token_requests.append(form)
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {basic}":
            return json_response(400, {"error": "invalid_client"})
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") not in self.valid_refresh:
            return json_response(400, {"error": "invalid_grant"})
        self._issued += 1
        self.valid_refresh.discard(form["refresh_token"])
        access, refresh = f"at-issued-{self._issued}-8b2f", f"rt-issued-{self._issued}-4c7d"
        self.valid_refresh.add(refresh)
        self.valid_access.add(access)
        return json_response(
            200,
            {
                "access_token": access,
                "refresh_token": refresh,
                "expires_in": 1800,
                "token_type": "Bearer",
                "scope": "accounting.transactions",
            },
        )

    # -- reads ---------------------------------------------------------------------------

    def _list(self, request: httpx.Request) -> httpx.Response:
        key = LISTS[request.url.path.removeprefix("/api.xro/2.0")]
        params = request.url.params
        items = list(self.data[key])
        where = params.get("where")
        if where and self.honour_where:
            match = re.fullmatch(r'(\w+)=="([^"]*)"', where)
            assert match is not None, f"where clause the fake does not read: {where}"
            field, value = match.groups()
            items = [item for item in items if item.get(field) == value]
        since = request.headers.get("If-Modified-Since")
        if since:
            moment = parse_iso_datetime(since)
            items = [item for item in items if _updated(item) >= moment]
        if params.get("order") == "UpdatedDateUTC ASC":
            items.sort(key=_updated)
        page, size = int(params.get("page", 1)), int(params.get("pageSize", 100))
        page = 1 if self.ignore_page else page
        chunk = items[(page - 1) * size : page * size]
        body = {
            "Id": "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d",
            "Status": "OK",
            "ProviderName": "AR Connector",
            "DateTimeUTC": "/Date(1770379300000)/",
            "pagination": {
                "page": page,
                "pageSize": size,
                "pageCount": -(-len(items) // size),
                "itemCount": len(items),
            },
            key: chunk,
        }
        return json_response(200, body)

    def _invoice(self, request: httpx.Request, ident: str) -> httpx.Response:
        found = [i for i in self.data["Invoices"] if i["InvoiceID"] == ident]
        if not found:
            return json_response(404, {"Title": "Not Found", "Status": 404})
        return json_response(200, {"Id": "8b9c0d1e-2f3a-4b4c-9d5e-6f7a8b9c0d1e", "Status": "OK", "Invoices": found})

    # -- writes --------------------------------------------------------------------------

    def _put_payment(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("Idempotency-Key")
        if key and key in self.replays:
            return self.replays[key]
        body = json.loads(request.content, parse_float=Decimal)
        payment = body["Payments"][0]
        invoice = next(i for i in self.data["Invoices"] if i["InvoiceID"] == payment["Invoice"]["InvoiceID"])
        if self.payment_answer is not None:
            answer = self.payment_answer(payment)
        else:
            self.payments_made.append(payment)
            answer = fixture("payment_created.json")
            made = answer["Payments"][0]
            made["PaymentID"] = f"e59c07cd-fed1-4a3d-9bcb-{len(self.payments_made):012d}"
            made["Amount"] = payment["Amount"]
            made["Reference"] = payment.get("Reference", "")
            made["Invoice"] = {
                **made["Invoice"],
                "InvoiceID": invoice["InvoiceID"],
                "CurrencyCode": invoice["CurrencyCode"],
            }
        response = json_response(200, answer)
        if key:
            self.replays[key] = response
        return response

    def _email(self, request: httpx.Request, ident: str) -> httpx.Response:
        key = request.headers.get("Idempotency-Key")
        if key and key in self.replays:
            return self.replays[key]
        self.emails_sent.append(ident)
        response = httpx.Response(204)
        if key:
            self.replays[key] = response
        return response
