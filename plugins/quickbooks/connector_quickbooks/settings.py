"""Settings of a QuickBooks Online connection (`[connections.NAME]`, `provider = "quickbooks"`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, SecretStr, field_validator

from connector.plugin import ProviderSettings, normalise_currency

QBO_API = "https://quickbooks.api.intuit.com"
QBO_SANDBOX_API = "https://sandbox-quickbooks.api.intuit.com"
QBO_TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
MINOR_VERSION = 75


class QuickBooksSettings(ProviderSettings):
    """OAuth2 app credentials, the company (realm), and the account payments are deposited to.

    Limits default to Intuit's per-realm ones (500 requests a minute, 10 in flight); lower
    them when other apps share the company's budget.
    """

    # The host only: paths are `/v3/company/{realm_id}/...` (Intuit's sandbox companies live
    # at https://sandbox-quickbooks.api.intuit.com).
    base_url: str = Field(default=QBO_API, min_length=1)
    realm_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    refresh_token: SecretStr
    # Used as it is until it expires (1 hour) or QuickBooks refuses it.
    access_token: SecretStr | None = None
    access_token_expires_at: datetime | None = None
    token_url: str = Field(default=QBO_TOKEN_URL, min_length=1)
    # Pinned: Intuit retires old minor versions; 75 is the base every request asks for.
    minor_version: int = Field(default=MINOR_VERSION, ge=75)
    # DepositToAccountRef of recorded payments (a bank or Undeposited Funds account Id);
    # without it QuickBooks puts them in Undeposited Funds.
    payment_account_id: str | None = Field(default=None, min_length=1)
    # The company's home currency, used for records QuickBooks reports deleted (CDC gives only
    # their Id). Read from the company's Preferences when not set.
    home_currency: str | None = None
    page_size: int = Field(default=500, ge=1, le=1000)  # MAXRESULTS, at most 1000
    calls_per_minute: int = Field(default=500, ge=1)
    max_concurrent: int = Field(default=10, ge=1)
    # Deletes come from Change Data Capture, asked from the saved cursor less this overlap.
    cdc_overlap_seconds: int = Field(default=300, ge=0)
    # QuickBooks asks for 60 s after a 429 and usually sends no Retry-After.
    throttle_wait_seconds: float = Field(default=60.0, ge=0)

    def rate_account(self) -> str:
        """Intuit counts its limits per company (realm), whichever app token calls it."""
        return f"realm {self.realm_id}"

    @field_validator("home_currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        return None if value is None else normalise_currency(value)
