"""`connector sandbox generate` writes a book and its truth; `--size traps` is the trap book."""

from __future__ import annotations

import json

from connector.sandbox import read_data
from connector.sandbox.generator import dumps
from connector.sandbox.generator_traps import TRAPS, generate_traps


def test_the_trap_book_is_written_with_its_truth(run_cli, tmp_path):
    result = run_cli("sandbox", "generate", "--seed", "3", "--size", "traps", "--data", "b.json", "--truth", "t.json")
    assert result.exit_code == 0, result.stderr
    truth = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    assert truth["size"] == "traps" and truth["seed"] == 3
    assert set(TRAPS) <= {p["trap"] for p in truth["payments"]}
    assert f"{len(truth['payments'])} payments" in result.stdout
    # the file is a book the sandbox serves, exactly the generated one
    data = read_data(tmp_path / "b.json")
    assert data["stripe"]["disputes"] and dumps(data) == dumps(generate_traps(3).data)


def test_an_ordinary_book_by_size(run_cli, tmp_path):
    result = run_cli("sandbox", "generate", "--seed", "7", "--data", "b.json", "--truth", "t.json")
    assert result.exit_code == 0, result.stderr
    truth = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    assert truth["size"] == "small" and "trap" not in truth["payments"][0]


def test_an_unknown_book_is_refused(run_cli):
    result = run_cli("sandbox", "generate", "--seed", "1", "--size", "huge", "--data", "b.json", "--truth", "t.json")
    assert result.exit_code == 2 and "'huge' is not one of" in result.stderr
    assert "'traps'" in result.stderr
