"""The effective mapping of a configured connection: its provider's file plus overrides."""

from __future__ import annotations

from connector.config import Connection
from connector.errors import ConfigError
from mappings.mapper import Mapper, load_mapping
from providers.registry import Registry, installed


def mapping_location(provider: str, registry: Registry | None = None) -> str:
    cls = (registry or installed()).get(provider)
    if not cls.mapping_file:
        raise ConfigError(f"provider {provider!r} declares no mapping file")
    return cls.mapping_file


def mapper_for(connection: Connection, registry: Registry | None = None) -> Mapper:
    """The validated mapping one connection uses; a bad override is a ConfigError naming it."""
    location = mapping_location(connection.provider, registry)
    return load_mapping(location, connection=connection.name, overrides=connection.settings.mapping)
