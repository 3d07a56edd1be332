"""What reconciliation reads of the stored views, on SQLite and on PostgreSQL: the database
extracts the few fields it needs (the invoice a payment links to, the ledger invoice its hints
name, what a ledger payment records, an invoice's reference), and the book and the ledger's
records are read a batch at a time. A batch of one must give what one batch gives."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.cli import reconcile_commands
from connector.config import Config, load_config
from connector.model import Customer, Invoice, Payment, PaymentStatus, Ref
from connector.money import Money
from connector.reconcile import run
from connector.reconcile.run import run_reconciliation
from connector.reconcile.types import LEDGER_RULE, PAYABLE
from connector.state import reconciliation as stored
from connector.state import records as state_records
from connector.state.bookkeeping import audit_entries
from connector.state.store import Store
from support.databases import BACKENDS, store_on
from support.dunning_book import CONFIG

# Never called: reconciliation only asks which connection is the ledger. The dunning book's
# connections (a Xero ledger, a HubSpot CRM) and a Stripe gateway beside them.
GATEWAY = """
[connections.gateway]
provider = "stripe"
base_url = "http://127.0.0.1:9/stripe"
api_key = "sk_test_stored_views_0001"
"""


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with store_on(request.param, tmp_path) as store:
        yield store


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "connector.toml"
    path.write_text(CONFIG.format(database=tmp_path / "unused.db", extra=GATEWAY))
    return load_config(str(path))


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def invoice(number: str, remote_id: str, total: str, *, lines: tuple[str, ...] = ()) -> Invoice:
    return Invoice.model_validate(
        {
            "id": number.lower(),
            "number": number,
            "customer_id": "acme",
            "currency": "USD",
            "issue_date": date(2026, 10, 1),
            "due_date": date(2026, 11, 1),
            "lines": [
                {"description": text, "quantity": "1", "unit_price": total, "amount": usd(total), "tax": usd("0")}
                for text in lines
            ],
            "subtotal": usd(total),
            "tax": usd("0"),
            "total": usd(total),
            "amount_paid": usd("0"),
            "amount_credited": usd("0"),
            "status": "open",
            "refs": [Ref(system="ledger", object_type="invoice", remote_id=remote_id)],
        }
    )


def payment(
    system: str, remote_id: str, amount: str, *, status: PaymentStatus = "succeeded", remittance: str | None = None
) -> Payment:
    return Payment(
        id=f"{system}-{remote_id}",
        amount=usd(amount),
        received_at=datetime(2026, 11, 5, tzinfo=UTC),
        customer_id="acme",
        status=status,
        remittance=remittance,
        refs=[Ref(system=system, object_type="payment", remote_id=remote_id)],
    )


def ledger_payment(store: Store, remote_id: str, amount: str, sync: dict[str, Any], **kw: Any) -> None:
    store.store_page(
        "ledger",
        "payments",
        "payment",
        [payment("ledger", remote_id, amount, **kw)],
        None,
        rank=3,
        extras={remote_id: sync},
    )


@pytest.fixture
def book(store: Store) -> Store:
    return stocked(store)


def stocked(store: Store) -> Store:
    """Acme's six ledger invoices, the ledger's payments of four of them (one deleted there, as
    Xero maps a DELETED payment: deleted and failed; one failed; one linked by a number rather
    than a string), and two card payments the ledger
    has not recorded: one its metadata ties to a ledger invoice, one whose remittance quotes
    a purchase-order reference only an invoice's view holds."""
    customer = Customer(id="acme", name="Acme", refs=[Ref(system="ledger", object_type="customer", remote_id="C-1")])
    store.store_page("ledger", "contacts", "customer", [customer], None, rank=3)
    invoices = [
        invoice("INV-1", "x-1", "100.00"),
        invoice("INV-2", "x-2", "200.00"),
        invoice("INV-3", "x-3", "300.00"),
        invoice("INV-4", "4004", "400.00"),
        invoice("INV-5", "x-5", "512.34", lines=("Support, November",)),
        invoice("INV-6", "x-6", "612.00"),
    ]
    extras = {"x-6": {"hints": {"reference": "PO-7781"}}}
    store.store_page("ledger", "invoices", "invoice", invoices, None, rank=3, extras=extras)
    ledger_payment(store, "lp-1", "100.00", {"links": {"invoice": "x-1"}, "deleted": False})
    ledger_payment(store, "lp-2", "200.00", {"links": {"invoice": "x-2"}, "deleted": True}, status="failed")
    ledger_payment(store, "lp-3", "300.00", {"links": {"invoice": "x-3"}}, status="failed")
    ledger_payment(store, "lp-4", "400.00", {"links": {"invoice": 4004}})  # a number, as some APIs send ids
    card = payment("gateway", "ch_5", "512.34")
    store.store_page(
        "gateway", "charges", "payment", [card], None, rank=1, extras={"ch_5": {"hints": {"ledger_invoice_id": "x-5"}}}
    )
    quoted = payment("gateway", "ch_6", "612.00", remittance="PO-7781")
    store.store_page("gateway", "charges", "payment", [quoted], None, rank=1)
    return store


