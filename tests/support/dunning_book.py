"""A small hand-made book for the dunning engine tests: a Xero ledger and a HubSpot CRM
configured (never called: nothing here sends), records stored as a sync would store them."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from connector.config import Config, load_config
from connector.model import Customer, Invoice, Ref
from connector.money import Money
from connector.state import outbox
from connector.state.store import Store, open_store

# Credentials are literal and never used (nothing is sent); each is a distinctive string,
# because every secret loaded is masked process-wide wherever it later appears.
CONFIG = """
[database]
url = "sqlite:///{database}"

[connections.ledger]
provider = "xero"
base_url = "http://127.0.0.1:9/xero"
token_url = "http://127.0.0.1:9/xero/token"
tenant_id = "tenant"
client_id = "client"
client_secret = "dunning-book-client-secret-0001"
refresh_token = "dunning-book-refresh-token-0001"

[connections.crm]
provider = "hubspot"
base_url = "http://127.0.0.1:9/hubspot"
access_token = "pat-dunning-book-0001"
{extra}"""


class Book:
    def __init__(self, directory: Path, extra: str = "") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.config_path = directory / "connector.toml"
        self.config_path.write_text(CONFIG.format(database=directory / "state.db", extra=extra))
        self.config: Config = load_config(str(self.config_path))
        self.store: Store = open_store(self.config.database_url)

    def customer(self, id_: str, name: str, *, crm: bool = True, paused: bool = False) -> None:
        ledger = Customer(id=id_, name=name, refs=[Ref(system="ledger", object_type="customer", remote_id=f"X-{id_}")])
        self.store.store_page("ledger", "contacts", "customer", [ledger], None, rank=3)
        if crm:
            company = Customer(
                id=id_, name=name, paused=paused, refs=[Ref(system="crm", object_type="customer", remote_id=f"H-{id_}")]
            )
            self.store.store_page("crm", "companies", "customer", [company], None, rank=1)

    def invoice(
        self,
        number: str,
        customer: str,
        total: str,
        due: date,
        *,
        paid: str = "0",
        currency: str = "USD",
        deal: dict[str, Any] | None = None,
        plan_words: str | None = None,
        **ledger: Any,
    ) -> str:
        """A Xero invoice, and a HubSpot deal for it when `deal` (its canonical fields) or
        `plan_words` is given; returns the invoice's id."""
        money = lambda v: Money.of(v, currency)  # noqa: E731
        id_ = number.lower()
        base: dict[str, Any] = dict(
            id=id_,
            number=number,
            customer_id=customer,
            currency=currency,
            issue_date=due - timedelta(days=30),
            due_date=due,
            subtotal=money(total),
            tax=money("0"),
            total=money(total),
            amount_paid=money(paid),
            amount_credited=money("0"),
        )
        record = Invoice(**base, **ledger, refs=[Ref(system="ledger", object_type="invoice", remote_id=f"X-{number}")])
        self.store.store_page("ledger", "invoices", "invoice", [record], None, rank=3)
        if deal is not None or plan_words is not None:
            crm = Invoice(
                **{**base, "number": None, "due_date": None},
                **(deal or {}),
                refs=[Ref(system="crm", object_type="deal", remote_id=f"D-{number}")],
            )
            hints = {"invoice_number": number} | ({"payment_plan": plan_words} if plan_words else {})
            self.store.store_page(
                "crm",
                "deals",
                "invoice",
                [crm],
                None,
                rank=1,
                extras={f"D-{number}": {"links": {"customer": f"H-{customer}"}, "hints": hints}},
            )
        return id_

    def actions(self, **where: Any) -> list[outbox.OutboxEntry]:
        with self.store.session() as session:
            found = outbox.entries(session)
        return [e for e in found if all(e.action.payload.get(k) == v for k, v in where.items())]

    def send(self, entries: list[outbox.OutboxEntry]) -> None:
        """What `connector apply` does once the provider answered: claim, then done."""
        from datetime import timedelta as lease

        wanted = {e.id for e in entries}
        with self.store.session() as session:
            claimed = outbox.claim(session, "test-worker", lease=lease(minutes=5), limit=1000)
            for entry in claimed:
                if entry.id in wanted:
                    outbox.complete(session, entry.id, "test-worker", {"ok": True})
                else:
                    outbox.set_state(session, entry.id, "planned", from_states=("in_flight",))
