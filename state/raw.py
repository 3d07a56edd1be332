"""The providers' raw payloads kept with their refs (`refs.raw`), and the readers of them.

A ref keeps the object its provider returned, before any mapping: its JSON, compressed with
zlib. With it, `connector remap` maps the stored book again through a changed mapping without
a single provider request, and `connector explain --raw` shows the source of a field.

zlib is the standard library's and enough here: provider JSON is repetitive text (keys repeat
on every object) that it shrinks several times over, and a format of our own choosing needs no
other reader than this module. Level 1, since a first sync compresses every record of the book:
on the sandbox's Stripe invoices (2026-12-02) it shrinks them 2.6 times against 2.8 for level 6,
in 32 us a record against 49. An 8 KiB window and a smaller hash table (`WINDOW_BITS`,
`MEMORY_LEVEL`) rather than zlib's 32 KiB and 128 KiB: a record is a few KiB, and setting up
the larger state took most of each record's time (the large book's 600,000 payloads, sampled
2026-12-07: the same sizes within 0.3 %, 2-3 times faster). `zlib.decompress` reads either.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic_core import to_json
from sqlalchemy.orm import Session

from connector.state.tables import ref_order, table
from connector.state.upsert import mine, mine_by_key

COMPRESSION_LEVEL = 1
WINDOW_BITS, MEMORY_LEVEL = 13, 6
# Refs read at a time by `raw_batches`: enough for few round trips, few enough that a batch of
# decoded payloads stays a few megabytes whatever the size of the book.
RAW_BATCH = 500


def raw_json(payload: Any) -> bytes:
    """A raw payload as JSON, encoded once (what is hashed and compressed)."""
    return to_json(payload)


def pack(encoded: bytes) -> bytes:
    """The compressed form kept in `refs.raw` (a zlib stream, as `zlib.compress` writes)."""
    packer = zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, WINDOW_BITS, MEMORY_LEVEL)
    return packer.compress(encoded) + packer.flush()


def unpack(stored: bytes) -> Any:
    """The raw payload back from its stored form."""
    return json.loads(zlib.decompress(stored))


@dataclass(frozen=True)
class RawRef:
    """One stored ref with its raw payload (still compressed): `ref_id` orders the batches."""

    ref_id: int
    remote_id: str
    raw: bytes


def raw_batches(
    session_factory: Callable[[], AbstractContextManager[Session]],
    system: str,
    object_type: str,
    batch_size: int = RAW_BATCH,
) -> Iterator[list[RawRef]]:
    """The refs of `system` and `object_type` that keep a raw payload, `batch_size` at a time
    in the order of their ids, each batch read in a transaction of its own (`session_factory()`
    opens one): never the whole book in memory. Only the refs there when the walk starts are
    read, so refs a caller stores meanwhile (a mapping that now gives other ids) are not walked."""
    refs = table("refs")
    with session_factory() as session:
        last = session.execute(
            sa.select(sa.func.max(refs.c.id)).where(
                mine(session, refs), refs.c.system == system, refs.c.object_type == object_type
            )
        ).scalar()
    after = 0
    while last is not None and after < last:
        with session_factory() as session:
            query = (
                sa.select(refs.c.id, refs.c.remote_id, refs.c.raw)
                .where(
                    mine_by_key(session, refs),  # a walk along the key: 8.8 s -> 0.2 s for 20 batches
                    refs.c.system == system,
                    refs.c.object_type == object_type,
                    refs.c.raw.is_not(None),
                    refs.c.id > after,
                    refs.c.id <= last,
                )
                .order_by(refs.c.id)
                .limit(batch_size)
            )
            batch = [RawRef(ref_id, remote_id, raw) for ref_id, remote_id, raw in session.execute(query)]
        if not batch:
            return
        after = batch[-1].ref_id
        yield batch


def count_without_raw(session: Session, system: str, object_type: str) -> int:
    """How many refs of `system` and `object_type` keep no raw payload (stored before 0016)."""
    refs = table("refs")
    query = sa.select(sa.func.count()).where(
        mine(session, refs),
        refs.c.system == system,
        refs.c.object_type == object_type,
        refs.c.raw.is_(None),
    )
    return int(session.execute(query).scalar() or 0)


def raw_payloads(session: Session, entity_kind: str, entity_id: str) -> list[dict[str, Any]]:
    """Each system's raw payload of one record (None where none was kept), by system, object
    type and remote id."""
    refs = table("refs")
    query = (
        sa.select(refs.c.system, refs.c.object_type, refs.c.remote_id, refs.c.raw)
        .where(mine(session, refs), refs.c.entity_kind == entity_kind, refs.c.entity_id == entity_id)
        .order_by(*ref_order(refs))
    )
    return [
        {"system": system, "type": object_type, "id": remote_id, "raw": None if raw is None else unpack(raw)}
        for system, object_type, remote_id, raw in session.execute(query)
    ]
