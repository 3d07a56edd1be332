"""Serve a provider's official OpenAPI document with Stoplight Prism on loopback.

`.ci/run` installs Prism into `.prism/` (npm `@stoplight/prism-cli@5`). Without it the
contract tests skip, except under CI=true, where they fail: CI must prove the contract.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from support.openapi import specs_dir

ROOT = Path(__file__).resolve().parents[2]
PRISM = ROOT / ".prism" / "node_modules" / ".bin" / "prism"


def prism_command() -> list[str]:
    node = shutil.which("node")
    if PRISM.exists() and node:
        return [node, str(PRISM)]
    reason = f"Prism is not installed at {PRISM} (run: npm install --prefix .prism @stoplight/prism-cli@5)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def prism(spec_name: str, *, dynamic: bool = False, seed: int = 1, start_timeout: float | None = None) -> Iterator[str]:
    """Start Prism on `spec_name` (a file in ../shared/specs); yield its base URL.

    Prism parses the whole document before it listens: Xero's takes about 30 s on an idle
    machine and well over 2 minutes on two busy cores, so the wait is generous
    (`CONNECTOR_TEST_PRISM_START_TIMEOUT` seconds, 360 by default); it ends as soon as Prism
    listens or exits."""
    if start_timeout is None:
        start_timeout = float(os.environ.get("CONNECTOR_TEST_PRISM_START_TIMEOUT", "360"))
    command = prism_command()
    port = free_port()
    args = [*command, "mock", "-h", "127.0.0.1", "-p", str(port)]
    if dynamic:
        args += ["-d", "--seed", str(seed)]
    args.append(str(specs_dir() / spec_name))
    log = open(os.devnull, "wb")
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        deadline = time.monotonic() + start_timeout
        assert process.stdout is not None
        while True:
            line = process.stdout.readline()
            if "Prism is listening" in line:
                break
            if not line and process.poll() is not None:
                raise AssertionError(f"Prism exited with {process.returncode} before listening")
            if time.monotonic() > deadline:
                raise AssertionError(f"Prism did not start within {start_timeout} s")
        # Keep draining its output so a chatty Prism never blocks on a full pipe.
        threading.Thread(target=process.stdout.read, daemon=True).start()
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class ExchangeRecorder:
    """Wraps httpx's real transport to keep every request and response that crossed it, so a
    contract test can read Prism's `sl-violations` header for each request."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = httpx.HTTPTransport.handle_request
        recorder = self

        def handle_request(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
            response = original(transport, request)
            response.read()
            recorder.exchanges.append((request, response))
            return response

        monkeypatch.setattr(httpx.HTTPTransport, "handle_request", handle_request)

    def problems(self) -> list[str]:
        found = []
        for request, response in self.exchanges:
            where = f"{request.method} {request.url.path}"
            if response.status_code >= 400:
                found.append(f"{where}: HTTP {response.status_code} {response.text[:300]}")
            violations = response.headers.get("sl-violations")
            if violations and '"location":["request' in violations.replace(" ", ""):
                found.append(f"{where}: request violates the document: {violations[:500]}")
        return found
