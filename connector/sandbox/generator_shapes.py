"""Provider objects for the scenario generator, in each provider's own API shape.

Stripe (API 2023-08-16): integer minor units by the currency's exponent, epoch seconds, ids
with Stripe's prefixes. Xero (Accounting API 2.0): .NET `/Date(ms+0000)/` strings and amounts
as `Decimal` (JSON numbers written digit for digit). HubSpot (CRM v3): numeric string ids and
every property a string. The builders take plain values and return plain dicts: no state here
beyond the id factory, so a book of 100k invoices costs one dict per object.
"""

from __future__ import annotations

import base64
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from connector.money import currency_exponent

ACCOUNT_NAME = "Northwind Tools Inc."
STATEMENT_DESCRIPTOR = "NORTHWIND TOOLS"
STRIPE_ACCOUNT = "acct_1NxYZaLkdIwHu7ix"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Ids:
    """Deterministic ids: Stripe-style random suffixes, Xero uuids, HubSpot numeric strings."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._hubspot = {"companies": 5_000_000, "contacts": 7_000_000, "deals": 9_000_000, "invoices": 3_000_000}

    def stripe(self, prefix: str, length: int = 24) -> str:
        return prefix + alnum(self._rng, length)

    def xero(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def hubspot(self, kind: str) -> str:
        self._hubspot[kind] += 1
        return str(self._hubspot[kind])


def alnum(rng: random.Random, length: int) -> str:
    """`length` random letters and digits (base64 of random bytes with its two symbols swapped)."""
    return base64.b64encode(rng.randbytes(length * 3 // 4 + 3)).decode()[:length].translate(_SYMBOLS)


_SYMBOLS = str.maketrans("+/", "Xq")


# -- time and money formats ---------------------------------------------------------------


def epoch(moment: datetime) -> int:
    return int((moment - _EPOCH).total_seconds())


def at(day: date, seconds: int = 0) -> datetime:
    """`seconds` after midnight UTC of `day`."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=seconds)


def dotnet(moment: datetime | date) -> str:
    if not isinstance(moment, datetime):
        moment = at(moment)
    return f"/Date({epoch(moment) * 1000}+0000)/"


def iso_ms(moment: datetime) -> str:
    day = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
    return f"{day}T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.000Z"


def minor(amount: Decimal, currency: str) -> int:
    """Integer minor units by the currency's exponent (JPY 0, USD 2, KWD 3); exact or refused."""
    value = amount.scaleb(currency_exponent(currency))
    if value != value.to_integral_value():
        raise ValueError(f"{amount} {currency} has more digits than the currency allows")
    return int(value)


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round to what all three systems can carry: whole yen, otherwise cents (KWD in tens of
    fils, which Stripe requires: the last of its three digits is 0)."""
    places = Decimal(1) if currency_exponent(currency) == 0 else Decimal("0.01")
    return amount.quantize(places, rounding=ROUND_HALF_UP)


def decimal_text(amount: Decimal, currency: str) -> str:
    """A decimal string at the currency's own exponent ("12.340" KWD, "1200" JPY)."""
    return str(amount.quantize(Decimal(1).scaleb(-currency_exponent(currency))))


# -- Stripe ---------------------------------------------------------------------------------


