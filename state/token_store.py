"""The durable home of OAuth tokens: the `TokenStore` a provider gets, over the state store."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from connector.errors import StateError
from connector.state.secrets import missing_key
from connector.state.store import Store

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl

logger = logging.getLogger(__name__)


class StateTokenStore:
    """Loads and saves a connection's tokens in `oauth_tokens`. A save is a compare-and-swap
    on the version last loaded; when another process saved in between, ours still wins: it
    holds the refresh token issued last, and the one it replaced is already spent.

    Tokens are sealed with the store's `TokenSealer`. One without keys refuses at `load`, which
    the OAuth layer calls before it spends a refresh token: a rotated token that could not be
    stored would be lost, and the connection with it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._versions: dict[str, int | None] = {}
        self._told_plain: set[str] = set()

    def load(self, connection: str) -> dict[str, Any] | None:
        sealer = self._store.sealer
        if sealer is not None and not sealer.has_keys:
            raise missing_key([connection])
        stored = self._store.load_tokens(connection)
        self._versions[connection] = stored.version if stored else None
        if stored is None:
            return None
        if not stored.sealed and sealer is not None and connection not in self._told_plain:
            self._told_plain.add(connection)
            logger.warning(
                "tokens of connection %s are stored in clear: run `connector db upgrade` to seal them", connection
            )
        expires = stored.expires_at.timestamp() if stored.expires_at else None
        return {
            "access_token": stored.access_token,
            "refresh_token": stored.refresh_token,
            "expires_at": expires,
            "previous_refresh_token": stored.previous_refresh_token,
        }

    @contextmanager
    def refresh_guard(self, connection: str) -> Iterator[None]:
        """Hold the connection's refresh lock across processes while its token is refreshed,
        so that no process spends a refresh token another has just rotated. PostgreSQL: an
        advisory lock keyed by the connection (the workers of one database share it). SQLite:
        an exclusive lock on a file beside the database file, one per connection (a `connector
        sync` by hand may run beside `connector serve`); the operating system drops either
        lock when its process dies. An in-memory SQLite database lives in one process, where
        the OAuth manager's own lock is enough."""
        engine = self._store.engine
        digest = hashlib.sha256(f"oauth:{connection}".encode()).digest()
        if engine.dialect.name == "postgresql":
            key = int.from_bytes(digest[:8], "big", signed=True)
            with engine.connect() as held:
                held.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
                try:
                    yield
                finally:
                    held.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    held.commit()
            return
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        if not database or database == ":memory:" or database.startswith("file::memory:"):
            yield
            return
        with _file_lock(f"{os.path.abspath(database)}.oauth-{digest[:6].hex()}.lock"):
            yield

    def save(self, connection: str, tokens: dict[str, Any]) -> None:
        version = self._store.save_tokens(connection, tokens, self._versions.get(connection))
        if version is None:
            latest = self._store.load_tokens(connection)
            logger.warning("tokens of connection %s were saved by another process meanwhile; keeping ours", connection)
            version = self._store.save_tokens(connection, tokens, latest.version if latest else None)
            if version is None:
                raise StateError(f"could not save the rotated tokens of connection {connection!r}; not using them")
        self._versions[connection] = version


@contextmanager
def _file_lock(path: str) -> Iterator[None]:
    """An exclusive lock on `path` (created if missing), waited for, held until the block ends."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _lock_file(fd)
        try:
            yield
        finally:
            _unlock_file(fd)
    finally:
        os.close(fd)


if sys.platform == "win32":

    def _lock_file(fd: int) -> None:
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # gives up after about 10 s: wait on
                return
            except OSError:
                continue

    def _unlock_file(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:

    def _lock_file(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock_file(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
