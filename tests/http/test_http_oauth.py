from __future__ import annotations

import base64
import threading
import time
from contextlib import contextmanager
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from pydantic import SecretStr

from connector.errors import AuthenticationError
from connector.http import Limit, OAuthTokenManager, ProviderHttp, RateLimiter, RetryPolicy
from support.http_fakes import BASE, FakeClock, MemoryTokenStore

TOKEN_URL = "https://identity.example.test/connect/token"
SECRET = "client-secret-value-123"
REFRESH = "refresh-token-original-456"
ACCESS = "access-token-configured-789"


def manager(clock: FakeClock, store: MemoryTokenStore | None = None, **kw) -> OAuthTokenManager:
    settings = dict(
        connection="xero",
        token_url=TOKEN_URL,
        client_id="cid",
        client_secret=SecretStr(SECRET),
        refresh_token=SecretStr(REFRESH),
        access_token=ACCESS,
        expires_at=clock.now() + 1800,
        token_store=store if store is not None else MemoryTokenStore(),
        provider="xero",
        clock=clock.now,
    )
    settings.update(kw)
    return OAuthTokenManager(**settings)  # type: ignore[arg-type]


def token_answer(n: int = 1) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "access_token": f"access-new-{n}",
            "refresh_token": f"refresh-rotated-{n}",
            "expires_in": 1800,
            "token_type": "Bearer",
        },
    )


def http_with(auth: OAuthTokenManager, clock: FakeClock, limiter: RateLimiter | None = None) -> ProviderHttp:
    return ProviderHttp(
        "xero", base_url=BASE, auth=auth, rate_limiter=limiter, retry=RetryPolicy(sleep=clock.sleep, clock=clock.now)
    )


class RecordingLimiter(RateLimiter):
    """A real limiter that notes in `events` each slot it has just counted and granted."""

    def __init__(self, events: list, clock: FakeClock) -> None:
        super().__init__({"default": [Limit(60, 60)]}, clock=clock.now, sleep=clock.sleep)
        self.events = events

    @contextmanager
    def acquire(self, *buckets: str):
        with super().acquire(*buckets):
            self.events.append(("slot", *buckets))
            yield


@respx.mock
def test_configured_access_token_is_used_while_valid(clock) -> None:
    token = respx.post(TOKEN_URL).mock(return_value=token_answer())
    api = respx.get(f"{BASE}/Invoices").mock(return_value=httpx.Response(200, json={}))
    http_with(manager(clock), clock).request("GET", "/Invoices")
    assert token.call_count == 0
    assert api.calls[0].request.headers["Authorization"] == f"Bearer {ACCESS}"


@respx.mock
def test_refresh_happens_before_expiry(clock) -> None:
    token = respx.post(TOKEN_URL).mock(side_effect=[token_answer(1), token_answer(2)])
    api = respx.get(f"{BASE}/Invoices").mock(return_value=httpx.Response(200, json={}))
    http = http_with(manager(clock, access_token=None), clock)
    http.request("GET", "/Invoices")
    clock.sleep(1800 - 59)  # inside the 60 s skew of a token that lives 30 minutes
    http.request("GET", "/Invoices")
    assert token.call_count == 2
    assert api.call_count == 2
    assert api.calls[1].request.headers["Authorization"] == "Bearer access-new-2"
    form = parse_qs(token.calls[1].request.content.decode())
    assert form == {"grant_type": ["refresh_token"], "refresh_token": ["refresh-rotated-1"]}
    basic = base64.b64encode(f"cid:{SECRET}".encode()).decode()
    assert token.calls[1].request.headers["Authorization"] == f"Basic {basic}"


@respx.mock
def test_client_credentials_can_go_in_the_form(clock) -> None:
    token = respx.post(TOKEN_URL).mock(return_value=token_answer())
    manager(clock, access_token=None, client_auth="post").access_token()
    form = parse_qs(token.calls[0].request.content.decode())
    assert form["client_id"] == ["cid"] and form["client_secret"] == [SECRET]
    assert "Authorization" not in token.calls[0].request.headers


@respx.mock
def test_rotated_refresh_token_is_saved_before_the_new_access_token_is_used(clock) -> None:
    events: list[tuple[str, ...]] = []
    store = MemoryTokenStore(events=events)
    respx.post(TOKEN_URL).mock(return_value=token_answer())

    def api(request: httpx.Request) -> httpx.Response:
        events.append(("api", request.headers["Authorization"]))
        return httpx.Response(200, json={})

    respx.get(f"{BASE}/Invoices").mock(side_effect=api)
    http_with(manager(clock, store, access_token=None), clock).request("GET", "/Invoices")
    assert events == [("save", "refresh-rotated-1", "access-new-1"), ("api", "Bearer access-new-1")]
    assert store.tokens["xero"]["expires_at"] == clock.now() + 1800


