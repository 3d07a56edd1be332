"""Disputes, promises, payment plans and pauses held by the providers: read by the mappings,
copied into the columns `dispute`, `promise`, `plan-payments` and `pause` use, finance's own
word winning; and `connector plan-payments` itself."""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from connector.dunning import states as provider_states
from connector.dunning.run import build_plan
from connector.dunning.states import apply_provider_states
from connector.mappings.mapper import load_mapping
from connector.money import Money
from connector.providers.hubspot import HubSpotProvider, HubSpotSettings
from connector.providers.xero.provider import XeroProvider
from support.dunning_book import Book

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TODAY = date.today()


def fixture(provider: str, name: str, key: str) -> dict:
    # amounts as Decimal, as the adapters read them (never float)
    return copy.deepcopy(json.loads((FIXTURES / provider / name).read_text(), parse_float=Decimal)[key][0])


def hubspot(**settings):
    s = HubSpotSettings(access_token="pat-na1-test", **settings)
    return s, load_mapping(HubSpotProvider.mapping_file, connection="crm", overrides=s.mapping)


# The mappings -------------------------------------------------------------------------------


def test_a_deal_carries_its_dispute_promise_and_plan_and_a_company_its_pause():
    settings, mapper = hubspot()
    deal = fixture("hubspot", "deals_search.json", "results")
    deal["properties"] |= {
        "ar_disputed": "true",
        "ar_promise_to_pay_date": "2026-12-11",
        "ar_payment_plan": "3 monthly instalments",
    }
    mapped = mapper.map_one("deals", deal)
    assert (mapped.record.disputed, mapped.record.promise_to_pay) == (True, date(2026, 12, 11))
    assert mapped.hints["payment_plan"] == "3 monthly instalments"
    company = fixture("hubspot", "companies_search_page1.json", "results")
    company["properties"]["ar_dunning_paused"] = "true"
    assert mapper.map_one("companies", company).record.paused is True
    # the properties are asked for, or HubSpot would not send them
    assert {"ar_disputed", "ar_promise_to_pay_date", "ar_payment_plan"} <= set(settings.properties_for("deals"))
    assert "ar_dunning_paused" in settings.properties_for("companies")


def test_cleared_properties_map_to_no_state_rather_than_a_mapping_error():
    _, mapper = hubspot()
    deal = fixture("hubspot", "deals_search.json", "results")
    deal["properties"] |= {"ar_disputed": "", "ar_promise_to_pay_date": "", "ar_payment_plan": ""}
    mapped = mapper.map_one("deals", deal)
    assert (mapped.record.disputed, mapped.record.promise_to_pay, "payment_plan" in mapped.hints) == (
        False,
        None,
        False,
    )


def test_the_property_names_are_settings_of_the_connection():
    settings, mapper = hubspot(
        disputed_property="x_dispute",
        promise_to_pay_property="x_promised",
        payment_plan_property="x_plan",
        dunning_paused_property="x_hold",
    )
    deal = fixture("hubspot", "deals_search.json", "results")
    deal["properties"] |= {
        "x_dispute": "true",
        "x_promised": "1767225600000",
        "x_plan": "2 weekly instalments",
        "ar_disputed": "false",
    }
    mapped = mapper.map_one("deals", deal)
    assert (mapped.record.disputed, mapped.record.promise_to_pay, mapped.hints["payment_plan"]) == (
        True,
        date(2026, 1, 1),
        "2 weekly instalments",
    )  # epoch milliseconds read too
    assert {"x_dispute", "x_promised", "x_plan"} <= set(settings.properties_for("deals"))
    assert "x_hold" in settings.properties_for("companies")


def test_a_xero_expected_payment_date_is_a_promise_to_pay():
    mapper = load_mapping(XeroProvider.mapping_file, connection="ledger")
    raw = fixture("xero", "invoices.json", "Invoices")
    assert mapper.map_one("invoices", raw).record.promise_to_pay is None
    raw["ExpectedPaymentDate"] = "/Date(1765411200000+0000)/"
    assert mapper.map_one("invoices", raw).record.promise_to_pay == date(2025, 12, 11)


