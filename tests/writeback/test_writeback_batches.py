"""Writes sent in batches, exactly once: the batch and its key are recorded before the request,
each write's own answer is recorded on it, one refused write fails alone, and a batch whose
answer never came goes out again whole with the same key (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from connector.config import Config, load_config
from connector.errors import ConnectorError, InvalidRequestError, ProviderError, StopRequested, UsageError
from connector.model import Action
from connector.providers.base import ActionResult
from connector.providers.registry import ProviderInfo, Registry
from connector.providers.stripe import StripeProvider
from connector.providers.xero import XeroProvider
from connector.state import Store, open_store, outbox
from connector.state.bookkeeping import audit_entries
from connector.state.records import utcnow
from connector.writeback.apply import apply, cancel, hold_partial_batches, requests_of, retry
from support.databases import pg_engine_in_temporary_schema, postgres_url_or_fail, sqlite_engine_in
from support.state_factories import ref


class Ledger:
    """A provider's side of the writes: payments made by batch key, replaying the first answer
    to a key reused with the same body and refusing it with another, as Xero does."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        self.payments: list[dict[str, Any]] = []
        self.requests: list[tuple[str, list[str]]] = []
        self.refuse: set[str] = set()  # invoices whose payment is refused
        self.then_fail: ProviderError | None = None  # make the payments, then lose the answer
        self.fail_before: ConnectorError | None = None  # refuse the whole request, make nothing

    def put(self, key: str, actions: list[Action]) -> list[dict[str, Any]]:
        body = json.dumps([a.model_dump(mode="json") for a in actions], sort_keys=True)
        self.requests.append((key, [str(a.target.remote_id if a.target else "") for a in actions]))
        if self.fail_before is not None:
            raise self.fail_before
        if key in self.answers:
            stored_body, answer = self.answers[key]
            if stored_body != body:
                raise InvalidRequestError(f"key {key} was used with another request", provider="xero")
            return [{**item, "replayed": True} for item in answer]
        answer = []
        for action in actions:
            invoice = action.target.remote_id if action.target else ""
            if invoice in self.refuse:
                answer.append({"error": f"invoice {invoice} is paid already"})
                continue
            payment = {"id": f"pay-{len(self.payments) + 1}", "invoice": invoice, "amount": action.payload["amount"]}
            self.payments.append(payment)
            answer.append(payment)
        self.answers[key] = (body, answer)
        if self.then_fail is not None:
            failure, self.then_fail = self.then_fail, None
            raise failure
        return answer


LEDGER = Ledger()


class BatchingXero(XeroProvider):
    """Xero's settings and rate limits; payments go to `LEDGER` three to a request."""

    batch_limits: ClassVar[dict[str, int]] = {"record_payment": 3}

    def apply_record_payment(self, action: Action) -> ActionResult:
        [result] = self.batch_record_payment([action], f"single-{action.idempotency_key}")
        if isinstance(result, Exception):
            raise result
        return result

    def batch_record_payment(self, actions: list[Action], key: str) -> list[ActionResult | ConnectorError]:
        results: list[ActionResult | ConnectorError] = []
        for item in LEDGER.put(key, actions):
            if "error" in item:
                results.append(InvalidRequestError(item["error"], provider="xero", http_status=200))
            else:
                results.append(ActionResult(item["id"], response=item, replayed=bool(item.get("replayed"))))
        return results


class UnbatchedXero(BatchingXero):
    """The same ledger before its provider batched payments: one payment per request, with
    its own key."""

    batch_limits: ClassVar[dict[str, int]] = {}


class OneByOneStripe(StripeProvider):
    def apply_mark_paid(self, action: Action) -> ActionResult:
        return ActionResult(f"paid-{action.target.remote_id if action.target else ''}", response={})


