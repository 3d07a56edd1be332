"""`connector sandbox serve` refuses what it cannot serve in one line with exit 2: a data file
that is not a usable book, a port out of range or taken, `--size` without a book to size.
And the same checks from Python, and the sandbox's answer to a path it does not serve."""

from __future__ import annotations

import socket

import httpx
import pytest

from connector.sandbox import Sandbox, SandboxDataError
from support.sandbox_harness import running


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"stripe": {"invoices": [\n', "--data book.json: not JSON (line 2 column 1"),
        ("[1, 2]", "--data book.json: the top level must be an object"),
        ('{"stripe": {"invoices": [{"object": "invoice"}]}}', "--data book.json: stripe invoices[0] has no id"),
        ('{"xero": {"Invoices": [{"Type": "ACCREC"}]}}', "--data book.json: xero Invoices[0] has no InvoiceID"),
        ('{"xero": {"Payments": [7]}}', "--data book.json: xero Payments[0] must be an object, not a number"),
        ('{"hubspot": {"deals": "oops"}}', "--data book.json: hubspot deals must be a list of objects, not a string"),
        (
            '{"hubspot": {"deals": [{"id": "1", "properties": "x"}]}}',
            "--data book.json: hubspot deals[0] properties must be an object",
        ),
        ('{"hubspot": {"tickets": []}}', "--data book.json: hubspot: unknown list 'tickets'"),
        ('{"shopify": {}}', "--data book.json: unknown section 'shopify'"),
        ('{"credentials": {"stripe": "sk_test_x"}}', "--data book.json: credentials stripe must be a list"),
    ],
)
def test_a_data_file_that_is_no_book_is_one_line_naming_the_place(run_cli, tmp_path, content, message):
    (tmp_path / "book.json").write_text(content, encoding="utf-8")
    line = _one_error_line(run_cli("sandbox", "serve", "--data", "book.json"))
    assert line.startswith(f"error: {message}"), line


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_a_port_out_of_range_is_a_usage_error(run_cli, port):
    line = _one_error_line(run_cli("sandbox", "serve", "--port", port))
    assert "--port" in line and "0<=x<=65535" in line


def test_a_port_in_use_says_it_cannot_listen_there(run_cli):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_error_line(run_cli("sandbox", "serve", "--port", str(port)))
    assert line == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"


@pytest.mark.parametrize("args", [["--size", "large"], ["--size", "small", "--data", "book.json"]])
def test_size_without_seed_is_refused_not_ignored(run_cli, tmp_path, args):
    (tmp_path / "book.json").write_text("{}", encoding="utf-8")
    line = _one_error_line(run_cli("sandbox", "serve", *args))
    assert "--size needs --seed" in line


def test_the_python_api_refuses_bad_data_naming_the_place():
    with pytest.raises(SandboxDataError, match=r"^xero Invoices\[1\] has no InvoiceID$"):
        Sandbox({"xero": {"Invoices": [{"InvoiceID": "a"}, {"Type": "ACCREC"}]}})


def test_an_unknown_provider_path_names_every_provider_served():
    with running() as sandbox:
        answer = httpx.get(f"{sandbox.base_url}/shopify/orders")
    assert answer.status_code == 404
    assert (
        answer.json()["error"] == "no provider at /shopify; the sandbox serves /stripe, /xero, /hubspot and /quickbooks"
    )
