"""Fixtures of the Xero adapter tests: a fake Xero behind respx and a provider pointed at it."""

from __future__ import annotations

from typing import Any

import pytest
import respx

from connector.http import RetryPolicy
from connector.providers.xero import XeroProvider, XeroSettings
from support.xero_fakes import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, TENANT, FakeXero


class MemoryTokenStore:
    def __init__(self) -> None:
        self.saved: list[dict[str, Any]] = []

    def load(self, connection: str) -> dict[str, Any] | None:
        return dict(self.saved[-1]) if self.saved else None

    def save(self, connection: str, tokens: dict[str, Any]) -> None:
        self.saved.append(dict(tokens))


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def fake_xero():
    fake = FakeXero()
    with respx.mock(assert_all_called=False) as router:
        fake.install(router)
        yield fake


@pytest.fixture
def token_store() -> MemoryTokenStore:
    return MemoryTokenStore()


@pytest.fixture
def make_xero(fake_xero, token_store, sleeps):
    """Build a provider on the fake: `make_xero(page_size=2, payment_account_code="090")`."""
    made: list[XeroProvider] = []

    def make(**overrides: Any) -> XeroProvider:
        values: dict[str, Any] = {
            "tenant_id": TENANT,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
            "access_token": "at-configured-1d9e",
            "payment_account_code": "090",
        }
        values.update(overrides)
        provider = XeroProvider(
            XeroSettings(**values),
            connection="ledger",
            token_store=token_store,
            retry=RetryPolicy(sleep=sleeps.append, jitter=0),
        )
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()
