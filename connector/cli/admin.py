"""Set-up commands: `init`, `providers list`, `db upgrade|status`, `doctor`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from connector.cli.context import AppContext, pass_app, require_config_file
from connector.config import DEFAULT_CONFIG, ENV_CONFIG, Config, config_path, load_config
from connector.connections import open_probe
from connector.dunning.run import dunning_section
from connector.errors import EXIT_PROBLEMS, EXIT_USAGE, AuthenticationError, ConfigError, ConnectorError, UsageError
from connector.providers.registry import installed
from connector.redaction import redact
from connector.state.db import database_url_for, make_engine, redact_url
from connector.state.migrate import current_revision, head_revision, upgrade
from connector.state.scope import DEFAULT_COMPANY
from connector.state.secrets import NEW_KEY_HINT, TokensUnreadableError, missing_key
from connector.state.store import open_store

EXAMPLE_CONFIG = """\
# connector.toml: where the state database is and which systems to sync.
# Secrets are never written here: `env:NAME` reads them from the environment, `file:PATH`
# from a file (a Docker secret, a systemd credential).

[database]
# The embedded default: a SQLite file beside this config. For several workers use
# PostgreSQL, e.g. "postgresql://connector@db.internal/connector", or
# url = "env:CONNECTOR_DATABASE_URL" (that variable also overrides this line when set).
url = "sqlite:///connector.db"
# The key that seals stored OAuth tokens (Xero, HubSpot apps, QuickBooks): make one with
# `connector secret-key new`. Without this line, $CONNECTOR_SECRET_KEY is used.
# secret_key = "file:/run/credentials/connector.service/secret_key"

# One table per connection: [connections.NAME], the provider beside its settings.
# `connector providers list` shows the installed providers; `connector doctor` checks this file.

# [connections.gateway]
# provider = "stripe"
# base_url = "https://api.stripe.com"
# api_key = "env:STRIPE_API_KEY"

# [connections.ledger]
# provider = "xero"
# base_url = "https://api.xero.com/api.xro/2.0"
# tenant_id = "env:XERO_TENANT_ID"
# client_id = "env:XERO_CLIENT_ID"
# client_secret = "env:XERO_CLIENT_SECRET"
# refresh_token = "env:XERO_REFRESH_TOKEN"
# payment_account_code = "090"     # the bank or clearing account payments are recorded against

