"""Changes made in a provider's own screens while the connector runs: the sandbox's records
written as a person would, so that the next incremental sync reads them."""

from __future__ import annotations

import random
from datetime import date, timedelta

from connector.sandbox import Sandbox
from connector.sandbox.common import iso_ms
from connector.sandbox.hubspot_api import HubSpotFace


def change(sandbox: Sandbox, rng: random.Random, object_type: str, properties: dict[str, str]) -> None:
    """What a person does in HubSpot's own screens: the properties written, the record's
    modification time moved, so the next incremental sync reads it."""
    with sandbox.lock:
        face = sandbox.faces["hubspot"]
        assert isinstance(face, HubSpotFace)
        records = face.objects[object_type]
        record = records[rng.choice(sorted(records))]
        now = iso_ms(face.clock())
        record["properties"].update(properties)
        record["properties"]["hs_lastmodifieddate"] = now
        record["updatedAt"] = now
        face.versions[object_type] += 1  # its searches see the write


def change_deal_states(sandbox: Sandbox, rng: random.Random) -> None:
    """A deal disputed or not, promised on a day or not, on a payment plan in words or not."""
    promised = date.today() + timedelta(days=rng.randint(1, 30))
    change(
        sandbox,
        rng,
        "deals",
        rng.choice(
            [
                {"ar_disputed": rng.choice(["true", ""])},
                {"ar_promise_to_pay_date": rng.choice([promised.isoformat(), ""])},
                {"ar_payment_plan": rng.choice(["3 monthly instalments", "2 weekly instalments", ""])},
            ]
        ),
    )