@respx.mock
def test_new_access_token_is_not_used_when_saving_fails(clock) -> None:
    class BrokenStore(MemoryTokenStore):
        def save(self, connection, tokens):
            raise OSError("disk full")

    respx.post(TOKEN_URL).mock(return_value=token_answer())
    api = respx.get(f"{BASE}/Invoices").mock(return_value=httpx.Response(200, json={}))
    with pytest.raises(OSError):
        http_with(manager(clock, BrokenStore(), access_token=None), clock).request("GET", "/Invoices")
    assert api.call_count == 0


@respx.mock
def test_stored_tokens_take_precedence_over_configured_ones(clock) -> None:
    store = MemoryTokenStore(
        {"access_token": "access-stored", "refresh_token": "refresh-stored", "expires_at": clock.now() - 10}
    )
    token = respx.post(TOKEN_URL).mock(return_value=token_answer())
    respx.get(f"{BASE}/Invoices").mock(return_value=httpx.Response(200, json={}))
    http_with(manager(clock, store), clock).request("GET", "/Invoices")
    assert parse_qs(token.calls[0].request.content.decode())["refresh_token"] == ["refresh-stored"]


@respx.mock
def test_a_401_triggers_one_refresh_and_one_retry(clock) -> None:
    token = respx.post(TOKEN_URL).mock(return_value=token_answer())
    api = respx.get(f"{BASE}/Invoices").mock(side_effect=[httpx.Response(401), httpx.Response(200, json={"ok": 1})])
    assert http_with(manager(clock), clock).request("GET", "/Invoices").json() == {"ok": 1}
    assert token.call_count == 1
    assert [c.request.headers["Authorization"] for c in api.calls] == [f"Bearer {ACCESS}", "Bearer access-new-1"]


@respx.mock
def test_a_second_401_raises_authentication_error_without_another_refresh(clock) -> None:
    token = respx.post(TOKEN_URL).mock(side_effect=[token_answer(1), token_answer(2)])
    api = respx.get(f"{BASE}/Invoices").mock(return_value=httpx.Response(401, json={"Detail": "TokenExpired"}))
    with pytest.raises(AuthenticationError):
        http_with(manager(clock), clock).request("GET", "/Invoices")
    assert token.call_count == 1
    assert api.call_count == 2


