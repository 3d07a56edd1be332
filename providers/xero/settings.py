"""Settings of a Xero connection (`[connections.NAME]` in connector.toml, `provider = "xero"`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, SecretStr

from connector.providers.base import ProviderSettings

XERO_API = "https://api.xero.com/api.xro/2.0"
XERO_TOKEN_URL = "https://identity.xero.com/connect/token"


class XeroSettings(ProviderSettings):
    """OAuth2 app credentials, the tenant, and the account payments are recorded against.

    Limits default to Xero's per-tenant ones (60 calls a minute, 5,000 a day, 5 in flight);
    lower them when other apps share the tenant's budget.
    """

    base_url: str = Field(default=XERO_API, min_length=1)  # the full prefix, `/api.xro/2.0` included
    tenant_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    refresh_token: SecretStr
    # Used as it is until it expires or Xero refuses it; only then is the refresh token spent.
    access_token: SecretStr | None = None
    access_token_expires_at: datetime | None = None
    token_url: str = Field(default=XERO_TOKEN_URL, min_length=1)
    # The Code of the bank (or clearing) account that recorded payments go to.
    payment_account_code: str | None = Field(default=None, min_length=1)
    # Gateway fees: booked as spend money from the payment (clearing) account to this expense
    # account, against this contact. Without `fee_account_code` no fee is booked.
    fee_account_code: str | None = Field(default=None, min_length=1)
    fee_contact_name: str = Field(default="Stripe", min_length=1)
    page_size: int = Field(default=1000, ge=1, le=1000)
    calls_per_minute: int = Field(default=60, ge=1)
    calls_per_day: int = Field(default=5000, ge=1)
    max_concurrent: int = Field(default=5, ge=1)

    def rate_account(self) -> str:
        """Xero counts its limits per tenant."""
        return f"tenant {self.tenant_id}"
