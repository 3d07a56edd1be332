"""connector.toml: where the database is and which connections to sync.

    [database]
    url = "sqlite:///connector.db"        # or "env:CONNECTOR_DATABASE_URL"

    [connections.gateway]
    provider = "stripe"
    base_url = "https://api.stripe.com"
    api_key = "env:STRIPE_API_KEY"

    [reconcile]                           # optional: reconciliation settings
    auto_threshold = 0.95                 # see docs/reconciliation.md
    tolerance_absolute = { JPY = 500 }

The file is found by `--config`, else `CONNECTOR_CONFIG`, else `./connector.toml`; only the
default may be absent (an empty configuration). Any string value `env:NAME` is read from the
environment. Each connection's keys are validated by its provider's settings model, and every
mistake is reported as one line naming the file, the connection and the key.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from connector.errors import ConfigError, PluginError
from connector.providers.base import ProviderSettings, secret_fields
from connector.providers.registry import Registry, installed
from connector.redaction import register_secret
from connector.settings import ReconcileConfig

DEFAULT_CONFIG = "connector.toml"
DEFAULT_DATABASE_URL = "sqlite:///connector.db"
ENV_CONFIG = "CONNECTOR_CONFIG"
ENV_DATABASE_URL = "CONNECTOR_DATABASE_URL"
ENV_PREFIX = "env:"

# Top-level tables a config may hold; later features add theirs here.
TOP_LEVEL_KEYS = ("database", "connections", "dunning", "reconcile")


class DatabaseSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = DEFAULT_DATABASE_URL


@dataclass
class Connection:
    """One configured connection: its name, provider and validated settings."""

    name: str
    provider: str
    settings: ProviderSettings
    literal_secrets: list[str] = field(default_factory=list)


@dataclass
class Config:
    path: Path | None  # None when no file exists and defaults apply
    database_url: str
    connections: dict[str, Connection]
    problems: list[str] = field(default_factory=list)  # collected when not strict
    dunning: dict[str, Any] = field(default_factory=dict)  # `[dunning]`, read by connector.dunning.run
    # `[reconcile]`: thresholds, tolerances and search bounds for every reconciliation run.
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)

    def connection(self, name: str) -> Connection:
        try:
            return self.connections[name]
        except KeyError:
            valid = ", ".join(self.connections) or "none configured"
            raise ConfigError(f"no connection named {name!r} (configured: {valid})") from None


def config_path(explicit: str | None) -> tuple[Path, bool]:
    """The config file to read, and whether the user named it (so it must exist)."""
    if explicit:
        return Path(explicit), True
    from_env = os.environ.get(ENV_CONFIG)
    if from_env:
        return Path(from_env), True
    return Path(DEFAULT_CONFIG), False


def resolve_env(value: Any, where: str) -> tuple[Any, bool]:
    """Replace an `env:NAME` reference by the variable's value; says whether it was one."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        variable = value[len(ENV_PREFIX) :].strip()
        if not variable:
            raise ConfigError("`env:` needs a variable name", where=where)
        if variable not in os.environ:
            raise ConfigError(f"environment variable {variable} is not set", where=where)
        return os.environ[variable], True
    return value, False


def _describe(error: ValidationError, where: str) -> list[str]:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "?"
        kind = item["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        else:
            message = item["msg"]
            if "input" in item and kind not in ("string_type",) and not isinstance(item["input"], dict):
                message += f" (got {type(item['input']).__name__})"
        lines.append(f"{where}.{key}: {message}")
    return lines


def _connection(name: str, table: Any, registry: Registry, source: str) -> Connection:
    where = f"{source}: connections.{name}"
    if not isinstance(table, dict):
        raise ConfigError("must be a table ([connections.NAME])", where=where)
    provider = table.get("provider")
    if not isinstance(provider, str) or not provider:
        raise ConfigError('`provider` is missing (the provider\'s name, e.g. "stripe")', where=where)
    try:
        provider_cls = registry.get(provider)
    except (ConfigError, PluginError) as exc:
        raise ConfigError(str(exc), where=f"{where}.provider") from None
    model = provider_cls.settings_model
    secrets = set(secret_fields(model))
    values: dict[str, Any] = {}
    literal: list[str] = []
    for key, raw in table.items():
        if key == "provider":
            continue
        value, was_reference = resolve_env(raw, f"{where}.{key}")
        if key in secrets and isinstance(value, str):
            register_secret(value)
            if not was_reference:
                literal.append(key)
        values[key] = value
    try:
        settings = model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, where)[0]) from None
    for key in secrets:
        secret = getattr(settings, key, None)
        if isinstance(secret, SecretStr):
            register_secret(secret.get_secret_value())
    return Connection(name=name, provider=provider, settings=settings, literal_secrets=literal)


