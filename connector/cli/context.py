"""What every command shares: the config and the state store, loaded on first use."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from connector.config import Config, load_config
from connector.state.store import Store, open_store


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
        """The state store of the configured database, opened once (schema checked)."""
        if self._store is None:
            self._store = open_store(self.config().database_url)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


pass_app = click.make_pass_decorator(AppContext)
