"""What we send to QuickBooks and how we read its answers to writes: pure functions, no I/O.

Amounts go out as JSON numbers written digit for digit from the Decimal (`ProviderHttp`
sends `json=` bodies through `dumps_exact`), in the invoice's currency: QuickBooks amounts
are decimals, and a JPY or KWD company's amounts have 0 or 3 places.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from connector.plugin import Action, InvalidRequestError, Money, normalise_currency, to_decimal

PROVIDER = "quickbooks"
# PaymentRefNum holds at most 21 characters; the whole reference also goes to PrivateNote.
PAYMENT_REF_MAX = 21
REQUEST_ID_MAX = 50


def refuse(message: str) -> InvalidRequestError:
    return InvalidRequestError(message, provider=PROVIDER)


@dataclass(frozen=True)
class PaymentRequest:
    invoice_id: str
    amount: Money
    when: date
    reference: str | None


def payment_request(action: Action) -> PaymentRequest:
    """What a record_payment action asks for, or InvalidRequestError when it cannot be a
    payment: no invoice target, amount not above zero or not exact in its currency, no ISO
    date."""
    target = action.target
    if target is None or target.object_type != "invoice":
        raise refuse("record_payment needs an invoice as its target")
    check_request_id(action.idempotency_key)
    payload = action.payload
    try:
        currency = normalise_currency(payload.get("currency"))
        amount = to_decimal(payload.get("amount"))
    except ValueError as exc:
        raise refuse(f"record_payment on invoice {target.remote_id}: {exc}") from None
    money = Money.of(amount, currency)
    if money.amount != amount:
        raise refuse(f"record_payment: {amount} is not an exact amount of {currency}")
    if amount <= 0:
        raise refuse(f"record_payment: the amount must be above zero, not {amount} {currency}")
    try:
        when = date.fromisoformat(str(payload.get("date")))
    except ValueError:
        raise refuse(f"record_payment: date must be YYYY-MM-DD, not {payload.get('date')!r}") from None
    reference = str(payload["reference"]) if payload.get("reference") else None
    return PaymentRequest(target.remote_id, money, when, reference)


def check_request_id(key: str) -> None:
    if not key or len(key) > REQUEST_ID_MAX:
        raise refuse(f"requestid must be 1 to {REQUEST_ID_MAX} characters, not {len(key or '')}")


def check_invoice(invoice: dict[str, Any], request: PaymentRequest) -> str:
    """The invoice's CustomerRef, after refusing to pay an invoice of another currency (the
    number would be booked in the invoice's own currency) or a voided one."""
    ident = invoice.get("Id", request.invoice_id)
    currency = (invoice.get("CurrencyRef") or {}).get("value")
    if currency and str(currency).upper() != request.amount.currency:
        raise refuse(f"invoice {ident} is in {currency}, the payment in {request.amount.currency}; no payment recorded")
    if is_voided(invoice):
        raise refuse(f"invoice {ident} is voided; no payment recorded")
    customer = (invoice.get("CustomerRef") or {}).get("value")
    if not customer:
        raise refuse(f"invoice {ident} has no CustomerRef; no payment recorded")
    return str(customer)


def payment_body(request: PaymentRequest, *, customer_id: str, account_id: str | None) -> dict[str, Any]:
    """The `POST /payment` body: one line linked to the invoice, for the whole amount."""
    body: dict[str, Any] = {
        "CustomerRef": {"value": customer_id},
        "TotalAmt": request.amount.amount,
        "TxnDate": request.when.isoformat(),
        "CurrencyRef": {"value": request.amount.currency},
        "Line": [
            {
                "Amount": request.amount.amount,
                "LinkedTxn": [{"TxnId": request.invoice_id, "TxnType": "Invoice"}],
            }
        ],
    }
    if account_id:
        body["DepositToAccountRef"] = {"value": account_id}
    if request.reference:
        body["PaymentRefNum"] = request.reference[:PAYMENT_REF_MAX]
        body["PrivateNote"] = request.reference  # the whole reference (read back by qbo_reference)
    return body


def fault_message(answer: Any) -> str | None:
    """The errors of a `{"Fault": {"Error": [{"Message", "Detail", "code"}]}}` answer."""
    if not isinstance(answer, dict) or not isinstance(answer.get("Fault"), dict):
        return None
    errors = answer["Fault"].get("Error") or []
    parts = []
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict):
            text = " - ".join(str(error[k]) for k in ("Message", "Detail") if error.get(k))
            parts.append(f"{text} (code {error.get('code')})" if error.get("code") else text)
    return "; ".join(parts) or str(answer["Fault"].get("type") or "Fault")


def accepted_payment(answer: Any, request: PaymentRequest) -> dict[str, Any]:
    """The payment QuickBooks created (or replayed for the same requestid)."""
    fault = fault_message(answer)
    if fault:
        raise refuse(f"POST /payment refused the payment: {fault}")
    payment = answer.get("Payment") if isinstance(answer, dict) else None
    if not isinstance(payment, dict) or not payment.get("Id"):
        raise refuse("POST /payment answered without a payment Id")
    currency = (payment.get("CurrencyRef") or {}).get("value")
    if currency and str(currency).upper() != request.amount.currency:
        raise refuse(
            f"payment {payment['Id']} was booked in {currency}, not {request.amount.currency}: check it in QuickBooks"
        )
    return payment


def is_voided(raw: dict[str, Any]) -> bool:
    """QuickBooks has no void status: a voided transaction keeps its lines with zero amounts,
    has TotalAmt and Balance 0, and "Voided" in its PrivateNote (memo)."""
    try:
        total = to_decimal(raw.get("TotalAmt", 0))
    except ValueError:
        return False
    note = str(raw.get("PrivateNote") or "").lower()
    return total == 0 and "void" in note