# Into the finance-owned columns, finance's word winning --------------------------------------


@pytest.fixture
def book(tmp_path, run_cli):
    made = Book(tmp_path / "book")
    made.run = lambda *args: run_cli("--config", str(made.config_path), *args)
    yield made
    made.store.close()


def states(book):
    invoices = {
        i.number: (i.disputed, i.promise_to_pay, i.payment_plan is not None) for i in book.store.list_invoices()
    }
    return invoices, {c.name: c.paused for c in book.store.list_customers()}


STATED = {
    "INV-1": (True, None, False),
    "INV-2": (False, TODAY + timedelta(days=5), False),
    "INV-3": (False, None, True),
}


def three_stated_invoices(book, second_customer: str = "acme") -> date:
    """INV-1 disputed, INV-2 promised, INV-3 on a plan in words (as `STATED`); Acme paused."""
    due = TODAY - timedelta(days=40)
    book.customer("acme", "Acme Ltd", paused=True)
    book.invoice("INV-1", "acme", "300.00", due, deal={"disputed": True})
    book.invoice("INV-2", second_customer, "300.00", due, deal={"promise_to_pay": TODAY + timedelta(days=5)})
    book.invoice("INV-3", second_customer, "300.00", due, plan_words="3 monthly instalments")
    return due


def test_provider_states_fill_the_columns_and_a_cli_setting_wins_over_them(book):
    due = three_stated_invoices(book)
    assert apply_provider_states(book.config, book.store) == 4
    assert states(book) == (STATED, {"Acme Ltd": True})
    [plan] = [i.payment_plan for i in book.store.list_invoices() if i.number == "INV-3"]
    assert plan.instalments[0] == (due, Money.of("100.00", "USD"))  # from the due date, over the total
    story = book.run("explain", "INV-1").stdout
    assert "crm provider_state invoice inv-1: INV-1: disputed, as crm deal D-INV-1 states" in story

    # Finance decides otherwise in the CLI: that sticks, whatever the CRM still says.
    for args in (
        ("dispute", "INV-1", "--clear"),
        ("promise", "INV-2", "--clear"),
        ("plan-payments", "INV-3", "--clear"),
        ("pause", "acme", "--resume"),
    ):
        assert book.run(*args).exit_code == 0
    assert apply_provider_states(book.config, book.store) == 0
    assert states(book) == (
        {"INV-1": (False, None, False), "INV-2": (False, None, False), "INV-3": (False, None, False)},
        {"Acme Ltd": False},
    )


def test_states_read_a_record_at_a_time_are_what_one_pass_reads(book, monkeypatch):
    """The pass reads the views' hashes (and the views that moved) a batch of records at a
    time; batches of one change, audit and remember exactly what one batch does."""
    monkeypatch.setattr(provider_states, "STATES_BATCH", 1)
    book.customer("beta", "Beta plc")
    due = three_stated_invoices(book, second_customer="beta")
    assert apply_provider_states(book.config, book.store) == 4
    assert states(book) == (STATED, {"Acme Ltd": True, "Beta plc": False})
    assert apply_provider_states(book.config, book.store) == 0  # each batch kept its digests
    book.invoice("INV-3", "beta", "300.00", due, deal={"disputed": True})  # moved: read again, alone
    assert apply_provider_states(book.config, book.store) == 2  # disputed now, and no plan stated any more
    assert states(book)[0]["INV-3"] == (True, None, False)


def test_a_state_the_provider_drops_is_dropped_unless_finance_set_it(book):
    book.customer("acme", "Acme Ltd")
    book.invoice("INV-1", "acme", "300.00", TODAY - timedelta(days=20), deal={"disputed": True})
    book.invoice("INV-2", "acme", "300.00", TODAY - timedelta(days=20), deal={"disputed": True})
    apply_provider_states(book.config, book.store)
    assert book.run("dispute", "INV-2", "--reason", "wrong quantity").exit_code == 0
    # the account manager settles both disputes in the CRM
    book.invoice("INV-1", "acme", "300.00", TODAY - timedelta(days=20), deal={"disputed": False})
    book.invoice("INV-2", "acme", "300.00", TODAY - timedelta(days=20), deal={"disputed": False})
    assert apply_provider_states(book.config, book.store) == 1
    assert states(book)[0] == {"INV-1": (False, None, False), "INV-2": (True, None, False)}
    assert "INV-1: no longer disputed: no system states it any more" in book.run("explain", "INV-1").stdout


