"""The Xero adapter: contacts, sales invoices, credit notes and payments in; payments, fees
and invoice emails out, and the deletes that reverse a payment or fee we recorded. Paging and
cursors are decided in `incremental`, bodies in `writes` and `reversals`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar

import httpx

from connector.errors import ConfigError, ConnectorError, InvalidRequestError, NotFoundError, PaginationLoopError
from connector.http import (
    OAuthTokenManager,
    ProviderHttp,
    RateLimiter,
    RetryPolicy,
    TokenStore,
    decode_json,
)
from connector.model import Action
from connector.providers.base import (
    ActionResult,
    Page,
    Provider,
    ProviderKind,
    ProviderSettings,
)
from connector.providers.xero import incremental
from connector.providers.xero.reversals import (
    PAYMENT_DELETE,
    bank_transaction_delete,
    check_fee_deletable,
    check_payment_deletable,
    delete_refused,
    describe,
    first_record,
    is_gone,
    reversal_target,
    validation_errors,
)
from connector.providers.xero.settings import XeroSettings
from connector.providers.xero.writes import (
    PaymentRequest,
    accepted_bank_transaction,
    accepted_payment,
    accepted_payment_element,
    check_invoice,
    fee_element,
    fee_identity,
    fee_request,
    match_answers,
    payment_identity,
    payment_request,
    refuse,
)

# Unit amounts to 4 decimal places (Xero's default is 2 and rounds them).
UNIT_DECIMAL_PLACES = 4
# Elements in one PUT: Xero sets no count limit, only 3.5 MB a request, and "recommend[s] you
# look to batch elements in bundles of up to 50" so that a request answers in good time
# (https://developer.xero.com/documentation/guides/oauth2/limits/ , "Request Size Limit").
# 50 also keeps the `IDs` filter of the invoice check short enough: Xero truncates a longer
# query (about 52 ids, XeroAPI/Xero-OpenAPI#534).
ELEMENTS_PER_REQUEST = 50
# Invoices in one page of `GET /Invoices` when paging (Xero's fixed page size).
INVOICES_PER_PAGE = 100


class XeroProvider(Provider):
    """Xero Accounting API for one tenant. See docs/providers/xero.md."""

    name: ClassVar[str] = "xero"
    kind: ClassVar[ProviderKind] = "ledger"
    settings_model: ClassVar[type[ProviderSettings]] = XeroSettings
    mapping_file: ClassVar[str | None] = "connector.mappings:xero.toml"
    streams: ClassVar[tuple[str, ...]] = ("contacts", "invoices", "credit_notes", "payments")
    actions: ClassVar[tuple[str, ...]] = (
        "record_payment",
        "record_fee",
        "send_invoice",
        "delete_payment",
        "delete_fee",
    )
    batch_limits: ClassVar[dict[str, int]] = {
        "record_payment": ELEMENTS_PER_REQUEST,
        "record_fee": ELEMENTS_PER_REQUEST,
    }

    settings: XeroSettings

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
        expires_at = s.access_token_expires_at.timestamp() if s.access_token_expires_at else None
        # An access token of unknown age is used until Xero refuses it (they live 30 minutes).
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
            {"default": [(s.calls_per_minute, 60), (s.calls_per_day, 86400)]},
            concurrency=s.max_concurrent,
            defer_after=retry.defer_after,
            provider=self.name,
        )
        self.http = ProviderHttp(
            self.name,
            base_url=s.base_url,
            auth=self.auth,
            rate_limiter=limiter,
            retry=retry,
            request_id_headers=("Xero-Correlation-Id",),
            headers={"Accept": "application/json", "xero-tenant-id": s.tenant_id},
            timeout=s.timeout_seconds,
            transport=transport,
        )

    # -- streams -----------------------------------------------------------------------

    def read_contacts(self, cursor: str | None) -> Iterator[Page]:
        # Archived contacts still own invoices; everyone is read, customers or not.
        return self._read("contacts", "/Contacts", "Contacts", cursor, {"includeArchived": "true"})

    def read_invoices(self, cursor: str | None) -> Iterator[Page]:
        # Only sales invoices are receivables: filtered by Xero, and again here in case a
        # proxy or sandbox ignores `where`. Bills (ACCPAY) never reach the mapping.
        return self._read(
            "invoices",
            "/Invoices",
            "Invoices",
            cursor,
            {"where": 'Type=="ACCREC"', "unitdp": str(UNIT_DECIMAL_PLACES)},
            keep=lambda raw: raw.get("Type", "ACCREC") == "ACCREC",
        )

    def read_credit_notes(self, cursor: str | None) -> Iterator[Page]:
        return self._read(
            "credit_notes",
            "/CreditNotes",
            "CreditNotes",
            cursor,
            {"where": 'Type=="ACCRECCREDIT"', "unitdp": str(UNIT_DECIMAL_PLACES)},
            keep=lambda raw: raw.get("Type", "ACCRECCREDIT") == "ACCRECCREDIT",
        )

    def read_payments(self, cursor: str | None) -> Iterator[Page]:
        # Payments on sales invoices only; refunds of credit notes and overpayments are not
        # payments of an invoice.
        return self._read(
            "payments",
            "/Payments",
            "Payments",
            cursor,
            {"where": 'PaymentType=="ACCRECPAYMENT"'},
            keep=lambda raw: raw.get("PaymentType", "ACCRECPAYMENT") == "ACCRECPAYMENT",
        )

    def _read(
        self,
        stream: str,
        path: str,
        items_key: str,
        cursor: str | None,
        params: Mapping[str, str],
        keep: Callable[[dict[str, Any]], bool] = lambda raw: True,
    ) -> Iterator[Page]:
        """Every record changed since `cursor`, DELETED and VOIDED ones included (the mapping
        makes them void). A `RateLimitDeferred` propagates after the pages already yielded."""
        position: incremental.Position | None = incremental.Position(incremental.load_cursor(cursor))
        size = self.settings.page_size
        id_key = _ID_KEYS[items_key]
        previous: tuple[datetime | None, list[Any]] | None = None  # (since, ids) of the last page
        # (id, UpdatedDateUTC) of records already yielded at or after the current second:
        # the overlap of the next request, not yielded twice.
        recent: set[tuple[Any, Any]] = set()
        while position is not None:
            headers = {}
            if position.since is not None:
                headers["If-Modified-Since"] = incremental.if_modified_since(position.since)
            query = {**params, "order": "UpdatedDateUTC ASC", "page": str(position.page), "pageSize": str(size)}
            response = self.http.request("GET", path, params=query, headers=headers)
            body = decode_json(response, provider=self.name)
            raws = body.get(items_key) if isinstance(body, dict) else None
            raws = [raw for raw in raws or [] if isinstance(raw, dict)]
            ids = [raw.get(id_key) for raw in raws]
            if raws and previous is not None and previous == (position.since, ids):
                raise PaginationLoopError(
                    f"GET {path} answered page {position.page} with the records of the page before; it ignores paging",
                    provider=self.name,
                )
            previous = (position.since, ids)
            decided = incremental.step(position, raws, size)
            fresh = [raw for raw in raws if keep(raw) and (raw.get(id_key), raw.get("UpdatedDateUTC")) not in recent]
            yield Page(stream, fresh, cursor=incremental.dump_cursor(decided.cursor_since))
            position = decided.next
            if position is not None and position.since is not None:
                floor = incremental.if_modified_since(position.since)
                recent = {
                    (raw.get(id_key), raw.get("UpdatedDateUTC"))
                    for raw in raws
                    if (moment := incremental.updated_at(raw)) is not None
                    and incremental.if_modified_since(moment) >= floor
                } | (recent if position.page > 1 else set())

    # -- actions -----------------------------------------------------------------------

    def apply_record_payment(self, action: Action) -> ActionResult:
        """`PUT /Payments` against the invoice, on the configured account, with the action's
        Idempotency-Key (Xero replays its first answer to a repeated key)."""
        request = payment_request(action, account_code=self._payment_account_code())
        response = self.http.request("GET", f"/Invoices/{request.invoice_id}")
        found = decode_json(response, provider=self.name).get("Invoices") or [{}]
        check_invoice({**found[0], "InvoiceID": request.invoice_id}, request.amount)
        response = self.http.request(
            "PUT",
            "/Payments",
            params={"summarizeErrors": "false"},
            json=request.body,
            idempotency_key=action.idempotency_key,
        )
        answer = decode_json(response, provider=self.name)
        payment = accepted_payment(answer, request.amount)
        # Xero does not say when it replays an answer; the same PaymentID tells.
        return ActionResult(remote_id=str(payment["PaymentID"]), response=answer, replayed=False)

    def batch_record_payment(self, actions: list[Action], key: str) -> list[ActionResult | ConnectorError]:
        """Several payments in one `PUT /Payments?summarizeErrors=false`, with `key` as its
        Idempotency-Key. First one `GET /Invoices?IDs=...` checks every invoice as the single
        path does (a bill, another currency, or an invoice Xero does not return refuses that
        payment alone); an action that cannot be a payment is refused alone too. Neither is
        sent. The body is built from the actions and the invoices only, in the actions' order,
        so a resend of the batch sends the same bytes and Xero replays its first answer.
        Each answered element is matched back to its action by invoice, amount and reference
        and read by the single path's rule (`accepted_payment_element`)."""
        code = self._payment_account_code()
        results: list[ActionResult | ConnectorError | None] = [None] * len(actions)
        requests: dict[int, PaymentRequest] = {}
        for index, action in enumerate(actions):
            try:
                requests[index] = payment_request(action, account_code=code)
            except InvalidRequestError as refused:
                results[index] = refused
        invoices = self._invoices_by_id([request.invoice_id for request in requests.values()])
        for index, request in list(requests.items()):
            invoice = invoices.get(request.invoice_id.lower())
            try:
                if invoice is None:
                    raise NotFoundError(
                        f"invoice {request.invoice_id} was not found in Xero; no payment recorded", provider=self.name
                    )
                check_invoice({**invoice, "InvoiceID": request.invoice_id}, request.amount)
            except InvalidRequestError as refused:
                results[index] = refused
                del requests[index]
        if requests:
            sent = list(requests.items())
            response = self.http.request(
                "PUT",
                "/Payments",
                params={"summarizeErrors": "false"},
                json={"Payments": [request.element for _, request in sent]},
                idempotency_key=key,
            )
            answer = decode_json(response, provider=self.name)
            elements = answer.get("Payments") if isinstance(answer, dict) else None
            matched = match_answers(
                [request.identity for _, request in sent],
                elements if isinstance(elements, list) else [],
                payment_identity,
            )
            for (index, request), element in zip(sent, matched, strict=True):
                results[index] = self._payment_result(request, element)
        return _complete(results)

    def _payment_result(self, request: PaymentRequest, element: dict[str, Any] | None) -> ActionResult | ConnectorError:
        """One action's outcome from its element of a batch answer."""
        if element is None:
            return refuse(
                f"PUT /Payments answered without the payment of {request.amount} on invoice {request.invoice_id}: "
                "check the invoice in Xero before sending it again"
            )
        try:
            payment = accepted_payment_element(element, request.amount)
        except InvalidRequestError as refused:
            return refused
        return ActionResult(remote_id=str(payment["PaymentID"]), response={"Payments": [payment]}, replayed=False)

    def _invoices_by_id(self, invoice_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The invoices Xero holds among `invoice_ids`, by lowercased id: one
        `GET /Invoices?IDs=a,b,c` (bills and other types too: the check refuses them), paged
        in case Xero answers a full page."""
        wanted = list(dict.fromkeys(invoice_ids))  # once each, first order kept
        found: dict[str, dict[str, Any]] = {}
        if not wanted:
            return found
        page = 1
        while True:
            response = self.http.request("GET", "/Invoices", params={"IDs": ",".join(wanted), "page": str(page)})
            body = decode_json(response, provider=self.name)
            raws = body.get("Invoices") if isinstance(body, dict) else None
            raws = [raw for raw in raws or [] if isinstance(raw, dict)]
            for raw in raws:
                found.setdefault(str(raw.get("InvoiceID") or "").lower(), raw)
            if len(raws) < INVOICES_PER_PAGE or all(ident.lower() in found for ident in wanted):
                return found
            page += 1

    def _payment_account_code(self) -> str:
        code = self.settings.payment_account_code
        if not code:
            raise ConfigError(
                "recording a payment in Xero needs `payment_account_code`: the Code of the bank "
                "or clearing account that payments are recorded against",
                where=f"connections.{self.connection}",
            )
        return code

    def apply_record_fee(self, action: Action) -> ActionResult:
        """`PUT /BankTransactions` (SPEND) booking a gateway fee from the payment (clearing)
        account to `fee_account_code`, with the action's Idempotency-Key."""
        body = fee_request(action, **self._fee_accounts())
        response = self.http.request(
            "PUT",
            "/BankTransactions",
            params={"summarizeErrors": "false"},
            json=body,
            idempotency_key=action.idempotency_key,
        )
        answer = decode_json(response, provider=self.name)
        booked = accepted_bank_transaction((answer.get("BankTransactions") or [{}])[0])
        return ActionResult(remote_id=str(booked["BankTransactionID"]), response=answer, replayed=False)

    def batch_record_fee(self, actions: list[Action], key: str) -> list[ActionResult | ConnectorError]:
        """Several fees in one `PUT /BankTransactions?summarizeErrors=false` with `key` as its
        Idempotency-Key; the body is built from the actions alone, in their order, so a resend
        sends the same bytes. An action that cannot be a fee is refused alone and not sent.
        Each answered element is matched back by reference and total and read by the single
        path's rule (`accepted_bank_transaction`)."""
        accounts = self._fee_accounts()
        results: list[ActionResult | ConnectorError | None] = [None] * len(actions)
        elements: dict[int, dict[str, Any]] = {}
        for index, action in enumerate(actions):
            try:
                elements[index] = fee_element(action, **accounts)
            except InvalidRequestError as refused:
                results[index] = refused
        if elements:
            sent = list(elements.items())
            response = self.http.request(
                "PUT",
                "/BankTransactions",
                params={"summarizeErrors": "false"},
                json={"BankTransactions": [element for _, element in sent]},
                idempotency_key=key,
            )
            answer = decode_json(response, provider=self.name)
            answered = answer.get("BankTransactions") if isinstance(answer, dict) else None
            matched = match_answers(
                [fee_identity(element) for _, element in sent],
                answered if isinstance(answered, list) else [],
                fee_identity,
            )
            for (index, element), booked in zip(sent, matched, strict=True):
                results[index] = _fee_result(element, booked)
        return _complete(results)

    def _fee_accounts(self) -> dict[str, str]:
        """The accounts a fee is booked between, or ConfigError naming the missing settings."""
        s = self.settings
        missing = [k for k in ("payment_account_code", "fee_account_code") if not getattr(s, k)]
        if missing:
            raise ConfigError(
                f"booking a gateway fee in Xero needs {' and '.join(missing)}",
                where=f"connections.{self.connection}",
            )
        return {
            "bank_code": s.payment_account_code or "",
            "fee_code": s.fee_account_code or "",
            "contact": s.fee_contact_name,
        }

    def apply_send_invoice(self, action: Action) -> ActionResult:
        """`POST /Invoices/{InvoiceID}/Email`: Xero emails the invoice to the contact (204)."""
        target = action.target
        if target is None or target.object_type != "invoice":
            raise refuse("send_invoice needs an invoice as its target")
        self.http.request(
            "POST",
            f"/Invoices/{target.remote_id}/Email",
            json={},
            idempotency_key=action.idempotency_key,
        )
        return ActionResult(remote_id=target.remote_id, response={}, replayed=False)

    def apply_delete_payment(self, action: Action) -> ActionResult:
        """Reverse a payment we recorded: `POST /Payments/{PaymentID}` with `{"Status": "DELETED"}`
        and the action's Idempotency-Key. Xero gives the amount back to the invoice. A payment
        already deleted is done (`replayed`); one reconciled or in a batch payment is refused,
        saying what to do by hand in Xero."""
        payment_id = reversal_target(action, "payment")
        return self._delete(
            action,
            "Payments",
            payment_id,
            body=lambda held: PAYMENT_DELETE,
            check=check_payment_deletable,
        )

    def apply_delete_fee(self, action: Action) -> ActionResult:
        """Reverse a fee we booked: its spend money transaction updated to `Status: DELETED`
        (`POST /BankTransactions/{BankTransactionID}`), sent with the type, account and lines
        Xero holds (read first, at 4 decimal places), and the action's Idempotency-Key."""
        transaction_id = reversal_target(action, "bank_transaction")
        return self._delete(
            action,
            "BankTransactions",
            transaction_id,
            body=bank_transaction_delete,
            check=check_fee_deletable,
            params={"unitdp": str(UNIT_DECIMAL_PLACES)},
        )

    def _delete(
        self,
        action: Action,
        items_key: str,
        ident: str,
        *,
        body: Callable[[dict[str, Any]], dict[str, Any]],
        check: Callable[[dict[str, Any], Mapping[str, Any]], None],
        params: Mapping[str, str] | None = None,
    ) -> ActionResult:
        """Read the record, leave it if it is gone already, refuse what Xero would refuse, then
        send the delete. A refused delete is read again: deleted meanwhile (a lost answer, a
        person in Xero) is done; otherwise the refusal names why and what to do by hand."""
        path = f"/{items_key}/{ident}"
        held = self._held(path, items_key, params)
        if is_gone(held):
            return ActionResult(remote_id=ident, response={items_key: [held]}, replayed=True)
        check(held, action.payload)
        try:
            response = self.http.request(
                "POST", path, params=params, json=body(held), idempotency_key=action.idempotency_key
            )
        except NotFoundError:
            raise
        except InvalidRequestError as exc:
            now = self._held(path, items_key, params)
            if is_gone(now):
                return ActionResult(remote_id=ident, response={items_key: [now]}, replayed=True)
            check(now, action.payload)
            raise delete_refused(describe(items_key, ident, now), exc.message) from None
        answer = decode_json(response, provider=self.name)
        record = first_record(answer, items_key)
        errors = validation_errors(record)
        if errors or not is_gone(record):
            raise delete_refused(
                describe(items_key, ident, held), "; ".join(errors) or "it is not DELETED in the answer"
            )
        return ActionResult(remote_id=ident, response=answer, replayed=False)

    def _held(self, path: str, items_key: str, params: Mapping[str, str] | None) -> dict[str, Any]:
        response = self.http.request("GET", path, params=params)
        return first_record(decode_json(response, provider=self.name), items_key)

    def close(self) -> None:
        self.http.close()


def _fee_result(element: dict[str, Any], booked: dict[str, Any] | None) -> ActionResult | ConnectorError:
    """One fee action's outcome from its element of a batch answer."""
    if booked is None:
        return refuse(
            f"PUT /BankTransactions answered without the fee {element.get('Reference')!r}: "
            "check the bank account in Xero before sending it again"
        )
    try:
        transaction = accepted_bank_transaction(booked)
    except InvalidRequestError as refused:
        return refused
    return ActionResult(
        remote_id=str(transaction["BankTransactionID"]), response={"BankTransactions": [transaction]}, replayed=False
    )


def _complete(results: list[ActionResult | ConnectorError | None]) -> list[ActionResult | ConnectorError]:
    """The batch's results once every action has one (a gap is a bug in the batch method)."""
    if any(result is None for result in results):
        raise AssertionError("an action of the batch was left without a result")
    return [result for result in results if result is not None]


_ID_KEYS = {"Contacts": "ContactID", "Invoices": "InvoiceID", "CreditNotes": "CreditNoteID", "Payments": "PaymentID"}
