"""The AR story behind a generated scenario: who the customers are, what they were invoiced and
how (and whether) they paid, told once and written into Stripe, Xero and HubSpot at the same
time, with the ground truth beside it.

Each invoice gets a scenario (paid by card through its Stripe invoice, paid by bank transfer
in Xero, part-paid, overpaid, paid together with others, disputed, ...). The first customers
work through a fixed deck so that every scenario, bucket and currency is in even the smallest
book; after that scenarios are drawn by weight. Customers are written one at a time, so memory
grows with the output and nothing else.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from connector.money import currency_exponent
from connector.sandbox import generator_shapes as shapes
from connector.sandbox.generator_shapes import (
    Ids,
    at,
    dotnet,
    epoch,
    iso_ms,
    minor,
    quantize,
)

BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
CURRENCIES = ("USD", "EUR", "JPY", "KWD")
# Xero's CurrencyRate: units of the invoice currency per unit of the base currency (USD).
_RATES = {
    "USD": Decimal("1.000000"),
    "EUR": Decimal("0.920000"),
    "JPY": Decimal("150.250000"),
    "KWD": Decimal("0.307000"),
}
_TAX = {  # (rate, Xero TaxType, LineAmountTypes)
    "USD": (Decimal(0), "NONE", "NoTax"),
    "EUR": (Decimal("0.20"), "OUTPUT2", "Exclusive"),
    "JPY": (Decimal("0.10"), "OUTPUT", "Exclusive"),
    "KWD": (Decimal(0), "NONE", "NoTax"),
}
_BANK = {"USD": "090", "EUR": "091", "JPY": "092", "KWD": "093"}
_CLEARING = "615"

_NAMES_A = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Vandelay",
    "Wonka",
    "Gringotts",
    "Oceanic",
    "Monarch",
    "Nakatomi",
    "Kobayashi",
    "Al-Mutawa",
    "Sirius",
    "Aperture",
    "Black Mesa",
    "Dunder",
    "Pied Piper",
    "Massive",
    "Prestige",
    "Zorg",
    "Duff",
    "Krusty",
)
_NAMES_B = (
    "Trading",
    "Industries",
    "Logistics",
    "Rockets",
    "Foods",
    "Systems",
    "Holdings",
    "Robotics",
    "Supplies",
    "Engineering",
    "Textiles",
    "Pharma",
    "Shipping",
    "Analytics",
    "Hardware",
    "Partners",
)
_SUFFIX = {
    "USD": ("Inc.", "LLC", "Corp."),
    "EUR": ("GmbH", "S.A.", "B.V."),
    "JPY": ("K.K.", "Co., Ltd."),
    "KWD": ("W.L.L.", "K.S.C."),
}
_FIRST = (
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Hedy",
    "Katherine",
    "Linus",
    "Margaret",
    "Ken",
    "Yuki",
    "Fatima",
    "Omar",
)
_LAST = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Lamarr",
    "Johnson",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Sato",
    "Al-Sabah",
    "Haddad",
)
_ITEMS = (
    "Consulting",
    "Annual licence",
    "Support plan",
    "Implementation",
    "Training day",
    "Hardware kit",
    "Spare parts",
    "Maintenance visit",
    "Freight",
    "Custom integration",
    "Data migration",
    "Hosting",
)
_DISPUTES = (
    "Goods damaged in transit",
    "Quantity invoiced exceeds delivery",
    "Price differs from quote",
    "Service not performed",
)

# scenario -> (invoices it takes, system the customer must be in, weight when drawn at random)
SCENARIOS: dict[str, tuple[int, str | None, float]] = {
    "open": (1, None, 7),
    "card_invoice": (1, "stripe", 22),
    "bank_full": (1, None, 20),
    "bank_partial": (1, None, 6),
    "card_partial": (1, "stripe", 4),
    "card_text": (1, "stripe", 6),
    "card_po": (1, "stripe", 2),
    "bank_po": (1, None, 3),
    "overpay": (1, "stripe", 1.5),
    "overpay_refunded": (1, "stripe", 1),
    "duplicate_refunded": (1, "stripe", 1.5),
    "multi_bank": (2, None, 2),
    "multi_card": (2, "stripe", 1.5),
    "ambiguous": (2, "stripe", 1),
    "credit_note": (1, None, 2),
    "disputed": (1, "hubspot", 1),
    "promise": (1, None, 2),
    "plan": (1, None, 5),
}
# Every scenario (and every bucket, both Stripe link kinds) appears in the first customers.
DECK: tuple[tuple[str, dict[str, Any]], ...] = (
    ("open", {"bucket": "current"}),
    ("card_invoice", {"recorded": True}),
    ("bank_full", {"oob": True}),
    ("open", {"bucket": "1-30"}),
    ("card_invoice", {"recorded": False}),
    ("bank_full", {"oob": False}),
    ("open", {"bucket": "31-60"}),
    ("multi_bank", {}),
    ("card_text", {}),
    ("open", {"bucket": "61-90"}),
    ("overpay", {}),
    ("open", {"bucket": "90+"}),
    ("bank_partial", {}),
    ("card_partial", {}),
    ("card_po", {}),
    ("bank_po", {}),
    ("overpay_refunded", {}),
    ("duplicate_refunded", {}),
    ("multi_card", {}),
    ("ambiguous", {}),
    ("credit_note", {"settle": True}),
    ("credit_note", {"settle": False}),
    ("disputed", {}),
    ("promise", {}),
    ("plan", {}),
)


@dataclass(slots=True)
class Customer:
    index: int
    name: str
    currency: str
    systems: tuple[str, ...]
    paused: bool
    terms: int
    email: str
    xero: dict[str, Any]
    stripe: dict[str, Any] | None = None
    stripe_link: str | None = None
    company_id: str | None = None
    contact_id: str | None = None


@dataclass(slots=True)
class Invoice:
    number: int
    text: str
    customer: Customer
    issue: date
    due: date
    total: Decimal
    xero: dict[str, Any]
    scenario: str
    stripe: dict[str, Any] | None = None
    stripe_link: str | None = None
    deal: dict[str, Any] | None = None
    crm_invoice: dict[str, Any] | None = None
    xero_payments: list[dict[str, Any]] = field(default_factory=list)
    credit: Decimal = Decimal(0)
    credit_note: dict[str, Any] | None = None
    allocated: Decimal = Decimal(0)
    disputed: str | None = None
    promise: date | None = None
    plan: dict[str, Any] | None = None
    touched: datetime | None = None


class Book:
    """Writes one scenario into `data` (the providers' lists) and `truth`."""

    def __init__(self, seed: int, today: date, customers: int, invoices: int) -> None:
        self.rng = random.Random(seed)
        self.ids = Ids(random.Random(f"{seed}/ids"))
        self.today = today
        self.now = at(today)
        self.recent = epoch(self.now - timedelta(days=30))  # Stripe keeps events 30 days
        self.n_customers = customers
        self.n_invoices = invoices
        self.stripe: dict[str, list[dict[str, Any]]] = {
            k: []
            for k in (
                "customers",
                "invoices",
                "charges",
                "payment_intents",
                "refunds",
                "payouts",
                "balance_transactions",
                "events",
            )
        }
        self.xero: dict[str, list[dict[str, Any]]] = {
            k: [] for k in ("Contacts", "Invoices", "CreditNotes", "Payments", "Accounts")
        }
        self.hubspot: dict[str, list[dict[str, Any]]] = {k: [] for k in ("companies", "contacts", "deals", "invoices")}
        self.truth: dict[str, Any] = {
            "customers": [],
            "invoices": [],
            "payments": [],
            "payouts": [],
            "determinable": {},
        }
        self.accounts = {a["Code"]: a for a in shapes.xero_accounts(self.ids, self.now - timedelta(days=400))}
        self.xero["Accounts"] = list(self.accounts.values())
        self.tax_rates = {c: self.ids.stripe("txr_1", 23) for c in CURRENCIES if _TAX[c][0]}
        self.deck = list(DECK)
        self.next_number = 0
        self.next_po = 4700
        self.next_credit = 0
        self.link_turn = 0
        self.form_turns: dict[str, int] = {}
        self.crm_invoice_turn = 0
        self.payouts: dict[tuple[str, date], list[dict[str, Any]]] = {}
        self.recent_objects: list[tuple[str, int, dict[str, Any]]] = []

    # -- the whole book ---------------------------------------------------------------------

    def build(self) -> None:
        rng = self.rng
        weights = [rng.uniform(0.4, 2.0) for _ in range(self.n_customers)]
        quotas = [1] * self.n_customers
        for i in rng.choices(range(self.n_customers), weights=weights, k=self.n_invoices - self.n_customers):
            quotas[i] += 1
        for index, quota in enumerate(quotas):
            customer = self.customer(index)
            self.customer_book(customer, quota)
        self.write_payouts()
        self.write_events()

    def customer(self, index: int) -> Customer:
        rng = self.rng
        currency = CURRENCIES[index % 4] if index < 8 else rng.choices(CURRENCIES, weights=(50, 25, 12, 13))[0]
        if index < 5:
            systems: tuple[str, ...] = ("xero", "stripe", "hubspot")
        elif index == 5:
            systems = ("xero", "stripe")
        elif index == 6:
            systems = ("xero", "hubspot")
        else:
            roll = rng.random()
            systems = (
                ("xero", "stripe")
                if roll < 0.1
                else ("xero", "hubspot")
                if roll < 0.2
                else ("xero", "stripe", "hubspot")
            )
        base = f"{_NAMES_A[index % len(_NAMES_A)]} {_NAMES_B[(index // len(_NAMES_A) + index * 7) % len(_NAMES_B)]}"
        name = f"{base} {rng.choice(_SUFFIX[currency])}" + (
            f" {index // (len(_NAMES_A) * len(_NAMES_B)) + 1}" if index >= len(_NAMES_A) * len(_NAMES_B) else ""
        )
        domain = base.lower().replace(" ", "-") + (f"-{index}" if index >= len(_NAMES_A) else "") + ".example"
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        email = f"accounts@{domain}"
        terms = rng.choice((14, 30, 30, 45))
        created = self.now - timedelta(days=rng.randint(400, 900), seconds=rng.randint(0, 86399))
        paused = "hubspot" in systems and (index == 2 or (index > 8 and rng.random() < 0.02))
        xero = shapes.xero_contact(
            self.ids.xero(),
            number=index + 1,
            name=name,
            first=first,
            last=last,
            email=email,
            currency=currency,
            terms=terms,
            updated=created,
        )
        self.xero["Contacts"].append(xero)
        customer = Customer(index, name, currency, systems, paused, terms, email, xero)
        if "hubspot" in systems:
            customer.company_id = self.ids.hubspot("companies")
            props = {
                "name": name,
                "domain": domain,
                "createdate": iso_ms(created),
                "hs_lastmodifieddate": iso_ms(created),
            }
            if paused:
                props["ar_dunning_paused"] = "true"
            self.hubspot["companies"].append(
                shapes.hubspot_object(customer.company_id, props, created=created, updated=created)
            )
            customer.contact_id = self.ids.hubspot("contacts")
            self.hubspot["contacts"].append(
                shapes.hubspot_object(
                    customer.contact_id,
                    {
                        "firstname": first,
                        "lastname": last,
                        "email": f"{first.lower()}.{last.lower()}@{domain}".replace("'", ""),
                        "phone": f"+1 555 01{index % 100:02d}",
                        "associatedcompanyid": customer.company_id,
                        "createdate": iso_ms(created),
                        "lastmodifieddate": iso_ms(created),
                    },
                    created=created,
                    updated=created,
                    company_id=customer.company_id,
                    association="contact_to_company",
                )
            )
        if "stripe" in systems:
            # Most customers carry the ledger's contact id; some are matched by e-mail only.
            customer.stripe_link = "email" if index == 4 or (index > 8 and rng.random() < 0.2) else "metadata"
            metadata = {}
            if customer.stripe_link == "metadata":
                metadata = {"xero_contact_id": xero["ContactID"]}
                if customer.company_id:
                    metadata["hubspot_company_id"] = customer.company_id
            customer.stripe = shapes.stripe_customer(
                self.ids, name=name, email=email, currency=currency, created=epoch(created), metadata=metadata
            )
            self.stripe["customers"].append(customer.stripe)
        self.truth["customers"].append(
            {
                "name": name,
                "currency": currency,
                "systems": list(systems),
                "paused": paused,
                "xero_contact_id": xero["ContactID"],
                "stripe_customer_id": customer.stripe["id"] if customer.stripe else None,
                "stripe_link": customer.stripe_link,
                "hubspot_company_id": customer.company_id,
                "hubspot_contact_id": customer.contact_id,
            }
        )
        return customer

    def customer_book(self, customer: Customer, quota: int) -> None:
        invoices: list[Invoice] = []
        while quota > 0:
            kind, options = self.pick(customer, quota)
            made = getattr(self, "scenario_" + kind)(customer, **options)
            invoices += made
            quota -= len(made)
        for invoice in invoices:
            self.finish(invoice)

    def pick(self, customer: Customer, room: int) -> tuple[str, dict[str, Any]]:
        def fits(kind: str) -> bool:
            size, needs, _ = SCENARIOS[kind]
            return size <= room and (needs is None or needs in customer.systems)

        for position, (kind, options) in enumerate(self.deck):
            if fits(kind):
                del self.deck[position]
                return kind, dict(options)
        kinds = [k for k in SCENARIOS if fits(k)]
        return self.rng.choices(kinds, weights=[SCENARIOS[k][2] for k in kinds])[0], {}

    # -- dates and amounts --------------------------------------------------------------------

    def paid_dates(self, terms: int) -> tuple[date, date, date]:
        """Issue, due and payment day of an invoice settled some time in the last year."""
        issue = self.today - timedelta(days=self.rng.randint(terms + 5, 365))
        day = min(issue + timedelta(days=self.rng.randint(1, terms + 15)), self.today - timedelta(days=1))
        return issue, issue + timedelta(days=terms), day

    def open_dates(self, terms: int, bucket: str | None = None) -> tuple[date, date, str]:
        """Issue and due day of an invoice still open today, in `bucket` (drawn when None)."""
        rng = self.rng
        bucket = bucket or rng.choices(BUCKETS, weights=(40, 25, 15, 10, 10))[0]
        overdue = {
            "current": -rng.randint(0, terms - 1),
            "1-30": rng.randint(1, 30),
            "31-60": rng.randint(31, 60),
            "61-90": rng.randint(61, 90),
            "90+": rng.randint(91, 270),
        }[bucket]
        due = self.today - timedelta(days=overdue)
        return due - timedelta(days=terms), due, bucket

    def day_between(self, first: date, last: date) -> date:
        last = max(first, last)
        return first + timedelta(days=self.rng.randint(0, (last - first).days))

    def moment(self, day: date) -> datetime:
        return at(day, self.rng.randint(8 * 3600, 18 * 3600))

    def part(self, amount: Decimal, currency: str, low: float, high: float) -> Decimal:
        """A share of `amount` strictly between zero and all of it."""
        share = quantize(amount * Decimal(self.rng.randint(int(low * 100), int(high * 100))) / 100, currency)
        step = quantize(Decimal("0.01"), currency) or Decimal(1)
        return min(max(share, step), amount - step)

    # -- invoices -----------------------------------------------------------------------------

    def invoice(
        self,
        customer: Customer,
        issue: date,
        due: date,
        scenario: str,
        *,
        copy_of: Invoice | None = None,
        reference: str | None = None,
    ) -> Invoice:
        rng, currency = self.rng, customer.currency
        self.next_number += 1
        number = self.next_number
        text = f"INV-{number:04d}"
        rate, tax_type, amount_types = _TAX[currency]
        if copy_of is not None:
            lines = [(li["Description"], int(li["Quantity"]), li["UnitAmount"]) for li in copy_of.xero["LineItems"]]
        else:
            lines = []
            for _ in range(rng.choice((1, 1, 2, 3))):
                if currency == "JPY":
                    unit = Decimal(rng.randint(20, 3000) * 100)
                elif currency == "KWD":
                    unit = Decimal(rng.randint(500, 80000)) / 100
                else:
                    unit = Decimal(rng.randint(2000, 250000)) / 100
                lines.append((rng.choice(_ITEMS), rng.choice((1, 1, 1, 2, 3, 5)), unit))
        items, stripe_lines = [], []
        subtotal = tax_total = Decimal(0)
        for description, quantity, unit in lines:
            tax = quantize(unit * quantity * rate, currency)
            items.append(
                shapes.xero_line(
                    self.ids, description=description, quantity=quantity, unit=unit, tax=tax, tax_type=tax_type
                )
            )
            stripe_lines.append((description, quantity, unit, tax))
            subtotal += unit * quantity
            tax_total += tax
        created = self.moment(issue)
        contact = customer.xero
        xero: dict[str, Any] = {
            "Type": "ACCREC",
            "InvoiceID": self.ids.xero(),
            "InvoiceNumber": text,
            "Reference": reference or "",
            "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
            "Date": dotnet(issue),
            "DueDate": dotnet(due),
            "Status": "AUTHORISED",
            "LineAmountTypes": amount_types,
            "LineItems": items,
            "SubTotal": subtotal,
            "TotalTax": tax_total,
            "Total": subtotal + tax_total,
            "TotalDiscount": Decimal(0),
            "AmountDue": subtotal + tax_total,
            "AmountPaid": Decimal(0),
            "AmountCredited": Decimal(0),
            "CurrencyCode": currency,
            "CurrencyRate": _RATES[currency],
            "SentToContact": True,
            "HasAttachments": False,
            "IsDiscounted": False,
            "HasErrors": False,
            "Payments": [],
            "CreditNotes": [],
            "Prepayments": [],
            "Overpayments": [],
            "UpdatedDateUTC": dotnet(created),
        }
        self.xero["Invoices"].append(xero)
        invoice = Invoice(number, text, customer, issue, due, subtotal + tax_total, xero, scenario, touched=created)
        if customer.stripe is not None:
            self.link_turn += 1
            link = (
                "metadata"
                if self.link_turn == 1
                else "number_only"
                if self.link_turn == 2
                else ("metadata" if rng.random() < 0.6 else "number_only")
            )
            metadata = (
                {"xero_invoice_id": xero["InvoiceID"], "invoice_number": text}
                if link == "metadata"
                else ({"invoice_number": text} if rng.random() < 0.5 else {})
            )
            invoice.stripe = shapes.stripe_invoice(
                self.ids,
                customer=customer.stripe,
                number=text,
                currency=currency,
                lines=stripe_lines,
                created=epoch(created),
                due=epoch(at(due)),
                metadata=metadata,
                tax_rate=self.tax_rates.get(currency),
            )
            invoice.stripe_link = link
            self.stripe["invoices"].append(invoice.stripe)
            self.note_recent("invoice.finalized", epoch(created) + 60, invoice.stripe)
        if customer.company_id is not None:
            deal_id = self.ids.hubspot("deals")
            invoice.deal = shapes.hubspot_object(
                deal_id,
                {
                    "dealname": f"{customer.name} - {lines[0][0]}",
                    "amount": str(invoice.total),
                    "deal_currency_code": currency,
                    "closedate": iso_ms(at(issue)),
                    "createdate": iso_ms(created),
                    "dealstage": "closedwon",
                    "pipeline": "default",
                    "ar_invoice_number": text,
                    "hs_lastmodifieddate": iso_ms(created),
                },
                created=created,
                updated=created,
                company_id=customer.company_id,
                association="deal_to_company",
            )
            self.hubspot["deals"].append(invoice.deal)
            self.crm_invoice_turn += 1
            if self.crm_invoice_turn % 4 == 1:  # a quarter of them are also invoiced from HubSpot commerce
                invoice.crm_invoice = shapes.hubspot_object(
                    self.ids.hubspot("invoices"),
                    {
                        "hs_number": text,
                        "hs_currency": currency,
                        "hs_invoice_date": issue.isoformat(),
                        "hs_due_date": due.isoformat(),
                        "hs_invoice_status": "open",
                        "hs_amount_billed": str(invoice.total),
                        "hs_balance_due": str(invoice.total),
                        "hs_createdate": iso_ms(created),
                        "hs_lastmodifieddate": iso_ms(created),
                    },
                    created=created,
                    updated=created,
                    company_id=customer.company_id,
                    association="invoice_to_company",
                )
                self.hubspot["invoices"].append(invoice.crm_invoice)
        return invoice

    def finish(self, invoice: Invoice) -> None:
        """Xero's totals and status, HubSpot's view of it, and the invoice's truth."""
        xero, currency = invoice.xero, invoice.customer.currency
        paid = sum((p["Amount"] for p in invoice.xero_payments), Decimal(0))
        due = invoice.total - paid - invoice.credit
        assert due >= 0, (invoice.text, due)
        xero.update(
            AmountPaid=paid, AmountCredited=invoice.credit, AmountDue=due, Status="PAID" if due == 0 else "AUTHORISED"
        )
        xero["Payments"] = [
            {
                "PaymentID": p["PaymentID"],
                "Date": p["Date"],
                "Amount": p["Amount"],
                "Reference": p["Reference"],
                "CurrencyRate": p["CurrencyRate"],
                "HasAccount": True,
                "HasValidationErrors": False,
            }
            for p in invoice.xero_payments
        ]
        if invoice.credit_note:
            note = invoice.credit_note
            xero["CreditNotes"] = [
                {
                    "CreditNoteID": note["CreditNoteID"],
                    "CreditNoteNumber": note["CreditNoteNumber"],
                    "AppliedAmount": invoice.credit,
                    "Date": note["Date"],
                    "Total": note["Total"],
                    "HasErrors": False,
                }
            ]
        if due == 0:
            xero["FullyPaidOnDate"] = dotnet(invoice.touched.date()) if invoice.touched else xero["Date"]
        if invoice.promise:
            xero["ExpectedPaymentDate"] = dotnet(invoice.promise)
        if invoice.touched:
            xero["UpdatedDateUTC"] = dotnet(invoice.touched)
        if invoice.deal is not None:
            props = invoice.deal["properties"]
            if invoice.disputed:
                props.update(ar_disputed="true", ar_dispute_reason=invoice.disputed)
            if invoice.promise:
                props["ar_promise_to_pay_date"] = invoice.promise.isoformat()
            if invoice.plan:
                props["ar_payment_plan"] = f"{invoice.plan['instalments']} monthly instalments"
        if invoice.crm_invoice is not None:
            props = invoice.crm_invoice["properties"]
            props.update(hs_balance_due=str(due), hs_invoice_status="paid" if due == 0 else "open")
        balance = invoice.total - invoice.credit - invoice.allocated
        assert balance >= 0, (invoice.text, balance)
        overdue = (self.today - invoice.due).days
        bucket = (
            None
            if balance == 0
            else "current"
            if overdue <= 0
            else "1-30"
            if overdue <= 30
            else ("31-60" if overdue <= 60 else "61-90" if overdue <= 90 else "90+")
        )
        systems = ["xero"] + (["stripe"] if invoice.stripe else []) + (["hubspot"] if invoice.deal else [])
        links = {}
        if invoice.stripe:
            links["stripe"] = invoice.stripe_link
        if invoice.deal:
            links["hubspot_deal"] = "number_only"
        if invoice.crm_invoice:
            links["hubspot_invoice"] = "number_only"
        text = shapes.decimal_text
        self.truth["invoices"].append(
            {
                "number": invoice.text,
                "xero_invoice_id": xero["InvoiceID"],
                "stripe_invoice_id": invoice.stripe["id"] if invoice.stripe else None,
                "hubspot_deal_id": invoice.deal["id"] if invoice.deal else None,
                "hubspot_invoice_id": invoice.crm_invoice["id"] if invoice.crm_invoice else None,
                "customer": invoice.customer.xero["ContactID"],
                "currency": currency,
                "scenario": invoice.scenario,
                "issue_date": invoice.issue.isoformat(),
                "due_date": invoice.due.isoformat(),
                "total": text(invoice.total, currency),
                "credited": text(invoice.credit, currency),
                "paid": text(invoice.allocated, currency),
                "balance": text(balance, currency),
                "days_past_due": overdue if balance else None,
                "bucket": bucket,
                "disputed": invoice.disputed is not None,
                "dispute_reason": invoice.disputed,
                "promise_to_pay_date": invoice.promise.isoformat() if invoice.promise else None,
                "payment_plan": invoice.plan,
                "systems": systems,
                "links": links,
            }
        )

    def touch(self, invoice: Invoice, when: datetime) -> None:
        if invoice.touched is None or when > invoice.touched:
            invoice.touched = when
            stamp = iso_ms(when)
            for obj in (invoice.deal, invoice.crm_invoice):
                if obj is not None and when <= self.now:
                    obj["updatedAt"] = stamp
                    obj["properties"]["hs_lastmodifieddate"] = stamp

    # -- payments -------------------------------------------------------------------------------

    def xero_pay(
        self,
        invoice: Invoice,
        amount: Decimal,
        when: datetime,
        reference: str,
        *,
        card: bool = False,
        batch: str | None = None,
    ) -> str:
        account = self.accounts[_CLEARING if card else _BANK[invoice.customer.currency]]
        payment_id = self.ids.xero()
        payment = shapes.xero_payment(
            payment_id,
            invoice=invoice.xero,
            account=account,
            amount=amount,
            when=when,
            reference=reference,
            rate=_RATES[invoice.customer.currency],
            reconciled=when < self.now - timedelta(days=14),
            batch_id=batch,
        )
        self.xero["Payments"].append(payment)
        invoice.xero_payments.append(payment)
        self.touch(invoice, when)
        return payment_id

    def charge(
        self,
        customer: Customer,
        amount: Decimal,
        when: datetime,
        description: str | None,
        *,
        invoice: Invoice | None = None,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A succeeded card payment with its payment intent and its balance transaction (fee, net)."""
        assert customer.stripe is not None
        currency = customer.currency
        amount_minor = minor(amount, currency)
        created = epoch(when)
        txn_id = self.ids.stripe("txn_3", 22)
        charge = shapes.stripe_charge(
            self.ids,
            self.rng,
            amount=amount_minor,
            currency=currency,
            created=created,
            customer=customer.stripe,
            description=description,
            invoice_id=invoice.stripe["id"] if invoice and invoice.stripe else None,
            metadata=metadata or {},
            balance_transaction=txn_id,
        )
        self.stripe["charges"].append(charge)
        self.stripe["payment_intents"].append(shapes.stripe_payment_intent(charge))
        self.balance(
            txn_id, amount_minor, fee(amount_minor, currency), currency, when, "charge", charge["id"], description
        )
        self.note_recent("charge.succeeded", created, charge)
        return charge

    def refund(self, charge: dict[str, Any], amount: int, when: datetime, reason: str) -> None:
        txn_id = self.ids.stripe("txn_3", 22)
        refund = shapes.stripe_refund(
            self.ids, charge=charge, amount=amount, created=epoch(when), reason=reason, balance_transaction=txn_id
        )
        self.stripe["refunds"].append(refund)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self.balance(txn_id, -amount, 0, charge["currency"].upper(), when, "refund", refund["id"], "REFUND FOR CHARGE")
        self.note_recent("charge.refunded", epoch(when), charge)

    def balance(
        self,
        txn_id: str,
        amount: int,
        fee_minor: int,
        currency: str,
        when: datetime,
        kind: str,
        source: str,
        description: str | None,
    ) -> None:
        available = when.date() + timedelta(days=2)
        txn = shapes.stripe_balance_transaction(
            txn_id,
            amount=amount,
            fee=fee_minor,
            currency=currency,
            created=epoch(when),
            available_on=epoch(at(available)),
            kind=kind,
            source=source,
            description=description,
        )
        self.stripe["balance_transactions"].append(txn)
        payout_day = available + timedelta(days=(7 - available.weekday()) % 7)  # weekly, on Mondays
        if payout_day < self.today:
            self.payouts.setdefault((currency, payout_day), []).append(txn)

    def stripe_paid(self, invoice: Invoice, when: datetime, charge: dict[str, Any] | None = None) -> None:
        if invoice.stripe is not None:
            shapes.stripe_mark_paid(invoice.stripe, paid_at=epoch(when), charge=charge)
            self.note_recent("invoice.paid", epoch(when), invoice.stripe)

    def record(
        self,
        kind: str,
        *,
        method: str,
        amount: Decimal,
        currency: str,
        when: datetime,
        remittance: str | None,
        allocations: list[tuple[Invoice, Decimal]],
        charge: dict[str, Any] | None = None,
        xero_ids: list[str] | None = None,
        determinable: bool = True,
        candidates: list[Invoice] | None = None,
        refunded: Decimal = Decimal(0),
    ) -> None:
        """The truth about one payment: which invoices it pays and how much of each."""
        text = shapes.decimal_text
        for invoice, share in allocations:
            invoice.allocated += share
        allocated = sum((share for _, share in allocations), Decimal(0))
        assert allocated + refunded <= amount, (kind, amount, allocated, refunded)
        key = charge["id"] if charge else (xero_ids or [""])[0]
        self.truth["payments"].append(
            {
                "id": key,
                "scenario": kind,
                "method": method,
                "stripe_charge_id": charge["id"] if charge else None,
                "xero_payment_ids": xero_ids or [],
                "remittance": remittance,
                "received_at": when.isoformat().replace("+00:00", "Z"),
                "amount": text(amount, currency),
                "currency": currency,
                "refunded": text(refunded, currency),
                "unallocated": text(amount - refunded - allocated, currency),
                "allocations": [
                    {
                        "xero_invoice_id": inv.xero["InvoiceID"],
                        "invoice_number": inv.text,
                        "stripe_invoice_id": inv.stripe["id"] if inv.stripe else None,
                        "amount": text(share, currency),
                        "currency": currency,
                    }
                    for inv, share in allocations
                ],
                "determinable": determinable,
                "candidates": [inv.text for inv in candidates] if candidates else None,
            }
        )
        self.truth["determinable"][key] = determinable

    def remit(self, invoice: Invoice) -> str:
        """Remittance text as people write it; the first ones go through every form in turn."""
        n, text = invoice.number, invoice.text
        return self.form(
            "single",
            (
                text,
                f"inv {n}",
                f"Invoice #{n}",
                text.replace("-", ""),
                f"Payment {text}",
                f"{text} thank you",
                f"inv-{n}",
                f"INVOICE {n:04d}",
                f"Ref {text.lower()}",
            ),
        )

    def remit_many(self, invoices: list[Invoice]) -> str:
        nums = [str(i.number) for i in invoices]
        return self.form(
            "many",
            (
                "Invoice " + " + ".join("#" + n for n in nums),
                ", ".join(i.text for i in invoices),
                "inv " + "/".join(nums),
                " & ".join(i.text for i in invoices),
            ),
        )

    def form(self, kind: str, forms: tuple[str, ...]) -> str:
        turn = self.form_turns[kind] = self.form_turns.get(kind, -1) + 1
        return forms[turn] if turn < len(forms) else self.rng.choice(forms)

    # -- scenarios: each makes its invoices and their payments ------------------------------------

    def scenario_open(self, c: Customer, bucket: str | None = None) -> list[Invoice]:
        issue, due, _ = self.open_dates(c.terms, bucket)
        return [self.invoice(c, issue, due, "open")]

    def scenario_card_invoice(self, c: Customer, recorded: bool | None = None) -> list[Invoice]:
        """Paid by card through the Stripe invoice; older ones already recorded in Xero."""
        issue, due, day = self.paid_dates(c.terms)
        inv = self.invoice(c, issue, due, "card_invoice")
        when = self.moment(day)
        charge = self.charge(c, inv.total, when, "Payment for Invoice", invoice=inv)
        self.stripe_paid(inv, when, charge)
        if recorded is None:
            recorded = day < self.today - timedelta(days=10) and self.rng.random() < 0.8
        xero_ids = [self.xero_pay(inv, inv.total, when, charge["id"], card=True)] if recorded else []
        self.touch(inv, when)
        self.record(
            "card_invoice",
            method="card",
            amount=inv.total,
            currency=c.currency,
            when=when,
            remittance=charge["description"],
            allocations=[(inv, inv.total)],
            charge=charge,
            xero_ids=xero_ids,
        )
        return [inv]

    def scenario_bank_full(self, c: Customer, oob: bool | None = None, po: bool = False) -> list[Invoice]:
        """A bank transfer recorded in Xero; in Stripe marked paid out of band, or not yet."""
        issue, due, day = self.paid_dates(c.terms)
        reference = None
        if po:
            self.next_po += 1
            reference = f"PO {self.next_po}"
        inv = self.invoice(c, issue, due, "bank_po" if po else "bank_full", reference=reference)
        when = self.moment(day)
        remittance = (
            self.rng.choice((f"PO{self.next_po}", f"Our PO {self.next_po}", f"po#{self.next_po}"))
            if po
            else self.remit(inv)
        )
        xero_id = self.xero_pay(inv, inv.total, when, remittance)
        if oob is None:
            oob = self.rng.random() < 0.6
        if oob:
            self.stripe_paid(inv, when + timedelta(hours=20))
        self.record(
            inv.scenario,
            method="bank_transfer",
            amount=inv.total,
            currency=c.currency,
            when=when,
            remittance=remittance,
            allocations=[(inv, inv.total)],
            xero_ids=[xero_id],
        )
        return [inv]

    def scenario_bank_po(self, c: Customer) -> list[Invoice]:
        return self.scenario_bank_full(c, oob=False, po=True)

    def scenario_bank_partial(self, c: Customer) -> list[Invoice]:
        issue, due, _ = self.open_dates(c.terms, self.rng.choice(BUCKETS[1:]))
        inv = self.invoice(c, issue, due, "bank_partial")
        amount = self.part(inv.total, c.currency, 0.2, 0.7)
        when = self.moment(self.day_between(issue, self.today - timedelta(days=1)))
        remittance = self.remit(inv) + self.rng.choice(("", " part", " partial payment"))
        xero_id = self.xero_pay(inv, amount, when, remittance)
        self.record(
            "bank_partial",
            method="bank_transfer",
            amount=amount,
            currency=c.currency,
            when=when,
            remittance=remittance,
            allocations=[(inv, amount)],
            xero_ids=[xero_id],
        )
        return [inv]

    def card_link(
        self, c: Customer, inv: Invoice, amount: Decimal, when: datetime, description: str, number_in_metadata: bool
    ) -> dict[str, Any]:
        """A payment-link charge that Stripe does not tie to any invoice."""
        metadata = {"invoice_number": inv.text} if number_in_metadata else {}
        return self.charge(c, amount, when, description, metadata=metadata)

    def scenario_card_partial(self, c: Customer) -> list[Invoice]:
        issue, due, _ = self.open_dates(c.terms, self.rng.choice(BUCKETS))
        inv = self.invoice(c, issue, due, "card_partial")
        amount = self.part(inv.total, c.currency, 0.2, 0.6)
        when = self.moment(self.day_between(issue, self.today - timedelta(days=1)))
        description = self.remit(inv) + self.rng.choice((" part payment", " (partial)", " 1st payment"))
        charge = self.card_link(c, inv, amount, when, description, False)
        self.touch(inv, when)
        self.record(
            "card_partial",
            method="card",
            amount=amount,
            currency=c.currency,
            when=when,
            remittance=description,
            allocations=[(inv, amount)],
            charge=charge,
        )
        return [inv]

    def scenario_card_text(self, c: Customer) -> list[Invoice]:
        """Paid in full through a payment link; the invoice is named only in the description."""
        issue, due, day = self.paid_dates(c.terms)
        inv = self.invoice(c, issue, due, "card_text")
        when = self.moment(day)
        description = self.remit(inv)
        charge = self.card_link(c, inv, inv.total, when, description, self.rng.random() < 0.3)
        xero_ids = []
        if day < self.today - timedelta(days=10) and self.rng.random() < 0.5:
            xero_ids.append(self.xero_pay(inv, inv.total, when, charge["id"], card=True))
        self.touch(inv, when)
        self.record(
            "card_text",
            method="card",
            amount=inv.total,
            currency=c.currency,
            when=when,
            remittance=description,
            allocations=[(inv, inv.total)],
            charge=charge,
            xero_ids=xero_ids,
        )
        return [inv]

    def scenario_card_po(self, c: Customer) -> list[Invoice]:
        """Paid by card quoting the customer's own purchase order number, which the invoice carries."""
        issue, due, day = self.paid_dates(c.terms)
        self.next_po += 1
        inv = self.invoice(c, issue, due, "card_po", reference=f"PO {self.next_po}")
        when = self.moment(day)
        description = self.rng.choice((f"PO{self.next_po}", f"Our PO {self.next_po}", f"po#{self.next_po}"))
        charge = self.charge(c, inv.total, when, description)
        self.touch(inv, when)
        self.record(
            "card_po",
            method="card",
            amount=inv.total,
            currency=c.currency,
            when=when,
            remittance=description,
            allocations=[(inv, inv.total)],
            charge=charge,
        )
        return [inv]

    def scenario_overpay(self, c: Customer, refund_excess: bool = False) -> list[Invoice]:
        issue, due, day = self.paid_dates(c.terms)
        inv = self.invoice(c, issue, due, "overpay_refunded" if refund_excess else "overpay")
        extra = max(
            quantize(inv.total * Decimal(self.rng.randint(1, 10)) / 100, c.currency),
            quantize(Decimal("0.01"), c.currency) or Decimal(1),
        )
        when = self.moment(day)
        description = self.remit(inv)
        charge = self.card_link(c, inv, inv.total + extra, when, description, False)
        refunded = Decimal(0)
        if refund_excess:
            self.refund(
                charge,
                minor(extra, c.currency),
                self.moment(min(day + timedelta(days=2), self.today - timedelta(days=1))),
                "requested_by_customer",
            )
            refunded = extra
        self.touch(inv, when)
        self.record(
            inv.scenario,
            method="card",
            amount=inv.total + extra,
            currency=c.currency,
            when=when,
            remittance=description,
            allocations=[(inv, inv.total)],
            charge=charge,
            refunded=refunded,
        )
        return [inv]

    def scenario_overpay_refunded(self, c: Customer) -> list[Invoice]:
        return self.scenario_overpay(c, refund_excess=True)

    def scenario_duplicate_refunded(self, c: Customer) -> list[Invoice]:
        """Paid through the Stripe invoice and again through a payment link; the second refunded."""
        issue, due, day = self.paid_dates(c.terms)
        inv = self.invoice(c, issue, due, "duplicate_refunded")
        when = self.moment(day)
        first = self.charge(c, inv.total, when, "Payment for Invoice", invoice=inv)
        self.stripe_paid(inv, when, first)
        later = when + timedelta(hours=3)
        description = self.remit(inv)
        second = self.card_link(c, inv, inv.total, later, description, False)
        self.refund(second, second["amount"], later + timedelta(days=1), "duplicate")
        self.touch(inv, later)
        self.record(
            "duplicate_refunded",
            method="card",
            amount=inv.total,
            currency=c.currency,
            when=when,
            remittance=first["description"],
            allocations=[(inv, inv.total)],
            charge=first,
        )
        self.record(
            "duplicate_refunded",
            method="card",
            amount=inv.total,
            currency=c.currency,
            when=later,
            remittance=description,
            allocations=[],
            charge=second,
            refunded=inv.total,
        )
        return [inv]

    def scenario_multi_bank(self, c: Customer) -> list[Invoice]:
        """One bank transfer for two invoices: a Xero batch payment, one Payment per invoice."""
        issue, due, day = self.paid_dates(c.terms)
        invs = [
            self.invoice(c, issue - timedelta(days=k * 3), due - timedelta(days=k * 3), "multi_bank") for k in range(2)
        ]
        when = self.moment(day)
        remittance = self.remit_many(invs)
        batch = self.ids.xero()
        xero_ids = [self.xero_pay(inv, inv.total, when, remittance, batch=batch) for inv in invs]
        total = sum((inv.total for inv in invs), Decimal(0))
        self.record(
            "multi_bank",
            method="bank_transfer",
            amount=total,
            currency=c.currency,
            when=when,
            remittance=remittance,
            allocations=[(inv, inv.total) for inv in invs],
            xero_ids=xero_ids,
        )
        return invs

    def scenario_multi_card(self, c: Customer) -> list[Invoice]:
        issue, due, day = self.paid_dates(c.terms)
        invs = [
            self.invoice(c, issue - timedelta(days=k * 5), due - timedelta(days=k * 5), "multi_card") for k in range(2)
        ]
        when = self.moment(day)
        description = self.remit_many(invs)
        total = sum((inv.total for inv in invs), Decimal(0))
        charge = self.charge(c, total, when, description)
        for inv in invs:
            self.touch(inv, when)
        self.record(
            "multi_card",
            method="card",
            amount=total,
            currency=c.currency,
            when=when,
            remittance=description,
            allocations=[(inv, inv.total) for inv in invs],
            charge=charge,
        )
        return invs

    def scenario_ambiguous(self, c: Customer) -> list[Invoice]:
        """Two open invoices of the same amount and a card payment that names neither."""
        issue, due, _ = self.open_dates(c.terms, self.rng.choice(BUCKETS[1:4]))
        first = self.invoice(c, issue, due, "ambiguous")
        second = self.invoice(c, issue + timedelta(days=7), due + timedelta(days=7), "ambiguous", copy_of=first)
        when = self.moment(self.day_between(issue + timedelta(days=7), self.today - timedelta(days=1)))
        description = self.rng.choice((f"{c.name} payment", "Payment - thank you", "Monthly settlement", None))
        charge = self.charge(c, first.total, when, description)
        self.touch(first, when)
        self.record(
            "ambiguous",
            method="card",
            amount=first.total,
            currency=c.currency,
            when=when,
            remittance=description,
            allocations=[(first, first.total)],
            charge=charge,
            determinable=False,
            candidates=[first, second],
        )
        return [first, second]

    def scenario_credit_note(self, c: Customer, settle: bool | None = None) -> list[Invoice]:
        """A credit note allocated to part of the invoice; the rest paid by bank or still open."""
        settle = self.rng.random() < 0.5 if settle is None else settle
        if settle:
            issue, due, day = self.paid_dates(c.terms)
        else:
            issue, due, _ = self.open_dates(c.terms)
            day = self.day_between(issue, self.today - timedelta(days=1))
        inv = self.invoice(c, issue, due, "credit_note")
        rate, tax_type, amount_types = _TAX[c.currency]
        net = self.part(inv.xero["SubTotal"], c.currency, 0.1, 0.3)
        tax = quantize(net * rate, c.currency)
        credit = net + tax
        when = self.moment(self.day_between(issue, day))
        self.next_credit += 1
        note = {
            "Type": "ACCRECCREDIT",
            "CreditNoteID": self.ids.xero(),
            "CreditNoteNumber": f"CN-{self.next_credit:04d}",
            "Reference": self.rng.choice(("Goodwill", "Returned goods", "Pricing correction")),
            "Contact": dict(inv.xero["Contact"]),
            "Date": dotnet(when.date()),
            "Status": "PAID",
            "LineAmountTypes": amount_types,
            "LineItems": [
                shapes.xero_line(
                    self.ids, description=f"Credit against {inv.text}", quantity=1, unit=net, tax=tax, tax_type=tax_type
                )
            ],
            "SubTotal": net,
            "TotalTax": tax,
            "Total": credit,
            "CurrencyCode": c.currency,
            "CurrencyRate": _RATES[c.currency],
            "RemainingCredit": Decimal(0),
            "FullyPaidOnDate": dotnet(when.date()),
            "Allocations": [
                {
                    "AllocationID": self.ids.xero(),
                    "Amount": credit,
                    "Date": dotnet(when.date()),
                    "Invoice": {"InvoiceID": inv.xero["InvoiceID"], "InvoiceNumber": inv.text},
                }
            ],
            "SentToContact": True,
            "HasAttachments": False,
            "HasErrors": False,
            "UpdatedDateUTC": dotnet(when),
        }
        self.xero["CreditNotes"].append(note)
        inv.credit, inv.credit_note = credit, note
        self.touch(inv, when)
        if settle:
            rest = inv.total - credit
            paid_at = self.moment(max(day, when.date()))
            remittance = self.remit(inv)
            xero_id = self.xero_pay(inv, rest, paid_at, remittance)
            self.record(
                "credit_note",
                method="bank_transfer",
                amount=rest,
                currency=c.currency,
                when=paid_at,
                remittance=remittance,
                allocations=[(inv, rest)],
                xero_ids=[xero_id],
            )
        return [inv]

    def scenario_disputed(self, c: Customer) -> list[Invoice]:
        issue, due, _ = self.open_dates(c.terms, self.rng.choice(BUCKETS[1:]))
        inv = self.invoice(c, issue, due, "disputed")
        inv.disputed = self.rng.choice(_DISPUTES)
        self.touch(inv, self.moment(self.day_between(due, self.today - timedelta(days=1))))
        return [inv]

    def scenario_promise(self, c: Customer) -> list[Invoice]:
        issue, due, _ = self.open_dates(c.terms, self.rng.choice(("1-30", "31-60", "61-90")))
        inv = self.invoice(c, issue, due, "promise")
        inv.promise = self.today + timedelta(days=self.rng.randint(3, 21))
        self.touch(inv, self.moment(self.today - timedelta(days=self.rng.randint(1, 5))))
        return [inv]

    def scenario_plan(self, c: Customer) -> list[Invoice]:
        """A payment plan in monthly instalments, some paid by bank transfer, the rest to come."""
        issue, due, _ = self.open_dates(c.terms, self.rng.choice(("31-60", "61-90", "90+")))
        inv = self.invoice(c, issue, due, "plan")
        count = self.rng.choice((3, 4))
        instalment = quantize(inv.total / count, c.currency)
        paid = 0
        for k in range(1, count):
            day = due + timedelta(days=30 * (k - 1))
            if day >= self.today:
                break
            when = self.moment(day)
            remittance = f"{inv.text} instalment {k}/{count}"
            xero_id = self.xero_pay(inv, instalment, when, remittance)
            self.record(
                "plan",
                method="bank_transfer",
                amount=instalment,
                currency=c.currency,
                when=when,
                remittance=remittance,
                allocations=[(inv, instalment)],
                xero_ids=[xero_id],
            )
            paid += 1
        inv.plan = {
            "instalments": count,
            "instalment_amount": shapes.decimal_text(instalment, c.currency),
            "paid_instalments": paid,
            "first_due": due.isoformat(),
        }
        return [inv]

    # -- Stripe payouts and events ---------------------------------------------------------------

    def write_payouts(self) -> None:
        for (currency, day), txns in sorted(self.payouts.items(), key=lambda item: (item[0][1], item[0][0])):
            amount = sum(t["net"] for t in txns)
            if amount <= 0:
                continue
            payout_id = self.ids.stripe("po_1", 23)
            txn_id = self.ids.stripe("txn_1", 23)
            created = at(day, 3 * 3600)
            arrival = day + timedelta(days=2)
            self.stripe["payouts"].append(
                shapes.stripe_payout(
                    payout_id,
                    amount=amount,
                    currency=currency,
                    created=epoch(created),
                    arrival=epoch(at(arrival)),
                    paid=arrival <= self.today,
                    balance_transaction=txn_id,
                )
            )
            self.stripe["balance_transactions"].append(
                shapes.stripe_balance_transaction(
                    txn_id,
                    amount=-amount,
                    fee=0,
                    currency=currency,
                    created=epoch(created),
                    available_on=epoch(created),
                    kind="payout",
                    source=payout_id,
                    description="STRIPE PAYOUT",
                )
            )
            paid_out = Decimal(amount).scaleb(-currency_exponent(currency))
            self.truth["payouts"].append(
                {
                    "id": payout_id,
                    "currency": currency,
                    "amount": shapes.decimal_text(paid_out, currency),
                    "balance_transactions": [t["id"] for t in txns],
                }
            )
            if epoch(created) >= self.recent:
                self.recent_objects.append(("payout.created", epoch(created), self.stripe["payouts"][-1]))

    def note_recent(self, kind: str, created: int, obj: dict[str, Any]) -> None:
        if created >= self.recent:
            self.recent_objects.append((kind, created, obj))

    def write_events(self) -> None:
        """Events of the last 30 days, oldest first, each with its object as it stands now."""
        for kind, created, obj in sorted(self.recent_objects, key=lambda item: item[1]):
            self.stripe["events"].append(shapes.stripe_event(self.ids, kind=kind, created=created, obj=_copy(obj)))


def fee(amount: int, currency: str) -> int:
    """Stripe's card fee in minor units: 2.9 % + 30 cents (USD, EUR), 3.6 % (JPY), 2.9 % +
    100 fils rounded to tens of fils (KWD, whose last digit Stripe keeps at 0)."""
    if currency == "JPY":
        return (amount * 36 + 500) // 1000
    if currency == "KWD":
        return ((amount * 29 + 500) // 1000 + 100 + 5) // 10 * 10
    return (amount * 29 + 500) // 1000 + 30


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
