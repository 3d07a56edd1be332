"""A connection's credential as apply compares it: a fingerprint, never the secret.

When a provider refuses a connection's credential (`AuthenticationError.refuses_credential`),
its writes are held (`outbox.hold_connection`) with the fingerprint of the credential refused.
They are due again as soon as the fingerprint differs: a secret of the connection's settings
changed (a new API key, a new refresh token in the config), or its stored OAuth tokens changed
(`connector tokens forget`, or another process refreshed them).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, SecretStr

from connector.config import Connection
from connector.errors import AuthenticationError, ConnectorError
from connector.state.store import Store


def credential_fingerprint(connection: Connection, store: Store) -> str:
    """A digest of everything the connection authenticates with: its settings (secrets
    revealed only into the digest) and the version of its stored tokens."""
    digest = hashlib.sha256()
    digest.update(json.dumps([connection.name, connection.provider], sort_keys=True).encode())
    digest.update(json.dumps(_revealed(connection.settings), sort_keys=True, default=str).encode())
    try:
        stored = store.load_tokens(connection.name)
    except ConnectorError:
        stored_version: str = "unreadable"  # a key put back later changes it
    else:
        stored_version = "none" if stored is None else str(stored.version)
    digest.update(stored_version.encode())
    return digest.hexdigest()[:32]


def _revealed(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return {name: _revealed(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, dict):
        return {str(k): _revealed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_revealed(v) for v in value]
    return value


def refusal_note(connection: Connection, exc: AuthenticationError) -> str:
    """What `actions list` says of a write held for its connection's refused credential."""
    name = connection.name
    fix = (
        f"put a new refresh token in connections.{name} and run `connector tokens forget {name}`"
        if connection.uses_oauth
        else f"put a new credential in connections.{name}"
    )
    return (
        f"waits for a new credential: {exc.provider} refused the credential of connection {name} "
        f"({exc.message[:300]}); {fix}, or run `connector actions retry --connection {name}` once it is fixed"
    )


__all__ = ["credential_fingerprint", "refusal_note"]
