"""Running a sandbox on a real loopback socket for one test, and clients for each face."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from connector.sandbox import Sandbox

TENANT = "tenant-1"


@contextmanager
def running(data: dict[str, Any] | None = None, **options: Any) -> Iterator[Sandbox]:
    options.setdefault("limits", "off")
    with Sandbox(data, **options) as sandbox:
        yield sandbox


def stripe(sandbox: Sandbox, key: str = "sk_test_sandbox") -> httpx.Client:
    return httpx.Client(base_url=sandbox.url("stripe"), headers={"Authorization": f"Bearer {key}"}, timeout=10)


def xero(sandbox: Sandbox, token: str = "xero-token", tenant: str = TENANT) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.url("xero"), headers={"Authorization": f"Bearer {token}", "xero-tenant-id": tenant}, timeout=10
    )


def hubspot(sandbox: Sandbox, token: str = "pat-na1-sandbox") -> httpx.Client:
    return httpx.Client(base_url=sandbox.url("hubspot"), headers={"Authorization": f"Bearer {token}"}, timeout=10)


def effects(sandbox: Sandbox, provider: str | None = None) -> list[str]:
    return [e["effect"] for e in sandbox.journal if provider in (None, e["provider"])]


def check_hubspot_error(body: Any) -> None:
    """HubSpot's document types its error answers `*/*`, which the response checker cannot
    parse as JSON: hold the body against the document's `Error` schema directly."""
    import json

    import jsonschema

    from support.openapi import specs_dir

    spec = json.loads((specs_dir() / "hubspot-crm-objects.json").read_text())
    schema = {"$ref": "#/components/schemas/Error", "components": spec["components"]}
    jsonschema.validate(body, schema)
