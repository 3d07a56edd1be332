"""The durable home of OAuth tokens: the `TokenStore` a provider gets, over the state store."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from connector.errors import StateError
from connector.state.store import Store

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

    @contextmanager
    def refresh_guard(self, connection: str) -> Iterator[None]:
        """Hold the connection's refresh lock across processes while its token is refreshed:
        a PostgreSQL advisory lock keyed by the connection (the workers of one database share
        it); SQLite runs one worker, so the in-process lock is enough there."""
        engine = self._store.engine
        if engine.dialect.name != "postgresql":
            yield
            return
        key = int.from_bytes(hashlib.sha256(f"oauth:{connection}".encode()).digest()[:8], "big", signed=True)
        with engine.connect() as held:
            held.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                held.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                held.commit()

    def save(self, connection: str, tokens: dict[str, Any]) -> None:
        version = self._store.save_tokens(connection, tokens, self._versions.get(connection))
        if version is None:
            latest = self._store.load_tokens(connection)
            logger.warning("tokens of connection %s were saved by another process meanwhile; keeping ours", connection)
            version = self._store.save_tokens(connection, tokens, latest.version if latest else None)
            if version is None:
                raise StateError(f"could not save the rotated tokens of connection {connection!r}; not using them")
        self._versions[connection] = version
