import importlib.metadata

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
