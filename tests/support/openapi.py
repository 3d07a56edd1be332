"""Check JSON bodies against the providers' own OpenAPI documents in ../shared/specs.

    check_response("xero", "GET", "/Invoices", body)             # raises AssertionError
    check_response("stripe", "POST", "/v1/invoices/in_1/pay", body)

Paths are the provider's API paths (the spec's), without our base_url prefix. The documents
are loaded once per process (Stripe's takes a few seconds). Spec self-validation is off: the
official Xero document does not pass it (string defaults on boolean fields), and the document
is the peer we hold our shapes against, not something we fix.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs"

DOCUMENTS = {
    "stripe": ("stripe-spec3.yaml", "https://api.stripe.com", ""),
    "xero": ("xero_accounting.yaml", "https://api.xero.com", "/api.xro/2.0"),
    "hubspot": ("hubspot-crm-objects.json", "https://api.hubapi.com", ""),
}


def specs_dir() -> Path:
    if not SPECS.is_dir():
        raise AssertionError(f"the providers' OpenAPI documents are expected in {SPECS}")
    return SPECS


@lru_cache(maxsize=None)
def document(provider: str) -> OpenAPI:
    name, _, _ = DOCUMENTS[provider]
    return OpenAPI.from_file_path(str(specs_dir() / name), config=Config(spec_validator_cls=None))


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
        details = [str(e).splitlines()[0] for e in getattr(exc.__cause__, "schema_errors", None) or getattr(exc, "schema_errors", None) or []]
        raise AssertionError(f"{provider} {method} {path} -> {status}: {exc} {details}") from None