# [connections.crm]
# provider = "hubspot"
# base_url = "https://api.hubapi.com"
# access_token = "env:HUBSPOT_ACCESS_TOKEN"   # a private app's token
"""


@click.command("init")
@click.option("--path", "target", metavar="PATH", help="Where to write (default: --config, else ./connector.toml).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@pass_app
def init_command(app: AppContext, target: str | None, force: bool) -> None:
    """Write a commented example connector.toml."""
    path = Path(target) if target else config_path(app.config_option)[0]
    if path.exists() and not force:
        raise UsageError(f"{path} already exists (use --force to overwrite it)")
    try:
        path.write_text(EXAMPLE_CONFIG, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    click.echo(f"wrote {path}: uncomment a connection, set its environment variables, then run `connector doctor`")


@click.group("providers")
def providers_group() -> None:
    """Installed provider plugins."""


@providers_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def providers_list(as_json: bool) -> int:  # listing succeeds even when a plugin is broken
    """Every installed provider: kind, capabilities, origin package; broken ones with why."""
    registry = installed()
    rows = [info.as_dict() for info in registry.infos]
    if as_json:
        click.echo(json.dumps({"providers": rows}, indent=2))
    elif not rows:
        click.echo("no providers installed")
    else:
        for row in rows:
            if row["status"] == "ok":
                caps = row["capabilities"]
                click.echo(f"{row['name']:<14} {row['kind']:<8} {row['origin']}")
                click.echo(f"{'':<14} streams: {', '.join(caps['streams']) or '-'}")
                click.echo(f"{'':<14} actions: {', '.join(caps['actions']) or '-'}")
            else:
                click.echo(f"{row['name']:<14} BROKEN   {row['origin']}: {row['reason']}")
    return 0


@click.group("db")
def db_group() -> None:
    """The state database."""


@db_group.command("upgrade")
@pass_app
def db_upgrade(app: AppContext) -> int:
    """Apply schema migrations, keeping every stored row; seal the stored OAuth tokens with the
    first secret key (plain ones, and ones sealed with a key that is no longer first)."""

    config = app.root_config()
    url = config.database_url
    before = _revision(url)
    after = upgrade(url)
    if before == after:
        click.echo(f"{redact_url(url)}: already at {after} (latest)")
    else:
        click.echo(f"{redact_url(url)}: upgraded from {before or 'empty'} to {after} (latest is {head_revision()})")
    return _seal_tokens(config)


def _seal_tokens(config: Config) -> int:
    """Re-seal the stored tokens; a warning and exit 1 when plain ones stay for want of a key."""
    store = open_store(config.database_url, sealer=config.token_sealer())
    try:
        report = store.reseal_tokens()
    finally:
        store.close()
    where = redact_url(config.database_url)
    if report.sealed:
        click.echo(f"{where}: sealed the stored OAuth tokens of {', '.join(report.sealed)} (they were in clear)")
    if report.resealed:
        click.echo(f"{where}: re-sealed the stored OAuth tokens of {', '.join(report.resealed)} with the first key")
    if report.plain:
        click.echo(
            f"warning: the OAuth tokens of {', '.join(report.plain)} are stored in clear and no secret key is set: "
            f"{NEW_KEY_HINT}, set it, then run `connector db upgrade` again to seal them",
            err=True,
        )
        return EXIT_PROBLEMS
    return 0


@db_group.command("status")
@pass_app
def db_status(app: AppContext) -> int:
    """Show the schema revision of the database and of this release."""

    url = app.root_config().database_url
    current, head = _revision(url), head_revision()
    click.echo(f"{redact_url(url)}: schema {current or 'empty'}, this release needs {head}")
    return 0 if current == head else EXIT_PROBLEMS


def _sqlite_file_missing(url: str) -> str | None:
    """The path of a SQLite database file that does not exist yet, else None."""

    parsed = database_url_for(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return None if Path(parsed.database).exists() else parsed.database


def _revision(url: str) -> str | None:
    """The schema revision of the database at `url` (None when empty)."""

    engine = make_engine(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def _check(name: str, ok: bool, detail: str, level: str | None = None, *, ours: bool = False) -> dict[str, Any]:
    """One line of the report; `ours` for messages we compose from key names (configuration
    errors), where only registered secret values are masked (see `redact`)."""
    return {"check": name, "status": level or ("ok" if ok else "error"), "detail": redact(detail, shapes=not ours)}


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--online", is_flag=True, help="Also reach each provider with its credentials (one cheap read per connection)."
)
@pass_app
def doctor(app: AppContext, as_json: bool, online: bool) -> int:
    """Check the config, the database and every connection's settings."""
    # Nothing can be checked without a config file: say where doctor looked (exit 2).
    require_config_file(app.config_option)
    config = load_config(app.config_option, strict=False)
    if config.problems:
        # A config that does not load is a usage error (exit 2), like for every other command;
        # doctor lists every problem in it at once, one line each, and stops there.
        problems = [_check("config", False, problem, ours=True) for problem in config.problems]
        if as_json:
            click.echo(json.dumps({"ok": False, "checks": problems}, indent=2))
        else:
            for c in problems:
                click.echo(f"{c['status']:<8} {c['check']}: {c['detail']}", err=True)
        return EXIT_USAGE
    checks = [
        _check(
            "config",
            True,
            str(config.path) if config.path else f"no {DEFAULT_CONFIG} (set --config or {ENV_CONFIG}); using defaults",
        )
    ]
    checks.append(_database_check(config.database_url))
    registry = installed()
    for info in registry.broken:
        checks.append(_check(f"provider {info.name}", False, "; ".join(info.problems), "warning"))
    companies_named = config.company_names() != [DEFAULT_COMPANY]
    for connection in config.connections.values():
        detail = f"{connection.provider} at {connection.settings.base_url}"
        if companies_named:
            detail += f" (company {connection.company})"
        checks.append(_check(f"connection {connection.name}", True, detail))
        for key in connection.literal_secrets:
            checks.append(
                _check(
                    f"connection {connection.name}",
                    False,
                    f'{key} is written in the file; use "env:NAME" so the secret stays out of it',
                    "warning",
                )
            )
    checks += _secret_key_checks(config)
    if companies_named:
        checks += _company_checks(config)
    # The defaults, then each company's own `[companies.NAME.dunning]` merged over them.
    views = [("dunning", config)] + [
        (f"dunning (company {name})", config.for_company(name)) for name, c in config.companies.items() if c.dunning
    ]
    bad_config = False
    for name, view in views:
        try:
            dunning_section(view)
        except ConfigError as exc:
            checks.append(_check(name, False, str(exc), ours=True))
            bad_config = True
    if not config.connections and not config.problems:
        checks.append(_check("connections", True, "none configured", "warning"))
    if online and not bad_config and not any(c["status"] == "error" for c in checks):
        checks += _online_checks(app, config)
    failed = any(c["status"] == "error" for c in checks)
    if as_json:
        click.echo(json.dumps({"ok": not failed, "checks": checks}, indent=2))
    else:
        for c in checks:
            click.echo(f"{c['status']:<8} {c['check']}: {c['detail']}")
    return EXIT_USAGE if bad_config else EXIT_PROBLEMS if failed else 0


