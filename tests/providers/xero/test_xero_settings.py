import pytest
from pydantic import SecretStr, ValidationError

from connector.providers.base import secret_fields
from connector.providers.xero import XeroProvider, XeroSettings

REQUIRED = {"tenant_id": "t-1", "client_id": "c-1", "client_secret": "s-1", "refresh_token": "r-1"}


def test_defaults_point_at_xero_with_its_documented_limits():
    settings = XeroSettings(**REQUIRED)
    assert settings.base_url == "https://api.xero.com/api.xro/2.0"
    assert settings.token_url == "https://identity.xero.com/connect/token"
    assert (settings.page_size, settings.calls_per_minute, settings.calls_per_day, settings.max_concurrent) == (
        1000,
        60,
        5000,
        5,
    )
    assert settings.payment_account_code is None


def test_secrets_are_typed_as_secrets_and_hidden_in_reprs():
    assert set(secret_fields(XeroSettings)) == {"client_secret", "refresh_token", "access_token", "webhook_secret"}
    settings = XeroSettings(**REQUIRED, access_token="at-very-secret")
    assert isinstance(settings.client_secret, SecretStr)
    assert "at-very-secret" not in repr(settings) and "s-1" not in repr(XeroProvider(settings))


@pytest.mark.parametrize("bad", [{"page_size": 1001}, {"page_size": 0}, {"api_key": "x"}, {"tenant_id": ""}])
def test_bad_or_unknown_settings_are_refused(bad):
    with pytest.raises(ValidationError):
        XeroSettings(**{**REQUIRED, **bad})


def test_the_tenant_is_sent_on_every_request_but_no_credential_is_a_default_header():
    provider = XeroProvider(XeroSettings(**REQUIRED))
    headers = provider.http._client.headers  # noqa: SLF001 - what every request starts with
    assert headers["xero-tenant-id"] == "t-1"
    assert "Authorization" not in headers
    provider.close()
