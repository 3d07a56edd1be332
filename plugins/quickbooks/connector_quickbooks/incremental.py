"""How a QuickBooks stream is read incrementally: pure decisions, no I/O.

Changed records come from the query API, ordered by `MetaData.LastUpdatedTime`:

    SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime >= '2024-05-01T10:00:00+00:00'
        ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 500

STARTPOSITION over a fixed lower bound loses records when one is edited mid-read (it jumps to
the end and everything behind it moves up one place, across a page already read), so we page
by time, keyset style, as for Xero:

- after a full page the next query asks `>=` the newest LastUpdatedTime seen, from
  STARTPOSITION 1 again;
- only when a whole page shares one second with the lower bound do we move STARTPOSITION;
- a page shorter than MAXRESULTS ends the stream.

The cursor is the newest LastUpdatedTime seen (UTC, compact JSON); the query sends it floored
to the second with `>=`, so records at the cursor's moment are read again (deduplicated here
within a run, by id downstream), never skipped. QuickBooks writes times with the company's
local offset (`2015-10-05T14:42:19-07:00`); every comparison here is on the UTC moment.

Deletes never show in the query API; Change Data Capture (`/cdc`) reports them with
`status: "Deleted"`. It looks back 30 days at most, and answers at most 1,000 objects, with
only a lower bound (`changedSince`). An answer that hits 1,000 is split: its window is cut at
the newest change it reached and the rest asked again from there (`cdc_next`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.plugin import parse_iso_datetime

CDC_MAX_OBJECTS = 1000
CDC_LOOKBACK = timedelta(days=30)
# Asked a little inside the 30 days: the clocks of QuickBooks and ours differ.
CDC_MARGIN = timedelta(minutes=10)

# Stream -> QuickBooks entity
ENTITIES = {
    "customers": "Customer",
    "invoices": "Invoice",
    "payments": "Payment",
    "credit_memos": "CreditMemo",
}


def load_cursor(cursor: str | None) -> datetime | None:
    """The moment a saved cursor stands for; None reads everything."""
    if not cursor:
        return None
    try:
        data = json.loads(cursor)
        since = parse_iso_datetime(str(data["since"]))
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"not a QuickBooks cursor: {cursor!r}") from None
    return since.astimezone(UTC)


def dump_cursor(since: datetime | None) -> str | None:
    if since is None:
        return None
    text = since.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return json.dumps({"since": text}, separators=(",", ":"))


def literal(moment: datetime) -> str:
    """A date-time literal of the query language: whole seconds, UTC, with its offset."""
    return floor(moment).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def updated_at(raw: dict[str, Any]) -> datetime | None:
    """A record's `MetaData.LastUpdatedTime` as a UTC moment (None when missing or unreadable)."""
    meta = raw.get("MetaData")
    value = meta.get("LastUpdatedTime") if isinstance(meta, dict) else None
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_iso_datetime(value).astimezone(UTC)
    except ValueError:
        return None


def floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Position:
    """Where the next query of a stream starts (STARTPOSITION is 1-based)."""

    since: datetime | None
    start: int = 1


@dataclass(frozen=True)
class Step:
    """What one fetched page means: the cursor safe to save after it, and the next position
    (None: the stream is done)."""

    cursor_since: datetime | None
    next: Position | None


def query(entity: str, position: Position, page_size: int) -> str:
    """The query for one page. Customers include inactive ones (QuickBooks' "deleted" names
    are inactive and still own invoices; by default the query hides them)."""
    clauses = []
    if entity == "Customer":
        clauses.append("Active IN (true, false)")
    if position.since is not None:
        clauses.append(f"MetaData.LastUpdatedTime >= '{literal(position.since)}'")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return (
        f"SELECT * FROM {entity}{where} ORDERBY MetaData.LastUpdatedTime "
        f"STARTPOSITION {position.start} MAXRESULTS {page_size}"
    )


def step(position: Position, raws: list[dict[str, Any]], page_size: int) -> Step:
    """Decide on one page of raw records fetched at `position`."""
    seen = [moment for moment in map(updated_at, raws) if moment is not None]
    newest = max(seen, default=None)
    since = position.since
    advanced = newest if newest is not None and (since is None or newest > since) else since
    if len(raws) < page_size:
        return Step(advanced, None)
    if advanced is not None and (since is None or floor(advanced) > floor(since)):
        return Step(advanced, Position(advanced, 1))
    return Step(advanced, Position(since, position.start + page_size))


# -- Change Data Capture ----------------------------------------------------------------------


def cdc_since(cursor_since: datetime, now: datetime, overlap: timedelta) -> tuple[datetime, bool]:
    """The `changedSince` of the first CDC request for a saved cursor: the cursor less the
    overlap, but never beyond the 30-day look-back. The flag says the window was cut (deletes
    before it can no longer be seen)."""
    wanted = cursor_since - overlap
    oldest = now - CDC_LOOKBACK + CDC_MARGIN
    if wanted < oldest:
        return oldest, True
    return wanted, False


def changed_since(moment: datetime) -> str:
    """CDC's `changedSince`: an ISO date-time with its offset, whole seconds."""
    return floor(moment).isoformat()


def cdc_objects(body: Any, entity: str) -> list[dict[str, Any]]:
    """The objects of `entity` in a CDC answer
    (`{"CDCResponse": [{"QueryResponse": [{"Invoice": [...]}, ...]}]}`)."""
    found: list[dict[str, Any]] = []
    if not isinstance(body, dict):
        return found
    for response in body.get("CDCResponse") or []:
        if not isinstance(response, dict):
            continue
        for part in response.get("QueryResponse") or []:
            if isinstance(part, dict):
                found.extend(o for o in part.get(entity) or [] if isinstance(o, dict))
    return found


def is_deleted(raw: dict[str, Any]) -> bool:
    return str(raw.get("status", "")).lower() == "deleted"


def cdc_next(since: datetime, objects: list[dict[str, Any]]) -> datetime | None:
    """After an answer from `since`: None when it was complete (under 1,000 objects);
    otherwise where to split its window (the newest change it reached). An answer full of
    changes within the one second of `since` cannot be split: None as well (the caller notes
    it)."""
    if len(objects) < CDC_MAX_OBJECTS:
        return None
    newest = max((m for m in map(updated_at, objects) if m is not None), default=None)
    if newest is None or floor(newest) <= floor(since):
        return None
    return floor(newest)
