"""One rate budget per provider account, kept where every limiter of the account sees it.

A provider builds its `RateLimiter` from its settings; `connector.connections.open_provider`
then hands it the account's `AccountBudget`: a `BudgetStore` (implemented over the state
database by `connector.state.budgets`) and the account's key (a Xero tenant, a Stripe account
and key mode, a HubSpot portal, a QuickBooks realm). The limiter counts in memory the windows
the store does not keep, and asks the store for the rest in one short call per request:

    day = WindowSpec("default/86400", 5000, 86400.0)
    store.take(account, [WindowSpec("default/60", 60, 60.0), day], margin=0.05, in_flight=5)
        -> Grant(wait=0.0, lease="...", at=...)     counted, a slot in flight taken
        -> Grant(wait=0.8)                          nothing counted: ask again in 0.8 s
    ...send...
    store.release(account, lease)          # the slot in flight, when the answer is in
    store.pause(account, 30.0)             # a 429's Retry-After: the whole account waits

What the store keeps is its choice (`keeps`, `keeps_in_flight`): on PostgreSQL every window
and the requests in flight, so that several workers share Xero's 60 calls a minute and 5 in
flight; on SQLite (one worker) only the long windows, so that a daily allowance survives a
restart while the short ones stay in memory, shared by the worker's units.

The stored form of a window is plain JSON, changed by `take_stored` (pure: the store only
loads, locks and saves it). A limit of at most LOG_LIMIT requests keeps the exact send times;
a larger one (Xero's 5,000 a day) keeps counts per 1/SLOTS of its window, each counted until
its whole slot has left the window: never fewer than were sent, and none held more than one
slot longer than its own place. Stored windows are shared across processes, so each request
holds its place a little longer there (`held_past`).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

LOG_LIMIT = 1000
"""Limits of at most this many requests keep each send time; larger ones keep slot counts."""

SLOTS = 288
"""Slots of a counted window (a day: 5 minutes each)."""

SHARED_JITTER = 0.25
"""Seconds a request counted in a stored window holds its place past the window (at most
SHARED_JITTER_SHARE of the window), when the limiter's own margin is less. The threads of one
process are granted a request and send it within moments; workers granted by a database commit
and scheduled on busy cores reach the provider up to a few hundred ms apart from their grants'
order (measured: four workers on two loaded cores put 61 requests in one of Xero's minutes and
101 in one of HubSpot's 10 s with 50 ms; with 50 ms on one-second windows, 26 in one of
Stripe's seconds and a 429 from HubSpot's 4 searches a second)."""

SHARED_JITTER_SHARE = 0.15
"""The most of a window SHARED_JITTER may take: 150 ms of a one-second window (13 % of its
rate, shared by workers that would otherwise meet 429s), 250 ms of longer ones."""

IN_FLIGHT_POLL = 0.05
"""Seconds to wait before asking again when every slot in flight is taken (none has an end time)."""

LEASE_OWNER_SEPARATOR = "/"
"""Between a lease's owner and its own id (`host:pid/<hex>`): no host name holds a slash."""

StoredWindow = dict[str, Any]
"""{"log": [sent, ...]} or {"slots": [[slot start, count], ...]}; times in epoch seconds."""


@dataclass(frozen=True)
class WindowSpec:
    """One window of one bucket, as the store keeps it: `key` names it within the account
    (`"default/60"`), at most `requests` in any `per_seconds`."""

    key: str
    requests: int
    per_seconds: float


@dataclass(frozen=True)
class Grant:
    """A store's answer: `wait` 0 when the request was counted (at `at` by the store's clock,
    and `lease` names its slot in flight if the store keeps those), else the seconds to wait
    before asking again."""

    wait: float = 0.0
    lease: str | None = None
    at: float | None = None


class BudgetStore(Protocol):
    """Where the shared part of provider accounts' budgets is counted (see the module)."""

    @property
    def scope(self) -> Hashable:
        """What one budget is shared within (one database): a process keeps one limiter per
        scope and account."""
        ...

    def keeps(self, per_seconds: float) -> bool:
        """Whether windows of this length are counted in the store (else in memory)."""
        ...

    def keeps_in_flight(self) -> bool:
        """Whether the requests in flight are bounded in the store (else in memory)."""
        ...

    def take(self, account: str, windows: Sequence[WindowSpec], *, margin: float, in_flight: int | None) -> Grant:
        """Count one request in every window, and take a slot in flight when `in_flight` is
        given, if all have room and the account is not paused; else count nothing."""
        ...

    def release(self, account: str, lease: str) -> None:
        """Give back the slot in flight `lease` (a lost one frees itself after a while)."""
        ...

    def pause(self, account: str, seconds: float) -> None:
        """Send nothing to the account for `seconds` (never shortens a longer pause)."""
        ...


