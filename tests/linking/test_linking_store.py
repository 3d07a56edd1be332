"""The link pass over what is stored: the same stored views give the same links whatever the
order they arrived in, a late contact repairs its invoices' links, the most trusted system's
word fills a missing customer, and a CRM deal alone is never a receivable."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from connector.config import Config, load_config
from connector.linking import run as linking_run
from connector.linking.relations import customer_names, facts_of, load_related, related_customers
from connector.linking.run import link_all, link_book, unlinked_deals
from connector.model import CreditNote, Customer, Invoice, Ref
from connector.money import Money
from connector.state.linking import ref_views
from connector.state.store import Store, open_store
from connector.state.tables import table
from support.databases import pg_engine_in_temporary_schema, postgres_url_or_fail

CONFIG = """
[connections.ledger]
provider = "xero"
base_url = "http://127.0.0.1:9/xero"
token_url = "http://127.0.0.1:9/xero/oauth/token"
tenant_id = "tenant"
client_id = "id"
client_secret = "secret"
refresh_token = "refresh"

[connections.crm]
provider = "hubspot"
base_url = "http://127.0.0.1:9/hubspot"
token_url = "http://127.0.0.1:9/hubspot/oauth/token"
client_id = "id"
client_secret = "secret"
refresh_token = "refresh"
"""
KINDS = {"ledger": ("ledger", 3), "crm": ("crm", 1)}


@pytest.fixture
def config(tmp_path) -> Config:
    path = tmp_path / "connector.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "state.db"}"\n' + CONFIG)
    return load_config(str(path))


def new_store(config: Config, tmp_path, name: str) -> Store:
    return open_store(f"sqlite:///{tmp_path / name}.db")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, config) -> Iterator[Store]:
    """The book on SQLite and on PostgreSQL: what is a receivable is read from JSON views."""
    if request.param == "sqlite":
        opened = open_store(config.database_url)
        yield opened
        opened.close()
        return
    with pg_engine_in_temporary_schema(postgres_url_or_fail()) as engine:
        opened = open_store(engine)
        yield opened


def contact(system: str, remote: str, name: str, email: str) -> Customer:
    return Customer(name=name, emails=[email], refs=[Ref(system=system, object_type="customer", remote_id=remote)])


def bill(system: str, object_type: str, remote: str, total: str, number: str | None = None) -> Invoice:
    money = Money.of(total, "EUR")
    return Invoice(
        number=number,
        currency="EUR",
        issue_date=date(2026, 10, 1),
        due_date=date(2026, 10, 31),
        subtotal=money,
        tax=Money.zero("EUR"),
        total=money,
        amount_paid=Money.zero("EUR"),
        amount_credited=Money.zero("EUR"),
        status="open",
        refs=[Ref(system=system, object_type=object_type, remote_id=remote)],  # type: ignore[arg-type]
    )


def put(store: Store, system: str, kind: str, record: Any, links=None, hints=None) -> None:
    """Store one record as a sync does: its view, with what the mapping learnt beside it."""
    remote = record.refs[0].remote_id
    extras = {remote: {"links": links or {}, "hints": hints or {}, "deleted": False, "kind": KINDS[system][0]}}
    store.store_page(system, f"{kind}s", kind, [record], None, extras=extras, rank=KINDS[system][1])


# The book: Xero's contact and invoice, HubSpot's company and a deal that names the invoice.
BOOK = {
    "xero_contact": ("ledger", "customer", contact("ledger", "X-C1", "Acme Ltd", "ap@acme.example"), {}, {}),
    "xero_invoice": (
        "ledger",
        "invoice",
        bill("ledger", "invoice", "X-I1", "1200.00", "INV-0042"),
        {"customer": "X-C1"},
        {"invoice_number": "INV-0042"},
    ),
    "hubspot_company": ("crm", "customer", contact("crm", "H-C1", "Acme Holdings", "ceo@holdings.example"), {}, {}),
    "hubspot_deal": (
        "crm",
        "invoice",
        bill("crm", "deal", "H-D1", "1200.00"),
        {"customer": "H-C1"},
        {"deal_name": "Acme Ltd - INV-0042", "currency_code": "EUR"},
    ),
    "hubspot_lone_deal": (
        "crm",
        "invoice",
        bill("crm", "deal", "H-D2", "800.00"),
        {},
        {"deal_name": "Acme Ltd - INV-0099", "currency_code": "EUR"},
    ),
}


def sync_in(store: Store, order: list[str]) -> None:
    for key in order:
        system, kind, record, links, hints = BOOK[key]
        put(store, system, kind, record, links, hints)


def outcome(store: Store) -> dict[str, Any]:
    """What the book says, without our generated ids: each receivable by its systems' ids."""
    customers = {c.id: sorted(r.remote_id for r in c.refs) for c in store.list_customers()}
    return {
        "receivables": sorted(
            (sorted(r.remote_id for r in i.refs), customers.get(i.customer_id or ""), str(i.total.amount))
            for i in store.list_receivables()
        ),
        "invoices": len(store.list_invoices()),
    }


