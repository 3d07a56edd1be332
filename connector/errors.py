"""Every error the connector raises on purpose, in one tree.

    ConnectorError                      exit 3 unless a subclass says otherwise
    ├── UsageError                      exit 2: the user asked for something we cannot do
    │   └── ConfigError                 exit 2: connector.toml or the environment is wrong
    │       └── SecretKeyMissingError   OAuth tokens to store and no key to seal them
    ├── CurrencyMismatchError           arithmetic or comparison across two currencies
    ├── PluginError                     a provider plugin failed to load or to validate
    ├── MappingError                    a raw record could not be mapped (provider, id, field)
    ├── ReconcileInvariantError         a decision would over-allocate or mix currencies (a bug)
    ├── StateError                      exit 3: the state database
    │   ├── DatabaseUnavailableError    cannot connect
    │   ├── SchemaOutdatedError         exit 2: run `connector db upgrade`
    │   ├── SchemaTooNewError           exit 2: the database belongs to a newer release
    │   └── TokensUnreadableError       stored tokens no configured key opens
    └── ProviderError                   exit 3: provider, http_status, request_id, code
        ├── AuthenticationError         401/403 or a refused token grant: fix the credentials
        │                               (`refuses_credential`: the whole credential, not one object)
        ├── RateLimitError              429 after the retry budget (retry_after seconds)
        │   └── RateLimitDeferred       the wait is hours (a daily limit): stop, resume later
        ├── InvalidRequestError         other 4xx: our request is wrong, retrying will not help
        │   ├── NotFoundError           404
        │   └── IdempotencyError        the key was reused with other parameters
        ├── ProviderUnavailableError    5xx, timeouts, connection errors after the retry budget
        └── PaginationLoopError         the provider handed back a cursor we already followed

Messages never carry a secret: provider errors keep the provider's own message and
request id, not our request headers. `connector.cli` maps these classes to exit codes in one
place (`exit_code` below).
"""

from __future__ import annotations

from typing import ClassVar

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_FAILURE = 3


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""

    exit_code: ClassVar[int] = EXIT_FAILURE


class UsageError(ConnectorError):
    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """Bad configuration. `where` names the file, connection and key when known."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class ReconcileInvariantError(ConnectorError):
    """A reconciliation decision would break an invariant (over-allocation, mixed currencies).
    A bug, never data: the matcher checks every allocation before it makes it."""


class CurrencyMismatchError(ConnectorError, ValueError):
    """Two amounts of different currencies met in one operation."""

    def __init__(self, left: str, right: str, operation: str) -> None:
        self.currencies = (left, right)
        super().__init__(f"cannot {operation} {left} and {right} amounts")


class PluginError(ConnectorError):
    def __init__(self, plugin: str, reason: str) -> None:
        self.plugin = plugin
        self.reason = reason
        super().__init__(f"provider plugin {plugin!r}: {reason}")


class MappingError(ConnectorError):
    """A raw record that cannot become a canonical record."""

    def __init__(self, provider: str, object_type: str, object_id: str | None, field: str, reason: str) -> None:
        self.provider = provider
        self.object_type = object_type
        self.object_id = object_id
        self.field = field
        self.reason = reason
        ident = object_id if object_id is not None else "?"
        super().__init__(f"{provider} {object_type} {ident}: field {field!r}: {reason}")


class StateError(ConnectorError):
    pass


class DatabaseUnavailableError(StateError):
    pass


class SchemaOutdatedError(StateError):
    exit_code = EXIT_USAGE


class SchemaTooNewError(StateError):
    exit_code = EXIT_USAGE


class ProviderError(ConnectorError):
    """An answer (or the lack of one) from a provider that we cannot work with."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        http_status: int | None = None,
        request_id: str | None = None,
        code: str | None = None,
    ) -> None:
        self.provider = provider
        self.http_status = http_status
        self.request_id = request_id
        self.code = code
        self.message = message
        parts = [f"{provider}: {message}"]
        if http_status is not None:
            parts.append(f"HTTP {http_status}")
        if code:
            parts.append(f"code {code}")
        if request_id:
            parts.append(f"request id {request_id}")
        super().__init__(" | ".join(parts))


# What a provider answers when the credential itself is refused, whatever the request: an
# OAuth grant refused at the token endpoint (RFC 6749, and HubSpot's own words for it), a
# client refused there, Stripe's expired or unknown API key.
CREDENTIAL_REFUSED_CODES = frozenset(
    {"invalid_grant", "invalid_client", "unauthorized_client", "BAD_REFRESH_TOKEN", "BAD_CLIENT", "api_key_expired"}
)


class AuthenticationError(ProviderError):
    @property
    def refuses_credential(self) -> bool:
        """The provider refused the credential as a whole (a 401, or a refused grant or key),
        not one request: every later request with it would be refused too. A 403 names a
        permission on one object or scope (HubSpot's missing scopes, a Stripe restricted key):
        other requests may pass, so it is not a refused credential unless its code says so."""
        return self.http_status == 401 or (self.code or "") in CREDENTIAL_REFUSED_CODES


class RateLimitError(ProviderError):
    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        provider: str,
        http_status: int | None = None,
        request_id: str | None = None,
        code: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, provider=provider, http_status=http_status, request_id=request_id, code=code)


class RateLimitDeferred(RateLimitError):
    """The provider asks us to wait longer than a run should sleep; resume on a later run."""


class InvalidRequestError(ProviderError):
    pass


class StopRequested(ConnectorError):
    """The process is stopping (SIGTERM): a request still waiting for its rate-limit slot was
    not sent, and will be on a later run."""


class NotFoundError(InvalidRequestError):
    pass


class IdempotencyError(InvalidRequestError):
    pass


class ProviderUnavailableError(ProviderError):
    pass


class PaginationLoopError(ProviderError):
    pass


def exit_code(exc: BaseException) -> int:
    """The process exit code for an error that reached the CLI."""
    if isinstance(exc, ConnectorError):
        return exc.exit_code
    return EXIT_FAILURE


def first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]


class SecretKeyMissingError(ConfigError):
    """OAuth tokens would have to be stored and no key is set to seal them (exit 2)."""


class TokensUnreadableError(StateError):
    """Stored tokens that none of the configured keys opens (exit 3)."""

    def __init__(self, connection: str, keys: int) -> None:
        self.connection = connection
        why = (
            "with the configured key(s)"
            if keys
            else "without a key: none is set (CONNECTOR_SECRET_KEY or [database] secret_key)"
        )
        super().__init__(
            f"tokens of connection {connection} cannot be decrypted {why}: restore the key they were sealed with, "
            f"or re-authorise the connection (its new refresh_token in the config, then "
            f"`connector tokens forget {connection}`)"
        )