@respx.mock
def test_two_threads_refreshing_at_once_post_the_token_endpoint_once(clock) -> None:
    def slow_answer(request: httpx.Request) -> httpx.Response:
        time.sleep(0.05)
        return token_answer()

    token = respx.post(TOKEN_URL).mock(side_effect=slow_answer)
    store = MemoryTokenStore()
    # Two managers of one connection (two adapters in one process) share lock and store.
    managers = [manager(clock, store, access_token=None) for _ in range(2)]
    start = threading.Barrier(4)
    seen: list[str] = []

    def use(auth: OAuthTokenManager) -> None:
        start.wait()
        seen.append(auth.access_token())

    threads = [threading.Thread(target=use, args=(managers[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert token.call_count == 1
    assert seen == ["access-new-1"] * 4
    assert store.saves == 1


@respx.mock
def test_invalid_grant_raises_authentication_error_asking_to_reauthorise(clock) -> None:
    respx.post(TOKEN_URL).mock(return_value=httpx.Response(400, json={"error": "invalid_grant"}))
    with pytest.raises(AuthenticationError) as raised:
        manager(clock, access_token=None).access_token()
    assert raised.value.code == "invalid_grant"
    assert "refresh token was refused" in str(raised.value)
    assert "re-authorise the connection 'xero'" in str(raised.value)


@respx.mock
def test_secrets_are_absent_from_exceptions_logs_and_reprs(clock, caplog) -> None:
    caplog.set_level("DEBUG")
    respx.post(TOKEN_URL).mock(
        side_effect=[
            token_answer(),
            httpx.Response(400, json={"error": "invalid_grant", "error_description": "refresh-rotated-1 is not valid"}),
            httpx.Response(400, json={"error": "invalid_grant", "error_description": f"{REFRESH} is not valid"}),
        ]
    )
    respx.get(f"{BASE}/Invoices").mock(
        side_effect=[
            httpx.Response(401, json={"message": f"bad token {ACCESS}"}),
            httpx.Response(401, json={"message": "bad token access-new-1"}),
            httpx.Response(500, json={"message": "echo access-new-1"}),
            httpx.Response(401),
        ]
    )
    auth = manager(clock)
    http = http_with(auth, clock)
    errors = []
    for _ in range(2):
        with pytest.raises(AuthenticationError) as raised:
            http.request("GET", "/Invoices")
        errors.append(raised.value)
    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [caplog.text, repr(auth), repr(http)]
    for secret in (SECRET, REFRESH, ACCESS, "access-new-1", "refresh-rotated-1"):
        for text in texts:
            assert secret not in text


@respx.mock
def test_a_due_token_is_refreshed_before_the_request_takes_its_rate_limit_slot(clock) -> None:
    # A token round trip between counting a request and sending it makes the request arrive
    # late, and a later one then lands less than a window after it at the provider (a 429).
    events: list[tuple[str, ...]] = []
    store = MemoryTokenStore(events=events)

    def grant(request: httpx.Request) -> httpx.Response:
        events.append(("token",))
        return token_answer()

    def api(request: httpx.Request) -> httpx.Response:
        events.append(("api", request.headers["Authorization"]))
        return httpx.Response(200, json={})

    respx.post(TOKEN_URL).mock(side_effect=grant)
    respx.get(f"{BASE}/Invoices").mock(side_effect=api)
    limiter = RecordingLimiter(events, clock)
    http = http_with(manager(clock, store, expires_at=clock.now()), clock, limiter)  # due now
    http.request("GET", "/Invoices")
    assert events == [
        ("token",),
        ("save", "refresh-rotated-1", "access-new-1"),
        ("slot", "default"),
        ("api", "Bearer access-new-1"),
    ]


@respx.mock
def test_a_valid_token_costs_no_token_request_before_the_slot(clock) -> None:
    events: list[tuple[str, ...]] = []
    token = respx.post(TOKEN_URL).mock(return_value=token_answer())
    respx.get(f"{BASE}/Invoices").mock(return_value=httpx.Response(200, json={}))
    limiter = RecordingLimiter(events, clock)
    http = http_with(manager(clock), clock, limiter)
    for _ in range(3):
        http.request("GET", "/Invoices")
    assert token.call_count == 0
    assert events == [("slot", "default")] * 3


@respx.mock
def test_token_requests_take_no_slot_of_the_apis_limiter(clock) -> None:
    # One request a minute: the refresh before the first request must not spend it, or the
    # request would wait a minute (or the provider would see two).
    token = respx.post(TOKEN_URL).mock(return_value=token_answer())
    api = respx.get(f"{BASE}/Invoices").mock(return_value=httpx.Response(200, json={}))
    limiter = RateLimiter.from_spec({"default": [(1, 60)]}, clock=clock.now, sleep=clock.sleep)
    http_with(manager(clock, access_token=None), clock, limiter).request("GET", "/Invoices")
    assert token.call_count == 1 and api.call_count == 1
    assert clock.sleeps == []


@respx.mock
def test_threads_wait_for_one_refresh_without_holding_concurrency_slots(clock) -> None:
    # The refresh (under the connection's lock) happens before any thread takes a slot, so
    # the slots are held only by requests on their way to the API.
    held_during_refresh: list[int] = []
    in_flight = 0
    lock = threading.Lock()

    def grant(request: httpx.Request) -> httpx.Response:
        time.sleep(0.05)  # let the other threads pile up behind the refresh lock
        held_during_refresh.append(in_flight)
        return token_answer()

    def api(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer access-new-1"
        return httpx.Response(200, json={})

    class CountingLimiter(RateLimiter):
        @contextmanager
        def acquire(self, *buckets: str):
            nonlocal in_flight
            with super().acquire(*buckets):
                with lock:
                    in_flight += 1
                try:
                    yield
                finally:
                    with lock:
                        in_flight -= 1

    token = respx.post(TOKEN_URL).mock(side_effect=grant)
    respx.get(f"{BASE}/Invoices").mock(side_effect=api)
    limiter = CountingLimiter.from_spec({"default": [(100, 1)]}, concurrency=2)
    http = http_with(manager(clock, access_token=None), clock, limiter)
    start = threading.Barrier(4)

    def fetch() -> None:
        start.wait()
        http.request("GET", "/Invoices")

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert token.call_count == 1
    assert held_during_refresh == [0]
