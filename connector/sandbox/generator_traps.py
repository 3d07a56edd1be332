"""The trap book: a labelled AR book built to measure how often reconciliation is right.

    scenario = generate_traps(3)
    scenario.truth["payments"][0]["trap"]        # "ordinary", "amount_typo", "dispute_lost", ...
    scenario.truth["payments"][0]["expected"]    # "apply", "propose", "credit" or "none"

About 200 payments: half ordinary (the scenarios of `generator_book`), half traps in which a
plausible clue points at the wrong invoice: an invoice number of a related company beside an
own invoice of that amount, a duplicate naming an invoice already paid, a typo in the number,
numbers that are not invoice numbers ("Q3", "50% deposit", "PO#2026-0214"), money that did not
stay (a lost chargeback, a declined card, a full refund), and payments only a person can settle
(two subsidiaries paid at once, five equal monthly invoices, a fee short). Every object is in
its provider's own shape (Stripe disputes included); docs/scenarios.md lists the traps.

The same seed and `today` give the same book, byte for byte.
"""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, cast, get_args

from connector.money import currency_exponent
from connector.sandbox import generator_shapes as shapes
from connector.sandbox.generator import DEFAULT_TODAY, TRUTH_FORMAT, Scenario, summarise
from connector.sandbox.generator_book import CURRENCIES, SCENARIOS, Book, Customer, Invoice
from connector.sandbox.generator_shapes import epoch, iso_ms, minor, quantize

Expected = Literal["apply", "propose", "credit", "none"]
EXPECTED: tuple[Expected, ...] = get_args(Expected)
Trap = Literal[
    "named_related_invoice",
    "duplicate_of_paid",
    "cross_currency",
    "amount_typo",
    "period_not_number",
    "percent_not_number",
    "po_not_number",
    "dispute_lost",
    "dispute_won",
    "charge_failed",
    "refunded_in_full",
    "parent_pays_pair",
    "monthly_subscriptions",
    "range_or_list",
    "short_by_bank_fee",
    "gateway_number",
    "zeros_and_hash",
]
TRAPS: tuple[Trap, ...] = get_args(Trap)
ORDINARY = "ordinary"

_ALL = ("xero", "stripe", "hubspot")
_NAMES = (
    "Contoso",
    "Fabrikam",
    "Tailspin",
    "Wingtip",
    "Litware",
    "Proseware",
    "Adatum",
    "Fourth Coffee",
    "Lucerne",
    "Alpine Ski",
    "Coho",
    "Humongous",
    "Wide World",
    "Trey",
    "Blue Yonder",
    "Southridge",
    "Woodgrove",
    "Nod",
    "Relecloud",
    "Munson",
)
_KINDS = ("Group", "Holdings", "Traders", "Works", "Labs", "Retail", "Media", "Energy", "Foods")
_SUFFIXES = {"USD": "Inc.", "EUR": "GmbH", "JPY": "K.K.", "KWD": "W.L.L."}
_BRANCHES = ("Europe", "Asia", "Services", "Retail", "Logistics")
_PEOPLE = (("Noor", "Rahman"), ("Aiko", "Tanaka"), ("Lena", "Vogel"), ("Sam", "Okafor"), ("Ravi", "Menon"))
# Stripe's chargeback fee, in minor units.
_DISPUTE_FEE = {"USD": 1500, "EUR": 1500, "JPY": 2000, "KWD": 5000}
_BANK_FEE = {"USD": (10, 35), "EUR": (8, 30), "JPY": (500, 2500), "KWD": (2, 8)}  # whole units


def expected_of(payment: dict[str, Any]) -> Expected:
    """What a careful clerk does with a payment of any generated book: the label itself when
    the trap book set one, else read from its truth (an ordinary book's payments)."""
    label = payment.get("expected")
    if label in EXPECTED:
        return cast(Expected, label)
    if not payment.get("determinable", True):
        return "propose"
    if payment["allocations"]:
        return "apply"
    return "none" if Decimal(payment["refunded"]) == Decimal(payment["amount"]) else "credit"


