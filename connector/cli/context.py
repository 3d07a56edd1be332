"""What every command shares: the config and the state store, loaded on first use."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from connector.config import Config, load_config
from connector.state.store import Store, open_store

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
    _config: Config | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)

    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_option)
        return self._config

    def store(self) -> Store:
        """The state store of the configured database, opened once (schema checked), sealing
        OAuth tokens with the configured keys."""
        if self._store is None:
            config = self.config()
            store = open_store(config.database_url, sealer=config.token_sealer())
            try:
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
