"""Shared fixtures: running the real CLI in-process, and isolated working directories."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from connector import redaction
from connector.cli import main

# The processes the tests start (`connector apply` killed and started again, serve workers,
# the scaffold's plugin) keep compiled bytecode, as an installed connector does: where the
# machine sets PYTHONDONTWRITEBYTECODE, each of them would compile every module again (about
# 2.5 s of CPU a start on the CI machine, hundreds of starts a run).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys, monkeypatch, tmp_path):
    """Run `connector ARGS` through the console-script entry point in a clean directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONNECTOR_CONFIG", raising=False)
    monkeypatch.delenv("CONNECTOR_DATABASE_URL", raising=False)

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


@pytest.fixture(autouse=True)
def _secrets_registered_by_this_test_only(monkeypatch):
    """Each test masks only the secrets it registered itself: the registry is the process's,
    and a fixture's client secret "secret" would otherwise mask "keys/secret_key" in a later
    test's message on the same worker."""
    monkeypatch.setattr(redaction, "_secrets", set())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first, in their order (a stable sort): with `-n auto` and the work
    stealing of pyproject's addopts, the long ones start early on one worker while the other
    takes the short ones, and no minutes-long test starts last with nothing left for the
    other worker to do."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
