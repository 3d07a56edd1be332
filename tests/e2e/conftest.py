"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_day() -> date:
    """The day the session's demo book is dated around (a test comparing with the generator's
    truth uses it: a suite running past midnight would otherwise generate the next day's)."""
    return date.today()


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory, demo_day) -> Path:
    """A database left by `connector demo` (seed 42), made once per test session."""
    from connector.demo import run_demo

    directory = tmp_path_factory.mktemp("demo")
    run_demo(directory, seed=42, echo=lambda _line: None, today=demo_day)
    return directory


@pytest.fixture
def demo_copy(demo_dir, tmp_path) -> Path:
    """A private copy of the demo's directory (config and database) for one test."""
    copy = tmp_path / "book"
    shutil.copytree(demo_dir, copy)
    return copy
