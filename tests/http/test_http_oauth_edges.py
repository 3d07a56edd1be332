"""OAuth at its edges: a token endpoint that fails, an answer lost after the provider rotated
the refresh token, a refused refresh token with a previous one to fall back on, and access
tokens that live shorter than the refresh margin."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest
import respx
from pydantic import SecretStr

from connector.errors import AuthenticationError, ProviderUnavailableError, RateLimitError
from connector.http import OAuthTokenManager, ProviderHttp, RetryPolicy
from connector.http import auth as auth_module
from support.http_fakes import BASE, FakeClock, MemoryTokenStore

TOKEN_URL = "https://identity.example.test/connect/token"
REFRESH = "refresh-token-original-456"


@pytest.fixture(autouse=True)
def no_lost_answers_from_other_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lost answers are remembered per process; each test starts with none."""
    monkeypatch.setattr(auth_module, "_lost_answers", {})


class Issuer:
    """A token endpoint that rotates like Xero's: a grant spends the refresh token sent and
    issues a new one; a spent or unknown one gets `invalid_grant`. `lose` names the grants
    (1-based) whose answer is lost on the way back, after the rotation."""

    def __init__(self, *valid: str, lose: tuple[int, ...] = (), expires_in: int = 1800) -> None:
        self.valid = set(valid)
        self.lose = lose
        self.expires_in = expires_in
        self.sent: list[str] = []
        self.issued: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        refresh = parse_qs(request.content.decode())["refresh_token"][0]
        self.sent.append(refresh)
        if refresh not in self.valid:
            return httpx.Response(400, json={"error": "invalid_grant", "error_description": "token already used"})
        self.valid.discard(refresh)
        n = len(self.issued) + 1
        self.issued.append(f"refresh-rotated-{n}")
        self.valid.add(f"refresh-rotated-{n}")
        if n in self.lose:
            raise httpx.ReadTimeout("the answer never came back", request=request)
        return httpx.Response(
            200,
            json={
                "access_token": f"access-new-{n}",
                "refresh_token": f"refresh-rotated-{n}",
                "expires_in": self.expires_in,
                "token_type": "Bearer",
            },
        )


def manager(clock: FakeClock, store: MemoryTokenStore, **kw) -> OAuthTokenManager:
    settings = dict(
        connection="xero",
        token_url=TOKEN_URL,
        client_id="cid",
        client_secret=SecretStr("client-secret-value-123"),
        refresh_token=SecretStr(REFRESH),
        access_token=None,
        token_store=store,
        provider="xero",
        clock=clock.now,
        retry=RetryPolicy(max_attempts=4, backoff_initial=1.0, jitter=0.0, sleep=clock.sleep, clock=clock.now),
    )
    settings.update(kw)
    return OAuthTokenManager(**settings)  # type: ignore[arg-type]


def answer(n: int, expires_in: int = 1800) -> httpx.Response:
    return httpx.Response(
        200,
        json={"access_token": f"access-new-{n}", "refresh_token": f"refresh-rotated-{n}", "expires_in": expires_in},
    )


def sent(route: respx.Route) -> list[str]:
    return [parse_qs(call.request.content.decode())["refresh_token"][0] for call in route.calls]


# -- the token endpoint failing ------------------------------------------------------------


@respx.mock
def test_a_token_endpoint_5xx_is_retried_with_backoff_and_the_answer_used(clock) -> None:
    token = respx.post(TOKEN_URL).mock(side_effect=[httpx.Response(502), httpx.Response(503), answer(1)])
    store = MemoryTokenStore()
    assert manager(clock, store).access_token() == "access-new-1"
    assert sent(token) == [REFRESH] * 3
    assert clock.sleeps == [1.0, 2.0]  # exponential backoff
    assert store.tokens["xero"]["refresh_token"] == "refresh-rotated-1"


@respx.mock
def test_a_token_endpoint_failing_every_attempt_says_the_refresh_token_may_have_been_spent(clock) -> None:
    # Neither Xero nor HubSpot documents that a 5xx leaves the grant unprocessed.
    token = respx.post(TOKEN_URL).mock(return_value=httpx.Response(500, json={"error": "server_error"}))
    auth = manager(clock, MemoryTokenStore())
    with pytest.raises(ProviderUnavailableError) as raised:
        auth.access_token()
    assert token.call_count == 4
    assert raised.value.http_status == 500 and raised.value.code == "refresh_token_uncertain"
    assert "may have been spent" in str(raised.value) and "not spent" not in str(raised.value)
    # the run stops using the connection: no more token requests from this manager
    with pytest.raises(ProviderUnavailableError):
        auth.access_token()
    assert token.call_count == 4


