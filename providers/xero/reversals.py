"""Undoing what we wrote to Xero: the requests that delete a payment or a fee we recorded, and
why Xero would refuse them, in words finance can act on. Pure functions, no I/O.

Xero never edits a payment: it is deleted (`POST /Payments/{PaymentID}` with only
`{"Status": "DELETED"}`; any other field is refused), which gives its amount back to the
invoice. A spend money transaction (a gateway fee) is deleted by updating its status to
DELETED (`POST /BankTransactions/{BankTransactionID}`). Neither can be deleted once it is
reconciled with a bank statement line, nor a payment that belongs to a batch payment.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.model import Action
from connector.providers.xero.writes import refuse

# The whole body of deletePayment: Xero answers "Only Status accepted for updates" to more.
PAYMENT_DELETE: dict[str, Any] = {"Status": "DELETED"}
GONE = ("DELETED", "VOIDED")  # a record in either status holds no money any more
_LINE_FIELDS = ("LineItemID", "Description", "Quantity", "UnitAmount", "AccountCode", "TaxType", "LineAmount")


def reversal_target(action: Action, object_type: str) -> str:
    """The remote id of the record `action` deletes; InvalidRequestError when its target is
    missing or of another type."""
    target = action.target
    if target is None or target.object_type != object_type or not target.remote_id:
        raise refuse(f"{action.kind} needs the Xero {object_type} it deletes as its target")
    return target.remote_id


def first_record(answer: Any, items_key: str) -> dict[str, Any]:
    """The one record of a Xero answer (`{"Payments": [{...}]}`), or an empty dict."""
    records = answer.get(items_key) if isinstance(answer, dict) else None
    first = records[0] if isinstance(records, list) and records else None
    return first if isinstance(first, dict) else {}


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def is_gone(record: dict[str, Any]) -> bool:
    return str(record.get("Status", "")).upper() in GONE


def _describe_payment(payment: dict[str, Any]) -> str:
    invoice = _object(payment.get("Invoice"))
    money = f"{payment.get('Amount')} {invoice.get('CurrencyCode') or ''}".strip()
    number = invoice.get("InvoiceNumber") or invoice.get("InvoiceID") or "?"
    return f"payment {payment.get('PaymentID', '?')} ({money} on invoice {number})"


def _check_reverses(what: str, amount: Any, currency: Any, payload: Mapping[str, Any]) -> None:
    """Refuse a record that is not what the reversal says it takes back (its `amount` and
    `currency`, when the payload gives them): Xero never edits a payment, so another amount
    means another record."""
    expected, wanted = payload.get("amount"), payload.get("currency")
    if expected is None or amount is None:
        return
    try:
        same = Decimal(str(amount)) == Decimal(str(expected))
    except InvalidOperation:
        same = False
    if same and (not wanted or not currency or str(currency).upper() == str(wanted).upper()):
        return
    raise refuse(
        f"{what} is not the {expected} {wanted or ''} this reversal takes back; nothing deleted: "
        "check in Xero by hand which record the write it reverses made".replace("  ", " ")
    )


def check_payment_deletable(payment: dict[str, Any], payload: Mapping[str, Any]) -> None:
    """Refuse, before anything is sent, a payment that is not the one the reversal names or
    that Xero will not delete, saying what to do by hand; let pass one it may delete."""
    what = _describe_payment(payment)
    _check_reverses(what, payment.get("Amount"), _object(payment.get("Invoice")).get("CurrencyCode"), payload)
    kind = payment.get("PaymentType")
    if kind not in (None, "ACCRECPAYMENT"):
        raise refuse(f"{what} is a {kind}, not a payment of a sales invoice; the connector deletes only its own")
    if payment.get("IsReconciled") is True:
        raise refuse(
            f"{what} is reconciled with a bank statement line in Xero and cannot be deleted: "
            "unreconcile it in Xero (the bank account's statement line, Remove & Redo), then retry this action, "
            "or delete the payment by hand"
        )
    batch = payment.get("BatchPaymentID")
    if batch:
        raise refuse(
            f"{what} belongs to batch payment {batch}, which Xero deletes only as a whole: "
            "remove the payment by hand in Xero (delete the batch and enter it again without it)"
        )


def check_fee_deletable(transaction: dict[str, Any], payload: Mapping[str, Any]) -> None:
    """Refuse a fee's bank transaction that is not the one the reversal names or that Xero
    will not delete, saying what to do by hand."""
    what = _describe_transaction(transaction)
    _check_reverses(what, transaction.get("Total"), transaction.get("CurrencyCode"), payload)
    if transaction.get("IsReconciled") is True:
        raise refuse(
            f"{what} is reconciled with a bank statement line in Xero and cannot be deleted: "
            "unreconcile it in Xero (Remove & Redo), then retry this action, or delete it by hand"
        )


def describe(items_key: str, ident: str, held: dict[str, Any]) -> str:
    """`payment <id> (<amount> on invoice <number>)` or `bank transaction <id> (...)`."""
    if not held:
        return f"{'payment' if items_key == 'Payments' else 'bank transaction'} {ident}"
    return _describe_payment(held) if items_key == "Payments" else _describe_transaction(held)


def delete_refused(what: str, xero_says: str) -> Exception:
    """Xero refused a delete that nothing we read stood against: most often its date is
    before the organisation's lock date."""
    return refuse(
        f"Xero refused to delete {what}: {xero_says}; if its date is before the lock date, move the lock date "
        "in Xero (Settings, Advanced, Financial settings) and retry this action, else delete it by hand in Xero"
    )


def _describe_transaction(transaction: dict[str, Any]) -> str:
    parts = [
        str(transaction.get("Type") or "?"),
        f"{transaction.get('Total')} {transaction.get('CurrencyCode') or ''}".strip(),
    ]
    if transaction.get("Reference"):
        parts.append(f"reference {transaction['Reference']}")
    return f"bank transaction {transaction.get('BankTransactionID', '?')} ({', '.join(parts)})"


def bank_transaction_delete(transaction: dict[str, Any]) -> dict[str, Any]:
    """The `POST /BankTransactions/{id}` body that deletes `transaction`: its status set to
    DELETED, with the type, bank account and lines it already has (the document requires
    them on every bank transaction), so nothing else changes on the way."""
    account = _object(transaction.get("BankAccount"))
    ref = {"AccountID": account["AccountID"]} if account.get("AccountID") else {"Code": account.get("Code")}
    lines = [
        {k: line[k] for k in _LINE_FIELDS if line.get(k) is not None}
        for line in transaction.get("LineItems") or []
        if isinstance(line, dict)
    ]
    body: dict[str, Any] = {
        "BankTransactionID": transaction.get("BankTransactionID"),
        "Type": transaction.get("Type"),
        "BankAccount": ref,
        "LineItems": lines,
        "Status": "DELETED",
    }
    if transaction.get("LineAmountTypes"):
        body["LineAmountTypes"] = transaction["LineAmountTypes"]
    return {"BankTransactions": [body]}


def validation_errors(record: dict[str, Any]) -> list[str]:
    return [str(e["Message"]) for e in record.get("ValidationErrors") or [] if isinstance(e, dict) and e.get("Message")]
