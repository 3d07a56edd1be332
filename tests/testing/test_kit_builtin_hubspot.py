"""The built-in HubSpot provider passes the conformance kit, against our sandbox's HubSpot face
(OAuth app credentials, so the token checks run)."""

from __future__ import annotations

import copy
from datetime import date

from connector.demo import DEMO_CREDENTIALS
from connector.providers.hubspot import HubSpotProvider, HubSpotSettings
from connector.sandbox.generator import generate
from connector.testing import (
    ActionCase,
    MoneyCase,
    RecordCase,
    provider_test_class,
    sandbox_api,
)

BASE = "http://sandbox.kit/hubspot"
DATA = {**generate(3, "small", today=date(2026, 3, 2)).data, "credentials": DEMO_CREDENTIALS}
PAGE_SIZE = 6


def share_moments(object_type: str, group: int = 4) -> None:
    """Oldest first, every `group` records take the modification time of the first of them:
    with a page size that is no multiple of `group`, records changed at one moment fall on
    both sides of page boundaries, which is what proves a resumed search keeps the records
    at the cursor's moment (the kit skips that check without such a pair)."""
    prop = "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"
    ordered = sorted(DATA["hubspot"][object_type], key=lambda r: r["updatedAt"])
    for i, raw in enumerate(ordered):
        moment = ordered[i - i % group]["updatedAt"]
        raw["updatedAt"] = moment
        raw["properties"][prop] = moment


for _type in ("companies", "contacts", "deals", "invoices"):
    share_moments(_type)
DEAL = DATA["hubspot"]["deals"][0]
COMPANY = DEAL["associations"]["companies"]["results"][0]["id"]


def deal(currency: str, amount: str, archived: bool = False) -> dict:
    raw = copy.deepcopy(DEAL)
    raw["properties"].update(amount=amount, deal_currency_code=currency)
    raw["archived"] = archived
    return raw


SETTINGS = HubSpotSettings(
    base_url=BASE,
    token_url=f"{BASE}/oauth/token",
    client_id=DEMO_CREDENTIALS["hubspot"]["client_id"],
    client_secret=DEMO_CREDENTIALS["hubspot"]["client_secret"],
    refresh_token=DEMO_CREDENTIALS["hubspot"]["refresh_token"],
    page_size=PAGE_SIZE,
)

# The whole kit, with no exception: a repeated search `after` now raises.
TestHubSpotKit = provider_test_class(
    HubSpotProvider,
    settings=SETTINGS,
    router=sandbox_api(DATA),
    provider_kwargs={"lookup_settle_seconds": 0.0},
    money=[
        MoneyCase("deals", deal("JPY", "15000"), "total", "15000", "JPY"),
        MoneyCase("deals", deal("KWD", "12.345"), "total", "12.345", "KWD"),
    ],
    voids=[RecordCase("deals", deal("USD", "10.00", archived=True), "deleted")],
    actions=[
        ActionCase(
            "update_properties",
            {"object_type": "deal", "remote_id": DEAL["id"]},
            {"properties": {"amount_outstanding": "10.00"}},
        ),
        ActionCase("create_note", None, {"body": "Reminder sent", "company_id": COMPANY}),
        ActionCase("create_task", None, {"subject": "Call about INV-0001", "company_id": COMPANY}),
    ],
)
