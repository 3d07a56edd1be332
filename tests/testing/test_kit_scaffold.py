"""`connector plugin new` writes a package that installs, is discovered, and whose three-line
conformance test runs at once and fails with "not implemented"."""

import json
import os
import subprocess
import sys
import tomllib

import pytest

from connector.mappings.mapper import build_spec
from connector.scaffold.templates import render_files


def run(*args, cwd=None, site=None, timeout=300):
    env = {**os.environ}
    if site is not None:
        env["PYTHONPATH"] = str(site)
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, *args], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("kind", ["ledger", "crm", "gateway"])
def test_every_kind_gets_a_mapping_valid_against_the_spec(kind):
    files = render_files("acme_books", kind)
    build_spec(tomllib.loads(files["acme_books_connector/mapping.toml"]), "scaffold")
    compile(files["acme_books_connector/provider.py"], "provider.py", "exec")


def test_invalid_name_and_existing_directory_are_refused_with_exit_2(tmp_path):
    bad = run("-m", "connector", "plugin", "new", "Not-A-Name", "--kind", "ledger", "--dir", str(tmp_path / "x"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "invalid plugin name" in bad.stderr
    taken = run("-m", "connector", "plugin", "new", "acme", "--kind", "crm", "--dir", str(tmp_path))
    assert taken.returncode == 2 and "already exists" in taken.stderr and taken.stderr.count("\n") == 1


def test_a_directory_that_cannot_be_written_is_a_usage_error_not_an_internal_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    target = blocker / "sub"
    result = run("-m", "connector", "plugin", "new", "acme", "--kind", "crm", "--dir", str(target))
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"error: cannot write {target}: Not a directory\n"
    assert "internal error" not in result.stderr and not target.exists()


def test_write_plugin_turns_an_os_error_into_a_scaffold_error(tmp_path):
    from connector.scaffold import ScaffoldError, write_plugin

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ScaffoldError, match=r"^cannot write .*a-file/deeper/sub: Not a directory$"):
        write_plugin("acme", "ledger", blocker / "deeper" / "sub")


def test_a_scaffolded_plugin_installs_is_listed_and_its_conformance_tests_fail_not_implemented(tmp_path):
    package = tmp_path / "connector-acme_books"
    made = run("-m", "connector", "plugin", "new", "acme_books", "--kind", "ledger", "--dir", str(package))
    assert made.returncode == 0, made.stderr
    site = tmp_path / "site"
    installed = run(
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--target",
        str(site),
        str(package),
    )
    assert installed.returncode == 0, installed.stderr

    listed = run("-m", "connector", "providers", "list", "--json", site=site)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)["providers"]}
    assert rows["acme_books"]["status"] == "ok"
    assert rows["acme_books"]["kind"] == "ledger"
    assert rows["acme_books"]["capabilities"] == {
        "streams": ["customers", "invoices", "payments"],
        "actions": ["record_payment", "send_invoice"],
    }

    tests = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/", cwd=package, site=site)
    output = tests.stdout + tests.stderr
    assert tests.returncode == 1, output  # tests ran and failed (not a collection error)
    assert "not implemented: AcmeBooksLedger.read_invoices()" in output
    assert "not implemented: AcmeBooksLedger.apply_record_payment()" in output
    assert "test_declared_capabilities_match_implemented_methods PASSED" in output or " passed" in output