REGISTRY = Registry(
    [
        ProviderInfo(name="xero", origin="tests 0", target="tests:BatchingXero", cls=BatchingXero),
        ProviderInfo(name="stripe", origin="tests 0", target="tests:OneByOneStripe", cls=OneByOneStripe),
    ]
)
UNBATCHED = Registry(
    [
        ProviderInfo(name="xero", origin="tests 0", target="tests:UnbatchedXero", cls=UnbatchedXero),
        ProviderInfo(name="stripe", origin="tests 0", target="tests:OneByOneStripe", cls=OneByOneStripe),
    ]
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def book(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Config, Store]]:
    global LEDGER
    LEDGER = Ledger()
    path = tmp_path / "connector.toml"
    path.write_text(
        '[connections.ledger]\nprovider = "xero"\nbase_url = "http://127.0.0.1:1"\n'
        'client_id = "id"\nclient_secret = "secret"\ntenant_id = "t-1"\n'
        'refresh_token = "r"\npayment_account_code = "090"\n\n'
        '[connections.gateway]\nprovider = "stripe"\nbase_url = "http://127.0.0.1:1"\napi_key = "sk_test_x"\n'
    )
    config = load_config(str(path))
    if request.param == "sqlite":
        with sqlite_engine_in(tmp_path) as engine:
            yield config, open_store(engine)
    else:
        with pg_engine_in_temporary_schema(postgres_url_or_fail()) as engine:
            yield config, open_store(engine)


def queue_payments(store: Store, count: int, connection: str = "ledger", kind: str = "record_payment") -> list[int]:
    actions = [
        Action(
            connection=connection,
            kind=kind,  # type: ignore[arg-type]
            target=ref(f"INV-{n}"),
            payload={"amount": Decimal(f"{n + 1}.50"), "currency": "USD", "date": "2026-12-01", "reference": f"ch_{n}"},
        )
        for n in range(count)
    ]
    with store.session() as session:
        outbox.add_planned(session, [(a, "invoice", f"i{n}", f"payment {n}") for n, a in enumerate(actions)])
        return [e.id for e in outbox.entries(session, connections=[connection])]


def states(store: Store) -> dict[int, tuple[str, str | None]]:
    with store.session() as session:
        return {e.id: (e.action.state, e.batch_key) for e in outbox.entries(session)}


def make_due(store: Store) -> None:
    """The backoff has passed."""
    with store.engine.begin() as connection:
        connection.execute(sa.text("UPDATE outbox_actions SET next_attempt_at = NULL WHERE state = 'planned'"))


def test_payments_go_three_to_a_request_each_with_its_own_result(book: tuple[Config, Store]) -> None:
    config, store = book
    ids = queue_payments(store, 7)

    report = apply(config, store, REGISTRY)

    # 7 payments, batches of at most 3: two batches of three and the last one, a batch of one
    assert [len(invoices) for _, invoices in LEDGER.requests] == [3, 3, 1]
    assert report.requests == report.batches == 3
    assert len(report.done) == 7 and len(LEDGER.payments) == 7
    with store.session() as session:
        done = {e.id: e for e in outbox.entries(session, ids=ids)}
        trail = audit_entries(session, actions=["record_payment"])
    assert {e.action.state for e in done.values()} == {"done"}
    # each write keeps its own payment id, and the batch it went in
    assert [done[i].result["remote_id"] for i in ids] == [f"pay-{n}" for n in range(1, 8)]  # type: ignore[index]
    first_key = LEDGER.requests[0][0]
    assert [done[i].result.get("batch") for i in ids[:3]] == [first_key] * 3  # type: ignore[union-attr]
    assert {e.batch_key for e in done.values()} == {None}
    assert len(trail) == 7 and trail[0].inputs["batch"] == first_key


def test_one_refused_payment_fails_alone_and_can_go_in_another_batch(book: tuple[Config, Store]) -> None:
    config, store = book
    ids = queue_payments(store, 3)
    LEDGER.refuse.add("INV-1")

    report = apply(config, store, REGISTRY)

    assert len(report.done) == 2 and len(report.parked) == 1
    assert states(store)[ids[1]] == ("failed", None)  # refused for good, out of its batch
    assert states(store)[ids[0]][0] == states(store)[ids[2]][0] == "done"
    with store.session() as session:
        [refused] = outbox.entries(session, ids=[ids[1]])
    assert "INV-1 is paid already" in (refused.last_error or "")


