"""The one way to make an `httpx.Client` for a provider: our User-Agent, a keep-alive pool,
a timeout, and a `transport` seam so tests and sandboxes can answer without a network."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping
from importlib import metadata

import httpx

DISTRIBUTION = "ar-connector"

# Adapters fetch windows from a thread pool; the pool must hold at least that many sockets
# or threads queue inside httpx instead of in our rate limiter, where waits are visible.
POOL_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=30.0)


def user_agent() -> str:
    """`ar-connector/<installed version>`, or `ar-connector/0.0.0` when run from a checkout."""
    try:
        version = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    return f"{DISTRIBUTION}/{version}"


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS context (certifi's roots, or SSL_CERT_FILE / SSL_CERT_DIR as the
    process started with them), shared by every client: making one reads the whole CA bundle
    (20-40 ms), which each command paid again for every connection it opened. An
    `ssl.SSLContext` may be shared by threads and clients."""
    return httpx.create_ssl_context()


def build_client(
    *,
    base_url: str,
    timeout: float = 30,
    headers: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """A thread-safe `httpx.Client` for one provider.

    `headers` are sent on every request (e.g. `Stripe-Version`, `xero-tenant-id`); they must
    not hold secrets: credentials belong to the `auth` of `ProviderHttp`, which keeps them out
    of logs. `transport` replaces the network (`httpx.MockTransport`, respx, a sandbox).
    Redirects are not followed: a provider API that redirects is a configuration error.
    """
    all_headers = {"User-Agent": user_agent(), "Accept": "application/json"}
    all_headers.update(headers or {})
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout),
        headers=all_headers,
        limits=POOL_LIMITS,
        transport=transport,
        verify=tls_context(),
        follow_redirects=False,
    )