def load_config(explicit: str | None = None, *, registry: Registry | None = None, strict: bool = True) -> Config:
    """Read and validate the configuration. `strict=False` collects connection problems in
    `Config.problems` instead of raising on the first (for `connector doctor`)."""
    path, named = config_path(explicit)
    registry = registry or installed()
    if not path.exists():
        if named:
            raise ConfigError(f"config file {path} not found (create one with `connector init --path {path}`)")
        data: dict[str, Any] = {}
        text = ""
        source = DEFAULT_CONFIG
        found: Path | None = None
    else:
        source, found = str(path), path
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", where=source) from None
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", where=source) from None
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"unknown table (expected one of: {', '.join(TOP_LEVEL_KEYS)})", where=f"{source}: {key}")
    database_url = _database_url(data.get("database", {}), source, found)
    connections_table = data.get("connections", {})
    if not isinstance(connections_table, dict):
        raise ConfigError("must be a table of [connections.NAME] tables", where=f"{source}: connections")
    connections: dict[str, Connection] = {}
    problems: list[str] = []
    for name, table in connections_table.items():
        try:
            connections[name] = _connection(name, table, registry, source)
        except ConfigError as exc:
            if strict:
                raise
            problems.append(str(exc))
    dunning = data.get("dunning", {})
    if not isinstance(dunning, dict):
        raise ConfigError("must be a table", where=f"{source}: dunning")
    reconcile = _reconcile_settings(text, source) if "reconcile" in data else ReconcileConfig()
    return Config(
        path=found,
        database_url=database_url,
        connections=connections,
        problems=problems,
        dunning=dunning,
        reconcile=reconcile,
    )


def _reconcile_settings(text: str, source: str) -> ReconcileConfig:
    """`[reconcile]`, its numbers read as written (TOML floats become Decimal, never binary)."""
    section = tomllib.loads(text, parse_float=Decimal)["reconcile"]
    where = f"{source}: reconcile"
    if not isinstance(section, dict):
        raise ConfigError("must be a table", where=where)
    try:
        return ReconcileConfig.model_validate(section)
    except ValidationError as exc:
        first = exc.errors()[0]
        line = _describe(exc, where)[0].replace(": Value error, ", ": ")
        if first["type"] == "extra_forbidden":
            model: type[BaseModel] = ReconcileConfig
            for part in first["loc"][:-1]:
                annotation = model.model_fields[str(part)].annotation
                # only a table that is a model refuses unknown keys
                assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
                model = annotation
            line += f" (known: {', '.join(model.model_fields)})"
        raise ConfigError(line) from None


def _database_url(section: Any, source: str, config_file: Path | None) -> str:
    if not isinstance(section, dict):
        raise ConfigError("must be a table", where=f"{source}: database")
    try:
        parsed = DatabaseSection.model_validate(section)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, f"{source}: database")[0]) from None
    override = os.environ.get(ENV_DATABASE_URL)
    if override:
        return override
    url, _ = resolve_env(parsed.url, f"{source}: database.url")
    return anchor_sqlite_path(str(url), config_file)


def anchor_sqlite_path(url: str, config_file: Path | None) -> str:
    """A relative SQLite path in a config file means beside that file, wherever the command
    runs from; without a file it is the working directory."""
    prefix = "sqlite:///"
    if config_file is None or not url.startswith(prefix):
        return url
    path = url[len(prefix) :]
    if not path or path.startswith("/") or path.startswith(":memory:"):
        return url
    return prefix + str(config_file.resolve().parent / path)