def generate_traps(seed: int, *, today: date | None = None) -> Scenario:
    """The trap book of `seed`: about 200 payments, every trap several times, with its truth."""
    today = today or DEFAULT_TODAY
    book = TrapBook(seed, today)
    book.build()
    truth = {"format": TRUTH_FORMAT, "seed": seed, "size": "traps", "today": today.isoformat(), **book.truth}
    summary = summarise(truth)
    summary["traps"] = _count(p["trap"] for p in truth["payments"])
    summary["expected"] = _count(p["expected"] for p in truth["payments"])
    summary["disputes"] = len(book.stripe["disputes"])
    truth["summary"] = summary
    data = {"stripe": book.stripe, "xero": book.xero, "hubspot": book.hubspot}
    return Scenario(seed, "traps", today, data, truth)


def _count(labels: Any) -> dict[str, int]:
    result: dict[str, int] = {}
    for label in labels:
        result[label] = result.get(label, 0) + 1
    return dict(sorted(result.items()))


class TrapBook(Book):
    """A `Book` whose customers are made one trap at a time, then padded with ordinary ones."""

    def __init__(self, seed: int, today: date) -> None:
        super().__init__(seed, today, customers=0, invoices=0)
        self.stripe["disputes"] = []
        self.trap = ORDINARY
        self.used: set[int] = set()
        self.made: list[Invoice] = []

    # -- the whole book ---------------------------------------------------------------------

    def build(self) -> None:
        makers: dict[Trap, Callable[[str], None]] = {
            "named_related_invoice": self.trap_named_related_invoice,
            "duplicate_of_paid": self.trap_duplicate_of_paid,
            "cross_currency": self.trap_cross_currency,
            "amount_typo": self.trap_amount_typo,
            "period_not_number": self.trap_period_not_number,
            "percent_not_number": self.trap_percent_not_number,
            "po_not_number": self.trap_po_not_number,
            "dispute_lost": self.trap_dispute_lost,
            "dispute_won": self.trap_dispute_won,
            "charge_failed": self.trap_charge_failed,
            "refunded_in_full": self.trap_refunded_in_full,
            "parent_pays_pair": self.trap_parent_pays_pair,
            "monthly_subscriptions": self.trap_monthly_subscriptions,
            "range_or_list": self.trap_range_or_list,
            "short_by_bank_fee": self.trap_short_by_bank_fee,
            "gateway_number": self.trap_gateway_number,
            "zeros_and_hash": self.trap_zeros_and_hash,
        }
        plan: list[Trap] = []
        for trap in TRAPS:
            plan += [trap] * (2 if trap == "monthly_subscriptions" else self.rng.randint(4, 6))
        self.rng.shuffle(plan)
        for turn, trap in enumerate(plan):
            self.trap = trap
            makers[trap](CURRENCIES[turn % len(CURRENCIES)])
        traps = len(self.truth["payments"])
        self.trap = ORDINARY
        while sum(p["trap"] == ORDINARY for p in self.truth["payments"]) < traps:
            self.ordinary_customer()
        for invoice in self.made:
            self.finish(invoice)
        self.write_payouts()
        self.write_events()

    def ordinary_customer(self) -> None:
        """A customer of the ordinary kind, with one to three scenarios drawn by weight."""
        rng = self.rng
        roll = rng.random()
        systems = ("xero", "stripe") if roll < 0.1 else ("xero", "hubspot") if roll < 0.2 else _ALL
        customer = self.person(rng.choices(CURRENCIES, weights=(40, 25, 17, 18))[0], systems=systems)
        kinds = [k for k, (size, needs, _) in SCENARIOS.items() if needs is None or needs in systems]
        for _ in range(rng.randint(1, 3)):
            kind = rng.choices(kinds, weights=[SCENARIOS[k][2] for k in kinds])[0]
            getattr(self, "scenario_" + kind)(customer)

    # -- customers, invoices, payments: the `Book`'s, with chosen numbers and labels -----------

    def person(
        self,
        currency: str,
        *,
        systems: tuple[str, ...] = _ALL,
        name: str | None = None,
        domain: str | None = None,
        mailbox: str = "accounts",
        group: dict[str, Any] | None = None,
        parent: Customer | None = None,
    ) -> Customer:
        """A customer in `systems`; with `group`, a member of that Xero contact group, and with
        `parent`, a subsidiary of that HubSpot company sharing its e-mail domain."""
        rng, index = self.rng, len(self.truth["customers"])
        base = f"{_NAMES[index % len(_NAMES)]} {_KINDS[(index // len(_NAMES) + index * 3) % len(_KINDS)]}"
        if index >= len(_NAMES) * len(_KINDS):
            base += f" {index // (len(_NAMES) * len(_KINDS)) + 1}"
        name = name or f"{base} {_SUFFIXES[currency]}"
        domain = domain or base.lower().replace(" ", "-") + ".example"
        email = f"{mailbox}@{domain}"
        first, last = _PEOPLE[index % len(_PEOPLE)]
        terms = rng.choice((14, 30, 30, 45))
        created = self.now - timedelta(days=rng.randint(400, 900), seconds=rng.randint(0, 86399))
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
        if group is not None:
            xero["ContactGroups"] = [dict(group)]
        self.xero["Contacts"].append(xero)
        customer = Customer(index, name, currency, systems, False, terms, email, xero)
        if "hubspot" in systems:
            customer.company_id = self.ids.hubspot("companies")
            props = {
                "name": name,
                "domain": domain,
                "createdate": iso_ms(created),
                "hs_lastmodifieddate": iso_ms(created),
            }
            if parent is not None and parent.company_id is not None:
                props["hs_parent_company_id"] = parent.company_id
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
                        "email": f"{first.lower()}.{last.lower()}@{domain}",
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
            customer.stripe_link = "metadata"
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
                "paused": False,
                "xero_contact_id": xero["ContactID"],
                "stripe_customer_id": customer.stripe["id"] if customer.stripe else None,
                "stripe_link": customer.stripe_link,
                "hubspot_company_id": customer.company_id,
                "hubspot_contact_id": customer.contact_id,
                "group": group["Name"] if group else None,
                "parent": parent.xero["ContactID"] if parent else None,
            }
        )
        return customer

    def family(self, currency: str, subsidiaries: int) -> tuple[Customer, list[Customer]]:
        """A parent and its subsidiaries: one Xero contact group, HubSpot parent links, one domain."""
        parent = self.person(currency)
        base = parent.name.rsplit(" ", 1)[0]
        group = shapes.xero_contact_group(self.ids.xero(), f"{base} group")
        parent.xero["ContactGroups"] = [dict(group)]
        self.truth["customers"][-1]["group"] = group["Name"]
        domain = parent.email.split("@")[1]
        subs = [
            self.person(
                currency,
                name=f"{base} {_BRANCHES[k]} {_SUFFIXES[currency]}",
                domain=domain,
                mailbox=f"ap.{_BRANCHES[k].lower()}",
                group=group,
                parent=parent,
            )
            for k in range(subsidiaries)
        ]
        return parent, subs

    def invoice(
        self,
        customer: Customer,
        issue: date,
        due: date,
        scenario: str,
        *,
        copy_of: Invoice | None = None,
        reference: str | None = None,
        number: int | None = None,
    ) -> Invoice:
        """The `Book`'s invoice, numbered `number` (reserved) or the next free number."""
        chosen = number if number is not None else self.free_number()
        self.used.add(chosen)
        self.next_number = chosen - 1
        made = super().invoice(customer, issue, due, scenario, copy_of=copy_of, reference=reference)
        self.made.append(made)
        return made

    def free_number(self) -> int:
        """The lowest number not used yet: the book numbers without gaps below its reservations."""
        number = 1
        while number in self.used:
            number += 1
        return number

    def reserve(self, low: int, high: int, test: Callable[[int], bool] = lambda n: True) -> int:
        """A number not used yet between `low` and `high`, for which `test` holds."""
        while True:
            number = self.rng.randint(low, high)
            if number not in self.used and test(number):
                self.used.add(number)
                return number

    def record(self, kind: str, *, expected: Expected | None = None, **details: Any) -> None:
        """The `Book`'s truth of a payment, labelled with the trap and what a clerk would do."""
        super().record(kind, **details)
        payment = self.truth["payments"][-1]
        payment["trap"] = self.trap
        payment["expected"] = expected or expected_of(payment)

    def open_invoice(self, customer: Customer, **options: Any) -> Invoice:
        issue, due, _ = self.open_dates(customer.terms)
        return self.invoice(customer, issue, due, self.trap, **options)

    def paid_on(self, *invoices: Invoice) -> datetime:
        """A moment after the newest of `invoices` was issued, before today."""
        start = max(i.issue for i in invoices) + timedelta(days=1)
        return self.moment(self.day_between(start, self.today - timedelta(days=1)))

    def pay_by_link(
        self,
        payer: Customer,
        allocations: list[tuple[Invoice, Decimal]],
        text: str,
        *,
        amount: Decimal | None = None,
        expected: Expected | None = None,
        candidates: list[Invoice] | None = None,
    ) -> dict[str, Any]:
        """A card payment through a payment link (tied to no Stripe invoice), with its truth."""
        invoices = [i for i, _ in allocations] or candidates or []
        when = self.paid_on(*invoices)
        total = amount if amount is not None else sum((a for _, a in allocations), Decimal(0))
        charge = self.charge(payer, total, when, text)
        for invoice in invoices:
            self.touch(invoice, when)
        self.record(
            self.trap,
            method="card",
            amount=total,
            currency=payer.currency,
            when=when,
            remittance=text,
            allocations=allocations,
            charge=charge,
            expected=expected,
            candidates=candidates,
        )
        return charge

    def describe(self, invoice: Invoice, text: str) -> None:
        """The invoice's (first) line says `text`, in Xero and in Stripe."""
        invoice.xero["LineItems"][0]["Description"] = text
        if invoice.stripe is not None:
            invoice.stripe["lines"]["data"][0]["description"] = text

    def choose(self, forms: tuple[str, ...]) -> str:
        """A remittance form: each trap goes through its forms in turn first, then draws."""
        return self.form(f"{self.trap}/{len(forms)}", forms)

    # -- a named invoice lost to an amount ------------------------------------------------------

    def trap_named_related_invoice(self, currency: str) -> None:
        """The parent names a subsidiary's invoice; its own open invoice has the same balance."""
        parent, (sub,) = self.family(currency, 1)
        named = self.open_invoice(sub)
        self.invoice(parent, named.issue + timedelta(days=3), named.due + timedelta(days=3), self.trap, copy_of=named)
        text = self.choose((named.text, f"Payment {named.text}", f"{named.text} {sub.name}", f"inv {named.number}"))
        self.pay_by_link(parent, [(named, named.total)], text)

    def trap_duplicate_of_paid(self, currency: str) -> None:
        """Paid twice; the duplicate names the paid invoice while next month's has the same amount."""
        c = self.person(currency)
        issue = self.today - timedelta(days=self.rng.randint(45, 80))
        paid = self.invoice(c, issue, issue + timedelta(days=c.terms), self.trap)
        later = self.invoice(
            c, issue + timedelta(days=30), issue + timedelta(days=30 + c.terms), self.trap, copy_of=paid
        )
        when = self.moment(issue + timedelta(days=self.rng.randint(5, 12)))
        self.trap = ORDINARY
        paid_in_full: dict[str, Any] = {"amount": paid.total, "currency": currency, "when": when}
        if self.rng.random() < 0.5:
            text = self.remit(paid)
            xero_id = self.xero_pay(paid, paid.total, when, text)
            self.record(
                "bank_full",
                method="bank_transfer",
                remittance=text,
                allocations=[(paid, paid.total)],
                xero_ids=[xero_id],
                **paid_in_full,
            )
        else:
            charge = self.charge(c, paid.total, when, "Payment for Invoice", invoice=paid)
            self.stripe_paid(paid, when, charge)
            self.touch(paid, when)
            text = charge["description"]
            self.record(
                "card_invoice",
                method="card",
                remittance=text,
                allocations=[(paid, paid.total)],
                charge=charge,
                **paid_in_full,
            )
        self.trap = "duplicate_of_paid"
        text = self.choose((paid.text, f"Payment {paid.text}", f"Invoice #{paid.number}", f"{paid.text} thank you"))
        self.pay_by_link(c, [], text, amount=paid.total, expected="credit", candidates=[later])
        self.truth["payments"][-1]["candidates"] = None

    def trap_cross_currency(self, currency: str) -> None:
        """Euros naming an invoice of another currency while a euro invoice of that amount is open."""
        c = self.person("USD" if currency == "EUR" else currency)
        named = self.open_invoice(c)
        euros = replace(c, currency="EUR", stripe=None)  # Stripe locks a customer to one currency
        lookalike = self.open_invoice(euros)
        text = self.choose((named.text, f"Payment {named.text}", f"Invoice {named.text}"))
        when = self.paid_on(named, lookalike)
        charge = self.charge(replace(c, currency="EUR"), lookalike.total, when, text)
        self.record(
            self.trap,
            method="card",
            amount=lookalike.total,
            currency="EUR",
            when=when,
            remittance=text,
            allocations=[],
            charge=charge,
            expected="propose",
            candidates=[named],
        )
        # The payer meant the named invoice; what it is worth in the invoice's currency is for
        # a person to settle, so the truth keeps the amount as paid, in euros.
        payment = self.truth["payments"][-1]
        payment["unallocated"] = shapes.decimal_text(Decimal(0), "EUR")
        payment["allocations"] = [
            {
                "xero_invoice_id": named.xero["InvoiceID"],
                "invoice_number": named.text,
                "stripe_invoice_id": named.stripe["id"] if named.stripe else None,
                "amount": payment["amount"],
                "currency": "EUR",
            }
        ]

    # -- an amount lost to a typo ---------------------------------------------------------------

    def trap_amount_typo(self, currency: str) -> None:
        """The number has two digits swapped; the amount is exactly another open invoice's."""
        right = self.reserve(102, 299, lambda n: _swap(n) != n and _swap(n) not in self.used)
        c = self.person(currency)
        meant = self.open_invoice(c, number=right)
        owner = c if self.rng.random() < 0.6 else self.person(currency)
        typed = self.open_invoice(owner, number=_swap(right))
        text = self.choose((typed.text, f"Payment {typed.text}", f"inv {typed.number}"))
        self.pay_by_link(c, [(meant, meant.total)], text, expected="propose", candidates=[meant, typed])

    # -- numbers that are not invoice numbers ---------------------------------------------------

    def trap_period_not_number(self, currency: str) -> None:
        """A quarter in the text ("Q3") while INV-0003 exists; the amount is the payer's one invoice."""
        c = self.person(currency)
        quarter = self.rng.randint(1, 4)
        months = [calendar.month_abbr[3 * quarter - k] for k in (2, 1, 0)]
        invoice = self.open_invoice(c)
        self.describe(invoice, f"Subscription Q{quarter} ({months[0]}-{months[2]})")
        self.open_invoice(c)
        text = self.choose(
            (
                f"Q{quarter} subscription ({months[0]}-{months[2]})",
                f"Q{quarter} {self.today.year} subscription",
                f"Subscription Q{quarter} {months[0]} - {months[2]}",
            )
        )
        self.pay_by_link(c, [(invoice, invoice.total)], text)

    def trap_percent_not_number(self, currency: str) -> None:
        """ "50% deposit": a part payment; the rest of the text, or only the amount, says of what."""
        c = self.person(currency)
        invoice = self.open_invoice(c)
        percent = self.rng.choice((50, 30, 25, 40))
        amount = quantize(invoice.total * percent / 100, currency)
        if self.rng.random() < 0.5:
            text = self.choose(
                (f"{percent}% deposit {invoice.text}", f"Deposit {percent}% for invoice {invoice.number}")
            )
            self.pay_by_link(c, [(invoice, amount)], text)
        else:
            text = self.choose((f"{percent}% deposit", f"{percent} % down payment", f"deposit {percent}%"))
            self.pay_by_link(c, [(invoice, amount)], text, expected="propose", candidates=[invoice])

    def trap_po_not_number(self, currency: str) -> None:
        """ "PO#2026-0214" is the invoice's Reference; INV-0214 is another open invoice."""
        c = self.person(currency)
        decoy = self.reserve(100, 299)
        po = f"{self.today.year}-{decoy:04d}"
        invoice = self.open_invoice(c, reference=f"PO {po}")
        self.open_invoice(c if self.rng.random() < 0.5 else self.person(currency), number=decoy)
        text = self.choose((f"PO#{po}", f"PO {po}", f"Our PO {po}", f"P.O. {po}"))
        self.pay_by_link(c, [(invoice, invoice.total)], text)

    # -- money that did not stay ----------------------------------------------------------------

    def paid_by_invoice_charge(self, c: Customer) -> tuple[Invoice, dict[str, Any]]:
        """An invoice paid by card through Stripe in the last weeks, not yet in the ledger."""
        issue = self.today - timedelta(days=self.rng.randint(25, 40))
        invoice = self.invoice(c, issue, issue + timedelta(days=c.terms), self.trap)
        when = self.moment(issue + timedelta(days=self.rng.randint(1, 6)))
        charge = self.charge(c, invoice.total, when, "Payment for Invoice", invoice=invoice)
        self.stripe_paid(invoice, when, charge)
        self.touch(invoice, when)
        return invoice, charge

    def dispute(self, charge: dict[str, Any], status: str) -> None:
        """A chargeback opened days after the payment and closed `status` before today."""
        currency = charge["currency"].upper()
        opened = shapes.at(self.today, 0) - timedelta(days=self.rng.randint(12, 18), hours=self.rng.randint(1, 9))
        closed = opened + timedelta(days=self.rng.randint(4, 10))
        dispute_id = self.ids.stripe("dp_1", 23)
        moves = [(opened, -charge["amount"], _DISPUTE_FEE[currency], "dispute", "Chargeback withdrawal")]
        if status == "won":
            moves.append((closed, charge["amount"], 0, "dispute_reversal", "Chargeback reversal"))
        txns = []
        for when, amount, fee, category, description in moves:
            self.balance(
                self.ids.stripe("txn_1", 23),
                amount,
                fee,
                currency,
                when,
                "adjustment",
                dispute_id,
                f"{description} for {charge['id']}",
            )
            txn = self.stripe["balance_transactions"][-1]
            txn["reporting_category"] = category
            txns.append(txn)
        charge["disputed"] = True
        dispute = shapes.stripe_dispute(
            dispute_id,
            charge=charge,
            status=status,
            reason=self.rng.choice(("fraudulent", "product_not_received", "duplicate", "general")),
            created=epoch(opened),
            balance_transactions=txns,
        )
        self.stripe["disputes"].append(dispute)
        self.note_recent("charge.dispute.created", epoch(opened), dispute)
        self.note_recent("charge.dispute.closed", epoch(closed), dispute)

    def trap_dispute_lost(self, currency: str) -> None:
        """Paid by card, then a chargeback lost: the money is gone and the invoice open again."""
        c = self.person(currency)
        invoice, charge = self.paid_by_invoice_charge(c)
        self.dispute(charge, "lost")
        self.record_charge(c, charge, [], refunded=invoice.total)

    def trap_dispute_won(self, currency: str) -> None:
        """A chargeback won: the money came back and the payment stays applied."""
        c = self.person(currency)
        invoice, charge = self.paid_by_invoice_charge(c)
        self.dispute(charge, "won")
        self.record_charge(c, charge, [(invoice, invoice.total)])

    def record_charge(
        self,
        c: Customer,
        charge: dict[str, Any],
        allocations: list[tuple[Invoice, Decimal]],
        *,
        refunded: Decimal = Decimal(0),
    ) -> None:
        amount = Decimal(charge["amount"]).scaleb(-currency_exponent(c.currency))
        self.record(
            self.trap,
            method="card",
            amount=amount,
            currency=c.currency,
            when=shapes.at(date(1970, 1, 1), charge["created"]),
            remittance=charge["description"],
            allocations=allocations,
            charge=charge,
            refunded=refunded,
        )

    def trap_charge_failed(self, currency: str) -> None:
        """A declined card payment naming an open invoice: nothing was paid."""
        c = self.person(currency)
        assert c.stripe is not None
        invoice = self.open_invoice(c)
        when = self.paid_on(invoice)
        charge = shapes.stripe_charge(
            self.ids,
            self.rng,
            amount=minor(invoice.total, currency),
            currency=currency,
            created=epoch(when),
            customer=c.stripe,
            description=self.remit(invoice),
            invoice_id=None,
            metadata={},
            balance_transaction="",
        )
        intent = shapes.stripe_payment_intent(charge)
        shapes.stripe_charge_failed(charge, intent)
        self.stripe["charges"].append(charge)
        self.stripe["payment_intents"].append(intent)
        self.note_recent("charge.failed", epoch(when), charge)
        self.record_charge(c, charge, [], refunded=invoice.total)

    def trap_refunded_in_full(self, currency: str) -> None:
        """Paid through a link naming an open invoice, then refunded in full: the invoice stays open."""
        c = self.person(currency)
        invoice = self.open_invoice(c)
        when = self.paid_on(invoice)
        charge = self.charge(c, invoice.total, when, self.remit(invoice))
        self.touch(invoice, when)
        self.refund(charge, charge["amount"], min(when + timedelta(days=1), self.now), "requested_by_customer")
        self.record_charge(c, charge, [], refunded=invoice.total)

    # -- proposals: what a person settles -------------------------------------------------------

    def trap_parent_pays_pair(self, currency: str) -> None:
        """The parent pays one invoice of each of two subsidiaries in one payment."""
        parent, subs = self.family(currency, 2)
        pair = [self.open_invoice(sub) for sub in subs]
        if self.rng.random() < 0.5:
            text = self.choose((f"{pair[0].text} + {pair[1].text}", f"Invoices {pair[0].number} and {pair[1].number}"))
            self.pay_by_link(parent, [(i, i.total) for i in pair], text)
        else:
            text = self.choose(("Group settlement", f"{parent.name} for subsidiaries", "Payment on behalf of group"))
            self.pay_by_link(parent, [(i, i.total) for i in pair], text, expected="propose", candidates=pair)

    def trap_monthly_subscriptions(self, currency: str) -> None:
        """Six equal monthly invoices, five paid, each payment naming its month."""
        c = self.person(currency)
        first_month = _add_months(self.today.replace(day=1), -6)
        invoices: list[Invoice] = []
        for k in range(6):
            issue = _add_months(first_month, k)
            made = self.invoice(
                c, issue, issue + timedelta(days=c.terms), self.trap, copy_of=invoices[0] if invoices else None
            )
            self.describe(made, f"Subscription {calendar.month_name[issue.month]} {issue.year}")
            invoices.append(made)
        for invoice in invoices[:5]:
            month, year = calendar.month_name[invoice.issue.month], invoice.issue.year
            text = self.choose(
                (
                    f"{month} subscription",
                    f"Subscription {month} {year}",
                    f"{month[:3]} {year} subscription",
                    f"subscription for {month}",
                )
            )
            when = self.moment(invoice.issue + timedelta(days=self.rng.randint(3, 20)))
            charge = self.charge(c, invoice.total, when, text)
            self.touch(invoice, when)
            self.record(
                self.trap,
                method="card",
                amount=invoice.total,
                currency=currency,
                when=when,
                remittance=text,
                allocations=[(invoice, invoice.total)],
                charge=charge,
                expected="propose",
                candidates=[invoice],
            )

    def trap_range_or_list(self, currency: str) -> None:
        """Consecutive invoices paid at once, named as a range or a list ("INV-0042-45", "42 bis 45")."""
        c = self.person(currency)
        count = self.rng.choice((3, 4))
        start = next(n for n in itertools.count(10) if _room(n, count, self.used))
        invoices = [self.open_invoice(c, number=start + k) for k in range(count)]
        a, b = invoices[0].number, invoices[-1].number
        listed = ", ".join(str(i.number) for i in invoices[:-1]) + f" & {b}"
        text = self.choose(
            (f"INV-{a:04d}-{b % 100:02d}", f"{a} to {b}", f"{a} bis {b}", listed, f"INV-{a:04d} to INV-{b:04d}")
        )
        self.pay_by_link(c, [(i, i.total) for i in invoices], text)

    def trap_short_by_bank_fee(self, currency: str) -> None:
        """Several named invoices paid at once, short by the bank's fee."""
        c = self.person(currency)
        invoices = [self.open_invoice(c) for _ in range(self.rng.choice((2, 3)))]
        low, high = _BANK_FEE[currency]
        fee = Decimal(self.rng.randint(low, high))
        if currency == "JPY":
            fee *= 100
        text = self.choose(
            (", ".join(i.text for i in invoices), " ".join(i.text for i in invoices) + " less bank charges")
        )
        shares = [(i, i.total) for i in invoices[:-1]] + [(invoices[-1], invoices[-1].total - fee)]
        self.pay_by_link(c, shares, text, expected="propose", candidates=invoices)

    def trap_gateway_number(self, currency: str) -> None:
        """The remittance quotes Stripe's own invoice number ("3F1A2B9C-0002"), not the ledger's."""
        c = self.person(currency)
        assert c.stripe is not None
        invoices = [self.open_invoice(c) for _ in range(self.rng.randint(1, 3))]
        for sequence, invoice in enumerate(invoices, start=1):
            assert invoice.stripe is not None
            invoice.stripe["number"] = f"{c.stripe['invoice_prefix']}-{sequence:04d}"
            invoice.stripe["metadata"] = {"xero_invoice_id": invoice.xero["InvoiceID"]}
            invoice.stripe_link = "metadata"
        c.stripe["next_invoice_sequence"] = len(invoices) + 1
        target = self.rng.choice(invoices)
        assert target.stripe is not None
        number = target.stripe["number"]
        text = self.choose((number, f"Invoice {number}", f"Payment {number}", f"#{number}"))
        self.pay_by_link(c, [(target, target.total)], text)

    def trap_zeros_and_hash(self, currency: str) -> None:
        """The invoice number with other padding and a hash: "#42", "Inv #00042", "INV 042"."""
        c = self.person(currency)
        invoice = self.open_invoice(c)
        n = invoice.number
        text = self.choose((f"#{n}", f"Inv #{n:05d}", f"INV {n:03d}", f"Invoice no. {n:04d}", f"invoice#{n:06d}"))
        self.pay_by_link(c, [(invoice, invoice.total)], text)


def _swap(number: int) -> int:
    """`number` with its last two digits swapped (0210 -> 0201): a typist's slip."""
    tens, units = number // 10 % 10, number % 10
    return number - tens * 10 - units + units * 10 + tens


def _room(start: int, count: int, used: set[int]) -> bool:
    """`count` unused numbers from `start` within one hundred, two digits each ("42 to 45")."""
    return 10 <= start % 100 <= 100 - count and not any(n in used for n in range(start, start + count))


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    return day.replace(year=day.year + month // 12, month=month % 12 + 1)
