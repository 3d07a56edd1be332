"""The plugin imports only the connector's public plugin API (plus the standard library and
its declared third-party dependencies), as a partner's plugin must."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import connector_quickbooks

PUBLIC = ("providers.base", "connector.http", "connector.model", "connector.money", "connector.errors",
          "mappings", "mappings.spec", "mappings.transforms")
THIRD_PARTY = ("httpx", "pydantic")
PACKAGE = Path(connector_quickbooks.__file__).parent


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            found.append(node.module or "")
    return found


def test_only_the_public_plugin_api_is_imported():
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 5
    wrong = []
    for path in modules:
        for name in _imports(path):
            top = name.split(".")[0]
            if name in PUBLIC or top in THIRD_PARTY or top == "connector_quickbooks" or top == "__future__":
                continue
            if top in sys.stdlib_module_names:
                continue
            wrong.append(f"{path.name}: {name}")
    assert wrong == []


def test_the_mapping_names_only_this_package_for_transforms():
    import tomllib

    data = tomllib.loads((PACKAGE / "mapping.toml").read_text(encoding="utf-8"))
    assert data["imports"] == ["connector_quickbooks.transforms"]


def test_pyproject_declares_the_entry_point():
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == "connector-quickbooks"
    assert project["entry-points"]["connector.providers"] == {"quickbooks": "connector_quickbooks:QuickBooksProvider"}