def test_a_batch_without_an_answer_goes_again_whole_with_its_key_and_is_made_once(book: tuple[Config, Store]) -> None:
    config, store = book
    ids = queue_payments(store, 3)
    LEDGER.then_fail = ProviderError("timed out reading the answer", provider="xero")

    first = apply(config, store, REGISTRY)

    # the ledger made the three payments, but we never saw its answer
    assert len(first.failed) == 3 and len(LEDGER.payments) == 3
    key = LEDGER.requests[0][0]
    assert {states(store)[i] for i in ids} == {("planned", key)}
    # finance cannot cancel one of them: it may have been made
    with pytest.raises(UsageError, match="went out in a batch .* that got no answer"):
        cancel(config, store, ids[0], "finance")
    # a person retries one of them: the whole batch goes again, with its key, and is replayed
    assert retry(store, ids[1])
    second = apply(config, store, REGISTRY)
    assert LEDGER.requests[-1] == (key, ["INV-0", "INV-1", "INV-2"])
    assert len(second.done) == 3 and second.replayed == 3
    assert len(LEDGER.payments) == 3  # made once
    assert {states(store)[i] for i in ids} == {("done", None)}


def test_a_crashed_workers_batch_is_taken_over_whole(book: tuple[Config, Store]) -> None:
    config, store = book
    ids = queue_payments(store, 5)
    # a worker claimed all five, recorded a batch of three, sent it, and died before its commit
    with store.session() as session:
        claimed = outbox.claim(session, "gone:1", lease=timedelta(minutes=10), limit=5)
        outbox.form_batch(session, ids[:3], "gone:1", "batch-dead")
    assert len(claimed) == 5
    LEDGER.put("batch-dead", [e.action for e in claimed[:3]])

    with store.engine.begin() as connection:  # its lease ran out
        connection.execute(sa.text("UPDATE outbox_actions SET claimed_at = :t"), {"t": utcnow() - timedelta(hours=1)})
    report = apply(config, store, REGISTRY)

    assert LEDGER.requests[1] == ("batch-dead", ["INV-0", "INV-1", "INV-2"])
    # the two it claimed but never sent were never on their own with their key: one new batch
    assert [invoices for _, invoices in LEDGER.requests[2:]] == [["INV-3", "INV-4"]]
    assert LEDGER.requests[2][0] != "batch-dead"
    assert len(report.done) == 5 and report.replayed == 3
    assert len(LEDGER.payments) == 5


def test_a_whole_request_refused_frees_a_new_batch(book: tuple[Config, Store]) -> None:
    config, store = book
    ids = queue_payments(store, 2)
    LEDGER.fail_before = InvalidRequestError("the account code is not valid", provider="xero", http_status=400)

    report = apply(config, store, REGISTRY)

    assert len(report.parked) == 2 and not LEDGER.payments
    assert {states(store)[i] for i in ids} == {("failed", None)}


def test_a_stop_while_waiting_for_a_slot_hands_the_batch_back_uncounted(book: tuple[Config, Store]) -> None:
    config, store = book
    ids = queue_payments(store, 4)
    LEDGER.fail_before = StopRequested("stopping: a request waiting for its rate-limit slot was not sent")

    report = apply(config, store, REGISTRY)

    assert report.stopped and report.released == 4 and not report.done
    with store.session() as session:
        entries = outbox.entries(session, ids=ids)
    assert {(e.action.state, e.attempts, e.batch_key) for e in entries} == {("planned", 0, None)}


def test_the_claim_is_cut_into_requests_in_turn_and_other_kinds_go_one_by_one(book: tuple[Config, Store]) -> None:
    config, store = book
    queue_payments(store, 4)
    queue_payments(store, 2, connection="gateway", kind="mark_paid")
    with store.session() as session:
        claimed = outbox.claim(session, "w:1", lease=timedelta(minutes=10), limit=10, shares={"ledger": 3})

    units = requests_of(claimed, {"ledger": {"record_payment": 3}, "gateway": {}})

    # the ledger takes its batch's worth; the gateway's writes go one per request, in turn
    assert [(u[0].action.connection, len(u)) for u in units] == [("ledger", 3), ("gateway", 1), ("gateway", 1)]


