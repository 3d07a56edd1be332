"""Several companies in one deployment, as the CLI shows them: `companies list`, `sync` company
by company, `aging` and `drift` side by side with `--company all`, `doctor` naming the company,
and the usage errors of a book command that does not say which company it means.

Two sandboxes serve two generated books (seeds 42 and 43) whose invoice numbers and customers
collide; company `a` (declared with a legal name) keeps the first, company `b` the second."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from connector.demo import DEMO_CREDENTIALS, SANDBOX_SECRET_KEY
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from support.databases import postgres_url_or_fail, temporary_pg_schema
from support.e2e import with_credentials

TODAY = date(2024, 9, 30)
AS_OF = ("--as-of", TODAY.isoformat())
CONNECTION = re.compile(r"\b(?:gateway|ledger|crm)_(\w)\b")


def connection_tables(sandbox: Sandbox | None, company: str | None, suffix: str) -> str:
    """A Stripe gateway, a Xero ledger and a HubSpot CRM served by `sandbox` (nothing listens
    at port 9 when it is None), named `gateway_<suffix>` and so on, in `company`."""
    xero, hubspot = DEMO_CREDENTIALS["xero"], DEMO_CREDENTIALS["hubspot"]

    def url(face: str) -> str:
        return sandbox.url(face) if sandbox is not None else "http://127.0.0.1:9"

    owner = f'company = "{company}"\n' if company else ""
    return f"""
[connections.gateway_{suffix}]
provider = "stripe"
{owner}base_url = "{url("stripe")}"
api_key = "{DEMO_CREDENTIALS["stripe"][0]}"

[connections.ledger_{suffix}]
provider = "xero"
{owner}base_url = "{url("xero")}"
token_url = "{url("xero")}/oauth/token"
tenant_id = "{xero["tenant_ids"][0]}"
client_id = "{xero["client_id"]}"
client_secret = "{xero["client_secret"]}"
refresh_token = "{xero["refresh_token"]}"
payment_account_code = "615"
fee_account_code = "404"

[connections.crm_{suffix}]
provider = "hubspot"
{owner}base_url = "{url("hubspot")}"
token_url = "{url("hubspot")}/oauth/token"
client_id = "{hubspot["client_id"]}"
client_secret = "{hubspot["client_secret"]}"
refresh_token = "{hubspot["refresh_token"]}"
"""


SQLITE = "sqlite:///state.db"
BOTH_DATABASES = pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


def write_config(directory: Path, text: str, url: str = SQLITE) -> None:
    database = f'[database]\nurl = "{url}"\nsecret_key = "{SANDBOX_SECRET_KEY}"\n'
    (directory / "connector.toml").write_text(database + text)


@pytest.fixture
def database(request) -> Iterator[str]:
    """The state database's URL: a SQLite file, or with `BOTH_DATABASES` also a schema of its
    own on the test PostgreSQL server."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield SQLITE
        return
    url = postgres_url_or_fail()
    with temporary_pg_schema(url) as schema:
        yield f"{url}?options=-csearch_path%3D{schema}"


def two_companies(a: Sandbox | None, b: Sandbox | None, extra: str = "") -> str:
    return (
        '\n[companies.a]\nlegal_name = "Alpha Trading Ltd"\n\n[companies.b]\n'
        + extra
        + connection_tables(a, "a", "a")
        + connection_tables(b, "b", "b")
    )


@pytest.fixture
def books() -> Iterator[tuple[Sandbox, Sandbox]]:
    """Two sandboxes, each serving its own generated book."""
    first = with_credentials(generate(42, "small", today=TODAY).data)
    second = with_credentials(generate(43, "small", today=TODAY).data)
    with Sandbox(first, limits="off") as a, Sandbox(second, limits="off") as b:
        yield a, b


@pytest.fixture
def deployment(books, database, tmp_path, run_cli):
    """The two books configured as companies `a` and `b` of one deployment; returns the CLI."""
    write_config(tmp_path, two_companies(*books), database)
    return run_cli


def json_of(result: Any) -> Any:
    assert result.exit_code in (0, 1), result.stderr
    return json.loads(result.stdout)


# companies list ---------------------------------------------------------------------------


