"""QuickBooks passes the conformance kit (connector.testing), against the sandbox's
QuickBooks face, exactly as a partner would run it."""

from __future__ import annotations

import copy
from datetime import date

from connector.sandbox.generator import generate
from connector.sandbox.quickbooks_api import quickbooks_book
from connector.testing import ActionCase, MoneyCase, RecordCase, provider_test_class, sandbox_api
from connector_quickbooks import QuickBooksProvider, QuickBooksSettings

BASE = "http://sandbox.kit/quickbooks"
BOOK = quickbooks_book(generate(3, "small", today=date(2026, 3, 2)).data["xero"])
OPEN = next(i for i in BOOK["Invoice"] if i["Balance"] == i["TotalAmt"] and i["TotalAmt"] > 0 and i["CurrencyRef"]["value"] == "USD")


def invoice(currency: str, amount: str, voided: bool = False) -> dict:
    raw = copy.deepcopy(OPEN)
    raw.update(CurrencyRef={"value": currency}, Line=[], TxnTaxDetail={"TotalTax": "0"}, TotalAmt=amount, Balance=amount)
    if voided:
        raw.update(TotalAmt="0", Balance="0", PrivateNote="Voided")
    return raw


SETTINGS = QuickBooksSettings(
    base_url=BASE, token_url=f"{BASE}/oauth/token", realm_id="4620816365257778210",
    client_id="kit-client", client_secret="kit-secret", refresh_token="kit-refresh", page_size=2,
)

TestQuickBooksKit = provider_test_class(
    QuickBooksProvider,
    settings=SETTINGS,
    router=sandbox_api({"quickbooks": BOOK}),
    money=[
        MoneyCase("invoices", invoice("JPY", "15000"), "total", "15000", "JPY"),
        MoneyCase("invoices", invoice("KWD", "12.345"), "total", "12.345", "KWD"),
    ],
    voids=[
        RecordCase("invoices", invoice("USD", "10.00", voided=True), "void"),
        RecordCase("invoices", {"domain": "QBO", "status": "Deleted", "Id": OPEN["Id"],
                                "MetaData": {"LastUpdatedTime": "2026-03-01T10:00:00-07:00"}, "CurrencyRef": {"value": "USD"}}, "void"),
    ],
    actions=[
        ActionCase("record_payment", {"object_type": "invoice", "remote_id": OPEN["Id"]},
                   {"amount": "10.00", "currency": "USD", "date": "2026-03-01", "reference": "kit"}),
        ActionCase("send_invoice", {"object_type": "invoice", "remote_id": OPEN["Id"]}, {}),
    ],
)
