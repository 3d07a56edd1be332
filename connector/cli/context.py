"""What every command shares: the config and the state store, loaded on first use, and the
company a book command works on (`--company`, see `BOOK_COMMANDS`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import click

from connector.config import ENV_CONFIG, Config, config_path, load_config
from connector.errors import ConfigError, UsageError
from connector.logs import name_companies
from connector.state.scope import check_company_name
from connector.state.store import Store, open_store

ALL_COMPANIES = "all"
ENV_COMPANY = "CONNECTOR_COMPANY"

# The commands that call the providers: they refresh OAuth tokens and store the rotated ones.
# Before one runs, every stored token of an OAuth connection must open with the configured
# keys, and a key must be set to seal new ones; otherwise it stops at once, in one line, before
# a refresh token is spent or an outbox action is tried (instead of failing stream by stream,
# or parking actions).
CALLS_PROVIDERS = frozenset({"sync", "apply", "serve"})


@dataclass
class AppContext:
    """What every command needs, loaded lazily so `--help` never touches files."""

    config_option: str | None
    debug: bool = False
    company_option: str | None = None  # `--company NAME`, else $CONNECTOR_COMPANY
    _config: Config | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)
    _forget_companies: Callable[[], None] | None = field(default=None, repr=False)

    def root_config(self) -> Config:
        """The whole deployment's configuration: every company's connections."""
        if self._config is None:
            require_config_file(self.config_option)
            self._config = load_config(self.config_option)
            # a log line naming a connection names its company too (JSON logs carry it)
            self._forget_companies = name_companies({n: c.company for n, c in self._config.connections.items()})
        return self._config

    def company(self) -> str:
        """The company a book command works on: the one named by `--company`, else the only
        one configured; with several and none named, a usage error listing them (exit 2)."""
        names = self.root_config().company_names()
        chosen = self.company_option
        if chosen is None or chosen == "":
            if len(names) == 1:
                return names[0]
            raise UsageError(f"several companies are configured ({', '.join(names)}): choose one with --company NAME")
        if chosen == ALL_COMPANIES:
            raise UsageError("--company all is for reports that show companies side by side (aging, drift)")
        check_company_name(chosen, where="--company")
        if chosen not in names:
            raise UsageError(f"no company named {chosen!r} (configured: {', '.join(names)})")
        return chosen

    def companies(self) -> list[str]:
        """The companies a report shows: every one with `--company all`, else `company()`."""
        if self.company_option == ALL_COMPANIES:
            return self.root_config().company_names()
        return [self.company()]

    def config(self, company: str | None = None) -> Config:
        """The configuration as the chosen company's stages see it (`Config.for_company`)."""
        return self.root_config().for_company(company or self.company())

    def store(self, company: str | None = None) -> Store:
        """The state store working for the chosen company's book."""
        return self.root_store().for_company(company or self.company())

    def reader(self, company: str | None = None) -> Store:
        """The chosen company's book for a report: its transactions only read, so they neither
        wait for nor hold back a sync, reconcile or plan writing meanwhile (`Store.reader`)."""
        return self.store(company).reader()

    def root_store(self) -> Store:
        """The state store of the configured database, opened once (schema checked), sealing
        OAuth tokens with the configured keys."""
        if self._store is None:
            config = self.root_config()
            store = open_store(config.database_url, sealer=config.token_sealer())
            try:
                store.check_connection_companies({name: c.company for name, c in config.connections.items()})
                if _invoked() in CALLS_PROVIDERS:
                    check_tokens_usable(config, store)
            except BaseException:
                store.close()
                raise
            self._store = store
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._forget_companies is not None:
            self._forget_companies()
            self._forget_companies = None


def require_config_file(explicit: str | None) -> None:
    """Refuse to work without a config file (exit 2), saying where it looked: a command run in
    the wrong folder would otherwise sync nothing and create a `connector.db` where it stands."""
    path, named = config_path(explicit)
    if path.exists():
        return
    if named:
        raise ConfigError(f"config file {path} not found (create one with `connector init --path {path}`)")
    raise ConfigError(
        f"no config file: looked for {path.resolve()} (none named by --config or ${ENV_CONFIG}); "
        "create one with `connector init`, or run `connector demo` to try the connector"
    )


def check_tokens_usable(config: Config, store: Store) -> None:
    """Every OAuth connection's stored tokens open (else `TokensUnreadableError`, exit 3, naming
    the connection), and a key is set to seal the ones it will rotate (else the one-line
    `SecretKeyMissingError`, exit 2, saying how to make one)."""
    for name in config.oauth_connections():
        store.load_tokens(name)
    config.require_secret_key()


def _invoked() -> str | None:
    """The top-level command being run (`sync` for `connector sync ...`), if any."""
    context = click.get_current_context(silent=True)
    return context.find_root().invoked_subcommand if context is not None else None


pass_app = click.make_pass_decorator(AppContext)


def _remember_company(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    app = ctx.find_object(AppContext)
    if value is not None and app is not None:
        app.company_option = value


def company_option() -> click.Option:
    """`--company NAME` for a command that reads or changes one company's book (`all` where a
    report shows companies side by side). It may also be given before the command, or as
    $CONNECTOR_COMPANY."""
    return click.Option(
        ["--company"],
        metavar="NAME",
        envvar=ENV_COMPANY,
        expose_value=False,
        is_eager=True,
        callback=_remember_company,
        help="The company whose book this works on (optional when only one is configured).",
    )
