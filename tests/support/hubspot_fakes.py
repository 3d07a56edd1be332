"""Test doubles for the HubSpot adapter: fixtures, a provider that never waits, and a
stateful fake of the CRM search API that behaves like HubSpot's (filters, one sort, `after`
offsets, and the refusal past 10,000 results)."""

from __future__ import annotations

import bisect
import json
import operator
from pathlib import Path
from typing import Any

import httpx

from connector.http import RetryPolicy
from connector.providers.hubspot import HubSpotProvider, HubSpotSettings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hubspot"
API = "https://api.hubapi.com"
TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def no_wait_policy(waits: list[float] | None = None) -> RetryPolicy:
    def sleep(seconds: float) -> None:
        if waits is not None:
            waits.append(seconds)

    return RetryPolicy(max_attempts=4, backoff_initial=0.01, backoff_max=0.01, jitter=0.0, sleep=sleep)


def make_provider(waits: list[float] | None = None, token_store: Any = None, **settings: Any) -> HubSpotProvider:
    if "refresh_token" not in settings:
        settings.setdefault("access_token", TOKEN)
    settings.setdefault("read_archived", False)
    settings.setdefault("read_associations", False)
    return HubSpotProvider(
        HubSpotSettings(**settings),
        connection="crm",
        token_store=token_store,
        retry=no_wait_policy(waits),
        rate_limiter=None,
        clock=lambda: 1710064800.0,  # 2024-03-10T10:00:00Z
    )


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


def record(object_id: int, modified_ms: int, prop: str = "hs_lastmodifieddate") -> dict[str, Any]:
    from datetime import UTC, datetime

    iso = datetime.fromtimestamp(modified_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "id": str(object_id),
        "properties": {"hs_object_id": str(object_id), prop: iso},
        "createdAt": "2020-01-01T00:00:00.000Z",
        "updatedAt": iso,
        "archived": False,
    }


class FakeSearch:
    """Answers POST /crm/v3/objects/{type}/search over `records` like HubSpot does."""

    CAP = 10_000

    def __init__(self, records: list[dict[str, Any]], prop: str = "hs_lastmodifieddate") -> None:
        self.records = records
        self.prop = prop
        self.bodies: list[dict[str, Any]] = []
        from connector.providers.hubspot.search import epoch_ms

        self._modified = {r["id"]: epoch_ms(r["properties"][prop]) for r in records}
        # HubSpot orders ties arbitrarily: reverse ids within a timestamp to prove we cope.
        self._by_modified = sorted(records, key=lambda r: (self._modified[r["id"]], -int(r["id"])))
        self._keys = [self._modified[r["id"]] for r in self._by_modified]

    def _hits(self, filters: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
        lo, hi = 0, len(self._keys)
        others = []
        for flt in filters:
            value, op = int(flt["value"]), flt["operator"]
            if flt["propertyName"] != self.prop:
                assert flt["propertyName"] == "hs_object_id"
                others.append((op, value))
            elif op in ("GTE", "EQ"):
                lo = max(lo, bisect.bisect_left(self._keys, value))
                if op == "EQ":
                    hi = min(hi, bisect.bisect_right(self._keys, value))
            elif op == "GT":
                lo = max(lo, bisect.bisect_right(self._keys, value))
            else:
                raise AssertionError(f"the fake does not know {op}")
        compare = {"GT": operator.gt, "GTE": operator.ge, "EQ": operator.eq, "LT": operator.lt}
        hits = [r for r in self._by_modified[lo:hi] if all(compare[op](int(r["id"]), value) for op, value in others)]
        if sort == "hs_object_id":
            hits.sort(key=lambda r: int(r["id"]))
        else:
            assert sort == self.prop
        return hits

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = body_of(request)
        self.bodies.append(body)
        for key in ("after", "filterGroups", "limit", "properties", "sorts"):
            assert key in body, f"the document requires {key}"
        assert all(isinstance(s, str) for s in body["sorts"]), "sorts are strings per the document"
        assert body["limit"] <= 200
        after = int(body["after"])
        if after + body["limit"] > self.CAP:
            return httpx.Response(
                400,
                json={
                    "status": "error",
                    "message": "Paging beyond 10000 results is not supported",
                    "correlationId": "00000000-0000-4000-8000-000000000000",
                    "category": "VALIDATION_ERROR",
                },
            )
        filters = [f for group in body["filterGroups"] for f in group["filters"]]
        hits = self._hits(filters, body["sorts"][0])
        page = hits[after : after + body["limit"]]
        answer: dict[str, Any] = {"total": len(hits), "results": page}
        if after + len(page) < len(hits):
            answer["paging"] = {"next": {"after": str(after + len(page))}}
        return httpx.Response(200, json=answer)
