"""Two `connector serve` workers on one PostgreSQL against the sandbox enforcing the providers'
documented limits (Xero 60 a minute and 5 in flight per tenant, Stripe test mode 25 a second,
HubSpot OAuth apps 100 per 10 s): one budget per provider account, so the providers answer
almost nothing with 429, never see more than their limit in any window, and every action is
done once."""

from __future__ import annotations

import pytest
from e2e.test_e2e_service import book, run_workers  # noqa: F401 (book: the small book fixture)

from connector.sandbox import Sandbox
from support.databases import POSTGRES_URL, postgres_url_or_fail, temporary_pg_schema

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

# The documented limits of the sandbox's accounts (the demo's credentials: a Stripe test key
# and an OAuth HubSpot app), per the window `Sandbox.traffic` measures.
DOCUMENTED = {"stripe": 25, "xero": 60, "hubspot": 100}


def test_two_workers_share_each_accounts_budget_and_stay_within_the_documented_limits(book, tmp_path):  # noqa: F811
    postgres_url_or_fail()
    with temporary_pg_schema() as schema, Sandbox(book, limits="documented", latency_ms=10) as sandbox:
        run = run_workers(
            sandbox,
            tmp_path,
            f"{POSTGRES_URL}?options=-csearch_path%3D{schema}",
            workers=2,
            kill_while_sending=False,
            timeout=480,
        )
        traffic = sandbox.traffic()
    assert run.effects.ok, run.effects
    assert {a["state"] for a in run.outbox} == {"done"}, run.logs
    assert set(traffic) >= {"stripe", "xero", "hubspot"}
    for provider, limit in DOCUMENTED.items():
        seen = traffic[provider]
        assert seen.rate_limited <= 0.01 * seen.requests, (provider, seen)
        assert seen.busiest <= limit, (provider, seen)
