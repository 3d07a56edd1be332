"""OAuth tokens per connection, saved by compare-and-swap.

Providers rotate refresh tokens: once a refresh succeeds the old refresh token is dead. Two
workers refreshing at once must therefore not both save; a save names the version it loaded
and only succeeds if nobody saved since. The loser reloads and uses the winner's tokens.
Token values never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from connector.state.records import rowcount, utcnow
from connector.state.tables import table
from connector.state.upsert import insert_new


@dataclass(frozen=True)
class StoredTokens:
    access_token: str | None = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    version: int


def _expiry(value: Any) -> datetime | None:
    """`expires_at` as given by an OAuth library: a datetime or epoch seconds."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(int(value), UTC)


def load_tokens(session: Session, connection: str) -> StoredTokens | None:
    tokens = table("oauth_tokens")
    query = sa.select(tokens).where(tokens.c.connection == connection)
    row = session.execute(query).mappings().one_or_none()
    if row is None:
        return None
    return StoredTokens(
        access_token=row["access_token"],
        refresh_token=row["refresh_token"],
        expires_at=row["expires_at"],
        version=row["version"],
    )


def save_tokens(
    session: Session,
    connection: str,
    tokens: Mapping[str, Any],
    expected_version: int | None,
) -> int | None:
    """Save if the stored version is still `expected_version` (None: nothing stored yet).
    Returns the new version, or None when another saver got there first."""
    values = {
        "access_token": tokens.get("access_token"),
        "refresh_token": tokens.get("refresh_token"),
        "expires_at": _expiry(tokens.get("expires_at")),
        "updated_at": utcnow(),
    }
    oauth = table("oauth_tokens")
    if expected_version is None:
        row = {"connection": connection, **values, "version": 1}
        return 1 if insert_new(session, oauth, [row], key=("connection",)) == 1 else None
    result = session.execute(
        sa.update(oauth)
        .where(oauth.c.connection == connection, oauth.c.version == expected_version)
        .values(**values, version=expected_version + 1)
    )
    return expected_version + 1 if rowcount(result) == 1 else None