def _online_checks(app: AppContext, config: Config) -> list[dict[str, Any]]:
    """Each connection reached with its credentials: one cheap authenticated read (`probe`),
    reported per connection; a refused credential or an unreachable host is an error."""
    checks = []
    for connection in config.connections.values():
        name = f"online {connection.name}"
        try:
            provider = open_probe(connection, app.store(connection.company))
        except ConnectorError as exc:
            checks.append(_check(name, False, f"cannot open: {exc}"))
            continue
        try:
            detail = provider.probe()
        except AuthenticationError as exc:
            checks.append(_check(name, False, f"credentials refused by {connection.settings.base_url}: {exc}"))
        except ConnectorError as exc:
            checks.append(_check(name, False, f"{connection.settings.base_url}: {exc}"))
        else:
            checks.append(_check(name, True, f"{connection.settings.base_url}: {detail}"))
        finally:
            provider.close()
    return checks


def _company_checks(config: Config) -> list[dict[str, Any]]:
    """A line per company: its name as printed and its connections; a warning for a declared
    company that no connection names (nothing is synced for it)."""
    checks = []
    for company in config.company_names():
        names = ", ".join(config.company_connections(company))
        shown = config.display_name(company)
        legal = f"{shown}: " if shown != company else ""
        if names:
            checks.append(_check(f"company {company}", True, f"{legal}connections {names}"))
        else:
            detail = f'{legal}no connection names this company (add company = "{company}" to its connections)'
            checks.append(_check(f"company {company}", False, detail, "warning", ours=True))
    return checks


def _secret_key_checks(config: Config) -> list[dict[str, Any]]:
    """The key sealing OAuth tokens: missing while OAuth connections need one, written in the
    file; and the stored tokens: any in clear, any that the keys do not open."""
    oauth, count = config.oauth_connections(), len(config.secret_keys)
    checks = []
    if not count and oauth:
        refusal = f"{missing_key(oauth)}; `connector sync`, `apply` and `serve` refuse to run without it"
        checks.append(_check("secret key", False, refusal, "warning", ours=True))
    elif count:
        detail = f"{count} key{'s' if count > 1 else ''} from {config.secret_key_source}"
        checks.append(_check("secret key", True, detail + ("; the first seals new tokens" if count > 1 else "")))
    if config.literal_secret_key:
        literal = 'secret_key is written in the file; use "env:NAME" or "file:PATH" so the key stays out of it'
        checks.append(_check("secret key", False, literal, "warning", ours=True))
    return checks + _token_checks(config)


def _token_checks(config: Config) -> list[dict[str, Any]]:
    """How the stored tokens are kept, when the database is there and on this release's schema."""
    url = config.database_url
    if _sqlite_file_missing(url):
        return []
    try:
        if _revision(url) != head_revision():
            return []
        store = open_store(url, sealer=config.token_sealer())
    except ConnectorError:
        return []  # the database check says why
    try:
        states = store.token_states()
    finally:
        store.close()
    seal = "run `connector db upgrade`" if config.secret_keys else "set a secret key and run `connector db upgrade`"
    checks = []
    for connection, state in states.items():
        if state == "unreadable":
            unreadable = TokensUnreadableError(connection, len(config.secret_keys))
            checks.append(_check(f"tokens {connection}", False, str(unreadable)))
        elif state == "plain":
            checks.append(_check(f"tokens {connection}", False, f"stored in clear: {seal} to seal them", "warning"))
    return checks


def _database_check(url: str) -> dict[str, Any]:
    where = redact_url(url)
    missing = _sqlite_file_missing(url)
    if missing:
        # do not create the file just by looking at it
        return _check("database", True, f"{where}: {missing} does not exist yet; created on first use", "ok")
    try:
        current = _revision(url)
    except ConnectorError as exc:
        return _check("database", False, str(exc))
    head = head_revision()
    if current is None:
        return _check("database", True, f"{where}: empty, created on first use", "ok")
    if current != head:
        return _check("database", False, f"{where}: schema {current}, needs {head}: run `connector db upgrade`")
    return _check("database", True, f"{where}: schema {current} (latest)")


COMMANDS = [init_command, providers_group, db_group, doctor]
