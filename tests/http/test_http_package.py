import importlib.metadata
import ssl

import connector.http
from connector.http import build_client, user_agent


def test_exported_names_are_sorted_and_all_resolve() -> None:
    assert connector.http.__all__ == sorted(connector.http.__all__)
    for name in connector.http.__all__:
        assert getattr(connector.http, name) is not None


def test_user_agent_names_the_installed_version_or_zero(monkeypatch) -> None:
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert user_agent() == "ar-connector/0.0.0"


def test_build_client_sets_base_url_timeout_and_headers() -> None:
    client = build_client(base_url="https://api.example.test", timeout=5, headers={"Stripe-Version": "2023-08-16"})
    assert str(client.base_url) == "https://api.example.test"
    assert client.timeout.read == 5
    assert client.headers["Stripe-Version"] == "2023-08-16"
    assert client.headers["User-Agent"].startswith("ar-connector/")


def test_every_client_verifies_peers_with_one_shared_tls_context() -> None:
    """Each command opens a client per connection: they share one TLS context (making one
    reads the whole CA bundle), which still checks the certificate and the host name."""
    first = build_client(base_url="https://api.stripe.com")
    second = build_client(base_url="https://api.xero.com")
    contexts = [client._transport._pool._ssl_context for client in (first, second)]  # type: ignore[attr-defined]
    assert contexts[0] is contexts[1]
    context = contexts[0]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # the roots are loaded
