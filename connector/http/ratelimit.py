"""Client-side rate limiting, set to a provider's documented limits so we seldom see a 429.

A `RateLimiter` holds named buckets; each bucket holds one or more limits "at most N requests
in any window of S seconds" (a sliding window, cheap at these volumes, widened by a small
`margin`: see below). It can also bound the requests in flight at once (Xero allows 5 per
tenant). One limiter per connection (per tenant / per token), shared by every thread that
calls that connection.

    limiter = RateLimiter.from_spec(
        {"default": [(60, 60), (5000, 86400)]},       # Xero: 60/min and 5000/day
        concurrency=5,
    )
    limiter = RateLimiter.from_spec({"default": [(100, 10)], "search": [(4, 1)]})  # HubSpot
    with limiter.acquire("search", "default"):      # a search counts against both buckets
        ...send...

A request is counted when the limiter lets it go, but the provider counts it when it arrives,
a few ms later in the median and tens of ms later when threads contend for the cores or the
network jitters. If one request of a window arrives late and the request a full window later
does not, the provider sees one more than its limit in its window and answers 429. So each
counted request keeps its place for `margin` seconds past its window (50 ms by default; 0 for
the exact window): it covers jitter up to that spread, and costs at most 5 % of a 1 s limit's
rate and next to nothing of a minute's or a day's. Jitter is a matter of time, not of the
window's length, hence seconds rather than a fraction of the window.

When a bucket would make us wait longer than `defer_after` (a spent daily limit), `acquire`
raises `RateLimitDeferred` instead of sleeping for hours.

On its own a limiter keeps its limits in memory, for the threads that share it. A provider
account is one budget however many units and workers call it: `shared_limiter` gives every
caller in a process the account's one limiter, linked to an `AccountBudget` (see
`connector.http.budget`) whose store counts the windows it keeps (PostgreSQL: all of them and
the requests in flight, for every worker; SQLite: the daily ones, which then survive a
restart). Such a limiter sleeps at most MAX_NAP at a time before it asks again, and a 429's
Retry-After (`pause_account`) pauses the whole account for everyone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypedDict, Unpack

from connector.errors import RateLimitDeferred, StopRequested
from connector.http.budget import AccountBudget, BudgetStore, Grant, WindowSpec

logger = logging.getLogger("connector.http")

DEFAULT_MARGIN = 0.05
"""Seconds a counted request holds its place past its window (see the module's docstring)."""

MAX_NAP = 1.0
"""The longest a limiter with a shared budget sleeps before asking its store again (others may
have freed room, and a stopping worker should not sleep through its stop)."""


STOPPING = threading.Event()
"""Set while the process stops (SIGTERM): a request waiting for its slot gives up
(`StopRequested`) instead of sleeping out a minute's window, so a stop takes seconds."""


def stoppable_sleep(seconds: float) -> None:
    """Sleep `seconds`, or raise `StopRequested` as soon as the process is asked to stop."""
    if STOPPING.wait(seconds):
        raise StopRequested("stopping: a request waiting for its rate-limit slot was not sent")


@dataclass(frozen=True)
class Limit:
    """At most `requests` requests in any `per_seconds`-second window."""

    requests: int
    per_seconds: float

    def __post_init__(self) -> None:
        if self.requests < 1 or self.per_seconds <= 0:
            raise ValueError(f"a limit needs requests >= 1 and per_seconds > 0, not {self}")


class _Options(TypedDict, total=False):
    """The constructor's keyword arguments that `RateLimiter.from_spec` passes on."""

    margin: float
    defer_after: float
    provider: str
    clock: Callable[[], float]
    sleep: Callable[[float], None]


class _Window:
    def __init__(self, bucket: str, limit: Limit, margin: float, stored: bool = False) -> None:
        self.limit = limit
        self.span = limit.per_seconds + margin  # how long a counted request holds its place
        self.sent: deque[float] = deque()
        # Counted by the account's budget store, not here.
        self.stored = (
            WindowSpec(f"{bucket}/{limit.per_seconds:g}", limit.requests, limit.per_seconds) if stored else None
        )

    def wait(self, now: float) -> float:
        while self.sent and self.sent[0] <= now - self.span:
            self.sent.popleft()
        if len(self.sent) < self.limit.requests:
            return 0.0
        return self.sent[0] + self.span - now


class RateLimiter:
    """Thread-safe named buckets of limits plus an optional bound on requests in flight."""

    def __init__(
        self,
        buckets: Mapping[str, Iterable[Limit]],
        *,
        concurrency: int | None = None,
        margin: float = DEFAULT_MARGIN,
        defer_after: float = 900.0,
        provider: str = "rate limiter",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = stoppable_sleep,
        budget: AccountBudget | None = None,
    ) -> None:
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if margin < 0:
            raise ValueError(f"margin must be 0 or more seconds, not {margin}")
        self._limits = {name: tuple(limits) for name, limits in buckets.items()}
        self._budget = budget
        store = budget.store if budget else None
        self._buckets = {
            name: [_Window(name, limit, margin, bool(store and store.keeps(limit.per_seconds))) for limit in limits]
            for name, limits in self._limits.items()
        }
        self._shared_in_flight = concurrency if store is not None and store.keeps_in_flight() else None
        self._margin = margin
        self._concurrency = concurrency
        self._in_flight = 0
        self._defer_after = defer_after
        self._provider = provider
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._slot_freed = threading.Condition(self._lock)
        self._paused_until: dict[str, float] = {}

    @classmethod
    def from_spec(
        cls,
        spec: Mapping[str, Iterable[tuple[int, float]]],
        *,
        concurrency: int | None = None,
        **kwargs: Unpack[_Options],
    ) -> RateLimiter:
        """Build from settings: `{"bucket": [(requests, per_seconds), ...]}`, e.g. Stripe live
        `{"default": [(100, 1)]}`, test mode `{"default": [(25, 1)]}`. Other keyword arguments
        as for the constructor (`margin`, `defer_after`, `provider`, `clock`, `sleep`)."""
        buckets = {name: [Limit(int(n), float(s)) for n, s in limits] for name, limits in spec.items()}
        return cls(buckets, concurrency=concurrency, **kwargs)

    @property
    def buckets(self) -> tuple[str, ...]:
        return tuple(self._buckets)

    @property
    def budget(self) -> AccountBudget | None:
        """The shared budget this limiter counts in, if any (see `shared_limiter`)."""
        return self._budget

    def sharing(self, budget: AccountBudget) -> RateLimiter:
        """A new limiter with the same limits and options that counts in `budget`."""
        return RateLimiter(
            self._limits,
            concurrency=self._concurrency,
            margin=self._margin,
            defer_after=self._defer_after,
            provider=self._provider,
            clock=self._clock,
            sleep=self._sleep,
            budget=budget,
        )

    @contextmanager
    def acquire(self, *buckets: str) -> Iterator[None]:
        """Wait until one request may go to every named bucket (default: "default"), count it
        in all of them, and hold a concurrency slot until the block ends."""
        names = buckets or ("default",)
        unknown = [name for name in names if name not in self._buckets]
        if unknown:
            raise ValueError(f"unknown rate-limit bucket {unknown[0]!r}; known: {', '.join(self._buckets)}")
        self._take_slot()
        lease = None
        try:
            lease = self._draw(names)
            yield
        finally:
            if lease is not None and self._budget is not None:
                try:
                    self._budget.store.release(self._budget.account, lease)
                except Exception:  # the answer matters more; an unreleased lease frees itself
                    logger.warning("could not give back a slot in flight of %s", self._budget.account, exc_info=True)
            self._release_slot()

    def pause(self, bucket: str, seconds: float) -> None:
        """Send nothing through `bucket` for `seconds` (a server hint such as Xero's
        `X-MinLimit-Remaining: 0`)."""
        with self._lock:
            until = self._clock() + seconds
            self._paused_until[bucket] = max(until, self._paused_until.get(bucket, 0.0))

    def pause_account(self, seconds: float) -> None:
        """Send nothing through any bucket for `seconds` (a 429's `Retry-After`), nor, with a
        shared budget, from any other limiter of the account."""
        for bucket in self._buckets:
            self.pause(bucket, seconds)
        if self._budget is not None:
            self._budget.store.pause(self._budget.account, seconds)

    def _draw(self, names: tuple[str, ...]) -> str | None:
        """Count one request in the named buckets, waiting for room; the shared budget's lease
        of a slot in flight, if it keeps those."""
        while True:
            with self._lock:
                now = self._clock()
                windows = [window for name in names for window in self._buckets[name]]
                local = [window for window in windows if window.stored is None]
                waits = [window.wait(now) for window in local]
                waits += [self._paused_until.get(name, now) - now for name in names]
                wait = max(waits, default=0.0)
                if wait <= 0:
                    # Under the lock: the process's threads ask the store one at a time.
                    grant = self._take_shared([window.stored for window in windows if window.stored])
                    wait = grant.wait
                    if wait <= 0:
                        for window in local:
                            window.sent.append(now)
                        return grant.lease
            if wait > self._defer_after:
                raise RateLimitDeferred(
                    f"rate limit of bucket {'/'.join(names)} is spent for {wait:.0f} s; resume on a later run",
                    provider=self._provider,
                    retry_after=wait,
                )
            self._sleep(min(wait, MAX_NAP) if self._budget is not None else wait)

    def _take_shared(self, specs: list[WindowSpec]) -> Grant:
        """The shared budget's answer for the stored windows `specs` (and a slot in flight
        when it keeps those); a plain grant when it has nothing to count."""
        if self._budget is None or not (specs or self._shared_in_flight):
            return Grant()
        return self._budget.store.take(
            self._budget.account, specs, margin=self._margin, in_flight=self._shared_in_flight
        )

    def _take_slot(self) -> None:
        if self._concurrency is None:
            return
        with self._slot_freed:
            while self._in_flight >= self._concurrency:
                self._slot_freed.wait()
            self._in_flight += 1

    def _release_slot(self) -> None:
        if self._concurrency is None:
            return
        with self._slot_freed:
            self._in_flight -= 1
            self._slot_freed.notify()

    def __repr__(self) -> str:
        limits = {
            name: [(w.limit.requests, w.limit.per_seconds) for w in windows] for name, windows in self._buckets.items()
        }
        shared = f" account={self._budget.account!r}" if self._budget else ""
        return f"<RateLimiter {limits} concurrency={self._concurrency} margin={self._margin}{shared}>"


_shared: dict[tuple[Hashable, str, str], RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(limiter: RateLimiter, store: BudgetStore, account: str) -> RateLimiter:
    """The one limiter of `account` in this process for `store`'s scope (one database): the
    first caller's `limiter` made to count in the store, given to every later caller with the
    same limits, so that every unit of a worker draws on one budget. Limits changed in the
    settings make a new one (counting in the same stored windows)."""
    key = (store.scope, account, repr(limiter) + f" defer_after={limiter._defer_after}")
    with _shared_lock:
        found = _shared.get(key)
        if found is None:
            found = _shared[key] = limiter.sharing(AccountBudget(store, account))
        return found
