"""CRM deals that name their invoice the way sales teams do link to it, with or without a
company association; a deal whose name fits several invoices, or contradicts the one it names,
stays unlinked with the reason."""

from __future__ import annotations

from decimal import Decimal

from connector.linking.deals import Deal, NumberIndex, Receivable, name_digits, name_numbers
from connector.linking.rules import View, link_invoices, match_deals

RANKS = {"ledger": 3, "gateway": 2, "crm": 1}


def ledger_invoice(remote_id: str, number: str, total: str = "1200.00", currency: str = "EUR") -> View:
    return View(
        system="ledger",
        kind="ledger",
        object_type="invoice",
        remote_id=remote_id,
        entity_id=f"L-{remote_id}",
        rank=RANKS["ledger"],
        data={"number": number, "currency": currency, "total": {"amount": total, "currency": currency}},
        hints={"invoice_number": number},
    )


def deal(
    remote_id: str,
    name: str | None,
    amount: str | None = "1200.00",
    currency: str = "EUR",
    stated: str | None = "EUR",
    number: str | None = None,
) -> View:
    hints = {"deal_name": name, "currency_code": stated, "invoice_number": number}
    return View(
        system="crm",
        kind="crm",
        object_type="deal",
        remote_id=remote_id,
        entity_id=f"D-{remote_id}",
        rank=RANKS["crm"],
        data={"currency": currency, "total": {"amount": amount or "0", "currency": currency}},
        hints={k: v for k, v in hints.items() if v is not None},
    )


def linked(views: list[View]) -> dict[str, tuple[str, str]]:
    return {link.member: (link.survivor, link.rule) for link in link_invoices(views, {})}


def test_a_deal_named_after_its_invoice_links_without_a_company_association():
    views = [
        ledger_invoice("x1", "INV-0042"),
        ledger_invoice("x2", "INV-0043"),
        deal("d1", "Acme Ltd - INV-0042"),
        deal("d2", "INV-0043 Acme"),
    ]
    assert linked(views) == {"D-d1": ("L-x1", "deal_name"), "D-d2": ("L-x2", "deal_name")}


def test_invoice_42_in_words_links_when_one_invoice_ends_with_42():
    views = [ledger_invoice("x1", "INV-0042"), ledger_invoice("x2", "INV-0420"), deal("d1", "Acme Ltd – Invoice 42")]
    assert linked(views) == {"D-d1": ("L-x1", "deal_name")}


def test_a_number_property_names_the_invoice_and_wins_over_no_name():
    views = [ledger_invoice("x1", "INV-0042"), deal("d1", "Renewal 2026", number="inv 0042")]
    assert linked(views) == {"D-d1": ("L-x1", "invoice_number")}


def test_a_name_fitting_two_invoices_links_neither():
    views = [
        ledger_invoice("x1", "INV-0042"),
        ledger_invoice("x2", "SO-42"),
        deal("d1", "Acme – Invoice 42"),
    ]
    assert linked(views) == {}
    assert "fits 2 receivables (INV-0042, SO-42)" in match_deals(views)["D-d1"].reason


def test_a_deal_in_another_currency_or_of_another_amount_is_refused():
    views = [
        ledger_invoice("x1", "INV-0042", total="1200.00", currency="EUR"),
        ledger_invoice("x2", "INV-0043", total="500.00", currency="EUR"),
        deal("d1", "Acme - INV-0042", currency="USD", stated="USD"),
        deal("d2", "Acme - INV-0043", amount="499.00"),
    ]
    assert linked(views) == {}
    reasons = match_deals(views)
    assert "the deal is in USD, the invoice in EUR" in reasons["D-d1"].reason
    assert "amount 499.00 is not the invoice's total 500.00" in reasons["D-d2"].reason


def test_a_deal_without_amount_or_stated_currency_links_on_the_number_alone():
    views = [ledger_invoice("x1", "INV-0042", total="1200.00"), deal("d1", "Acme - INV-0042", amount=None, stated=None)]
    assert linked(views) == {"D-d1": ("L-x1", "deal_name")}


def test_two_deals_naming_one_invoice_link_neither():
    views = [ledger_invoice("x1", "INV-0042"), deal("d1", "Acme - INV-0042"), deal("d2", "INV-0042 Acme (copy)")]
    assert linked(views) == {}
    assert "name the same invoice" in match_deals(views)["D-d2"].reason


def test_a_property_naming_a_number_no_invoice_has_does_not_fall_back_to_the_name():
    views = [ledger_invoice("x1", "INV-0042"), deal("d1", "Acme - INV-0042", number="INV-0099")]
    assert linked(views) == {}
    assert "INV-0099 is no receivable's number" in match_deals(views)["D-d1"].reason


def test_a_deal_never_links_to_a_crm_invoice_or_a_gateway_invoice_when_there_is_a_ledger():
    gateway = View("gateway", "gateway", "invoice", "in_1", "G-1", 2, {"number": "INV-0050", "currency": "EUR"})
    views = [ledger_invoice("x1", "INV-0042"), gateway, deal("d1", "Acme - INV-0050")]
    assert "gives a number no receivable has" in match_deals(views)["D-d1"].reason


def test_deal_names_give_their_numbers():
    assert name_numbers("Acme Ltd - INV-0042") == ["INV0042"]
    assert name_numbers("INV 0042, Acme") == ["INV0042"]
    assert name_numbers("Acme 2026 renewal") == []  # a year is no invoice number
    assert name_digits("Acme Ltd – Invoice no. 42") == [42]
    assert name_digits("Acme Inventory 7") == []  # a word starting with "inv" is not "invoice"


def test_the_index_refuses_an_amount_mismatch_and_names_the_amounts():
    index = NumberIndex([Receivable("a", "INV-1", "JPY", Decimal("5000"))])
    match = index.match(Deal("INV-1 Tokyo", None, "JPY", Decimal("5001")))
    assert match.target is None and "5001" in match.reason and "5000" in match.reason
    assert index.match(Deal("INV-1 Tokyo", None, "JPY", Decimal("5000"))).target == "a"
