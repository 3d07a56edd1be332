"""The reads and writes the engine and the CLI ask the store for: reminders in the outbox, the
audit log by action or by subject, refs by what a person typed, dangling refs, finance-owned
columns, the outbox by state, and the readiness ping."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from connector.errors import StateError
from connector.model import Action, ActionKind, PaymentPlan
from connector.money import Money
from connector.state import Store, make_engine, outbox, records
from connector.state.bookkeeping import AUDIT_BATCH, audit, audit_entries, audit_entries_about, audit_many, ids_named
from connector.state.records import new_id
from connector.state.reminders import reminder_messages
from support.state_factories import SYSTEM, customer, invoice, payment, ref

LEASE = timedelta(minutes=10)


# Reminders ------------------------------------------------------------------------------


def reminder_action(kind: ActionKind, role: str | None, invoices: object = None, **extra: object) -> Action:
    payload: dict[str, object] = {"dunning_step": 14, "dunning_customer": "c1", "dunning_as_of": "2026-11-20", **extra}
    if role is not None:
        payload["dunning_role"] = role
    if invoices is not None:
        payload["dunning_invoices"] = invoices
    target = ref("x-1") if kind == "send_invoice" else None
    return Action(connection="ledger" if target else "crm", kind=kind, target=target, payload=payload)


def test_reminder_messages_are_the_actions_carrying_a_reminder_with_their_invoice_steps(store: Store) -> None:
    planned = [
        (reminder_action("send_invoice", "message", {"i1": 14, "i2": 7}), "customer", "c1", "email"),
        (reminder_action("create_note", "note", company_id="5"), "customer", "c1", "note beside the email"),
        (reminder_action("create_task", "late_fee", invoice="i1"), "invoice", "i1", "late fee task"),
        (
            Action(connection="crm", kind="create_note", payload={"company_id": "5", "body": "INV-1 disputed"}),
            "customer",
            "c1",
            "finance's note",
        ),
    ]
    with store.session() as session:
        outbox.add_planned(session, planned)
        [message] = reminder_messages(session)
    assert (message.kind, message.state, message.customer, message.step) == ("send_invoice", "planned", "c1", 14)
    assert (message.as_of, message.invoices) == ("2026-11-20", {"i1": 14, "i2": 7})
    assert message.updated_at is not None


def test_reminder_message_state_follows_the_outbox(store: Store) -> None:
    with store.session() as session:
        outbox.add_planned(session, [(reminder_action("create_task", "message", {"i1": 14}), "customer", "c1", "t")])
    with store.session() as session:
        [entry] = outbox.claim(session, "host:1", lease=LEASE, limit=1)
        outbox.complete(session, entry.id, "host:1", {"id": "task-1"})
    with store.session() as session:
        assert [m.state for m in reminder_messages(session)] == ["done"]


def test_reminder_message_listing_invoices_without_steps_names_them_at_its_own_step(store: Store) -> None:
    with store.session() as session:
        outbox.add_planned(session, [(reminder_action("send_invoice", "message", ["i1", "i2"]), "customer", "c1", "e")])
        assert reminder_messages(session)[0].invoices == {"i1": 14, "i2": 14}


# Audit log ------------------------------------------------------------------------------


def test_audit_entries_are_those_of_the_actions_asked_for_by_the_actor_asked_for(store: Store) -> None:
    with store.session() as session:
        audit(session, "dunning", "reminder_skipped", "invoice", "i1", {"code": "disputed"}, "disputed")
        audit(session, "dunning", "reminder", "customer", "c1", {"step": 7}, "text")
        audit(session, "alice", "dispute", "invoice", "i1", {"number": "INV-1"}, None)
        audit(session, "dunning", "reminder_skipped", "invoice", "i2", {"code": "paused"}, "paused")
    with store.session() as session:
        skipped = audit_entries(session, actor="dunning", actions=["reminder_skipped"])
        by_anyone = audit_entries(session, actions=["dispute", "reminder"])
        by_bob = audit_entries(session, actor="bob", actions=["dispute"])
    assert [(e.subject_id, e.inputs) for e in skipped] == [("i1", {"code": "disputed"}), ("i2", {"code": "paused"})]
    assert [(e.actor, e.action) for e in by_anyone] == [("dunning", "reminder"), ("alice", "dispute")]
    assert by_bob == []
    assert skipped[0].id < skipped[1].id and skipped[0].decision == "disputed"


def test_audit_entries_about_a_record_include_those_naming_it_in_their_inputs(store: Store) -> None:
    invoice_id, other_invoice, payment_id, allocation_id = (new_id() for _ in range(4))
    with store.session() as session:
        audit(session, "alice", "dispute", "invoice", invoice_id, {"number": "INV-7"}, None)
        audit(session, "bob", "manual_match", "payment", payment_id, {"invoices": [invoice_id]}, "matched")
        audit(session, "reconcile", "apply", "allocation", allocation_id, {"payment": payment_id}, "applied")
        audit(session, "carol", "dispute", "invoice", other_invoice, {"number": "INV-8"}, None)
        # deep inside, and beside other text: named; a longer hex string holding it: not
        audit(session, "dave", "note", "customer", new_id(), {"seen": {"in": [{"x": invoice_id}]}}, None)
        audit(session, "erin", "note", "customer", new_id(), {"key": f"ar-{invoice_id}abcd"}, None)
        # an allocation's id as the subject of another type of entry is not about the allocation
        audit(session, "frank", "note", "invoice", allocation_id, None, None)
    with store.session() as session:
        about = audit_entries_about(session, [("invoice", invoice_id), ("allocation", allocation_id)], invoice_id)
    assert [(e.actor, e.subject_id) for e in about] == [
        ("alice", invoice_id),
        ("bob", payment_id),
        ("reconcile", allocation_id),
        ("dave", about[3].subject_id),
    ]
    assert about[1].inputs == {"invoices": [invoice_id]}


def test_audit_entries_naming_an_id_given_by_hand_are_those_holding_it_whole(store: Store) -> None:
    """An id not spelt as the store spells its own (given by hand) has no `audit_mentions`:
    the log's text is searched, and only a whole string value names it."""
    with store.session() as session:
        audit(session, "bob", "manual_match", "payment", "pay-1", {"invoices": ["inv-7"]}, "matched")
        audit(session, "bob", "manual_match", "payment", "pay-2", {"invoices": ["inv-70"]}, "matched")
        audit(session, "bob", "note", "payment", "pay-3", {"said": "see inv-7", "inv-7": 1}, None)
        audit(session, "carol", "dispute", "invoice", "inv-7", None, None)
    with store.session() as session:
        about = audit_entries_about(session, [("invoice", "inv-7")], "inv-7")
    assert [(e.actor, e.subject_id) for e in about] == [("bob", "pay-1"), ("carol", "inv-7")]


