"""The token store the OAuth layer needs: where a connection's rotated tokens live.

The HTTP layer owns this protocol; the state store implements it
(`connector.state.token_store.StateTokenStore`) and providers pass it through. A token set is
a dict: `access_token`, `refresh_token`, `expires_at` (epoch seconds or None) and
`previous_refresh_token` (the refresh token the current one replaced, tried when the current
one is refused after an answer was lost); a store keeps at least these and may drop other keys.

A store may also offer `refresh_guard(connection)`, a context manager held across processes
while a token is refreshed (a PostgreSQL advisory lock, a file lock beside a SQLite file), so
that two workers never spend the same refresh token: whoever waited reloads and uses what the
other stored.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable


class TokenStore(Protocol):
    """Durable home of a connection's OAuth tokens."""

    def load(self, connection: str) -> dict[str, Any] | None: ...

    def save(self, connection: str, tokens: dict[str, Any]) -> None: ...


@runtime_checkable
class GuardedTokenStore(TokenStore, Protocol):
    """A token store that can also serialise refreshes across processes."""

    def refresh_guard(self, connection: str) -> AbstractContextManager[None]: ...


__all__ = ["GuardedTokenStore", "TokenStore"]
