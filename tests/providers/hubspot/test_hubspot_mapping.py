from datetime import UTC, date, datetime

import pytest

from connector.errors import ConfigError
from connector.mappings.mapper import load_mapping
from connector.money import Money
from connector.providers.hubspot import HubSpotProvider, HubSpotSettings
from support.hubspot_fakes import fixture


def mapper(**settings):
    s = HubSpotSettings(access_token="pat-na1-test", **settings)
    return load_mapping(HubSpotProvider.mapping_file, connection="crm", overrides=s.mapping)


def mapped(stream, name, **settings):
    records, errors = mapper(**settings).map_page(stream, fixture(name)["results"])
    assert errors == []
    return {m.ref.remote_id: m for m in records}


def test_companies_become_customers_named_by_their_domain_when_nameless():
    by_id = mapped("companies", "companies_search_page1.json") | mapped("companies", "companies_search_page2.json")
    assert by_id["5001"].record.name == "Acme Trading Ltd"
    assert by_id["5003"].record.name == "gulf-supply.example"
    assert by_id["5001"].ref.object_type == "customer" and by_id["5001"].ref.system == "crm"
    assert by_id["5001"].ref.remote_updated_at == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert by_id["5001"].hints == {"domain": "acme.example"}


def test_contacts_join_first_and_last_names_and_link_their_company():
    by_id = mapped("contacts", "contacts_search.json")
    assert by_id["7001"].record.name == "Ada Lovelace" and by_id["7001"].record.email == "ada@acme.example"
    assert by_id["7002"].record.name == "Kenji"
    assert by_id["7001"].links == {"customer": "5001"}


def test_deals_map_to_invoices_with_exact_usd_jpy_and_kwd_amounts():
    by_id = mapped("deals", "deals_search.json")
    usd, jpy, kwd, early = (by_id[i].record for i in ("9001", "9002", "9003", "9004"))
    assert usd.total == Money.of("1500.25", "USD") and usd.subtotal == usd.total
    assert jpy.total == Money.of("1250000", "JPY") and jpy.total.amount.as_tuple().exponent == 0
    assert kwd.total == Money.of("1234.567", "KWD") and str(kwd.total.amount) == "1234.567"
    assert usd.status == "open" and kwd.status == "void" and early.status == "draft"
    assert early.total == Money.zero("USD")  # a deal without an amount is worth zero
    assert usd.issue_date == date(2024, 2, 15)
    assert by_id["9001"].hints["invoice_number"] == "INV-0042"
    assert by_id["9001"].ref.object_type == "deal"


def test_deal_company_link_comes_from_the_attached_associations():
    raw = fixture("deals_search.json")["results"][0]
    raw["associations"] = {"companies": {"results": [{"id": "5001", "type": "deal_to_company"}]}}
    assert mapper().map_one("deals", raw).links == {"customer": "5001"}


def test_archived_deals_are_marked_deleted():
    (deal,) = mapper().map_page("deals", fixture("deals_archived.json")["results"])[0]
    assert deal.deleted is True


def test_crm_invoices_map_amount_paid_from_billed_less_balance_due_exactly():
    by_id = mapped("invoices", "invoices_search.json")
    usd, jpy, kwd, void = (by_id[i].record for i in ("3001", "3002", "3003", "3004"))
    assert usd.number == "INV-1001" and usd.amount_paid == Money.of("1000.00", "USD")
    assert usd.due_date == date(2024, 3, 31) and usd.status == "open"
    assert jpy.total == Money.of("1250000", "JPY") and jpy.amount_paid == jpy.total and jpy.status == "paid"
    assert jpy.issue_date == date(2024, 3, 1) and jpy.due_date == date(2024, 3, 31)  # epoch ms
    assert kwd.amount_paid == Money.of("234.562", "KWD") and kwd.issue_date == date(2024, 3, 2)
    assert void.status == "void"
    assert by_id["3001"].hints == {"invoice_number": "INV-1001"}


def test_settings_choose_the_invoice_number_property_and_a_default_currency():
    raw = fixture("deals_search.json")["results"][0]
    raw["properties"] = {k: v for k, v in raw["properties"].items() if k != "deal_currency_code"} | {"inv_no": "A-7"}
    record = mapper(default_currency="eur", invoice_number_property="inv_no").map_one("deals", raw)
    assert record.record.currency == "EUR" and record.hints["invoice_number"] == "A-7"


def test_a_custom_deal_stage_is_reported_until_the_mapping_is_overridden():
    raw = fixture("deals_search.json")["results"][0]
    raw["properties"]["dealstage"] = "12345678"
    _, errors = mapper().map_page("deals", [raw])
    assert [(e.provider, e.object_id, e.field) for e in errors] == [("hubspot", "9001", "status")]
    overridden = mapper(mapping={"status_maps": {"deal_stage": {"12345678": "open"}}})
    assert overridden.map_one("deals", raw).record.status == "open"


def test_a_bad_override_is_refused_when_loaded():
    with pytest.raises(ConfigError, match="not one of"):
        mapper(mapping={"status_maps": {"invoice_status": {"open": "outstanding"}}})
