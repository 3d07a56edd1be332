"""connector.toml: where the database is and which connections to sync.

    [database]
    url = "sqlite:///connector.db"        # or "env:CONNECTOR_DATABASE_URL"
    secret_key = "file:/run/credentials/connector.service/secret_key"   # seals OAuth tokens

    [connections.gateway]
    provider = "stripe"
    base_url = "https://api.stripe.com"
    api_key = "env:STRIPE_API_KEY"

    [reconcile]                           # optional: reconciliation settings
    auto_threshold = 0.95                 # see docs/reconciliation.md
    tolerance_absolute = { JPY = 500 }

Several companies (legal entities, or client companies) can share one deployment: each
connection names its company (`company = "acme_us"`), `[companies.NAME]` declares a company and
may override `[dunning]` and `[reconcile]` for it (`[companies.NAME.dunning]`,
`[companies.NAME.reconcile]`, merged over the defaults). A company keeps at most one ledger. A
config that names no company has one, `default` (`connector.state.scope.DEFAULT_COMPANY`).
`Config.for_company` is the view every stage works with: that company's connections and policies.

The file is found by `--config`, else `CONNECTOR_CONFIG`, else `./connector.toml`; only the
default may be absent (an empty configuration). Any string value `env:NAME` is read from the
environment, and `file:PATH` from a file (relative to the config file's folder; surrounding
whitespace dropped), as Docker secrets and systemd credentials give them. Each connection's
keys are validated by its provider's settings model, and every mistake is reported as one
line naming the file, the connection and the key.

The secret key that seals stored OAuth tokens (`connector.state.secrets`) is `[database]
secret_key`, else the environment variable `CONNECTOR_SECRET_KEY`: one Fernet key, or several
separated by commas or whitespace (the first seals, all open). A key named in the file is
never replaced by the variable: it must be the key the database was sealed with.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from connector.errors import ConfigError, PluginError
from connector.providers.base import ProviderSettings, secret_fields
from connector.providers.registry import Registry, installed
from connector.redaction import register_secret
from connector.settings import ReconcileConfig
from connector.state.scope import DEFAULT_COMPANY, check_company_name
from connector.state.secrets import ENV_SECRET_KEY, TokenSealer, missing_key, parse_keys

DEFAULT_CONFIG = "connector.toml"
DEFAULT_DATABASE_URL = "sqlite:///connector.db"
ENV_CONFIG = "CONNECTOR_CONFIG"
ENV_DATABASE_URL = "CONNECTOR_DATABASE_URL"
ENV_PREFIX = "env:"
FILE_PREFIX = "file:"

# Top-level tables a config may hold; later features add theirs here.
TOP_LEVEL_KEYS = ("database", "connections", "companies", "dunning", "reconcile")
# What a `[companies.NAME]` table may hold.
COMPANY_KEYS = ("legal_name", "dunning", "reconcile")


class DatabaseSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = DEFAULT_DATABASE_URL
    secret_key: str | None = None


@dataclass
class Connection:
    """One configured connection: its name, provider and validated settings."""

    name: str
    provider: str
    settings: ProviderSettings
    literal_secrets: list[str] = field(default_factory=list)
    company: str = DEFAULT_COMPANY
    company_named: bool = False  # whether the table said `company = ...`

    @property
    def uses_oauth(self) -> bool:
        """Whether the connection spends a refresh token, so rotated tokens are stored for it."""
        return getattr(self.settings, "refresh_token", None) is not None


@dataclass
class Company:
    """A `[companies.NAME]` table: the company's name as printed (`legal_name`, else NAME) and
    its own `dunning` and `reconcile` tables as written (merged over the defaults when used)."""

    name: str
    legal_name: str | None = None
    dunning: dict[str, Any] = field(default_factory=dict)
    reconcile: dict[str, Any] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return self.legal_name or self.name


@dataclass
class Config:
    path: Path | None  # None when no file exists and defaults apply
    database_url: str
    connections: dict[str, Connection]
    problems: list[str] = field(default_factory=list)  # collected when not strict
    dunning: dict[str, Any] = field(default_factory=dict)  # `[dunning]`, read by connector.dunning.run
    # `[reconcile]`: thresholds, tolerances and search bounds for every reconciliation run.
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)
    # The keys that seal stored OAuth tokens, the sealing one first; where they came from
    # ("database.secret_key" or the variable's name), and whether written in the file itself.
    secret_keys: tuple[str, ...] = field(default=(), repr=False)
    secret_key_source: str | None = None
    literal_secret_key: bool = False
    # `[companies.NAME]` as declared (empty when the file declares none), and, for the view of
    # one company (`for_company`), which company it is (None: the whole deployment).
    companies: dict[str, Company] = field(default_factory=dict)
    company: str | None = None
    # `[reconcile]` as written (numbers as Decimal), for merging a company's section over it.
    reconcile_raw: dict[str, Any] = field(default_factory=dict, repr=False)
    source: str = DEFAULT_CONFIG

    def company_names(self) -> list[str]:
        """Every company of the deployment, sorted: the declared ones and those the connections
        name; `default` alone when the file names none."""
        names = set(self.companies) | {c.company for c in self.connections.values()}
        return sorted(names or {DEFAULT_COMPANY})

    def company_connections(self, company: str) -> dict[str, Connection]:
        return {name: c for name, c in self.connections.items() if c.company == company}

    def for_company(self, company: str) -> Config:
        """The configuration as one company's stages see it: its connections only, its
        `[companies.NAME.dunning]` and `[companies.NAME.reconcile]` merged over the defaults."""
        if company not in self.company_names():
            known = ", ".join(self.company_names())
            raise ConfigError(f"no company named {company!r} (configured: {known})")
        declared = self.companies.get(company)
        dunning = _merged(self.dunning, declared.dunning) if declared else self.dunning
        reconcile = self.reconcile
        if declared and declared.reconcile:
            where = f"{self.source}: companies.{company}.reconcile"
            reconcile = _validated_reconcile(_merged(self.reconcile_raw, declared.reconcile), where)
        return replace(
            self,
            connections=self.company_connections(company),
            dunning=dunning,
            reconcile=reconcile,
            company=company,
        )

    def display_name(self, company: str | None = None) -> str:
        """The company's name as printed (its `legal_name`, else its configured name)."""
        name = company or self.company or DEFAULT_COMPANY
        declared = self.companies.get(name)
        return declared.display_name if declared else name

    def token_sealer(self) -> TokenSealer:
        """Seals and opens stored tokens with the configured keys (refuses to seal without)."""
        return TokenSealer(self.secret_keys)

    def oauth_connections(self) -> list[str]:
        return [name for name, connection in self.connections.items() if connection.uses_oauth]

    def require_secret_key(self) -> None:
        """Refuse to run OAuth connections without a key: their rotated tokens could not be
        stored, and a spent refresh token whose successor is lost loses the connection."""
        oauth = self.oauth_connections()
        if oauth and not self.secret_keys:
            raise missing_key(oauth)

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


