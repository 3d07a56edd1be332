"""Rotated Xero refresh tokens land in the state database before they are used, and a new
process (a new provider on the same database) spends the stored one, not the configured one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import respx
from pydantic import SecretStr

from connector.providers.xero import XeroProvider, XeroSettings
from connector.state.store import open_store
from connector.state.token_store import StateTokenStore
from support.xero_fakes import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, TENANT, FakeXero


def provider(store, expired: bool = True) -> XeroProvider:
    past = datetime.now(UTC) - timedelta(minutes=5)
    settings = XeroSettings(
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        refresh_token=SecretStr(REFRESH_TOKEN),
        access_token=SecretStr("at-configured-1d9e"),
        access_token_expires_at=past if expired else None,
    )
    return XeroProvider(settings, connection="ledger", token_store=StateTokenStore(store))


def test_rotated_refresh_token_is_saved_in_the_state_store_and_used_by_the_next_process(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    fake = FakeXero()
    with respx.mock(assert_all_called=False) as router:
        fake.install(router)
        list(provider(store).read("invoices", None))
        saved = store.load_tokens("ledger")
        assert saved is not None and saved.refresh_token == "rt-issued-1-4c7d"
        assert REFRESH_TOKEN not in repr(saved) and "rt-issued" not in repr(saved)
        # The stored access token has expired for the next process: it refreshes with the
        # stored (rotated) refresh token; the configured one is already spent.
        store.save_tokens(
            "ledger",
            {"access_token": saved.access_token, "refresh_token": saved.refresh_token, "expires_at": 0},
            saved.version,
        )
        list(provider(store).read("invoices", None))
    assert [t["refresh_token"] for t in fake.token_requests] == [REFRESH_TOKEN, "rt-issued-1-4c7d"]
    assert store.load_tokens("ledger").refresh_token == "rt-issued-2-4c7d"
    store.close()
