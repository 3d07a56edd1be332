from __future__ import annotations

import httpx
import pytest

from connector.errors import PaginationLoopError
from connector.http import CursorPaginator, LastIdPaginator, PageNumberPaginator, ProviderHttp, iter_pages
from support.http_fakes import BASE


def serve(pages: dict[str | None, dict]) -> tuple[ProviderHttp, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        key = (
            request.url.params.get("after")
            or request.url.params.get("starting_after")
            or request.url.params.get("page")
        )
        return httpx.Response(200, json=pages[key])

    return ProviderHttp("test", base_url=BASE, transport=httpx.MockTransport(answer)), seen


def test_stripe_lists_follow_the_last_id_until_has_more_is_false() -> None:
    http, seen = serve(
        {
            None: {"data": [{"id": "in_1"}, {"id": "in_2"}], "has_more": True},
            "in_2": {"data": [{"id": "in_3"}], "has_more": False},
        }
    )

    def fetch(after: str | None) -> httpx.Response:
        return http.request("GET", "/v1/invoices", params={"starting_after": after} if after else None)

    # [*...], not list(...): in list()'s type context mypy solves iter_pages' T as `str | None`,
    # which the Paginator[str] then does not match (Paginator is invariant)
    pages = [*iter_pages(fetch, LastIdPaginator(), provider="stripe")]
    assert [token for _, token in pages] == ["in_2", None]
    assert len(seen) == 2


def test_hubspot_cursor_at_a_json_path_resumes_from_a_saved_token() -> None:
    http, seen = serve(
        {
            "10": {"results": [1], "paging": {"next": {"after": "20"}}},
            "20": {"results": [2]},
        }
    )

    def fetch(after: str | None) -> httpx.Response:
        return http.request("GET", "/crm/v3/objects/deals", params={"after": after})

    pages = [*iter_pages(fetch, CursorPaginator(("paging", "next", "after")), provider="hubspot", start="10")]
    assert [r.json()["results"] for r, _ in pages] == [[1], [2]]
    assert [t for _, t in pages] == ["20", None]


def test_xero_page_numbers_stop_on_a_short_page() -> None:
    http, seen = serve(
        {
            "1": {"Invoices": [{}, {}]},
            "2": {"Invoices": [{}]},
        }
    )

    def fetch(page: int | None) -> httpx.Response:
        return http.request("GET", "/Invoices", params={"page": page})

    pages = [*iter_pages(fetch, PageNumberPaginator("Invoices", page_size=2), provider="xero")]
    assert [t for _, t in pages] == [2, None]


def test_a_repeated_cursor_raises_pagination_loop_error() -> None:
    http, seen = serve(
        {
            None: {"paging": {"next": {"after": "A"}}},
            "A": {"paging": {"next": {"after": "B"}}},
            "B": {"paging": {"next": {"after": "A"}}},
        }
    )

    def fetch(after: str | None) -> httpx.Response:
        return http.request("GET", "/crm/v3/objects/deals", params={"after": after} if after else None)

    with pytest.raises(
        PaginationLoopError, match="Loop detected in pagination: cursor 'A' was already followed"
    ) as raised:
        for _ in iter_pages(fetch, CursorPaginator(("paging", "next", "after")), provider="hubspot"):
            pass
    assert raised.value.provider == "hubspot"
    assert len(seen) == 3
