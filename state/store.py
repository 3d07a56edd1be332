"""`Store`: the state database behind one object, and `open_store` to get one safely.

Every method takes an optional `session`: given one, it works inside the caller's
transaction; without one, it runs in a transaction of its own. The work itself lives in
`state.records` (canonical records and refs), `state.bookkeeping` (cursors, outbox, audit,
runs) and `state.tokens`; this class only decides the transaction. OAuth tokens are sealed
with the `TokenSealer` the store was opened with (`state.secrets`): the CLI, the service and
the demo always give one, made from the operator's key.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from connector.errors import ConfigError
from connector.memory import release_freed_memory
from connector.model import Action, ActionState, Customer, Invoice, Payment, Ref
from connector.state import bookkeeping, changes, raw, records, statistics, tokens
from connector.state.db import is_locked, make_engine, reading, scrub_sqlite, sqlite_file, unavailable
from connector.state.migrate import check_revision, current_revision, is_empty, upgrade
from connector.state.raw import RAW_BATCH, RawRef
from connector.state.records import E, EntityKind, own_ref
from connector.state.scope import DEFAULT_COMPANY, bind, check_company_name
from connector.state.secrets import TokenSealer
from connector.state.tokens import ResealReport, StoredTokens, TokenState


def open_store(
    target: str | URL | Engine | None = None, *, sealer: TokenSealer | None = None, **engine_kwargs: Any
) -> Store:
    """A store on `target` (a URL, an engine, or the default SQLite file). A database with no
    tables at all is initialised; one at another schema version is refused, since only
    `connector db upgrade` changes an existing schema. `sealer` seals and opens the stored
    OAuth tokens (one without keys refuses to store any); without one they are kept as given,
    for tests and tools that hold no key."""
    engine = target if isinstance(target, Engine) else make_engine(target, **engine_kwargs)
    try:
        current = current_revision(engine)  # one connection; an unreachable database says so
        if current is None and is_empty(engine):
            current = upgrade(engine)
        check_revision(current)
    except BaseException:
        if engine is not target:
            engine.dispose()
        raise
    return Store(engine, sealer)


class Store:
    """The state database, working for one company's book (`DEFAULT_COMPANY` unless opened
    `for_company`): every transaction it opens is bound to that company (`state.scope`)."""

    def __init__(self, engine: Engine, sealer: TokenSealer | None = None, company: str = DEFAULT_COMPANY) -> None:
        self.engine = engine
        self.sealer = sealer
        self.company = check_company_name(company)

    def for_company(self, company: str) -> Store:
        """The same database working for `company`'s book (sharing this store's engine: close
        the store it came from, not this one)."""
        if company == self.company:
            return self
        return Store(self.engine, self.sealer, company)

    def reader(self) -> Store:
        """The same database and company for reports: its transactions only read (`READ_ONLY`),
        so on SQLite they neither wait for the write lock a sync, reconcile or plan holds nor
        hold one back; a write through it fails. Shares this store's engine: close this one."""
        return Store(reading(self.engine), self.sealer, self.company)

    def close(self) -> None:
        self.engine.dispose()

    def release_idle(self) -> None:
        """Close the pooled connections no session holds, on a SQLite file: each keeps a page
        cache of its own (up to `SQLITE_CACHE_KIB`), and a sync writing a dozen streams side by
        side leaves the pool's five filled; the stages after it warm one again. The memory
        they held goes back to the system (`release_freed_memory`). Sessions in progress keep
        their connections."""
        if self.engine.dialect.name == "sqlite" and sqlite_file(self.engine.url) is not None:
            self.engine.dispose(close=True)
        release_freed_memory()

    def ping(self) -> None:
        """One round trip to the database (`SELECT 1` on a fresh connection); raises what the
        driver raises when it does not answer."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises. SQLite's
        "database is locked" (another process held the write lock past the busy timeout)
        leaves as a one-line `DatabaseUnavailableError` saying the database is busy."""
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield bind(session, self.company)
        except OperationalError as exc:
            if is_locked(exc):
                raise unavailable(self.engine, exc) from None
            raise

    @contextmanager
    def _tx(self, session: Session | None) -> Iterator[Session]:
        if session is not None:
            yield session
        else:
            with self.session() as own:
                yield own

    # Records ----------------------------------------------------------------------------

    def upsert_refs(
        self,
        system: str,
        object_type: str,
        entity_kind: EntityKind,
        records_: Sequence[E],
        session: Session | None = None,
    ) -> list[E]:
        with self._tx(session) as s:
            return records.upsert_refs(s, system, object_type, entity_kind, records_)

    def upsert_customers(self, customers: Sequence[Customer], session: Session | None = None) -> list[Customer]:
        with self._tx(session) as s:
            return records.upsert_customers(s, customers)

    def upsert_invoices(self, invoices: Sequence[Invoice], session: Session | None = None) -> list[Invoice]:
        with self._tx(session) as s:
            return records.upsert_invoices(s, invoices)

    def upsert_payments(self, payments: Sequence[Payment], session: Session | None = None) -> list[Payment]:
        with self._tx(session) as s:
            return records.upsert_payments(s, payments)

    def store_page(
        self,
        connection: str,
        stream: str,
        entity_kind: str,
        records_: Sequence[E],
        cursor: str | None,
        session: Session | None = None,
        extras: Mapping[str, dict[str, Any]] | None = None,
        rank: int = 0,
        raws: Mapping[str, Any] | None = None,
    ) -> list[E]:
        """Refs, canonical rows and the stream's new cursor in one transaction: a page is
        stored whole or not at all, so a crash never moves a cursor past unsaved records.
        `cursor=None` leaves the saved cursor as it is. `rank` is how far this connection is
        trusted for the records' facts: a canonical row holding a higher-ranked connection's
        view keeps it (this connection's view is still kept in its refs). Kinds without a canonical table
        (contacts, credit notes, refunds, payouts, balance transactions) keep their refs only,
        with the system's whole record in the ref's data. A record whose view is the one stored
        (`refs.data_hash`) costs no write beyond its `seen_at`. `raws` (by remote id) are the
        provider's objects as they arrived, kept compressed with their refs for `connector
        remap`; without them the payloads stored stay as they are."""
        by_type: dict[str, list[E]] = {}
        for record in records_:
            by_type.setdefault(own_ref(record, connection).object_type, []).append(record)
        with self._tx(session) as s:
            stored: list[E] = []
            changed: list[E] = []
            fresh: set[str] = set()
            for object_type, group in by_type.items():
                done = records.store_refs(s, connection, object_type, entity_kind, group, extras, rank, raws)
                stored += done.records
                changed += done.changed
                fresh |= done.fresh
            if entity_kind in records.UPSERTS and changed:
                # an unchanged view leaves its canonical row as it is: no UPDATE at all
                records.UPSERTS[entity_kind](s, changed, connection, rank, fresh)  # type: ignore[operator]
            if cursor is not None:
                bookkeeping.set_cursor(s, connection, stream, cursor)
            return records.with_ids(stored) if entity_kind in records.UPSERTS else stored

    def canonical_ids(
        self, system: str, object_type: str, remote_ids: Sequence[str], session: Session | None = None
    ) -> dict[str, str | None]:
        """remote id -> canonical id for refs of `system` already stored."""
        with self._tx(session) as s:
            return records.existing_entity_ids(s, system, object_type, list(remote_ids))

    def get_invoice(self, invoice_id: str, session: Session | None = None) -> Invoice | None:
        with self._tx(session) as s:
            found = records.list_invoices(s, ids=[invoice_id])
        return found[0] if found else None

    def list_customers(
        self, session: Session | None = None, ids: Sequence[str] | None = None, *, with_refs: bool = True
    ) -> list[Customer]:
        with self._tx(session) as s:
            return records.list_customers(s, ids=ids, with_refs=with_refs)

    def list_invoices(self, session: Session | None = None, **filters: Any) -> list[Invoice]:
        """Every canonical invoice, CRM deals linked to no receivable among them: what is owed is
        `list_receivables`. Filters: ids, customer_id, number, status, limit."""
        with self._tx(session) as s:
            return records.list_invoices(s, **filters)

    def list_receivables(self, session: Session | None = None, **filters: Any) -> list[Invoice]:
        """The invoices that are receivables (`records.RECEIVABLE_KINDS`: the ledger's, else the
        gateway's; a CRM deal alone never is one). Filters as `list_invoices`."""
        with self._tx(session) as s:
            return records.list_invoices(s, receivable=True, **filters)

    def receivable_states(
        self, session: Session | None = None, ids: Sequence[str] | None = None
    ) -> list[records.InvoiceState]:
        """The collections-state columns of every receivable (of `ids`), without its lines and refs."""
        with self._tx(session) as s:
            return records.receivable_states(s, ids)

    def receivable_numbers(self, ids: Sequence[str], session: Session | None = None) -> dict[str, str | None]:
        """id -> number of the receivables among `ids`, nothing else of them."""
        with self._tx(session) as s:
            return records.receivable_numbers(s, ids)

    def ref_ids_of(
        self, entity_kind: str, entity_ids: Sequence[str], session: Session | None = None
    ) -> dict[str, list[tuple[str, str, str]]]:
        """Each record's refs as (system, object type, remote id): where each lives, no more."""
        with self._tx(session) as s:
            return records.ref_ids_for(s, entity_kind, entity_ids)

    def receivable_keys(
        self, session: Session | None = None, customer_ids: Sequence[str] | None = None, *, owing: bool = False
    ) -> list[records.ListingKey]:
        """What every receivable (of `customer_ids`, when given; `owing` by its own figures) is
        listed by, nothing else."""
        with self._tx(session) as s:
            return records.receivable_keys(s, customer_ids, owing=owing)

    def get_customer(self, customer_id: str, session: Session | None = None) -> Customer | None:
        with self._tx(session) as s:
            found = records.list_customers(s, ids=[customer_id])
        return found[0] if found else None

    def list_payments(self, session: Session | None = None, **filters: Any) -> list[Payment]:
        """Filters: ids, customer_id, payout_id, limit."""
        with self._tx(session) as s:
            return records.list_payments(s, **filters)

    def refs_for(self, entity_kind: str, entity_id: str, session: Session | None = None) -> list[Ref]:
        with self._tx(session) as s:
            return records.refs_for(s, entity_kind, [entity_id])[entity_id]

    # Raw payloads ---------------------------------------------------------------------------

    def raw_batches(self, system: str, object_type: str, batch_size: int = RAW_BATCH) -> Iterator[list[RawRef]]:
        """The stored raw payloads of `system`'s refs of `object_type`, a batch at a time, each
        batch read in a transaction of its own (`state.raw.raw_batches`)."""
        return raw.raw_batches(self.session, system, object_type, batch_size)

    def count_without_raw(self, system: str, object_type: str, session: Session | None = None) -> int:
        """How many of `system`'s refs of `object_type` keep no raw payload (stored before 0016)."""
        with self._tx(session) as s:
            return raw.count_without_raw(s, system, object_type)

    def raw_payloads(self, entity_kind: str, entity_id: str, session: Session | None = None) -> list[dict[str, Any]]:
        """Each system's raw payload of one record, decompressed (None where none was kept)."""
        with self._tx(session) as s:
            return raw.raw_payloads(s, entity_kind, entity_id)

    # Cursors, outbox, audit, runs -------------------------------------------------------

    def get_cursor(self, connection: str, stream: str, session: Session | None = None) -> str | None:
        with self._tx(session) as s:
            return bookkeeping.get_cursor(s, connection, stream)

    def set_cursor(self, connection: str, stream: str, value: str | None, session: Session | None = None) -> None:
        with self._tx(session) as s:
            bookkeeping.set_cursor(s, connection, stream, value)

    def views_position(self, session: Session | None = None) -> list[Any]:
        """How far the company's stored views have moved (`state.changes`): two aggregates."""
        with self._tx(session) as s:
            return changes.views_position(s)

    def book_position(
        self,
        session: Session | None = None,
        *,
        only: tuple[str, ...] | None = None,
        outbox_kinds: tuple[str, ...] | None = None,
    ) -> dict[str, list[Any]]:
        """How far the company's book has moved (`state.changes`): a few aggregates, no row read;
        `only` those tables, `outbox_kinds` those actions of the outbox."""
        with self._tx(session) as s:
            return changes.book_position(s, only, outbox_kinds)

    def keep_statistics(self) -> list[str]:
        """PostgreSQL: `ANALYZE` the state tables that changed much since they last were, so that
        the next stage's queries are planned for the book as it is (`state.statistics`); the
        tables analysed. Nothing on SQLite."""
        return statistics.refresh_statistics(self.engine)

    def add_actions(self, actions: Sequence[Action], session: Session | None = None) -> int:
        with self._tx(session) as s:
            return bookkeeping.add_actions(s, actions)

    def list_actions(self, state: ActionState | None = None, session: Session | None = None) -> list[Action]:
        with self._tx(session) as s:
            return bookkeeping.list_actions(s, state)

    def audit(
        self,
        actor: str,
        action: str,
        subject_type: str,
        subject_id: str | None,
        inputs: Mapping[str, Any] | None = None,
        decision: str | None = None,
        session: Session | None = None,
    ) -> None:
        with self._tx(session) as s:
            bookkeeping.audit(s, actor, action, subject_type, subject_id, inputs, decision)

    def start_run(self, session: Session | None = None) -> str:
        with self._tx(session) as s:
            return bookkeeping.start_run(s)

    def finish_run(
        self,
        run_id: str,
        status: str,
        stats: Mapping[str, Any] | None = None,
        session: Session | None = None,
    ) -> None:
        with self._tx(session) as s:
            bookkeeping.finish_run(s, run_id, status, stats)

    def check_connection_companies(self, company_of_connection: Mapping[str, str]) -> None:
        """Refuse a configuration that gives a connection another company than the one its
        stored records belong to (they would stay in the old book while the new one pulls them
        again): a `ConfigError` naming the connection and the company that holds them."""
        with self.reader().session() as s:
            moved = bookkeeping.records_elsewhere(s, company_of_connection)
        for connection, holder in moved.items():
            raise ConfigError(
                f"this database keeps the connection's records in company {holder!r}, not "
                f"{company_of_connection[connection]!r}: a connection cannot move to another company "
                f"(keep company = {holder!r}; [companies.{holder}] legal_name sets how it is printed)",
                where=f"connections.{connection}.company",
            )

    # OAuth tokens -----------------------------------------------------------------------

    def load_tokens(self, connection: str, session: Session | None = None) -> StoredTokens | None:
        with self._tx(session) as s:
            return tokens.load_tokens(s, connection, self.sealer)

    def save_tokens(
        self,
        connection: str,
        tokens_: Mapping[str, Any],
        expected_version: int | None,
        session: Session | None = None,
    ) -> int | None:
        """Compare-and-swap: the new version, or None if someone saved since `expected_version`."""
        with self._tx(session) as s:
            return tokens.save_tokens(s, connection, tokens_, expected_version, self.sealer)

    def forget_tokens(self, connection: str, session: Session | None = None) -> bool:
        """Drop a connection's stored tokens; False when there were none."""
        with self._tx(session) as s:
            return tokens.forget_tokens(s, connection)

    def token_states(self, session: Session | None = None) -> dict[str, TokenState]:
        """connection -> sealed, plain or unreadable, for every connection with stored tokens."""
        with self._tx(session) as s:
            return tokens.token_states(s, self.sealer or TokenSealer())

    def reseal_tokens(self) -> ResealReport:
        """Seal every stored token with the first key (`connector db upgrade`), then scrub a
        SQLite file of the values replaced (see `scrub_sqlite`)."""
        with self.session() as s:
            report = tokens.reseal_tokens(s, self.sealer or TokenSealer())
        if report.sealed or report.resealed:
            scrub_sqlite(self.engine)
        return report
