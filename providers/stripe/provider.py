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
by `created` is split into `full_pull_windows` created windows read side by side on worker
threads that share this connection's one `ProviderHttp` (and so its rate limiter): the pages
come out as they arrive, through a bounded queue. Their cursors are None (nothing to resume
from: the windows finish in any order) except the last page's, which is the events position
noted before the pull began. A run that stops midway starts the full pull again next time;
the store dedupes by id.

Writing: every POST carries the action's idempotency key; before marking paid or voiding, the
invoice is read, so an action repeated after Stripe forgot the key (24 h) is not done twice.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from connector.errors import InvalidRequestError, NotFoundError
from connector.http import (
    BearerAuth,
    LastIdPaginator,
    Paginator,
    ProviderHttp,
    RateLimiter,
    RetryPolicy,
    decode_json,
    iter_pages,
)
from connector.model import Action
from connector.money import Money
from mappings.transforms import stripe_exponent
from providers.base import ActionResult, Page, Provider, TokenStore
from providers.stripe import cursor as cursors
from providers.stripe.settings import StripeSettings
from providers.stripe.streams import STREAMS, StreamDef

_DAY = 86400
# No Stripe object is older than this (2010-01-01): the floor of the probe for the oldest.
_STRIPE_EPOCH = 1_262_304_000


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
    mapping_file = "mappings:stripe.toml"
    streams = tuple(STREAMS)
    actions = ("mark_paid", "send_invoice", "void_invoice")

    settings: StripeSettings

    def __init__(
        self,
        settings: StripeSettings,  # type: ignore[override]
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
        windows = self._windows(stream)
        if not windows:  # nothing in the account (or nothing since start_date)
            yield Page(stream.name, [], cursor=cursors.encode(then), notes=notes)
            return
        yield from self._windowed(stream, windows, then, notes)

    # -- concurrent full pull --------------------------------------------------------------

    def _windows(self, stream: StreamDef) -> list[tuple[int | None, int | None]]:
        """The created windows `(gte, lt)` of a full pull, oldest first. The first is open
        below (unless `start_date` is set) and the last open above, so an object outside the
        probed range (created during the pull, or older than a probe saw) is still read."""
        start = self.settings.start_epoch()
        newest = self._probe(stream, gte=start, lt=None)
        if newest is None:
            return []
        top = newest + 1  # objects exist below `top`
        # Find the oldest to within a fraction of the populated range: gallop down from the
        # newest (an hour, then 4x further each time) to a point with nothing below it, then
        # bisect. Each probe answers with the newest object below its point, which lowers
        # `high` at once. Nothing is below `low`; something is below `high`.
        floor = start if start is not None else _STRIPE_EPOCH
        count = self.settings.full_pull_windows
        high, low, step = top, None, 3600
        while low is None:
            point = high - step
            if point <= floor:
                low = floor
                break
            found = self._probe(stream, gte=start, lt=point)
            if found is None:
                low = point
            else:
                high, step = found + 1, step * 4
        while high - low > max(60, (top - high) // (count * 4)):
            mid = (low + high) // 2
            found = self._probe(stream, gte=start, lt=mid)
            if found is None:
                low = mid
            else:
                high = found + 1
        oldest = low
        width = max(1, -(-(top - oldest) // count))  # ceil
        edges = list(range(oldest, top, width))[1:]
        bounds: list[int | None] = [start, *edges]
        return [(bounds[i], edges[i] if i < len(edges) else None) for i in range(len(bounds))]

    def _probe(self, stream: StreamDef, *, gte: int | None, lt: int | None) -> int | None:
        """The created time of the newest object in [gte, lt), or None if there is none."""
        params: dict[str, Any] = {"limit": 1}
        if gte is not None:
            params["created[gte]"] = gte
        if lt is not None:
            params["created[lt]"] = lt
        data = self._get(stream.path, params, bucket=self._buckets(stream.path)).get("data") or []
        return int(data[0]["created"]) if data else None

    def _windowed(
        self,
        stream: StreamDef,
        windows: list[tuple[int | None, int | None]],
        then: dict[str, Any],
        notes: list[str],
    ) -> Iterator[Page]:
        workers = min(len(windows), self.settings.max_in_flight)
        # Bounded: at most this many pages wait for the consumer (plus one per worker in hand).
        pages: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=2 * workers)
        stop = threading.Event()

        def put(item: tuple[str, Any]) -> None:
            while not stop.is_set():
                try:
                    pages.put(item, timeout=0.05)
                    return
                except queue.Full:
                    continue

        def work(gte: int | None, lt: int | None) -> None:
            try:
                for response in self._window_pages(stream, gte, lt):
                    if stop.is_set():
                        return
                    records = [self._complete(stream, r) for r in self._data(response)]
                    if records:
                        put(("page", records))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
                put(("error", exc))
            finally:
                put(("done", None))

        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"stripe-{stream.name}")
        try:
            for gte, lt in windows:
                pool.submit(work, gte, lt)
            running, held = len(windows), None
            while running:
                kind, value = pages.get()
                if kind == "done":
                    running -= 1
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

    def _window_pages(self, stream: StreamDef, gte: int | None, lt: int | None) -> Iterator[httpx.Response]:
        params: dict[str, Any] = {"limit": self.settings.page_size, **stream.list_params}
        if gte is not None:
            params["created[gte]"] = gte
        if lt is not None:
            params["created[lt]"] = lt
        buckets = self._buckets(stream.path)

        def fetch(token: str | None) -> httpx.Response:
            page_params = dict(params, starting_after=token) if token else params
            return self.http.request("GET", stream.path, params=page_params, bucket=buckets)

        for response, _ in iter_pages(fetch, LastIdPaginator(), provider=self.name):
            yield response

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
            if obj.get("object") == stream.object or (stream.name == "refunds" and obj.get("object") == "charge"):
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
        """An invoice carries its first lines only; fetch the rest so its lines add up."""
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
            raise InvalidRequestError(
                f"{action.kind} needs an invoice target, got {target!r}", provider=self.name
            )
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
            int(invoice["amount_remaining"]), str(invoice["currency"]).upper(),
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
