"""QuickBooks passes the conformance kit (connector.plugin_testing), against the sandbox's
QuickBooks face, exactly as a partner would run it."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta

from pydantic import SecretStr

from connector.plugin_testing import ActionCase, MoneyCase, RecordCase, provider_test_class, sandbox_api
from connector.sandbox.generator import generate
from connector.sandbox.quickbooks_api import quickbooks_book
from connector_quickbooks import QuickBooksProvider, QuickBooksSettings

BASE = "http://sandbox.kit/quickbooks"
BOOK = quickbooks_book(generate(3, "small", today=date(2026, 3, 2)).data["xero"])
PAGE_SIZE = 2


def more_credit_memos(total: int) -> None:
    """Copies of the book's credit memos under new Ids, a day apart, up to `total`: the book
    has two, one page, and the resume checks need a page boundary with records after it."""
    memos = BOOK["CreditMemo"]
    first = datetime.fromisoformat(memos[0]["MetaData"]["LastUpdatedTime"])
    for n in range(len(memos), total):
        extra = copy.deepcopy(memos[n % 2])
        stamp = (first + timedelta(days=n)).isoformat()
        extra.update(
            Id=str(9000 + n), DocNumber=f"CN-KIT-{n:03d}", MetaData={"CreateTime": stamp, "LastUpdatedTime": stamp}
        )
        memos.append(extra)


def share_moments(records: list[dict], group: int = 3) -> None:
    """Oldest first, every `group` records take the LastUpdatedTime of the first of them: with
    a page size that is no multiple of `group`, records changed in the same second fall on
    both sides of page boundaries, which is what proves a resumed read keeps the records at
    the cursor's moment (the kit skips that check without such a pair)."""
    ordered = sorted(records, key=lambda r: datetime.fromisoformat(r["MetaData"]["LastUpdatedTime"]))
    for i, raw in enumerate(ordered):
        raw["MetaData"] = {**raw["MetaData"], "LastUpdatedTime": ordered[i - i % group]["MetaData"]["LastUpdatedTime"]}


more_credit_memos(2 * PAGE_SIZE + 1)
for _entity in ("Customer", "Invoice", "Payment", "CreditMemo"):
    share_moments(BOOK[_entity])
OPEN = next(
    i
    for i in BOOK["Invoice"]
    if i["Balance"] == i["TotalAmt"] and i["TotalAmt"] > 0 and i["CurrencyRef"]["value"] == "USD"
)


def invoice(currency: str, amount: str, voided: bool = False) -> dict:
    raw = copy.deepcopy(OPEN)
    raw.update(
        CurrencyRef={"value": currency}, Line=[], TxnTaxDetail={"TotalTax": "0"}, TotalAmt=amount, Balance=amount
    )
    if voided:
        raw.update(TotalAmt="0", Balance="0", PrivateNote="Voided")
    return raw


SETTINGS = QuickBooksSettings(
    base_url=BASE,
    token_url=f"{BASE}/oauth/token",
    realm_id="4620816365257778210",
    client_id="kit-client",
    client_secret=SecretStr("kit-secret"),
    refresh_token=SecretStr("kit-refresh"),
    page_size=PAGE_SIZE,
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
        RecordCase(
            "invoices",
            {
                "domain": "QBO",
                "status": "Deleted",
                "Id": OPEN["Id"],
                "MetaData": {"LastUpdatedTime": "2026-03-01T10:00:00-07:00"},
                "CurrencyRef": {"value": "USD"},
            },
            "void",
        ),
    ],
    actions=[
        ActionCase(
            "record_payment",
            {"object_type": "invoice", "remote_id": OPEN["Id"]},
            {"amount": "10.00", "currency": "USD", "date": "2026-03-01", "reference": "kit"},
        ),
        ActionCase("send_invoice", {"object_type": "invoice", "remote_id": OPEN["Id"]}, {}),
    ],
)
