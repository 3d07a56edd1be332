"""Incremental reads through HubSpot's CRM search, past its 10,000-result ceiling.

`POST /crm/v3/objects/{type}/search` filters on the last-modified property (GTE the cursor),
sorts ascending by it and pages with `after`. One query never yields more than 10,000 results
(asking for `after` >= 10,000 is refused), so a long history is read as a chain of *windows*:

    normal window   modified >= T                        sorted by modified date
    tie window      modified == T and hs_object_id > I   sorted by hs_object_id

When a window reaches the ceiling, the next one starts at the last modified date seen; records
at that very timestamp that were already yielded are remembered and skipped, so every record
comes out exactly once and none is dropped. If a whole window shares one timestamp (a bulk
import), a tie window walks that timestamp by object id, then reading goes on after it.

Cursors (compact JSON): `{"since": <epoch ms>}` or, inside a tie window,
`{"since": <epoch ms>, "tie_id": "<last object id>"}`. Saving one re-reads the records at
`since` on the next run (an overlap the store dedupes by id), never skips them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.errors import PaginationLoopError

SEARCH_CAP = 10_000

SearchCall = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class SearchCursor:
    since: int = 0  # epoch milliseconds
    tie_id: int | None = None

    @classmethod
    def parse(cls, text: str | None) -> SearchCursor:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            tie = data.get("tie_id")
            return cls(since=int(data["since"]), tie_id=int(tie) if tie is not None else None)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValueError(f"not a HubSpot search cursor: {text!r}") from None

    def dump(self) -> str:
        data: dict[str, Any] = {"since": self.since}
        if self.tie_id is not None:
            data["tie_id"] = str(self.tie_id)
        return json.dumps(data, separators=(",", ":"))


_Page = tuple[list[dict[str, Any]], SearchCursor]


def epoch_ms(value: str) -> int:
    """HubSpot timestamps: ISO 8601 (`2024-03-01T22:33:09.011Z`) or epoch milliseconds."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return int(datetime.fromisoformat(text).timestamp() * 1000 + 0.5)


@dataclass
class SearchWindows:
    """Walks the windows of one stream; `pages()` yields (results, cursor) per page."""

    search: SearchCall  # sends one search body, returns the decoded answer
    modified_property: str
    properties: list[str]
    page_size: int = 100
    notes: list[str] = field(default_factory=list)

    def _modified(self, record: dict[str, Any]) -> int:
        value = (record.get("properties") or {}).get(self.modified_property) or record.get("updatedAt")
        if not value:
            raise ValueError(f"record {record.get('id')} has no {self.modified_property}")
        return epoch_ms(str(value))

    def _body(self, filters: list[dict[str, Any]], sort: str, after: str) -> dict[str, Any]:
        # The official document (PublicObjectSearchRequest) requires after, filterGroups,
        # limit, properties and sorts, with `sorts` an array of *strings* ("prop" ascending,
        # "-prop" descending); HubSpot's guides show sort objects. We follow the document.
        return {
            "filterGroups": [{"filters": filters}],
            "sorts": [sort],
            "properties": self.properties,
            "limit": self.page_size,
            "after": after,
        }

    def pages(self, start: SearchCursor) -> Iterator[tuple[list[dict[str, Any]], SearchCursor]]:
        since = start.since
        seen_at_since: set[str] = set()  # ids already yielded whose modified date == since
        if start.tie_id is not None:
            yield from self._tie_window(since, start.tie_id, set())
            since += 1  # everything at `since` is read: go on strictly after it
        while True:
            outcome = yield from self._normal_window(since, seen_at_since)
            if outcome is None:
                return
            next_since, seen = outcome
            if next_since == since:
                # A whole window at one timestamp: walk it by object id, then move past it.
                yield from self._tie_window(since, 0, seen)
                since, seen_at_since = since + 1, set()
            else:
                since, seen_at_since = next_since, seen

    def _normal_window(self, since: int, skip: set[str]) -> Generator[_Page, None, tuple[int, set[str]] | None]:
        """Pages of `modified >= since`; returns None at the end of the data, or where the
        next window starts (and the ids already yielded at that timestamp) at the ceiling."""
        prop = self.modified_property
        filters = [{"propertyName": prop, "operator": "GTE", "value": str(since)}]
        after, count = "0", 0
        last_ms, at_last = since, set(skip)
        followed: set[str] = set()
        while True:
            answer = self.search(self._body(filters, prop, after))
            results = answer.get("results") or []
            count += len(results)
            fresh = []
            for record in results:
                record_id = str(record["id"])
                modified = self._modified(record)
                if modified == since and record_id in skip:
                    continue  # yielded by the previous window
                fresh.append(record)
                if modified > last_ms:
                    last_ms, at_last = modified, set()
                at_last.add(record_id)
            if fresh:
                yield fresh, SearchCursor(since=last_ms)
            next_after = _next_after(answer)
            if next_after is None:
                return None
            if count + self.page_size > SEARCH_CAP or _offset(next_after) >= SEARCH_CAP:
                self.notes.append(
                    f"search on {prop} reached HubSpot's {SEARCH_CAP}-result limit "
                    f"(total {answer.get('total')}); went on in a new window from {last_ms}"
                )
                return last_ms, at_last
            after = _follow(followed, next_after)

    def _tie_window(self, at: int, after_id: int, skip: set[str]) -> Generator[_Page, None, None]:
        """Pages of `modified == at`, by object id above `after_id`, skipping `skip`."""
        prop = self.modified_property
        while True:
            filters = [
                {"propertyName": prop, "operator": "EQ", "value": str(at)},
                {"propertyName": "hs_object_id", "operator": "GT", "value": str(after_id)},
            ]
            after, count = "0", 0
            followed: set[str] = set()
            while True:
                answer = self.search(self._body(filters, "hs_object_id", after))
                results = answer.get("results") or []
                count += len(results)
                for record in results:
                    after_id = max(after_id, int(record["id"]))
                fresh = [r for r in results if str(r["id"]) not in skip]
                if fresh:
                    yield fresh, SearchCursor(since=at, tie_id=after_id)
                next_after = _next_after(answer)
                if next_after is None:
                    return
                if count + self.page_size > SEARCH_CAP or _offset(next_after) >= SEARCH_CAP:
                    break  # a fresh tie window from the last id
                after = _follow(followed, next_after)


def _follow(followed: set[str], after: str) -> str:
    """The next `after` token, unless the API handed back one we already followed."""
    if after in followed:
        raise PaginationLoopError(
            f"Loop detected in pagination: search cursor {after!r} was already followed",
            provider="hubspot",
        )
    followed.add(after)
    return after


def _next_after(answer: dict[str, Any]) -> str | None:
    after = ((answer.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after not in (None, "") else None


def _offset(after: Any) -> int:
    text = str(after)
    return int(text) if text.isdigit() else 0
