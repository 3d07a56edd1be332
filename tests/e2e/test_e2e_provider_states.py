"""The providers' collections states (a deal disputed, a promise to pay, a payment plan in
words, a company paused) are copied after each link for the records whose views moved only:
on the sandbox's book, after rounds of random changes in the CRM, what each incremental pass
leaves is what a pass over every record gives, and a pass with nothing new reads no view."""

from __future__ import annotations

import random
from datetime import date
from typing import Any

import pytest

from connector import pipeline
from connector.config import load_config
from connector.dunning import states
from connector.dunning.states import apply_provider_states
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.state.store import Store
from support.e2e import sync_sandbox, with_credentials
from support.sandbox_changes import change, change_deal_states

SEED = 77


def snapshot(store: Store) -> tuple[dict[str, Any], dict[str, bool]]:
    invoices = {
        i.id: (i.disputed, i.promise_to_pay, None if i.payment_plan is None else i.payment_plan.model_dump_json())
        for i in store.receivable_states()
    }
    return invoices, {c.id or "": c.paused for c in store.list_customers()}


def test_states_copied_for_what_moved_equal_a_pass_over_every_record(tmp_path, monkeypatch):
    rng = random.Random(SEED)
    with Sandbox(with_credentials(generate(SEED, "small", today=date.today()).data), limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, tmp_path, full=True)
        assert report.ok
        config = load_config(str(tmp_path / "connector.toml"))
        try:
            assert apply_provider_states(config, store, full=True) == 0  # the first link read every record
            copied = 0
            for _ in range(5):
                for _ in range(rng.randint(1, 6)):
                    change_deal_states(sandbox, rng)
                for _ in range(rng.randint(0, 2)):
                    change(sandbox, rng, "companies", {"ar_dunning_paused": rng.choice(["true", ""])})
                before = snapshot(store)
                assert pipeline.sync(config, store).ok
                after = snapshot(store)
                copied += sum(before[0][i] != after[0].get(i) for i in before[0])
                copied += sum(before[1][c] != after[1].get(c) for c in before[1])
                assert apply_provider_states(config, store, full=True) == 0, "an incremental pass missed a change"
                assert snapshot(store) == after
            assert copied > 0  # the rounds changed states, and the incremental passes copied them

            def read(*args: Any, **kwargs: Any) -> Any:
                raise AssertionError("a pass with nothing new read a view")

            monkeypatch.setattr(states.state_linking, "ref_views", read)
            assert apply_provider_states(config, store) == 0
        finally:
            store.close()


@pytest.mark.parametrize("changed", ["ranks", "rules"])
def test_a_change_of_ranks_or_of_how_states_are_read_reads_every_record_again(tmp_path, monkeypatch, changed):
    with Sandbox(with_credentials(generate(SEED, "small", today=date.today()).data), limits="off") as sandbox:
        store, report = sync_sandbox(sandbox, tmp_path, full=True)
        assert report.ok
        config = load_config(str(tmp_path / "connector.toml"))
        try:
            if changed == "ranks":
                text = (tmp_path / "connector.toml").read_text()
                assert "[connections.crm]" in text
                (tmp_path / "connector.toml").write_text(
                    text.replace("[connections.crm]", "[connections.crm]\nsource_priority = 9", 1)
                )
                config = load_config(str(tmp_path / "connector.toml"))
            else:
                monkeypatch.setattr(states, "STATES_RULES", states.STATES_RULES + "-next")
            read: list[int] = []
            views = states.state_linking.ref_views

            def counted(*args: Any, **kwargs: Any) -> Any:
                rows = views(*args, **kwargs)
                read.append(len(rows))
                return rows

            monkeypatch.setattr(states.state_linking, "ref_views", counted)
            apply_provider_states(config, store)
            assert len(read) == 2 and all(read), read  # the invoices' views and the customers', all of them
        finally:
            store.close()
