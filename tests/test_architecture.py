"""The house: the dependency direction of DESIGN.md, no import loops, no hidden imports, no
private names across modules, and the product loop wired in one place.

The layers themselves are import-linter contracts in pyproject.toml (`[tool.importlinter]`);
these tests run them, show that they catch a provider importing the store, and check what
import-linter does not: loops inside a layer, imports hidden in functions, private names.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "connector"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _modules() -> dict[str, Path]:
    """Every module of the product, by dotted name (the linked folders followed)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "migrations" in parts:
            continue  # alembic revisions are scripts run by alembic, not modules we import
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _lint_imports(root: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(config)], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_import_contracts_of_pyproject_hold():
    result = _lint_imports(ROOT, ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_a_provider_importing_the_store_breaks_the_layers(tmp_path):
    """By construction: a copy of the package with one provider module that imports the state
    store. The same contracts must refuse it, naming the import."""
    copy = tmp_path / "connector"
    shutil.copytree(PACKAGE, copy, symlinks=False, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "providers" / "leaky.py").write_text(
        '"""A provider that reads the store behind the engine\'s back."""\n\n'
        'from connector.state.store import Store\n\n__all__ = ["Store"]\n'
    )
    result = _lint_imports(tmp_path, ROOT / "pyproject.toml")
    assert result.returncode != 0, result.stdout
    assert "connector.providers.leaky -> connector.state.store" in result.stdout


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the groups of modules that reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(sorted(group))
    return groups


def test_strongly_connected_finds_a_loop_of_three():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [g for g in _strongly_connected(graph) if len(g) > 1] == [["a", "b", "c"]]


def test_no_module_imports_another_in_a_loop():
    """Imports inside functions count too (grimp reads every import statement)."""
    graph = grimp.build_graph("connector", cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    loops = [group for group in _strongly_connected(edges) if len(group) > 1]
    assert loops == []


def _imports(tree: ast.AST) -> list[tuple[ast.AST, ast.Import | ast.ImportFrom]]:
    """(enclosing function or module, import statement) for every import of a module."""
    found: list[tuple[ast.AST, ast.Import | ast.ImportFrom]] = []

    def visit(node: ast.AST, owner: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append((owner, child))
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else owner
            visit(child, inner)

    visit(tree, tree)
    return found


def test_no_import_hides_inside_a_function():
    """A dependency is read at the top of its module: an import inside a function hides one
    (and is how import loops used to be dodged)."""
    hidden = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for owner, node in _imports(tree):
            if isinstance(owner, ast.FunctionDef | ast.AsyncFunctionDef):
                hidden.append(f"{name}:{node.lineno} in {owner.name}()")
    assert hidden == []


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")[: -node.level] if node.level else []
    return ".".join([*base, *([node.module] if node.module else [])])


def test_no_private_name_is_imported_from_another_module():
    """`_name` is private to its module; another module that needs it needs a public name."""
    borrowed = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for _, node in _imports(tree):
            if isinstance(node, ast.ImportFrom) and _absolute(name, node).startswith("connector"):
                borrowed += [
                    f"{name} takes {alias.name} from {node.module}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert borrowed == []


@pytest.mark.parametrize(
    ("runner", "home"),
    [
        ("SyncEngine", "connector.sync"),
        ("link_book", "connector.linking.run"),
        ("queue_writes", "connector.writeback.apply"),
        ("queue", "connector.dunning.run"),
    ],
)
def test_the_loop_is_wired_only_in_the_pipeline(runner, home):
    """The steps of sync -> link -> states -> reconcile -> plan -> apply are put together in
    connector.pipeline alone; the CLI, the demo and the service call the pipeline."""
    users = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for _, node in _imports(tree):
            if isinstance(node, ast.ImportFrom) and _absolute(name, node) == home:
                if any(alias.name == runner for alias in node.names):
                    users.append(name)
    assert users == ["connector.pipeline"]
