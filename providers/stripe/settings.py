"""Settings of a Stripe connection (`[connections.NAME]` with `provider = "stripe"`)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

from pydantic import Field, SecretStr

from connector.providers.base import ProviderSettings

# The version of the official OpenAPI document we test against (tests/contract/specs/).
PINNED_API_VERSION = "2023-08-16"


class StripeSettings(ProviderSettings):
    """What a Stripe connection needs; see docs/providers/stripe.md for each key."""

    base_url: str = Field(default="https://api.stripe.com", min_length=1)
    api_key: SecretStr
    api_version: str = PINNED_API_VERSION
    # A connected account (Stripe Connect) to read and write on behalf of; None: the key's own.
    stripe_account: str | None = None
    page_size: int = Field(default=100, ge=1, le=100)
    # Stripe allows 100 requests/s per account live and 25/s in test mode (sandbox); None
    # picks by the key (sk_live_/rk_live_: 100, otherwise 25).
    requests_per_second: int | None = Field(default=None, ge=1)
    # Each API operation (GET /v1/invoices, GET /v1/events, ...) also has its own limit of
    # 25 requests/s unless Stripe documents another; the windows of a full pull share it.
    endpoint_requests_per_second: int = Field(default=25, ge=1)
    max_in_flight: int = Field(default=8, ge=1)
    # A full pull (first run, `--full`, or a cursor past event retention) reads at most this
    # many windows of the created range side by side, split as its pages arrive (1: one
    # sequential, resumable list).
    full_pull_windows: int = Field(default=8, ge=1, le=64)
    # Objects created before this (a date or date-time, UTC if no zone) are not read by a full
    # pull. None: everything, however old.
    start_date: datetime | date | None = None
    # Created-time filters reach this far back before the saved point (clock skew, late writes);
    # the store dedupes the overlap by remote id.
    cursor_overlap_seconds: int = Field(default=300, ge=0)
    # Stripe keeps events for 30 days; a cursor older than this (less a safety day) can no
    # longer be caught up from events, so the stream is read again in full.
    events_retention_days: int = Field(default=30, ge=2)

    @property
    def live(self) -> bool:
        return self.api_key.get_secret_value().startswith(("sk_live_", "rk_live_"))

    def rate_account(self) -> str:
        """Stripe counts per account and mode: the connected account when one is named, else
        the key's own, known here by a hash of the key (never the key itself)."""
        mode = "live" if self.live else "test"
        if self.stripe_account:
            return f"account {self.stripe_account} {mode}"
        return f"key {hashlib.sha256(self.api_key.get_secret_value().encode()).hexdigest()[:16]} {mode}"

    def account_requests_per_second(self) -> int:
        if self.requests_per_second is not None:
            return self.requests_per_second
        return 100 if self.live else 25

    def start_epoch(self) -> int | None:
        if self.start_date is None:
            return None
        value = self.start_date
        if not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day, tzinfo=UTC)
        elif value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp())
