"""Settings of a HubSpot connection (`[connections.NAME]` with `provider = "hubspot"`).

Two ways to authenticate, exactly one of them:

- a private app: `access_token` alone, used as it is;
- an OAuth app: `client_id`, `client_secret`, `refresh_token` (and optionally `access_token`,
  used until HubSpot rejects it or it expires); the refresh token is rotated through the
  engine's token store.

Property names that we write (and the one holding our action key on notes and tasks) are
portal-specific custom properties, so they are settings with documented defaults.

`action_key_setup` says how a note or task is kept to one per action: by a property with
unique values (HubSpot refuses a second object with the same key at write time), checked and
if need be created through the properties API at first use ("ensure"), or trusted to be so
("assume"); or, for a portal whose key property cannot have unique values, by a search before
each create ("search", which HubSpot's lagging search index can defeat).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from connector.providers.base import ProviderSettings

HUBSPOT_API = "https://api.hubapi.com"
HUBSPOT_TOKEN_URL = "https://api.hubapi.com/oauth/v1/token"

# Canonical names an `update_properties` action may carry, and the setting naming each
# one's HubSpot property.
WRITABLE = {
    "amount_outstanding": "amount_outstanding_property",
    "payment_status": "payment_status_property",
    "days_overdue": "days_overdue_property",
    "last_reminder": "last_reminder_property",
}
# The streams whose records carry them (deals and CRM invoices).
WRITTEN_ON = ("deals", "invoices")

ActionKeySetup = Literal["ensure", "assume", "search"]

DEFAULT_PROPERTIES: dict[str, list[str]] = {
    "companies": ["name", "domain", "hs_parent_company_id", "hs_lastmodifieddate"],
    "contacts": ["firstname", "lastname", "email", "phone", "associatedcompanyid", "lastmodifieddate"],
    "deals": [
        "dealname",
        "amount",
        "deal_currency_code",
        "closedate",
        "createdate",
        "dealstage",
        "pipeline",
        "hs_lastmodifieddate",
    ],
    "invoices": [
        "hs_number",
        "hs_currency",
        "hs_invoice_date",
        "hs_due_date",
        "hs_invoice_status",
        "hs_amount_billed",
        "hs_balance_due",
        "hs_lastmodifieddate",
    ],
}


class HubSpotSettings(ProviderSettings):
    base_url: str = Field(default=HUBSPOT_API, min_length=1)

    # Private app ...
    access_token: SecretStr | None = None
    # ... or OAuth app (form-posted client credentials, rotated refresh token).
    client_id: str | None = None
    client_secret: SecretStr | None = None
    refresh_token: SecretStr | None = None
    token_url: str = HUBSPOT_TOKEN_URL

    # Rate limits. HubSpot: OAuth apps 100 requests / 10 s per account, private apps 190 / 10 s
    # (paid tiers); search 4 requests / s per token, counted as well in the general limit.
    requests_per_10_seconds: int | None = Field(default=None, ge=1)  # None: by auth form
    search_requests_per_second: int = Field(default=4, ge=1)
    daily_request_limit: int | None = Field(default=None, ge=1)

    # Paging. The search document allows up to 200 per page; the list endpoint 100.
    page_size: int = Field(default=100, ge=1, le=200)
    # Re-read this far behind the saved cursor: the search index trails writes by seconds.
    search_lookback_seconds: int = Field(default=60, ge=0)
    read_archived: bool = True
    read_associations: bool = True

    # Properties requested per stream (the mapping's own properties are always added).
    properties: dict[str, list[str]] = Field(default_factory=dict)

    # Custom properties we read or write.
    invoice_number_property: str = "ar_invoice_number"
    amount_outstanding_property: str = "ar_amount_outstanding"
    payment_status_property: str = "ar_payment_status"
    days_overdue_property: str = "ar_days_overdue"
    last_reminder_property: str = "ar_last_reminder"
    action_key_property: str = Field(default="ar_action_key", min_length=1)
    # How notes and tasks stay one per action (see the module docstring and
    # docs/providers/hubspot.md, Actions); the group a created key property goes in.
    action_key_setup: ActionKeySetup = "ensure"
    action_key_property_group: str = Field(default="ar_sync", min_length=1)
    # Collections states read from deals (disputed, promised, on a payment plan) and
    # companies (reminders paused).
    disputed_property: str = "ar_disputed"
    promise_to_pay_property: str = "ar_promise_to_pay_date"
    payment_plan_property: str = "ar_payment_plan"
    dunning_paused_property: str = "ar_dunning_paused"

    # Currency of deals that carry no deal_currency_code (single-currency portals).
    default_currency: str | None = Field(default=None, min_length=3, max_length=3)

    # Association types for notes and tasks created on a company (HubSpot-defined ids:
    # note -> company 190, task -> company 192).
    note_to_company_association_type: int = 190
    task_to_company_association_type: int = 192
    task_priority: str = "MEDIUM"

    @field_validator("properties")
    @classmethod
    def _known_streams(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(DEFAULT_PROPERTIES))
        if unknown:
            raise ValueError(f"properties: unknown stream {unknown[0]!r} (streams: {', '.join(DEFAULT_PROPERTIES)})")
        return value

    @model_validator(mode="after")
    def _one_auth_form(self) -> HubSpotSettings:
        oauth = {"client_id": self.client_id, "client_secret": self.client_secret, "refresh_token": self.refresh_token}
        given = [name for name, value in oauth.items() if value]
        if given and len(given) < len(oauth):
            missing = [name for name in oauth if name not in given]
            raise ValueError(
                f"an OAuth app needs client_id, client_secret and refresh_token; missing {', '.join(missing)} "
                "(or give only access_token for a private app)"
            )
        if not given and not self.access_token:
            raise ValueError(
                "give either access_token (private app) or client_id, client_secret and refresh_token (OAuth app)"
            )
        if self.default_currency:
            self.default_currency = self.default_currency.upper()
        self.mapping = _deep_merge(self._mapping_from_settings(), self.mapping)
        return self

    @property
    def oauth(self) -> bool:
        return self.refresh_token is not None

    @property
    def default_rate(self) -> int:
        if self.requests_per_10_seconds is not None:
            return self.requests_per_10_seconds
        return 100 if self.oauth else 190

    def rate_account(self) -> str:
        """HubSpot counts per portal and app; the settings do not name the portal, so the
        app's credential stands for it: a private app's token, or an OAuth app's client id and
        configured refresh token (hashed, never the secret itself)."""
        if self.oauth:
            assert self.refresh_token is not None
            secret, app = self.refresh_token.get_secret_value(), f"app {self.client_id} "
        else:
            assert self.access_token is not None
            secret, app = self.access_token.get_secret_value(), "private app "
        return app + hashlib.sha256(secret.encode()).hexdigest()[:16]

    def written_properties(self) -> dict[str, str]:
        """Canonical name -> the HubSpot property we write it to (see WRITABLE)."""
        return {name: str(getattr(self, setting)) for name, setting in WRITABLE.items()}

    def properties_for(self, stream: str) -> list[str]:
        wanted = list(DEFAULT_PROPERTIES[stream]) + list(self.properties.get(stream, []))
        if stream == "deals":
            wanted.append(self.invoice_number_property)
            wanted += [self.disputed_property, self.promise_to_pay_property, self.payment_plan_property]
        if stream == "companies":
            wanted.append(self.dunning_paused_property)
        if stream in WRITTEN_ON:
            # what we wrote, read back: the plan sends only what the CRM does not hold yet
            wanted += list(self.written_properties().values())
        return list(dict.fromkeys(wanted))

    def _mapping_from_settings(self) -> dict[str, Any]:
        """Mapping overrides that follow from settings; explicit `mapping` overrides win."""
        streams: dict[str, Any] = {
            "deals": {
                "hints": {
                    "invoice_number": f"properties.{self.invoice_number_property}",
                    "payment_plan": f"properties.{self.payment_plan_property}",
                },
                "fields": {
                    "disputed": {"path": f"properties.{self.disputed_property}"},
                    "promise_to_pay": {"path": f"properties.{self.promise_to_pay_property}"},
                },
            },
            "companies": {"fields": {"paused": {"path": f"properties.{self.dunning_paused_property}"}}},
        }
        # The values of the properties we write, as `crm_<canonical name>` hints in the
        # record's stored view (the plan compares them with what it would write).
        for stream in WRITTEN_ON:
            hints = streams.setdefault(stream, {}).setdefault("hints", {})
            for name, prop in self.written_properties().items():
                hints[f"crm_{name}"] = f"properties.{prop}"
        if self.default_currency:
            for stream in ("deals", "invoices"):
                streams.setdefault(stream, {})["currency"] = {"default": self.default_currency}
        return {"streams": streams}


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
