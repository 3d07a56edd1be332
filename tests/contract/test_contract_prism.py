"""The real Xero and HubSpot adapters against Prism serving the providers' own OpenAPI
documents: every request they send must be one the document accepts.

A test fails on any 4xx from Prism, any Prism error body, and any `sl-violations` entry about
the request. Prism answers with the documents' examples (Xero) or seeded random data
(HubSpot); it proves request shapes, not reconciliation.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from connector.errors import InvalidRequestError, PaginationLoopError
from connector.model import Action, Ref
from connector.providers.hubspot import HubSpotProvider
from connector.providers.hubspot.settings import HubSpotSettings
from connector.providers.xero import XeroProvider
from connector.providers.xero.settings import XeroSettings
from support.prism import ExchangeRecorder, prism

pytestmark = pytest.mark.slow

FAR_FUTURE = datetime.now(UTC) + timedelta(days=3650)


@pytest.fixture(scope="module")
def xero_url():
    with prism("xero_accounting.yaml") as url:
        yield url


@pytest.fixture(scope="module")
def hubspot_url():
    with prism("hubspot-crm-objects.json", dynamic=True, seed=7) as url:
        yield url


@pytest.fixture
def recorder(monkeypatch):
    recorder = ExchangeRecorder()
    recorder.install(monkeypatch)
    return recorder


def xero(url: str) -> XeroProvider:
    settings = XeroSettings(
        base_url=url,
        tenant_id=str(uuid.UUID(int=1)),
        client_id="contract-client",
        client_secret="contract-secret",
        refresh_token="contract-refresh",
        access_token="contract-access",
        access_token_expires_at=FAR_FUTURE,
        payment_account_code="090",
        fee_account_code="404",
    )
    return XeroProvider(settings, connection="ledger")


def test_xero_read_streams_send_only_requests_the_document_accepts(xero_url, recorder):
    provider = xero(xero_url)
    since = "2019-11-01T00:00:00+00:00"
    for stream in provider.streams:
        for cursor in (None, since):
            pages = list(provider.read(stream, cursor if cursor is None else _xero_cursor(provider, stream, cursor)))
            assert pages, f"{stream} yielded no page"
    provider.close()
    assert len(recorder.exchanges) >= 2 * len(provider.streams)
    assert recorder.problems() == []


def _xero_cursor(provider: XeroProvider, stream: str, since: str) -> str:
    """The cursor the adapter itself saved after a first read (so incremental paths run)."""
    last = None
    for page in provider.read(stream, None):
        last = page.cursor or last
    return last or since


def test_xero_write_actions_send_only_requests_the_document_accepts(xero_url, recorder):
    provider = xero(xero_url)
    invoice_id = str(uuid.uuid4())
    # Prism answers GET /Invoices/{id} with the document's example invoice; pay it in its currency.
    example = provider.http.request("GET", f"/Invoices/{invoice_id}").json()["Invoices"][0]
    target = Ref(system="ledger", object_type="invoice", remote_id=invoice_id)
    payment = Action(
        connection="ledger",
        kind="record_payment",
        target=target,
        payload={"amount": "1.00", "currency": example["CurrencyCode"], "date": "2026-11-20", "reference": "INV-0042"},
    )
    try:
        assert provider.apply(payment).remote_id
    except InvalidRequestError as exc:
        # The document's example answer to PUT /Payments carries a validation error; the
        # adapter must read it as a refusal. What this test proves is the request's shape.
        assert "refused the payment" in str(exc)
    provider.apply(Action(connection="ledger", kind="send_invoice", target=target))
    fee = Action(connection="ledger", kind="record_fee",
                 target=Ref(system="gateway", object_type="payment", remote_id="ch_3Contract"),
                 payload={"amount": "0.59", "currency": example["CurrencyCode"], "date": "2026-11-20",
                          "reference": "ch_3Contract", "description": "gateway fee"})
    try:
        provider.apply(fee)
    except InvalidRequestError as exc:  # the document's example answer may carry validation errors
        assert "refused the fee" in str(exc)
    provider.close()
    methods = {(r.method, r.url.path) for r, _ in recorder.exchanges}
    assert ("PUT", "/Payments") in methods and ("POST", f"/Invoices/{invoice_id}/Email") in methods
    assert ("PUT", "/BankTransactions") in methods
    for request, _ in recorder.exchanges:
        if request.method in ("PUT", "POST"):
            assert request.headers.get("Idempotency-Key"), f"{request.method} {request.url.path} without Idempotency-Key"
    assert recorder.problems() == []


def hubspot(url: str) -> HubSpotProvider:
    # v4 association batch reads are not in the stored CRM objects document; the adapter's
    # association read is checked by its respx tests instead.
    settings = HubSpotSettings(base_url=url, access_token="contract-private-app-token", read_associations=False)
    return HubSpotProvider(settings, connection="crm")


def test_hubspot_read_streams_send_only_requests_the_document_accepts(hubspot_url, recorder):
    provider = hubspot(hubspot_url)
    for stream in provider.streams:
        try:
            for page, _ in zip(provider.read(stream, None), range(3), strict=False):
                assert page.stream == stream
        except PaginationLoopError:
            pass  # Prism's random `after` tokens may repeat; the requests sent are what counts here
    provider.close()
    assert any(r.url.path.endswith("/search") for r, _ in recorder.exchanges)
    assert recorder.problems() == []


def test_hubspot_write_actions_send_only_requests_the_document_accepts(hubspot_url, recorder):
    provider = hubspot(hubspot_url)
    deal = Ref(system="crm", object_type="deal", remote_id="1001")
    provider.apply(
        Action(connection="crm", kind="update_properties", target=deal,
               payload={"properties": {"amount_outstanding": "120.50", "payment_status": "partially_paid"}})
    )
    for kind in ("create_note", "create_task"):
        provider.apply(
            Action(connection="crm", kind=kind,
                   payload={"company_id": "2002", "body": "Reminder: INV-0042 is 7 days overdue", "subject": "Chase INV-0042"})
        )
    provider.close()
    methods = [(r.method, r.url.path) for r, _ in recorder.exchanges]
    assert ("PATCH", "/crm/v3/objects/deals/1001") in methods
    for object_type in ("notes", "tasks"):
        # looked up by our key first, then created (Prism's random results never carry the key)
        assert ("POST", f"/crm/v3/objects/{object_type}/search") in methods
        assert ("POST", f"/crm/v3/objects/{object_type}") in methods
    assert recorder.problems() == []
