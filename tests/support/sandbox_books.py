"""Small hand-written books for the sandbox tests, in the providers' own shapes.

Every object carries the fields its provider's document requires, so the sandbox's answers
can be held against the documents. Amounts: Stripe in minor units (JPY has none, KWD has
thousandths), Xero as Decimals with two places, HubSpot as strings.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z

ACCOUNT_BANK = "c2d3e4f5-0000-4000-8000-000000000090"
CONTACT_A = "a1b2c3d4-0000-4000-8000-00000000000a"
INVOICE_USD = "b0000000-0000-4000-8000-000000000001"
INVOICE_JPY = "b0000000-0000-4000-8000-000000000002"
INVOICE_KWD = "b0000000-0000-4000-8000-000000000003"
INVOICE_BILL = "b0000000-0000-4000-8000-000000000004"


def dotnet(epoch: int) -> str:
    return f"/Date({epoch * 1000}+0000)/"


def iso(epoch: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------- Stripe


def stripe_customer(n: int, created: int) -> dict[str, Any]:
    return {
        "id": f"cus_{n:04d}",
        "object": "customer",
        "created": created,
        "livemode": False,
        "email": f"ap{n}@example.com",
        "name": f"Customer {n}",
        "metadata": {},
    }


def stripe_invoice(
    ident: str, *, amount: int, currency: str, created: int, status: str = "open", customer: str = "cus_0001"
) -> dict[str, Any]:
    paid = status == "paid"
    return {
        "id": ident,
        "object": "invoice",
        "amount_due": amount,
        "amount_paid": amount if paid else 0,
        "amount_remaining": 0 if paid else amount,
        "amount_shipping": 0,
        "attempt_count": 0,
        "attempted": False,
        "automatic_tax": {"enabled": False, "status": None},
        "collection_method": "send_invoice",
        "created": created,
        "currency": currency,
        "customer": customer,
        "default_tax_rates": [],
        "due_date": created + 30 * 86400,
        "lines": {"object": "list", "url": f"/v1/invoices/{ident}/lines", "has_more": False, "data": []},
        "livemode": False,
        "metadata": {},
        "number": f"NUM-{ident[-4:]}",
        "paid": paid,
        "paid_out_of_band": False,
        "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        "period_end": created,
        "period_start": created,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "starting_balance": 0,
        "status": status,
        "status_transitions": {
            "finalized_at": created + 60,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": amount,
        "total": amount,
        "total_tax_amounts": [],
    }


def stripe_balance_transaction(
    n: int, *, amount: int, fee: int, currency: str, created: int, source: str
) -> dict[str, Any]:
    return {
        "id": f"txn_{n:04d}",
        "object": "balance_transaction",
        "amount": amount,
        "available_on": created + 2 * 86400,
        "created": created,
        "currency": currency,
        "description": None,
        "fee": fee,
        "fee_details": [
            {
                "amount": fee,
                "application": None,
                "currency": currency,
                "description": "Stripe processing fees",
                "type": "stripe_fee",
            }
        ],
        "net": amount - fee,
        "reporting_category": "charge",
        "source": source,
        "status": "available",
        "type": "charge",
    }


def stripe_charge(
    n: int, *, amount: int, currency: str, created: int, balance_transaction: str | None
) -> dict[str, Any]:
    return {
        "id": f"ch_{n:04d}",
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 0,
        "balance_transaction": balance_transaction,
        "billing_details": {"address": None, "email": None, "name": None, "phone": None},
        "captured": True,
        "created": created,
        "currency": currency,
        "customer": "cus_0001",
        "disputed": False,
        "livemode": False,
        "metadata": {},
        "paid": True,
        "payment_intent": f"pi_{n:04d}",
        "refunded": False,
        "status": "succeeded",
    }


def stripe_payment_intent(n: int, *, amount: int, currency: str, created: int) -> dict[str, Any]:
    return {
        "id": f"pi_{n:04d}",
        "object": "payment_intent",
        "amount": amount,
        "capture_method": "automatic",
        "confirmation_method": "automatic",
        "created": created,
        "currency": currency,
        "livemode": False,
        "payment_method_types": ["card"],
        "status": "succeeded",
    }


def stripe_refund(n: int, *, amount: int, currency: str, created: int, charge: str) -> dict[str, Any]:
    return {
        "id": f"re_{n:04d}",
        "object": "refund",
        "amount": amount,
        "created": created,
        "currency": currency,
        "charge": charge,
        "status": "succeeded",
        "metadata": {},
    }


def stripe_payout(n: int, *, amount: int, currency: str, created: int) -> dict[str, Any]:
    return {
        "id": f"po_{n:04d}",
        "object": "payout",
        "amount": amount,
        "arrival_date": created + 86400,
        "automatic": True,
        "created": created,
        "currency": currency,
        "livemode": False,
        "method": "standard",
        "reconciliation_status": "completed",
        "source_type": "card",
        "status": "paid",
        "type": "bank_account",
    }


def stripe_event(n: int, *, type_: str, obj: dict[str, Any], created: int) -> dict[str, Any]:
    return {
        "id": f"evt_{n:04d}",
        "object": "event",
        "api_version": "2023-08-16",
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }


def stripe_book(invoices: int = 5) -> dict[str, Any]:
    """`invoices` USD invoices one hour apart (two share a second), a JPY and a KWD one."""
    created = [T0 + 3600 * i for i in range(invoices)]
    if invoices > 3:
        created[3] = created[2]  # a tie on `created`: ordered by id
    book: dict[str, Any] = {
        "customers": [stripe_customer(n, T0 - 86400 + n) for n in range(1, 4)],
        "invoices": [
            stripe_invoice(f"in_{i:04d}", amount=10_000 + i, currency="usd", created=c) for i, c in enumerate(created)
        ],
        "payment_intents": [stripe_payment_intent(1, amount=5000, currency="jpy", created=T0)],
        "balance_transactions": [
            stripe_balance_transaction(1, amount=5000, fee=180, currency="jpy", created=T0, source="ch_0001")
        ],
        "charges": [stripe_charge(1, amount=5000, currency="jpy", created=T0, balance_transaction="txn_0001")],
        "refunds": [stripe_refund(1, amount=1000, currency="jpy", created=T0 + 10, charge="ch_0001")],
        "payouts": [stripe_payout(1, amount=4820, currency="jpy", created=T0 + 86400)],
    }
    book["invoices"].append(stripe_invoice("in_jpy1", amount=5000, currency="jpy", created=T0 + 50))
    book["invoices"].append(stripe_invoice("in_kwd1", amount=12_340, currency="kwd", created=T0 + 51))
    book["events"] = [
        stripe_event(1, type_="invoice.created", obj=book["invoices"][0], created=T0 + 1),
        stripe_event(2, type_="customer.created", obj=book["customers"][0], created=T0 + 2),
    ]
    return book


# ---------------------------------------------------------------- Xero


def xero_invoice(
    ident: str,
    number: str,
    *,
    total: str,
    currency: str,
    updated: int,
    type_: str = "ACCREC",
    status: str = "AUTHORISED",
) -> dict[str, Any]:
    amount = Decimal(total)
    return {
        "Type": type_,
        "InvoiceID": ident,
        "InvoiceNumber": number,
        "Contact": {"ContactID": CONTACT_A, "Name": "Acme Ltd"},
        "Date": dotnet(updated - 86400),
        "DueDate": dotnet(updated + 29 * 86400),
        "Status": status,
        "LineAmountTypes": "Exclusive",
        "LineItems": [
            {
                "Description": "Consulting",
                "Quantity": Decimal("1.0000"),
                "UnitAmount": amount,
                "LineAmount": amount,
                "AccountCode": "200",
            }
        ],
        "SubTotal": amount,
        "TotalTax": Decimal("0.00"),
        "Total": amount,
        "AmountDue": amount,
        "AmountPaid": Decimal("0.00"),
        "AmountCredited": Decimal("0.00"),
        "CurrencyCode": currency,
        "CurrencyRate": Decimal("1.000000"),
        "UpdatedDateUTC": dotnet(updated),
        "HasAttachments": False,
    }


def xero_book() -> dict[str, Any]:
    return {
        "Contacts": [
            {
                "ContactID": CONTACT_A,
                "Name": "Acme Ltd",
                "ContactStatus": "ACTIVE",
                "EmailAddress": "ap@acme.example",
                "IsCustomer": True,
                "UpdatedDateUTC": dotnet(T0),
            },
            {
                "ContactID": "a1b2c3d4-0000-4000-8000-00000000000b",
                "Name": "Old Co",
                "ContactStatus": "ARCHIVED",
                "UpdatedDateUTC": dotnet(T0 + 5),
            },
        ],
        "Accounts": [
            {
                "AccountID": ACCOUNT_BANK,
                "Code": "090",
                "Name": "Business Bank Account",
                "Type": "BANK",
                "Status": "ACTIVE",
                "CurrencyCode": "USD",
            },
            {
                "AccountID": "c2d3e4f5-0000-4000-8000-000000000200",
                "Code": "200",
                "Name": "Sales",
                "Type": "REVENUE",
                "Status": "ACTIVE",
            },
        ],
        "Invoices": [
            xero_invoice(INVOICE_USD, "INV-0001", total="1500.00", currency="USD", updated=T0 + 100),
            xero_invoice(INVOICE_JPY, "INV-0002", total="5000.00", currency="JPY", updated=T0 + 200),
            xero_invoice(INVOICE_KWD, "INV-0003", total="12.345", currency="KWD", updated=T0 + 300),
            xero_invoice(INVOICE_BILL, "BILL-9", total="99.00", currency="USD", updated=T0 + 400, type_="ACCPAY"),
        ],
        "CreditNotes": [
            {
                "CreditNoteID": "d0000000-0000-4000-8000-000000000001",
                "CreditNoteNumber": "CN-0001",
                "Type": "ACCRECCREDIT",
                "Status": "AUTHORISED",
                "Contact": {"ContactID": CONTACT_A, "Name": "Acme Ltd"},
                "Total": Decimal("10.00"),
                "RemainingCredit": Decimal("10.00"),
                "CurrencyCode": "USD",
                "UpdatedDateUTC": dotnet(T0 + 50),
            },
        ],
        "Payments": [],
    }


# ---------------------------------------------------------------- HubSpot


def hubspot_object(
    ident: int, properties: dict[str, str], *, modified: int, modified_property: str = "hs_lastmodifieddate"
) -> dict[str, Any]:
    props = {**properties, modified_property: iso(modified)}
    return {"id": str(ident), "properties": props, "createdAt": iso(T0), "updatedAt": iso(modified), "archived": False}


def hubspot_book(deals: int = 3) -> dict[str, Any]:
    return {
        "companies": [hubspot_object(101, {"name": "Acme Ltd", "domain": "acme.example"}, modified=T0 + 10)],
        "contacts": [
            hubspot_object(
                201,
                {"email": "ap@acme.example", "firstname": "Ada"},
                modified=T0 + 20,
                modified_property="lastmodifieddate",
            )
        ],
        "deals": [
            {
                **hubspot_object(
                    300 + i,
                    {"dealname": f"Deal {i}", "amount": str(1000 + i), "ar_invoice_number": f"INV-{i:04d}"},
                    modified=T0 + 100 + i,
                ),
                "associations": {"companies": {"results": [{"id": "101", "type": "deal_to_company"}]}},
            }
            for i in range(deals)
        ],
        "invoices": [hubspot_object(401, {"hs_number": "INV-0001", "hs_currency": "USD"}, modified=T0 + 30)],
    }


def book(**sizes: int) -> dict[str, Any]:
    return {
        "stripe": stripe_book(sizes.get("stripe_invoices", 5)),
        "xero": xero_book(),
        "hubspot": hubspot_book(sizes.get("deals", 3)),
    }