def test_a_batch_never_carries_a_later_write_past_a_deletion(book: tuple[Config, Store]) -> None:
    """A payment deleted after finance undid its match, then recorded again once the match was
    made again: the new one waits for the deletion, in a batch of its own, rather than joining
    the batch of an older write that goes before the deletion (the ledger would hold both)."""
    config, store = book
    queue_payments(store, 1)  # INV-0's payment
    queue_payments(store, 1, kind="delete_payment")  # taken back
    queue_payments(store, 2)  # INV-0's again (the same key: kept as it was), and INV-1's
    with store.session() as session:
        claimed = outbox.claim(session, "w:1", lease=timedelta(minutes=10), limit=10)

    units = requests_of(claimed, {"ledger": {"record_payment": 3}})

    assert [[(e.action.kind, e.action.target.remote_id if e.action.target else "") for e in u] for u in units] == [
        [("record_payment", "INV-0")],
        [("delete_payment", "INV-0")],
        [("record_payment", "INV-1")],
    ]


def test_a_batch_not_full_waits_for_the_next_claim_once_while_more_is_due(book: tuple[Config, Store]) -> None:
    config, store = book
    queue_payments(store, 4)
    with store.session() as session:
        claimed = outbox.claim(session, "w:1", lease=timedelta(minutes=10), limit=4)
    units = requests_of(claimed, {"ledger": {"record_payment": 3}})
    assert [len(u) for u in units] == [3, 1]
    limits = {"ledger": {"record_payment": 3}}

    now, later = hold_partial_batches(units, limits, {"ledger"})
    assert [len(u) for u in now] == [3] and [e.id for e in later] == [units[1][0].id]
    # nothing more due: it goes now; held back once already: it goes now too
    assert hold_partial_batches(units, limits, set()) == (units, [])
    assert hold_partial_batches(units, limits, {"ledger"}, {units[1][0].id}) == (units, [])
    # no full batch to send: the partial one goes rather than the queue standing still
    assert hold_partial_batches([units[1]], limits, {"ledger"}) == ([units[1]], [])


def test_a_write_alone_is_recorded_as_a_batch_before_it_goes_and_resent_with_that_key(
    book: tuple[Config, Store],
) -> None:
    """One payment on its own still goes as a batch of one, its key recorded first: if its
    answer is lost, the takeover resends it with the same key (a replay), never in another
    batch under a new key (which would pay the invoice twice)."""
    config, store = book
    [only] = queue_payments(store, 1)
    LEDGER.then_fail = ProviderError("the connection dropped before the answer", provider="xero")

    apply(config, store, REGISTRY)

    key = LEDGER.requests[0][0]
    assert key.startswith("batch-") and states(store)[only] == ("planned", key)
    queue_payments(store, 3)  # INV-1 and INV-2 queued meanwhile: the lost one does not join them
    make_due(store)
    apply(config, store, REGISTRY)
    assert LEDGER.requests[1] == (key, ["INV-0"])
    assert len(LEDGER.payments) == 3  # INV-0 once, INV-1 and INV-2 once each


def test_a_write_sent_alone_before_its_provider_batched_goes_alone_again_with_its_own_key(
    book: tuple[Config, Store],
) -> None:
    """A payment sent on its own (its own key) whose answer was lost, and then the provider's
    new release batches payments: it goes on its own again with that key and the ledger
    replays it, rather than in a batch under a new key that would pay the invoice twice."""
    config, store = book
    [first, *_] = queue_payments(store, 1)
    LEDGER.then_fail = ProviderError("the connection dropped before the answer", provider="xero")
    apply(config, store, UNBATCHED)
    assert LEDGER.requests == [(f"single-{entry_of(store, first).action.idempotency_key}", ["INV-0"])]
    assert len(LEDGER.payments) == 1

    queue_payments(store, 3)  # INV-1 and INV-2 queued meanwhile
    make_due(store)
    report = apply(config, store, REGISTRY)

    assert LEDGER.requests[1] == LEDGER.requests[0]  # the same key: the ledger replays its answer
    assert [invoices for _, invoices in LEDGER.requests[2:]] == [["INV-1", "INV-2"]]
    assert report.replayed == 1 and len(report.done) == 3
    assert len(LEDGER.payments) == 3


def entry_of(store: Store, action_id: int) -> outbox.OutboxEntry:
    with store.session() as session:
        [entry] = outbox.entries(session, ids=[action_id])
    return entry