# connector plan-payments ----------------------------------------------------------------------


def test_plan_payments_splits_what_is_owed_and_protects_the_invoice_while_on_time(book):
    book.customer("acme", "Acme Ltd")
    book.invoice("INV-9", "acme", "1000.00", TODAY - timedelta(days=20), paid="100.00")
    first = TODAY + timedelta(days=1)
    result = book.run(
        "plan-payments",
        "INV-9",
        "--instalments",
        "3",
        "--every",
        "fortnight",
        "--first",
        first.isoformat(),
        "--reason",
        "agreed on the phone",
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == (
        f"INV-9: payment plan of 3 instalments: 300.00 USD by {first}, 300.00 USD by {first + timedelta(days=14)}, "
        f"300.00 USD by {first + timedelta(days=28)} (100.00 USD paid before the plan) (fortnightly); "
        "no reminder while it is paid on time"
    )
    plan = build_plan(book.config, book.store, TODAY)
    assert {s.invoice_id: s.code for s in plan.skips} == {"inv-9": "payment_plan_on_time"}
    # the first instalment unpaid the day after its date: reminded at the invoice's own step
    later = first + timedelta(days=1)
    [reminder] = build_plan(book.config, book.store, later).reminders
    assert reminder.invoices == ("inv-9",) and reminder.step.days == 14
    story = book.run("explain", "INV-9").stdout
    assert "payment_plan invoice inv-9: agreed on the phone" in story
    # the CRM note tells the account team
    [note] = [a for a in book.store.list_actions() if a.kind == "create_note"]
    assert note.payload["body"].startswith("INV-9: payment plan of 3 instalments: 300.00 USD by")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "error: give --instalments N --every PERIOD (and --first YYYY-MM-DD), or --clear"),
        (("--instalments", "3"), "error: give --instalments N --every PERIOD (and --first YYYY-MM-DD), or --clear"),
        (("--clear", "--every", "month"), "error: give --clear alone, or --instalments N --every PERIOD"),
        (
            ("--instalments", "3", "--every", "sometimes"),
            "error: --every: 'sometimes' is not a period like month, week, fortnight, 14d or 2 months",
        ),
        (
            ("--instalments", "3", "--every", "month", "--first", "2026-02-30"),
            "error: --first: '2026-02-30' is not a date like 2026-12-31",
        ),
    ],
)
def test_plan_payments_bad_input_is_one_line_and_exit_2(book, args, message):
    book.customer("acme", "Acme Ltd")
    book.invoice("INV-9", "acme", "1000.00", TODAY - timedelta(days=20))
    result = book.run("plan-payments", "INV-9", *args)
    assert (result.exit_code, result.stderr.strip()) == (2, message)
    assert book.store.list_invoices()[0].payment_plan is None


def test_plan_payments_refuses_a_paid_invoice_an_unknown_one_and_zero_instalments(book):
    book.customer("acme", "Acme Ltd")
    book.invoice("INV-9", "acme", "1000.00", TODAY - timedelta(days=20), paid="1000.00")
    paid = book.run("plan-payments", "INV-9", "--instalments", "2", "--every", "month")
    assert (paid.exit_code, paid.stderr.strip()) == (2, "error: INV-9 owes nothing: no plan needed")
    unknown = book.run("plan-payments", "INV-404", "--instalments", "2", "--every", "month")
    assert unknown.exit_code == 2 and unknown.stderr.count("\n") == 1
    zero = book.run("plan-payments", "INV-9", "--instalments", "0", "--every", "month")
    assert zero.exit_code == 2 and zero.stderr.count("\n") == 1 and "--instalments" in zero.stderr
