import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from connector.errors import AuthenticationError, RateLimitDeferred
from support.xero_fakes import CLIENT_SECRET, REFRESH_TOKEN, json_response, records

RATE_LIMITED = {"Title": "Too Many Requests", "Status": 429, "Detail": "Rate limit exceeded"}


@pytest.fixture
def invoices(fake_xero):
    fake_xero.data["Invoices"] = records("invoices.json")
    return fake_xero


def test_a_429_with_retry_after_is_waited_out_then_the_read_goes_on(invoices, make_xero, sleeps):
    invoices.injected[1] = json_response(429, RATE_LIMITED, {"Retry-After": "7", "X-Rate-Limit-Problem": "minute"})
    pages = list(make_xero().read("invoices", None))
    assert sleeps == [7.0]
    assert [raw["InvoiceNumber"] for raw in pages[0].records] == ["INV-0042", "INV-0043", "INV-0044"]


def test_a_5xx_is_retried_then_the_read_goes_on(invoices, make_xero, sleeps):
    invoices.injected[1] = json_response(503, {"Title": "Service Unavailable", "Status": 503})
    invoices.injected[2] = json_response(500, {"Title": "Internal Server Error", "Status": 500})
    pages = list(make_xero().read("invoices", None))
    assert len(sleeps) == 2
    assert len(pages[0].records) == 3


def test_the_daily_limit_defers_the_stream_after_the_pages_already_read(invoices, make_xero, sleeps):
    invoices.injected[2] = json_response(
        429, RATE_LIMITED, {"Retry-After": str(3600 * 18), "X-Rate-Limit-Problem": "day", "X-DayLimit-Remaining": "0"}
    )
    reader = make_xero(page_size=2).read("invoices", None)
    first = next(reader)
    assert [raw["InvoiceNumber"] for raw in first.records] == ["INV-0042", "INV-0043"]
    assert json.loads(first.cursor)["since"] == "2026-02-01T09:15:30.870Z"  # the engine saves this
    with pytest.raises(RateLimitDeferred) as caught:
        next(reader)
    assert caught.value.retry_after == 3600 * 18
    assert sleeps == []  # nobody sleeps 18 hours


def test_an_expired_access_token_is_refreshed_and_the_rotated_refresh_token_saved_first(
    invoices, make_xero, token_store
):
    past = datetime.now(UTC) - timedelta(minutes=5)
    provider = make_xero(access_token_expires_at=past)
    list(provider.read("invoices", None))

    assert [t["refresh_token"] for t in invoices.token_requests] == [REFRESH_TOKEN]
    assert token_store.saved[0]["refresh_token"] == "rt-issued-1-4c7d"
    assert invoices.requests[0].headers["Authorization"] == "Bearer at-issued-1-8b2f"
    assert REFRESH_TOKEN not in invoices.valid_refresh  # rotated: the old one is spent


def test_a_configured_access_token_is_used_until_xero_refuses_it_then_refreshed_once(invoices, make_xero, token_store):
    provider = make_xero()
    list(provider.read("invoices", None))
    assert invoices.token_requests == []  # the configured token was good

    invoices.valid_access.discard("at-configured-1d9e")  # Xero revokes it
    list(provider.read("invoices", None))
    list(provider.read("invoices", None))
    assert len(invoices.token_requests) == 1
    assert [t["refresh_token"] for t in token_store.saved] == ["rt-issued-1-4c7d"]


def test_a_second_refresh_spends_the_rotated_token_not_the_configured_one(invoices, make_xero, token_store):
    past = datetime.now(UTC) - timedelta(minutes=5)
    list(make_xero(access_token_expires_at=past).read("invoices", None))
    # A new process: the store's tokens win over the (now spent) configured ones.
    token_store.saved[-1]["expires_at"] = 0
    list(make_xero(access_token_expires_at=past).read("invoices", None))
    assert [t["refresh_token"] for t in invoices.token_requests] == [REFRESH_TOKEN, "rt-issued-1-4c7d"]


def test_secrets_never_reach_logs_or_errors(invoices, make_xero, caplog):
    caplog.set_level(logging.DEBUG)
    invoices.valid_access.clear()
    invoices.valid_refresh.clear()  # the refresh token is refused: invalid_grant
    invoices.injected[1] = json_response(500, {"Title": "Internal Server Error", "Status": 500})
    with pytest.raises(AuthenticationError) as caught:
        list(make_xero().read("invoices", None))
    text = caplog.text + str(caught.value) + repr(caught.value)
    for secret in (CLIENT_SECRET, REFRESH_TOKEN, "at-configured-1d9e"):
        assert secret not in text
    assert "re-authorise" in str(caught.value)