def resolve_reference(value: Any, where: str, config_file: Path | None) -> tuple[Any, bool]:
    """Replace an `env:NAME` or `file:PATH` reference by what it names; says whether it was
    one. A relative path is relative to the config file's folder."""
    if not (isinstance(value, str) and value.startswith(FILE_PREFIX)):
        return resolve_env(value, where)
    name = value[len(FILE_PREFIX) :].strip()
    if not name:
        raise ConfigError("`file:` needs a path", where=where)
    path = Path(name).expanduser()
    if not path.is_absolute() and config_file is not None:
        path = config_file.resolve().parent / path
    try:
        content = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"file {path} not found", where=where) from None
    except IsADirectoryError:
        raise ConfigError(f"cannot read file {path}: it is a directory", where=where) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file {path}: {exc.strerror or type(exc).__name__}", where=where) from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read file {path}: not UTF-8 text", where=where) from None
    if not content:
        raise ConfigError(f"file {path} is empty", where=where)
    return content, True


# Error formatting: every mistake in the words connector.toml is written in ----------------

# What a pydantic type error expects, in TOML's words (a person reads "must be a number", not
# "Input should be a valid decimal").
_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "decimal_type": "a number",
    "decimal_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text (a quoted string)",
    "dict_type": "a table",
    "model_type": "a table",
    "list_type": "a list",
}
_NUMBERS = (int, float, Decimal)


