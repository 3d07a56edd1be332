"""The shared HTTP layer every provider adapter uses: one `ProviderHttp` per connection.

    ProviderHttp     rate limiter -> send -> classify -> retry -> response or typed error
    build_client     the httpx.Client behind it (User-Agent, pool, timeout, transport seam)
    RetryPolicy      attempts, time budget, backoff, deferral threshold; retry_policy() builds
                     the tenacity Retrying from it
    RateLimiter      named buckets of (requests, seconds) limits plus max in flight
    BearerAuth       a static API key;  OAuthTokenManager  OAuth2 with rotated refresh tokens
    TokenStore       where rotated tokens are kept (the state store implements it)
    Paginator & co   has_more / get_next; iter_pages follows them and detects loops

Errors raised are those of `connector.errors`; no secret appears in them or in our logs.
"""

from connector.http.auth import BearerAuth, OAuthTokenManager
from connector.http.client import build_client, user_agent
from connector.http.jsonbody import dumps_exact
from connector.http.pagination import (
    CursorPaginator,
    LastIdPaginator,
    PageNumberPaginator,
    Paginator,
    iter_pages,
)
from connector.http.provider_http import (
    ROUND_TRIP,
    IdempotencyHook,
    ProviderHttp,
    ResponseObserver,
    idempotency_header,
    idempotency_param,
    observe_responses,
)
from connector.http.ratelimit import Limit, RateLimiter
from connector.http.responses import (
    DEFAULT_REQUEST_ID_HEADERS,
    decode_json,
    parse_retry_after,
)
from connector.http.retry import RetryPolicy, retry_policy
from connector.http.tokens import GuardedTokenStore, TokenStore

__all__ = [
    "BearerAuth",
    "CursorPaginator",
    "DEFAULT_REQUEST_ID_HEADERS",
    "GuardedTokenStore",
    "IdempotencyHook",
    "LastIdPaginator",
    "Limit",
    "OAuthTokenManager",
    "PageNumberPaginator",
    "Paginator",
    "ProviderHttp",
    "ROUND_TRIP",
    "RateLimiter",
    "ResponseObserver",
    "RetryPolicy",
    "TokenStore",
    "build_client",
    "decode_json",
    "dumps_exact",
    "idempotency_header",
    "idempotency_param",
    "iter_pages",
    "observe_responses",
    "parse_retry_after",
    "retry_policy",
    "user_agent",
]