def stripe_customer(
    ids: Ids, *, name: str, email: str, currency: str, created: int, metadata: dict[str, str]
) -> dict[str, Any]:
    cid = ids.stripe("cus_", 14)
    return {
        "id": cid,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": created,
        "currency": currency.lower(),
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": email,
        "invoice_prefix": cid[4:12].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": metadata,
        "name": name,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def stripe_invoice(
    ids: Ids,
    *,
    customer: dict[str, Any],
    number: str,
    currency: str,
    lines: list[tuple[str, int, Decimal, Decimal]],
    created: int,
    due: int,
    metadata: dict[str, str],
    tax_rate: str | None,
) -> dict[str, Any]:
    """An open, finalised `send_invoice` invoice; `lines` are (description, quantity, unit, tax)."""
    invoice_id = ids.stripe("in_1", 23)
    cur = currency.lower()
    data = []
    subtotal = tax_total = 0
    for description, quantity, unit, tax in lines:
        amount = minor(unit, currency) * quantity
        tax_minor = minor(tax, currency)
        subtotal += amount
        tax_total += tax_minor
        data.append(
            {
                "id": ids.stripe("il_1", 23),
                "object": "line_item",
                "amount": amount,
                "amount_excluding_tax": amount,
                "currency": cur,
                "description": description,
                "discount_amounts": [],
                "discountable": True,
                "discounts": [],
                "invoice_item": ids.stripe("ii_1", 23),
                "livemode": False,
                "metadata": {},
                "period": {"end": created, "start": created},
                "price": None,
                "proration": False,
                "proration_details": {},
                "quantity": quantity,
                "tax_amounts": [
                    {
                        "amount": tax_minor,
                        "inclusive": False,
                        "tax_rate": tax_rate,
                        "taxability_reason": None,
                        "taxable_amount": amount,
                    }
                ]
                if tax_rate
                else [],
                "tax_rates": [],
                "type": "invoiceitem",
                "unit_amount_excluding_tax": str(minor(unit, currency)),
            }
        )
    total = subtotal + tax_total
    return {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": ACCOUNT_NAME,
        "account_tax_ids": None,
        "amount_due": total,
        "amount_paid": 0,
        "amount_remaining": total,
        "amount_shipping": 0,
        "application_fee_amount": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": False,
        "automatic_tax": {"enabled": False, "status": None},
        "billing_reason": "manual",
        "charge": None,
        "collection_method": "send_invoice",
        "created": created,
        "currency": cur,
        "custom_fields": None,
        "customer": customer["id"],
        "customer_address": None,
        "customer_email": customer["email"],
        "customer_name": customer["name"],
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discount": None,
        "discounts": [],
        "due_date": due,
        "effective_at": created + 60,
        "ending_balance": 0,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": f"https://invoice.stripe.com/i/{STRIPE_ACCOUNT}/test_{invoice_id[3:]}",
        "invoice_pdf": f"https://pay.stripe.com/invoice/{STRIPE_ACCOUNT}/test_{invoice_id[3:]}/pdf",
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {"object": "list", "data": data, "has_more": False, "url": f"/v1/invoices/{invoice_id}/lines"},
        "livemode": False,
        "metadata": metadata,
        "next_payment_attempt": None,
        "number": number,
        "on_behalf_of": None,
        "paid": False,
        "paid_out_of_band": False,
        "payment_intent": None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        "period_end": created,
        "period_start": created,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "quote": None,
        "receipt_number": None,
        "rendering_options": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "open",
        "status_transitions": {
            "finalized_at": created + 60,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subscription": None,
        "subtotal": subtotal,
        "subtotal_excluding_tax": subtotal,
        "tax": tax_total if tax_rate else None,
        "test_clock": None,
        "total": total,
        "total_discount_amounts": [],
        "total_excluding_tax": subtotal,
        "total_tax_amounts": [
            {
                "amount": tax_total,
                "inclusive": False,
                "tax_rate": tax_rate,
                "taxability_reason": None,
                "taxable_amount": subtotal,
            }
        ]
        if tax_rate
        else [],
        "transfer_data": None,
        "webhooks_delivered_at": created + 5,
    }


def stripe_mark_paid(invoice: dict[str, Any], *, paid_at: int, charge: dict[str, Any] | None) -> None:
    """Paid in full: through `charge`, or out of band when there is none."""
    invoice.update(
        amount_paid=invoice["amount_due"],
        amount_remaining=0,
        paid=True,
        status="paid",
        paid_out_of_band=charge is None,
        attempted=charge is not None,
        attempt_count=1 if charge else 0,
    )
    invoice["status_transitions"]["paid_at"] = paid_at
    if charge is not None:
        invoice["charge"] = charge["id"]
        invoice["payment_intent"] = charge["payment_intent"]


_CARDS = (("visa", "4242"), ("mastercard", "4444"), ("amex", "8431"), ("visa", "1881"), ("mastercard", "5100"))


def stripe_charge(
    ids: Ids,
    rng: random.Random,
    *,
    amount: int,
    currency: str,
    created: int,
    customer: dict[str, Any],
    description: str | None,
    invoice_id: str | None,
    metadata: dict[str, str],
    balance_transaction: str,
) -> dict[str, Any]:
    suffix = alnum(rng, 22)
    brand, last4 = _CARDS[rng.randrange(len(_CARDS))]
    charge_id = "ch_3" + suffix
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": balance_transaction,
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": customer["email"],
            "name": customer["name"],
            "phone": None,
        },
        "calculated_statement_descriptor": STATEMENT_DESCRIPTOR,
        "captured": True,
        "created": created,
        "currency": currency.lower(),
        "customer": customer["id"],
        "description": description,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "invoice": invoice_id,
        "livemode": False,
        "metadata": metadata,
        "on_behalf_of": None,
        "outcome": {
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": rng.randrange(5, 60),
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": True,
        "payment_intent": "pi_3" + suffix,
        "payment_method": "pm_1" + suffix,
        "payment_method_details": {
            "card": {
                "brand": brand,
                "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
                "country": "US",
                "exp_month": rng.randrange(1, 13),
                "exp_year": 2027 + rng.randrange(4),
                "fingerprint": alnum(rng, 16),
                "funding": "credit",
                "last4": last4,
                "mandate": None,
                "network": brand,
                "network_token": {"used": False},
            },
            "type": "card",
        },
        "receipt_email": customer["email"],
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/payment/{charge_id}",
        "refunded": False,
        "review": None,
        "shipping": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


def stripe_payment_intent(charge: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": charge["payment_intent"],
        "object": "payment_intent",
        "amount": charge["amount"],
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": charge["amount"],
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{charge['payment_intent']}_secret_{charge['id'][4:20]}",
        "confirmation_method": "automatic",
        "created": charge["created"],
        "currency": charge["currency"],
        "customer": charge["customer"],
        "description": charge["description"],
        "invoice": charge["invoice"],
        "last_payment_error": None,
        "latest_charge": charge["id"],
        "livemode": False,
        "metadata": dict(charge["metadata"]),
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": charge["payment_method"],
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": charge["receipt_email"],
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


def stripe_refund(
    ids: Ids, *, charge: dict[str, Any], amount: int, created: int, reason: str, balance_transaction: str
) -> dict[str, Any]:
    return {
        "id": ids.stripe("re_3", 22),
        "object": "refund",
        "amount": amount,
        "balance_transaction": balance_transaction,
        "charge": charge["id"],
        "created": created,
        "currency": charge["currency"],
        "metadata": {},
        "payment_intent": charge["payment_intent"],
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }


def stripe_balance_transaction(
    txn_id: str,
    *,
    amount: int,
    fee: int,
    currency: str,
    created: int,
    available_on: int,
    kind: str,
    source: str,
    description: str | None,
) -> dict[str, Any]:
    cur = currency.lower()
    return {
        "id": txn_id,
        "object": "balance_transaction",
        "amount": amount,
        "available_on": available_on,
        "created": created,
        "currency": cur,
        "description": description,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": [
            {
                "amount": fee,
                "application": None,
                "currency": cur,
                "description": "Stripe processing fees",
                "type": "stripe_fee",
            }
        ]
        if fee
        else [],
        "net": amount - fee,
        "reporting_category": kind,
        "source": source,
        "status": "available",
        "type": kind,
    }


def stripe_payout(
    payout_id: str, *, amount: int, currency: str, created: int, arrival: int, paid: bool, balance_transaction: str
) -> dict[str, Any]:
    return {
        "id": payout_id,
        "object": "payout",
        "amount": amount,
        "arrival_date": arrival,
        "automatic": True,
        "balance_transaction": balance_transaction,
        "created": created,
        "currency": currency.lower(),
        "description": "STRIPE PAYOUT",
        "destination": "ba_1NxYbQLkdIwHu7ixD3w8b2Zq",
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": {},
        "method": "standard",
        "original_payout": None,
        "reconciliation_status": "completed" if paid else "in_progress",
        "reversed_by": None,
        "source_type": "card",
        "statement_descriptor": None,
        "status": "paid" if paid else "in_transit",
        "type": "bank_account",
    }


def stripe_event(ids: Ids, *, kind: str, created: int, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": ids.stripe("evt_1", 23),
        "object": "event",
        "api_version": "2023-08-16",
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }


def stripe_charge_failed(charge: dict[str, Any], payment_intent: dict[str, Any]) -> None:
    """A declined card payment: nothing captured, no balance transaction; its intent waits for
    another payment method."""
    charge.update(
        amount_captured=0,
        balance_transaction=None,
        captured=False,
        failure_code="card_declined",
        failure_message="Your card was declined.",
        paid=False,
        status="failed",
    )
    charge["outcome"] = {
        "network_status": "declined_by_network",
        "reason": "generic_decline",
        "risk_level": "normal",
        "risk_score": charge["outcome"]["risk_score"],
        "seller_message": "The bank did not return any further details with this decline.",
        "type": "issuer_declined",
    }
    payment_intent.update(
        amount_received=0,
        status="requires_payment_method",
        last_payment_error={
            "charge": charge["id"],
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": "Your card was declined.",
            "type": "card_error",
        },
    )


def stripe_dispute(
    dispute_id: str,
    *,
    charge: dict[str, Any],
    status: str,
    reason: str,
    created: int,
    balance_transactions: list[dict[str, Any]],
) -> dict[str, Any]:
    """A chargeback on `charge` with the balance transactions that moved its money (the
    withdrawal, and the reinstatement of a won dispute)."""
    evidence: dict[str, Any] = {
        key: None
        for key in (
            "access_activity_log",
            "billing_address",
            "cancellation_policy",
            "cancellation_policy_disclosure",
            "cancellation_rebuttal",
            "customer_communication",
            "customer_email_address",
            "customer_name",
            "customer_purchase_ip",
            "customer_signature",
            "duplicate_charge_documentation",
            "duplicate_charge_explanation",
            "duplicate_charge_id",
            "product_description",
            "receipt",
            "refund_policy",
            "refund_policy_disclosure",
            "refund_refusal_explanation",
            "service_date",
            "service_documentation",
            "shipping_address",
            "shipping_carrier",
            "shipping_date",
            "shipping_documentation",
            "shipping_tracking_number",
            "uncategorized_file",
            "uncategorized_text",
        )
    }
    evidence.update(customer_email_address=charge["receipt_email"], customer_name=charge["billing_details"]["name"])
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": charge["amount"],
        "balance_transactions": balance_transactions,
        "charge": charge["id"],
        "created": created,
        "currency": charge["currency"],
        "evidence": evidence,
        "evidence_details": {
            "due_by": created + 8 * 86400,
            "has_evidence": status in ("won", "lost"),
            "past_due": False,
            "submission_count": 1 if status in ("won", "lost") else 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": charge["payment_intent"],
        "reason": reason,
        "status": status,
    }


# -- Xero -------------------------------------------------------------------------------------


def xero_contact(
    contact_id: str,
    *,
    number: int,
    name: str,
    first: str,
    last: str,
    email: str,
    currency: str,
    terms: int,
    updated: datetime,
) -> dict[str, Any]:
    return {
        "ContactID": contact_id,
        "ContactNumber": f"CUST-{number:04d}",
        "AccountNumber": f"C{number:05d}",
        "ContactStatus": "ACTIVE",
        "Name": name,
        "FirstName": first,
        "LastName": last,
        "EmailAddress": email,
        "ContactPersons": [],
        "Addresses": [],
        "Phones": [],
        "IsSupplier": False,
        "IsCustomer": True,
        "DefaultCurrency": currency,
        "PaymentTerms": {"Sales": {"Day": terms, "Type": "DAYSAFTERBILLDATE"}},
        "UpdatedDateUTC": dotnet(updated),
        "ContactGroups": [],
        "HasAttachments": False,
        "HasValidationErrors": False,
    }


def xero_contact_group(group_id: str, name: str) -> dict[str, Any]:
    """A contact group as Xero nests it in a contact: how a ledger says companies belong together."""
    return {"ContactGroupID": group_id, "Name": name, "Status": "ACTIVE"}


def xero_line(
    ids: Ids, *, description: str, quantity: int, unit: Decimal, tax: Decimal, tax_type: str
) -> dict[str, Any]:
    return {
        "LineItemID": ids.xero(),
        "Description": description,
        "Quantity": Decimal(quantity),
        "UnitAmount": unit,
        "AccountCode": "200",
        "TaxType": tax_type,
        "TaxAmount": tax,
        "LineAmount": unit * quantity,
    }


def xero_invoice_ref(invoice: dict[str, Any]) -> dict[str, Any]:
    """The invoice as Xero nests it in a payment or an allocation."""
    return {
        "Type": "ACCREC",
        "InvoiceID": invoice["InvoiceID"],
        "InvoiceNumber": invoice["InvoiceNumber"],
        "Contact": {"ContactID": invoice["Contact"]["ContactID"], "Name": invoice["Contact"]["Name"]},
        "CurrencyCode": invoice["CurrencyCode"],
        "LineItems": [],
        "Payments": [],
        "CreditNotes": [],
        "Prepayments": [],
        "Overpayments": [],
        "HasErrors": False,
        "IsDiscounted": False,
    }


def xero_payment(
    payment_id: str,
    *,
    invoice: dict[str, Any],
    account: dict[str, Any],
    amount: Decimal,
    when: datetime,
    reference: str,
    rate: Decimal,
    reconciled: bool,
    batch_id: str | None,
) -> dict[str, Any]:
    payment = {
        "PaymentID": payment_id,
        "Date": dotnet(when.date()),
        "BankAmount": amount,
        "Amount": amount,
        "Reference": reference,
        "CurrencyRate": rate,
        "PaymentType": "ACCRECPAYMENT",
        "Status": "AUTHORISED",
        "UpdatedDateUTC": dotnet(when),
        "HasAccount": True,
        "IsReconciled": reconciled,
        "Account": {"AccountID": account["AccountID"], "Code": account["Code"]},
        "Invoice": xero_invoice_ref(invoice),
        "HasValidationErrors": False,
    }
    if batch_id:
        payment["BatchPaymentID"] = batch_id
    return payment


def xero_accounts(ids: Ids, updated: datetime) -> list[dict[str, Any]]:
    """Bank accounts per currency (090 is Xero's default business bank account), the Stripe
    clearing account that card payments are recorded to, sales, receivables and fees."""
    stamp = dotnet(updated)
    common = {"Status": "ACTIVE", "HasAttachments": False, "UpdatedDateUTC": stamp, "AddToWatchlist": False}

    def bank(code: str, name: str, currency: str, number: str) -> dict[str, Any]:
        return {
            "AccountID": ids.xero(),
            "Code": code,
            "Name": name,
            "Type": "BANK",
            "BankAccountNumber": number,
            "BankAccountType": "BANK",
            "CurrencyCode": currency,
            "TaxType": "NONE",
            "Class": "ASSET",
            "EnablePaymentsToAccount": False,
            "ShowInExpenseClaims": False,
            "ReportingCode": "ASS",
            **common,
        }

    def ledger(code: str, name: str, kind: str, cls: str, payments: bool, system: str | None = None) -> dict[str, Any]:
        account = {
            "AccountID": ids.xero(),
            "Code": code,
            "Name": name,
            "Type": kind,
            "TaxType": "NONE",
            "Class": cls,
            "EnablePaymentsToAccount": payments,
            "ShowInExpenseClaims": False,
            **common,
        }
        if system:
            account["SystemAccount"] = system
        return account

    return [
        bank("090", "Business Bank Account", "USD", "121-3456-7890"),
        bank("091", "EUR Bank Account", "EUR", "DE89370400440532013000"),
        bank("092", "JPY Bank Account", "JPY", "0001-234-5678901"),
        bank("093", "KWD Bank Account", "KWD", "KW81CBKU0000000000001234560101"),
        ledger("615", "Stripe Clearing", "CURRENT", "ASSET", True),
        ledger("200", "Sales", "REVENUE", "REVENUE", False),
        ledger("610", "Accounts Receivable", "CURRENT", "ASSET", False, "DEBTORS"),
        ledger("404", "Bank Fees", "EXPENSE", "EXPENSE", False),
    ]


# -- HubSpot ----------------------------------------------------------------------------------


def hubspot_object(
    object_id: str,
    properties: dict[str, str],
    *,
    created: datetime,
    updated: datetime,
    company_id: str | None = None,
    association: str = "",
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": object_id,
        "properties": {**properties, "hs_object_id": object_id},
        "createdAt": iso_ms(created),
        "updatedAt": iso_ms(updated),
        "archived": False,
    }
    if company_id is not None:
        obj["associations"] = {"companies": {"results": [{"id": company_id, "type": association}]}}
    return obj
