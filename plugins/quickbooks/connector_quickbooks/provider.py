"""The QuickBooks Online adapter: customers, invoices, payments and credit memos in; payments
and invoice emails out. Paging, cursors and CDC windows are decided in `incremental`, bodies
in `writes`. Built on the public plugin API only."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from connector.plugin import (
    Action,
    ActionResult,
    ConfigError,
    OAuthTokenManager,
    Page,
    PaginationLoopError,
    Provider,
    ProviderError,
    ProviderHttp,
    ProviderKind,
    ProviderSettings,
    RateLimiter,
    RetryPolicy,
    TokenStore,
    decode_json,
    idempotency_param,
    normalise_currency,
)
from connector_quickbooks import incremental
from connector_quickbooks.settings import QuickBooksSettings
from connector_quickbooks.writes import (
    accepted_payment,
    check_invoice,
    check_request_id,
    fault_message,
    payment_body,
    payment_request,
    refuse,
)

# The same pool sizes the connector's own clients use (the wrapper below replaces httpx's
# default transport, which would otherwise take them from the client).
_POOL = httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=30.0)


class ThrottleHint(httpx.BaseTransport):
    """QuickBooks answers 429 ("ThrottleExceeded") usually without Retry-After and asks for a
    60-second wait: add that `Retry-After` so the shared retry policy waits the documented
    time instead of its short backoff."""

    def __init__(self, inner: httpx.BaseTransport, wait_seconds: float) -> None:
        self.inner = inner
        self.wait = wait_seconds

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if response.status_code == 429 and "retry-after" not in response.headers:
            response.headers["Retry-After"] = str(int(self.wait))
        return response

    def close(self) -> None:
        self.inner.close()


class QuickBooksProvider(Provider):
    """QuickBooks Online Accounting API for one company (realm). See docs/providers/quickbooks.md."""

    name: ClassVar[str] = "quickbooks"
    kind: ClassVar[ProviderKind] = "ledger"
    settings_model: ClassVar[type[ProviderSettings]] = QuickBooksSettings
    mapping_file: ClassVar[str | None] = "connector_quickbooks:mapping.toml"
    streams: ClassVar[tuple[str, ...]] = ("customers", "invoices", "payments", "credit_memos")
    actions: ClassVar[tuple[str, ...]] = ("record_payment", "send_invoice")

    settings: QuickBooksSettings

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        connection: str | None = None,
        token_store: TokenStore | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(settings, connection=connection, token_store=token_store)
        s = self.settings
        self.clock = clock
        expires_at = s.access_token_expires_at.timestamp() if s.access_token_expires_at else None
        # Access tokens live one hour; each refresh may rotate the refresh token, and the
        # manager saves the newest through the TokenStore before using it.
        self.auth = OAuthTokenManager(
            connection=self.connection,
            token_url=s.token_url,
            client_id=s.client_id,
            client_secret=s.client_secret,
            refresh_token=s.refresh_token,
            access_token=s.access_token,
            expires_at=expires_at,
            token_store=token_store,
            client_auth="basic",
            provider=self.name,
            clock=clock,
            transport=transport,
            timeout=s.timeout_seconds,
        )
        retry = retry or RetryPolicy()
        limiter = RateLimiter.from_spec(
            {"default": [(s.calls_per_minute, 60)]},
            concurrency=s.max_concurrent,
            defer_after=retry.defer_after,
            provider=self.name,
        )
        inner = transport if transport is not None else httpx.HTTPTransport(limits=_POOL)
        self.http = ProviderHttp(
            self.name,
            base_url=f"{s.base_url.rstrip('/')}/v3/company/{s.realm_id}",
            auth=self.auth,
            rate_limiter=limiter,
            retry=retry,
            request_id_headers=("intuit_tid",),
            idempotency=idempotency_param("requestid"),
            headers={"Accept": "application/json"},
            timeout=s.timeout_seconds,
            transport=ThrottleHint(inner, s.throttle_wait_seconds),
        )
        self._home_currency: str | None = s.home_currency

    # -- plumbing ----------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        query = {**(params or {}), "minorversion": str(self.settings.minor_version)}
        response = self.http.request("GET", path, params=query)
        body = decode_json(response, provider=self.name)
        fault = fault_message(body)
        if fault:
            raise ProviderError(f"GET {path}: {fault}", provider=self.name, http_status=response.status_code)
        return body

    def _post(self, path: str, *, key: str, json: Any = None) -> Any:
        check_request_id(key)
        params = {"minorversion": str(self.settings.minor_version)}
        response = self.http.request("POST", path, params=params, json=json, idempotency_key=key)
        return decode_json(response, provider=self.name)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def home_currency(self) -> str:
        """The company's home currency (settings, else `GET /preferences`)."""
        if self._home_currency is None:
            prefs = self._get("/preferences").get("Preferences") or {}
            value = ((prefs.get("CurrencyPrefs") or {}).get("HomeCurrency") or {}).get("value")
            try:
                self._home_currency = normalise_currency(value)
            except ValueError:
                raise ConfigError(
                    "QuickBooks did not say the company's home currency; set `home_currency`",
                    where=f"connections.{self.connection}",
                ) from None
        return self._home_currency

    # -- streams -----------------------------------------------------------------------

    def read_customers(self, cursor: str | None) -> Iterator[Page]:
        return self._read("customers", cursor)

    def read_invoices(self, cursor: str | None) -> Iterator[Page]:
        return self._read("invoices", cursor)

    def read_payments(self, cursor: str | None) -> Iterator[Page]:
        return self._read("payments", cursor)

    def read_credit_memos(self, cursor: str | None) -> Iterator[Page]:
        return self._read("credit_memos", cursor)

    def _read(self, stream: str, cursor: str | None) -> Iterator[Page]:
        """Deletes since the cursor (CDC) first, without moving the cursor; then every record
        changed since the cursor (query API), page by page, each page with the cursor safe to
        save after it. A `RateLimitDeferred` propagates after the pages already yielded."""
        entity = incremental.ENTITIES[stream]
        since = incremental.load_cursor(cursor)
        if since is not None and entity != "Customer":
            # Customers are never deleted in QuickBooks, only made inactive (read by the query).
            deleted, notes = self._deleted_since(entity, since)
            if deleted or notes:
                yield Page(stream, deleted, cursor=None, notes=notes)
        yield from self._query_pages(stream, entity, since)

    def _query_pages(self, stream: str, entity: str, since: datetime | None) -> Iterator[Page]:
        size = self.settings.page_size
        position: incremental.Position | None = incremental.Position(since)
        previous: tuple[incremental.Position, list[Any]] | None = None
        # (Id, LastUpdatedTime) already yielded at or after the current lower bound: the
        # overlap of the next query, not yielded twice.
        recent: set[tuple[Any, Any]] = set()
        while position is not None:
            text = incremental.query(entity, position, size)
            body = self._get("/query", {"query": text})
            answer = body.get("QueryResponse") if isinstance(body, dict) else None
            raws = [r for r in (answer or {}).get(entity) or [] if isinstance(r, dict)]
            ids = [raw.get("Id") for raw in raws]
            if raws and previous is not None and previous[1] == ids and previous[0].since == position.since:
                raise PaginationLoopError(
                    f"the query answered STARTPOSITION {position.start} with the records of the page "
                    "before; it ignores paging",
                    provider=self.name,
                )
            previous = (position, ids)
            decided = incremental.step(position, raws, size)
            fresh = [raw for raw in raws if (raw.get("Id"), _stamp(raw)) not in recent]
            yield Page(stream, fresh, cursor=incremental.dump_cursor(decided.cursor_since))
            following = decided.next
            if following is not None and following.since is not None:
                bound = incremental.floor(following.since)
                kept = recent if following.start > 1 else set()
                recent = kept | {
                    (raw.get("Id"), _stamp(raw))
                    for raw in raws
                    if (moment := incremental.updated_at(raw)) is not None and incremental.floor(moment) >= bound
                }
            position = following

    def _deleted_since(self, entity: str, since: datetime) -> tuple[list[dict[str, Any]], list[str]]:
        """Objects of `entity` that CDC reports deleted since `since` (less the overlap), each
        as CDC gives it (Id, status, MetaData) plus the company's CurrencyRef so the mapping
        can make it a void record. Answers of 1,000 objects are split (see `incremental`)."""
        notes: list[str] = []
        now = self._now()
        start, cut = incremental.cdc_since(since, now, timedelta(seconds=self.settings.cdc_overlap_seconds))
        if cut:
            notes.append(
                f"QuickBooks CDC looks back 30 days only: {entity} deletes before "
                f"{incremental.changed_since(start)} cannot be seen any more (the last sync was "
                f"{incremental.changed_since(since)})"
            )
        deleted: list[dict[str, Any]] = []
        seen: set[tuple[Any, Any]] = set()
        moment: datetime | None = start
        while moment is not None:
            body = self._get("/cdc", {"entities": entity, "changedSince": incremental.changed_since(moment)})
            objects = incremental.cdc_objects(body, entity)
            for raw in objects:
                key = (raw.get("Id"), _stamp(raw))
                if key in seen:
                    continue
                seen.add(key)
                if incremental.is_deleted(raw):
                    deleted.append(raw)
            following = incremental.cdc_next(moment, objects)
            if following is None and len(objects) >= incremental.CDC_MAX_OBJECTS:
                notes.append(
                    f"QuickBooks CDC answered {len(objects)} {entity} changes within one second of "
                    f"{incremental.changed_since(moment)}; deletes in that second may be missing"
                )
            elif following is not None:
                notes.append(
                    f"QuickBooks CDC answered {len(objects)} {entity} changes since "
                    f"{incremental.changed_since(moment)}; window split at {incremental.changed_since(following)}"
                )
            moment = following
        if deleted:
            home = None
            for raw in deleted:
                if not (raw.get("CurrencyRef") or {}).get("value"):
                    home = home or self.home_currency()
                    raw["CurrencyRef"] = {"value": home}
        return deleted, notes

    # -- actions -----------------------------------------------------------------------

    def apply_record_payment(self, action: Action) -> ActionResult:
        """`POST /payment` linked to the invoice (`Line[].LinkedTxn`), for the invoice's
        customer (read from the invoice), with the action's idempotency key as `requestid`:
        QuickBooks answers a repeated requestid with the original answer."""
        request = payment_request(action)
        invoice = self._get(f"/invoice/{request.invoice_id}").get("Invoice") or {}
        customer = check_invoice(invoice, request)
        body = payment_body(request, customer_id=customer, account_id=self.settings.payment_account_id)
        answer = self._post("/payment", key=action.idempotency_key, json=body)
        payment = accepted_payment(answer, request)
        return ActionResult(remote_id=str(payment["Id"]), response=answer, replayed=False)

    def apply_send_invoice(self, action: Action) -> ActionResult:
        """`POST /invoice/{id}/send`: QuickBooks emails the invoice to its BillEmail."""
        target = action.target
        if target is None or target.object_type != "invoice":
            raise refuse("send_invoice needs an invoice as its target")
        answer = self._post(f"/invoice/{target.remote_id}/send", key=action.idempotency_key)
        fault = fault_message(answer)
        if fault:
            raise refuse(f"POST /invoice/{target.remote_id}/send refused: {fault}")
        return ActionResult(remote_id=target.remote_id, response=answer, replayed=False)

    def close(self) -> None:
        self.http.close()


def _stamp(raw: dict[str, Any]) -> Any:
    meta = raw.get("MetaData")
    return meta.get("LastUpdatedTime") if isinstance(meta, dict) else None
