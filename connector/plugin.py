"""The public plugin API: the one module a provider plugin imports from the connector.

A partner's plugin (and the scaffold `connector plugin new` writes) imports only from here;
its tests add `connector.plugin_testing`. Every other module of the connector, where these
names are defined included (`connector.http`, `connector.providers.base`,
`connector.mappings`, ...), is internal and may change in any release.

    the provider contract
        Provider            subclass it: name, kind, settings_model, mapping_file, streams,
                            actions, read_<stream>(cursor), apply_<action>(action)
        ProviderSettings    the settings model to subclass (base_url always, unknown keys refused)
        ProviderKind        "crm" | "ledger" | "gateway"
        Page                what read_<stream> yields: raw records and the cursor to save
        ActionResult        what apply_<action> returns: remote_id, the answer, replayed
        TokenStore          where rotated OAuth tokens go (given to the provider's __init__)
        secret_fields       the settings typed SecretStr

    HTTP: one ProviderHttp per connection
        ProviderHttp        rate limiter -> send -> retry -> response or a typed error
        RetryPolicy         attempts, time budget, backoff (429/5xx honouring Retry-After)
        RateLimiter, Limit  the provider's documented limits
        BearerAuth          a static API key
        OAuthTokenManager   OAuth2: rotated refresh token saved before use, one refresh on 401
        Paginator           has_more / get_next: CursorPaginator, LastIdPaginator,
                            PageNumberPaginator; iter_pages follows one, detects loops
        idempotency_header, idempotency_param, IdempotencyHook
                            where ProviderHttp puts an action's idempotency key
        decode_json         a response's JSON, or a typed error naming the provider
        dumps_exact         JSON with Decimals written digit for digit (no float)
        ROUND_TRIP          the key of a response's round-trip seconds in its `extensions`

    mapping transforms (a module listed in the mapping file's `imports`)
        transform           @transform("name") registers fn(value, ctx) for mapping files
        TransformContext    the raw record, the provider, the record's currency
        parse_iso_datetime, parse_dotnet_date
                            aware datetimes from ISO 8601 and "/Date(ms+zzzz)/" text

    the canonical model an adapter touches
        Action, ActionKind  a planned write: kind, target Ref, payload, idempotency_key
        Ref                 where a record lives in one system
        Money               exact Decimal amount and ISO 4217 currency
        money_sum, to_decimal, normalise_currency, currency_exponent

    errors (raise the one that tells the engine what to do; no secret in a message)
        ConnectorError
        ├── ConfigError                 the connection's settings cannot work
        ├── CurrencyMismatchError       Money of two currencies met
        └── ProviderError               provider, http_status, request_id, code
            ├── AuthenticationError
            ├── RateLimitError
            │   └── RateLimitDeferred   the wait is hours: stop, resume on a later run
            ├── InvalidRequestError
            │   ├── NotFoundError
            │   └── IdempotencyError
            ├── ProviderUnavailableError
            └── PaginationLoopError

The conformance kit is not here: it runs under pytest, which is a test-only dependency, and
importing it from this module would make pytest and respx runtime requirements of every
plugin. A plugin's tests import it from `connector.plugin_testing`.
"""

from connector.errors import (
    AuthenticationError,
    ConfigError,
    ConnectorError,
    CurrencyMismatchError,
    IdempotencyError,
    InvalidRequestError,
    NotFoundError,
    PaginationLoopError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitDeferred,
    RateLimitError,
)
from connector.http import (
    ROUND_TRIP,
    BearerAuth,
    CursorPaginator,
    IdempotencyHook,
    LastIdPaginator,
    Limit,
    OAuthTokenManager,
    PageNumberPaginator,
    Paginator,
    ProviderHttp,
    RateLimiter,
    RetryPolicy,
    decode_json,
    dumps_exact,
    idempotency_header,
    idempotency_param,
    iter_pages,
)
from connector.http.tokens import TokenStore
from connector.mappings.transforms import (
    TransformContext,
    parse_dotnet_date,
    parse_iso_datetime,
    transform,
)
from connector.model import Action, ActionKind, Ref
from connector.money import Money, currency_exponent, money_sum, normalise_currency, to_decimal
from connector.providers.base import (
    ActionResult,
    Page,
    Provider,
    ProviderKind,
    ProviderSettings,
    secret_fields,
)

__all__ = [
    "Action",
    "ActionKind",
    "ActionResult",
    "AuthenticationError",
    "BearerAuth",
    "ConfigError",
    "ConnectorError",
    "CurrencyMismatchError",
    "CursorPaginator",
    "IdempotencyError",
    "IdempotencyHook",
    "InvalidRequestError",
    "LastIdPaginator",
    "Limit",
    "Money",
    "NotFoundError",
    "OAuthTokenManager",
    "Page",
    "PageNumberPaginator",
    "PaginationLoopError",
    "Paginator",
    "Provider",
    "ProviderError",
    "ProviderHttp",
    "ProviderKind",
    "ProviderSettings",
    "ProviderUnavailableError",
    "ROUND_TRIP",
    "RateLimitDeferred",
    "RateLimitError",
    "RateLimiter",
    "Ref",
    "RetryPolicy",
    "TokenStore",
    "TransformContext",
    "currency_exponent",
    "decode_json",
    "dumps_exact",
    "idempotency_header",
    "idempotency_param",
    "iter_pages",
    "money_sum",
    "normalise_currency",
    "parse_dotnet_date",
    "parse_iso_datetime",
    "secret_fields",
    "to_decimal",
    "transform",
]