def test_invoices_stored_before_their_contacts_link_alike_and_the_ledger_fills_the_customer(config, tmp_path):
    first = new_store(config, tmp_path, "contacts_first")
    later = new_store(config, tmp_path, "invoices_first")
    try:
        sync_in(first, list(BOOK))
        link_all(config, first)
        # streams completed the other way round: invoices and deals before contacts and companies
        sync_in(later, ["hubspot_lone_deal", "hubspot_deal", "xero_invoice"])
        link_all(config, later)
        sync_in(later, ["hubspot_company", "xero_contact"])  # the late contacts of an incremental sync
        link_all(config, later)
        assert outcome(first) == outcome(later)
        [(refs, customer, total)] = outcome(later)["receivables"]
        assert refs == ["H-D1", "X-I1"] and total == "1200.00"
        # HubSpot ("crm") sorts before Xero ("ledger"); the ledger's word is the one taken
        assert customer == ["X-C1"]
    finally:
        first.close()
        later.close()


def test_a_deal_alone_is_no_receivable_and_is_listed_as_unlinked(config, store):
    sync_in(store, list(BOOK))
    link_all(config, store)
    assert [i.refs[0].remote_id for i in store.list_receivables()] in (["X-I1"], ["H-D1"])
    assert len(store.list_receivables()) == 1 and len(store.list_invoices()) == 2
    [lone] = unlinked_deals(config, store)
    assert (lone.remote_id, lone.name, lone.amount, lone.currency) == (
        "H-D2",
        "Acme Ltd - INV-0099",
        Decimal("800.00"),
        "EUR",
    )
    assert "no receivable has" in lone.reason


def test_a_book_stored_before_views_carried_their_kind_is_stamped_by_the_next_link_pass(config, store):
    for key in BOOK:
        system, kind, record, links, hints = BOOK[key]
        remote = record.refs[0].remote_id
        extras = {remote: {"links": links, "hints": hints, "deleted": False}}  # no "kind": an older sync
        store.store_page(system, f"{kind}s", kind, [record], None, extras=extras, rank=KINDS[system][1])
    assert len(store.list_receivables()) == 3  # nothing tells a deal from an invoice yet
    link_all(config, store)
    assert len(store.list_receivables()) == 1


def test_a_crm_view_never_overwrites_the_ledgers_fields_whatever_arrives_last(config, store):
    sync_in(store, list(BOOK))
    link_all(config, store)
    # the deal changes after the link: its amount is not the invoice's
    system, kind, record, links, hints = BOOK["hubspot_deal"]
    changed = bill("crm", "deal", "H-D1", "1.00")
    put(store, system, kind, changed, links, hints)
    [receivable] = store.list_receivables()
    assert receivable.total == Money.of("1200.00", "EUR") and receivable.number == "INV-0042"


def test_related_customers_and_their_names_load_from_the_stored_views(config, store):
    put(store, "ledger", "customer", contact("ledger", "X-1", "Acme Ltd", "ap@acme-group.example"))
    put(store, "ledger", "customer", contact("ledger", "X-2", "Acme Trading", "billing@acme-group.example"))
    put(store, "ledger", "customer", contact("ledger", "X-3", "Jo Bloggs", "jo@gmail.com"))
    put(store, "crm", "customer", contact("crm", "H-1", "Solo Inc", "jo.2@gmail.com"))
    names = customer_names(store)
    by_name = {name: entity for entity, name in names.items()}
    related = load_related(store)
    assert related[by_name["Acme Ltd"]] == {by_name["Acme Trading"]}
    assert related[by_name["Jo Bloggs"]] == frozenset() and related[by_name["Solo Inc"]] == frozenset()


def test_related_customers_read_from_a_few_fields_are_those_of_the_whole_views(config, store):
    """`load_related` has the database extract the fields relations read (`RELATION_FIELDS`):
    the same relations as every customer view decoded whole, through each kind of fact (a
    shared email domain, a hinted email, a contact group, a parent company)."""
    for system, remote, name, email, hints in [
        ("ledger", "X-1", "Acme Ltd", "ap@acme-group.example", {}),
        ("ledger", "X-2", "Acme Trading", "billing@acme-group.example", {}),
        ("ledger", "X-3", "Jo Bloggs", "jo@gmail.com", {"contact_groups": ["Key"]}),
        ("ledger", "X-4", "Jo Two", "jo2@gmail.com", {"contact_groups": ["Key"]}),
        ("crm", "H-1", "Solo Inc", "solo@gmail.com", {"parent_company_id": "H-2"}),
        ("crm", "H-2", "Solo Holdings", "x@gmail.com", {"email": "b@solo.example"}),
        ("crm", "H-3", "Solo Sub", "y@gmail.com", {"email": "c@solo.example"}),
    ]:
        put(store, system, "customer", contact(system, remote, name, email), hints=hints)
    with store.session() as session:
        whole = related_customers([facts_of(row) for row in ref_views(session, "customer")])
    related = load_related(store)
    assert related == whole
    by_name = {name: entity for entity, name in customer_names(store).items()}
    assert by_name["Acme Trading"] in related[by_name["Acme Ltd"]]
    assert by_name["Jo Two"] in related[by_name["Jo Bloggs"]]
    assert by_name["Solo Holdings"] in related[by_name["Solo Inc"]]
    assert by_name["Solo Sub"] in related[by_name["Solo Holdings"]]