def test_each_entry_of_a_long_audit_is_found_by_the_id_it_names(store: Store) -> None:
    """A first link audits its links a batch at a time (`AUDIT_BATCH`), each naming the record
    it merged: every entry is found by that record, itself and no other, after entries written
    before it and beside entries naming nothing."""
    with store.session() as session:
        audit(session, "alice", "note", "invoice", new_id(), None)
    merged = [new_id() for _ in range(AUDIT_BATCH + 500)]
    subjects = [new_id() for _ in merged]
    entries = [
        ("invoice", subject, {"merged": gone, "rule": "name"}, None)
        for subject, gone in zip(subjects, merged, strict=True)
    ]
    with store.session() as session:
        audit_many(session, "linker", "link", entries)
        audit(session, "bob", "note", "invoice", new_id(), {"n": 1})
    with store.session() as session:
        for n in (0, AUDIT_BATCH - 1, AUDIT_BATCH, len(merged) - 1):
            [found] = audit_entries_about(session, [], merged[n])
            assert (found.subject_id, found.inputs) == (subjects[n], {"merged": merged[n], "rule": "name"})


def test_an_entry_names_the_record_ids_of_its_inputs_beside_its_subject() -> None:
    subject, named, other = new_id(), new_id(), new_id()
    inputs = {"payment": named, "invoices": [subject, other], "amount": "12.30 USD", "rule": "name", named: 1}
    assert ids_named(inputs, subject) == {named, other}
    assert ids_named({"batch": f"batch-{named}", "key": named.upper(), "n": 7}, None) == set()
    assert ids_named(None, subject) == set()


# Refs and canonical rows ----------------------------------------------------------------


def test_entity_ids_for_a_remote_id_are_those_of_any_system_that_knows_it(store: Store) -> None:
    [ledger] = store.store_page(SYSTEM, "invoices", "invoice", [invoice("SHARED-1")], cursor=None)
    [gateway] = store.store_page(
        "gateway",
        "invoices",
        "invoice",
        [invoice("SHARED-1").model_copy(update={"refs": [ref("SHARED-1", system="gateway")]})],
        cursor=None,
    )
    store.store_page("gateway", "payments", "payment", [payment("SHARED-1")], cursor=None)
    with store.session() as session:
        shared = records.entity_ids_for_remote_id(session, "invoice", "SHARED-1")
        assert shared == sorted([ledger.id, gateway.id], key=str)
        assert records.entity_ids_for_remote_id(session, "invoice", "NOPE") == []


def test_ref_details_tell_how_each_ref_was_linked_and_when_it_was_seen(store: Store) -> None:
    [stored] = store.store_page(SYSTEM, "invoices", "invoice", [invoice("A1")], cursor=None)
    assert stored.id is not None
    with store.session() as session:
        [detail] = records.ref_details(session, "invoice", stored.id)
    assert (detail["system"], detail["object_type"], detail["remote_id"], detail["link_rule"]) == (
        SYSTEM,
        "invoice",
        "A1",
        None,
    )
    assert detail["remote_updated_at"] == ref("A1").remote_updated_at
    assert detail["seen_at"] is not None


