"""Finance's reconciliation commands on a demo database: JSON shape, decisions, audit."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.slow


@pytest.fixture
def book(demo_copy, run_cli):
    """The CLI on a private copy of the demo database."""

    def run(*args):
        return run_cli("--config", str(demo_copy / "connector.toml"), *args)

    return run, demo_copy


def audit_rows(copy, action):
    engine = sa.create_engine(f"sqlite:///{copy / 'connector.db'}")
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT actor, action, subject_id, decision FROM audit_log WHERE action = :a"), {"a": action}
        ).all()
    engine.dispose()
    return rows


def test_reconcile_json_gives_every_allocation_and_proposal_in_the_documented_shape(book):
    run, _ = book
    result = run("reconcile", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["applied"] and report["proposals"]
    for entry in report["applied"] + report["proposals"]:
        assert entry["status"] in ("applied", "proposed")
        assert entry["payment"]["refs"] and all({"system", "type", "id"} == set(r) for r in entry["payment"]["refs"])
        assert entry["invoice"]["refs"] and entry["invoice"]["number"]
        assert {"amount", "currency", "rule", "confidence", "reason"} <= set(entry)
        assert isinstance(entry["amount"], str) and "." in entry["amount"] or entry["currency"] == "JPY"
    for proposal in report["proposals"]:
        assert [c["rank"] for c in proposal["candidates"]] == list(range(1, len(proposal["candidates"]) + 1))
        assert proposal["candidates"][0]["invoice"]["refs"]


def test_reconcile_run_again_on_a_book_nothing_changed_matches_nothing_and_says_since_when(book):
    run, copy = book
    first = run("reconcile", "--json")
    assert first.exit_code == 0 and "nothing changed" not in first.stderr
    # its own writes may move the book once: then the next run matches again, finding nothing new
    for _ in range(3):
        unchanged = run("reconcile", "--json")
        if unchanged.stderr:
            break
    assert unchanged.exit_code == 0
    assert re.fullmatch(
        r"nothing changed since the reconcile of \d{4}-\d\d-\d\d \d\d:\d\d:\d\d: nothing matched again "
        r"\(--full does\)\n",
        unchanged.stderr,
    )
    before, report = json.loads(first.stdout), json.loads(unchanged.stdout)
    assert report["unchanged_since"]
    assert (report["applied"], report["proposals"]) == (before["applied"], before["proposals"])
    assert report["summary"]["applied_this_run"] == 0 and report["summary"]["open_proposals"] == len(
        before["proposals"]
    )
    audited = len(audit_rows(copy, "allocate"))
    assert json.loads(run("reconcile", "--json").stdout)["unchanged_since"]
    assert len(audit_rows(copy, "allocate")) == audited
    # --full matches anyway; finance's decision makes the next run match again
    assert "nothing changed" not in run("reconcile", "--full").stderr
    proposal = before["proposals"][0]
    assert run("reconcile", "reject", proposal["id"], "--user", "alice").exit_code == 0
    after = run("reconcile", "--json")
    assert "nothing changed" not in after.stderr and "unchanged_since" not in json.loads(after.stdout)
    assert proposal["payment"]["id"] not in {p["payment"]["id"] for p in json.loads(after.stdout)["proposals"]}


def test_a_rejected_proposal_is_not_proposed_again_and_is_audited(book):
    run, copy = book
    proposal = json.loads(run("reconcile", "--json").stdout)["proposals"][0]
    result = run("reconcile", "reject", proposal["id"], "--user", "alice", "--reason", "customer says neither")
    assert result.exit_code == 0, result.stderr
    again = json.loads(run("reconcile", "--json").stdout)
    assert proposal["payment"]["id"] not in {p["payment"]["id"] for p in again["proposals"]}
    assert ("alice", "reject", proposal["payment"]["id"], "customer says neither") in audit_rows(copy, "reject")
    assert run("reconcile", "reject", proposal["id"]).exit_code == 2  # already decided


def test_accepting_a_proposal_applies_it_and_no_rule_undoes_it(book):
    run, copy = book
    proposal = json.loads(run("reconcile", "--json").stdout)["proposals"][0]
    second = proposal["candidates"][1]
    assert run("reconcile", "accept", proposal["id"], "--candidate", "2", "--user", "bob").exit_code == 0
    applied = json.loads(run("reconcile", "--json").stdout)["applied"]
    mine = [a for a in applied if a["payment"]["id"] == proposal["payment"]["id"]]
    assert [(a["invoice"]["number"], a["amount"], a["confirmed_by"]) for a in mine] == [
        (second["invoice"]["number"], second["amount"], "bob")
    ]
    assert audit_rows(copy, "accept")[0][0] == "bob"


def test_match_and_unmatch_by_hand(book):
    run, copy = book
    report = json.loads(run("reconcile", "--json").stdout)
    proposal = report["proposals"][0]
    charge = proposal["payment"]["refs"][0]["id"]
    number = proposal["candidates"][0]["invoice"]["number"]
    too_much = run("reconcile", "match", charge, number, "--amount", "99999999")
    assert too_much.exit_code == 2 and "left to apply" in too_much.stderr
    made = run("reconcile", "match", charge, number, "--user", "carol")
    assert made.exit_code == 0, made.stderr
    allocation_id = made.stdout.split()[1].rstrip(":")
    applied = json.loads(run("reconcile", "--json").stdout)["applied"]
    assert any(a["id"] == allocation_id and a["rule"] == "manual" for a in applied)
    assert run("reconcile", "unmatch", allocation_id, "--user", "carol").exit_code == 0
    after = json.loads(run("reconcile", "--json").stdout)
    assert not any(a["id"] == allocation_id for a in after["applied"])
    assert audit_rows(copy, "match") and audit_rows(copy, "unmatch")


def test_unknown_ids_and_ledger_records_are_refused_with_one_line(book):
    run, _ = book
    assert run("reconcile", "accept", "pr-nope").exit_code == 2
    assert run("reconcile", "match", "ch_nope", "INV-0001").exit_code == 2
    ledger = next(a for a in json.loads(run("reconcile", "--json").stdout)["applied"] if a["rule"] == "ledger_record")
    refused = run("reconcile", "unmatch", ledger["id"])
    assert refused.exit_code == 2 and "ledger" in refused.stderr