def applied(store: Store) -> list[tuple[str, str, str, str]]:
    with store.session() as session:
        found = stored.load_allocations(session, status="applied")
    return sorted(
        (s.allocation.payment_id, s.allocation.invoice_id, str(s.allocation.amount.amount), s.allocation.rule)
        for s in found
    )


EXPECTED = [
    ("gateway-ch_5", "inv-5", "512.34", "explicit_link"),  # the ledger invoice its metadata names
    ("gateway-ch_6", "inv-6", "612.00", "remittance_number"),  # the reference the invoice's view holds
    ("ledger-lp-1", "inv-1", "100.00", "ledger_record"),
    ("ledger-lp-4", "inv-4", "400.00", "ledger_record"),  # linked by a number
    # lp-2 (deleted in the ledger) and lp-3 (failed) pay nothing
]


def test_what_the_views_say_is_read_alike_on_both_databases(book: Store, config: Config) -> None:
    summary = run_reconciliation(config, book)
    assert applied(book) == EXPECTED
    assert summary.ledger == 2 and summary.proposals == []


def test_a_batch_of_one_gives_what_one_batch_gives(
    book: Store, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every receivable read on its own into the matcher's book, and every ledger payment's
    records taken on its own: the same allocations."""
    monkeypatch.setattr(run, "LEDGER_BATCH", 1)
    run_reconciliation(config, book)
    assert applied(book) == EXPECTED


def test_a_ledger_payment_deleted_since_takes_its_allocation_with_it(book: Store, config: Config) -> None:
    """The view's deleted flag alone (as each database reads a JSON true) ends the ledger's
    record of the payment."""
    run_reconciliation(config, book)
    ledger_payment(book, "lp-1", "100.00", {"links": {"invoice": "x-1"}, "deleted": True})
    summary = run_reconciliation(config, book)
    assert ("ledger-lp-1", "inv-1", "100.00", "ledger_record") not in applied(book)
    assert summary.ledger == 0  # removed, not made


def test_the_report_reads_the_allocations_a_batch_at_a_time_in_the_order_they_were_made(
    book: Store, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_reconciliation(config, book)
    whole = list(reconcile_commands.applied_entries(book))
    monkeypatch.setattr(reconcile_commands, "REPORT_BATCH", 1)
    assert list(reconcile_commands.applied_entries(book)) == whole
    with book.session() as session:
        made = [s.allocation.id for s in stored.load_allocations(session, status="applied")]
    assert [e["id"] for e in whole] == made
    by_payment = {e["payment"]["id"]: e for e in whole}
    assert by_payment["ledger-lp-4"]["invoice"] == {
        "id": "inv-4",
        "number": "INV-4",
        "refs": [{"system": "ledger", "type": "invoice", "id": "4004"}],
    }
    assert by_payment["gateway-ch_5"]["payment"]["refs"] == [{"system": "gateway", "type": "payment", "id": "ch_5"}]
    ours = [e["payment"]["id"] for e in reconcile_commands.applied_entries(book, with_ledger=False)]
    assert sorted(ours) == ["gateway-ch_5", "gateway-ch_6"]


def _after_refunds_and_new_payments(store: Store, config: Config) -> tuple[list[Any], list[Any], list[Any]]:
    """Reconcile the book, then store what a sync brings: a card payment applied in full now
    refunded, another partly refunded, one disputed, new ones (an exact amount, a part of one,
    a pending one); reconcile again. The allocations, open proposals and audit log after."""
    run_reconciliation(config, store)

    def gateway(remote_id: str, amount: str, **kw: Any) -> None:
        extra = kw.pop("extra", {})
        paid = payment("gateway", remote_id, amount, **{k: kw.pop(k) for k in ("status", "remittance") if k in kw})
        store.store_page(
            "gateway", "charges", "payment", [paid.model_copy(update=kw)], None, rank=1, extras={remote_id: extra}
        )

    gateway(
        "ch_5",
        "512.34",
        status="refunded",
        amount_refunded=usd("512.34"),
        extra={"hints": {"ledger_invoice_id": "x-5"}},
    )
    gateway("ch_6", "612.00", status="partially_refunded", amount_refunded=usd("12.00"), remittance="PO-7781")
    gateway("ch_8", "200.00")  # INV-2's amount (its ledger payment failed)
    gateway("ch_9", "50.00")  # a part of something
    gateway("ch_10", "612.00", status="pending")
    gateway("ch_11", "300.00", dispute_status="open", amount_disputed=usd("300.00"))
    run_reconciliation(config, store)
    with store.session() as session:
        allocations = sorted(
            (s.status, s.allocation.payment_id, s.allocation.invoice_id, str(s.allocation.amount), s.allocation.rule)
            for s in stored.load_allocations(session)
        )
        proposals = sorted(
            (p["payment_id"], p["amount_minor"], str(p["candidates"])) for p in stored.load_proposals(session)
        )
        log = [
            (e.actor, e.action, e.subject_type, e.subject_id, e.decision)
            for e in audit_entries(session, actions=("allocate", "reverse", "propose", "supersede", "superseded"))
        ]
    return allocations, proposals, log


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_matcher_weighs_only_the_payments_it_can_still_move(
    backend: str, tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A payment applied in full whose money stayed is left out of the matcher (most of a
    settled book's); one refunded, disputed, partly applied or new is weighed. The same
    allocations, proposals and audit log as weighing every payment."""
    (tmp_path / "sieved").mkdir()
    (tmp_path / "whole").mkdir()
    with store_on(backend, tmp_path / "sieved") as store:
        stocked(store)
        run_reconciliation(config, store)
        with store.session() as session:
            kept = state_records.payments_to_match(session, PAYABLE, other_than=LEDGER_RULE)
        assert "gateway-ch_5" not in kept and "gateway-ch_6" not in kept  # applied in full
        sieved = _after_refunds_and_new_payments(store, config)
        with store.session() as session:
            kept = state_records.payments_to_match(session, PAYABLE, other_than=LEDGER_RULE)
        assert {"gateway-ch_5", "gateway-ch_6", "gateway-ch_9", "gateway-ch_11"} <= set(kept)
        assert "gateway-ch_10" not in kept  # pending: nothing to apply yet, nothing to take back

    def every_payment(session: Any, payable: Any, other_than: str) -> list[str]:
        return [payment_id for payment_id, _ in state_records.payment_keys(session)]

    monkeypatch.setattr(state_records, "payments_to_match", every_payment)
    with store_on(backend, tmp_path / "whole") as store:
        stocked(store)
        whole = _after_refunds_and_new_payments(store, config)
    assert sieved == whole
    allocations = sieved[0]
    assert ("applied", "gateway-ch_5", "inv-5", "512.34 USD", "explicit_link") not in allocations  # refunded
    assert ("applied", "gateway-ch_6", "inv-6", "600.00 USD", "remittance_number") in allocations  # reduced
    assert ("applied", "gateway-ch_8", "inv-2", "200.00 USD", "exact_amount_unique") in allocations
    assert "gateway-ch_9" in {payment_id for payment_id, _, _ in sieved[1]}  # proposed


def test_a_ledger_payment_moved_to_another_invoice_moves_its_allocation(book: Store, config: Config) -> None:
    """A ledger that lets a payment be edited onto another invoice (QuickBooks does): the
    ledger's record on the first invoice goes, the one on the second is made."""
    run_reconciliation(config, book)
    ledger_payment(book, "lp-1", "100.00", {"links": {"invoice": "x-6"}})
    run_reconciliation(config, book)
    ledger = [a for a in applied(book) if a[0] == "ledger-lp-1"]
    assert ledger == [("ledger-lp-1", "inv-6", "100.00", "ledger_record")]
    with book.session() as session:
        reasons = [e.decision for e in audit_entries(session, actions=("reverse",)) if e.inputs["invoice"] == "inv-1"]
    assert reasons == ["the ledger no longer holds this payment on this invoice (deleted, or being reversed)"]


def test_the_ledger_records_are_made_again_only_for_payments_whose_inputs_moved(
    book: Store, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each payment keeps a digest of what its ledger records were made from: a run after
    nothing moved makes none again; a ledger payment stored again changed, a payment refunded,
    or a ledger allocation gone by another hand is made again, alone."""
    made_for: list[list[str]] = []
    apply = run._apply_ledger_records

    def recording(session: Any, payments: Any, parts: dict[str, Any], applied: Any) -> int:
        made_for.append(sorted(parts))
        return apply(session, payments, parts, applied)

    monkeypatch.setattr(run, "_apply_ledger_records", recording)
    run_reconciliation(config, book)
    assert made_for == [["ledger-lp-1", "ledger-lp-2", "ledger-lp-3", "ledger-lp-4"]]
    made_for.clear()
    run_reconciliation(config, book)
    assert made_for == []  # nothing moved
    run_reconciliation(config, book, full=True)  # `connector reconcile --full`: whatever the digests say
    assert made_for == [["ledger-lp-1", "ledger-lp-2", "ledger-lp-3", "ledger-lp-4"]]
    made_for.clear()

    ledger_payment(book, "lp-4", "400.00", {"links": {"invoice": "x-3"}})  # edited onto INV-3
    run_reconciliation(config, book)
    assert made_for == [["ledger-lp-4"]]
    assert ("ledger-lp-4", "inv-3", "400.00", "ledger_record") in applied(book)

    made_for.clear()
    with book.session() as session:
        lp_1 = [s.allocation.id or "" for s in stored.load_allocations(session, payment_ids=["ledger-lp-1"])]
        stored.delete_allocations(session, lp_1)
    run_reconciliation(config, book)
    assert made_for == [["ledger-lp-1"]]
    assert applied(book) == sorted(
        [
            *EXPECTED[:2],
            ("ledger-lp-1", "inv-1", "100.00", "ledger_record"),
            ("ledger-lp-4", "inv-3", "400.00", "ledger_record"),
        ]
    )
