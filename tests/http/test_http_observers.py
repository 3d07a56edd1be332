"""Every provider answer can be observed (the service counts 429s and errors for /metrics)."""

from __future__ import annotations

import httpx
import respx

from connector.http import ProviderHttp, RetryPolicy, observe_responses
from connector.service.metrics import Metrics
from support.http_fakes import BASE


def metric_value(metrics: Metrics, status: str) -> float:
    value = metrics.registry.get_sample_value(
        "connector_provider_error_responses_total", {"provider": "stripe", "status": status}
    )
    return value or 0.0


@respx.mock(base_url=BASE)
def test_each_answer_is_told_to_observers_retried_ones_included(respx_mock, clock) -> None:
    respx_mock.get("/v1/invoices").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "1"}),
            httpx.Response(503),
            httpx.Response(200, json={}),
        ]
    )
    seen: list[tuple[str, int]] = []
    metrics = Metrics()
    forget = observe_responses(lambda provider, status: seen.append((provider, status)))
    forget_metrics = observe_responses(metrics.count_response)
    try:
        policy = RetryPolicy(max_attempts=5, backoff_initial=0.01, jitter=0, sleep=clock.sleep, clock=clock.now)
        ProviderHttp("stripe", base_url=BASE, retry=policy).request("GET", "/v1/invoices")
    finally:
        forget()
        forget_metrics()
    assert seen == [("stripe", 429), ("stripe", 503), ("stripe", 200)]
    assert metric_value(metrics, "429") == 1 and metric_value(metrics, "503") == 1
    assert metric_value(metrics, "200") == 0  # successes are not error answers


@respx.mock(base_url=BASE)
def test_an_observer_that_fails_never_breaks_the_request(respx_mock, clock) -> None:
    respx_mock.get("/v1/invoices").mock(return_value=httpx.Response(200, json={"ok": True}))

    def broken(provider: str, status: int) -> None:
        raise RuntimeError("observer bug")

    forget = observe_responses(broken)
    try:
        response = ProviderHttp("stripe", base_url=BASE).request("GET", "/v1/invoices")
    finally:
        forget()
    assert response.json() == {"ok": True}