@respx.mock
def test_a_refused_connection_is_retried_and_reported_as_not_spent(clock) -> None:
    token = respx.post(TOKEN_URL).mock(side_effect=httpx.ConnectError("connection refused"))
    auth = manager(clock, MemoryTokenStore())
    with pytest.raises(ProviderUnavailableError) as raised:
        auth.access_token()
    assert token.call_count == 4
    assert "the refresh token was not spent" in str(raised.value)
    # nothing left the machine: the next request may try again at once
    token.side_effect = None
    token.return_value = answer(1)
    assert auth.access_token() == "access-new-1"


@respx.mock
def test_a_rate_limited_token_endpoint_is_waited_for_and_reported_as_not_spent(clock) -> None:
    limited = httpx.Response(429, headers={"Retry-After": "7"}, json={"error": "rate_limited"})
    token = respx.post(TOKEN_URL).mock(return_value=limited)
    with pytest.raises(RateLimitError) as raised:
        manager(clock, MemoryTokenStore()).access_token()
    assert token.call_count == 4 and clock.sleeps == [7.0, 7.0, 7.0]
    assert "the refresh token was not spent" in str(raised.value)


# -- an answer lost after the provider rotated ----------------------------------------------


@respx.mock
def test_an_answer_lost_after_the_rotation_is_reported_truthfully_and_not_spent_again_in_the_run(clock) -> None:
    issuer = Issuer(REFRESH, lose=(1,))
    token = respx.post(TOKEN_URL).mock(side_effect=issuer)
    api = respx.get(f"{BASE}/Invoices").mock(return_value=httpx.Response(200, json={}))
    store = MemoryTokenStore()
    auth = manager(clock, store)
    http = ProviderHttp("xero", base_url=BASE, auth=auth, retry=RetryPolicy(sleep=clock.sleep, clock=clock.now))
    with pytest.raises(ProviderUnavailableError) as raised:
        http.request("GET", "/Invoices")
    message = str(raised.value)
    assert "answer was lost (ReadTimeout after sending)" in message
    assert "the refresh token may have been spent" in message and "not spent" not in message
    assert token.call_count == 1  # a lost answer is not sent again: that would spend it twice
    assert issuer.issued == ["refresh-rotated-1"] and store.saves == 0
    # every later request of the run fails at once, without a token request ...
    with pytest.raises(ProviderUnavailableError):
        http.request("GET", "/Invoices")
    # ... and so does another stream's manager of the same connection in this process
    with pytest.raises(ProviderUnavailableError, match="may have been spent"):
        manager(clock, store).access_token()
    assert token.call_count == 1 and api.call_count == 0


@respx.mock
def test_a_lost_answer_does_not_block_a_manager_whose_store_moved_on(clock) -> None:
    respx.post(TOKEN_URL).mock(side_effect=Issuer(REFRESH, lose=(1,)))
    store = MemoryTokenStore()
    with pytest.raises(ProviderUnavailableError):
        manager(clock, store).access_token()
    # someone re-authorised the connection: its new refresh token is not the uncertain one
    store.tokens["xero"] = {"access_token": None, "refresh_token": "refresh-reauthorised", "expires_at": None}
    issuer = Issuer("refresh-reauthorised")
    respx.post(TOKEN_URL).mock(side_effect=issuer)
    assert manager(clock, store).access_token() == "access-new-1"


@respx.mock
def test_the_next_run_after_a_lost_answer_spends_the_stored_refresh_token_again_within_the_grace(clock) -> None:
    # Xero: "if you don't receive the response after performing the token refresh you can
    # retry refreshing the old token for a grace period of 30 minutes".
    store = MemoryTokenStore(
        {"access_token": "access-old", "refresh_token": "refresh-stored", "expires_at": clock.now() - 1}
    )
    first = Issuer("refresh-stored", lose=(1,))
    respx.post(TOKEN_URL).mock(side_effect=first)
    with pytest.raises(ProviderUnavailableError):
        manager(clock, store).access_token()

    grace: list[str] = []

    def within_grace(request: httpx.Request) -> httpx.Response:
        grace.extend(parse_qs(request.content.decode())["refresh_token"])
        return answer(1)  # the lost answer's tokens again

    respx.post(TOKEN_URL).mock(side_effect=within_grace)
    assert manager(clock, store, lost_answer_hold=0).access_token() == "access-new-1"  # the next run
    assert grace == ["refresh-stored"]
    assert store.tokens["xero"]["refresh_token"] == "refresh-rotated-1"
    assert store.tokens["xero"]["previous_refresh_token"] == "refresh-stored"


