"""Fixtures for the QuickBooks plugin's tests: objects as Intuit's published examples show
them (API reference samples, XSD field names), and a provider wired to respx."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from connector.plugin import RetryPolicy
from connector_quickbooks import QuickBooksProvider, QuickBooksSettings

BASE = "https://qbo.test"
REALM = "9130357766900456"
COMPANY = f"{BASE}/v3/company/{REALM}"
TOKEN_URL = "https://oauth.test/oauth2/v1/tokens/bearer"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC).timestamp()


def settings(**overrides: Any) -> QuickBooksSettings:
    values: dict[str, Any] = {
        "base_url": BASE,
        "realm_id": REALM,
        "client_id": "ABcdClient",
        "client_secret": "qbo-client-secret-value",
        "refresh_token": "AB11refresh-token-one",
        "access_token": "eyJaccess-token-one",
        "access_token_expires_at": datetime.fromtimestamp(NOW + 3000, UTC),
        "token_url": TOKEN_URL,
        "page_size": 2,
        "home_currency": "USD",
    }
    values.update(overrides)
    return QuickBooksSettings(**values)


class Store:
    def __init__(self) -> None:
        self.saved: list[dict[str, Any]] = []

    def load(self, connection: str) -> dict[str, Any] | None:
        return self.saved[-1] if self.saved else None

    def save(self, connection: str, tokens: dict[str, Any]) -> None:
        self.saved.append(dict(tokens))


def provider(sleeps: list[float] | None = None, store: Store | None = None, **overrides: Any) -> QuickBooksProvider:
    retry = RetryPolicy(sleep=(sleeps.append if sleeps is not None else lambda s: None), jitter=0, clock=lambda: NOW)
    return QuickBooksProvider(
        settings(**overrides), connection="ledger", token_store=store, retry=retry, clock=lambda: NOW
    )


def answer(body: dict[str, Any], status: int = 200) -> httpx.Response:
    """A JSON answer with amounts as exact decimals (as QuickBooks writes them)."""
    return httpx.Response(
        status,
        content=json.dumps(body, default=str).replace('"__D', "").replace('D__"', ""),
        headers={"Content-Type": "application/json", "intuit_tid": "1-abc"},
    )


def D(text: str) -> Any:  # noqa: N802 - a JSON number written digit for digit
    return f"__D{text}D__"


def query_body(entity: str, objects: list[dict[str, Any]], start: int = 1) -> dict[str, Any]:
    inner: dict[str, Any] = {entity: objects, "startPosition": start, "maxResults": len(objects)} if objects else {}
    return {"QueryResponse": inner, "time": "2024-06-01T05:00:00.000-07:00"}


def customer(ident: str = "67", updated: str = "2015-07-23T10:58:12-07:00", **extra: Any) -> dict[str, Any]:
    obj = {
        "domain": "QBO",
        "FamilyName": "King",
        "DisplayName": "King's Groceries",
        "DefaultTaxCodeRef": {"value": "2"},
        "PrimaryEmailAddr": {"Address": "jdrew@myemail.com"},
        "PreferredDeliveryMethod": "Print",
        "GivenName": "James",
        "FullyQualifiedName": "King's Groceries",
        "BillWithParent": False,
        "Job": False,
        "BalanceWithJobs": D("0"),
        "PrimaryPhone": {"FreeFormNumber": "(555) 555-5555"},
        "Active": True,
        "MetaData": {"CreateTime": "2015-07-23T10:58:12-07:00", "LastUpdatedTime": updated},
        "MiddleName": "B",
        "Notes": "Here are other details.",
        "Taxable": True,
        "Balance": D("0"),
        "SyncToken": "0",
        "CompanyName": "King Groceries",
        "PrintOnCheckName": "King Groceries",
        "sparse": False,
        "Id": ident,
        "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
    }
    obj.update(extra)
    return obj


def invoice(
    ident: str = "130", updated: str = "2014-09-19T13:16:17-07:00", *, balance: str = "362.07", **extra: Any
) -> dict[str, Any]:
    """Intuit's invoice example (Id 130, DocNumber 1037): 275.00 + 12.75 + 47.50 = 335.25, tax 26.82."""
    obj = {
        "TxnDate": "2014-09-19",
        "domain": "QBO",
        "PrintStatus": "NeedToPrint",
        "SalesTermRef": {"value": "3"},
        "TotalAmt": D("362.07"),
        "Line": [
            {
                "Description": "Rock Fountain",
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "TaxCodeRef": {"value": "TAX"},
                    "Qty": 1,
                    "UnitPrice": 275,
                    "ItemRef": {"name": "Rock Fountain", "value": "5"},
                },
                "LineNum": 1,
                "Amount": D("275.0"),
                "Id": "1",
            },
            {
                "Description": "Fountain Pump",
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "TaxCodeRef": {"value": "TAX"},
                    "Qty": 1,
                    "UnitPrice": D("12.75"),
                    "ItemRef": {"name": "Pump", "value": "11"},
                },
                "LineNum": 2,
                "Amount": D("12.75"),
                "Id": "2",
            },
            {
                "Description": "Concrete for fountain installation",
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "TaxCodeRef": {"value": "TAX"},
                    "Qty": 5,
                    "UnitPrice": D("9.5"),
                    "ItemRef": {"name": "Concrete", "value": "3"},
                },
                "LineNum": 3,
                "Amount": D("47.5"),
                "Id": "3",
            },
            {"DetailType": "SubTotalLineDetail", "Amount": D("335.25"), "SubTotalLineDetail": {}},
        ],
        "DueDate": "2014-10-19",
        "ApplyTaxAfterDiscount": False,
        "DocNumber": "1037",
        "sparse": False,
        "CustomerMemo": {"value": "Thank you for your business and have a great day!"},
        "Deposit": D("0"),
        "Balance": D(balance),
        "CustomerRef": {"name": "Sonnenschein Family Store", "value": "24"},
        "TxnTaxDetail": {
            "TxnTaxCodeRef": {"value": "2"},
            "TotalTax": D("26.82"),
            "TaxLine": [
                {
                    "DetailType": "TaxLineDetail",
                    "Amount": D("26.82"),
                    "TaxLineDetail": {
                        "NetAmountTaxable": D("335.25"),
                        "TaxPercent": 8,
                        "TaxRateRef": {"value": "3"},
                        "PercentBased": True,
                    },
                }
            ],
        },
        "SyncToken": "0",
        "LinkedTxn": [],
        "BillEmail": {"Address": "Familiystore@intuit.com"},
        "EmailStatus": "NotSet",
        "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
        "MetaData": {"CreateTime": "2014-09-19T13:16:17-07:00", "LastUpdatedTime": updated},
        "Id": ident,
    }
    obj.update(extra)
    return obj


