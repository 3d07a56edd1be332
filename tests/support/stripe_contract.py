"""Our Stripe requests held against the official document's parameter lists, in-process.

Prism is not used for Stripe (issue 3): every request the adapter sends in the tests is
matched to its operation in tests/contract/specs/stripe-spec3.yaml, and each query parameter name
(`created[gte]` is `created`, with the key `gte` in its schema; `types[]` is `types`;
`expand[]` is `expand`) must be one of the operation's `parameters`, and each form field of a
POST one of its `application/x-www-form-urlencoded` request body's properties.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any
from urllib.parse import parse_qsl

import httpx

from support.openapi import document

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


@cache
def _templates() -> list[tuple[re.Pattern[str], str, int]]:
    """Each document path as a pattern, with how many literal segments it has (the most
    literal match wins: /v1/invoices/upcoming before /v1/invoices/{invoice})."""
    with (document("stripe").spec / "paths").open() as paths:
        names = list(paths)
    out = []
    for name in names:
        segments = name.strip("/").split("/")
        pattern = "/".join("[^/]+" if s.startswith("{") else re.escape(s) for s in segments)
        literal = sum(not s.startswith("{") for s in segments)
        out.append((re.compile(f"^/{pattern}$"), name, literal))
    return out


def operation_path(path: str) -> str | None:
    matches = [(literal, name) for pattern, name, literal in _templates() if pattern.match(path)]
    return max(matches)[1] if matches else None


@cache
def _query_parameters(path: str, method: str) -> dict[str, Any]:
    with (document("stripe").spec / "paths" / path / method).open() as op:
        return {p["name"]: p.get("schema") or {} for p in op.get("parameters", []) if p.get("in") == "query"}


@cache
def _form_fields(path: str, method: str) -> frozenset[str]:
    with (document("stripe").spec / "paths" / path / method).open() as op:
        content = (op.get("requestBody") or {}).get("content") or {}
        schema = (content.get("application/x-www-form-urlencoded") or {}).get("schema") or {}
        return frozenset(schema.get("properties") or {})


def _object_keys(schema: dict[str, Any]) -> set[str] | None:
    """The keys a deepObject parameter may have (None: not an object parameter)."""
    branches = schema.get("anyOf") or schema.get("oneOf") or [schema]
    keys: set[str] = set()
    found = False
    for branch in branches:
        if branch.get("type") == "object" or "properties" in branch:
            found = True
            keys |= set(branch.get("properties") or {})
    return keys if found else None


def problems(request: httpx.Request) -> list[str]:
    """What in `request` the document does not have (empty: all documented)."""
    method = request.method.lower()
    path = operation_path(request.url.path)
    where = f"{request.method} {request.url.path}"
    if path is None:
        return [f"{where}: no such path in the Stripe document"]
    with (document("stripe").spec / "paths" / path).open() as item:
        if method not in item:
            return [f"{where}: the document has no {request.method} on {path}"]
    operation = f"{request.method} {path}"
    out = []
    allowed = _query_parameters(path, method)
    for key, _ in request.url.params.multi_items():
        match = _KEY.match(key)
        base = match.group(1) if match else key
        if base not in allowed:
            out.append(f"query parameter {key!r} ({base!r}) is not a parameter of {operation}")
            continue
        sub = re.findall(r"\[([^\[\]]+)\]", match.group(2)) if match else []
        if sub:
            keys = _object_keys(allowed[base])
            if keys is not None and sub[0] not in keys:
                out.append(f"query parameter {key!r}: {base!r} of {operation} has no key {sub[0]!r}")
    if request.method == "POST":
        fields = _form_fields(path, method)
        for key, _ in parse_qsl(request.content.decode(), keep_blank_values=True):
            match = _KEY.match(key)
            base = match.group(1) if match else key
            if base not in fields:
                out.append(f"form field {key!r} ({base!r}) is not in the request body of {operation}")
    return out


def assert_documented(requests: list[httpx.Request]) -> None:
    found = [p for r in requests for p in problems(r)]
    assert not found, "requests the Stripe document does not allow:\n" + "\n".join(sorted(set(found)))