def test_a_records_refs_come_in_order_of_system_type_and_remote_id(store: Store) -> None:
    """Whatever order the systems' records were stored in (here not the refs' own order)."""
    zeta = invoice("Z1").model_copy(update={"refs": [ref("Z1", system="zeta")]})
    [first] = store.store_page("zeta", "invoices", "invoice", [zeta], cursor=None)
    assert first.id is not None
    for system, remote_id in (("alpha", "A9"), ("mid", "M1"), ("alpha", "A1")):
        again = invoice(remote_id).model_copy(update={"id": first.id, "refs": [ref(remote_id, system=system)]})
        store.store_page(system, "invoices", "invoice", [again], cursor=None)
    expected = [("alpha", "A1"), ("alpha", "A9"), ("mid", "M1"), ("zeta", "Z1")]
    found = store.get_invoice(first.id)
    assert found is not None and [(r.system, r.remote_id) for r in found.refs] == expected
    [listed] = store.list_invoices(ids=[first.id])
    assert [(r.system, r.remote_id) for r in listed.refs] == expected


def test_dangling_refs_are_unlinked_ones_and_those_whose_record_is_gone(store: Store) -> None:
    [kept] = store.store_page(SYSTEM, "customers", "customer", [customer("C1")], cursor=None)
    [gone] = store.store_page(SYSTEM, "invoices", "invoice", [invoice("A1")], cursor=None)
    store.store_page(SYSTEM, "invoices", "invoice", [invoice("A2")], cursor=None)
    with store.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM invoices WHERE id = :id"), {"id": gone.id})
        connection.execute(sa.text("UPDATE refs SET entity_id = NULL WHERE remote_id = 'A2'"))
    with store.session() as session:
        dangling = records.dangling_refs(session)
    assert dangling == [
        {"system": SYSTEM, "object_type": "invoice", "remote_id": "A1", "entity_kind": "invoice", "entity_id": gone.id},
        {"system": SYSTEM, "object_type": "invoice", "remote_id": "A2", "entity_kind": "invoice", "entity_id": None},
    ]
    assert kept.id not in {d["entity_id"] for d in dangling}


def test_finance_owned_columns_are_set_on_the_records_named_only(store: Store) -> None:
    stored = store.store_page(SYSTEM, "invoices", "invoice", [invoice("A1"), invoice("A2"), invoice("A3")], cursor=None)
    [payer] = store.store_page(SYSTEM, "customers", "customer", [customer("C1")], cursor=None)
    plan = PaymentPlan(
        instalments=[(date(2024, 6, 30), Money.of("61.73", "USD")), (date(2024, 7, 31), Money.of("61.72", "USD"))]
    )
    ids = [i.id for i in stored if i.id is not None]
    assert len(ids) == 3 and payer.id is not None
    with store.session() as session:
        records.set_finance_owned(session, "invoice", ids[:2], in_collections=True)
        records.set_finance_owned(session, "invoice", ids[2:], disputed=True, payment_plan=plan.model_dump(mode="json"))
        records.set_finance_owned(session, "customer", [payer.id], paused=True)
    first, second, third = (store.get_invoice(i) for i in ids)
    assert first is not None and second is not None and third is not None
    assert (first.in_collections, second.in_collections, third.in_collections) == (True, True, False)
    assert (first.disputed, third.disputed) == (False, True)
    assert third.payment_plan == plan
    stored_payer = store.get_customer(payer.id)
    assert stored_payer is not None and stored_payer.paused is True


def test_a_column_finance_does_not_own_is_refused(store: Store) -> None:
    [stored] = store.store_page(SYSTEM, "invoices", "invoice", [invoice("A1")], cursor=None)
    assert stored.id is not None
    with pytest.raises(StateError, match="not a finance-owned column of invoices: status"), store.session() as session:
        records.set_finance_owned(session, "invoice", [stored.id], status="paid")
    back = store.get_invoice(stored.id)
    assert back is not None and back.status == "open"


# Outbox and the database itself ---------------------------------------------------------


def test_outbox_counts_by_state_name_only_states_that_hold_actions(store: Store) -> None:
    with store.session() as session:
        assert outbox.counts_by_state(session) == {}
        actions = [
            Action(
                connection="ledger",
                kind="record_payment",
                target=ref(f"INV-{n}"),
                payload={"amount": Decimal("10.00"), "currency": "USD"},
            )
            for n in range(3)
        ]
        outbox.add_planned(session, [(a, "invoice", str(n), f"payment {n}") for n, a in enumerate(actions)])
    with store.session() as session:
        [entry] = outbox.claim(session, "host:1", lease=LEASE, limit=1)
        outbox.complete(session, entry.id, "host:1", {})
    with store.session() as session:
        assert outbox.counts_by_state(session) == {"planned": 2, "done": 1}


def test_ping_answers_when_the_database_does(store: Store) -> None:
    store.ping()


def test_ping_raises_when_the_database_does_not_answer() -> None:
    engine = make_engine("postgresql://nobody@127.0.0.1:1/nowhere", connect_args={"connect_timeout": 2})
    with pytest.raises(sa.exc.OperationalError):
        Store(engine).ping()
    engine.dispose()