def test_a_pass_after_the_keys_went_links_the_whole_book(config, store, monkeypatch):
    """A link mark without keys (a downgrade and an upgrade again emptied them): a pass over
    what changed would find no neighbour for the deal stored now, so the whole book is linked."""
    sync_in(store, ["xero_contact", "xero_invoice"])
    first = link_book(config, store)
    assert first.moved is None  # the first pass links (and keys) the whole book
    with store.session() as session:
        session.execute(sa.delete(table("link_keys")))
        session.execute(sa.delete(table("link_key_sets")))
    sync_in(store, ["hubspot_deal"])
    again = link_book(config, store)
    assert again.moved is None
    assert again.counts()["invoice"] == 1  # the deal found the invoice it names
    [(refs, _, _)] = outcome(store)["receivables"]
    assert refs == ["H-D1", "X-I1"]


def test_a_pass_links_what_changed_unless_much_of_the_book_did(config, store, monkeypatch):
    sync_in(store, ["xero_contact", "xero_invoice", "hubspot_company"])
    link_book(config, store)
    sync_in(store, ["hubspot_deal"])
    small = link_book(config, store)
    assert small.moved is not None and small.counts()["invoice"] == 1
    assert len(small.moved["invoice"]) == 1  # the deal and the invoice it names: one record now
    monkeypatch.setattr(linking_run, "WHOLE_BOOK_FROM", 0)
    sync_in(store, ["hubspot_lone_deal"])  # one view of 6: more than 5 % of the book
    assert link_book(config, store).moved is None
    assert link_book(config, store, full=True).moved is None


def test_the_pass_after_a_whole_book_pass_reads_none_of_the_views_it_keyed(config, store, monkeypatch):
    """A first sync shorter than the look-back stored every view within it: the pass after the
    whole-book pass must not take them all for changed (the tick after a first sync linked the
    large book whole again), since each was keyed as it is now."""
    sync_in(store, ["xero_contact", "xero_invoice", "hubspot_company"])
    # a credit note, of a kind no pass links or keys, beside them: never "changed since keyed"
    note = CreditNote(
        number="CN-1",
        currency="EUR",
        issue_date=date(2026, 10, 2),
        total=Money.of("100.00", "EUR"),
        remaining=Money.of("100.00", "EUR"),
        status="open",
        refs=[Ref(system="ledger", object_type="credit_note", remote_id="X-CN1")],
    )
    store.store_page(
        "ledger", "credit_notes", "credit_note", [note], None, rank=3, extras={"X-CN1": {"kind": "ledger"}}
    )
    monkeypatch.setattr(linking_run, "WHOLE_BOOK_FROM", 0)  # a book this small: any share counts
    assert link_book(config, store).moved is None  # the first pass: the whole book
    again = link_book(config, store)
    assert again.moved == {"customer": set(), "invoice": set(), "payment": set()}
    monkeypatch.undo()
    sync_in(store, ["hubspot_deal"])
    after = link_book(config, store)
    assert after.moved is not None and len(after.moved["invoice"]) == 1  # the deal and its invoice
    assert after.moved["customer"] == set()


def test_a_view_stored_again_with_an_earlier_time_is_linked_again(config, store):
    """A page another worker committed after a pass read the view, its time taken before that
    pass began: another version of the view than the one keyed, so the next pass links it,
    whatever its time says."""
    system, kind, _, links, _ = BOOK["xero_invoice"]
    put(store, system, kind, bill("ledger", "invoice", "X-I1", "1300.00", "INV-0099"), links, {})
    sync_in(store, ["xero_contact", "hubspot_company", "hubspot_deal"])
    link_book(config, store)
    assert [refs for refs, _, _ in outcome(store)["receivables"]] == [["X-I1"]]  # the deal names INV-0042
    # the ledger renumbers its invoice to the number the deal names; its page's time is the
    # deal's, stored last before the pass began
    sync_in(store, ["xero_invoice"])
    refs = table("refs")
    with store.session() as session:
        deal_stored = session.execute(sa.select(refs.c.changed_at).where(refs.c.remote_id == "H-D1")).scalar_one()
        session.execute(sa.update(refs).where(refs.c.remote_id == "X-I1").values(changed_at=deal_stored))
    after = link_book(config, store)
    assert after.moved is not None and len(after.moved["invoice"]) == 1
    assert [refs for refs, _, _ in outcome(store)["receivables"]] == [["H-D1", "X-I1"]]
