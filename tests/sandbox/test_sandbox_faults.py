"""Injected faults (seeded, repeatable), latency, and OAuth token rotation."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from connector.sandbox import Sandbox
from connector.sandbox.common import Request
from support.sandbox_books import book
from support.sandbox_harness import effects, hubspot, running, stripe, xero


def _outcomes(seed: int, n: int = 40) -> list[str]:
    with running(book(), fail_rate=0.5, seed=seed, fault_delay_s=0.3) as sandbox:
        client = httpx.Client(
            base_url=sandbox.url("stripe"), headers={"Authorization": "Bearer sk_test_x"}, timeout=0.15
        )
        seen = []
        for _ in range(n):
            try:
                seen.append(str(client.get("/v1/customers").status_code))
            except httpx.TimeoutException:
                seen.append("timeout")
            except httpx.TransportError:
                seen.append("dropped")
        client.close()
    return seen


def test_the_same_seed_injects_the_same_faults():
    first, again, other = _outcomes(11), _outcomes(11), _outcomes(12)
    assert first == again
    assert first != other
    assert {"200", "500", "502", "503", "timeout", "dropped"} <= set(first + other)


def test_no_fail_rate_no_faults():
    with running(book()) as sandbox, stripe(sandbox) as client:
        assert {client.get("/v1/customers").status_code for _ in range(20)} == {200}


def _seed_with_fault_after_the_first_write() -> int:
    """A seed whose first draw faults a write after applying it and whose second does not."""
    write = Request("POST", "/v1/invoices/in_0001/pay", {}, {}, b"")
    for seed in range(200):
        sandbox = Sandbox(fail_rate=0.5, seed=seed)
        first, second = sandbox._draw_fault(write, True), sandbox._draw_fault(write, True)
        if first is not None and first.after and first.kind in ("500", "503", "drop") and second is None:
            return seed
    raise AssertionError("no seed found")


def test_a_write_that_failed_after_applying_replays_on_retry_and_applies_once():
    seed = _seed_with_fault_after_the_first_write()
    with running(book(), fail_rate=0.5, seed=seed) as sandbox, stripe(sandbox) as client:
        try:
            first = client.post(
                "/v1/invoices/in_0001/pay", data={"paid_out_of_band": "true"}, headers={"Idempotency-Key": "ar-1"}
            ).status_code
        except httpx.TransportError:
            first = "dropped"
        retry = client.post(
            "/v1/invoices/in_0001/pay", data={"paid_out_of_band": "true"}, headers={"Idempotency-Key": "ar-1"}
        )
        status = sandbox.state.stripe["invoices"]["in_0001"]["status"]
    assert first in (500, 503, "dropped")
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert status == "paid"
    journal = effects(sandbox, "stripe")
    assert journal[0].startswith("marked invoice in_0001 paid out of band; then fault: ")
    assert journal[1] == "replayed"


def test_latency_delays_every_answer():
    with running(book(), latency_ms=120) as sandbox, stripe(sandbox) as client:
        started = time.monotonic()
        client.get("/v1/customers")
        client.get("/v1/customers")
    assert time.monotonic() - started >= 0.24


def _refresh(sandbox, provider, refresh_token, *, basic=None, form=None):
    headers = {}
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **(form or {})}
    return httpx.post(f"{sandbox.url(provider)}/oauth/token", data=data, headers=headers)


def test_xero_refresh_tokens_rotate_and_the_old_one_is_refused():
    with running(book()) as sandbox:
        first = _refresh(sandbox, "xero", "rt-0", basic=("client", "secret"))
        reused = _refresh(sandbox, "xero", "rt-0", basic=("client", "secret"))
        second = _refresh(sandbox, "xero", first.json()["refresh_token"], basic=("client", "secret"))
    assert first.status_code == 200 and first.json()["expires_in"] == 1800
    assert first.json()["refresh_token"] != "rt-0"
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert second.status_code == 200
    journal = sandbox.journal
    assert all("rt-0" not in str(entry["payload"]) for entry in journal), "no secret in the journal"


@pytest.mark.parametrize("provider", ["xero", "hubspot"])
def test_named_credentials_require_tokens_issued_here(provider):
    clock_now = [1_800_000_000.0]
    credentials = {"client_id": "cid", "client_secret": "cs", "refresh_token": "rt-first"}
    data = {**book(), "credentials": {provider: credentials}}
    with running(data, clock=lambda: clock_now[0], token_ttl_s=600) as sandbox:
        face = xero if provider == "xero" else hubspot
        path = "/Accounts" if provider == "xero" else "/crm/v3/objects/deals/300"
        wrong_client = _refresh(sandbox, provider, "rt-first", form={"client_id": "cid", "client_secret": "nope"})
        unknown = _refresh(sandbox, provider, "rt-guess", form={"client_id": "cid", "client_secret": "cs"})
        issued = _refresh(sandbox, provider, "rt-first", form={"client_id": "cid", "client_secret": "cs"}).json()
        with face(sandbox, "made-up") as stranger, face(sandbox, issued["access_token"]) as holder:
            assert stranger.get(path).status_code == 401
            assert holder.get(path).status_code == 200
            clock_now[0] += 601
            assert holder.get(path).status_code == 401, "an expired access token is refused"
        again = _refresh(sandbox, provider, "rt-first", form={"client_id": "cid", "client_secret": "cs"})
    assert wrong_client.status_code == 401 and unknown.status_code == 400
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
