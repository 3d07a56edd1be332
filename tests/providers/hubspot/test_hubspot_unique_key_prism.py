"""The requests of the unique action key, held against HubSpot's own CRM objects document by
Prism (the vendored copy in tests/contract/specs/): the create of a note or task with its key
and associations, and the read of the object holding a key (`?idProperty=`, then with
`archived=true`). The properties API (`/crm/v3/properties/...`) is in another HubSpot
document that is not vendored: `action_key_setup = "assume"` leaves it out here."""

from __future__ import annotations

import pytest

from connector.model import Action
from connector.providers.hubspot import HubSpotProvider, HubSpotSettings
from support.prism import ExchangeRecorder, prism

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def objects_url():
    with prism("hubspot-crm-objects.json", dynamic=True, seed=11) as url:
        yield url


def test_the_create_and_the_read_by_key_are_requests_the_document_accepts(objects_url, monkeypatch):
    recorder = ExchangeRecorder()
    recorder.install(monkeypatch)
    settings = HubSpotSettings(
        base_url=objects_url, access_token="contract-private-app-token", action_key_setup="assume"
    )
    provider = HubSpotProvider(settings, connection="crm", rate_limiter=None)
    payloads = {
        "create_note": {"company_id": "2002", "body": "Reminder: INV-0042 is 7 days overdue", "subject": "Chase"},
        "create_task": {"company_id": "2002", "subject": "Call about INV-0042", "due": "2026-11-20"},
    }
    for kind, payload in payloads.items():
        provider.apply(Action(connection="crm", kind=kind, payload=payload))
    # Prism's random object never carries our key: the read finds nothing, and tries archived too.
    assert provider._read_by_key("notes", "ar-0123456789abcdef") is None
    provider.close()
    sent = [(r.method, r.url.path, dict(r.url.params)) for r, _ in recorder.exchanges]
    assert sent == [
        ("POST", "/crm/v3/objects/notes", {}),
        ("POST", "/crm/v3/objects/tasks", {}),
        (
            "GET",
            "/crm/v3/objects/notes/ar-0123456789abcdef",
            {"idProperty": "ar_action_key", "properties": "ar_action_key"},
        ),
        (
            "GET",
            "/crm/v3/objects/notes/ar-0123456789abcdef",
            {"idProperty": "ar_action_key", "properties": "ar_action_key", "archived": "true"},
        ),
    ]
    assert recorder.problems() == []
