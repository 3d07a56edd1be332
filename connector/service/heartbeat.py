"""Keeping a claimed unit's lease while its work runs, and the worker's own heartbeat.

`Pulse`: while `connector serve` runs, a thread beats the worker's row every few seconds
(`state.units.beat`), saying how long the worker promises to live without beating again (its
heartbeat timeout, `--heartbeat-timeout`). Whatever a worker holds once that has run out (it was
SIGKILLed, its host died, it hangs) is taken over at once by any other worker, on any host,
instead of when its lease runs out.

`Heartbeat`: a pull of a large book or a long reconcile can outlast `--lease`; without renewal another
worker would take the unit over and do it a second time alongside. While a unit is worked,
a thread renews its lease every third of the lease (`state.units.renew`, a compare-and-swap
on the owner). It also turns the service's shutdown into `halt`, the event the sync engine
checks between pages, and sets `halt` when the lease was lost to another worker, so the work
in hand stops at the next page instead of running on beside the new owner.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from connector.state import units as work
from connector.state.store import Store

logger = logging.getLogger("connector.service")


class Heartbeat:
    def __init__(
        self,
        store: Store,
        unit: str,
        worker: str,
        *,
        lease: timedelta,
        stop: threading.Event,
        period: float | None = None,
        poll: float = 0.2,
        company: str | None = None,
    ) -> None:
        self.store = store
        self.unit = unit
        self.worker = worker
        self.context = {"company": company} if company else {}  # for its log lines (its own thread)
        self.lease = lease
        self.stop = stop
        self.period = period if period is not None else max(0.05, lease.total_seconds() / 3)
        self.poll = min(poll, self.period)
        self.halt = threading.Event()  # set: stop between pages (shutdown, or the lease is lost)
        self.stopping = False  # the service is shutting down
        self.lost = False  # another worker owns the unit now
        self.beats = 0
        self.beaten = threading.Event()  # set at the first renewal (for tests and logs)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {unit}", daemon=True)

    def beat(self) -> bool:
        """Renew the lease once; False (and `halt`) when the unit is no longer ours."""
        with self.store.session() as session:
            kept = work.renew(session, self.unit, self.worker, lease=self.lease)
        self.beats += 1
        self.beaten.set()
        if not kept:
            self.lost = True
            self.halt.set()
            logger.warning("lost the lease of %s to another worker: stopping it here", self.unit, extra=self.context)
        return kept

    def _check_stop(self) -> None:
        if self.stop.is_set() and not self.halt.is_set():
            self.stopping = True
            self.halt.set()

    def _run(self) -> None:
        next_beat = time.monotonic() + self.period
        while not self._done.wait(self.poll):
            self._check_stop()
            if self.lost or time.monotonic() < next_beat:
                continue
            try:
                self.beat()
            except Exception:  # the database hiccuped: try again at the next beat, well within the lease
                logger.warning("could not renew the lease of %s", self.unit, exc_info=True, extra=self.context)
            next_beat = time.monotonic() + self.period

    def __enter__(self) -> Heartbeat:
        self._check_stop()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()  # after this `halt` no longer changes: it says whether the work was cut short


class Pulse:
    """The worker's heartbeat, from `start` to `stop`: a beat every `period` (a sixth of
    `timeout` unless given), each good for `timeout`. A failed beat is logged and tried again
    at the next one; a worker that cannot beat for `timeout` may see its units taken over (its
    lease renewal then says so, and the work in hand stops)."""

    def __init__(self, store: Store, worker: str, *, timeout: timedelta, period: float | None = None) -> None:
        self.store = store
        self.worker = worker
        self.timeout = timeout
        self.period = period if period is not None else max(0.05, timeout.total_seconds() / 6)
        self.beats = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker heartbeat", daemon=True)

    def beat(self) -> None:
        with self.store.session() as session:
            work.beat(session, self.worker, timeout=self.timeout)
        self.beats += 1

    def start(self) -> None:
        """Beat once (so that the row exists before the first claim), then keep beating."""
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and drop the row: a worker stopping cleanly holds nothing any more."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            with self.store.session() as session:
                work.forget_worker(session, self.worker)
        except Exception:  # its row runs out by itself: only the takeover waits the timeout
            logger.warning("could not drop the heartbeat of worker %s", self.worker, exc_info=True)

    def _run(self) -> None:
        while not self._done.wait(self.period):
            try:
                self.beat()
            except Exception:  # the database hiccuped: the next beat may well be in time
                logger.warning("worker %s could not beat its heartbeat", self.worker, exc_info=True)
