"""The Stripe adapter: reads by list then by events, writes with idempotency keys.

Reading (see `cursor` for the states). The first run lists every object, newest first; before
it starts it notes the newest event of the stream, and once the list is done the stream
follows /v1/events forward from that event, one page at a time in the order things happened,
so each page's cursor is safe to save. Updates therefore arrive (Stripe lists cannot filter by
update time). An event's copy of an object is rendered in the account's API version of the
day, so it is only used as is when that is our pinned version; otherwise, and for charges
(whose fee needs an expansion), the object is re-read. The cursor also notes when the events
feed was last read to its end (`checked`), so a stream that has had no event for weeks still
catches up with one request; only a cursor whose last check is older than Stripe's 30 days of
events starts the stream over, with a note.

A full pull (no cursor, `--full`, or a cursor past retention) of a stream whose list filters
by `created` is read as created windows side by side (at most `full_pull_windows`) on worker
threads that share this connection's one `ProviderHttp` (and so its rate limiter): the pull
starts as one window, the newest page first (a stream of one page costs one request), and a
window splits off older parts for idle workers as its pages show how the objects are spread
(`_Windows.split`). The pages come out as they arrive, through a bounded queue. Their cursors are None
(nothing to resume from: the windows finish in any order) except the last page's, which is the
events position noted before the pull began. A run that stops midway starts the full pull
again next time; the store dedupes by id.

Writing: every POST carries the action's idempotency key; before marking paid or voiding, the
invoice is read, so an action repeated after Stripe forgot the key (24 h) is not done twice.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from connector.errors import InvalidRequestError, NotFoundError
from connector.http import (
    ROUND_TRIP,
    BearerAuth,
    LastIdPaginator,
    Paginator,
    ProviderHttp,
    RateLimiter,
    RetryPolicy,
    TokenStore,
    decode_json,
    iter_pages,
)
from connector.mappings.transforms import stripe_exponent
from connector.model import Action
from connector.money import Money
from connector.providers.base import ActionResult, Page, Provider
from connector.providers.stripe import cursor as cursors
from connector.providers.stripe.settings import StripeSettings
from connector.providers.stripe.streams import DISPUTED_KEY, STREAMS, StreamDef

_DAY = 86400
# No Stripe object is older than this (2010-01-01): a window open below is not split under it.
_STRIPE_EPOCH = 1_262_304_000
# A window open below that splits keeps about _OPEN_PAGES pages' span, times _GROWTH for each
# window open below before it; a closed window is split into parts of at least _PART_PAGES
# pages' span. (Tuned on the medium bench book: 4 and x4 overshot the oldest object further,
# so more parts were empty: 93 requests against 78 with these.)
_OPEN_PAGES = 4
_GROWTH = 2
_PART_PAGES = 2
# Windows are read side by side only as many as keep the rate limit busy: the limit's requests
# per second times a request's round trip, times this for headroom, plus one. Each window ends
# in a partial page, so a window more than that costs requests and gains nothing.
_HEADROOM = 1.5


@dataclass(eq=False)
class _Window:
    """Objects created in [gte, lt) of a full pull (None: open on that side). `gte` is raised
    when the window gives its older part away (`_Windows.split`); `open_below` marks the
    oldest window when no `start_date` bounds it, `generation` how many such hand-overs led to
    it. `top` is the upper end of what it has left (the oldest `created` it has read, plus
    one) and `span` about how many seconds a page of its objects spans (0: not known yet)."""

    gte: int | None
    lt: int | None
    open_below: bool = False
    generation: int = 0
    top: int | None = None
    span: int = 0

    def pages_left(self) -> float:
        """About how many pages are left to read in it (infinite while it cannot tell)."""
        top = self.top if self.top is not None else self.lt
        if self.open_below or self.gte is None or top is None or not self.span:
            return math.inf
        return max(0, top - self.gte) / self.span


class _Windows:
    """The windows of one full pull being read, one worker each: at most `workers` at once, and
    no more than keep `rate` (requests a second) busy at the round trip the requests take."""

    def __init__(self, workers: int, rate: float) -> None:
        self.workers = workers
        self.rate = rate
        self._lock = threading.Lock()
        self._live: list[_Window] = []
        self._round_trip = 0.0  # seconds, a moving average (0: none timed yet)

    def timed(self, seconds: float) -> None:
        """A request of the pull took `seconds`, sent to read (no wait for a slot)."""
        with self._lock:
            self._round_trip = seconds if not self._round_trip else 0.8 * self._round_trip + 0.2 * seconds

    def wanted(self) -> int:
        """How many windows to read side by side now (the caller holds the lock); all the
        workers while no request has been timed."""
        if not self._round_trip:
            return self.workers
        busy = math.ceil(self.rate * self._round_trip * _HEADROOM) + 1
        return min(self.workers, max(2, busy))

    def start(self, window: _Window) -> None:
        with self._lock:
            self._live.append(window)

    def finish(self, window: _Window) -> None:
        with self._lock:
            self._live.remove(window)

    def split(self, window: _Window, page: list[dict[str, Any]]) -> list[_Window]:
        """After a page of `window` that has more behind it: new windows to read beside it,
        already counted as started (possibly none), `window` narrowed to what it keeps. Its
        objects left are all created at or before the page's oldest (`last`); a page of them
        spans about `span` seconds (a guess from this page: a wrong guess costs a partial
        page, never an object).

        - A window open below (no `start_date`: how far back objects go is unknown) hands
          everything older than a few pages' span to one new window, open below in turn,
          whose own first page shows whether anything is there (an empty one costs one
          request). Each generation reaches twice as far back, so a long history is
          covered in a few steps; the window kept is then closed, and split like one below.
        - A closed window is cut evenly in created time among itself and the free workers,
          in parts of at least `_PART_PAGES` pages, but only by the closed window with the
          most pages left: every window ends in a partial page, so the work is shared out in
          few big parts rather than many small ones (a bigger window splits at its next
          page, a fraction of a second later).

        A worker is free while fewer windows are being read than `wanted()`: with a fast
        round trip a few windows keep the rate limit busy, and more would only add partial
        pages."""
        if not page:
            return []
        last, first = int(page[-1]["created"]), int(page[0]["created"])
        span = max(1, first - last)
        with self._lock:
            window.top, window.span = last + 1, span
            free = self.wanted() - len(self._live)
            if free <= 0:
                return []
            if window.open_below:
                edge = last - span * _OPEN_PAGES * _GROWTH**window.generation
                if edge <= _STRIPE_EPOCH:
                    return []
                window.gte, window.open_below = edge, False
                spawned = [_Window(gte=None, lt=edge, open_below=True, generation=window.generation + 1)]
            else:
                mine = window.pages_left()
                if any(w is not window and not w.open_below and w.pages_left() > mine for w in self._live):
                    return []
                assert window.gte is not None
                low = window.gte
                length = last + 1 - low  # seconds of [gte, last]
                parts = min(length // (span * _PART_PAGES), length, 1 + free)
                if parts < 2:
                    return []
                edges = [low + length * i // parts for i in range(1, parts)]  # distinct: parts <= length
                bounds = [low, *edges]
                window.gte = edges[-1]
                spawned = [
                    _Window(gte=bounds[i], lt=bounds[i + 1], top=bounds[i + 1], span=span) for i in range(len(edges))
                ]
            self._live.extend(spawned)
            return spawned


class _ForwardPaginator(Paginator[str]):
    """`ending_before` paging: each page holds the objects just newer than the token, newest
    first, so the next token is the first item's id."""

    def has_more(self, response: httpx.Response) -> bool:
        body = response.json()
        return bool(body.get("has_more")) and bool(body.get("data"))

    def get_next(self, response: httpx.Response) -> str | None:
        return str(response.json()["data"][0]["id"]) if self.has_more(response) else None