@respx.mock
def test_the_next_run_tries_the_stored_then_the_previous_refresh_token_and_only_then_asks_to_reauthorise(
    clock,
) -> None:
    store = MemoryTokenStore()
    issuer = Issuer(REFRESH, lose=(2,))
    token = respx.post(TOKEN_URL).mock(side_effect=issuer)
    auth = manager(clock, store)
    assert auth.access_token() == "access-new-1"
    clock.sleep(1800)
    with pytest.raises(ProviderUnavailableError, match="may have been spent"):
        auth.access_token()  # refresh-rotated-1 spent, refresh-rotated-2 lost: no grace here
    with pytest.raises(AuthenticationError) as raised:
        manager(clock, store, lost_answer_hold=0).access_token()  # the next run
    assert sent(token) == [REFRESH, "refresh-rotated-1", "refresh-rotated-1", REFRESH]
    assert raised.value.code == "invalid_grant"
    assert "so was the previous refresh token" in str(raised.value)
    assert "re-authorise the connection 'xero'" in str(raised.value)


@respx.mock
def test_a_refused_stored_refresh_token_falls_back_to_the_previous_one(clock) -> None:
    store = MemoryTokenStore(
        {"access_token": None, "refresh_token": "refresh-stored", "previous_refresh_token": "refresh-previous"}
    )
    issuer = Issuer("refresh-previous")
    token = respx.post(TOKEN_URL).mock(side_effect=issuer)
    assert manager(clock, store).access_token() == "access-new-1"
    assert sent(token) == ["refresh-stored", "refresh-previous"]
    assert store.tokens["xero"]["refresh_token"] == "refresh-rotated-1"
    assert store.tokens["xero"]["previous_refresh_token"] == "refresh-previous"


@respx.mock
def test_a_refusal_reads_the_store_again_and_uses_what_another_process_saved(clock) -> None:
    store = MemoryTokenStore({"access_token": None, "refresh_token": "refresh-stored"})

    def refused_because_another_process_won(request: httpx.Request) -> httpx.Response:
        store.tokens["xero"] = {
            "access_token": "access-of-the-other",
            "refresh_token": "refresh-of-the-other",
            "expires_at": clock.now() + 1800,
        }
        return httpx.Response(400, json={"error": "invalid_grant"})

    token = respx.post(TOKEN_URL).mock(side_effect=refused_because_another_process_won)
    assert manager(clock, store).access_token() == "access-of-the-other"
    assert token.call_count == 1 and store.saves == 0


@respx.mock
def test_the_rotated_refresh_token_is_saved_with_the_one_it_replaced(clock) -> None:
    respx.post(TOKEN_URL).mock(side_effect=Issuer(REFRESH))
    store = MemoryTokenStore()
    manager(clock, store).access_token()
    saved = store.tokens["xero"]
    assert (saved["refresh_token"], saved["previous_refresh_token"]) == ("refresh-rotated-1", REFRESH)
    assert "lifetime" not in saved


@respx.mock
def test_a_re_authorised_connection_falls_back_to_the_refresh_token_in_its_settings(clock) -> None:
    # The operator re-authorised and put the new refresh token in the settings; the store still
    # holds the dead one, which wins until it is refused.
    store = MemoryTokenStore({"access_token": None, "refresh_token": "refresh-dead", "previous_refresh_token": "older"})
    issuer = Issuer("refresh-reauthorised")
    token = respx.post(TOKEN_URL).mock(side_effect=issuer)
    auth = manager(clock, store, refresh_token=SecretStr("refresh-reauthorised"))
    assert auth.access_token() == "access-new-1"
    assert sent(token) == ["refresh-dead", "older", "refresh-reauthorised"]
    assert store.tokens["xero"]["refresh_token"] == "refresh-rotated-1"


