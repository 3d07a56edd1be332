"""Secrets sealed at rest: OAuth tokens encrypted with the operator's keys before they are stored.

The keys are Fernet keys (AES-128-CBC and HMAC-SHA256, from `cryptography`), given as one
setting that may hold several, separated by commas or whitespace: the first seals, every one
of them opens (`MultiFernet`), so a key is rotated by putting the new one first, re-sealing
(`connector db upgrade`) and then dropping the old one.

A stored value says what it is:

    fernet:gAAAAAB...     sealed (SEALED_PREFIX, then the Fernet token)
    anything else         plain text, written before tokens were sealed: read as it is,
                          sealed by `connector db upgrade` or by the next save

The state layer never reads the configuration: whoever opens the store passes a `TokenSealer`
(`connector.config` builds it from `CONNECTOR_SECRET_KEY` or `[database] secret_key`). A
sealer with no keys refuses to seal, so a token is never stored in clear by the CLI, the
service or the demo. Keys and tokens never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from connector.errors import SecretKeyMissingError, TokensUnreadableError
from connector.redaction import register_secret

SEALED_PREFIX = "fernet:"
ENV_SECRET_KEY = "CONNECTOR_SECRET_KEY"
NEW_KEY_HINT = "make one with `connector secret-key new`"
# No `secret_key = ...` here: log lines mask what follows a key name and an equals sign.
WHERE_KEYS_GO = f'{ENV_SECRET_KEY}, or [database] secret_key in connector.toml ("file:PATH" or "env:NAME")'

_SEPARATORS = re.compile(r"[,\s]+")


def missing_key(connections: Sequence[str]) -> SecretKeyMissingError:
    """The one-line refusal to run OAuth connections without a key."""
    names = ", ".join(connections)
    which = f"connection {names} uses" if len(connections) == 1 else f"connections {names} use"
    return SecretKeyMissingError(
        f"{which} OAuth, whose rotated tokens are stored encrypted, and no secret key is set: {NEW_KEY_HINT} "
        f"and set it in {WHERE_KEYS_GO}"
    )


def new_key() -> str:
    """A fresh random Fernet key (32 bytes, URL-safe base64)."""
    return Fernet.generate_key().decode("ascii")


def parse_keys(text: str) -> tuple[str, ...]:
    """The keys of one setting, first (the sealing key) first. A value that is not a Fernet key
    is a `ValueError` saying which one by position, never what it holds."""
    keys = tuple(part for part in _SEPARATORS.split(text.strip()) if part)
    if not keys:
        raise ValueError(f"holds no key ({NEW_KEY_HINT})")
    for index, key in enumerate(keys, start=1):
        register_secret(key)
        try:
            Fernet(key)
        except ValueError:
            which = "it" if len(keys) == 1 else f"key {index} of {len(keys)}"
            raise ValueError(
                f"{which} is not a Fernet key (32 bytes in URL-safe base64, 44 characters; {NEW_KEY_HINT})"
            ) from None
    return keys


def is_sealed(value: str | None) -> bool:
    return value is not None and value.startswith(SEALED_PREFIX)


class TokenSealer:
    """Seals and opens stored token values with the operator's keys; see the module docstring."""

    def __init__(self, keys: Sequence[str] = ()) -> None:
        for key in keys:
            register_secret(key)
        self._count = len(keys)
        fernets = [Fernet(key) for key in keys]
        self._first = fernets[0] if fernets else None
        self._all = MultiFernet(fernets) if fernets else None

    @property
    def has_keys(self) -> bool:
        return self._count > 0

    def seal(self, value: str | None, connection: str) -> str | None:
        if value is None:
            return None
        if self._all is None:
            raise missing_key([connection])
        return SEALED_PREFIX + self._all.encrypt(value.encode("utf-8")).decode("ascii")

    def open(self, value: str | None, connection: str) -> str | None:
        """The token a stored value holds: a sealed one decrypted, a plain one as it is."""
        if value is None or not is_sealed(value):
            return value
        if self._all is None:
            raise TokensUnreadableError(connection, 0)
        try:
            token = value[len(SEALED_PREFIX) :].encode("ascii", errors="replace")
            plain = self._all.decrypt(token).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise TokensUnreadableError(connection, self._count) from None
        register_secret(plain)
        return plain

    def reseal(self, value: str | None, connection: str) -> str | None:
        """`value` sealed with the first key, or None when it already is (or is empty)."""
        if value is None or self._all is None or self._first is None:
            return None
        if not is_sealed(value):
            return self.seal(value, connection)
        token = value[len(SEALED_PREFIX) :].encode("ascii", errors="replace")
        try:
            self._first.decrypt(token)
            return None
        except InvalidToken:
            pass
        try:
            rotated = self._all.rotate(token)
        except InvalidToken:
            raise TokensUnreadableError(connection, self._count) from None
        return SEALED_PREFIX + rotated.decode("ascii")

    def __repr__(self) -> str:
        return f"<TokenSealer {self._count} key(s)>"


__all__ = [
    "ENV_SECRET_KEY",
    "SEALED_PREFIX",
    "SecretKeyMissingError",
    "TokenSealer",
    "TokensUnreadableError",
    "is_sealed",
    "missing_key",
    "new_key",
    "parse_keys",
]