def test_companies_list_of_a_config_naming_no_company_shows_the_default_one(run_cli, tmp_path):
    write_config(tmp_path, connection_tables(None, None, "x"))
    listed = run_cli("companies", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    (company,) = json.loads(listed.stdout)["companies"]
    assert company["company"] == "default" and company["legal_name"] is None
    assert company["connections"] == [
        {"name": "gateway_x", "provider": "stripe", "kind": "gateway"},
        {"name": "ledger_x", "provider": "xero", "kind": "ledger"},
        {"name": "crm_x", "provider": "hubspot", "kind": "crm"},
    ]
    assert company["last_sync"] is None and company["invoices"] == 0
    text = run_cli("companies", "list").stdout
    assert text.splitlines()[0] == "default"
    assert "last sync:   never" in text


@BOTH_DATABASES
def test_companies_list_shows_each_company_its_connections_and_its_own_last_sync(deployment):
    assert deployment("sync", "--company", "a").exit_code == 0
    rows = {c["company"]: c for c in json_of(deployment("companies", "list", "--json"))["companies"]}
    assert list(rows) == ["a", "b"]
    assert rows["a"]["legal_name"] == "Alpha Trading Ltd" and rows["b"]["legal_name"] is None
    assert [c["name"] for c in rows["b"]["connections"]] == ["gateway_b", "ledger_b", "crm_b"]
    assert rows["a"]["last_sync"] is not None and rows["a"]["last_sync_status"] == "ok"
    assert rows["a"]["invoices"] > 0 and rows["a"]["customers"] > 0
    assert (rows["b"]["last_sync"], rows["b"]["invoices"], rows["b"]["customers"]) == (None, 0, 0)
    text = deployment("companies", "list").stdout
    section_a, section_b = text.split("\n\n")
    assert section_a.startswith("a  Alpha Trading Ltd\n") and "(ok)" in section_a
    assert "ledger_a (xero ledger)" in section_a
    assert section_b.startswith("b\n") and "last sync:   never" in section_b


# sync -------------------------------------------------------------------------------------


def test_sync_of_several_companies_runs_each_with_its_own_connections(deployment):
    result = deployment("sync", "--json")
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)["companies"]
    assert list(runs) == ["a", "b"]
    for company, run in runs.items():
        assert {s["connection"] for s in run["streams"]} == {
            f"gateway_{company}",
            f"ledger_{company}",
            f"crm_{company}",
        }
    text = deployment("sync").stdout
    assert "=== company a (Alpha Trading Ltd) ===" in text and "=== company b ===" in text
    assert text.index("=== company a") < text.index("gateway_a") < text.index("=== company b") < text.index("gateway_b")


def test_sync_with_a_connection_syncs_that_connections_company_in_the_usual_shape(deployment):
    report = json_of(deployment("sync", "--connection", "gateway_b", "--json"))
    assert "companies" not in report
    assert {s["connection"] for s in report["streams"]} == {"gateway_b"}
    rows = {c["company"]: c for c in json_of(deployment("companies", "list", "--json"))["companies"]}
    assert rows["a"]["last_sync"] is None and rows["b"]["last_sync"] is not None


def test_sync_refuses_a_connection_of_another_company(deployment):
    result = deployment("sync", "--company", "a", "--connection", "gateway_b")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --connection gateway_b: it belongs to company 'b', not 'a'"


def test_a_dry_run_of_several_companies_plans_each_company_apart(deployment, books):
    result = deployment("sync", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)["companies"]
    for company in ("a", "b"):
        named = {m.group(1) for line in runs[company]["plan"] for m in CONNECTION.finditer(line)}
        assert named == {company}, runs[company]["plan"]
    assert all(
        not [e for e in sandbox.journal if e["method"] != "GET" and "oauth" not in e["path"]] for sandbox in books
    )


def test_sync_apply_of_several_companies_sends_each_companys_writes_to_its_own_systems(deployment, books):
    result = deployment("sync", "--apply", "--json")
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)["companies"]
    for company, sandbox in zip(("a", "b"), books, strict=True):
        applied = runs[company]["applied"]
        assert set(applied) == {f"gateway_{company}", f"ledger_{company}", f"crm_{company}"}
        effects = [(e["provider"], e["method"], e["effect"].split(" ")[0]) for e in sandbox.journal]
        assert effects.count(("stripe", "POST", "marked")) == applied[f"gateway_{company}"]["mark_paid"] > 0
        # payments and fees go in batches: each created one is its own effect in the batch's
        created = sum(e["effect"].count("created ") for e in sandbox.journal if e["provider"] == "xero")
        assert created == sum(applied[f"ledger_{company}"].get(k, 0) for k in ("record_payment", "record_fee"))


