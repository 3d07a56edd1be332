"""What we send to Xero and how we read its answers to writes: pure functions, no I/O.

Amounts go out as JSON numbers written digit for digit from the Decimal (`dumps_exact`):
Xero's document types `Amount` as a number, and a float in between would round it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
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
    """One payment to record: the invoice, the amount, and the element of `PUT /Payments`."""

    invoice_id: str
    amount: Money
    element: dict[str, Any]

    @property
    def body(self) -> dict[str, Any]:
        """The request body that records this payment alone."""
        return {"Payments": [self.element]}

    @property
    def identity(self) -> PaymentIdentity:
        """What tells this payment apart in an answer that holds several."""
        return payment_identity(self.element)


# A payment element as Xero answers it: (InvoiceID lowercased, Amount, Reference). A batch's
# answer is matched back to its actions by this, not by position alone.
PaymentIdentity = tuple[str, Decimal, str]
# A bank transaction element: (Reference, total amount).
FeeIdentity = tuple[str, Decimal]


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
    return PaymentRequest(target.remote_id, money, payment)


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
    """The payment Xero created (or replayed) from its answer to one payment; its validation
    errors, or an answer in another currency than we meant, as InvalidRequestError."""
    payments = answer.get("Payments") if isinstance(answer, dict) else None
    if not payments or not isinstance(payments[0], dict):
        raise refuse("PUT /Payments answered without a payment")
    return accepted_payment_element(payments[0], expected)


def accepted_payment_element(payment: dict[str, Any], expected: Money) -> dict[str, Any]:
    """One element of a `PUT /Payments` answer read as the payment we asked for: returned when
    Xero made it; its ValidationErrors (or `StatusAttributeString` ERROR), a booking in
    another currency, or no PaymentID, as InvalidRequestError. The one rule for the single and
    the batch path."""
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


def payment_identity(payment: dict[str, Any]) -> PaymentIdentity:
    """(invoice id, amount, reference) of a payment element, sent or answered. Amounts compare
    as Decimals, so Xero's `100.00` is our `100`."""
    invoice = payment.get("Invoice")
    invoice_id = invoice.get("InvoiceID") if isinstance(invoice, dict) else None
    return (str(invoice_id or "").lower(), _amount(payment.get("Amount")), str(payment.get("Reference") or ""))


def accepted_bank_transaction(booked: dict[str, Any]) -> dict[str, Any]:
    """One element of a `PUT /BankTransactions` answer read as the fee we booked: returned
    when Xero made it; its ValidationErrors (or `StatusAttributeString` ERROR) or no
    BankTransactionID as InvalidRequestError. The one rule for the single and the batch path."""
    errors = [e.get("Message") for e in booked.get("ValidationErrors") or [] if isinstance(e, dict)]
    if errors or booked.get("StatusAttributeString") == "ERROR" or not booked.get("BankTransactionID"):
        raise refuse("PUT /BankTransactions refused the fee: " + ("; ".join(filter(None, errors)) or "no transaction"))
    return booked


def fee_identity(transaction: dict[str, Any]) -> FeeIdentity:
    """(reference, total) of a bank transaction element: the answer's `Total` when Xero gives
    it, else the sum of the lines (what we sent)."""
    total = transaction.get("Total")
    if total is None:
        lines = transaction.get("LineItems") or []
        total = sum(
            (
                _amount(line.get("UnitAmount")) * _amount(line.get("Quantity") or 1)
                for line in lines
                if isinstance(line, dict)
            ),
            Decimal(0),
        )
    return (str(transaction.get("Reference") or ""), _amount(total))


def match_answers(
    sent: Sequence[Hashable], answered: Sequence[Any], identity: Callable[[dict[str, Any]], Hashable]
) -> list[dict[str, Any] | None]:
    """Each sent element's answer, by identity: Xero answers a batch in request order, but an
    element is taken as ours only when it names the same invoice, amount and reference (or
    reference and total). Two equal elements take the equal answers in order. An answer
    that matches nothing (Xero left a refused element's fields out) goes to the sent element
    at its own position if that one has no answer yet. None: no answer for that element."""
    waiting: dict[Hashable, list[int]] = {}
    for index, ident in enumerate(sent):
        waiting.setdefault(ident, []).append(index)
    matched: list[dict[str, Any] | None] = [None] * len(sent)
    unmatched: list[tuple[int, dict[str, Any]]] = []
    for position, element in enumerate(answered):
        if not isinstance(element, dict):
            continue
        try:
            ident = identity(element)
        except (ValueError, TypeError, ArithmeticError):
            ident = None
        queue = waiting.get(ident) if ident is not None else None
        if queue:
            matched[queue.pop(0)] = element
        else:
            unmatched.append((position, element))
    for position, element in unmatched:
        if position < len(sent) and matched[position] is None:
            matched[position] = element
    return matched


def _amount(value: Any) -> Decimal:
    """A number of an element as a Decimal (Xero's answers are read with Decimals already)."""
    return to_decimal(value) if value is not None else Decimal(0)


def fee_request(action: Action, *, bank_code: str, fee_code: str, contact: str) -> dict[str, Any]:
    """The `PUT /BankTransactions` body that books one gateway fee."""
    return {"BankTransactions": [fee_element(action, bank_code=bank_code, fee_code=fee_code, contact=contact)]}


def fee_element(action: Action, *, bank_code: str, fee_code: str, contact: str) -> dict[str, Any]:
    """The bank transaction that books a gateway fee: spend money from the clearing account
    the payments go to, to the fee expense account. InvalidRequestError when the action
    cannot be one (no ISO date, amount not positive or not exact in its currency)."""
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
