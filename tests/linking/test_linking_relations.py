"""Related customers: a ledger's contact group, a CRM parent company, a shared company e-mail
domain relate customers; a public mail provider's domain does not."""

from __future__ import annotations

from connector.linking.relations import CustomerFacts, email_domain, facts_of, related_customers
from connector.mappings.mapper import load_mapping
from connector.providers.hubspot import HubSpotProvider, HubSpotSettings
from connector.providers.xero import XeroProvider


def facts(entity, system="ledger", remote=None, emails=(), groups=(), parent=None):
    return CustomerFacts(entity, system, remote or entity, tuple(emails), tuple(groups), parent)


def test_customers_of_one_contact_group_are_related_each_to_the_others():
    related = related_customers(
        [facts("a", groups=["Acme Group"]), facts("b", groups=["acme group"]), facts("c", groups=["Other"])]
    )
    assert related == {"a": frozenset({"b"}), "b": frozenset({"a"}), "c": frozenset()}


def test_a_parent_company_is_related_to_its_children_and_children_to_each_other():
    related = related_customers(
        [
            facts("p", system="crm", remote="100"),
            facts("c1", system="crm", remote="101", parent="100"),
            facts("c2", system="crm", remote="102", parent="100"),
            facts("x", system="crm", remote="103"),
        ]
    )
    assert related["p"] == {"c1", "c2"}
    assert related["c1"] == {"p", "c2"}
    assert related["x"] == frozenset()


def test_a_shared_company_domain_relates_customers_but_public_mail_domains_do_not():
    related = related_customers(
        [
            facts("a", emails=["ap@acme-group.com"]),
            facts("b", emails=["Finance@ACME-GROUP.com"]),
            facts("c", emails=["jo@gmail.com"]),
            facts("d", emails=["max@gmail.com"]),
            facts("e", emails=["x@yahoo.co.uk"]),
            facts("f", emails=["y@yahoo.co.uk"]),
        ]
    )
    assert related["a"] == {"b"} and related["b"] == {"a"}
    assert all(related[e] == frozenset() for e in "cdef")


def test_a_customer_is_never_related_to_itself_even_through_two_systems():
    related = related_customers([facts("a", emails=["ap@acme.com"]), facts("a", system="crm", emails=["b@acme.com"])])
    assert related == {"a": frozenset()}


def test_email_domains_of_public_providers_are_none():
    assert email_domain("a@gmx.de") is None and email_domain("a@web.de") is None
    assert email_domain("a@proton.me") is None and email_domain("not an address") is None
    assert email_domain("a@Acme.example.") == "acme.example"


def test_xero_contact_groups_and_hubspot_parent_companies_reach_the_relations_through_the_mappings():
    def rows(mapper, stream, system, records):
        mapped, errors = mapper.map_page(stream, records)
        assert errors == []
        return [
            {
                "system": system,
                "remote_id": m.ref.remote_id,
                "entity_id": f"{system}-{m.ref.remote_id}",
                "data": {**m.record.model_dump(mode="json"), "_sync": {"hints": m.hints}},
            }
            for m in mapped
        ]

    def contact(contact_id, name, groups):
        return {
            "ContactID": contact_id,
            "Name": name,
            "EmailAddress": f"ap@{contact_id}.example",
            "UpdatedDateUTC": "/Date(1476389616437+0000)/",
            "ContactGroups": [{"ContactGroupID": f"g-{g}", "Name": g, "Status": s} for g, s in groups],
        }

    xero = load_mapping(XeroProvider.mapping_file, connection="ledger")
    ledger = rows(
        xero,
        "contacts",
        "ledger",
        [
            contact("c1", "Acme Ltd", [("Acme Group", "ACTIVE")]),
            contact("c2", "Acme GmbH", [("Acme Group", "ACTIVE")]),
            contact("c3", "Ex-member", [("Acme Group", "DELETED")]),
        ],
    )
    settings = HubSpotSettings(access_token="pat-na1-test")
    hubspot = load_mapping(HubSpotProvider.mapping_file, connection="crm", overrides=settings.mapping)

    def company(company_id, parent=None):
        properties = {"name": f"Company {company_id}", "hs_parent_company_id": parent}
        return {"id": company_id, "properties": properties, "updatedAt": "2024-03-01T10:00:00Z", "archived": False}

    crm = rows(hubspot, "companies", "crm", [company("500"), company("501", "500"), company("502")])
    related = related_customers([facts_of(row) for row in ledger + crm])
    assert related["ledger-c1"] == {"ledger-c2"} and related["ledger-c3"] == frozenset()
    assert related["crm-500"] == {"crm-501"} and related["crm-502"] == frozenset()
