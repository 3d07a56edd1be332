"""The public plugin API: `connector.plugin` (and, for a plugin's tests, `connector.plugin_testing`)
exports a sorted, complete `__all__`, runs without the test-only dependencies, and holds
everything the QuickBooks plugin, the scaffold's code and a provider shaped like the built-ins
import."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import connector.plugin
import connector.plugin_testing
from connector.http.tokens import TokenStore
from connector.mappings.transforms import TRANSFORMS
from connector.providers.base import Provider, ProviderSettings
from connector.scaffold.templates import KINDS, render_files

ROOT = Path(__file__).resolve().parents[1]
FACADES = {"connector.plugin": connector.plugin, "connector.plugin_testing": connector.plugin_testing}


@pytest.mark.parametrize("module", FACADES.values(), ids=FACADES.keys())
def test_all_is_sorted(module):
    assert module.__all__ == sorted(module.__all__)
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize("module", FACADES.values(), ids=FACADES.keys())
def test_every_name_in_all_is_importable(module):
    namespace: dict[str, object] = {}
    exec(f"from {module.__name__} import *", namespace)  # what a star import of the facade gives
    missing = [name for name in module.__all__ if name not in namespace]
    assert missing == []


@pytest.mark.parametrize("module", FACADES.values(), ids=FACADES.keys())
def test_all_is_complete(module):
    """Every public name the module binds is exported: nothing half-public."""
    bound = {name for name in vars(module) if not name.startswith("_")}
    assert bound == set(module.__all__)


def test_the_facade_reexports_the_connectors_own_objects():
    """Re-exports, not copies: the registry checks subclasses of this Provider, and a transform
    registered through the facade is the one mapping files find."""
    assert connector.plugin.Provider is Provider
    assert connector.plugin.ProviderSettings is ProviderSettings
    assert connector.plugin.TokenStore is TokenStore

    @connector.plugin.transform("test_plugin_api_shout")
    def shout(value, ctx):
        return str(value).upper()

    try:
        assert TRANSFORMS["test_plugin_api_shout"] is shout
    finally:
        del TRANSFORMS["test_plugin_api_shout"]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


_WITHOUT_TEST_EXTRA = "import sys\nsys.modules.update(pytest=None, respx=None, _pytest=None)\n"


def test_the_plugin_api_needs_neither_pytest_nor_respx():
    """pytest and respx are test-only dependencies: a plugin's runtime imports connector.plugin
    without them, and without loading the conformance kit."""
    result = _python(
        _WITHOUT_TEST_EXTRA + "import connector.plugin\n"
        "assert 'connector.testing' not in sys.modules, 'the kit was loaded'\nprint('ok')"
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")


def test_the_kit_facade_is_the_one_that_needs_the_test_extra():
    """Why there are two facades: the kit imports pytest when it is imported."""
    result = _python(_WITHOUT_TEST_EXTRA + "import connector.plugin_testing")
    assert result.returncode == 1
    assert re.search(r"ModuleNotFoundError: import of (_?pytest|respx) halted", result.stderr), result.stderr


# What plugins import ----------------------------------------------------------------------------


def _from_imports(source: str, where: str) -> list[tuple[str, str]]:
    """(module, name) of every `from connector... import name`, and (module, "") of every
    `import connector...`."""
    found = []
    for node in ast.walk(ast.parse(source, where)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "connector":
            found += [(node.module or "", alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names if alias.name.split(".")[0] == "connector"]
    return found


def _not_in_facades(imports: list[tuple[str, str]], where: str) -> list[str]:
    wrong = []
    for module, name in imports:
        facade = FACADES.get(module)
        if facade is None:
            wrong.append(f"{where}: {module} is not a facade")
        elif name not in facade.__all__:
            wrong.append(f"{where}: {module} has no {name}")
    return wrong


def _python_files(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.py") if "build" not in p.parts)


def test_every_name_the_quickbooks_plugin_imports_is_in_the_facade():
    plugin = ROOT / "plugins" / "quickbooks"
    files = _python_files(plugin / "connector_quickbooks", plugin / "tests")
    assert len(files) >= 12
    # its tests also drive the connector's own sandbox (see test_qbo_imports.py)
    imports = [
        (str(p.relative_to(ROOT)), m, n)
        for p in files
        for m, n in _from_imports(p.read_text(), p.name)
        if not m.startswith("connector.sandbox")
    ]
    wrong = [w for where, m, n in imports for w in _not_in_facades([(m, n)], where)]
    assert wrong == []
    assert {m for _, m, _ in imports} == {"connector.plugin", "connector.plugin_testing"}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_scaffold_imports_only_the_facades(kind):
    files = {path: text for path, text in render_files("acme_books", kind).items() if path.endswith(".py")}
    imports = {path: _from_imports(text, path) for path, text in files.items()}
    wrong = [w for path, found in imports.items() for w in _not_in_facades(found, path)]
    assert wrong == []
    assert ("connector.plugin", "Provider") in imports["acme_books_connector/provider.py"]
    assert imports["tests/test_conformance.py"] == [("connector.plugin_testing", "provider_test_class")]


def test_the_test_plugins_import_only_the_facade():
    files = _python_files(ROOT / "tests" / "plugins")
    assert len(files) >= 3
    wrong = [w for p in files for w in _not_in_facades(_from_imports(p.read_text(), p.name), p.name)]
    assert wrong == []


# What the built-in providers use from the shared layers; a partner's provider of the same
# shape needs the same. These stay internal on purpose: one provider's own rules.
SHARED = (
    "connector.errors",
    "connector.http",
    "connector.model",
    "connector.money",
    "connector.providers.base",
    "connector.mappings.transforms",
)
BUILT_IN_ONLY = {
    "stripe_exponent",  # Stripe's own idea of minor units (ISK, HUF), for the Stripe mapping
}


def test_the_facade_holds_what_the_built_in_providers_use():
    files = [
        *_python_files(ROOT / "providers" / "stripe", ROOT / "providers" / "xero", ROOT / "providers" / "hubspot"),
        *sorted((ROOT / "mappings").glob("*_transforms.py")),
    ]
    assert len(files) >= 10
    used = {
        name
        for path in files
        for module, name in _from_imports(path.read_text(), path.name)
        if module.startswith(SHARED) and name and not name.startswith("_")
    }
    assert "ProviderHttp" in used  # the scan sees the built-ins' imports
    assert sorted(used - set(connector.plugin.__all__) - BUILT_IN_ONLY) == []
