"""The reads `connector explain` makes of one record's neighbourhood reach it through an index,
not through a scan of the book: the outbox by its actions' targets (0019), a remote id of any
object type by the whole key of `uq_refs_remote`, a record's refs by `ix_refs_entity`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from connector.model import Action, Ref
from connector.state import Store, linking, outbox, records
from connector.state.bookkeeping import audit, audit_entries_about, latest_entries
from connector.state.tables import json_text, ref_order, table
from support.state_factories import invoice, payment, ref


def aimed(system: str, object_type: str, remote_id: str, kind: str = "record_payment") -> Action:
    target = Ref(system=system, object_type=object_type, remote_id=remote_id)  # type: ignore[arg-type]
    return Action(connection=system, kind=kind, target=target, payload={"n": remote_id})  # type: ignore[arg-type]


def plan(store: Store, query: sa.Select[tuple[int]]) -> str:
    """How the database runs `query`, as text (on PostgreSQL with sequential scans ruled out,
    so that an index it could use shows, however few the rows)."""
    with store.session() as session:
        if store.engine.dialect.name == "postgresql":
            session.execute(sa.text("SET LOCAL enable_seqscan = off"))
            lines = list(session.execute(sa.text(f"EXPLAIN {compiled(store, query)}")).scalars())
        else:
            lines = [row[-1] for row in session.execute(sa.text(f"EXPLAIN QUERY PLAN {compiled(store, query)}"))]
        return "\n".join(lines)


def compiled(store: Store, query: sa.Select[tuple[int]]) -> str:
    return str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))


@contextmanager
def reads_of(store: Store, name: str = "refs", *, updates: bool = False) -> Iterator[list[tuple[str, Any]]]:
    """The SELECTs (and UPDATEs, with `updates`) that name table `name`, run inside the block,
    each with its parameters."""
    seen: list[tuple[str, Any]] = []
    kinds = ("SELECT", "UPDATE") if updates else ("SELECT",)

    def capture(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        if statement.lstrip().upper().startswith(kinds) and name in statement:
            seen.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)


def sqlite_plans(store: Store, statements: list[tuple[str, Any]]) -> list[list[str]]:
    """How SQLite runs each statement (its plan's lines); none on PostgreSQL."""
    if store.engine.dialect.name != "sqlite":
        return []
    with store.engine.connect() as connection:
        return [
            [row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()]
            for statement, parameters in statements
        ]


def test_actions_aimed_at_refs_are_exactly_those_targets(store: Store) -> None:
    store.add_actions(
        [
            aimed("ledger", "invoice", "L-7"),
            aimed("ledger", "payment", "L-7"),  # another object type: not aimed at the invoice
            aimed("gateway", "invoice", "L-7"),  # another system
            aimed("ledger", "invoice", "L-70"),
            Action(connection="ledger", kind="send_invoice", payload={"invoice": "L-7"}),  # no target
            aimed("gateway", "invoice", "in_7", kind="mark_paid"),
        ]
    )
    with store.session() as session:
        found = outbox.entries(session, targets={("ledger", "invoice", "L-7"), ("gateway", "invoice", "in_7")})
        any_type = outbox.entries(session, targets={("ledger", None, "L-7")})
        none = outbox.entries(session, targets=set())
    assert [(e.action.kind, e.action.target) for e in found] == [
        ("record_payment", Ref(system="ledger", object_type="invoice", remote_id="L-7")),
        ("mark_paid", Ref(system="gateway", object_type="invoice", remote_id="in_7")),
    ]
    assert [e.action.target.object_type for e in any_type if e.action.target] == ["invoice", "payment"]
    assert none == []


def test_the_facts_of_the_actions_aimed_at_refs_are_exactly_those_of_their_entries(store: Store) -> None:
    """`write_facts` (drift's read of the outbox: no models) finds the same actions as `entries`
    for targets of a given type and of any type, kinds, states and ids, with the same fields;
    a target is looked up by its remote id and its system and type checked after."""
    store.add_actions(
        [
            aimed("ledger", "invoice", "L-7"),
            aimed("ledger", "payment", "L-7"),
            aimed("gateway", "invoice", "L-7"),
            aimed("ledger", "invoice", "L-70"),
            Action(connection="ledger", kind="send_invoice", payload={"invoice": "L-7"}),
            aimed("gateway", "invoice", "in_7", kind="mark_paid"),
        ]
    )
    filters: list[dict[str, Any]] = [
        {"targets": {("ledger", "invoice", "L-7"), ("gateway", "invoice", "in_7")}},
        {"targets": {("ledger", None, "L-7")}},
        {"targets": {("crm", "deal", "L-7")}},
        {"targets": set()},
        {"kinds": ["mark_paid", "send_invoice"]},
        {"states": ["planned"], "ids": [1, 3, 5]},
        {},
    ]
    with store.session() as session:
        for given in filters:
            facts = list(outbox.write_facts(session, **given))
            wanted = outbox.entries(session, **given)
            assert [
                (f.id, f.connection, f.kind, f.target, f.payload, f.state, f.updated_at, f.subject_id) for f in facts
            ] == [
                (
                    e.id,
                    e.action.connection,
                    e.action.kind,
                    None
                    if e.action.target is None
                    else (e.action.target.system, e.action.target.object_type, e.action.target.remote_id),
                    e.action.payload,
                    e.action.state,
                    e.updated_at,
                    e.subject_id,
                )
                for e in wanted
            ], given
    assert [f.kind for f in facts] == ["record_payment"] * 4 + ["send_invoice", "mark_paid"]


def test_actions_aimed_at_a_remote_id_are_found_through_the_target_index(store: Store) -> None:
    actions = table("outbox_actions")
    query = sa.select(actions.c.id).where(
        actions.c.company == store.company, outbox.aimed_at(actions, [("ledger", "invoice", "L-7")])
    )
    assert "ix_outbox_actions_target" in plan(store, query)


def test_a_remote_id_of_any_object_type_is_found_by_the_whole_unique_key(store: Store) -> None:
    first, second = store.store_page("ledger", "invoices", "invoice", [invoice("L-1"), invoice("L-2")], None)
    store.store_page("gateway", "charges", "payment", [payment("L-2")], None)
    with store.session() as session:
        assert records.ref_types(session) == [("gateway", "payment"), ("ledger", "invoice")]
        assert records.entity_ids_for_remote_id(session, "invoice", "L-2") == [second.id]
        assert records.entity_ids_for_remote_id(session, "customer", "L-2") == []
        assert records.refs_known_as(session, [("ledger", "L-1"), ("ledger", "L-9")]) == [
            {
                "system": "ledger",
                "object_type": "invoice",
                "remote_id": "L-1",
                "entity_kind": "invoice",
                "entity_id": first.id,
            }
        ]
    refs = table("refs")
    by_key = sa.select(refs.c.id).where(
        refs.c.company == store.company,
        refs.c.system == "ledger",
        refs.c.object_type == "invoice",
        refs.c.remote_id == "L-1",
    )
    if store.engine.dialect.name == "sqlite":  # PostgreSQL, which keeps statistics, needs no help
        assert "sqlite_autoindex_refs_1 (company=? AND system=? AND object_type=? AND remote_id=?)" in plan(
            store, by_key
        )


def test_a_records_refs_are_read_through_the_entity_index(store: Store) -> None:
    first, *_ = store.store_page("ledger", "invoices", "invoice", [invoice(f"L-{n}") for n in range(300)], None)
    assert first.id is not None
    if store.engine.dialect.name == "postgresql":  # it chooses by statistics: give it some
        with store.session() as session:
            session.execute(sa.text("ANALYZE refs"))
    refs = table("refs")
    query = (
        sa.select(refs.c.id)
        .where(refs.c.company == store.company, refs.c.entity_kind == "invoice", refs.c.entity_id == first.id)
        .order_by(*ref_order(refs))
    )
    assert "ix_refs_entity" in plan(store, query)
    with store.session() as session:
        assert [r["remote_id"] for r in records.ref_details(session, "invoice", first.id)] == ["L-0"]


def test_invoice_numbers_are_found_in_any_case_reading_the_numbers_only(store: Store) -> None:
    numbered = [invoice(f"L-{n}", number=number) for n, number in enumerate(["INV-0015", "inv-0016", "X"])]
    store.store_page("ledger", "invoices", "invoice", numbered, None)
    with store.session() as session:
        assert records.numbers_in_any_case(session, " Inv-0015 ") == ["INV-0015"]
        assert records.numbers_in_any_case(session, "INV-0016") == ["inv-0016"]
        assert records.numbers_in_any_case(session, "INV-0017") == []


def test_the_views_and_hashes_of_some_records_are_looked_up_by_id_not_walked(store: Store) -> None:
    """`ref_views(entity_ids=...)` and `view_hashes(...)` (every plan part, every provider-states
    batch) look each record up in `ix_refs_entity`: with `entity_id IS NOT NULL` beside the list,
    SQLite walked every ref of the kind from the first one (4x slower on the large book)."""
    stored = store.store_page("ledger", "invoices", "invoice", [invoice(f"L-{n}") for n in range(3)], None)
    ids = [i.id or "" for i in stored[:2]]
    with reads_of(store) as seen, store.session() as session:
        views = linking.ref_views(session, "invoice", entity_ids=ids)
        hashes = records.view_hashes(session, "invoice", ids)
    assert sorted(v["entity_id"] for v in views) == sorted(ids) and sorted(hashes) == sorted(ids)
    assert len(seen) == 2
    for found in sqlite_plans(store, seen):
        assert any("ix_refs_entity" in row and "entity_id=?" in row for row in found), found


VIEW = {
    "status": "open",
    "total": {"amount": "123.45", "currency": "USD"},
    "amount_paid": {"amount": "0", "currency": "JPY"},
    "count": 12345678901234567890123456789,  # beyond 64 bits: read exactly
    "rate": 0.1,
    "flag": True,
    "off": False,
    "nothing": None,
    "name": 'Müller & Söhne "quoted" {not json}',
    "lines": [{"description": "a"}, {"description": "b"}],
    "_sync": {"kind": "ledger", "deleted": False, "links": {"invoice": "L-9"}, "hints": {"crm_payment_status": "paid"}},
}
FIELDS = [
    ("status",),
    ("total",),
    ("amount_paid",),
    ("count",),
    ("rate",),
    ("flag",),
    ("off",),
    ("nothing",),
    ("missing",),
    ("name",),
    ("lines",),
    ("_sync", "deleted"),
    ("_sync", "links", "invoice"),
    ("_sync", "hints", "crm_payment_status"),
    ("_sync", "hints", "crm_amount_outstanding"),
    ("_sync", "nowhere", "deeper"),
]


def projected(view: dict[str, Any], fields: list[tuple[str, ...]]) -> dict[str, Any]:
    """What of `view` lies at `fields`, nested as in the view, nothing where there is nothing."""
    out: dict[str, Any] = {}
    for path in fields:
        value: Any = view
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        if value is None:
            continue
        place = out
        for name in path[:-1]:
            place = place.setdefault(name, {})
        place[path[-1]] = value
    return out


def test_the_fields_of_views_read_by_the_database_are_the_views_own_values(store: Store) -> None:
    """`ref_views(fields=...)` (drift's reads: the database extracts a few fields, no view is
    decoded whole) gives each view's values at those paths with their JSON types (a string that
    looks like JSON stays a string, false stays false, an integer beyond 64 bits is exact),
    nested as in the view, nothing for a missing path or a JSON null; one path alone too."""
    stored = store.store_page("ledger", "invoices", "invoice", [invoice(f"L-{n}") for n in range(3)], None)
    refs = table("refs")
    with store.session() as session:
        session.execute(sa.update(refs).where(refs.c.remote_id == "L-1").values(data=VIEW))
    ids = [i.id or "" for i in stored]
    with store.session() as session:
        whole = linking.ref_views(session, "invoice", entity_ids=ids)
        some = linking.ref_views(session, "invoice", entity_ids=ids, fields=FIELDS)
        one = linking.ref_views(session, "invoice", entity_ids=ids, fields=[("status",)])
        every = linking.ref_views(session, "invoice", fields=FIELDS)
    assert [v["data"] for v in some] == [projected(v["data"], FIELDS) for v in whole]
    assert [v["data"] for v in one] == [projected(v["data"], [("status",)]) for v in whole]
    assert every == some
    [changed] = [v["data"] for v in some if v["remote_id"] == "L-1"]
    assert changed["count"] == 12345678901234567890123456789 and changed["off"] is False
    assert changed["name"] == VIEW["name"] and changed["lines"] == VIEW["lines"]
    assert (
        "nothing" not in changed
        and "missing" not in changed
        and "crm_amount_outstanding" not in changed["_sync"]["hints"]
    )
    assert [{k: v for k, v in row.items() if k != "data"} for row in some] == [
        {k: v for k, v in row.items() if k != "data"} for row in whole
    ]


def test_the_payment_views_that_link_to_some_invoices_are_exactly_those_found_through_their_index(
    store: Store,
) -> None:
    """`ref_views(linked_to=...)` (`explain`, `statement`: the ledger's payments on an invoice)
    returns the payment views whose `_sync.links.invoice` names one of the invoices in that
    system, and no other, looking each link up in `ix_refs_invoice_link` (0022) instead of
    reading every payment view of the book."""
    links = {"P-1": "L-1", "P-2": "L-2", "P-12": "L-12", "P-none": None}
    extras = {
        remote: {"kind": "ledger", "links": {"invoice": target} if target else {}} for remote, target in links.items()
    }
    ledger = [
        payment(remote).model_copy(update={"refs": [ref(remote, "payment", system="ledger")]}) for remote in links
    ]
    store.store_page("ledger", "payments", "payment", ledger, None, extras=extras)
    store.store_page(
        "gateway", "charges", "payment", [payment("ch_1")], None, extras={"ch_1": {"links": {"invoice": "L-1"}}}
    )
    seen: list[tuple[str, object]] = []

    def capture(_conn: object, _cursor: object, statement: str, parameters: object, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    linked_to = {("ledger", "L-1"), ("ledger", "L-12"), ("ledger", "L-9")}
    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        with store.session() as session:
            found = linking.ref_views(session, "payment", linked_to=linked_to)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)
    with store.session() as session:
        gateway = linking.ref_views(session, "payment", linked_to={("gateway", "L-1")})
        none = linking.ref_views(session, "payment", linked_to=set())
        invoices = linking.ref_views(session, "invoice", linked_to=linked_to)
    assert [(v["system"], v["remote_id"]) for v in found] == [("ledger", "P-1"), ("ledger", "P-12")]
    assert [(v["system"], v["remote_id"]) for v in gateway] == [("gateway", "ch_1")]
    assert none == [] and invoices == []
    if store.engine.dialect.name == "sqlite":  # the statements as run, with three links
        with store.engine.connect() as connection:
            for statement, parameters in seen:
                found_plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()  # type: ignore[arg-type]
                assert any("ix_refs_invoice_link" in row[-1] for row in found_plan), found_plan
        return
    refs = table("refs")
    query = sa.select(refs.c.id).where(
        refs.c.company == store.company,
        refs.c.system == "ledger",
        json_text(refs.c.data, "_sync", "links", "invoice").in_(["L-1", "L-12"]),
    )
    assert "ix_refs_invoice_link" in plan(store, query)


def test_one_payments_allocations_and_proposals_are_looked_up_by_its_id(store: Store) -> None:
    """A payment's allocations and proposals (every `explain`, decision and plan part) are
    found through the payment's index, never by walking the table in `created_at` order: SQLite,
    without statistics, takes an index that gives the ORDER BY over one that finds the rows."""
    allocations, proposals = table("allocations"), table("proposals")
    by_payment = (
        sa.select(allocations.c.id)
        .where(
            allocations.c.company == store.company,
            allocations.c.status == "applied",
            allocations.c.payment_id.in_(["pay-1"]),
        )
        .order_by(allocations.c.created_at, allocations.c.id)
    )
    by_invoice = by_payment.where(allocations.c.invoice_id.in_(["inv-1", "inv-2"]))
    proposed = (
        sa.select(proposals.c.id)
        .where(proposals.c.company == store.company, proposals.c.payment_id.in_(["pay-1"]))
        .order_by(proposals.c.created_at, proposals.c.id)
    )
    if store.engine.dialect.name != "sqlite":
        return  # PostgreSQL chooses by its statistics
    assert "ix_allocations_payment_id" in plan(store, by_payment)
    assert "ix_allocations_payment_id" in plan(store, by_invoice) or "ix_allocations_invoice_id" in plan(
        store, by_invoice
    )
    assert "ix_proposals_payment_id" in plan(store, proposed)


def test_refs_known_by_remote_id_are_looked_up_by_the_remote_key_not_scanned(store: Store) -> None:
    """`records.existing_entity_ids` (every page a sync stores, the credit notes' invoices)
    looks each remote id up in `uq_refs_remote`, for short and long lists alike: an index that
    happens to carry the columns it reads (remote id, canonical id) must not lead SQLite, which
    keeps no statistics, to walk the whole company's refs instead (a large book: 597,000 a
    list)."""
    store.store_page("ledger", "invoices", "invoice", [invoice(f"L-{n}") for n in range(30)], None)
    with reads_of(store) as seen, store.session() as session:
        short = records.existing_entity_ids(session, "ledger", "invoice", ["L-1", "L-2", "X-9"])
        long = records.existing_entity_ids(session, "ledger", "invoice", [f"L-{n}" for n in range(900)])
    assert sorted(short) == ["L-1", "L-2"] and len(long) == 30
    assert len(seen) == 2
    for found in sqlite_plans(store, seen):  # PostgreSQL chooses by its statistics
        assert any("remote_id=?" in row for row in found), found


def test_a_customers_invoices_and_an_invoice_number_are_looked_up_in_their_indexes(store: Store) -> None:
    """`list_invoices(customer_id=)` (statements, the workbench) and `list_invoices(number=)`
    (finding an invoice by its number: `explain`, finance's decisions) read the few invoices
    through `ix_invoices_customer_id` / `ix_invoices_number`, in the order of their ids: SQLite
    walked the whole company's invoices in primary-key order for the ORDER BY instead."""
    numbered = [invoice(f"L-{n}", number=f"INV-{n:04d}", customer_id="C-1" if n < 3 else "C-2") for n in range(40)]
    store.store_page("ledger", "invoices", "invoice", numbered, None)
    with reads_of(store, "invoices") as seen, store.session() as session:
        [by_number] = records.list_invoices(session, number="INV-0007")
        mine = records.list_invoices(session, customer_id="C-1", with_lines=False)
    assert by_number.number == "INV-0007"
    assert sorted(i.number or "" for i in mine) == ["INV-0000", "INV-0001", "INV-0002"]
    assert [i.id for i in mine] == sorted(i.id or "" for i in mine)
    if store.engine.dialect.name != "sqlite":
        return  # PostgreSQL chooses by its statistics
    plans = sqlite_plans(store, [(sql, parameters) for sql, parameters in seen if "FROM invoices" in sql])
    for found, index in zip(plans, ("ix_invoices_number", "ix_invoices_customer_id"), strict=True):
        assert any(index in row for row in found), found


def test_the_audit_entries_of_one_record_are_looked_up_not_scanned(store: Store) -> None:
    """`explain`'s audit entries (about the record, its allocations, or naming it in their
    inputs) come from `ix_audit_log_subject`, `audit_mentions` and the log's key: a LIKE over
    the text of the whole log took 0.55 s of the large book's `explain`."""
    invoice_id, payment_id, allocation_id = records.new_id(), records.new_id(), records.new_id()
    with store.session() as session:
        for n in range(50):
            audit(session, "reconcile", "note", "invoice", records.new_id(), {"payment": records.new_id(), "n": n})
        audit(session, "alice", "dispute", "invoice", invoice_id, {"number": "INV-7"})
        audit(session, "bob", "manual_match", "payment", payment_id, {"invoices": [invoice_id]}, "matched")
        audit(session, "reconcile", "superseded", "allocation", allocation_id, {"payment": payment_id})
        audit(session, "carol", "promise", "invoice", invoice_id, {"until": "2026-12-24"})
    with reads_of(store, "audit_") as seen, store.session() as session:
        about = audit_entries_about(session, [("invoice", invoice_id), ("allocation", allocation_id)], invoice_id)
    assert [e.actor for e in about] == ["alice", "bob", "reconcile", "carol"]
    plans = sqlite_plans(store, seen)  # PostgreSQL chooses by its statistics
    for found in plans:
        assert not any(row.startswith("SCAN") for row in found), found
        assert any("USING" in row for row in found), found
    if plans:  # the entries themselves by their key, not the company's whole log in an index
        assert any("INTEGER PRIMARY KEY" in row for row in plans[-1]), plans[-1]


def test_the_newest_entries_of_some_subjects_are_read_by_their_key(store: Store) -> None:
    """`latest_entries` (every dunning run's skips) reads the newest entry of each subject by
    its id: SQLite, keeping no statistics, walked the company's whole log in
    `ix_audit_log_subject` for the company instead, once a chunk of subjects."""
    with store.session() as session:
        for n in range(30):
            audit(session, "dunning", "reminder_skipped", "invoice", f"inv-{n % 6}", {"n": n}, "skipped")
    with reads_of(store, "audit_log") as seen, store.session() as session:
        found = latest_entries(
            session, actor="dunning", action="reminder_skipped", subject_type="invoice", subject_ids={"inv-1", "inv-2"}
        )
    assert {subject: entry.inputs for subject, entry in found.items()} == {"inv-1": {"n": 25}, "inv-2": {"n": 26}}
    for found_plan in sqlite_plans(store, seen):  # PostgreSQL chooses by its statistics
        assert any("INTEGER PRIMARY KEY" in row for row in found_plan), found_plan
        assert not any(row.startswith("SCAN") for row in found_plan), found_plan


def test_rows_named_by_their_integer_key_are_looked_up_by_it(store: Store) -> None:
    """Statements naming refs, outbox actions or audit entries by a list (or a range) of their
    ids go through the key: SQLite, keeping no statistics, walked an index leading with the
    company instead, every row of the company, for four ids or more (a sync's unchanged refs,
    a page at a time: 0.33 s against 8 ms a thousand on the large book; `remap`'s walk of the
    raw payloads: 0.44 s a batch against 12 ms)."""
    page = [invoice(f"L-{n}") for n in range(8)]
    raws = {f"L-{n}": {"InvoiceID": f"L-{n}"} for n in range(8)}
    store.store_page("ledger", "invoices", "invoice", page, None, raws=raws)
    store.add_actions([aimed("ledger", "invoice", f"L-{n}") for n in range(6)])
    with store.session() as session:
        ids = [e.id for e in outbox.entries(session)]
    with reads_of(store, "", updates=True) as seen:
        store.store_page("ledger", "invoices", "invoice", page, None, raws=raws)  # unchanged: seen again
        with store.session() as session:
            assert [e.id for e in outbox.entries(session, ids=ids)] == ids
            outbox.leave_batch(session, ids)
            outbox.unclaim(session, ids, "worker-1")
            outbox.form_batch(session, ids, "worker-1", "batch-1")
            outbox.replan_settled(session, [f"key-{n}" for n in range(5)])
        assert sum(len(batch) for batch in store.raw_batches("ledger", "invoice", batch_size=3)) == 8
    by_key = [
        (sql, parameters)
        for sql, parameters in seen
        if any(f"{name}.id IN" in sql or f"{name}.id >" in sql for name in ("refs", "outbox_actions", "audit_log"))
    ]
    if store.engine.dialect.name != "sqlite":
        return  # PostgreSQL chooses by its statistics
    # the refs seen again, four of the outbox's (no write was settled), the raw payloads' batches
    assert len(by_key) == 8, [sql for sql, _ in by_key]
    for found in sqlite_plans(store, by_key):
        assert any("INTEGER PRIMARY KEY" in row for row in found), found
