"""The plugin imports only the connector's public plugin API, `connector.plugin` (plus the
standard library and its declared third-party dependencies), as a partner's plugin must; its
tests add the kit's facade, `connector.plugin_testing`."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import connector_quickbooks

PACKAGE = Path(connector_quickbooks.__file__).parent
TESTS = Path(__file__).parent

API = ("connector.plugin",)
TEST_API = (*API, "connector.plugin_testing")
# These tests also drive the connector's own sandbox, whose QuickBooks face is part of the
# connector, not of the plugin: the sandbox is tested here against the real adapter. A
# partner has no such face (they record fixtures), and it is no part of the plugin API.
SANDBOX = "connector.sandbox"
THIRD_PARTY = ("httpx", "pydantic")


def _imports(source: str, where: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, where)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{where}: relative import"
            found.append(node.module or "")
    return found


def _is_connector(name: str) -> bool:
    return name.split(".")[0] == "connector"


def wrong_in_package(source: str, where: str) -> list[str]:
    """Imports of the plugin's own code that are not the plugin API, the standard library,
    a declared dependency or the plugin itself."""
    wrong = []
    for name in _imports(source, where):
        top = name.split(".")[0]
        if name in API or top in THIRD_PARTY or top in ("connector_quickbooks", "__future__"):
            continue
        if top in sys.stdlib_module_names:
            continue
        wrong.append(f"{where}: {name}")
    return wrong


def wrong_in_tests(source: str, where: str) -> list[str]:
    """Modules of the connector a test imports other than the two facades and the sandbox."""
    return [
        f"{where}: {name}"
        for name in _imports(source, where)
        if _is_connector(name) and name not in TEST_API and name.split(".")[:2] != SANDBOX.split(".")
    ]


def test_the_plugin_imports_only_connector_plugin():
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 5
    wrong = [w for path in modules for w in wrong_in_package(path.read_text(encoding="utf-8"), path.name)]
    assert wrong == []
    used = {name for path in modules for name in _imports(path.read_text(encoding="utf-8"), path.name)}
    assert {name for name in used if _is_connector(name)} == {"connector.plugin"}


def test_the_tests_import_the_connector_only_through_the_facades():
    modules = sorted(TESTS.glob("*.py"))
    assert len(modules) >= 7
    wrong = [w for path in modules for w in wrong_in_tests(path.read_text(encoding="utf-8"), path.name)]
    assert wrong == []


def test_an_internal_module_is_caught():
    """The scans above can fail: a module that reaches past the facade is reported, whichever
    way it imports, and a facade name is not mistaken for its prefix."""
    throwaway = (
        "from connector.plugin import Provider\n"
        "from connector.http import ProviderHttp\n"
        "import connector.providers.base\n"
        "from connector.plugin_extra import thing\n"
        "from connector import plugin\n"
        "import json, httpx\n"
    )
    assert wrong_in_package(throwaway, "leaky.py") == [
        "leaky.py: connector.http",
        "leaky.py: connector.providers.base",
        "leaky.py: connector.plugin_extra",
        "leaky.py: connector",
    ]
    test_module = (
        throwaway + "from connector.plugin_testing import provider_test_class\n"
        "from connector.sandbox.generator import generate\n"
        "from connector.testing import sandbox_api\n"
    )
    assert wrong_in_tests(test_module, "test_leaky.py") == [
        "test_leaky.py: connector.http",
        "test_leaky.py: connector.providers.base",
        "test_leaky.py: connector.plugin_extra",
        "test_leaky.py: connector",
        "test_leaky.py: connector.testing",
    ]
    # the plugin's own code may not use the kit's facade or the sandbox
    assert wrong_in_package(
        "from connector.plugin_testing import load_mapping\nimport connector.sandbox\n", "p.py"
    ) == ["p.py: connector.plugin_testing", "p.py: connector.sandbox"]


def test_the_mapping_names_only_this_package_for_transforms():
    import tomllib

    data = tomllib.loads((PACKAGE / "mapping.toml").read_text(encoding="utf-8"))
    assert data["imports"] == ["connector_quickbooks.transforms"]


def test_pyproject_declares_the_entry_point():
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == "connector-quickbooks"
    assert project["entry-points"]["connector.providers"] == {"quickbooks": "connector_quickbooks:QuickBooksProvider"}
