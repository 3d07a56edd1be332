"""What we send to Xero and how we read its answers to writes: pure functions, no I/O.

Amounts go out as JSON numbers written digit for digit from the Decimal (`dumps_exact`):
Xero's document types `Amount` as a number, and a float in between would round it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from connector.errors import InvalidRequestError
from connector.model import Action
from connector.money import Money, normalise_currency, to_decimal

PROVIDER = "xero"


def refuse(message: str) -> InvalidRequestError:
    return InvalidRequestError(message, provider=PROVIDER)


@dataclass(frozen=True)
class PaymentRequest:
    invoice_id: str
    amount: Money
    body: dict[str, Any]


def payment_request(action: Action, *, account_code: str) -> PaymentRequest:
    """The `PUT /Payments` body for a record_payment action, or InvalidRequestError when the
    action cannot be a payment: no invoice target, amount not above zero or not exact in its
    currency, no ISO date."""
    target = action.target
    if target is None or target.object_type != "invoice":
        raise refuse("record_payment needs an invoice as its target")
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
    payment: dict[str, Any] = {
        "Invoice": {"InvoiceID": target.remote_id},
        "Account": {"Code": account_code},
        "Amount": money.amount,
        "Date": when.isoformat(),
    }
    if payload.get("reference"):
        payment["Reference"] = str(payload["reference"])
    return PaymentRequest(target.remote_id, money, {"Payments": [payment]})


def check_invoice(invoice: dict[str, Any], expected: Money) -> None:
    """Refuse to pay an invoice that is not a sales invoice or is in another currency:
    Xero would book the number in the invoice's own currency."""
    ident = invoice.get("InvoiceID", "?")
    kind = invoice.get("Type")
    if kind not in (None, "ACCREC"):
        raise refuse(f"invoice {ident} is a {kind}, not a sales invoice (ACCREC); no payment recorded")
    currency = invoice.get("CurrencyCode")
    if currency and str(currency).upper() != expected.currency:
        raise refuse(f"invoice {ident} is in {currency}, the payment in {expected.currency}; no payment recorded")


def accepted_payment(answer: Any, expected: Money) -> dict[str, Any]:
    """The payment Xero created (or replayed) from its answer; its validation errors, or an
    answer in another currency than we meant, as InvalidRequestError."""
    payments = answer.get("Payments") if isinstance(answer, dict) else None
    if not payments or not isinstance(payments[0], dict):
        raise refuse("PUT /Payments answered without a payment")
    payment: dict[str, Any] = payments[0]
    errors = [e.get("Message") for e in payment.get("ValidationErrors") or [] if isinstance(e, dict)]
    if errors or payment.get("StatusAttributeString") == "ERROR":
        raise refuse("PUT /Payments refused the payment: " + ("; ".join(filter(None, errors)) or "ERROR"))
    invoice = payment.get("Invoice") or {}
    currency = invoice.get("CurrencyCode") if isinstance(invoice, dict) else None
    if currency and str(currency).upper() != expected.currency:
        raise refuse(
            f"payment {payment.get('PaymentID')} was booked in {currency}, not {expected.currency}: check it in Xero"
        )
    if not payment.get("PaymentID"):
        raise refuse("PUT /Payments answered without a PaymentID")
    return payment


def fee_request(action: Action, *, bank_code: str, fee_code: str, contact: str) -> dict[str, Any]:
    """The `PUT /BankTransactions` body that books a gateway fee: spend money from the
    clearing account the payments go to, to the fee expense account."""
    payload = action.payload
    try:
        currency = normalise_currency(payload.get("currency"))
        amount = to_decimal(payload.get("amount"))
        when = date.fromisoformat(str(payload.get("date")))
    except ValueError as exc:
        raise refuse(f"record_fee: {exc}") from None
    money = Money.of(amount, currency)
    if money.amount != amount or amount <= 0:
        raise refuse(f"record_fee: {amount} is not a positive exact amount of {currency}")
    reference = str(payload.get("reference") or "")
    return {
        "BankTransactions": [
            {
                "Type": "SPEND",
                "Contact": {"Name": contact},
                "BankAccount": {"Code": bank_code},
                "Date": when.isoformat(),
                "Reference": reference,
                "CurrencyCode": currency,
                "LineAmountTypes": "NoTax",
                "LineItems": [
                    {
                        "Description": str(payload.get("description") or f"Gateway fee {reference}"),
                        "Quantity": Decimal(1),
                        "UnitAmount": money.amount,
                        "AccountCode": fee_code,
                    }
                ],
            }
        ]
    }
