"""The configured connections as the stages use them: each one's provider (opened with its
settings and the durable token store), its effective mapping, and its kind and rank (how far
its word is trusted for facts the systems share).

A stage works on one company's book with that company's connections only (`Config.for_company`
and `Store.for_company`): `check_scope` refuses anything else, as the bug it would be (a sync
filing one company's records in another's book, a plan sending its writes to another's systems).

Every provider opened here draws on its account's one rate budget (`rate_account`): the same
limiter for every unit of the process, counted in the database for every worker
(`connector.state.budgets`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from connector.config import Config, Connection
from connector.errors import ConfigError, StateError
from connector.http.provider_http import ProviderHttp
from connector.http.ratelimit import shared_limiter
from connector.http.retry import RetryPolicy
from connector.mappings.mapper import Mapper, load_mapping
from connector.providers.base import DEFAULT_SOURCE_PRIORITY, Provider
from connector.providers.registry import Registry, installed
from connector.state.budgets import StateBudgets
from connector.state.store import Store
from connector.state.token_store import StateTokenStore


def check_scope(config: Config, store: Store) -> None:
    """Refuse a configuration and a store of different companies: the configuration must be
    the store's company's view, holding none of another company's connections."""
    if config.company is not None and config.company != store.company:
        raise StateError(
            f"the configuration of company {config.company!r} cannot work on the book of {store.company!r}"
        )
    for connection in config.connections.values():
        _check_connection(connection, store)


def _check_connection(connection: Connection, store: Store) -> None:
    if connection.company != store.company:
        raise StateError(
            f"connection {connection.name!r} belongs to company {connection.company!r}, "
            f"not to {store.company!r} whose book this works on"
        )


def open_provider(connection: Connection, store: Store, registry: Registry | None = None) -> Provider:
    """The connection's provider, ready to read and write; the caller closes it. Only for the
    book of the connection's own company (`store`): its records are stored there and its
    writes planned from there."""
    _check_connection(connection, store)
    cls = (registry or installed()).get(connection.provider)
    provider = cls(connection.settings, connection=connection.name, token_store=StateTokenStore(store))
    http = getattr(provider, "http", None)
    if isinstance(http, ProviderHttp) and http.rate_limiter is not None:
        http.rate_limiter = shared_limiter(http.rate_limiter, StateBudgets(store), rate_account(connection))
    return provider


PROBE_RETRY = RetryPolicy(max_attempts=2, max_elapsed=10.0)
"""A probe's request is tried twice at most: `connector doctor --online` names an unreachable
host in about a second, where a sync's five attempts take ten."""


def open_probe(connection: Connection, store: Store, registry: Registry | None = None) -> Provider:
    """The connection's provider for one quick check (`Provider.probe`): as `open_provider`,
    its requests tried twice at most (`PROBE_RETRY`)."""
    provider = open_provider(connection, store, registry)
    http = getattr(provider, "http", None)
    if isinstance(http, ProviderHttp):
        http.retry = PROBE_RETRY
    return provider


@runtime_checkable
class AccountSettings(Protocol):
    """Settings that name the provider account their connection calls (its rate budget)."""

    def rate_account(self) -> str: ...


def rate_account(connection: Connection) -> str:
    """The key of the provider account whose rate budget the connection draws on: the
    provider, the settings' `rate_account()` (a Xero tenant, a Stripe account and key mode, a
    HubSpot portal or token) and the API's address (a sandbox is not the real account).
    Settings without `rate_account()` (a partner's provider) budget per connection."""
    settings = connection.settings
    if isinstance(settings, AccountSettings):
        account = settings.rate_account()
    else:
        account = f"connection {connection.company}/{connection.name}"
    return f"{connection.provider}:{account}@{settings.base_url}"


def mapping_location(provider: str, registry: Registry | None = None) -> str:
    cls = (registry or installed()).get(provider)
    if not cls.mapping_file:
        raise ConfigError(f"provider {provider!r} declares no mapping file")
    return cls.mapping_file


def mapper_for(connection: Connection, registry: Registry | None = None) -> Mapper:
    """The validated mapping one connection uses; a bad override is a ConfigError naming it."""
    location = mapping_location(connection.provider, registry)
    return load_mapping(location, connection=connection.name, overrides=connection.settings.mapping)


def rank_of(connection: Connection, kind: str) -> int:
    """How far the connection is trusted for shared facts: its `source_priority`, else by kind."""
    configured = connection.settings.source_priority
    return configured if configured is not None else DEFAULT_SOURCE_PRIORITY[kind]


def settings_as_marked(config: Config) -> dict[str, list[object]]:
    """connection -> its provider, company and settings as dumped (a secret as stars): what a
    mark of the engine's inputs holds of the connections, so that a changed setting is news."""
    return {
        name: [c.provider, c.company, c.settings.model_dump(mode="json")]
        for name, c in sorted(config.connections.items())
    }


def system_ranks(config: Config, registry: Registry | None = None) -> dict[str, tuple[str, int]]:
    """connection -> (provider kind, rank) for every configured connection."""
    registry = registry or installed()
    out: dict[str, tuple[str, int]] = {}
    for name, connection in config.connections.items():
        kind = registry.get(connection.provider).kind
        out[name] = (kind, rank_of(connection, kind))
    return out
