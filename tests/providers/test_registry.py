"""The registry against real distributions, installed with pip the way a partner ships them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connector.providers.base import Provider, ProviderSettings
from connector.providers.registry import contract_problems

PLUGINS = Path(__file__).parent.parent / "plugins"


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory):
    """A site directory holding two real plugin distributions (their dist-info and entry
    points), installed by pip; subprocesses see them through PYTHONPATH, so the test venv
    itself is left as it was."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(PLUGINS / "acme_plugin"),
            str(PLUGINS / "broken_plugin"),
        ],
        check=True,
        capture_output=True,
    )
    return target


def connector(site, *args):
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "connector", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_installed_plugin_is_listed_with_kind_capabilities_and_origin(plugin_site):
    result = connector(plugin_site, "providers", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["providers"]}
    assert rows["acme"] == {
        "name": "acme",
        "status": "ok",
        "origin": "acme-connector-plugin 1.2.3",
        "target": "acme_connector:AcmeLedger",
        "kind": "ledger",
        "capabilities": {"streams": ["invoices"], "actions": ["record_payment"]},
    }


def test_a_plugin_that_fails_to_import_is_broken_and_the_rest_still_work(plugin_site):
    result = connector(plugin_site, "providers", "list", "--json")
    rows = {row["name"]: row for row in json.loads(result.stdout)["providers"]}
    assert rows["broken"]["status"] == "broken"
    assert "ModuleNotFoundError" in rows["broken"]["reason"]
    assert rows["halfdone"]["status"] == "broken"
    assert "no apply_mark_paid() method" in rows["halfdone"]["reason"]
    assert rows["acme"]["status"] == "ok"
    text = connector(plugin_site, "providers", "list")
    assert "broken" in text.stdout and "BROKEN" in text.stdout


def test_a_connection_using_a_broken_plugin_is_a_config_error(plugin_site, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[connections.x]\nprovider = "broken"\nbase_url = "http://127.0.0.1:9"\n')
    result = connector(plugin_site, "--config", str(config), "doctor")
    assert result.returncode == 2
    assert "connections.x.provider: provider plugin 'broken': import failed" in result.stderr


def test_contract_problems_name_what_is_missing():
    class NoKind(Provider):
        name = "nokind"
        kind = "bank"
        settings_model = ProviderSettings
        streams = ("invoices",)

    problems = contract_problems(NoKind, "nokind")
    assert "kind 'bank' is not one of crm, ledger, gateway" in problems
    assert "declares stream 'invoices' but has no read_invoices() method" in problems
    assert contract_problems(object, "x") == ["<class 'object'> is not a subclass of providers.base.Provider"]