def payment(ident: str = "163", updated: str = "2015-01-16T15:08:12-08:00", **extra: Any) -> dict[str, Any]:
    """Intuit's payment example (Id 163): 65.00 received, 55.00 linked to invoice 70."""
    obj = {
        "SyncToken": "0",
        "domain": "QBO",
        "DepositToAccountRef": {"value": "4"},
        "UnappliedAmt": D("10.0"),
        "TxnDate": "2015-01-16",
        "TotalAmt": D("65.0"),
        "ProcessPayment": False,
        "sparse": False,
        "Line": [{"Amount": D("55.0"), "LineEx": {"any": []}, "LinkedTxn": [{"TxnId": "70", "TxnType": "Invoice"}]}],
        "CustomerRef": {"name": "Red Rock Diner", "value": "20"},
        "Id": ident,
        "PaymentRefNum": "1001",
        "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
        "MetaData": {"CreateTime": "2015-01-16T15:08:12-08:00", "LastUpdatedTime": updated},
    }
    obj.update(extra)
    return obj


def credit_memo(ident: str = "73", updated: str = "2014-09-02T11:22:19-07:00", **extra: Any) -> dict[str, Any]:
    """Intuit's credit memo example (Id 73, DocNumber 1026): 50.00, all of it still to apply."""
    obj = {
        "RemainingCredit": D("50"),
        "domain": "QBO",
        "sparse": False,
        "Id": ident,
        "SyncToken": "0",
        "MetaData": {"CreateTime": "2014-09-02T11:22:19-07:00", "LastUpdatedTime": updated},
        "DocNumber": "1026",
        "TxnDate": "2014-09-02",
        "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
        "Line": [
            {
                "Id": "1",
                "LineNum": 1,
                "Description": "Pest Control Services",
                "Amount": D("50.0"),
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": "10", "name": "Pest Control"},
                    "UnitPrice": 50,
                    "Qty": 1,
                    "TaxCodeRef": {"value": "NON"},
                },
            },
            {"Amount": D("50.0"), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
        ],
        "TxnTaxDetail": {"TotalTax": 0},
        "CustomerRef": {"value": "3", "name": "Cool Cars"},
        "TotalAmt": D("50.0"),
        "Balance": D("50"),
        "PrintStatus": "NeedToPrint",
        "EmailStatus": "NotSet",
    }
    obj.update(extra)
    return obj


def tombstone(ident: str, updated: str) -> dict[str, Any]:
    """How CDC reports a deleted object: Id, status and MetaData only."""
    return {"domain": "QBO", "status": "Deleted", "Id": ident, "MetaData": {"LastUpdatedTime": updated}}


def cdc_body(entity: str, objects: list[dict[str, Any]]) -> dict[str, Any]:
    part = {entity: objects, "startPosition": 1, "maxResults": len(objects)} if objects else {}
    return {"CDCResponse": [{"QueryResponse": [part]}], "time": "2024-06-01T05:00:00.000-07:00"}


def decimal(text: str) -> Decimal:
    return Decimal(text)


def exact(value: Any) -> Any:
    """The fixture with its D("...") numbers as Decimals (for the sandbox and the mapper)."""
    if isinstance(value, str) and value.startswith("__D") and value.endswith("D__"):
        return Decimal(value[3:-3])
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exact(v) for v in value]
    return value