def _reader(stream: str) -> Callable[[StripeProvider, str | None], Iterator[Page]]:
    def read(self: StripeProvider, cursor: str | None) -> Iterator[Page]:
        return self._read(STREAMS[stream], cursor)

    read.__name__ = f"read_{stream}"
    read.__doc__ = f"Pages of Stripe {stream} changed since `cursor` (all of them when None)."
    return read


class StripeProvider(Provider):
    name = "stripe"
    kind = "gateway"
    settings_model = StripeSettings
    mapping_file = "connector.mappings:stripe.toml"
    streams = tuple(STREAMS)
    actions = ("mark_paid", "send_invoice", "void_invoice")

    settings: StripeSettings

    def __init__(
        self,
        settings: StripeSettings,
        *,
        connection: str | None = None,
        token_store: TokenStore | None = None,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(settings, connection=connection, token_store=token_store)
        headers = {"Stripe-Version": settings.api_version}
        if settings.stripe_account:
            headers["Stripe-Account"] = settings.stripe_account
        self._clock = clock
        self.http = ProviderHttp(
            self.name,
            base_url=settings.base_url,
            auth=BearerAuth(settings.api_key),
            rate_limiter=rate_limiter
            or RateLimiter.from_spec(
                {
                    "default": [(settings.account_requests_per_second(), 1)],
                    **{
                        _endpoint_bucket(path): [(settings.endpoint_requests_per_second, 1)]
                        for path in {s.path for s in STREAMS.values()} | {"/v1/events"}
                    },
                },
                concurrency=settings.max_in_flight,
                provider=self.name,
            ),
            retry=retry,
            request_id_headers=("Request-Id",),
            headers=headers,
            timeout=settings.timeout_seconds,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    # -- streams ---------------------------------------------------------------------------

    # One reader per stream (the registry checks each `read_<stream>` exists).
    read_customers = _reader("customers")
    read_invoices = _reader("invoices")
    read_charges = _reader("charges")
    read_payment_intents = _reader("payment_intents")
    read_refunds = _reader("refunds")
    read_payouts = _reader("payouts")
    read_credit_notes = _reader("credit_notes")
    read_balance_transactions = _reader("balance_transactions")
    read_disputes = _reader("disputes")

    def _read(self, stream: StreamDef, cursor: str | None) -> Iterator[Page]:
        state = cursors.decode(cursor, stream=stream.name)
        if state is None:
            yield from self._full(stream, notes=[])
            return
        if "list" in state:
            listing = state["list"]
            yield from self._list(stream, listing.get("starting_after"), listing.get("gte"), state["then"])
            return
        since = cursors.anchor_time(state)  # the last point known complete (the check, for events)
        if since is not None and since < self._horizon():
            yield from self._full(stream, notes=[self._expired_note(stream, since)])
            return
        if "created" in state:
            then = {"created": {"gte": self._now() - self.settings.cursor_overlap_seconds}}
            yield from self._list(stream, None, state["created"]["gte"], then)
            return
        yield from self._events(stream, state["events"])

    def _full(self, stream: StreamDef, notes: list[str]) -> Iterator[Page]:
        """Everything, then catch up from the point noted before the list began."""
        then = self._anchor(stream)
        if self.settings.full_pull_windows <= 1 or not stream.created_filter:
            yield from self._list(stream, None, None, then, notes=notes)
            return
        yield from self._windowed(stream, then, notes)

    # -- concurrent full pull --------------------------------------------------------------
    #
    # The windows are split by work as the pages arrive, not fixed beforehand. There is no
    # probe: the pull starts as one window, the whole list (from `start_date`), whose first
    # request is the newest page, and a stream that fits in a page is done with that one
    # request. A page that says `has_more` tells two things: everything left in its window is
    # at or below the page's oldest `created`, and how many seconds a page of objects spans
    # there. With a worker free, the window then hands part of what it has left to a new
    # window (see `_Windows.split`); the window itself goes on from its page with `starting_after`,
    # with its `created[gte]` raised to where the part it gave away begins. The windows
    # therefore always partition the created range below the first page, so each object is
    # read once; every request reads a page (only a window that turns out empty costs a
    # request for nothing), and the chain before the workers are busy is a page or two, where
    # probing for the oldest object used to take some twenty `limit=1` requests one after
    # the other. Objects created after the first page are not in the list, as with a
    # sequential list: the events position (or created time) noted before it catches them up.

    def _windowed(self, stream: StreamDef, then: dict[str, Any], notes: list[str]) -> Iterator[Page]:
        workers = min(self.settings.full_pull_windows, self.settings.max_in_flight)
        # Bounded: at most this many pages wait for the consumer (plus one per worker in hand).
        pages: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=2 * workers)
        stop = threading.Event()
        rate = min(self.settings.account_requests_per_second(), self.settings.endpoint_requests_per_second)
        windows = _Windows(workers, rate=rate)

        def put(item: tuple[str, Any]) -> bool:
            while not stop.is_set():
                try:
                    pages.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def work(window: _Window) -> None:
            try:
                for response, records in self._window_pages(stream, window):
                    if stop.is_set():
                        return
                    if records:
                        put(("page", [self._complete(stream, r) for r in records]))
                    if response is None:
                        continue
                    if ROUND_TRIP in response.extensions:
                        windows.timed(response.extensions[ROUND_TRIP])
                    spawned = windows.split(window, records)
                    if spawned:
                        # Counted by the consumer before any of them can end (one queue, FIFO).
                        if not put(("started", len(spawned))):
                            return
                        for child in spawned:
                            pool.submit(work, child)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
                put(("error", exc))
            finally:
                windows.finish(window)
                put(("done", None))

        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"stripe-{stream.name}")
        try:
            start = self.settings.start_epoch()
            first = _Window(gte=start, lt=None, open_below=start is None)
            windows.start(first)
            pool.submit(work, first)
            running, held = 1, None
            while running:
                kind, value = pages.get()
                if kind == "done":
                    running -= 1
                elif kind == "started":
                    running += value
                elif kind == "error":
                    raise value
                else:
                    if held is not None:  # one page is held back: the last carries the cursor
                        yield Page(stream.name, held, cursor=None, notes=notes)
                        notes = []
                    held = value
            yield Page(stream.name, held or [], cursor=cursors.encode(then), notes=notes)
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)

    def _window_pages(
        self, stream: StreamDef, window: _Window
    ) -> Iterator[tuple[httpx.Response | None, list[dict[str, Any]]]]:
        """The pages of a window: `(response, records)`, the response None on the last page
        (nothing more to split). `window.gte` may be raised between pages (`_Windows.split`): the next
        page is asked with it, from the same `starting_after` chain (and loop check)."""
        buckets = self._buckets(stream.path)

        def fetch(token: str | None) -> httpx.Response:
            params: dict[str, Any] = {"limit": self.settings.page_size, **stream.list_params}
            if window.gte is not None:
                params["created[gte]"] = window.gte
            if window.lt is not None:
                params["created[lt]"] = window.lt
            if token:
                params["starting_after"] = token
            return self.http.request("GET", stream.path, params=params, bucket=buckets)

        for response, next_token in iter_pages(fetch, LastIdPaginator(), provider=self.name):
            yield (response if next_token is not None else None), self._data(response)

    def _anchor(self, stream: StreamDef) -> dict[str, Any]:
        since = self._now() - self.settings.cursor_overlap_seconds
        if not stream.has_events:
            return {"created": {"gte": since}}
        body = self._get("/v1/events", {"limit": 1, **stream.event_params()}, bucket=self._buckets("/v1/events"))
        newest = body.get("data") or []
        if newest:  # the newest event now: nothing after it is missing up to `since`
            return {"events": {"after": newest[0]["id"], "at": newest[0]["created"], "checked": since}}
        return {"events": {"since": since}}

    def _list(
        self,
        stream: StreamDef,
        starting_after: str | None,
        gte: int | None,
        then: dict[str, Any],
        notes: list[str] | None = None,
    ) -> Iterator[Page]:
        params: dict[str, Any] = {"limit": self.settings.page_size, **stream.list_params}
        if gte is not None:
            params["created[gte]"] = gte

        def fetch(token: str | None) -> httpx.Response:
            page_params = dict(params, starting_after=token) if token else params
            return self.http.request("GET", stream.path, params=page_params, bucket=self._buckets(stream.path))

        pages = iter_pages(fetch, LastIdPaginator(), provider=self.name, start=starting_after)
        for response, next_token in pages:
            records = [self._complete(stream, r) for r in self._data(response)]
            if next_token is not None:
                state = {"list": {"starting_after": next_token, "gte": gte}, "then": then}
            else:
                state = then
            yield Page(stream.name, records, cursor=cursors.encode(state), notes=notes or [])
            notes = None

    def _events(self, stream: StreamDef, position: dict[str, Any]) -> Iterator[Page]:
        # Once the feed is read to its end, nothing created before this is missing.
        mark = self._now() - self.settings.cursor_overlap_seconds
        after = position.get("after")
        if after is not None and position.get("at") is not None and int(position["at"]) < self._horizon():
            # A quiet stream: the event we follow is about to be pruned (or is), but the feed was
            # checked since (`_read` saw to that) with nothing after it: read from the check.
            after = None
        if after is None:
            # `since`, or the last check when it is later: nothing before it is missing
            oldest = self._oldest_events_page(stream, cursors.anchor_time({"events": position}) or 0)
            if not oldest:  # nothing new: the position stays, checked now
                yield Page(stream.name, [], cursor=cursors.encode({"events": cursors.checked(position, mark)}))
                return
            yield self._events_page(stream, oldest)
            after = oldest[0]["id"]
            position = {"after": after, "at": oldest[0]["created"]}

        params = {"limit": self.settings.page_size, **stream.event_params()}

        def fetch(token: str | None) -> httpx.Response:
            return self.http.request(
                "GET", "/v1/events", params=dict(params, ending_before=token), bucket=self._buckets("/v1/events")
            )

        pages = iter_pages(fetch, _ForwardPaginator(), provider=self.name, start=after)
        try:
            first = next(pages)
        except InvalidRequestError as exc:
            # The event we follow is gone (pruned; Stripe says resource_missing): start over.
            if not isinstance(exc, NotFoundError) and exc.code != "resource_missing":
                raise
            yield from self._full(stream, notes=[self._expired_note(stream, position.get("at"))])
            return
        for response, next_token in _chain(first, pages):
            events = self._data(response)
            if events:  # the last page reaches the end of the feed: the cursor notes the check
                yield self._events_page(stream, events, checked=mark if next_token is None else None)
            else:  # nothing new: the position stays, checked now
                yield Page(stream.name, [], cursor=cursors.encode({"events": cursors.checked(position, mark)}))

    def _oldest_events_page(self, stream: StreamDef, since: int) -> list[dict[str, Any]]:
        """The oldest page of events created since `since` (walking back from the newest)."""
        params = {"limit": self.settings.page_size, "created[gte]": since, **stream.event_params()}

        def fetch(token: str | None) -> httpx.Response:
            page_params = dict(params, starting_after=token) if token else params
            return self.http.request("GET", "/v1/events", params=page_params, bucket=self._buckets("/v1/events"))

        oldest: list[dict[str, Any]] = []
        for response, _ in iter_pages(fetch, LastIdPaginator(), provider=self.name):
            oldest = self._data(response) or oldest
        return oldest

    def _events_page(self, stream: StreamDef, events: list[dict[str, Any]], checked: int | None = None) -> Page:
        """One page of events (newest first) as the current objects, oldest change first;
        the cursor moves to the page's newest event (and notes `checked` when given: the page
        is the end of the feed)."""
        latest: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        for event in reversed(events):
            obj = event.get("data", {}).get("object") or {}
            if stream.name == "charges" and obj.get("object") == "dispute" and obj.get("charge"):
                key = f"charge:{obj['charge']}"  # charge.dispute.*: the disputed charge changed
                latest.pop(key, None)
                latest[key] = (event, {"object": "charge", "id": obj["charge"]})
            elif obj.get("object") == stream.object or (stream.name == "refunds" and obj.get("object") == "charge"):
                key = f"{obj.get('object')}:{obj.get('id')}"
                latest.pop(key, None)  # re-inserted last: the order of the last change
                latest[key] = (event, obj)
        records: list[dict[str, Any]] = []
        for event, obj in latest.values():
            records.extend(self._current(stream, event, obj))
        newest = events[0]
        position: dict[str, Any] = {"after": newest["id"], "at": newest["created"]}
        if checked is not None:
            position["checked"] = checked
        return Page(stream.name, records, cursor=cursors.encode({"events": position}))

    def _current(self, stream: StreamDef, event: dict[str, Any], obj: dict[str, Any]) -> list[dict[str, Any]]:
        if obj.get("object") != stream.object:  # charge.refunded: the charge's refunds
            return self._all(STREAMS["refunds"].path, {"charge": obj["id"]})
        if str(event.get("type", "")).endswith(".deleted"):
            return [{**obj, "deleted": True}]
        if stream.always_refetch or event.get("api_version") != self.settings.api_version:
            try:
                fresh = self._get(f"{stream.path}/{obj['id']}", stream.get_params)
            except NotFoundError:  # deleted since (draft invoices are deleted for good)
                return [{**obj, "deleted": True}]
            return [self._complete(stream, fresh)]
        return [self._complete(stream, obj)]

    def _complete(self, stream: StreamDef, record: dict[str, Any]) -> dict[str, Any]:
        """An invoice carries its first lines only; fetch the rest so its lines add up. A
        disputed charge gets its disputes (`DISPUTED_KEY`): the charge itself only says that
        it is disputed, not how the dispute stands."""
        if stream.name == "charges" and record.get("disputed") and DISPUTED_KEY not in record:
            disputes = self._all(STREAMS["disputes"].path, {"charge": record["id"]})
            return {**record, DISPUTED_KEY: {"object": "list", "data": disputes}}
        lines = record.get("lines")
        if stream.name != "invoices" or not isinstance(lines, dict) or not lines.get("has_more"):
            return record
        data = list(lines.get("data") or [])
        rest = self._all(f"/v1/invoices/{record['id']}/lines", {}, starting_after=data[-1]["id"] if data else None)
        return {**record, "lines": {**lines, "data": data + rest, "has_more": False}}

    # -- actions ---------------------------------------------------------------------------

    def apply_mark_paid(self, action: Action) -> ActionResult:
        """Mark a Stripe invoice paid out of band (`paid_out_of_band=true`: no charge)."""
        invoice_id = self._invoice_target(action)
        current = self._get(f"/v1/invoices/{invoice_id}", {})
        if current.get("status") == "paid":
            return ActionResult(remote_id=invoice_id, response=current, replayed=True)
        self._check_whole_amount(action, current)
        return self._post(action, f"/v1/invoices/{invoice_id}/pay", {"paid_out_of_band": "true"})

    def apply_void_invoice(self, action: Action) -> ActionResult:
        invoice_id = self._invoice_target(action)
        current = self._get(f"/v1/invoices/{invoice_id}", {})
        if current.get("status") == "void":
            return ActionResult(remote_id=invoice_id, response=current, replayed=True)
        return self._post(action, f"/v1/invoices/{invoice_id}/void", {})

    def apply_send_invoice(self, action: Action) -> ActionResult:
        """Email the invoice to the customer through Stripe (a reminder). Stripe keeps no
        trace of a send that we could look up, so only the idempotency key (24 h) dedupes."""
        invoice_id = self._invoice_target(action)
        return self._post(action, f"/v1/invoices/{invoice_id}/send", {})

    def _invoice_target(self, action: Action) -> str:
        target = action.target
        remote_id = target.remote_id if target is not None else action.payload.get("invoice_id")
        if not remote_id or (target is not None and target.object_type != "invoice"):
            raise InvalidRequestError(f"{action.kind} needs an invoice target, got {target!r}", provider=self.name)
        return str(remote_id)

    def _check_whole_amount(self, action: Action, invoice: dict[str, Any]) -> None:
        """API 2023-08-16 marks the whole remaining amount paid; a partial amount would be
        recorded as a full payment, so it is refused instead."""
        amount = action.payload.get("amount")
        if amount is None:
            return
        currency = str(action.payload.get("currency") or invoice["currency"]).upper()
        wanted = Money.of(amount, currency)
        remaining = Money.from_minor(
            int(invoice["amount_remaining"]),
            str(invoice["currency"]).upper(),
            exponent=stripe_exponent(invoice["currency"]),
        )
        if wanted != remaining:
            raise InvalidRequestError(
                f"mark_paid of {wanted} on invoice {invoice.get('id')} whose remaining amount is "
                f"{remaining}: Stripe API {self.settings.api_version} can only mark the whole "
                "invoice paid out of band",
                provider=self.name,
            )

    def _post(self, action: Action, path: str, data: dict[str, Any]) -> ActionResult:
        response = self.http.request("POST", path, data=data, idempotency_key=action.idempotency_key)
        body = decode_json(response, provider=self.name)
        replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
        return ActionResult(remote_id=body.get("id"), response=body, replayed=replayed)

    # -- plumbing --------------------------------------------------------------------------

    def _now(self) -> int:
        return int(self._clock())

    def _horizon(self) -> int:
        """Events created before this may be gone (Stripe keeps 30 days; a day's margin)."""
        return self._now() - (self.settings.events_retention_days - 1) * _DAY

    def _get(self, path: str, params: dict[str, Any], bucket: tuple[str, ...] = ("default",)) -> dict[str, Any]:
        response = self.http.request("GET", path, params=params, bucket=bucket)
        body: dict[str, Any] = decode_json(response, provider=self.name)
        return body

    def _buckets(self, path: str) -> tuple[str, ...]:
        """The account's bucket and the endpoint's own (when the limiter has it: a limiter
        passed in may have the account bucket only)."""
        limiter = self.http.rate_limiter
        endpoint = _endpoint_bucket(path)
        return ("default", endpoint) if limiter is not None and endpoint in limiter.buckets else ("default",)

    def _data(self, response: httpx.Response) -> list[dict[str, Any]]:
        body = decode_json(response, provider=self.name)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise InvalidRequestError(
                f"GET {response.request.url.path} answered without a `data` list", provider=self.name
            )
        return data

    def _all(self, path: str, params: dict[str, Any], starting_after: str | None = None) -> list[dict[str, Any]]:
        """Every item of a small list (an invoice's lines, a charge's refunds)."""
        base = {"limit": 100, **params}

        def fetch(token: str | None) -> httpx.Response:
            return self.http.request("GET", path, params=dict(base, starting_after=token) if token else base)

        items: list[dict[str, Any]] = []
        for response, _ in iter_pages(fetch, LastIdPaginator(), provider=self.name, start=starting_after):
            items.extend(self._data(response))
        return items

    def _expired_note(self, stream: StreamDef, since: Any) -> str:
        return (
            f"stripe {stream.name}: the saved position (epoch {since}) is older than Stripe keeps "
            "events; reading the whole stream again"
        )


def _endpoint_bucket(path: str) -> str:
    return f"GET {path}"


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest
