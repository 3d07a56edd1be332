"""Paginators in the spirit of singer-sdk: `has_more(response)` and `get_next(response)`,
plus `iter_pages`, which follows them and refuses to follow the same token twice.

    pages = iter_pages(
        lambda after: http.request("GET", "/v1/invoices", params={"limit": 100, "starting_after": after}),
        LastIdPaginator(),
        provider="stripe",
        start=saved_cursor,
    )
    for response, next_token in pages:
        yield Page("invoices", response.json()["data"], cursor=next_token)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import httpx

from connector.errors import PaginationLoopError

T = TypeVar("T")


class Paginator(Generic[T]):
    """Decides from one response whether there is another page and which token fetches it.
    `first` is the token of the first page (None: no parameter)."""

    first: T | None = None

    def has_more(self, response: httpx.Response) -> bool:
        return self.get_next(response) is not None

    def get_next(self, response: httpx.Response) -> T | None:
        raise NotImplementedError


def _dig(body: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


class CursorPaginator(Paginator[str]):
    """The next token sits at a JSON path; no token, no more pages.
    HubSpot: `CursorPaginator(("paging", "next", "after"))`."""

    def __init__(self, path: Sequence[str]) -> None:
        self.path = tuple(path)

    def get_next(self, response: httpx.Response) -> str | None:
        token = _dig(response.json(), self.path)
        return str(token) if token not in (None, "") else None


class LastIdPaginator(Paginator[str]):
    """Stripe lists: more pages while `has_more` is true; the next token (`starting_after`)
    is the id of the last item of `data`."""

    def __init__(self, items_key: str = "data", has_more_key: str = "has_more", id_key: str = "id") -> None:
        self.items_key = items_key
        self.has_more_key = has_more_key
        self.id_key = id_key

    def has_more(self, response: httpx.Response) -> bool:
        body = response.json()
        return bool(body.get(self.has_more_key)) and bool(body.get(self.items_key))

    def get_next(self, response: httpx.Response) -> str | None:
        if not self.has_more(response):
            return None
        return str(response.json()[self.items_key][-1][self.id_key])


class PageNumberPaginator(Paginator[int]):
    """Numbered pages (Xero `page=1, 2, ...`): a full page means there may be another; the
    next number is one more than the `param` the page was fetched with."""

    first: int  # the first page has a number too (never None)

    def __init__(self, items_key: str, page_size: int, *, param: str = "page", first: int = 1) -> None:
        self.items_key = items_key
        self.page_size = page_size
        self.param = param
        self.first = first

    def has_more(self, response: httpx.Response) -> bool:
        items = response.json().get(self.items_key) or []
        return len(items) >= self.page_size

    def get_next(self, response: httpx.Response) -> int | None:
        if not self.has_more(response):
            return None
        current = response.request.url.params.get(self.param)
        return int(current) + 1 if current is not None else self.first + 1


def iter_pages(
    fetch: Callable[[T | None], httpx.Response],
    paginator: Paginator[T],
    *,
    provider: str,
    start: T | None = None,
) -> Iterator[tuple[httpx.Response, T | None]]:
    """Fetch page after page: yields `(response, next_token)`, `next_token` None on the last
    page. `start` resumes from a saved token. Raises `PaginationLoopError` when the provider
    hands back a token that was already followed, instead of spinning forever."""
    token = start if start is not None else paginator.first
    followed: set[Any] = set()
    while True:
        if token is not None:
            followed.add(token)
        response = fetch(token)
        next_token = paginator.get_next(response) if paginator.has_more(response) else None
        if next_token is not None and next_token in followed:
            raise PaginationLoopError(
                f"Loop detected in pagination: cursor {next_token!r} was already followed",
                provider=provider,
            )
        yield response, next_token
        if next_token is None:
            return
        token = next_token
