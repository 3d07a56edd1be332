"""The properties we write on deals and CRM invoices are read back, so that the plan sends only
what the CRM does not hold yet (and shows the old value beside the new one)."""

import httpx
import respx

from connector.mappings.mapper import load_mapping
from connector.providers.hubspot import HubSpotProvider, HubSpotSettings
from support.hubspot_fakes import API, body_of, fixture, make_provider

WRITTEN = ("ar_payment_status", "ar_amount_outstanding", "ar_days_overdue", "ar_last_reminder")


@respx.mock
def test_deal_and_invoice_searches_ask_for_the_properties_we_write():
    deals = respx.post(f"{API}/crm/v3/objects/deals/search").mock(
        return_value=httpx.Response(200, json=fixture("deals_search.json"))
    )
    invoices = respx.post(f"{API}/crm/v3/objects/invoices/search").mock(
        return_value=httpx.Response(200, json=fixture("invoices_search.json"))
    )
    provider = make_provider()
    list(provider.read("deals", None))
    list(provider.read("invoices", None))
    for route in (deals, invoices):
        asked = body_of(route.calls[0].request)["properties"]
        assert set(WRITTEN) <= set(asked), asked
        assert len(asked) == len(set(asked))  # each once


@respx.mock
def test_a_portal_with_its_own_property_names_reads_those_back():
    deals = respx.post(f"{API}/crm/v3/objects/deals/search").mock(
        return_value=httpx.Response(200, json=fixture("deals_search.json"))
    )
    list(make_provider(payment_status_property="x_status", last_reminder_property="x_reminded").read("deals", None))
    asked = body_of(deals.calls[0].request)["properties"]
    assert {"x_status", "x_reminded", "ar_amount_outstanding", "ar_days_overdue"} <= set(asked)
    assert "ar_payment_status" not in asked and "ar_last_reminder" not in asked


def test_the_values_held_are_kept_beside_the_record_and_absent_ones_are_not():
    settings = HubSpotSettings(access_token="pat-na1-test", payment_status_property="x_status")
    mapper = load_mapping(HubSpotProvider.mapping_file, connection="crm", overrides=settings.mapping)
    raw = fixture("deals_search.json")["results"][0]
    raw["properties"] |= {
        "x_status": "partially_paid",
        "ar_amount_outstanding": "500.25",
        "ar_days_overdue": "12",
        "ar_last_reminder": "2024-03-01",
        "ar_payment_status": "ignored: not the configured name",
    }
    hints = mapper.map_one("deals", raw).hints
    assert hints["crm_payment_status"] == "partially_paid"
    assert hints["crm_amount_outstanding"] == "500.25"
    assert hints["crm_days_overdue"] == "12" and hints["crm_last_reminder"] == "2024-03-01"
    assert hints["invoice_number"] == "INV-0042"
    invoice = fixture("invoices_search.json")["results"][0]
    assert not [h for h in mapper.map_one("invoices", invoice).hints if h.startswith("crm_")]  # never written yet
