"""bench/pull.py on the small book: the sandbox in a child process answers and counts as it
does in this process, and every stream reads the book exactly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import pull  # noqa: E402  (bench/pull.py; the child process imports it by this name too)


def _streams(output: str) -> dict[tuple[str, str], tuple[str, ...]]:
    """(provider, stream) -> (records, requests, 429s, note) of each stream's line."""
    rows: dict[tuple[str, str], tuple[str, ...]] = {}
    for line in output.splitlines():
        cells = line.split()
        if len(cells) >= 9 and cells[0] in pull.PROVIDERS and cells[1] != "TOTAL":
            rows[(cells[0], cells[1])] = (cells[2], cells[3], cells[4], line.split("%", 1)[1].strip())
    return rows


def _run(capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    argv = ["--size", "small", "--providers", "xero,hubspot", "--latency-ms", "0", "--no-official", *extra]
    assert pull.main(argv) == 0
    return capsys.readouterr().out


def test_the_sandbox_in_a_child_process_counts_every_request_as_in_process(capsys):
    child = _run(capsys)
    in_process = _run(capsys, "--in-process")
    assert "sandbox in a child process (pid " in child
    assert "sandbox in this process" in in_process
    streams = _streams(child)
    assert {provider for provider, _ in streams} == {"xero", "hubspot"} and len(streams) == 8
    assert streams == _streams(in_process)
    for (provider, stream), (_records, requests, too_many, note) in streams.items():
        assert note == "", f"{provider} {stream}: {note}"
        assert int(requests.replace(",", "")) >= 1 and too_many == "0"


def test_the_child_reports_the_book_and_stops_when_asked():
    served = pull.ChildProcess(1, "small", ["xero"], 0, "off")
    try:
        assert served.loaded.book["xero"]["Invoices"] > 0
        assert served.url("xero") == f"{served.base_url}/xero"
        assert served.snapshot("xero") == {}
    finally:
        served.close()
    assert served.process.exitcode == 0
