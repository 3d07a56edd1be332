from __future__ import annotations

import email.utils

import httpx
import pytest
import respx

from connector.errors import (
    AuthenticationError,
    IdempotencyError,
    InvalidRequestError,
    NotFoundError,
    ProviderUnavailableError,
    RateLimitDeferred,
    RateLimitError,
)
from connector.http import (
    BearerAuth,
    ProviderHttp,
    RetryPolicy,
    idempotency_header,
    idempotency_param,
    parse_retry_after,
)
from support.http_fakes import BASE


def make_http(policy: RetryPolicy, **kw: object) -> ProviderHttp:
    return ProviderHttp("stripe", base_url=BASE, retry=policy, **kw)  # type: ignore[arg-type]


@respx.mock(base_url=BASE)
def test_429_with_retry_after_seconds_is_honoured(respx_mock, policy, clock) -> None:
    respx_mock.get("/v1/invoices").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json={})]
    )
    assert make_http(policy).request("GET", "/v1/invoices").status_code == 200
    assert clock.sleeps == [7.0]


@respx.mock(base_url=BASE)
def test_429_with_retry_after_http_date_is_honoured(respx_mock, policy, clock) -> None:
    when = email.utils.formatdate(clock.now() + 42, usegmt=True)
    respx_mock.get("/v1/invoices").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200, json={})]
    )
    make_http(policy).request("GET", "/v1/invoices")
    assert clock.sleeps == [pytest.approx(42, abs=1)]


def test_retry_after_parses_seconds_dates_and_rubbish() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412470.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@respx.mock(base_url=BASE)
def test_5xx_then_success_returns_the_success_after_exponential_backoff(respx_mock, policy, clock) -> None:
    route = respx_mock.get("/v1/invoices").mock(
        side_effect=[httpx.Response(502), httpx.Response(503), httpx.Response(200, json={"ok": True})]
    )
    assert make_http(policy).request("GET", "/v1/invoices").json() == {"ok": True}
    assert route.call_count == 3
    assert clock.sleeps == [1.0, 2.0]


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, InvalidRequestError), (404, NotFoundError), (401, AuthenticationError), (422, InvalidRequestError)],
)
@respx.mock(base_url=BASE)
def test_other_4xx_are_never_retried(respx_mock, policy, clock, status, error) -> None:
    route = respx_mock.get("/v1/invoices/in_1").mock(return_value=httpx.Response(status, json={}))
    with pytest.raises(error) as raised:
        make_http(policy).request("GET", "/v1/invoices/in_1")
    assert route.call_count == 1
    assert clock.sleeps == []
    assert raised.value.http_status == status


@respx.mock(base_url=BASE)
def test_giving_up_on_429_raises_rate_limit_error_with_status_and_request_id(respx_mock, policy) -> None:
    respx_mock.get("/v1/invoices").mock(
        return_value=httpx.Response(
            429,
            headers={"Request-Id": "req_123", "Retry-After": "2"},
            json={"error": {"message": "Too many requests", "type": "rate_limit_error"}},
        )
    )
    with pytest.raises(RateLimitError) as raised:
        make_http(policy).request("GET", "/v1/invoices")
    error = raised.value
    assert not isinstance(error, RateLimitDeferred)
    assert (error.provider, error.http_status, error.request_id, error.retry_after) == ("stripe", 429, "req_123", 2.0)
    assert "Too many requests" in str(error) and "req_123" in str(error) and "HTTP 429" in str(error)
    assert "after 3 attempts" in str(error)


@respx.mock(base_url=BASE)
def test_giving_up_on_5xx_raises_provider_unavailable_with_request_id(respx_mock, policy, clock) -> None:
    respx_mock.get("/Invoices").mock(
        return_value=httpx.Response(500, headers={"Xero-Correlation-Id": "corr-9"}, json={"Message": "Oops"})
    )
    with pytest.raises(ProviderUnavailableError) as raised:
        make_http(policy).request("GET", "/Invoices")
    assert raised.value.http_status == 500
    assert raised.value.request_id == "corr-9"
    assert len(clock.sleeps) == 2


