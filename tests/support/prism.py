"""Serve a provider's official OpenAPI document with Stoplight Prism on loopback.

The documents are the repository's unmodified copies in tests/contract/specs/ (see its
README.md). `.ci/run` installs Prism into `.prism/` (npm `@stoplight/prism-cli@5`). Without it
the contract tests skip, except under CI=true, where they fail: CI must prove the contract.

Prism serves one document per port. `merge_documents` writes one temporary document holding
the paths and components of several (HubSpot's CRM objects and v4 associations documents), so
one Prism can serve an adapter that calls both; the vendored files are never changed.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
def prism(
    spec: str | Path, *, dynamic: bool = False, seed: int = 1, start_timeout: float | None = None
) -> Iterator[str]:
    """Start Prism on `spec` (a file name in tests/contract/specs/, or the path of a document
    such as one `merge_documents` wrote); yield its base URL.

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
    args.append(str(spec if isinstance(spec, Path) else specs_dir() / spec))
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


# Keywords that annotate a schema without changing what it accepts.
_ANNOTATIONS = frozenset({"description", "example", "examples", "title"})


def _without_annotations(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_annotations(v) for k, v in node.items() if k not in _ANNOTATIONS}
    if isinstance(node, list):
        return [_without_annotations(v) for v in node]
    return node


def merge_documents(names: Sequence[str], target: Path) -> Path:
    """Write to `target` one OpenAPI document with the paths and components of the documents
    `names` (files in tests/contract/specs/, JSON), for one Prism to serve them all.

    The first document is the base (its `info`, `servers` and so on stay). Paths must be
    disjoint. A component present in several documents must be the same up to annotations
    (description, example, title): the first document's copy is kept. HubSpot's documents
    differ that way on `ErrorDetail`, `NextPage` and `PublicObjectId`; their `oauth2` security
    schemes list different scopes, so an OAuth2 scheme gets the union of the scopes, every
    operation's scopes stay declared. Anything else that clashes is an error, not a guess."""
    documents = [json.loads((specs_dir() / name).read_text(encoding="utf-8")) for name in names]
    merged = copy.deepcopy(documents[0])
    for name, document in zip(names[1:], documents[1:], strict=True):
        paths = merged.setdefault("paths", {})
        clash = sorted(set(paths) & set(document.get("paths") or {}))
        if clash:
            raise AssertionError(f"{name} repeats paths of {names[0]}: {clash}")
        paths.update(copy.deepcopy(document.get("paths") or {}))
        for section, entries in (document.get("components") or {}).items():
            have = merged.setdefault("components", {}).setdefault(section, {})
            for key, value in entries.items():
                if key not in have:
                    have[key] = copy.deepcopy(value)
                elif section == "securitySchemes" and value.get("type") == have[key].get("type") == "oauth2":
                    for flow, settings in (value.get("flows") or {}).items():
                        mine = have[key].setdefault("flows", {}).setdefault(flow, copy.deepcopy(settings))
                        mine.setdefault("scopes", {}).update(
                            {s: d for s, d in (settings.get("scopes") or {}).items() if s not in mine["scopes"]}
                        )
                elif _without_annotations(value) != _without_annotations(have[key]):
                    raise AssertionError(f"components/{section}/{key} differs between {names[0]} and {name}")
        known = {tag.get("name") for tag in merged.get("tags") or []}
        for tag in document.get("tags") or []:
            if tag.get("name") not in known:
                merged.setdefault("tags", []).append(copy.deepcopy(tag))
                known.add(tag.get("name"))
    target.write_text(json.dumps(merged), encoding="utf-8")
    return target


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