def _given(value: Any) -> str:
    """What was written, in words; never the value itself (it may be a secret) except the
    harmless true and false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number" if value.is_integer() else "a number with a fraction"
    if isinstance(value, Decimal):
        whole = value.is_finite() and value == value.to_integral_value()
        return "a number" if whole else "a number with a fraction"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return "a value of another kind"


def _describe(error: ValidationError, where: str) -> list[str]:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "?"
        kind = item["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        elif kind == "finite_number":
            message = "must be a finite number"
        elif kind in _EXPECTED:
            message = f"must be {_EXPECTED[kind]}"
            if "input" in item:
                message += f", not {_given(item['input'])}"
        else:  # a bound or a check of the model's own: its message names the limit
            message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{where}.{key}: {message}")
    return lines


def _refuse_mistyped(model: type[BaseModel], data: Any, where: str) -> None:
    """pydantic reads `true` as 1 where a number is expected and `1` as true where true or
    false is; connector.toml means neither. Raise the first such key as a ConfigError (strings
    are left to pydantic: an `env:` value is always text)."""
    found = _mistyped(model, data, ())
    if found:
        key, message = found[0]
        raise ConfigError(f"{where}.{key}: {message}")


def _mistyped(model: type[BaseModel], data: Any, loc: tuple[str, ...]) -> list[tuple[str, str]]:
    if not isinstance(data, dict):
        return []
    found = []
    for name, value in data.items():
        field_info = model.model_fields.get(str(name))
        if field_info is not None:
            found += _mistyped_value(field_info.annotation, value, (*loc, str(name)))
    return found


def _mistyped_value(annotation: Any, value: Any, loc: tuple[str, ...]) -> list[tuple[str, str]]:
    kinds = [k for k in _union_members(annotation) if k is not type(None)]
    key = ".".join(loc)
    if kinds == [bool]:
        if isinstance(value, _NUMBERS) and not isinstance(value, bool):
            return [(key, f"must be true or false, not {_given(value)}")]
        return []
    if kinds and all(k in _NUMBERS for k in kinds):
        if isinstance(value, bool):
            expected = "a whole number" if all(k is int for k in kinds) else "a number"
            return [(key, f"must be {expected}, not {_given(value)}")]
        return []
    found: list[tuple[str, str]] = []
    for kind in kinds:
        origin = get_origin(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found += _mistyped(kind, value, loc)
        elif origin in (dict, Mapping) and isinstance(value, dict):
            item = get_args(kind)[1] if len(get_args(kind)) == 2 else Any
            for name, entry in value.items():
                found += _mistyped_value(item, entry, (*loc, str(name)))
        elif origin is list and isinstance(value, list):
            item = get_args(kind)[0] if get_args(kind) else Any
            for index, entry in enumerate(value):
                found += _mistyped_value(item, entry, (*loc, str(index)))
    return found


def _union_members(annotation: Any) -> tuple[Any, ...]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _union_members(get_args(annotation)[0])
    if origin is Union or origin is UnionType:
        return tuple(member for arg in get_args(annotation) for member in _union_members(arg))
    return (annotation,)


def _connection(name: str, table: Any, registry: Registry, source: str, config_file: Path | None) -> Connection:
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
    company, company_named = DEFAULT_COMPANY, "company" in table
    if company_named:
        company = check_company_name(table["company"], where=f"{where}.company")
    for key, raw in table.items():
        if key in ("provider", "company"):
            continue
        value, was_reference = resolve_reference(raw, f"{where}.{key}", config_file)
        if key in secrets and isinstance(value, str):
            register_secret(value)
            if not was_reference:
                literal.append(key)
        values[key] = value
    _refuse_mistyped(model, values, where)
    try:
        settings = model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, where)[0]) from None
    for key in secrets:
        secret = getattr(settings, key, None)
        if isinstance(secret, SecretStr):
            register_secret(secret.get_secret_value())
    return Connection(
        name=name,
        provider=provider,
        settings=settings,
        literal_secrets=literal,
        company=company,
        company_named=company_named,
    )


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
    database = _database_section(data.get("database", {}), source)
    database_url = _database_url(database, source, found)
    secret_keys, key_source, literal_key = _secret_keys(database, source, found)
    connections_table = data.get("connections", {})
    if not isinstance(connections_table, dict):
        raise ConfigError("must be a table of [connections.NAME] tables", where=f"{source}: connections")
    connections: dict[str, Connection] = {}
    problems: list[str] = []
    for name, table in connections_table.items():
        try:
            connections[name] = _connection(name, table, registry, source, found)
        except ConfigError as exc:
            if strict:
                raise
            problems.append(str(exc))
    dunning = data.get("dunning", {})
    if not isinstance(dunning, dict):
        raise ConfigError("must be a table", where=f"{source}: dunning")
    exact = tomllib.loads(text, parse_float=Decimal) if text else {}
    reconcile_raw = exact.get("reconcile", {})
    if not isinstance(reconcile_raw, dict):
        raise ConfigError("must be a table", where=f"{source}: reconcile")
    reconcile = _validated_reconcile(reconcile_raw, f"{source}: reconcile")
    companies = _companies(exact.get("companies", {}), source)
    for problem in _company_problems(connections, companies, registry, source):
        if strict:
            raise ConfigError(problem)
        problems.append(problem)
    config = Config(
        path=found,
        database_url=database_url,
        connections=connections,
        problems=problems,
        dunning=dunning,
        reconcile=reconcile,
        secret_keys=secret_keys,
        secret_key_source=key_source,
        literal_secret_key=literal_key,
        companies=companies,
        reconcile_raw=reconcile_raw,
        source=source,
    )
    for name in companies:  # a company's own [reconcile] is checked at load, like the default
        try:
            config.for_company(name)
        except ConfigError as exc:
            if strict:
                raise
            problems.append(str(exc))
    return config


def _companies(table: Any, source: str) -> dict[str, Company]:
    """`[companies.NAME]` tables (numbers already read as Decimal)."""
    if not isinstance(table, dict):
        raise ConfigError("must be a table of [companies.NAME] tables", where=f"{source}: companies")
    out: dict[str, Company] = {}
    for name, section in table.items():
        where = f"{source}: companies.{name}"
        check_company_name(name, where=where)
        if not isinstance(section, dict):
            raise ConfigError("must be a table ([companies.NAME])", where=where)
        for key, value in section.items():
            if key not in COMPANY_KEYS:
                raise ConfigError(f"unknown key (known: {', '.join(COMPANY_KEYS)})", where=f"{where}.{key}")
            expected = str if key == "legal_name" else dict
            if not isinstance(value, expected):
                kind = "text (a quoted string)" if expected is str else "a table"
                raise ConfigError(f"must be {kind}, not {_given(value)}", where=f"{where}.{key}")
        out[name] = Company(
            name=name,
            legal_name=section.get("legal_name"),
            dunning=section.get("dunning", {}),
            reconcile=section.get("reconcile", {}),
        )
    return out


def _company_problems(
    connections: Mapping[str, Connection], companies: Mapping[str, Company], registry: Registry, source: str
) -> list[str]:
    """What is wrong with the connections' companies, one line each: a connection naming a
    company that is not declared (where companies are declared), one naming none where others
    do (it would silently join the default company), and two ledgers in one company (a legal
    entity keeps one set of books: two would merge two books into one)."""
    problems = []
    # a connection naming no company belongs to `default`: fine while every company in use is
    # that one (a single-company config, perhaps with [companies.default] for its legal name)
    in_use = set(companies) | {c.company for c in connections.values() if c.company_named}
    for name, connection in connections.items():
        where = f"{source}: connections.{name}"
        if companies and connection.company not in companies:
            declared = ", ".join(sorted(companies))
            if connection.company_named:
                problems.append(
                    f"{where}.company: no company {connection.company!r} is declared (declared: {declared})"
                )
            else:
                problems.append(
                    f'{where}: names no company while companies are declared ({declared}): add company = "NAME"'
                )
        elif not connection.company_named and in_use - {DEFAULT_COMPANY}:
            known = ", ".join(sorted(in_use))
            problems.append(f'{where}: names no company while others do ({known}): add company = "NAME"')
    ledgers: dict[str, str] = {}
    for name, connection in connections.items():
        try:
            kind = registry.get(connection.provider).kind
        except (ConfigError, PluginError):
            continue
        if kind != "ledger":
            continue
        first = ledgers.setdefault(connection.company, name)
        if first != name:
            if connection.company_named:
                why = f"company {connection.company!r} already has the ledger {first!r}"
            else:
                why = f'a second ledger beside {first!r}: give each company\'s connections company = "NAME"'
            problems.append(f"{source}: connections.{name}: {why} (a company keeps one set of books)")
    return problems


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` over `base`, table by table (a company's section over the defaults)."""
    out = dict(base)
    for key, value in override.items():
        current = out.get(key)
        out[key] = _merged(current, value) if isinstance(current, dict) and isinstance(value, dict) else value
    return out


