"""Keep secrets out of logs, error messages and reprs.

Two nets: every secret value the configuration resolves (from `env:` and `file:` references,
the secret keys that seal stored tokens, and every token opened from the store) is registered
here and replaced wherever it appears, and well-known secret shapes (bearer tokens, Stripe
keys, passwords in URLs, token and key fields in query strings or JSON) are masked even when
nobody registered them.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + MASK),
    (re.compile(r"\b(sk|rk|pk|whsec)_(live|test)_[A-Za-z0-9]+"), r"\1_\2_" + MASK),
    (re.compile(r"\bwhsec_[A-Za-z0-9]+"), "whsec_" + MASK),
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@"), r"\1" + MASK + "@"),
    (
        re.compile(
            r"(?i)(\b(?:access_token|refresh_token|previous_refresh_token|client_secret|api_key|password|"
            r"secret|secret_key|code_verifier|id_token)\b[\"']?\s*[=:]\s*[\"']?)[^\"'&\s,}]+"
        ),
        r"\1" + MASK,
    ),
)

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value so that it is masked wherever it later appears."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str, *, shapes: bool = True) -> str:
    """`text` with every registered secret and every secret-shaped token masked.

    `shapes=False` masks only the registered secret values: for messages we compose ourselves
    from key names and type names (configuration errors), where `api_key: environment variable
    X is not set` names a key and would lose its first word to the `key: value` shape."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    if shapes:
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that renders the message once and masks secrets in it (and in any
    exception text), so no handler or formatter downstream sees the raw value."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
