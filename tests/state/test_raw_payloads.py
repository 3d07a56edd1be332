"""The raw payloads' stored form: a zlib stream, whichever settings wrote it."""

from __future__ import annotations

import json
import zlib

from connector.state.raw import pack, raw_json, unpack


def payload(lines: int) -> dict[str, object]:
    return {
        "id": "in_1MtHbELkdIwHu7ixl4OzzPMv",
        "object": "invoice",
        "amount_due": 2000,
        "customer_email": "jenny.rosen@example.com",
        "lines": {"data": [{"id": f"il_{n}", "amount": 100 + n, "description": f"Seat {n}"} for n in range(lines)]},
        "metadata": {"xero_invoice_id": "a1b2", "note": "ünïcödé"},
    }


def test_a_payload_packed_is_a_zlib_stream_any_reader_opens_and_unpacks_equal():
    for lines in (0, 3, 2_000):  # a small record, and one far larger than the window
        raw = payload(lines)
        stored = pack(raw_json(raw))
        assert unpack(stored) == raw
        assert json.loads(zlib.decompress(stored)) == raw
        assert len(stored) < len(raw_json(raw)), "compressed"


def test_payloads_stored_by_earlier_versions_unpack():
    raw = payload(40)
    assert unpack(zlib.compress(raw_json(raw), 1)) == raw
    assert unpack(zlib.compress(raw_json(raw), 6)) == raw
