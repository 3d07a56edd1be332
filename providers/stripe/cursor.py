"""Cursors of the Stripe streams: compact JSON, opaque to the engine.

Stripe lists only filter by creation time and come newest first, so a stream is read in two
phases and the cursor says which one it is in:

    {"list": {"starting_after": ID, "gte": T}, "then": NEXT}
        reading the list (in full, or created since T) page by page; NEXT is what the cursor
        becomes when the list is done
    {"events": {"after": EVENT_ID, "at": T, "checked": C}}
        reading /v1/events forward from the newest event already applied (created at T)
    {"events": {"since": T, "checked": C}}
        no event was there to anchor on: events created since T
    {"created": {"gte": T}}
        streams without events (balance transactions): objects created since T

`checked` (optional: cursors saved before it existed have none) is when the events feed was
last read to its end with nothing newer than the position, less the overlap for clock skew:
no event created before C is missing. A quiet stream's event T grows old while C stays
recent, so it is C, not T, that is measured against Stripe's 30 days of events; once T is past
them (the event itself may be pruned) the stream reads the events created since C instead of
following the event.
"""

from __future__ import annotations

import json
from typing import Any

from connector.errors import ConfigError

VERSION = 1


def encode(state: dict[str, Any]) -> str:
    return json.dumps({"v": VERSION, **state}, separators=(",", ":"), sort_keys=True)


def decode(cursor: str | None, *, stream: str) -> dict[str, Any] | None:
    """The state saved in `cursor`, or None to read everything. A cursor of another shape
    (another provider's, a hand edit) is refused rather than silently restarting."""
    if cursor is None or cursor == "":
        return None
    try:
        state = json.loads(cursor)
    except ValueError:
        state = None
    if not isinstance(state, dict) or state.get("v") != VERSION:
        raise ConfigError(f"stripe {stream}: saved cursor {cursor[:80]!r} is not a Stripe cursor")
    state.pop("v")
    if not any(key in state for key in ("list", "events", "created")):
        raise ConfigError(f"stripe {stream}: saved cursor {cursor[:80]!r} has no phase")
    return state


def anchor_time(state: dict[str, Any]) -> int | None:
    """The latest epoch second up to which a state is known complete: what must still be within
    Stripe's event retention for it to catch up (None for a list in progress)."""
    if "events" in state:
        events = state["events"]
        known = int(events["at"] if "at" in events else events["since"])
        checked = events.get("checked")
        return max(known, int(checked)) if checked is not None else known
    if "created" in state:
        return int(state["created"]["gte"])
    return None


def checked(position: dict[str, Any], at: int) -> dict[str, Any]:
    """`position` (an events position) noted as read to its end at `at` (never moved back)."""
    before = position.get("checked")
    return {**position, "checked": max(int(before), at) if before is not None else at}
