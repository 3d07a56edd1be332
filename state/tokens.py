"""OAuth tokens per connection, saved by compare-and-swap, sealed at rest.

Providers rotate refresh tokens: once a refresh succeeds the old refresh token is dead. Two
workers refreshing at once must therefore not both save; a save names the version it loaded
and only succeeds if nobody saved since. The loser reloads and uses the winner's tokens.

Given a `TokenSealer` (`connector.state.secrets`), the token columns hold values sealed with
the operator's key and are opened on load; a sealer without keys refuses to save. Without a
sealer (tests and tools that hold no key) values are stored as given. Plain values written
before sealing are read as they are and sealed by `reseal_tokens` (`connector db upgrade`).
Token values never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from connector.state.records import rowcount, utcnow
from connector.state.secrets import TokenSealer, TokensUnreadableError, is_sealed
from connector.state.tables import table
from connector.state.upsert import insert_new

# The columns that hold a secret; each is sealed on its own.
TOKEN_COLUMNS = ("access_token", "refresh_token", "previous_refresh_token")

TokenState = Literal["sealed", "plain", "unreadable"]


@dataclass(frozen=True)
class StoredTokens:
    access_token: str | None = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    version: int
    # the refresh token `refresh_token` replaced: tried when that one is refused (0009)
    previous_refresh_token: str | None = field(default=None, repr=False)
    # False when a value was stored in clear (before sealing): `connector db upgrade` seals it
    sealed: bool = True


@dataclass
class ResealReport:
    """What `reseal_tokens` did, by connection."""

    sealed: list[str] = field(default_factory=list)  # were plain, now sealed
    resealed: list[str] = field(default_factory=list)  # were sealed with another key, now the first
    plain: list[str] = field(default_factory=list)  # left plain: no key to seal them with


def _expiry(value: Any) -> datetime | None:
    """`expires_at` as given by an OAuth library: a datetime or epoch seconds."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(int(value), UTC)


def _has_plain(row: sa.RowMapping) -> bool:
    return any(row[column] is not None and not is_sealed(row[column]) for column in TOKEN_COLUMNS)


def load_tokens(session: Session, connection: str, sealer: TokenSealer | None = None) -> StoredTokens | None:
    """The connection's tokens, opened; `TokensUnreadableError` when sealed ones cannot be."""
    tokens = table("oauth_tokens")
    query = sa.select(tokens).where(tokens.c.connection == connection)
    row = session.execute(query).mappings().one_or_none()
    if row is None:
        return None
    opener = sealer or TokenSealer()
    opened = {column: opener.open(row[column], connection) for column in TOKEN_COLUMNS}
    return StoredTokens(
        access_token=opened["access_token"],
        refresh_token=opened["refresh_token"],
        expires_at=row["expires_at"],
        version=row["version"],
        previous_refresh_token=opened["previous_refresh_token"],
        sealed=not _has_plain(row),
    )


def save_tokens(
    session: Session,
    connection: str,
    tokens: Mapping[str, Any],
    expected_version: int | None,
    sealer: TokenSealer | None = None,
) -> int | None:
    """Save if the stored version is still `expected_version` (None: nothing stored yet).
    Returns the new version, or None when another saver got there first."""
    values: dict[str, Any] = {column: tokens.get(column) for column in TOKEN_COLUMNS}
    if sealer is not None:
        values = {column: sealer.seal(value, connection) for column, value in values.items()}
    values |= {"expires_at": _expiry(tokens.get("expires_at")), "updated_at": utcnow()}
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


def forget_tokens(session: Session, connection: str) -> bool:
    """Drop the connection's stored tokens (it is authorised again with the configured ones);
    False when none were stored."""
    oauth = table("oauth_tokens")
    return rowcount(session.execute(sa.delete(oauth).where(oauth.c.connection == connection))) > 0


def token_states(session: Session, sealer: TokenSealer) -> dict[str, TokenState]:
    """connection -> how its stored tokens are kept: sealed (and opened by `sealer`), plain, or
    unreadable (sealed with none of its keys)."""
    oauth = table("oauth_tokens")
    states: dict[str, TokenState] = {}
    for row in session.execute(sa.select(oauth).order_by(oauth.c.connection)).mappings():
        connection = row["connection"]
        try:
            for column in TOKEN_COLUMNS:
                sealer.open(row[column], connection)
        except TokensUnreadableError:
            states[connection] = "unreadable"
            continue
        states[connection] = "plain" if _has_plain(row) else "sealed"
    return states


def reseal_tokens(session: Session, sealer: TokenSealer) -> ResealReport:
    """Seal every token with the first key: plain ones, and ones sealed with another key (after a
    key was put first). Without a key nothing changes and the plain ones are reported. A row is
    rewritten only if nobody saved it meanwhile (its version stays: the tokens are the same)."""
    report = ResealReport()
    oauth = table("oauth_tokens")
    rows = session.execute(sa.select(oauth).order_by(oauth.c.connection)).mappings().all()
    for row in rows:
        connection, was_plain = row["connection"], _has_plain(row)
        if not sealer.has_keys:
            if was_plain:
                report.plain.append(connection)
            continue
        changes = {
            column: resealed
            for column in TOKEN_COLUMNS
            if (resealed := sealer.reseal(row[column], connection)) is not None
        }
        if not changes:
            continue
        result = session.execute(
            sa.update(oauth)
            .where(oauth.c.connection == connection, oauth.c.version == row["version"])
            .values(**changes)
        )
        if rowcount(result) == 1:  # else saved meanwhile: that save wrote its own values
            (report.sealed if was_plain else report.resealed).append(connection)
    return report
