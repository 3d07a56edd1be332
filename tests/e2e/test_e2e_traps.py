"""Measured precision: the trap book synced from the sandbox, reconciled, and scored against its
truth (connector.testing.precision). The acceptance figures of reconciliation, on several seeds:
no wrong allocation applied by itself, at least 95 % of the payments whose answer is knowable
applied right, the right candidate first in at least 90 % of proposals, money exact in JPY, USD
and KWD."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from connector.config import load_config
from connector.model import Allocation
from connector.money import Money
from connector.reconcile.run import run_reconciliation
from connector.sandbox import Sandbox
from connector.sandbox.generator import Scenario, generate
from connector.sandbox.generator_traps import TRAPS, generate_traps
from connector.state import reconciliation as decisions
from connector.testing.precision import Score, score
from support.e2e import sync_sandbox, with_credentials

pytestmark = pytest.mark.slow

SEEDS = (3, 11, 29)


def reconciled_score(scenario: Scenario, directory: Path) -> Score:
    """`scenario` served by the sandbox (limits off), synced in full, reconciled and scored."""
    with Sandbox(with_credentials(scenario.data), limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, directory, full=True)
    try:
        assert report.ok, report
        run_reconciliation(load_config(str(directory / "connector.toml")), store)
        return score(scenario.truth, store)
    finally:
        store.close()


@pytest.fixture(scope="module")
def scores(tmp_path_factory) -> dict[int, Score]:
    return {
        seed: reconciled_score(generate_traps(seed, today=date.today()), tmp_path_factory.mktemp(f"traps{seed}"))
        for seed in SEEDS
    }


@pytest.mark.parametrize("seed", SEEDS)
def test_the_trap_book_meets_the_acceptance_figures(scores, seed):
    result = scores[seed]
    assert {o.trap for o in result.outcomes} >= set(TRAPS)
    assert len(result.to_apply) >= 100 and len(result.outcomes) >= 170
    assert result.wrong == [], result.text()
    assert result.shortfalls() == [], result.text()


def test_no_trap_is_auto_applied_wrongly_on_any_seed(scores):
    """Per kind, over every seed: the payments a clerk would keep unapplied, or whose money did
    not stay, get nothing applied."""
    for result in scores.values():
        kept = [o for o in result.outcomes if o.expected in ("credit", "none")]
        assert kept and all(not o.applied for o in kept), result.text()


def test_an_ordinary_book_is_scored_alike(tmp_path):
    result = reconciled_score(generate(7, "small", today=date.today()), tmp_path)
    assert result.to_apply and result.wrong == [], result.text()
    assert result.shortfalls() == [], result.text()


def test_a_second_run_over_the_same_book_applies_nothing_and_proposes_the_same(tmp_path):
    """The trap book reconciled twice, nothing changed between: the second run applies and
    takes back nothing, and proposes the same payments, candidates and reasons (before the
    passes were repeated and the proposals made last, it proposed otherwise on this seed)."""
    scenario = generate_traps(11, today=date.today())
    with Sandbox(with_credentials(scenario.data), limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, tmp_path, full=True)
    config = load_config(str(tmp_path / "connector.toml"))
    try:
        assert report.ok, report
        first = run_reconciliation(config, store)
        again = run_reconciliation(config, store)
    finally:
        store.close()
    assert first.applied and first.proposals
    assert (again.applied, again.reversed) == ([], 0)
    assert again.proposals == first.proposals
    assert again.unmatched == first.unmatched


def test_the_score_sees_a_wrong_allocation(tmp_path):
    """The scorer can fail: an allocation of the wrong amount, added to a right result, is wrong."""
    scenario = generate(7, "small", today=date.today())
    with Sandbox(with_credentials(scenario.data), limits="off") as sandbox:
        store, _ = sync_sandbox(sandbox, tmp_path, full=True)
    run_reconciliation(load_config(str(tmp_path / "connector.toml")), store)
    before = score(scenario.truth, store)
    right = next(o for o in before.outcomes if o.applied_right and o.payment.startswith("ch_"))
    charge = store.canonical_ids("gateway", "payment", [right.payment])[right.payment]
    with store.session() as session:
        ours = next(
            s.allocation
            for s in decisions.load_allocations(session, status="applied")
            if s.allocation.payment_id == charge
        )
        planted = Allocation(
            payment_id=ours.payment_id,
            invoice_id=ours.invoice_id,
            amount=Money.from_minor(1, ours.amount.currency),
            rule="amount_within_tolerance",
            confidence=Decimal("0.97"),
            reason="planted by the test",
        )
        decisions.save_allocations(session, [planted], "applied")
    after = score(scenario.truth, store)
    store.close()
    assert [o.payment for o in after.wrong] == [right.payment]
    assert "1 payments with a wrong auto-applied allocation" in after.shortfalls()
    rows = [r for r in after.by_rule() if "amount_within_tolerance" in r.rule and r.decision == "applied"]
    assert sum(r.count - r.right for r in rows) == 1