@respx.mock(base_url=BASE)
def test_retry_after_of_hours_raises_rate_limit_deferred_without_sleeping(respx_mock, policy, clock) -> None:
    route = respx_mock.get("/Invoices").mock(return_value=httpx.Response(429, headers={"Retry-After": str(18 * 3600)}))
    with pytest.raises(RateLimitDeferred) as raised:
        make_http(policy).request("GET", "/Invoices")
    assert raised.value.retry_after == 18 * 3600
    assert route.call_count == 1
    assert clock.sleeps == []


@respx.mock(base_url=BASE)
def test_retry_after_beyond_the_time_budget_gives_up_without_sleeping(respx_mock, clock) -> None:
    policy = RetryPolicy(max_elapsed=60, defer_after=900, sleep=clock.sleep, clock=clock.now)
    respx_mock.get("/Invoices").mock(return_value=httpx.Response(429, headers={"Retry-After": "120"}))
    with pytest.raises(RateLimitError) as raised:
        make_http(policy).request("GET", "/Invoices")
    assert not isinstance(raised.value, RateLimitDeferred)
    assert raised.value.retry_after == 120
    assert clock.sleeps == []


@respx.mock(base_url=BASE)
def test_same_idempotency_key_is_sent_on_every_retry(respx_mock, policy) -> None:
    route = respx_mock.post("/v1/invoices/in_1/pay").mock(
        side_effect=[httpx.Response(500), httpx.Response(429), httpx.Response(200, json={})]
    )
    make_http(policy).request(
        "POST", "/v1/invoices/in_1/pay", data={"paid_out_of_band": "true"}, idempotency_key="act-42"
    )
    assert [call.request.headers["Idempotency-Key"] for call in route.calls] == ["act-42"] * 3


@respx.mock(base_url=BASE)
def test_idempotency_key_can_go_in_a_query_parameter(respx_mock, policy) -> None:
    route = respx_mock.post("/v3/company/1/payment").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json={})]
    )
    http = make_http(policy, idempotency=idempotency_param("requestid"))
    http.request("POST", "/v3/company/1/payment", params={"minorversion": "75"}, json={}, idempotency_key="k1")
    assert [dict(call.request.url.params) for call in route.calls] == [{"minorversion": "75", "requestid": "k1"}] * 2
    assert "Idempotency-Key" not in route.calls[0].request.headers


@respx.mock(base_url=BASE)
def test_idempotency_header_name_is_configurable(respx_mock, policy) -> None:
    route = respx_mock.put("/Payments").mock(return_value=httpx.Response(200, json={}))
    make_http(policy, idempotency=idempotency_header("X-Key")).request("PUT", "/Payments", json={}, idempotency_key="k")
    assert route.calls[0].request.headers["X-Key"] == "k"


@respx.mock(base_url=BASE)
def test_post_without_idempotency_key_is_not_resent_after_a_5xx(respx_mock, policy) -> None:
    route = respx_mock.post("/crm/v3/objects/notes").mock(return_value=httpx.Response(500))
    with pytest.raises(ProviderUnavailableError):
        make_http(policy).request("POST", "/crm/v3/objects/notes", json={})
    assert route.call_count == 1


@respx.mock(base_url=BASE)
def test_read_only_post_marked_idempotent_is_retried(respx_mock, policy) -> None:
    route = respx_mock.post("/crm/v3/objects/deals/search").mock(
        side_effect=[httpx.Response(500), httpx.Response(200, json={})]
    )
    make_http(policy).request("POST", "/crm/v3/objects/deals/search", json={}, idempotent=True)
    assert route.call_count == 2


@respx.mock(base_url=BASE)
def test_stripe_should_retry_false_stops_retries_of_a_5xx(respx_mock, policy) -> None:
    route = respx_mock.get("/v1/charges").mock(
        return_value=httpx.Response(500, headers={"Stripe-Should-Retry": "false"})
    )
    with pytest.raises(ProviderUnavailableError):
        make_http(policy).request("GET", "/v1/charges")
    assert route.call_count == 1


