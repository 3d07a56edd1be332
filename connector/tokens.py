"""The durable home of OAuth tokens: the `TokenStore` a provider gets, over the state store."""

from __future__ import annotations

import logging
from typing import Any

from connector.errors import StateError
from state.store import Store

logger = logging.getLogger(__name__)


class StateTokenStore:
    """Loads and saves a connection's tokens in `oauth_tokens`. A save is a compare-and-swap
    on the version last loaded; when another process saved in between, ours still wins: it
    holds the refresh token issued last, and the one it replaced is already spent."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._versions: dict[str, int | None] = {}

    def load(self, connection: str) -> dict[str, Any] | None:
        stored = self._store.load_tokens(connection)
        self._versions[connection] = stored.version if stored else None
        if stored is None:
            return None
        expires = stored.expires_at.timestamp() if stored.expires_at else None
        return {"access_token": stored.access_token, "refresh_token": stored.refresh_token, "expires_at": expires}

    def save(self, connection: str, tokens: dict[str, Any]) -> None:
        version = self._store.save_tokens(connection, tokens, self._versions.get(connection))
        if version is None:
            latest = self._store.load_tokens(connection)
            logger.warning("tokens of connection %s were saved by another process meanwhile; keeping ours", connection)
            version = self._store.save_tokens(connection, tokens, latest.version if latest else None)
            if version is None:
                raise StateError(f"could not save the rotated tokens of connection {connection!r}; not using them")
        self._versions[connection] = version
