"""A stage works on one company's book with that company's connections only: handed another
company's book, or a configuration holding another company's connections, it refuses before
it reads, plans or sends anything."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from pydantic import SecretStr

from connector.config import Config, Connection, load_config
from connector.connections import open_provider, rate_account
from connector.errors import StateError
from connector.linking.run import link_all
from connector.reconcile.run import run_reconciliation
from connector.state.store import Store, open_store
from connector.sync import SyncEngine
from connector.writeback.apply import apply, queue_writes
from connector_quickbooks.settings import QuickBooksSettings

# Nothing listens on the discard port: a refused stage never gets as far as calling it.
CONFIG = """
[companies.north]
[companies.south]

[connections.gateway_north]
provider = "stripe"
company = "north"
base_url = "http://127.0.0.1:9/stripe"
api_key = "sk_test_north"

[connections.gateway_south]
provider = "stripe"
company = "south"
base_url = "http://127.0.0.1:9/stripe"
api_key = "sk_test_south"
"""

STAGES = {
    "sync": lambda config, store: SyncEngine(config, store),
    "link": link_all,
    "reconcile": run_reconciliation,
    "plan": lambda config, store: queue_writes(config, store, today=date(2026, 11, 1)),
    "apply": apply,
}


@pytest.fixture
def config(tmp_path) -> Config:
    path = tmp_path / "connector.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "state.db"}"\n' + CONFIG)
    return load_config(str(path))


@pytest.fixture
def store(config) -> Iterator[Store]:
    opened = open_store(config.database_url)
    yield opened
    opened.close()


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_stage_refuses_another_companys_book(stage, config, store):
    with pytest.raises(StateError, match="^the configuration of company 'north' cannot work on the book of 'south'$"):
        STAGES[stage](config.for_company("north"), store.for_company("south"))


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_stage_refuses_a_configuration_holding_another_companys_connections(stage, config, store):
    with pytest.raises(StateError, match="connection 'gateway_north' belongs to company 'north', not to 'south'"):
        STAGES[stage](config, store.for_company("south"))


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_stage_runs_with_its_own_companys_configuration_and_book(stage, config, store):
    STAGES[stage](config.for_company("south"), store.for_company("south"))


def test_a_provider_opens_only_for_its_own_companys_book(config, store):
    north = config.connection("gateway_north")
    with pytest.raises(StateError, match="^connection 'gateway_north' belongs to company 'north', not to 'south' "):
        open_provider(north, store.for_company("south"))
    open_provider(north, store.for_company("north")).close()


def test_connections_to_one_quickbooks_company_share_its_rate_budget() -> None:
    """Intuit counts its limits per company (realm): two connections to one realm (two apps,
    two companies' configs naming one realm) draw on one budget; another realm has its own."""

    def account(name: str, realm: str) -> str:
        settings = QuickBooksSettings(
            base_url="https://quickbooks.api.intuit.com",
            realm_id=realm,
            client_id="client",
            client_secret=SecretStr("secret"),
            refresh_token=SecretStr("refresh"),
        )
        return rate_account(Connection(name=name, provider="quickbooks", settings=settings))

    assert account("books", "9130355") == account("books_again", "9130355")
    assert account("books", "9130355") != account("books", "4620816")
    assert "realm 9130355" in account("books", "9130355")
