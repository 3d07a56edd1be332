"""The built-in Xero provider passes the conformance kit, against our sandbox's Xero face."""

from __future__ import annotations

import copy
from datetime import date

from connector.demo import DEMO_CREDENTIALS
from connector.providers.xero import XeroProvider, XeroSettings
from connector.sandbox.generator import generate
from connector.testing import (
    ActionCase,
    MoneyCase,
    RecordCase,
    provider_test_class,
    sandbox_api,
)

BASE = "http://sandbox.kit/xero"
DATA = {**generate(3, "small", today=date(2026, 3, 2)).data, "credentials": DEMO_CREDENTIALS}
XERO = DATA["xero"]
PAGE_SIZE = 7


def _ms(raw: dict) -> int:
    return int(raw["UpdatedDateUTC"][6:-7])  # "/Date(1725305291000+0000)/"


def share_moments(records: list[dict], group: int = 3) -> None:
    """Oldest first, every `group` records take the update time of the first of them: with
    a page size that is no multiple of `group`, records changed in the same second fall on
    both sides of page boundaries, which is what proves a resumed read keeps the records at
    the cursor's moment (the kit skips that check without such a pair)."""
    ordered = sorted(records, key=_ms)
    for i, raw in enumerate(ordered):
        raw["UpdatedDateUTC"] = ordered[i - i % group]["UpdatedDateUTC"]


def more_credit_notes(total: int) -> None:
    """Copies of the book's credit notes under new ids, a day apart, up to `total`: the book
    has two, fewer than a page."""
    notes = XERO["CreditNotes"]
    for n in range(len(notes), total):
        extra = copy.deepcopy(notes[n % 2])
        extra.update(
            CreditNoteID=f"00000000-0000-4000-8000-{n:012d}",
            CreditNoteNumber=f"CN-KIT-{n:04d}",
            UpdatedDateUTC=f"/Date({_ms(notes[0]) + 86_400_000 * n}+0000)/",
        )
        notes.append(extra)


def a_payment_to_delete() -> dict:
    """A payment the book recorded that Xero would let us delete (the book's own are all
    reconciled or in batch payments)."""
    paid = next(p for p in XERO["Payments"] if p["Invoice"]["CurrencyCode"] == "USD")
    extra = copy.deepcopy(paid)
    extra.update(PaymentID="00000000-0000-4000-8000-00000000de1e", IsReconciled=False)
    extra.pop("BatchPaymentID", None)
    XERO["Payments"].append(extra)
    return extra


def a_fee_to_delete() -> dict:
    """A gateway fee booked as spend money from the bank account to the fee account."""
    bank = next(a for a in XERO["Accounts"] if a.get("Type") == "BANK")
    expense = next(a for a in XERO["Accounts"] if a.get("Type") == "EXPENSE")
    fee = {
        "BankTransactionID": "00000000-0000-4000-8000-0000000fee01",
        "Type": "SPEND",
        "Status": "AUTHORISED",
        "IsReconciled": False,
        "Contact": {"Name": "Stripe"},
        "BankAccount": {"AccountID": bank["AccountID"], "Code": bank["Code"]},
        "Date": "/Date(1772323200000+0000)/",
        "Reference": "ch_kit",
        "CurrencyCode": "USD",
        "LineAmountTypes": "NoTax",
        "LineItems": [{"Description": "fee", "Quantity": 1, "UnitAmount": "0.59", "AccountCode": expense["Code"]}],
        "Total": "0.59",
        "UpdatedDateUTC": "/Date(1772323200000+0000)/",
    }
    XERO.setdefault("BankTransactions", []).append(fee)
    return fee


more_credit_notes(2 * PAGE_SIZE + 1)
DELETABLE_PAYMENT = a_payment_to_delete()
DELETABLE_FEE = a_fee_to_delete()
for _key in ("Contacts", "Invoices", "CreditNotes", "Payments"):
    share_moments(XERO[_key])
OPEN = next(i for i in XERO["Invoices"] if i["Status"] == "AUTHORISED" and i["CurrencyCode"] == "USD")


def invoice(currency: str, amount: str, status: str = "AUTHORISED") -> dict:
    raw = copy.deepcopy(OPEN)
    line = {**raw["LineItems"][0], "Quantity": "1", "UnitAmount": amount, "LineAmount": amount, "TaxAmount": "0"}
    raw.update(
        CurrencyCode=currency,
        LineItems=[line],
        SubTotal=amount,
        TotalTax="0",
        Total=amount,
        AmountDue=amount,
        AmountPaid="0",
        AmountCredited="0",
        Payments=[],
        Status=status,
    )
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
    page_size=PAGE_SIZE,
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
        ActionCase(
            "record_payment",
            {"object_type": "invoice", "remote_id": OPEN["InvoiceID"]},
            {"amount": "10.00", "currency": "USD", "date": "2026-03-01", "reference": "kit"},
        ),
        ActionCase("send_invoice", {"object_type": "invoice", "remote_id": OPEN["InvoiceID"]}, {}),
        ActionCase(
            "record_fee",
            {"object_type": "payment", "remote_id": "ch_kit"},
            {"amount": "0.59", "currency": "USD", "date": "2026-03-01", "reference": "ch_kit"},
        ),
        ActionCase(
            "delete_payment",
            {"object_type": "payment", "remote_id": DELETABLE_PAYMENT["PaymentID"]},
            {"reverses": "kit-record-payment"},
        ),
        ActionCase(
            "delete_fee",
            {"object_type": "bank_transaction", "remote_id": DELETABLE_FEE["BankTransactionID"]},
            {"reverses": "kit-record-fee"},
        ),
    ],
)
