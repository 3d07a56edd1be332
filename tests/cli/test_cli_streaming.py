"""A long report printed as its rows come: the JSON document is the one the rows make, a row
a line; rows kept on disk come back as they went in, as often as read."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from connector.cli.streaming import RowSpool, echo_json_rows

ROWS: list[dict[str, Any]] = [
    {"id": "inv1", "total": "10.00", "customer": {"id": "c1", "name": 'Ünïcode & Co "quoted"'}, "refs": []},
    {"id": "inv2", "total": "1.000", "customer": {"id": None, "name": "(unknown customer)"}, "refs": [{"a": 1}]},
    {"id": "inv3", "total": "7", "flags": [True, False, None], "days": 0},
]


def printed(rows: list[dict[str, Any]], consumed: list[int] | None = None) -> str:
    out = io.StringIO()
    head = {"as_of": "2026-12-03", "filters": {"status": None, "customers": ["a", "b"]}}

    def tail() -> dict[str, Any]:
        if consumed is not None:
            consumed.append(len(rows))
        return {"totals": [{"currency": "USD", "invoices": len(rows)}], "note": "end"}

    echo_json_rows(head, "invoices", iter(rows), tail, out)
    return out.getvalue()


@pytest.mark.parametrize("count", [0, 1, 3])
def test_the_streamed_document_is_the_document_of_its_rows_a_row_a_line(count: int) -> None:
    rows = ROWS[:count]
    text = printed(rows)
    assert json.loads(text) == {
        "as_of": "2026-12-03",
        "filters": {"status": None, "customers": ["a", "b"]},
        "invoices": rows,
        "totals": [{"currency": "USD", "invoices": count}],
        "note": "end",
    }
    lines = text.splitlines()
    assert [json.loads(line.strip().rstrip(",")) for line in lines if line.startswith('    {"id": ')] == rows
    assert lines[0] == "{" and lines[-1] == "}" and '  "as_of": "2026-12-03",' in lines
    if not rows:
        assert '  "invoices": [],' in lines


def test_the_tail_is_asked_for_once_every_row_is_written() -> None:
    seen: list[int] = []
    printed(ROWS, seen)
    assert seen == [3]


def test_a_spool_gives_its_rows_back_in_order_as_often_as_read() -> None:
    with RowSpool() as spool:
        for row in ROWS[:2]:
            spool.add(row)
        assert list(spool) == ROWS[:2]
        spool.add(ROWS[2])  # after a read, a row still goes after the last
        assert list(spool) == ROWS and spool.count == 3
        assert list(spool.map(lambda r: r["id"])) == ["inv1", "inv2", "inv3"]
        assert list(spool.map(lambda r: r["id"])) == ["inv1", "inv2", "inv3"]
