"""`connector sandbox serve` from the command line: serves a generated book until SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest

pytestmark = pytest.mark.slow


def test_sandbox_serve_answers_each_provider_and_stops_on_sigterm(tmp_path):
    truth = tmp_path / "truth.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connector",
            "sandbox",
            "serve",
            "--port",
            "0",
            "--seed",
            "5",
            "--size",
            "small",
            "--limits",
            "off",
            "--truth",
            str(truth),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        urls = {}
        for _ in range(6):
            name, _, url = process.stdout.readline().strip().partition(" ")
            urls[name] = url.strip()
        stripe = httpx.get(urls["stripe"] + "/v1/invoices?limit=3", headers={"Authorization": "Bearer sk_test_x"})
        assert stripe.status_code == 200 and len(stripe.json()["data"]) == 3
        xero = httpx.get(urls["xero"] + "/Invoices", headers={"Authorization": "Bearer t", "xero-tenant-id": "any"})
        assert xero.status_code == 200 and xero.json()["Invoices"]
        assert httpx.get(urls["stripe"] + "/v1/invoices").status_code == 401  # credentials required
        journal = httpx.get(urls["journal"])
        assert journal.status_code == 200 and journal.json() == []
        assert truth.exists() and '"payments"' in truth.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_sandbox_serve_refuses_bad_arguments_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "connector", "sandbox", "serve", "--fail-rate", "1.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--fail-rate" in result.stderr and "Traceback" not in result.stderr