def test_one_company_failing_does_not_stop_the_next_and_sets_the_exit_code(books, tmp_path, run_cli):
    """Company `a`'s systems refuse its credentials; `b` still syncs its book."""
    refused = connection_tables(books[0], "a", "a")
    for secret in (DEMO_CREDENTIALS["stripe"][0], DEMO_CREDENTIALS["xero"]["refresh_token"]):
        refused = refused.replace(secret, "not-the-credential-0000")
    refused = refused.replace(DEMO_CREDENTIALS["hubspot"]["refresh_token"], "not-the-credential-0000")
    write_config(tmp_path, two_companies(None, books[1]).replace(connection_tables(None, "a", "a"), refused))
    result = run_cli("sync", "--json")
    assert result.exit_code == 1
    runs = json.loads(result.stdout)["companies"]
    assert runs["a"]["streams"] and all(s["status"] == "failed" for s in runs["a"]["streams"])
    assert runs["b"]["streams"] and all(s["status"] == "ok" for s in runs["b"]["streams"])
    rows = {c["company"]: c for c in json_of(run_cli("companies", "list", "--json"))["companies"]}
    assert rows["b"]["invoices"] > 0 and rows["a"]["invoices"] == 0


@BOTH_DATABASES
def test_a_command_scoped_to_one_company_does_not_see_the_others_records(deployment):
    assert deployment("sync").exit_code == 0
    listed = {c: json_of(deployment("invoices", "list", "--company", c, "--json"))["invoices"] for c in ("a", "b")}
    assert listed["a"] and listed["b"]
    assert not {i["id"] for i in listed["a"]} & {i["id"] for i in listed["b"]}
    assert {i["number"] for i in listed["a"]} & {i["number"] for i in listed["b"]}  # the books collide
    theirs = listed["b"][0]["id"]
    assert deployment("explain", theirs, "--company", "b").exit_code == 0
    result = deployment("explain", theirs, "--company", "a")
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"error: no payment or invoice {theirs!r} (give our id, a provider's id or an invoice number)"
    )


# aging and drift with --company all --------------------------------------------------------


@BOTH_DATABASES
def test_aging_of_all_companies_shows_each_company_as_it_is_alone(deployment):
    assert deployment("sync").exit_code == 0
    side_by_side = json_of(deployment("aging", "--company", "all", "--json", *AS_OF))
    assert [c["company"] for c in side_by_side["companies"]] == ["a", "b"]
    for entry in side_by_side["companies"]:
        alone = json_of(deployment("aging", "--company", entry["company"], "--json", *AS_OF))
        assert entry == {"company": entry["company"], **alone}
    text = deployment("aging", "--company", "all", *AS_OF).stdout
    assert text.startswith("=== company a (Alpha Trading Ltd) ===\n")
    assert text.count("DSO as of") == 2 and "\n=== company b ===\n" in text
    rows = deployment("aging", "--company", "all", "--csv", *AS_OF).stdout.splitlines()
    assert rows[0].startswith("company,row,customer_id,")
    assert {row.split(",")[0] for row in rows[1:]} == {"a", "b"}


def test_drift_of_all_companies_shows_each_company_as_it_is_alone(deployment):
    assert deployment("sync").exit_code == 0
    result = deployment("drift", "--company", "all", "--json")
    side_by_side = json.loads(result.stdout)
    alone = {c: deployment("drift", "--company", c, "--json") for c in ("a", "b")}
    assert side_by_side == {"companies": [{"company": c, **json.loads(r.stdout)} for c, r in alone.items()]}
    assert result.exit_code == max(r.exit_code for r in alone.values())
    text = deployment("drift", "--company", "all").stdout
    assert text.startswith("=== company a (Alpha Trading Ltd) ===\n") and "\n=== company b ===\n" in text