@respx.mock
def test_a_refusal_of_every_refresh_token_names_each_one_tried(clock) -> None:
    store = MemoryTokenStore({"access_token": None, "refresh_token": "refresh-dead", "previous_refresh_token": "older"})
    respx.post(TOKEN_URL).mock(side_effect=Issuer())
    with pytest.raises(AuthenticationError) as raised:
        manager(clock, store).access_token()
    message = str(raised.value)
    assert "so were the previous refresh token and the one in the connection's settings" in message
    assert "re-authorise the connection 'xero'" in message


@respx.mock
def test_rotated_tokens_that_cannot_be_saved_stop_the_connection_for_the_run(clock) -> None:
    class DiskFull(MemoryTokenStore):
        def save(self, connection, tokens):
            raise OSError("disk full")

    store = DiskFull()
    token = respx.post(TOKEN_URL).mock(side_effect=Issuer(REFRESH))
    auth = manager(clock, store)
    with pytest.raises(OSError):
        auth.access_token()
    # the refresh token is spent and its successor was never stored: nobody spends it again
    for attempt in (auth, manager(clock, store)):
        with pytest.raises(ProviderUnavailableError, match="could not be saved .*the refresh token was spent"):
            attempt.access_token()
    assert token.call_count == 1


@respx.mock
def test_hubspots_bad_refresh_token_is_a_refusal(clock) -> None:
    body = {"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh token"}
    respx.post(TOKEN_URL).mock(return_value=httpx.Response(400, json=body))
    with pytest.raises(AuthenticationError, match="re-authorise the connection 'xero'"):
        manager(clock, MemoryTokenStore(), provider="hubspot", client_auth="post").access_token()


# -- the refresh margin and the token's lifetime ---------------------------------------------


@respx.mock
def test_a_token_that_lives_shorter_than_the_margin_is_refreshed_once_per_lifetime(clock) -> None:
    # 30 s tokens under a 60 s margin: every token is "within 60 s of expiry" from birth, and
    # a fixed margin made the sync refresh before every request (116 grants in 36 s).
    issuer = Issuer(REFRESH, expires_in=30)
    token = respx.post(TOKEN_URL).mock(side_effect=issuer)
    api = respx.get(f"{BASE}/Invoices").mock(return_value=httpx.Response(200, json={}))
    auth = manager(clock, MemoryTokenStore(), skew=60.0)
    http = ProviderHttp("xero", base_url=BASE, auth=auth, retry=RetryPolicy(sleep=clock.sleep, clock=clock.now))
    for _ in range(120):  # a 36 s sync: a request every 0.3 s
        http.request("GET", "/Invoices")
        clock.sleep(0.3)
    assert api.call_count == 120
    assert token.call_count == 2  # at 0 s and 24 s: each token used until a fifth of its life is left


@respx.mock
def test_a_long_lived_token_keeps_the_configured_margin(clock) -> None:
    token = respx.post(TOKEN_URL).mock(side_effect=Issuer(REFRESH, expires_in=1800))
    auth = manager(clock, MemoryTokenStore(), skew=60.0)
    auth.access_token()
    clock.sleep(1800 - 61)
    auth.access_token()
    assert token.call_count == 1
    clock.sleep(2)  # 59 s left: inside the 60 s margin
    auth.access_token()
    assert token.call_count == 2


@respx.mock
def test_a_token_another_process_stored_is_used_while_fresh_whatever_its_lifetime(clock) -> None:
    # A waiter behind another process's refresh of a 30 s token must not refresh again just
    # because 30 s is inside the 60 s margin: what is left when first seen is a lower bound
    # of its lifetime.
    store = MemoryTokenStore(
        {"access_token": "access-of-the-other", "refresh_token": "refresh-of-the-other", "expires_at": clock.now() + 30}
    )
    token = respx.post(TOKEN_URL).mock(side_effect=Issuer("refresh-of-the-other", expires_in=30))
    auth = manager(clock, store, skew=60.0)
    assert auth.access_token() == "access-of-the-other"
    clock.sleep(23)
    assert auth.access_token() == "access-of-the-other"
    clock.sleep(2)  # 5 s left of at least 30: inside a fifth of it
    assert auth.access_token() == "access-new-1"
    assert token.call_count == 1