@respx.mock(base_url=BASE)
def test_stripe_should_retry_true_retries_a_409(respx_mock, policy) -> None:
    route = respx_mock.post("/v1/invoices/in_1/pay").mock(
        side_effect=[httpx.Response(409, headers={"Stripe-Should-Retry": "true"}), httpx.Response(200, json={})]
    )
    make_http(policy).request("POST", "/v1/invoices/in_1/pay", idempotency_key="k")
    assert route.call_count == 2


@respx.mock(base_url=BASE)
def test_timeouts_are_retried_then_raise_provider_unavailable(respx_mock, policy, clock) -> None:
    route = respx_mock.get("/v1/invoices").mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(ProviderUnavailableError) as raised:
        make_http(policy).request("GET", "/v1/invoices")
    assert route.call_count == 3
    assert "ReadTimeout" in str(raised.value)
    assert len(clock.sleeps) == 2


@respx.mock(base_url=BASE)
def test_connection_refused_is_retried_even_for_a_write_without_key(respx_mock, policy) -> None:
    route = respx_mock.post("/crm/v3/objects/notes").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(201, json={"id": "1"})]
    )
    assert make_http(policy).request("POST", "/crm/v3/objects/notes", json={}).status_code == 201
    assert route.call_count == 2


@respx.mock(base_url=BASE)
def test_stripe_idempotency_error_is_typed(respx_mock, policy) -> None:
    respx_mock.post("/v1/invoices/in_1/pay").mock(
        return_value=httpx.Response(
            400,
            json={
                "error": {
                    "type": "idempotency_error",
                    "message": "Keys for idempotent requests can only be used with the same parameters",
                }
            },
        )
    )
    with pytest.raises(IdempotencyError):
        make_http(policy).request("POST", "/v1/invoices/in_1/pay", idempotency_key="k")


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        (
            {"error": {"message": "No such invoice: 'in_9'", "code": "resource_missing"}},
            "No such invoice: 'in_9'",
            "resource_missing",
        ),
        (
            {
                "Type": "ValidationException",
                "Message": "A validation exception occurred",
                "Detail": "Invoice not of valid status",
            },
            "A validation exception occurred - Invoice not of valid status",
            "ValidationException",
        ),
        (
            {"status": "error", "message": "Property values were not valid", "category": "VALIDATION_ERROR"},
            "Property values were not valid",
            "VALIDATION_ERROR",
        ),
    ],
    ids=["stripe", "xero", "hubspot"],
)
@respx.mock(base_url=BASE)
def test_error_message_carries_the_providers_own_message_and_code(respx_mock, policy, body, message, code) -> None:
    respx_mock.get("/thing").mock(return_value=httpx.Response(400, json=body))
    with pytest.raises(InvalidRequestError) as raised:
        make_http(policy).request("GET", "/thing")
    assert raised.value.code == code
    assert message in str(raised.value)
    assert "GET /thing" in str(raised.value)


@respx.mock(base_url=BASE)
def test_api_key_is_absent_from_errors_logs_and_reprs(respx_mock, policy, caplog) -> None:
    key = "sk_test_51SuperSecretKeyValue"
    route = respx_mock.get("/v1/invoices").mock(
        side_effect=[
            httpx.Response(500, json={"error": {"message": f"upstream echoed {key}"}}),
            httpx.Response(500, json={"error": {"message": f"upstream echoed {key}"}}),
            httpx.Response(401, json={"error": {"message": f"Invalid API Key provided: {key}"}}),
        ]
    )
    http = make_http(policy, auth=BearerAuth(key))
    caplog.set_level("DEBUG")
    with pytest.raises(AuthenticationError) as raised:
        http.request("GET", "/v1/invoices")
    assert route.calls[0].request.headers["Authorization"] == f"Bearer {key}"
    for text in (str(raised.value), repr(raised.value), caplog.text, repr(http), repr(http._auth)):
        assert key not in text
    assert "attempt 1 of 3" in caplog.text


def test_user_agent_and_default_headers_are_sent(policy) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    http = make_http(policy, transport=httpx.MockTransport(answer), headers={"Stripe-Version": "2023-08-16"})
    http.request("GET", "/v1/invoices")
    assert seen[0].headers["User-Agent"].startswith("ar-connector/")
    assert seen[0].headers["Stripe-Version"] == "2023-08-16"
