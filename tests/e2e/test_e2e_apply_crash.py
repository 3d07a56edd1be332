"""Exactly-once write-back: apply killed at random points and right between the provider's
answer and our commit, then run to the end; the sandbox's journal shows every effect once."""

from __future__ import annotations

from datetime import date

import pytest

from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from support.apply_crash import crash_and_finish, prepare
from support.e2e import with_credentials

pytestmark = pytest.mark.slow


def test_apply_killed_repeatedly_writes_every_effect_exactly_once(tmp_path):
    book = with_credentials(generate(7, "small", today=date.today()).data)
    with Sandbox(book, limits="off", latency_ms=10, refresh_grace_s=1800) as sandbox:
        config = prepare(sandbox, tmp_path)
        run = crash_and_finish(sandbox, config, rounds=10, seed=1, max_delay=1.5)
    assert run.planned > 50
    assert run.failpoint_exits >= 4, "the failpoint rounds must die between answer and commit"
    assert run.kills >= 2
    assert run.duplicates == {}, run.duplicates
    assert run.left == 0
    ledger_payments = [k for k in run.effects if k.startswith("xero PUT /Payments")]
    gateway_paid = [k for k in run.effects if k.startswith("stripe POST") and k.split()[2].endswith("/pay")]
    assert ledger_payments and gateway_paid