def _validated_reconcile(section: dict[str, Any], where: str) -> ReconcileConfig:
    """A `[reconcile]` table, its numbers read as written (TOML floats become Decimal, never
    binary)."""
    _refuse_mistyped(ReconcileConfig, section, where)
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


def _database_section(section: Any, source: str) -> DatabaseSection:
    if not isinstance(section, dict):
        raise ConfigError("must be a table", where=f"{source}: database")
    try:
        return DatabaseSection.model_validate(section)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, f"{source}: database")[0]) from None


def _database_url(parsed: DatabaseSection, source: str, config_file: Path | None) -> str:
    override = os.environ.get(ENV_DATABASE_URL)
    if override:
        return override
    url, _ = resolve_reference(parsed.url, f"{source}: database.url", config_file)
    return anchor_sqlite_path(str(url), config_file)


def _secret_keys(
    parsed: DatabaseSection, source: str, config_file: Path | None
) -> tuple[tuple[str, ...], str | None, bool]:
    """The keys sealing OAuth tokens, where they came from, and whether written literally."""
    if parsed.secret_key is not None:
        where = f"{source}: database.secret_key"
        text, was_reference = resolve_reference(parsed.secret_key, where, config_file)
        origin = "database.secret_key"
    elif os.environ.get(ENV_SECRET_KEY, "").strip():
        where, text, was_reference, origin = ENV_SECRET_KEY, os.environ[ENV_SECRET_KEY], True, ENV_SECRET_KEY
    else:
        return (), None, False
    try:
        return parse_keys(str(text)), origin, not was_reference
    except ValueError as exc:
        raise ConfigError(str(exc), where=where) from None


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