def test_aging_and_drift_of_one_company_keep_their_json_shape(books, tmp_path, run_cli):
    write_config(tmp_path, connection_tables(books[0], None, "x"))
    assert run_cli("sync").exit_code == 0
    aging = json_of(run_cli("aging", "--json", *AS_OF))
    # the keys it always had come first; the workbench's sort, top and row count only add
    assert list(aging)[:5] == ["as_of", "buckets", "customers", "totals", "dso"]
    assert "companies" not in aging
    assert aging["customers"] and aging["totals"]
    drift = json_of(run_cli("drift", "--json"))
    assert list(drift) == ["drift", "records", "dangling_refs", "counts"]


# usage errors ------------------------------------------------------------------------------


@pytest.fixture
def unsynced(tmp_path, run_cli):
    """Two companies configured, nothing synced (no provider is called)."""
    write_config(tmp_path, two_companies(None, None))
    return run_cli


def test_a_book_command_with_several_companies_and_none_chosen_lists_them(unsynced):
    for command in (("invoices", "list"), ("aging",), ("reconcile",)):
        result = unsynced(*command)
        assert result.exit_code == 2, command
        assert result.stderr.strip() == (
            "error: several companies are configured (a, b): choose one with --company NAME"
        )


def test_an_unknown_company_is_refused_listing_the_configured_ones(unsynced):
    for args in (("invoices", "list", "--company", "nosuch"), ("--company", "nosuch", "aging")):
        result = unsynced(*args)
        assert result.exit_code == 2
        assert result.stderr.strip() == "error: no company named 'nosuch' (configured: a, b)"


def test_all_companies_is_only_for_side_by_side_reports(unsynced):
    for command in (("invoices", "list"), ("payments", "list"), ("sync",)):
        result = unsynced(*command, "--company", "all")
        assert result.exit_code == 2, command
        assert "--company all is for reports that show companies side by side (aging, drift)" in result.stderr
    assert unsynced("aging", "--company", "all", "--json").exit_code == 0


def test_the_company_may_come_from_the_environment(unsynced, monkeypatch):
    monkeypatch.setenv("CONNECTOR_COMPANY", "b")
    result = unsynced("invoices", "list", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["invoices"] == []


# doctor -----------------------------------------------------------------------------------


def test_doctor_names_each_company_and_warns_of_one_without_connections(tmp_path, run_cli):
    write_config(tmp_path, two_companies(None, None) + '\n[companies.c]\nlegal_name = "Gamma GmbH"\n')
    result = run_cli("doctor")
    assert result.exit_code == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "ok       company a: Alpha Trading Ltd: connections gateway_a, ledger_a, crm_a" in lines
    assert "ok       company b: connections gateway_b, ledger_b, crm_b" in lines
    assert (
        'warning  company c: Gamma GmbH: no connection names this company (add company = "c" to its connections)'
        in lines
    )
    assert any(line.startswith("ok       connection ledger_b: xero at ") and "(company b)" in line for line in lines)


def test_doctor_reports_a_companys_bad_dunning_policy_naming_the_company(tmp_path, run_cli):
    bad = '[companies.b.dunning]\nsteps = [{ days = 1, tone = "x", channel = "fax" }]\n'
    write_config(tmp_path, two_companies(None, None, extra=bad))
    result = run_cli("doctor")
    assert result.exit_code == 2
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("error")]
    assert line.startswith("error    dunning (company b): dunning.steps.0")


def test_doctor_lists_the_company_problems_of_the_config(tmp_path, run_cli):
    text = two_companies(None, None).replace('company = "b"', 'company = "a"', 1)  # gateway_b joins a
    text = text.replace(
        '[connections.ledger_b]\nprovider = "xero"\ncompany = "b"',
        '[connections.ledger_b]\nprovider = "xero"\ncompany = "a"',
    )
    text = text.replace(
        '[connections.crm_b]\nprovider = "hubspot"\ncompany = "b"',
        '[connections.crm_b]\nprovider = "hubspot"\ncompany = "z"',
    )
    write_config(tmp_path, text)
    result = run_cli("doctor")
    assert result.exit_code == 2
    problems = result.stderr.splitlines()
    assert (
        "error    config: connector.toml: connections.crm_b.company: no company 'z' is declared (declared: a, b)"
        in problems
    )
    assert (
        "error    config: connector.toml: connections.ledger_b: company 'a' already has the ledger 'ledger_a' "
        "(a company keeps one set of books)" in problems
    )
