"""Exactly-once write-back: apply killed at random points and right between the provider's
answer and our commit, then run to the end; the sandbox's journal shows every effect once.

HubSpot notes and tasks are each killed right after HubSpot made them (in batches), with
HubSpot's search index 30 s behind (the sandbox's `search_delay_s`): the replay cannot find
them by search, while a read by HubSpot's unique key does, so no second copy is made."""

from __future__ import annotations

from datetime import date

import pytest

from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from support.apply_crash import crash_and_finish, key_property_not_unique, prepare
from support.e2e import with_credentials

pytestmark = pytest.mark.slow

SEARCH_DELAY_S = 30.0


def test_apply_killed_repeatedly_writes_every_effect_exactly_once(tmp_path):
    book = with_credentials(generate(7, "small", today=date.today()).data)
    with Sandbox(book, limits="off", latency_ms=10, refresh_grace_s=1800, search_delay_s=SEARCH_DELAY_S) as sandbox:
        config = prepare(sandbox, tmp_path)
        run = crash_and_finish(sandbox, config, rounds=10, seed=1, max_delay=1.5, hubspot_creates=True)
    assert run.planned > 50
    assert run.failpoint_exits >= 4, "the failpoint rounds must die between answer and commit"
    assert run.kills >= 2
    assert run.duplicates == {}, run.duplicates
    assert run.left == 0
    ledger_payments = [k for k in run.effects if k.startswith("xero PUT /Payments")]
    gateway_paid = [k for k in run.effects if k.startswith("stripe POST") and k.split()[2].endswith("/pay")]
    assert ledger_payments and gateway_paid
    # every note and task made once, each after a process died right after HubSpot made it:
    # its batch went again whole, and each was found by its unique key instead of made again
    assert run.hubspot_creates >= 5
    assert len(run.hubspot_effects) == run.hubspot_creates
    assert run.hubspot_exits >= 2  # the notes' batch and the tasks' batch, at least
    assert run.hubspot_replayed == run.hubspot_creates
    assert run.hubspot_duplicates == {}


def test_the_search_fallback_makes_notes_twice_when_the_index_lags(tmp_path):
    """The same crashes with the key looked up by search (a portal whose key property is not
    unique, action_key_setup = "search"): the replays do not see what the killed processes
    made, and HubSpot takes the second copy. Why the unique key is the default."""
    book = with_credentials(generate(7, "small", today=date.today()).data)
    with Sandbox(book, limits="off", latency_ms=10, refresh_grace_s=1800, search_delay_s=SEARCH_DELAY_S) as sandbox:
        key_property_not_unique(sandbox)
        config = prepare(sandbox, tmp_path, hubspot={"action_key_setup": "search"})
        run = crash_and_finish(sandbox, config, rounds=0, seed=1, max_delay=1.5, hubspot_creates=True)
    assert run.left == 0
    assert run.hubspot_refused == 0
    assert run.hubspot_duplicates, "a replay within the index's delay should have made a second copy"
    assert set(run.duplicates) == set(run.hubspot_duplicates)  # nothing else doubled
