"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """A database left by `connector demo` (seed 42), made once per test session."""
    from connector.demo import run_demo

    directory = tmp_path_factory.mktemp("demo")
    run_demo(directory, seed=42, echo=lambda _line: None)
    return directory


@pytest.fixture
def demo_copy(demo_dir, tmp_path) -> Path:
    """A private copy of the demo's directory (config and database) for one test."""
    copy = tmp_path / "book"
    shutil.copytree(demo_dir, copy)
    return copy
