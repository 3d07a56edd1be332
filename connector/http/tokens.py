"""The token store the OAuth layer needs: where a connection's rotated tokens live.

The HTTP layer owns this protocol; the state store implements it
(`connector.state.token_store.StateTokenStore`) and providers pass it through. A store may
also offer `refresh_guard(connection)`, a context manager held across processes while a token
is refreshed, so two workers never spend the same refresh token.
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
