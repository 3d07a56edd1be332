"""Pull -> map -> store, for every configured connection and stream.

Each page is mapped and stored together with the stream's cursor in one transaction, so a
crash resumes where it stopped with nothing lost or duplicated. Records the mapping cannot
read are reported (provider, object id, field), counted and skipped; the rest of the page is
stored. A provider asking us to wait for hours (a daily limit) defers the stream: what was
stored stays, with its cursor, and the next run carries on. A run is `ok` only when every
stream finished: a deferred or failed stream, or a skipped record, makes it a run with problems
(`connector sync` exits 1 and says which stream, and until when it waits).

Each record is stored with the provider's raw object it was mapped from (`refs.raw`), so
`remap_book` maps the stored book again through a changed mapping, down the same store path,
without opening a provider at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic_core import to_jsonable_python

from connector import failpoints
from connector.config import Config, Connection
from connector.connections import check_scope, mapper_for, open_provider, rank_of
from connector.errors import (
    ConnectorError,
    MappingError,
    ProviderError,
    RateLimitDeferred,
    StopRequested,
    first_line,
)
from connector.mappings.mapper import MappedRecord, Mapper
from connector.providers.base import Provider
from connector.providers.registry import Registry, installed
from connector.state.raw import unpack
from connector.state.store import Store

logger = logging.getLogger(__name__)

# Canonical record kinds whose `customer_id` comes from a `customer` link in the same system.
_CUSTOMER_LINKED = ("invoice", "payment")
MAX_REPORTED_ERRORS = 20

StreamStatus = Literal["ok", "deferred", "failed"]


@dataclass
class StreamReport:
    connection: str
    provider: str
    stream: str
    status: StreamStatus = "ok"
    pages: int = 0
    records: int = 0
    stored: int = 0
    skipped: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # deferred: when the provider's limit lets the stream go on (ISO 8601, UTC); None when the
    # provider named no time
    deferred_until: str | None = None


@dataclass
class SyncReport:
    run_id: str
    streams: list[StreamReport]
    links: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> rule -> count

    @property
    def ok(self) -> bool:
        """Every stream finished with every record stored: nothing deferred, failed or skipped."""
        return all(s.status == "ok" and s.skipped == 0 for s in self.streams)

    @property
    def deferred(self) -> list[StreamReport]:
        return [s for s in self.streams if s.status == "deferred"]

    @property
    def failed(self) -> list[StreamReport]:
        return [s for s in self.streams if s.status == "failed"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "ok": self.ok,
            "streams": [asdict(s) for s in self.streams],
            "links": self.links,
        }


Progress = Callable[[StreamReport], None]


class SyncEngine:
    """`max_parallel_streams` streams of one connection run at once; they share the
    connection's rate limiter, so together they stay within the provider's limits."""

    def __init__(
        self,
        config: Config,
        store: Store,
        registry: Registry | None = None,
        *,
        progress: Progress | None = None,
        max_parallel_streams: int = 4,
        stop: threading.Event | None = None,
    ) -> None:
        check_scope(config, store)
        self.config = config
        self.store = store
        self.registry = registry or installed()
        self.progress = progress or (lambda _report: None)
        self.max_parallel_streams = max(1, max_parallel_streams)
        self.stop = stop or threading.Event()  # set: finish the page in hand, then stop

    def run(
        self,
        *,
        connections: Sequence[str] = (),
        streams: Sequence[str] = (),
        full: bool = False,
    ) -> SyncReport:
        """Pull every chosen stream; linking is the next stage (`connector.pipeline`)."""
        chosen = [self.config.connection(name) for name in connections] or list(self.config.connections.values())
        run_id = self.store.start_run()
        self.run_id = run_id
        reports: list[StreamReport] = []
        try:
            # Connections are independent systems with their own limits: run them side by side.
            with ThreadPoolExecutor(max_workers=max(1, len(chosen)), thread_name_prefix="sync") as pool:
                for result in pool.map(lambda c: self._sync_connection(c, streams, full), chosen):
                    reports.extend(result)
        finally:
            report = SyncReport(run_id=run_id, streams=reports)
            status = "ok" if report.ok else "problems"
            self.store.finish_run(run_id, status, {"streams": [asdict(s) for s in reports]})
        return report

    def _sync_connection(self, connection: Connection, streams: Sequence[str], full: bool) -> list[StreamReport]:
        provider = open_provider(connection, self.store, self.registry)
        mapper = mapper_for(connection, self.registry)
        wanted = [s for s in provider.streams if not streams or s in streams]
        try:
            rank = rank_of(connection, provider.kind)
            workers = min(self.max_parallel_streams, max(1, len(wanted)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"sync-{connection.name}") as pool:
                return list(
                    pool.map(lambda stream: self._sync_stream(provider, mapper, connection, stream, full, rank), wanted)
                )
        finally:
            provider.close()

    def _sync_stream(
        self, provider: Provider, mapper: Mapper, connection: Connection, stream: str, full: bool, rank: int
    ) -> StreamReport:
        report = StreamReport(connection=connection.name, provider=connection.provider, stream=stream)
        started = time.monotonic()
        cursor = None if full else self.store.get_cursor(connection.name, stream)
        context = {"connection": connection.name, "stream": stream, "run_id": getattr(self, "run_id", None)}
        try:
            for page in provider.read(stream, cursor):
                if self.stop.is_set():
                    report.notes.append("stopped for shutdown; resumes from the saved cursor")
                    break
                report.pages += 1
                report.records += len(page.records)
                report.notes.extend(page.notes)
                for note in page.notes:
                    logger.warning("%s", note, extra=context)
                mapped, raws, errors = map_with_raws(mapper, stream, page.records)
                for error in errors:
                    logger.warning("skipped: %s", error, extra=context)
                    if len(report.errors) < MAX_REPORTED_ERRORS:
                        report.errors.append(str(error))
                report.skipped += len(errors)
                report.stored += self._store(
                    connection.name, stream, mapper, mapped, page.cursor, rank, provider.kind, raws
                )
                self.progress(report)
        except StopRequested:  # SIGTERM while a request waited for its rate-limit slot
            report.notes.append("stopped for shutdown; resumes from the saved cursor")
        except RateLimitDeferred as exc:
            report.status = "deferred"
            if exc.retry_after is not None:
                until = datetime.now(UTC) + timedelta(seconds=exc.retry_after)
                report.deferred_until = until.isoformat(timespec="seconds")
            report.notes.append(f"deferred by the provider's limit; resumes on a later run ({exc})")
            logger.warning(
                "stream deferred until %s: %s", report.deferred_until or "(no time given)", exc, extra=context
            )
        except (ProviderError, ConnectorError) as exc:
            report.status = "failed"
            report.errors.append(str(exc))
            logger.error("stream failed: %s", exc, extra=context)
        except Exception as exc:  # a bug of ours must not stop the other streams and connections
            report.status = "failed"
            report.errors.append(f"internal error: {type(exc).__name__}: {first_line(exc)}")
            logger.exception("stream failed with an internal error", extra=context)
        report.seconds = round(time.monotonic() - started, 3)
        return report

    def _store(
        self,
        connection: str,
        stream: str,
        mapper: Mapper,
        mapped: list[MappedRecord],
        cursor: str | None,
        rank: int,
        system_kind: str,
        raws: dict[str, dict[str, Any]] | None = None,
    ) -> int:
        spec = mapper.stream(stream)
        kind = spec.record if spec.store == "canonical" else spec.object_type  # refs only
        with self.store.session() as session:
            records = self._with_customer_ids(connection, kind, mapped, session)
            extras = {m.ref.remote_id: to_jsonable_python(_sync_view(m, system_kind)) for m in mapped}
            self.store.store_page(
                connection, stream, kind, records, cursor, session=session, extras=extras, rank=rank, raws=raws
            )
            failpoints.hit("page_written")  # crash tests: the page and its cursor written, not committed
        return len(records)

    def _with_customer_ids(self, connection: str, kind: str, mapped: list[MappedRecord], session: Any) -> list[Any]:
        if kind not in _CUSTOMER_LINKED:
            return [m.record for m in mapped]
        remote = sorted({m.links["customer"] for m in mapped if "customer" in m.links})
        known = self.store.canonical_ids(connection, "customer", remote, session=session) if remote else {}
        out = []
        for m in mapped:
            customer_id = known.get(m.links.get("customer", ""))
            out.append(m.record.model_copy(update={"customer_id": customer_id}) if customer_id else m.record)
        return out


def map_with_raws(
    mapper: Mapper, stream: str, raws: list[dict[str, Any]]
) -> tuple[list[MappedRecord], dict[str, dict[str, Any]], list[MappingError]]:
    """`Mapper.map_page`, keeping each mapped record's raw object by its remote id (the last
    of a repeated id wins, as it does in the store)."""
    mapped: list[MappedRecord] = []
    by_remote_id: dict[str, dict[str, Any]] = {}
    errors: list[MappingError] = []
    for raw in raws:
        try:
            one = mapper.map_one(stream, raw)
        except MappingError as exc:
            errors.append(exc)
            continue
        mapped.append(one)
        by_remote_id[one.ref.remote_id] = raw
    return mapped, by_remote_id, errors


@dataclass
class RemapStream:
    """What `remap_book` did for one stream: the stored payloads it mapped again (`records`),
    those it stored (`stored`), those the current mapping cannot read (`skipped`, with the
    first `errors`), and the refs it could not remap for want of a payload (`without_raw`)."""

    connection: str
    provider: str
    stream: str
    records: int = 0
    stored: int = 0
    skipped: int = 0
    without_raw: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class RemapReport:
    streams: list[RemapStream]
    links: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> rule -> count

    @property
    def ok(self) -> bool:
        """Every stored payload mapped and stored again."""
        return all(s.skipped == 0 for s in self.streams)

    @property
    def without_raw(self) -> dict[str, int]:
        """connection -> its refs stored before raw payloads were kept (only those with some)."""
        out: dict[str, int] = {}
        for s in self.streams:
            if s.without_raw:
                out[s.connection] = out.get(s.connection, 0) + s.without_raw
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "streams": [asdict(s) for s in self.streams],
            "without_raw": self.without_raw,
            "links": self.links,
        }


def remappable_streams(connection: Connection, registry: Registry | None = None) -> list[str]:
    """The streams of the connection's current mapping, the ones `remap_book` can walk."""
    return list(mapper_for(connection, registry).spec.streams)


