"""A demo book with open proposals (`connector demo`, seed 42), copied for each test, and the
workbench on it."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # Starlette 1.x points its TestClient at httpx2; httpx, which the connector ships, serves it
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from connector.config import load_config
from connector.demo import run_demo
from connector.state.store import open_store
from connector.workbench import Access, Book, workbench

TOKEN = "a-test-token-of-the-workbench-0123456789"
USER = "wendy"


@pytest.fixture(scope="session")
def demo_book(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("workbench-demo")
    run_demo(directory, seed=42, echo=lambda _line: None)
    return directory


@pytest.fixture
def book_copy(demo_book, tmp_path) -> Callable[[str], Path]:
    """A private copy of the demo book (config and database), by name."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(demo_book, target)
        return target

    return copy


@pytest.fixture
def cli_on(run_cli):
    """`connector --config COPY/connector.toml ARGS...`: its result."""

    def run(copy: Path, *args: str):
        return run_cli("--config", str(copy / "connector.toml"), *args)

    return run


@pytest.fixture
def json_on(cli_on):
    """`connector --config COPY/connector.toml ARGS... --json`: its JSON answer, without
    `unchanged_since`."""

    def run(copy: Path, *args: str) -> dict:
        result = cli_on(copy, *args, "--json")
        assert result.exit_code in (0, 1), result.stderr
        answer = json.loads(result.stdout)
        # what the book holds, whether this run derived it again or found nothing changed since
        # the last (`reconcile` and `plan` then say since when)
        answer.pop("unchanged_since", None)
        return answer

    return run


@pytest.fixture
def client_on():
    """A TestClient of the workbench on a copy of the book, already holding its session."""
    stores = []

    def make(copy: Path, *, signed_in: bool = True) -> TestClient:
        config = load_config(str(copy / "connector.toml"))
        store = open_store(config.database_url, sealer=config.token_sealer())
        stores.append(store)
        company = config.company_names()[0]
        book = Book(company, config.for_company(company), store.for_company(company), USER)
        client = TestClient(workbench({company: book}, Access(TOKEN, hosts=["testserver"])))
        if signed_in:
            assert client.get(f"/?token={TOKEN}", follow_redirects=False).status_code == 303
        return client

    yield make
    for store in stores:
        store.close()
