"""`connector drift`, the pure part: each system against what it should hold after the writes
that are done, splits and overpayments, unsent writes, and gaps until they are resolved."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from connector import reports
from connector.model import Allocation, Invoice, Payment, Ref
from connector.money import Money

AS_OF = date(2024, 6, 30)
SEEN = datetime(2024, 6, 30, 9, tzinfo=UTC)  # the last sync
BEFORE, AFTER = SEEN - timedelta(hours=1), SEEN + timedelta(hours=1)


def usd(value: str) -> Money:
    return Money.of(value, "USD")


def invoice(paid: str = "0", total: str = "100.00", status: str = "open") -> Invoice:
    return Invoice(
        id="inv1",
        number="INV-1",
        currency="USD",
        due_date=AS_OF,
        subtotal=usd(total),
        tax=usd("0"),
        total=usd(total),
        amount_paid=usd(paid),
        amount_credited=usd("0"),
        status=status,  # type: ignore[arg-type]
        refs=[Ref(system="ledger", object_type="invoice", remote_id="L-1")],
    )


def card(amount: str = "100.00", refunded: str | None = None) -> Payment:
    return Payment(
        id="pay1",
        amount=usd(amount),
        received_at=datetime(2024, 6, 20, tzinfo=UTC),
        amount_refunded=None if refunded is None else usd(refunded),
        status="succeeded" if refunded is None else "partially_refunded",
        refs=[Ref(system="gateway", object_type="payment", remote_id="ch_1")],
    )


def view(system: str, kind: str, object_type: str, remote_id: str, record: Any, **sync: Any) -> reports.View:
    data = record.model_dump(mode="json")
    data["_sync"] = {"links": sync.get("links", {}), "hints": sync.get("hints", {}), "deleted": False}
    entity = "pay1" if object_type == "payment" else "inv1"
    return reports.View(system, kind, object_type, remote_id, entity, data, SEEN)


def ledger_invoice(paid: str = "0", status: str = "open") -> reports.View:
    return view("ledger", "ledger", "invoice", "L-1", invoice(paid, status=status))


def gateway_invoice(status: str = "open") -> reports.View:
    return view("gateway", "gateway", "invoice", "in_1", invoice(status=status))


def applied(amount: str = "100.00", invoice_id: str = "inv1") -> Allocation:
    return Allocation(
        id="al-1",
        payment_id="pay1",
        invoice_id=invoice_id,
        amount=usd(amount),
        rule="manual",
        confidence=Decimal(1),
        confirmed_by="alice",
    )


def write(
    id_: int, kind: str, state: str, at: datetime, target: tuple[str, str, str] | None = None, **payload: Any
) -> reports.Write:
    if target is None:
        target = (
            ("gateway", "invoice", "in_1") if kind in ("mark_paid", "void_invoice") else ("ledger", "invoice", "L-1")
        )
    return reports.Write(id_, target[0], kind, target, payload, state, at, f"{kind} #{id_}", "invoice", "inv1")


def record_payment(id_: int, state: str, at: datetime, amount: str = "100.00") -> reports.Write:
    return write(id_, "record_payment", state, at, amount=amount, currency="USD", reference="ch_1")


def book(
    *,
    invoice_record: Invoice | None = None,
    views: list[reports.View] | None = None,
    payment_views: list[reports.View] | None = None,
    pending: list[Allocation] | None = None,
    writes: list[reports.Write] | None = None,
    gaps: list[reports.Gap] | None = None,
    payment: Payment | None = None,
) -> reports.DriftBook:
    return reports.DriftBook(
        invoices={"inv1": invoice_record or invoice()},
        payments={"pay1": payment or card()},
        pending=pending or [],
        invoice_views=views if views is not None else [ledger_invoice()],
        payment_views=payment_views or [view("gateway", "gateway", "payment", "ch_1", payment or card())],
        writes=writes or [],
        gaps=gaps or [],
        as_of=AS_OF,
    )


def lines(drift_book: reports.DriftBook) -> list[dict[str, Any]]:
    return reports.drift_lines(drift_book)


# The ledger ----------------------------------------------------------------------------------


def test_a_payment_applied_and_not_yet_planned_is_drift_resolved_by_sync_apply():
    [line] = lines(book(pending=[applied()]))
    assert (line["kind"], line["number"], line["system"], line["field"]) == (
        "invoice",
        "INV-1",
        "ledger",
        "amount_paid",
    )
    assert (line["holds"], line["should_hold"], line["amount"], line["currency"]) == (
        "0.00 USD",
        "100.00 USD",
        "100.00",
        "USD",
    )
    assert line["since"] == SEEN.isoformat() and line["resolve"] == "connector sync --apply"


def test_a_record_payment_done_after_the_last_sync_is_in_transit_not_drift():
    assert lines(book(pending=[applied()], writes=[record_payment(7, "done", AFTER)])) == []


def test_a_record_payment_done_before_the_last_sync_that_the_ledger_does_not_show_is_drift():
    [line] = lines(book(pending=[applied()], writes=[record_payment(7, "done", BEFORE)]))
    assert line["field"] == "amount_paid" and line["amount"] == "100.00"


def test_a_queued_write_resolves_by_apply_and_a_parked_one_by_retry():
    [queued] = lines(book(pending=[applied()], writes=[record_payment(7, "planned", BEFORE)]))
    assert queued["resolve"] == "connector apply" and queued["actions"] == [7]
    [parked] = lines(book(pending=[applied()], writes=[record_payment(7, "failed", BEFORE)]))
    assert parked["resolve"] == "connector actions retry 7"


def test_a_cancelled_write_whose_decision_stands_resolves_by_unmatch():
    [line] = lines(book(pending=[applied()], writes=[record_payment(7, "cancelled", BEFORE)]))
    assert line["resolve"] == "connector reconcile unmatch al-1"


def test_an_unmatch_after_the_write_back_is_drift_until_the_reversal_is_done():
    written = record_payment(7, "done", AFTER)
    planned = write(8, "delete_payment", "planned", AFTER, reverses=7)
    [line] = lines(book(writes=[written, planned]))
    assert (line["holds"], line["should_hold"], line["resolve"]) == ("100.00 USD", "0.00 USD", "connector apply")
    done = write(8, "delete_payment", "done", AFTER + timedelta(minutes=1), reverses=7)
    assert lines(book(writes=[written, done])) == []


def test_a_payment_the_ledger_holds_is_not_counted_again_before_reconcile_retires_ours():
    ledger_payment = view("ledger", "ledger", "payment", "P-1", card("100.00"), links={"invoice": "L-1"})
    drift_book = book(
        invoice_record=invoice("100.00"),
        views=[ledger_invoice("100.00", "paid")],
        pending=[applied()],
        payment_views=[view("gateway", "gateway", "payment", "ch_1", card()), ledger_payment],
    )
    assert lines(drift_book) == []


def test_a_split_payment_counts_once_on_each_invoice():
    """One charge of 150.00 written back as two ledger payments (100.00 and 50.00), synced, our
    allocations not yet retired by reconcile: each part is held on its own invoice, once."""
    second = invoice(total="50.00", paid="50.00").model_copy(update={"id": "inv2", "number": "INV-2"})
    second_view = reports.View("ledger", "ledger", "invoice", "L-2", "inv2", second.model_dump(mode="json"), SEEN)
    parts = [
        view("ledger", "ledger", "payment", "P-1", card("100.00"), links={"invoice": "L-1"}),
        view("ledger", "ledger", "payment", "P-2", card("50.00"), links={"invoice": "L-2"}),
    ]

    def split(payment_views: list[reports.View]) -> reports.DriftBook:
        return reports.DriftBook(
            invoices={"inv1": invoice("100.00"), "inv2": second},
            payments={"pay1": card("150.00")},
            pending=[applied("100.00"), applied("50.00", "inv2").model_copy(update={"id": "al-2"})],
            invoice_views=[ledger_invoice("100.00", "paid"), second_view],
            payment_views=[view("gateway", "gateway", "payment", "ch_1", card("150.00")), *payment_views],
            writes=[],
            gaps=[],
            as_of=AS_OF,
        )

    assert lines(split(parts)) == []
    assert reports.payment_drift(split(parts)) == []
    # were the second part not known as the same payment, INV-2 would count it twice
    [line] = lines(split(parts[:1]))
    assert (line["number"], line["holds"], line["should_hold"]) == ("INV-2", "50.00 USD", "100.00 USD")


# The gateway and the CRM ---------------------------------------------------------------------------


def test_a_gateway_invoice_open_while_mark_paid_is_done_is_in_transit():
    paid = invoice("100.00")
    views = [ledger_invoice("100.00", "paid"), gateway_invoice()]
    assert lines(book(invoice_record=paid, views=views, writes=[write(3, "mark_paid", "done", AFTER)])) == []
    [line] = lines(book(invoice_record=paid, views=views))
    assert (line["system"], line["field"], line["holds"], line["should_hold"]) == ("gateway", "status", "open", "paid")
    assert line["resolve"] == "connector sync --apply"


def test_a_gateway_invoice_paid_that_the_book_has_open_asks_for_a_decision():
    [line] = lines(book(views=[ledger_invoice(), gateway_invoice("paid")]))
    assert (line["holds"], line["should_hold"], line["amount"]) == ("paid", "open", "100.00")
    assert line["resolve"] == "connector reconcile"


def test_crm_properties_are_compared_after_a_done_update():
    deal = view(
        "crm", "crm", "deal", "D-1", invoice(), hints={"crm_payment_status": "open", "crm_amount_outstanding": "100"}
    )
    paid = invoice("100.00")
    views = [ledger_invoice("100.00", "paid"), deal]
    [line] = lines(book(invoice_record=paid, views=views))
    assert (line["system"], line["field"], line["amount"]) == ("crm", "properties", "100.00")
    update = write(
        4,
        "update_properties",
        "done",
        AFTER,
        ("crm", "deal", "D-1"),
        properties={"payment_status": "paid", "amount_outstanding": "0.00"},
    )
    assert lines(book(invoice_record=paid, views=views, writes=[update])) == []


def test_a_different_total_is_drift():
    [line] = lines(
        book(views=[ledger_invoice(), view("gateway", "gateway", "invoice", "in_1", invoice(total="110.00"))])
    )
    assert (line["field"], line["holds"], line["should_hold"], line["amount"]) == (
        "total",
        "110.00 USD",
        "100.00 USD",
        "10.00",
    )


# Payments, unsent writes, gaps ------------------------------------------------------------------------


def test_the_ledger_holding_more_than_the_gateway_collected_is_drift_an_overpayment_is_not():
    overpaid = view("ledger", "ledger", "payment", "P-1", card("100.00"), links={"invoice": "L-1"})
    assert (
        reports.payment_drift(
            book(
                payment=card("120.00"),
                payment_views=[view("gateway", "gateway", "payment", "ch_1", card("120.00")), overpaid],
            )
        )
        == []
    )
    refunded = card("100.00", refunded="30.00")
    [line] = reports.payment_drift(
        book(payment=refunded, payment_views=[view("gateway", "gateway", "payment", "ch_1", refunded), overpaid])
    )
    assert (line["kind"], line["field"], line["amount"], line["resolve"]) == (
        "payment",
        "amount",
        "30.00",
        "connector explain ch_1",
    )


def test_a_planned_fee_no_other_line_names_is_listed_as_unsent():
    fee = reports.Write(
        5,
        "ledger",
        "record_fee",
        ("gateway", "payment", "ch_1"),
        {"amount": "3.20", "currency": "USD"},
        "planned",
        BEFORE,
        "book fee",
        "payment",
        "pay1",
    )
    [line] = lines(book(writes=[fee]))
    assert (line["kind"], line["id"], line["field"], line["amount"], line["resolve"]) == (
        "payment",
        "pay1",
        "write",
        "3.20",
        "connector apply",
    )


def gap(kind: str, action: int, connection: str, amount: str = "100.00") -> reports.Gap:
    inputs = {
        "gap": kind,
        "action": action,
        "connection": connection,
        "invoice": "inv1",
        "payment": "pay1",
        "amount": amount,
        "currency": "USD",
    }
    return reports.Gap(AFTER, "invoice", "inv1", inputs, "cancelled by alice, decision kept")


def test_a_kept_decision_without_its_write_is_listed_once_as_its_gap_until_recorded_by_hand_and_synced():
    cancelled = record_payment(7, "cancelled", BEFORE)
    kept = gap("unwritten_decision", 7, "ledger")
    [line] = lines(book(pending=[applied()], writes=[cancelled], gaps=[kept]))
    assert (line["kind"], line["field"], line["amount"], line["currency"]) == (
        "gap",
        "unwritten_decision",
        "100.00",
        "USD",
    )
    assert line["since"] == AFTER.isoformat()
    # finance kept the match: it records the payment in the ledger itself, and a sync reads it back
    assert line["resolve"] == "connector sync"
    assert line["reason"] == (
        "cancelled by alice, decision kept; "
        "record the payment of 100.00 USD (reference ch_1) to INV-1 in ledger by hand, then sync"
    )
    # recorded by hand and synced: the ledger's own record replaces the allocation; nothing differs
    by_hand = view("ledger", "ledger", "payment", "P-9", card("100.00"), links={"invoice": "L-1"})
    assert (
        lines(
            book(
                invoice_record=invoice("100.00", status="paid"),
                views=[ledger_invoice("100.00", "paid")],
                payment_views=[view("gateway", "gateway", "payment", "ch_1", card()), by_hand],
                writes=[cancelled],
                gaps=[kept],
            )
        )
        == []
    )


def test_a_kept_decision_undone_after_all_resolves_its_gap():
    cancelled = record_payment(7, "cancelled", BEFORE)
    assert lines(book(writes=[cancelled], gaps=[gap("unwritten_decision", 7, "ledger")])) == []


def test_an_irreversible_mark_paid_is_listed_until_the_book_pays_the_invoice_again():
    marked = write(3, "mark_paid", "done", BEFORE)
    views = [ledger_invoice(), gateway_invoice("paid")]
    [line] = lines(book(views=views, writes=[marked], gaps=[gap("irreversible_write", 3, "gateway")]))
    assert (line["kind"], line["field"], line["system"]) == ("gap", "irreversible_write", "gateway")
    assert line["resolve"] == "connector reconcile match pay1 INV-1"
    paid_again = book(
        invoice_record=invoice("100.00"),
        views=[ledger_invoice("100.00", "paid"), gateway_invoice("paid")],
        writes=[marked],
        gaps=[gap("irreversible_write", 3, "gateway")],
    )
    assert lines(paid_again) == []


def test_drift_report_counts_differences_gaps_and_dangling_refs():
    difference = {"kind": "invoice", "actions": []}
    open_gap = {"kind": "gap", "actions": []}
    dangling = {"system": "crm", "type": "deal", "id": "D-9"}
    report = reports.drift_report([difference, open_gap], [dangling])
    assert report["drift"] is True and report["counts"] == {"records": 1, "gaps": 1, "dangling_refs": 1}
    assert list(report) == ["drift", "records", "dangling_refs", "counts"]
    assert reports.drift_report([], [])["drift"] is False
