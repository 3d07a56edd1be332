import logging
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from pydantic import ValidationError

from connector.errors import AuthenticationError
from connector.providers.hubspot import HubSpotProvider, HubSpotSettings
from support.hubspot_fakes import API, TOKEN, fixture, make_provider

TOKEN_URL = "https://api.hubapi.com/oauth/v1/token"
SEARCH = f"{API}/crm/v3/objects/companies/search"


class MemoryTokenStore:
    def __init__(self):
        self.saved = {}

    def load(self, connection):
        return self.saved.get(connection)

    def save(self, connection, tokens):
        self.saved[connection] = dict(tokens)


@respx.mock
def test_a_429_with_retry_after_is_waited_out_then_the_search_succeeds():
    respx.post(SEARCH).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}, json=fixture("error_429.json")),
            httpx.Response(200, json=fixture("companies_search_page2.json")),
        ]
    )
    waits = []
    pages = list(make_provider(waits=waits).read("companies", None))
    assert waits == [7.0] and [r["id"] for r in pages[0].records] == ["5003"]


@respx.mock
def test_a_502_on_a_search_is_retried_because_searching_is_read_only():
    route = respx.post(SEARCH).mock(
        side_effect=[httpx.Response(502), httpx.Response(200, json=fixture("companies_search_page2.json"))]
    )
    assert len(list(make_provider().read("companies", None))) == 1 and route.call_count == 2


@respx.mock
def test_oauth_refreshes_with_form_posted_credentials_and_saves_the_rotated_token_first():
    store = MemoryTokenStore()
    token = respx.post(TOKEN_URL).mock(
        return_value=httpx.Response(
            200,
            json={
                "access_token": "CJfresh-access-111",
                "refresh_token": "rotated-refresh-222",
                "expires_in": 1800,
                "token_type": "bearer",
            },
        )
    )
    search = respx.post(SEARCH).mock(return_value=httpx.Response(200, json=fixture("companies_search_page2.json")))
    provider = make_provider(
        token_store=store, client_id="client-1", client_secret="secret-333", refresh_token="first-refresh-444"
    )
    list(provider.read("companies", None))
    form = parse_qs(token.calls[0].request.content.decode())
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["first-refresh-444"]
    assert form["client_id"] == ["client-1"] and form["client_secret"] == ["secret-333"]  # posted, not Basic
    assert "authorization" not in token.calls[0].request.headers
    assert store.saved["crm"]["refresh_token"] == "rotated-refresh-222"
    assert search.calls[0].request.headers["Authorization"] == "Bearer CJfresh-access-111"


@respx.mock
def test_a_configured_oauth_access_token_is_used_until_hubspot_rejects_it():
    store = MemoryTokenStore()
    respx.post(TOKEN_URL).mock(
        return_value=httpx.Response(
            200, json={"access_token": "new-access-555", "refresh_token": "rotated-666", "expires_in": 1800}
        )
    )
    search = respx.post(SEARCH).mock(
        side_effect=[
            httpx.Response(200, json=fixture("companies_search_page2.json")),
            httpx.Response(
                401,
                json={
                    "status": "error",
                    "message": "expired",
                    "correlationId": "c1a2b3c4-d5e6-4f70-8192-a3b4c5d6e7f8",
                    "category": "EXPIRED_AUTHENTICATION",
                },
            ),
            httpx.Response(200, json=fixture("companies_search_page2.json")),
        ]
    )
    provider = make_provider(
        token_store=store,
        client_id="c",
        client_secret="s-secret",
        refresh_token="r-refresh",
        access_token="configured-access-777",
    )
    list(provider.read("companies", None))
    list(provider.read("companies", None))
    auths = [c.request.headers["Authorization"] for c in search.calls]
    assert auths == ["Bearer configured-access-777", "Bearer configured-access-777", "Bearer new-access-555"]
    assert store.saved["crm"]["refresh_token"] == "rotated-666"


@respx.mock
def test_tokens_never_appear_in_logs_or_errors(caplog):
    caplog.set_level(logging.DEBUG)
    respx.post(SEARCH).mock(
        return_value=httpx.Response(
            401,
            json={
                "status": "error",
                "message": f"bad token {TOKEN}",
                "correlationId": "c1a2b3c4-d5e6-4f70-8192-a3b4c5d6e7f8",
                "category": "INVALID_AUTHENTICATION",
            },
        )
    )
    provider = make_provider()
    with pytest.raises(AuthenticationError) as caught:
        list(provider.read("companies", None))
    assert TOKEN not in str(caught.value) and TOKEN not in caplog.text
    assert TOKEN not in repr(provider.settings) and TOKEN not in repr(provider.http._auth)


@respx.mock
def test_a_refused_refresh_token_says_to_reauthorise_without_showing_secrets():
    respx.post(TOKEN_URL).mock(
        return_value=httpx.Response(
            400,
            json={
                "status": "BAD_REFRESH_TOKEN",
                "message": "missing or invalid refresh token",
                "error": "invalid_grant",
                "error_description": "missing or invalid refresh token",
            },
        )
    )
    provider = make_provider(client_id="c", client_secret="sec-888888", refresh_token="ref-999999")
    with pytest.raises(AuthenticationError, match="re-authorise") as caught:
        list(provider.read("companies", None))
    assert "ref-999999" not in str(caught.value) and "sec-888888" not in str(caught.value)


def test_settings_need_one_auth_form_and_name_the_keys():
    with pytest.raises(ValidationError, match="access_token.*client_id, client_secret and refresh_token"):
        HubSpotSettings()
    with pytest.raises(ValidationError, match="missing client_secret, refresh_token"):
        HubSpotSettings(client_id="c")
    assert HubSpotSettings(access_token="x-token").base_url == "https://api.hubapi.com"


def test_rate_limits_follow_the_auth_form_and_can_be_configured():
    private = HubSpotSettings(access_token="x-token")
    oauth = HubSpotSettings(client_id="c", client_secret="s", refresh_token="r")
    assert private.default_rate == 190 and oauth.default_rate == 100
    assert HubSpotSettings(access_token="x-token", requests_per_10_seconds=50).default_rate == 50
    provider = HubSpotProvider(private, connection="crm")
    assert set(provider.http.rate_limiter.buckets) == {"default", "search"}


def test_unknown_settings_keys_are_refused():
    with pytest.raises(ValidationError):
        HubSpotSettings(access_token="x-token", api_key="nope")
