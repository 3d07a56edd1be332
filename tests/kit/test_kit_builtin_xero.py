"""The built-in Xero provider passes the conformance kit, against our sandbox's Xero face."""

from __future__ import annotations

import copy
from datetime import date

from connector.demo import DEMO_CREDENTIALS
from connector.sandbox.generator import generate
from connector.testing import (
    ActionCase,
    MoneyCase,
    RecordCase,
    provider_test_class,
    sandbox_api,
)
from providers.xero import XeroProvider, XeroSettings

BASE = "http://sandbox.kit/xero"
DATA = {**generate(3, "small", today=date(2026, 3, 2)).data, "credentials": DEMO_CREDENTIALS}
XERO = DATA["xero"]
OPEN = next(i for i in XERO["Invoices"] if i["Status"] == "AUTHORISED" and i["CurrencyCode"] == "USD")


def invoice(currency: str, amount: str, status: str = "AUTHORISED") -> dict:
    raw = copy.deepcopy(OPEN)
    line = {**raw["LineItems"][0], "Quantity": "1", "UnitAmount": amount, "LineAmount": amount, "TaxAmount": "0"}
    raw.update(CurrencyCode=currency, LineItems=[line], SubTotal=amount, TotalTax="0", Total=amount,
               AmountDue=amount, AmountPaid="0", AmountCredited="0", Payments=[], Status=status)
    return raw


SETTINGS = XeroSettings(
    base_url=BASE,
    token_url=f"{BASE}/oauth/token",
    tenant_id=DEMO_CREDENTIALS["xero"]["tenant_ids"][0],
    client_id=DEMO_CREDENTIALS["xero"]["client_id"],
    client_secret=DEMO_CREDENTIALS["xero"]["client_secret"],
    refresh_token=DEMO_CREDENTIALS["xero"]["refresh_token"],
    payment_account_code=next(a["Code"] for a in XERO["Accounts"] if a.get("Type") == "BANK"),
    fee_account_code=next(a["Code"] for a in XERO["Accounts"] if a.get("Type") == "EXPENSE"),
    page_size=7,
)

TestXeroKit = provider_test_class(
    XeroProvider,
    settings=SETTINGS,
    router=sandbox_api(DATA),
    money=[
        MoneyCase("invoices", invoice("JPY", "15000"), "total", "15000", "JPY"),
        MoneyCase("invoices", invoice("KWD", "12.345"), "total", "12.345", "KWD"),
    ],
    voids=[
        RecordCase("invoices", invoice("USD", "10.00", "VOIDED"), "void"),
        RecordCase("invoices", invoice("USD", "10.00", "DELETED"), "void"),
    ],
    actions=[
        ActionCase("record_payment", {"object_type": "invoice", "remote_id": OPEN["InvoiceID"]},
                   {"amount": "10.00", "currency": "USD", "date": "2026-03-01", "reference": "kit"}),
        ActionCase("send_invoice", {"object_type": "invoice", "remote_id": OPEN["InvoiceID"]}, {}),
        ActionCase("record_fee", {"object_type": "payment", "remote_id": "ch_kit"},
                   {"amount": "0.59", "currency": "USD", "date": "2026-03-01", "reference": "ch_kit"}),
    ],
)
