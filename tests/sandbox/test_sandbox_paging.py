"""Paging a large list costs the page, not the list: the faces keep each query's order (Xero,
HubSpot) or cut it by bisection (Stripe `created`, Xero `If-Modified-Since`, HubSpot range
filters on the sort property). These tests hold those shortcuts to what a plain filter and
sort of the whole list answers, and show that a write between two pages is seen."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.sandbox.common import parse_dotnet_date
from support.sandbox_books import ACCOUNT_BANK, T0, hubspot_object, iso, stripe_book, xero_invoice
from support.sandbox_harness import hubspot, running, stripe, xero

# ---------------------------------------------------------------- Xero


def _xero_invoices(n: int) -> list[dict]:
    # Three invoices per second, so `If-Modified-Since` meets ties; every fifth a bill.
    return [
        xero_invoice(
            f"e0000000-0000-4000-8000-{i:012d}",
            f"INV-{i:03d}",
            total=f"{10 + i}.00",
            currency="USD",
            updated=T0 + i // 3,
            type_="ACCPAY" if i % 5 == 4 else "ACCREC",
        )
        for i in range(n)
    ]


def _xero_book(n: int) -> dict:
    accounts = [
        {
            "AccountID": ACCOUNT_BANK,
            "Code": "090",
            "Name": "Bank",
            "Type": "BANK",
            "Status": "ACTIVE",
            "CurrencyCode": "USD",
        }
    ]
    return {"xero": {"Invoices": _xero_invoices(n), "Accounts": accounts}}


def _since(epoch: float) -> dict[str, str]:
    return {"If-Modified-Since": datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _numbers(answer) -> list[str]:
    return [i["InvoiceNumber"] for i in answer.json()["Invoices"]]


def test_xero_if_modified_since_on_a_kept_order_answers_as_a_filter_and_sort_would():
    invoices = _xero_invoices(40)
    with running(_xero_book(40)) as sandbox, xero(sandbox) as client:
        for order, descending in (("UpdatedDateUTC ASC", False), ("UpdatedDateUTC DESC", True)):
            for since in (T0 - 5, T0, T0 + 4, T0 + 7, T0 + 13, T0 + 14):
                expected = [
                    i for i in invoices if i["Type"] == "ACCREC" and parse_dotnet_date(i["UpdatedDateUTC"]) >= since
                ]
                expected.sort(key=lambda i: parse_dotnet_date(i["UpdatedDateUTC"]), reverse=descending)
                pages = [
                    _numbers(
                        client.get(
                            "/Invoices",
                            params={"where": 'Type=="ACCREC"', "order": order, "page": page, "pageSize": 7},
                            headers=_since(since),
                        )
                    )
                    for page in (1, 2, 3, 4, 5, 6)
                ]
                assert [n for page in pages for n in page] == [i["InvoiceNumber"] for i in expected], (order, since)


def test_xero_a_payment_between_two_pages_is_seen_on_the_next_page():
    with running(_xero_book(30)) as sandbox, xero(sandbox) as client:
        params = {"where": 'Type=="ACCREC"', "order": "UpdatedDateUTC ASC", "pageSize": 10}
        first = _numbers(client.get("/Invoices", params={**params, "page": 1}))
        paid = client.get("/Invoices", params={**params, "page": 1}).json()["Invoices"][0]
        payment = {
            "Invoice": {"InvoiceID": paid["InvoiceID"]},
            "Account": {"Code": "090"},
            "Amount": str(paid["AmountDue"]),
            "Date": "2024-01-05",
        }
        assert client.put("/Payments", json={"Payments": [payment]}).status_code == 200
        # The paid invoice is now the most recently updated: the order moved on under the pages.
        second = _numbers(client.get("/Invoices", params={**params, "page": 2}))
        third = client.get("/Invoices", params={**params, "page": 3}).json()["Invoices"]
        since_payment = client.get(
            "/Invoices", params={**params, "page": 1}, headers=_since(sandbox.clock() - 5)
        ).json()["Invoices"]
    sales = [f"INV-{i:03d}" for i in range(30) if i % 5 != 4]
    assert first == sales[:10]
    assert second == sales[11:21]
    assert [i["InvoiceNumber"] for i in third] == sales[21:] + [paid["InvoiceNumber"]]
    assert (third[-1]["Status"], third[-1]["AmountDue"]) == ("PAID", 0)
    assert [(i["InvoiceNumber"], i["Status"]) for i in since_payment] == [(paid["InvoiceNumber"], "PAID")]


def test_xero_an_invoice_emailed_between_two_pages_moves_to_the_end():
    with running(_xero_book(10)) as sandbox, xero(sandbox) as client:
        params = {"order": "UpdatedDateUTC ASC", "pageSize": 4}
        before = _numbers(client.get("/Invoices", params={**params, "page": 1}))
        assert client.post("/Invoices/e0000000-0000-4000-8000-000000000000/Email").status_code == 204
        after = [_numbers(client.get("/Invoices", params={**params, "page": page})) for page in (1, 2, 3)]
    assert before == ["INV-000", "INV-001", "INV-002", "INV-003"]
    assert after == [
        ["INV-001", "INV-002", "INV-003", "INV-004"],
        ["INV-005", "INV-006", "INV-007", "INV-008"],
        ["INV-009", "INV-000"],
    ]


# ---------------------------------------------------------------- HubSpot


def _deals(n: int) -> list[dict]:
    # Two deals per second; amounts out of step with the dates.
    return [
        hubspot_object(1000 + i, {"dealname": f"D{i}", "amount": str((i * 7) % 11)}, modified=T0 + i // 2)
        for i in range(n)
    ]


def _search(client, filters, sorts, after=0, limit=5, groups=None):
    body = {
        "filterGroups": groups if groups is not None else [{"filters": filters}],
        "sorts": sorts,
        "properties": ["dealname", "amount"],
        "limit": limit,
        "after": str(after),
    }
    answer = client.post("/crm/v3/objects/deals/search", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _all(client, filters, sorts, groups=None) -> list[str]:
    ids, after = [], 0
    while True:
        page = _search(client, filters, sorts, after, groups=groups)
        ids += [r["id"] for r in page["results"]]
        if "paging" not in page:
            return ids
        after = int(page["paging"]["next"]["after"])


def test_hubspot_range_filters_on_the_sort_property_answer_as_a_filter_and_sort_would():
    deals = _deals(30)
    ms = {d["id"]: (T0 + (int(d["id"]) - 1000) // 2) * 1000 for d in deals}
    with running({"hubspot": {"deals": deals}}) as sandbox, hubspot(sandbox) as client:
        for sort, descending in (("hs_lastmodifieddate", False), ("-hs_lastmodifieddate", True)):
            for op, test in (
                ("GTE", lambda m, v: m >= v),
                ("GT", lambda m, v: m > v),
                ("LT", lambda m, v: m < v),
                ("LTE", lambda m, v: m <= v),
                ("EQ", lambda m, v: m == v),
            ):
                for value in ((T0 + 6) * 1000, (T0 + 6) * 1000 + 1, 0, (T0 + 99) * 1000):
                    filters = [{"propertyName": "hs_lastmodifieddate", "operator": op, "value": str(value)}]
                    expected = sorted(
                        (i for i in ms if test(ms[i], value)), key=lambda i: (-ms[i] if descending else ms[i], int(i))
                    )
                    assert _all(client, filters, [sort]) == expected, (sort, op, value)
            between = [
                {
                    "propertyName": "hs_lastmodifieddate",
                    "operator": "BETWEEN",
                    "value": iso(T0 + 3),
                    "highValue": str((T0 + 5) * 1000),
                }
            ]
            expected = sorted(
                (i for i in ms if (T0 + 3) * 1000 <= ms[i] <= (T0 + 5) * 1000),
                key=lambda i: (-ms[i] if descending else ms[i], int(i)),
            )
            assert _all(client, between, [sort]) == expected
        # The window's other filters still apply, and a second group is tried record by record.
        narrowed = [
            {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str((T0 + 10) * 1000)},
            {"propertyName": "amount", "operator": "LT", "value": "5"},
        ]
        either = [{"filters": narrowed[:1]}, {"filters": [{"propertyName": "amount", "operator": "EQ", "value": "0"}]}]
        assert _all(client, narrowed, ["hs_lastmodifieddate"]) == [
            i for i in sorted(ms, key=int) if ms[i] >= (T0 + 10) * 1000 and (int(i) - 1000) * 7 % 11 < 5
        ]
        assert _all(client, [], ["hs_lastmodifieddate"], groups=either) == [
            i for i in sorted(ms, key=int) if ms[i] >= (T0 + 10) * 1000 or (int(i) - 1000) * 7 % 11 == 0
        ]


def test_hubspot_a_text_value_in_the_sort_property_falls_back_to_the_plain_filter():
    deals = _deals(6) + [hubspot_object(2000, {"dealname": "odd", "amount": "n/a"}, modified=T0)]
    with running({"hubspot": {"deals": deals}}) as sandbox, hubspot(sandbox) as client:
        over = _all(client, [{"propertyName": "amount", "operator": "GTE", "value": "4"}], ["amount"])
    # Amounts 0, 7, 3, 10, 6, 2 for 1000..1005; "n/a" is no number, so it is compared as text
    # ("n/a" > "4") and sorted after the numbers.
    assert over == ["1004", "1001", "1003", "2000"]


def test_hubspot_a_patch_and_a_create_between_two_pages_of_a_window_are_seen():
    with running({"hubspot": {"deals": _deals(12)}}) as sandbox, hubspot(sandbox) as client:
        window = [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(T0 * 1000)}]
        first = [r["id"] for r in _search(client, window, ["hs_lastmodifieddate"], 0)["results"]]
        client.patch("/crm/v3/objects/deals/1001", json={"properties": {"amount": "99"}})
        created = client.post("/crm/v3/objects/deals", json={"properties": {"dealname": "new", "amount": "1"}}).json()[
            "id"
        ]
        second = _search(client, window, ["hs_lastmodifieddate"], 5)
        rest = _search(client, window, ["hs_lastmodifieddate"], 10)
    assert first == ["1000", "1001", "1002", "1003", "1004"]
    # 1001 moved to the end (modified now) and the new deal after it: the later pages shift.
    assert [r["id"] for r in second["results"]] == ["1006", "1007", "1008", "1009", "1010"]
    assert [r["id"] for r in rest["results"]] == ["1011", "1001", created]
    assert rest["results"][1]["properties"]["amount"] == "99"
    assert second["total"] == 13


# ---------------------------------------------------------------- Stripe


def _walk(client, **params) -> list[str]:
    seen, after = [], None
    while True:
        page = client.get("/v1/invoices", params={**params, **({"starting_after": after} if after else {})}).json()
        seen += [o["id"] for o in page["data"]]
        if not page["has_more"]:
            return seen
        after = page["data"][-1]["id"]


def test_stripe_created_bounds_cut_by_bisection_answer_as_a_walk_would():
    book = stripe_book(invoices=30)
    invoices = sorted(book["invoices"], key=lambda o: (o["created"], o["id"]), reverse=True)
    with running({"stripe": book}) as sandbox, stripe(sandbox) as client:
        for bounds in (
            {"created[lte]": T0 + 3600 * 20},
            {"created[lt]": T0 + 3600 * 20},
            {"created[gte]": T0 + 3600 * 2},
            {"created[gt]": T0 + 3600 * 2, "created[lte]": T0 + 3600 * 9},
            {"created": T0 + 3600 * 2},
            {"created[gte]": T0 + 3600 * 9, "created[lt]": T0 + 3600 * 9},
            {"created[lte]": T0 - 1},
        ):
            low = max(
                [
                    v + (k == "created[gt]")
                    for k, v in bounds.items()
                    if k in ("created[gt]", "created[gte]", "created")
                ],
                default=0,
            )
            high = min(
                [
                    v - (k == "created[lt]")
                    for k, v in bounds.items()
                    if k in ("created[lt]", "created[lte]", "created")
                ],
                default=10**12,
            )
            expected = [o["id"] for o in invoices if low <= o["created"] <= high]
            assert _walk(client, limit=4, **bounds) == expected, bounds
            if len(expected) > 3:  # towards newer objects, from inside the window
                newer = client.get("/v1/invoices", params={"limit": 2, "ending_before": expected[3], **bounds}).json()
                assert [o["id"] for o in newer["data"]] == expected[1:3] and newer["has_more"] is True


def test_stripe_an_event_emitted_between_two_pages_is_listed():
    with running({"stripe": stripe_book(invoices=5)}) as sandbox, stripe(sandbox) as client:
        before = client.get("/v1/events", params={"limit": 1, "created[gte]": T0}).json()
        assert client.post("/v1/invoices/in_0001/pay", data={"paid_out_of_band": "true"}).status_code == 200
        after = client.get("/v1/events", params={"limit": 10, "created[gte]": T0}).json()
        older = client.get(
            "/v1/events", params={"limit": 10, "created[gte]": T0, "starting_after": after["data"][1]["id"]}
        ).json()
    assert before["has_more"] is True
    assert [e["type"] for e in after["data"][:2]] == ["invoice.paid", "invoice.updated"]
    assert [e["id"] for e in older["data"]] == ["evt_0002", "evt_0001"]