def remap_book(
    config: Config,
    store: Store,
    registry: Registry | None = None,
    *,
    connections: Sequence[str] = (),
    streams: Sequence[str] = (),
) -> RemapReport:
    """Map every stored raw payload of the chosen connections and streams again through the
    connection's current mapping (its config overrides applied) and store the result as a sync
    would, a batch of refs at a time; no provider is opened, so no request is made. Cursors
    stay as they are. Linking is the next stage (`connector.pipeline.link`)."""
    engine = SyncEngine(config, store, registry)
    chosen = [config.connection(name) for name in connections] or list(config.connections.values())
    reports: list[RemapStream] = []
    for connection in chosen:
        mapper = mapper_for(connection, engine.registry)
        kind = engine.registry.get(connection.provider).kind
        rank = rank_of(connection, kind)
        for stream in [s for s in mapper.spec.streams if not streams or s in streams]:
            report = RemapStream(connection=connection.name, provider=connection.provider, stream=stream)
            object_type = mapper.stream(stream).object_type
            report.without_raw = store.count_without_raw(connection.name, object_type)
            for batch in store.raw_batches(connection.name, object_type):
                payloads = [unpack(ref.raw) for ref in batch]
                mapped, raws, errors = map_with_raws(mapper, stream, payloads)
                report.records += len(payloads)
                report.skipped += len(errors)
                report.errors += [str(e) for e in errors][: MAX_REPORTED_ERRORS - len(report.errors)]
                report.stored += engine._store(connection.name, stream, mapper, mapped, None, rank, kind, raws)
            reports.append(report)
    return RemapReport(streams=reports)


def _sync_view(mapped: MappedRecord, system_kind: str) -> dict[str, Any]:
    """What the mapping learnt beside the record, kept in its view under `_sync`: links, hints,
    deletion, the kind of system it came from (which decides what is a receivable), and the
    original length of each text the mapping cut (only when it cut one)."""
    view: dict[str, Any] = {
        "links": mapped.links,
        "hints": mapped.hints,
        "deleted": mapped.deleted,
        "kind": system_kind,
    }
    if mapped.truncated:
        view["truncated"] = mapped.truncated
    return view
