from connector.linking.numbers import normalise_number
from connector.linking.rules import View, link_customers, link_invoices, link_payments


def view(system, kind, remote_id, entity, data, rank=None, hints=None, object_type="invoice"):
    ranks = {"ledger": 3, "gateway": 2, "crm": 1}
    return View(
        system=system,
        kind=kind,
        object_type=object_type,
        remote_id=remote_id,
        entity_id=entity,
        rank=rank if rank is not None else ranks[kind],
        data=data,
        hints=hints or {},
    )


def inv(number, total="100.00", currency="USD", customer="c1", issue="2026-10-01"):
    return {
        "number": number,
        "currency": currency,
        "total": {"amount": total, "currency": currency},
        "customer_id": customer,
        "issue_date": issue,
    }


def test_the_same_invoice_number_links_and_the_ledger_record_survives():
    links = link_invoices(
        [
            view("gateway", "gateway", "in_1", "g1", inv("INV0042")),
            view("ledger", "ledger", "x1", "l1", inv("INV-0042")),
        ],
        {},
    )
    assert [(link.survivor, link.member, link.rule) for link in links] == [("l1", "g1", "invoice_number")]
    assert "INV0042" in links[0].reason


def test_an_invoice_number_two_ledger_invoices_share_links_nothing():
    links = link_invoices(
        [
            view("gateway", "gateway", "in_1", "g1", inv("INV-7", total="1.00")),
            view("ledger", "ledger", "x1", "l1", inv("INV-7", total="2.00")),
            view("ledger", "ledger", "x2", "l2", inv("INV-7", total="3.00")),
        ],
        {},
    )
    assert links == []


def test_explicit_ids_win_over_numbers_and_never_merge_one_systems_records():
    links = link_invoices(
        [
            view("gateway", "gateway", "in_1", "g1", inv("A-1"), hints={"ledger_invoice_id": "x2"}),
            view("ledger", "ledger", "x1", "l1", inv("A-1")),
            view("ledger", "ledger", "x2", "l2", inv("B-9")),
        ],
        {},
    )
    assert [(link.survivor, link.member, link.rule) for link in links] == [("l2", "g1", "explicit_id")]


def test_same_customer_amount_and_close_dates_link_only_when_unique():
    pair = [
        view("crm", "crm", "d1", "h1", inv(None, issue="2026-10-02"), object_type="deal"),
        view("ledger", "ledger", "x1", "l1", inv(None, issue="2026-10-01")),
    ]
    assert [link.rule for link in link_invoices(pair, {})] == ["customer_amount_date"]
    twin = view("ledger", "ledger", "x2", "l2", inv(None, issue="2026-10-03"))
    assert link_invoices([*pair, twin], {}) == []


def test_currencies_never_link_on_a_shared_number():
    links = link_invoices(
        [
            view("gateway", "gateway", "in_1", "g1", inv("INV-1", currency="EUR")),
            view("ledger", "ledger", "x1", "l1", inv("INV-1", currency="USD")),
        ],
        {},
    )
    assert links == []


def test_customers_link_by_explicit_id_then_email_then_name():
    links = link_customers(
        [
            view(
                "ledger",
                "ledger",
                "c-x",
                "lc",
                {"name": "Acme Trading LLC", "emails": ["ar@acme.example"]},
                object_type="customer",
            ),
            view(
                "gateway",
                "gateway",
                "cus_1",
                "gc",
                {"name": "ACME", "emails": ["AR@acme.example"]},
                object_type="customer",
            ),
            view("crm", "crm", "501", "hc", {"name": "Acme Trading, LLC", "emails": []}, object_type="customer"),
        ]
    )
    assert sorted((link.member, link.rule) for link in links) == [("gc", "email"), ("hc", "name")]
    assert {link.survivor for link in links} == {"lc"}


def test_a_ledger_payment_naming_a_charge_is_the_same_payment():
    links = link_payments(
        [
            view(
                "ledger",
                "ledger",
                "p-1",
                "lp",
                {"remittance": "ch_3AbC"},
                object_type="payment",
                hints={"reference": "ch_3AbC"},
            ),
            view("gateway", "gateway", "ch_3AbC", "gp", {}, object_type="payment"),
            view("gateway", "gateway", "ch_other", "go", {}, object_type="payment"),
        ]
    )
    # the charge survives: it is the money; the ledger payment records it against an invoice
    assert [(link.survivor, link.member) for link in links] == [("gp", "lp")]


def ledger_payment(remote_id, entity, reference):
    return view(
        "ledger",
        "ledger",
        remote_id,
        entity,
        {"remittance": reference},
        object_type="payment",
        hints={"reference": reference},
    )


def test_every_ledger_payment_naming_one_charge_joins_it():
    """A card payment written back as one ledger payment per invoice it paid is one payment."""
    links = link_payments(
        [
            ledger_payment("p-1", "lp1", "ch_3AbC"),
            ledger_payment("p-2", "lp2", "ch_3AbC"),
            view("gateway", "gateway", "ch_3AbC", "gp", {}, object_type="payment"),
        ]
    )
    assert [(link.survivor, link.member, link.rule) for link in links] == [
        ("gp", "lp1", "explicit_id"),
        ("gp", "lp2", "explicit_id"),
    ]


def test_a_ledger_payment_already_linked_or_naming_two_charges_links_nothing_more():
    links = link_payments(
        [
            ledger_payment("p-1", "gp", "ch_3AbC"),  # linked on an earlier run: it is the charge's
            ledger_payment("p-2", "lp2", "ch_3AbC and ch_3XyZ"),  # which one? left for a person
            view("gateway", "gateway", "ch_3AbC", "gp", {}, object_type="payment"),
            view("gateway", "gateway", "ch_3XyZ", "gx", {}, object_type="payment"),
        ]
    )
    assert links == []


def test_invoice_numbers_normalise_separators_and_case():
    assert normalise_number("inv-0042") == normalise_number("INV 0042") == normalise_number("INV0042")


def test_an_invoice_stored_before_its_contact_links_by_the_customer_its_system_names():
    def stored_early(system, kind, remote, entity, contact):
        data = inv(None, total="250.00", customer=None)
        return View(
            system,
            kind,
            "invoice",
            remote,
            entity,
            {"ledger": 3, "gateway": 2}[kind],
            data,
            links={"customer": contact},
        )

    views = [
        stored_early("ledger", "ledger", "x1", "l1", "X-C1"),
        stored_early("gateway", "gateway", "in_1", "g1", "cus_1"),
    ]
    # no customer id in either view; the contacts arrived later and were linked as one customer
    assert link_invoices(views, {}) == []
    customers = {("ledger", "X-C1"): "acme", ("gateway", "cus_1"): "acme"}
    [link] = link_invoices(views, {}, customers)
    assert (link.survivor, link.member, link.rule) == ("l1", "g1", "customer_amount_date")
