"""Settings of a Stripe connection (`[connections.NAME]` with `provider = "stripe"`)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from providers.base import ProviderSettings

# The version of the official OpenAPI document we test against (../shared/specs).
PINNED_API_VERSION = "2023-08-16"


class StripeSettings(ProviderSettings):
    """What a Stripe connection needs; see docs/providers/stripe.md for each key."""

    base_url: str = Field(default="https://api.stripe.com", min_length=1)
    api_key: SecretStr
    api_version: str = PINNED_API_VERSION
    # A connected account (Stripe Connect) to read and write on behalf of; None: the key's own.
    stripe_account: str | None = None
    page_size: int = Field(default=100, ge=1, le=100)
    # Stripe allows 100 operations/s live and 25/s in test mode; most endpoints 25 req/s.
    requests_per_second: int = Field(default=25, ge=1, le=100)
    max_in_flight: int = Field(default=5, ge=1)
    # Created-time filters reach this far back before the saved point (clock skew, late writes);
    # the store dedupes the overlap by remote id.
    cursor_overlap_seconds: int = Field(default=300, ge=0)
    # Stripe keeps events for 30 days; a cursor older than this (less a safety day) can no
    # longer be caught up from events, so the stream is read again in full.
    events_retention_days: int = Field(default=30, ge=2)
