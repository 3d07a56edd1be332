"""The QuickBooks provider's reads against respx: query paging by LastUpdatedTime, cursors with
local offsets, CDC deletes and the 1,000-object window split."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
from qbo_support import (
    COMPANY,
    answer,
    cdc_body,
    credit_memo,
    customer,
    invoice,
    payment,
    provider,
    query_body,
    tombstone,
)

from connector.plugin import PaginationLoopError
from connector_quickbooks import incremental


def _query_of(request: httpx.Request) -> str:
    return parse_qs(urlsplit(str(request.url)).query)["query"][0]


def test_first_read_pages_by_time_and_saves_the_newest_moment():
    pages = [
        query_body("Invoice", [invoice("1", "2024-05-01T10:00:00-07:00"), invoice("2", "2024-05-01T11:00:00-07:00")]),
        query_body("Invoice", [invoice("2", "2024-05-01T11:00:00-07:00"), invoice("3", "2024-05-01T12:30:00-07:00")]),
        query_body("Invoice", [invoice("3", "2024-05-01T12:30:00-07:00")]),
    ]
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(f"{COMPANY}/query").mock(side_effect=[answer(p) for p in pages])
        got = list(provider().read("invoices", None))
    queries = [_query_of(call.request) for call in route.calls]
    assert queries[0] == "SELECT * FROM Invoice ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 2"
    # keyset: the next query starts at the newest moment seen, in UTC, from position 1
    assert queries[1] == (
        "SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime >= '2024-05-01T18:00:00+00:00' "
        "ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 2"
    )
    assert "'2024-05-01T19:30:00+00:00'" in queries[2]
    for call in route.calls:
        assert call.request.url.params["minorversion"] == "75"
        assert call.request.headers["Authorization"] == "Bearer eyJaccess-token-one"
    ids = [[r["Id"] for r in page.records] for page in got]
    assert ids == [["1", "2"], ["3"], []]  # the overlap is read again, not yielded twice
    assert json.loads(got[-1].cursor) == {"since": "2024-05-01T19:30:00Z"}


def test_a_full_page_within_one_second_moves_startposition():
    same = "2024-05-01T10:00:00-07:00"
    pages = [
        query_body("Customer", [customer("1", same), customer("2", same)]),
        query_body("Customer", [customer("3", same)], start=3),
    ]
    with respx.mock() as mock:
        route = mock.get(f"{COMPANY}/query").mock(side_effect=[answer(p) for p in pages])
        got = list(provider().read("customers", json.dumps({"since": "2024-05-01T17:00:00Z"})))
    queries = [_query_of(call.request) for call in route.calls]
    # inactive customers too: QuickBooks hides them by default
    assert queries[0].startswith(
        "SELECT * FROM Customer WHERE Active IN (true, false) AND MetaData.LastUpdatedTime >= "
    )
    assert queries[1].endswith("STARTPOSITION 3 MAXRESULTS 2")
    assert [r["Id"] for p in got for r in p.records] == ["1", "2", "3"]


def test_paging_that_ignores_startposition_is_caught():
    same = "2024-05-01T10:00:00-07:00"
    page = query_body("Payment", [payment("1", same), payment("2", same)])
    with respx.mock() as mock:
        mock.get(f"{COMPANY}/cdc").mock(return_value=answer(cdc_body("Payment", [])))
        mock.get(f"{COMPANY}/query").mock(side_effect=lambda request: answer(page))
        with pytest.raises(PaginationLoopError):
            list(provider().read("payments", json.dumps({"since": "2024-05-01T17:00:00Z"})))


def test_cursor_reads_deletes_from_cdc_first_without_moving_the_cursor():
    cursor = json.dumps({"since": "2024-05-30T12:00:00Z"})
    gone = tombstone("130", "2024-05-31T09:00:00-07:00")
    changed = invoice("131", "2024-05-31T08:00:00-07:00")
    with respx.mock() as mock:
        cdc = mock.get(f"{COMPANY}/cdc").mock(return_value=answer(cdc_body("Invoice", [changed, gone])))
        mock.get(f"{COMPANY}/query").mock(return_value=answer(query_body("Invoice", [changed])))
        pages = list(provider().read("invoices", cursor))
    params = cdc.calls[0].request.url.params
    assert params["entities"] == "Invoice"
    assert params["changedSince"] == "2024-05-30T11:55:00+00:00"  # the cursor less the 5-minute overlap
    assert pages[0].cursor is None
    assert pages[0].records == [{**gone, "CurrencyRef": {"value": "USD"}}]
    assert [r["Id"] for r in pages[1].records] == ["131"]
    assert json.loads(pages[1].cursor) == {"since": "2024-05-31T15:00:00Z"}


def test_cdc_answer_of_1000_objects_splits_the_window():
    first = [invoice(str(i), f"2024-05-31T0{i % 9}:00:00-07:00") for i in range(999)] + [
        tombstone("5000", "2024-05-31T09:30:00-07:00")
    ]
    second = [tombstone("5000", "2024-05-31T09:30:00-07:00"), tombstone("5001", "2024-05-31T10:00:00-07:00")]
    with respx.mock() as mock:
        cdc = mock.get(f"{COMPANY}/cdc").mock(
            side_effect=[answer(cdc_body("CreditMemo", first)), answer(cdc_body("CreditMemo", second))]
        )
        mock.get(f"{COMPANY}/query").mock(return_value=answer(query_body("CreditMemo", [])))
        pages = list(provider().read("credit_memos", json.dumps({"since": "2024-05-30T00:00:00Z"})))
    assert [call.request.url.params["changedSince"] for call in cdc.calls] == [
        "2024-05-29T23:55:00+00:00",
        "2024-05-31T16:30:00+00:00",
    ]  # split at the newest change reached
    assert [r["Id"] for r in pages[0].records] == ["5000", "5001"]
    assert any("window split" in note for note in pages[0].notes)


def test_cdc_never_asks_beyond_30_days_and_says_so():
    with respx.mock() as mock:
        cdc = mock.get(f"{COMPANY}/cdc").mock(return_value=answer(cdc_body("Payment", [])))
        mock.get(f"{COMPANY}/query").mock(return_value=answer(query_body("Payment", [])))
        pages = list(provider().read("payments", json.dumps({"since": "2024-01-01T00:00:00Z"})))
    assert cdc.calls[0].request.url.params["changedSince"] == "2024-05-02T12:10:00+00:00"
    assert "30 days" in pages[0].notes[0]


def test_home_currency_is_read_from_preferences_for_deleted_objects():
    with respx.mock() as mock:
        mock.get(f"{COMPANY}/cdc").mock(
            return_value=answer(cdc_body("Payment", [tombstone("9", "2024-05-31T09:00:00-07:00")]))
        )
        prefs = mock.get(f"{COMPANY}/preferences").mock(
            return_value=answer(
                {"Preferences": {"CurrencyPrefs": {"MultiCurrencyEnabled": True, "HomeCurrency": {"value": "JPY"}}}}
            )
        )
        mock.get(f"{COMPANY}/query").mock(return_value=answer(query_body("Payment", [])))
        pages = list(provider(home_currency=None).read("payments", json.dumps({"since": "2024-05-30T00:00:00Z"})))
    assert prefs.called
    assert pages[0].records[0]["CurrencyRef"] == {"value": "JPY"}


def test_every_stream_queries_its_entity():
    seen = {}
    with respx.mock() as mock:

        def reply(request: httpx.Request) -> httpx.Response:
            entity = _query_of(request).split()[3]
            seen[entity] = True
            sample = {"Customer": customer, "Invoice": invoice, "Payment": payment, "CreditMemo": credit_memo}[entity]()
            return answer(query_body(entity, [sample]))

        mock.get(f"{COMPANY}/query").mock(side_effect=reply)
        p = provider()
        counts = {s: sum(len(page.records) for page in p.read(s, None)) for s in p.streams}
    assert counts == {"customers": 1, "invoices": 1, "payments": 1, "credit_memos": 1}
    assert set(seen) == {"Customer", "Invoice", "Payment", "CreditMemo"}


def test_local_offsets_compare_as_moments():
    # 10:00-07:00 is later than 16:30Z: the cursor is the later moment, whatever the offsets say
    a = invoice("1", "2024-05-01T16:30:00+00:00")
    b = invoice("2", "2024-05-01T10:00:00-0700")
    assert incremental.updated_at(b) > incremental.updated_at(a)
    decided = incremental.step(incremental.Position(None), [b, a], 5)
    assert incremental.dump_cursor(decided.cursor_since) == '{"since":"2024-05-01T17:00:00Z"}'
