"""Check JSON bodies against the providers' own OpenAPI documents in tests/contract/specs/.

    check_response("xero", "GET", "/Invoices", body)             # raises AssertionError
    check_response("stripe", "POST", "/v1/invoices/in_1/pay", body)

Paths are the provider's API paths (the spec's), without our base_url prefix. The documents
are loaded once per process (Stripe's takes a few seconds). Spec self-validation is off: the
official Xero document does not pass it (string defaults on boolean fields), and the document
is the peer we hold our shapes against, not something we fix.

The documents are unmodified copies vendored in the repository (tests/contract/specs/README.md
names their sources, commits and licences), so the tests need nothing beside the checkout.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

# The repository's own copies (tests/support/openapi.py -> tests/contract/specs).
SPECS = Path(__file__).resolve().parents[1] / "contract" / "specs"

DOCUMENTS = {
    "stripe": ("stripe-spec3.yaml", "https://api.stripe.com", ""),
    "xero": ("xero_accounting.yaml", "https://api.xero.com", "/api.xro/2.0"),
    "hubspot": ("hubspot-crm-objects.json", "https://api.hubapi.com", ""),
}


def specs_dir() -> Path:
    if not SPECS.is_dir():
        raise AssertionError(f"the providers' OpenAPI documents are expected in {SPECS}")
    return SPECS


def _allow_declared_nulls(node: Any) -> None:
    """OpenAPI 3.0 lets `nullable: true` stand beside `anyOf` or `enum` (Stripe does this on
    every expandable field); openapi-core then still refuses null. Make that null explicit in
    the loaded copy (`{"enum": [null]}` as one more branch, null in the enum) so the check
    follows the document's meaning. The files themselves are never changed."""
    if isinstance(node, dict):
        if node.get("nullable") is True:
            for key in ("anyOf", "oneOf"):
                if isinstance(node.get(key), list) and {"enum": [None]} not in node[key]:
                    node[key].append({"enum": [None]})
            if isinstance(node.get("enum"), list) and None not in node["enum"]:
                node["enum"].append(None)
        for value in node.values():
            _allow_declared_nulls(value)
    elif isinstance(node, list):
        for value in node:
            _allow_declared_nulls(value)


@cache
def document(provider: str) -> OpenAPI:
    name, _, _ = DOCUMENTS[provider]
    path = specs_dir() / name
    text = path.read_text(encoding="utf-8")
    if name.endswith(".json"):
        data = json.loads(text)
    else:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    _allow_declared_nulls(data)
    return OpenAPI.from_dict(data, config=Config(spec_validator_cls=None))


def check_response(
    provider: str, method: str, path: str, body: Any, *, status: int = 200, query: dict[str, str] | None = None
) -> None:
    """Assert that `body` is what the provider's document allows for METHOD PATH -> status."""
    _, host, prefix = DOCUMENTS[provider]
    request = MockRequest(host, method.lower(), prefix + path, args=query or {})
    response = MockResponse(json.dumps(body, default=str).encode(), status_code=status, content_type="application/json")
    try:
        document(provider).validate_response(request, response)
    except Exception as exc:  # openapi-core raises several classes; all mean "not the shape"
        details = [
            str(e).splitlines()[0]
            for e in getattr(exc.__cause__, "schema_errors", None) or getattr(exc, "schema_errors", None) or []
        ]
        raise AssertionError(f"{provider} {method} {path} -> {status}: {exc} {details}") from None
