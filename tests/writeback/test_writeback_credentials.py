"""Which refusals hold a connection, and the fingerprint that tells a new credential."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import Config, load_config
from connector.errors import AuthenticationError
from connector.state.store import Store, open_store
from connector.writeback.credentials import credential_fingerprint, refusal_note

STRIPE_KEY = "sk_test_fingerprint_0123456789"


@pytest.mark.parametrize(
    ("status", "code", "refused"),
    [
        (401, None, True),  # Stripe's unknown key, Xero's and HubSpot's refused token
        (401, "api_key_expired", True),
        (400, "invalid_grant", True),  # the refresh token refused at the token endpoint
        (400, "BAD_REFRESH_TOKEN", True),  # HubSpot's word for it
        (403, None, False),  # a permission on one object or scope: other requests may pass
        (403, "MISSING_SCOPES", False),
        (None, None, False),
    ],
)
def test_only_a_refusal_of_the_whole_credential_holds_the_connection(
    status: int | None, code: str | None, refused: bool
) -> None:
    error = AuthenticationError("refused", provider="stripe", http_status=status, code=code)
    assert error.refuses_credential is refused


def configured(tmp_path: Path, key: str = STRIPE_KEY, page_size: int = 100) -> tuple[Config, Store]:
    path = tmp_path / "connector.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "state.db"}"\n\n'
        f'[connections.gateway]\nprovider = "stripe"\nbase_url = "http://127.0.0.1:1"\napi_key = "{key}"\n'
        f"page_size = {page_size}\n"
    )
    config = load_config(str(path))
    return config, open_store(config.database_url)


def test_the_fingerprint_changes_with_the_secret_and_never_shows_it(tmp_path: Path) -> None:
    config, store = configured(tmp_path)
    first = credential_fingerprint(config.connection("gateway"), store)
    same = credential_fingerprint(configured(tmp_path)[0].connection("gateway"), store)
    rotated = credential_fingerprint(
        configured(tmp_path, key="sk_test_rotated_9876543210")[0].connection("gateway"), store
    )

    assert first == same
    assert rotated != first
    assert STRIPE_KEY not in first and STRIPE_KEY[-8:] not in first


def test_the_fingerprint_changes_when_the_stored_tokens_change(tmp_path: Path) -> None:
    config, store = configured(tmp_path)
    connection = config.connection("gateway")
    before = credential_fingerprint(connection, store)
    store.save_tokens("gateway", {"access_token": "a-1", "refresh_token": "r-1"}, None)
    saved = credential_fingerprint(connection, store)
    store.forget_tokens("gateway")

    assert saved != before
    assert credential_fingerprint(connection, store) == before


def test_the_note_of_a_held_write_says_what_to_do(tmp_path: Path) -> None:
    config, _ = configured(tmp_path)
    error = AuthenticationError(
        "POST /v1/invoices/in_1/pay: Invalid API Key provided", provider="stripe", http_status=401
    )

    note = refusal_note(config.connection("gateway"), error)

    assert note.startswith("waits for a new credential: stripe refused the credential of connection gateway")
    assert "put a new credential in connections.gateway" in note
    assert "`connector actions retry --connection gateway`" in note