@dataclass(frozen=True)
class AccountBudget:
    """A limiter's link to its account's shared budget."""

    store: BudgetStore
    account: str


def take_stored(
    windows: dict[str, StoredWindow],
    leases: dict[str, float],
    specs: Sequence[WindowSpec],
    *,
    now: float,
    margin: float,
    paused_until: float | None,
    in_flight: int | None,
    lease_seconds: float,
    owner: str | None = None,
) -> Grant:
    """Count one request at `now` in the stored `windows` of `specs` (and a lease in
    `leases`, lease id -> expiry) when every window has room, nothing is paused and a slot in
    flight is free. Changes `windows` and `leases` in place: expired entries always go, the
    request's only when granted. A lease names its `owner` (the worker, `host:pid`), so that
    a store can free at once the slots of a worker that is gone (`lease_owner`)."""
    waits = [0.0 if paused_until is None else paused_until - now]
    for lease, expires in list(leases.items()):
        if expires <= now:
            del leases[lease]
    if in_flight is not None and len(leases) >= in_flight:
        waits.append(IN_FLIGHT_POLL)
    for spec in specs:
        window = windows[spec.key] = _in_form(windows.get(spec.key), spec)
        waits.append(_window_wait(window, spec, now, spec.per_seconds + held_past(spec, margin)))
    wait = max(waits)
    if wait > 0:
        return Grant(wait=wait)
    for spec in specs:
        _count(windows[spec.key], spec, now)
    if in_flight is None:
        return Grant(at=now)
    lease = uuid.uuid4().hex if owner is None else f"{owner}{LEASE_OWNER_SEPARATOR}{uuid.uuid4().hex}"
    leases[lease] = now + lease_seconds
    return Grant(lease=lease, at=now)


def lease_owner(lease: str) -> str | None:
    """The worker a lease was taken by (`host:pid`), or None for a lease that names none."""
    owner, separator, _ = lease.rpartition(LEASE_OWNER_SEPARATOR)
    return owner if separator and owner else None


def held_past(spec: WindowSpec, margin: float) -> float:
    """How long past its window a request counted in a stored window holds its place."""
    return max(margin, min(SHARED_JITTER, SHARED_JITTER_SHARE * spec.per_seconds))


def counted(window: StoredWindow | None) -> int:
    """Requests a stored window holds (whatever their age)."""
    if not window:
        return 0
    if "slots" in window:
        return sum(int(count) for _, count in window["slots"])
    return len(window.get("log", []))


def _slotted(spec: WindowSpec) -> bool:
    return spec.requests > LOG_LIMIT


def _slot_length(spec: WindowSpec) -> float:
    return spec.per_seconds / SLOTS


def _in_form(window: StoredWindow | None, spec: WindowSpec) -> StoredWindow:
    """The window in the form its limit wants (a changed limit may cross LOG_LIMIT)."""
    if not window:
        return {"slots": []} if _slotted(spec) else {"log": []}
    if _slotted(spec) and "log" in window:
        slots: dict[float, int] = {}
        for sent in window["log"]:
            start = math.floor(sent / _slot_length(spec)) * _slot_length(spec)
            slots[start] = slots.get(start, 0) + 1
        return {"slots": [[start, count] for start, count in sorted(slots.items())]}
    if not _slotted(spec) and "slots" in window:
        # Each slot's requests as if sent at its end: they hold their places no shorter.
        length = _slot_length(spec)
        return {"log": [start + length for start, count in window["slots"] for _ in range(int(count))]}
    return window


def _window_wait(window: StoredWindow, spec: WindowSpec, now: float, span: float) -> float:
    if "slots" in window:
        length = _slot_length(spec)
        live = [[start, count] for start, count in window["slots"] if start + length + span > now]
        window["slots"] = live
        if sum(count for _, count in live) < spec.requests:
            return 0.0
        return float(live[0][0] + length + span - now)
    log = [sent for sent in window["log"] if sent > now - span]
    window["log"] = log
    if len(log) < spec.requests:
        return 0.0
    return float(log[-spec.requests] + span - now)


def _count(window: StoredWindow, spec: WindowSpec, now: float) -> None:
    if "slots" not in window:
        window["log"].append(now)
        return
    start = math.floor(now / _slot_length(spec)) * _slot_length(spec)
    slots = window["slots"]
    if slots and slots[-1][0] == start:
        slots[-1][1] += 1
    else:
        slots.append([start, 1])
