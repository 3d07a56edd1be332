"""The real Xero and HubSpot adapters against Prism serving the providers' own OpenAPI
documents (the copies in tests/contract/specs/): every request they send must be one the
document accepts.

A test fails on any 4xx from Prism, any Prism error body, and any `sl-violations` entry about
the request. Prism answers with the documents' examples (Xero) or seeded random data
(HubSpot); it proves request shapes, not reconciliation. HubSpot's adapter calls two
documents (CRM objects v3 and associations v4); Prism serves one per port, so its Prism serves
a temporary merge of the two (`merge_documents`).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from connector.errors import InvalidRequestError, PaginationLoopError
from connector.model import Action, Ref
from connector.providers.hubspot import HubSpotProvider
from connector.providers.hubspot.settings import HubSpotSettings
from connector.providers.xero import XeroProvider
from connector.providers.xero.settings import XeroSettings
from support.prism import ExchangeRecorder, merge_documents, prism

pytestmark = pytest.mark.slow

FAR_FUTURE = datetime.now(UTC) + timedelta(days=3650)


@pytest.fixture(scope="module")
def xero_url():
    with prism("xero_accounting.yaml") as url:
        yield url


# The deal/invoice -> company batch read (`read_associations`) is in the v4 associations
# document, the rest in the CRM objects document: one Prism serves both, merged at test time.
HUBSPOT_DOCUMENTS = ("hubspot-crm-objects.json", "hubspot-crm-associations-v4.json")
V4_BATCH_READ = "/crm/v4/associations/{}/companies/batch/read"


@pytest.fixture(scope="module")
def hubspot_url(tmp_path_factory):
    merged = merge_documents(HUBSPOT_DOCUMENTS, tmp_path_factory.mktemp("hubspot-specs") / "hubspot-crm.json")
    with prism(merged, dynamic=True, seed=7) as url:
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
        client_secret=SecretStr("contract-secret"),
        refresh_token=SecretStr("contract-refresh"),
        access_token=SecretStr("contract-access"),
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
    fee = Action(
        connection="ledger",
        kind="record_fee",
        target=Ref(system="gateway", object_type="payment", remote_id="ch_3Contract"),
        payload={
            "amount": "0.59",
            "currency": example["CurrencyCode"],
            "date": "2026-11-20",
            "reference": "ch_3Contract",
            "description": "gateway fee",
        },
    )
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
            assert request.headers.get("Idempotency-Key"), (
                f"{request.method} {request.url.path} without Idempotency-Key"
            )
    assert recorder.problems() == []


def outside_batches(monkeypatch) -> None:
    """Prism answers GET /Payments/{id} with the document's example, a payment of a batch
    payment, which Xero deletes only whole (the adapter refuses it before sending anything).
    Between Prism and the adapter (after the recorder), drop the batch from that answer so
    the delete is sent; nothing else changes."""
    inner = httpx.HTTPTransport.handle_request

    def handle_request(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        response = inner(transport, request)
        if request.method != "GET" or not request.url.path.startswith("/Payments/") or response.status_code != 200:
            return response
        answer = json.loads(response.read())
        for payment in answer.get("Payments") or []:
            payment.pop("BatchPaymentID", None)
            payment.pop("BatchPayment", None)
        return httpx.Response(200, json=answer, request=request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", handle_request)


def test_xero_reversals_send_only_requests_the_document_accepts(xero_url, recorder, monkeypatch):
    outside_batches(monkeypatch)
    provider = xero(xero_url)
    payment_id, fee_id = str(uuid.uuid4()), str(uuid.uuid4())
    deleted = provider.apply(
        Action(
            connection="ledger",
            kind="delete_payment",
            target=Ref(system="ledger", object_type="payment", remote_id=payment_id),
            payload={"reverses": "act-payment"},
        )
    )
    assert deleted.remote_id == payment_id and not deleted.replayed  # the example answer is DELETED
    fee = Action(
        connection="ledger",
        kind="delete_fee",
        target=Ref(system="ledger", object_type="bank_transaction", remote_id=fee_id),
        payload={"reverses": "act-fee"},
    )
    try:
        provider.apply(fee)
    except InvalidRequestError as exc:  # the document's example answer is AUTHORISED, not DELETED
        assert "Xero refused to delete bank transaction" in str(exc)
    provider.close()
    sent = [(r.method, r.url.path) for r, _ in recorder.exchanges]
    assert ("POST", f"/Payments/{payment_id}") in sent and ("POST", f"/BankTransactions/{fee_id}") in sent
    for request, _ in recorder.exchanges:
        if request.method == "POST":
            assert request.headers.get("Idempotency-Key"), f"POST {request.url.path} without Idempotency-Key"
    assert recorder.problems() == []


def hubspot(url: str) -> HubSpotProvider:
    # read_associations is on (the default): deals and invoices also send the v4 batch read.
    # Prism serves the CRM objects and associations documents, not the properties API.
    settings = HubSpotSettings(
        base_url=url, access_token=SecretStr("contract-private-app-token"), action_key_setup="assume"
    )
    assert settings.read_associations
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
    sent = {r.url.path for r, _ in recorder.exchanges}
    assert {V4_BATCH_READ.format("deals"), V4_BATCH_READ.format("invoices")} <= sent
    assert recorder.problems() == []


def test_hubspot_write_actions_send_only_requests_the_document_accepts(hubspot_url, recorder):
    provider = hubspot(hubspot_url)
    deal = Ref(system="crm", object_type="deal", remote_id="1001")
    provider.apply(
        Action(
            connection="crm",
            kind="update_properties",
            target=deal,
            payload={"properties": {"amount_outstanding": "120.50", "payment_status": "partially_paid"}},
        )
    )
    for kind in ("create_note", "create_task"):
        provider.apply(
            Action(
                connection="crm",
                kind=kind,
                payload={
                    "company_id": "2002",
                    "body": "Reminder: INV-0042 is 7 days overdue",
                    "subject": "Chase INV-0042",
                },
            )
        )
    provider.close()
    methods = [(r.method, r.url.path) for r, _ in recorder.exchanges]
    assert ("PATCH", "/crm/v3/objects/deals/1001") in methods
    for object_type in ("notes", "tasks"):
        # created with our key in a property with unique values: no search before
        assert ("POST", f"/crm/v3/objects/{object_type}") in methods
        assert ("POST", f"/crm/v3/objects/{object_type}/search") not in methods
    assert recorder.problems() == []


def pin_association_sources(monkeypatch) -> list[tuple[list[str], dict]]:
    """Prism has no state: its random batch-read answer cannot name the records its random
    search answer returned, so the adapter would find nothing to attach. Between Prism and the
    adapter (after the recorder, which keeps Prism's own answer and headers), point each
    result's `from.id` at the ids the request asked for (result i -> input i mod n); nothing
    else in the answer changes and it keeps the document's shape (a string for a string).
    Returns (ids asked for, answer the adapter saw) per batch read, in order."""
    seen: list[tuple[list[str], dict]] = []
    inner = httpx.HTTPTransport.handle_request

    def handle_request(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        response = inner(transport, request)
        path = request.url.path
        batch_read = path.startswith("/crm/v4/associations/") and path.endswith("/batch/read")
        if not batch_read or response.status_code != 200:
            return response
        asked = [str(item["id"]) for item in json.loads(request.content)["inputs"]]
        answer = response.json()
        for n, result in enumerate(answer.get("results") or []):
            result["from"] = {**(result.get("from") or {}), "id": asked[n % len(asked)]}
        seen.append((asked, answer))
        headers = [
            (k, v)
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "content-type", "content-encoding", "transfer-encoding")
        ]
        return httpx.Response(200, headers=headers, json=answer, request=request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", handle_request)
    return seen


@pytest.mark.parametrize("stream", ["deals", "invoices"])
def test_hubspot_reads_companies_through_the_v4_associations_document(hubspot_url, recorder, monkeypatch, stream):
    answers = pin_association_sources(monkeypatch)
    provider = hubspot(hubspot_url)
    pages = []
    try:
        for page, _ in zip(provider.read(stream, None), range(3), strict=False):
            pages.append(page)
    except PaginationLoopError:
        pass  # Prism's random `after` tokens may repeat; the pages read so far are what counts
    provider.close()

    # The requests: one v4 batch read per page of search results, asking for exactly that
    # page's records, each valid per the associations document (no `sl-violations` on the
    # request, no 4xx, no Prism error).
    assert recorder.problems() == []
    batch_reads = [r for r, _ in recorder.exchanges if r.url.path == V4_BATCH_READ.format(stream)]
    searched = [page for page in pages if page.records]
    assert searched, f"Prism's search answer for {stream} had no records"
    assert len(batch_reads) == len(answers) >= len(searched)
    for page, (asked, _) in zip(searched, answers, strict=False):
        assert asked == [str(record["id"]) for record in page.records]

    # The answer is applied: each record carries the companies the answer gave it, primary
    # first, where the list endpoint would put them (`associations.companies.results`).
    singular = stream.rstrip("s")
    attached = 0
    for page, (_, answer) in zip(searched, answers, strict=False):
        expected: dict[str, list[tuple[bool, str]]] = {}
        for result in answer.get("results") or []:
            for to in result.get("to") or []:
                primary = any((t.get("label") or "").lower() == "primary" for t in to.get("associationTypes") or [])
                expected.setdefault(result["from"]["id"], []).append((not primary, str(to["toObjectId"])))
        for record in page.records:
            want = [
                {"id": company, "type": f"{singular}_to_company"}
                for _, company in sorted(expected.get(str(record["id"]), []))
            ]
            got = ((record.get("associations") or {}).get("companies") or {}).get("results") or []
            assert got == want, f"{stream} {record['id']}"
            attached += bool(got)
    assert attached, "no record received a company: the association answer was not applied"


def test_a_request_breaking_the_associations_document_is_caught(hubspot_url, recorder):
    """The control for the test above: the merged document really checks v4 requests (an id
    must be a string), so a clean `problems()` there means something."""
    httpx.post(
        hubspot_url + V4_BATCH_READ.format("deals"),
        json={"inputs": [{"id": 1001}]},
        headers={"Authorization": "Bearer contract-private-app-token"},
    )
    problems = recorder.problems()
    assert any("request violates the document" in p and "inputs.0.id must be string" in p for p in problems), problems
