"""The built-in Stripe provider passes the conformance kit, against our sandbox's Stripe face."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path

from connector.demo import DEMO_CREDENTIALS
from connector.providers.stripe import StripeProvider, StripeSettings
from connector.sandbox.generator import generate
from connector.testing import (
    ActionCase,
    MoneyCase,
    RecordCase,
    provider_test_class,
    sandbox_api,
)

DATA = {**generate(3, "small", today=date(2026, 3, 2)).data, "credentials": DEMO_CREDENTIALS}
# The generated book has no Stripe credit notes: add the recorded ones.
CREDIT_NOTES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe" / "credit_notes.json"
DATA["stripe"]["credit_notes"] = json.loads(CREDIT_NOTES.read_text())["data"]
# Nor disputes: add the recorded one, on a charge of the book.
DISPUTES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe" / "disputes.json"
DATA["stripe"]["disputes"] = json.loads(DISPUTES.read_text())["data"]
for dispute in DATA["stripe"]["disputes"]:
    dispute["charge"] = DATA["stripe"]["charges"][0]["id"]
OPEN = [i for i in DATA["stripe"]["invoices"] if i["status"] == "open"]
PAGE_SIZE = 5


def more(objects: list[dict], total: int, prefix: str) -> None:
    """Copies of the first object under new ids (an hour older each) until there are `total`,
    so the stream spans two list pages: the loop and resume checks need a page boundary."""
    for n in range(len(objects), total):
        extra = copy.deepcopy(objects[0])
        extra.update(id=f"{prefix}_kit{n:04d}", created=objects[0]["created"] - 3600 * n)
        objects.append(extra)


# The book has 4 refunds and one recorded credit note: fewer than a page each.
more(DATA["stripe"]["refunds"], PAGE_SIZE + 2, "re")
more(DATA["stripe"]["credit_notes"], PAGE_SIZE + 2, "cn")
more(DATA["stripe"]["disputes"], PAGE_SIZE + 2, "dp")


def invoice(currency: str, minor: int, status: str = "open") -> dict:
    raw = copy.deepcopy(OPEN[0])
    raw.update(
        currency=currency,
        status=status,
        subtotal=minor,
        total=minor,
        amount_due=minor,
        amount_remaining=minor,
        amount_paid=0,
        subtotal_excluding_tax=minor,
        total_excluding_tax=minor,
        tax=0,
        lines={"object": "list", "data": [], "has_more": False, "url": "/v1/invoices/x/lines"},
    )
    return raw


def target(raw: dict) -> dict:
    return {"object_type": "invoice", "remote_id": raw["id"]}


TestStripeKit = provider_test_class(
    StripeProvider,
    settings=StripeSettings(
        base_url="http://sandbox.kit/stripe",
        api_key=DEMO_CREDENTIALS["stripe"][0],
        page_size=PAGE_SIZE,
        full_pull_windows=1,
    ),
    router=sandbox_api(DATA),
    money=[
        MoneyCase("invoices", invoice("jpy", 15000), "total", "15000", "JPY"),
        MoneyCase("invoices", invoice("kwd", 12345), "total", "12.345", "KWD"),
    ],
    voids=[
        RecordCase("invoices", invoice("usd", 1000, "void"), "void"),
        RecordCase("customers", {"id": "cus_gone", "object": "customer", "deleted": True}, "deleted"),
    ],
    actions=[
        ActionCase("mark_paid", target(OPEN[0]), {}),
        ActionCase("send_invoice", target(OPEN[1]), {}),
        ActionCase("void_invoice", target(OPEN[2]), {}),
    ],
)
