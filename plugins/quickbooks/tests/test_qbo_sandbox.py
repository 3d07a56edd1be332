"""The real QuickBooks provider against the sandbox's QuickBooks face: reads, CDC deletes,
payment and send with requestid replay, token rotation, and the demo book conversion."""

from __future__ import annotations

from decimal import Decimal

from pydantic import SecretStr
from qbo_support import Store, credit_memo, customer, exact, invoice, payment

from connector.plugin import Action, Ref
from connector.plugin_testing import load_mapping
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.sandbox.quickbooks_api import quickbooks_book
from connector_quickbooks import QuickBooksProvider, QuickBooksSettings

REALM = "4620816365257778210"


def _data():
    return {
        "quickbooks": {
            "Customer": [exact(customer("24", "2024-05-01T10:00:00-07:00", DisplayName="Sonnenschein Family Store"))],
            "Invoice": [
                exact(invoice("130", "2024-05-01T10:05:00-07:00")),
                exact(invoice("131", "2024-05-01T10:06:00-07:00", DocNumber="1038")),
            ],
            "Payment": [exact(payment("163", "2024-05-01T10:07:00-07:00", CustomerRef={"value": "24"}))],
            "CreditMemo": [exact(credit_memo("73", "2024-05-01T10:08:00-07:00", CustomerRef={"value": "24"}))],
        }
    }


def _provider(sandbox: Sandbox, store: Store) -> QuickBooksProvider:
    settings = QuickBooksSettings(
        base_url=sandbox.url("quickbooks"),
        token_url=f"{sandbox.url('quickbooks')}/oauth/token",
        realm_id=REALM,
        client_id="sandbox-client",
        client_secret=SecretStr("sandbox-secret"),
        refresh_token=SecretStr("sandbox-refresh-1"),
        page_size=1,
    )
    return QuickBooksProvider(settings, connection="qbo", token_store=store)


def _read(p: QuickBooksProvider, stream: str, cursor: str | None = None):
    records, last = [], cursor
    for page in p.read(stream, cursor):
        records += page.records
        last = page.cursor or last
    return records, last


def test_provider_against_the_sandbox_face():
    store = Store()
    with Sandbox(_data()) as sandbox:
        p = _provider(sandbox, store)
        mapper = load_mapping(p.mapping_file, connection="qbo")
        invoices, cursor = _read(p, "invoices")
        assert sorted(r["Id"] for r in invoices) == ["130", "131"]
        assert store.saved and store.saved[-1]["refresh_token"].startswith("sbx_rt_")  # rotated and saved
        for stream in p.streams:
            records, _ = _read(p, stream)
            mapped, errors = mapper.map_page(stream, records)
            assert errors == [] and mapped

        pay = Action(
            connection="qbo",
            kind="record_payment",
            target=Ref(system="qbo", object_type="invoice", remote_id="130"),
            payload={"amount": "100.00", "currency": "USD", "date": "2024-05-02", "reference": "ch_123"},
        )
        first, again = p.apply(pay), p.apply(pay)
        assert first.remote_id == again.remote_id
        face = sandbox.faces["quickbooks"]
        assert face.objects["Invoice"]["130"]["Balance"] == Decimal("262.07")
        assert [e["effect"] for e in sandbox.journal if e["path"].endswith("/payment")] == [
            f"created payment {first.remote_id}",
            "replayed",
        ]

        send = Action(
            connection="qbo", kind="send_invoice", target=Ref(system="qbo", object_type="invoice", remote_id="131")
        )
        p.apply(send)
        p.apply(send)
        assert [e["effect"] for e in sandbox.journal if e["path"].endswith("/send")] == [
            "emailed invoice 131",
            "replayed",
        ]

        with sandbox.lock:
            face.delete("Invoice", "131")
            face.void("Invoice", "130")
        changed, _ = _read(p, "invoices", cursor)
        mapped, errors = mapper.map_page("invoices", changed)
        assert errors == []
        status = {m.ref.remote_id: (m.record.status, m.deleted) for m in mapped}
        assert status == {"131": ("void", True), "130": ("void", False)}
        p.close()


def test_quickbooks_book_keeps_the_generated_book():
    scenario = generate(7, "small")
    xero = scenario.data["xero"]
    book = quickbooks_book(xero)
    numbers = {i["InvoiceNumber"] for i in xero["Invoices"] if i.get("Status") not in ("DELETED",)}
    assert {i["DocNumber"] for i in book["Invoice"]} == numbers
    with Sandbox({"quickbooks": book}) as sandbox:
        p = _provider(sandbox, Store())
        mapper = load_mapping(p.mapping_file, connection="qbo")
        for stream in p.streams:
            records, _ = _read(p, stream)
            _, errors = mapper.map_page(stream, records)
            assert errors == [], errors[:3]
        invoices, _ = _read(p, "invoices")
        totals = {r["DocNumber"]: r["TotalAmt"] for r in invoices}
        for doc in xero["Invoices"]:
            if doc.get("Status") not in ("VOIDED", "DELETED"):
                assert totals[doc["InvoiceNumber"]] == doc["Total"]
        p.close()
