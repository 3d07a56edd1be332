"""How a Xero stream is read incrementally: pure decisions, no I/O.

Xero lists filter by `If-Modified-Since` (a header) and page with `page` / `pageSize`, and
we ask for `order=UpdatedDateUTC ASC`. Page numbers over a fixed `If-Modified-Since` lose
records when something is edited mid-read (the edited record jumps to the end and every
record after it moves one place up, across a page boundary we already read). So we page by
time instead, keyset style:

- after a full page, the next request asks `If-Modified-Since = newest UpdatedDateUTC seen`
  from page 1 again; what lies before that moment has been read;
- only when a whole page shares one second with `If-Modified-Since` (no progress possible by
  time) do we ask for the next page number at the same moment;
- a page shorter than `pageSize` ends the stream.

The cursor after a page is the newest `UpdatedDateUTC` seen so far (ISO UTC, compact JSON),
and the header sends it floored to the whole second, never moved forward: records that share
the cursor's timestamp are read again (the store dedupes by id), never skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connector.mappings.transforms import parse_dotnet_date, parse_iso_datetime


def load_cursor(cursor: str | None) -> datetime | None:
    """The moment a saved cursor stands for; None reads everything."""
    if not cursor:
        return None
    try:
        data = json.loads(cursor)
        since = parse_iso_datetime(str(data["since"]))
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"not a Xero cursor: {cursor!r}") from None
    return since.astimezone(UTC)


def dump_cursor(since: datetime | None) -> str | None:
    if since is None:
        return None
    text = since.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"since": text}, separators=(",", ":"))


def if_modified_since(since: datetime) -> str:
    """The header value: RFC 3339 with its zone (Xero's document says date-time; without a
    zone it is refused), whole seconds, floored so nothing at the cursor's moment is missed."""
    return _floor(since).strftime("%Y-%m-%dT%H:%M:%SZ")


def updated_at(raw: dict[str, Any]) -> datetime | None:
    """A record's `UpdatedDateUTC` (`/Date(ms+0000)/`, or the ISO twin) in UTC."""
    value = raw.get("UpdatedDateUTC")
    if not isinstance(value, str) or not value:
        value = raw.get("UpdatedDateUTCString")
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = parse_dotnet_date(value) if value.startswith("/Date(") else parse_iso_datetime(value)
    except ValueError:
        return None
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class Position:
    """Where the next request of a stream starts."""

    since: datetime | None
    page: int = 1


@dataclass(frozen=True)
class Step:
    """What one fetched page means: the cursor safe to save after it, and where to go next
    (None: the stream is done)."""

    cursor_since: datetime | None
    next: Position | None


def step(position: Position, raws: list[dict[str, Any]], page_size: int) -> Step:
    """Decide on one page of raw records fetched at `position`."""
    seen = [moment for moment in map(updated_at, raws) if moment is not None]
    newest = max(seen, default=None)
    since = position.since
    advanced = newest if newest is not None and (since is None or newest > since) else since
    if len(raws) < page_size:
        return Step(advanced, None)
    if advanced is not None and (since is None or _floor(advanced) > _floor(since)):
        return Step(advanced, Position(advanced, 1))
    return Step(advanced, Position(since, position.page + 1))


def _floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)
