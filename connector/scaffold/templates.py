"""The files of a new provider plugin, per kind. `render_files()` fills in the names."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    streams: dict[str, str]  # stream -> mapping block (TOML)
    actions: tuple[str, ...]


_CUSTOMERS = """[streams.customers]
record = "customer"
object_type = "customer"
id = "id"
updated_at = { path = "updated_at", transform = "iso_datetime" }
deleted = { path = "deleted", transform = "bool", default = false }

[streams.customers.fields]
name = "name"
emails = { path = "email", transform = "list" }
"""

_INVOICES = """[streams.invoices]
record = "invoice"
object_type = "invoice"
id = "id"
currency = { path = "currency", transform = "currency" }
updated_at = { path = "updated_at", transform = "iso_datetime" }

[streams.invoices.fields]
number = "number"
issue_date = { path = "issue_date", transform = "iso_date" }
due_date = { path = "due_date", transform = "iso_date" }
subtotal = { path = "subtotal", transform = "money" }   # "minor_units" if the API sends cents
tax = { path = "tax", transform = "money", default = "0" }
total = { path = "total", transform = "money" }
amount_paid = { path = "amount_paid", transform = "money", default = "0" }
status = { path = "status", map = "invoice_status" }

[streams.invoices.links]
customer = "customer_id"
"""

_PAYMENTS = """[streams.{stream}]
record = "payment"
object_type = "payment"
id = "id"
currency = {{ path = "currency", transform = "currency" }}
updated_at = {{ path = "updated_at", transform = "iso_datetime" }}

[streams.{stream}.fields]
amount = {{ path = "amount", transform = "money" }}
received_at = {{ path = "date", transform = "iso_datetime" }}
remittance = "reference"

[streams.{stream}.links]
invoice = "invoice_id"
customer = "customer_id"
"""

_DEALS = """[streams.deals]
record = "invoice"
object_type = "deal"
id = "id"
currency = { path = "currency", transform = "currency" }
updated_at = { path = "updated_at", transform = "iso_datetime" }
deleted = { path = "archived", transform = "bool", default = false }

[streams.deals.fields]
subtotal = { path = "amount", transform = "money" }
tax = { value = "0", transform = "money" }
total = { path = "amount", transform = "money" }
status = { path = "stage", map = "invoice_status" }

[streams.deals.links]
customer = "company_id"
"""

KINDS: dict[str, Kind] = {
    "ledger": Kind(
        {"customers": _CUSTOMERS, "invoices": _INVOICES, "payments": _PAYMENTS.format(stream="payments")},
        ("record_payment", "send_invoice"),
    ),
    "crm": Kind(
        {"companies": _CUSTOMERS.replace("customers", "companies"), "deals": _DEALS},
        ("update_properties", "create_note"),
    ),
    "gateway": Kind(
        {"customers": _CUSTOMERS, "invoices": _INVOICES, "charges": _PAYMENTS.format(stream="charges")}, ("mark_paid",)
    ),
}

_STATUS_MAP = """
# The API's own status values -> draft, open, partially_paid, paid, void, uncollectible.
[status_maps.invoice_status]
draft = "draft"
open = "open"
paid = "paid"
void = "void"
"""

PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "connector-{name}"
version = "0.1.0"
description = "{title} provider plugin for the AR connector"
requires-python = ">=3.11"
dependencies = ["ar-connector"]

# `pip install -e ".[test]"` for the tests: the conformance kit (connector.plugin_testing) runs
# under pytest and respx, which the plugin itself does not need.
[project.optional-dependencies]
test = ["ar-connector[test]"]

# How the connector finds the provider (`connector providers list`).
[project.entry-points."connector.providers"]
{name} = "{package}:{cls}"

[tool.setuptools]
packages = ["{package}"]

[tool.setuptools.package-data]
{package} = ["*.toml"]
"""

INIT = '''"""{title} provider for the AR connector: entry point `{package}:{cls}`."""

from {package}.provider import {cls}
from {package}.settings import {cls}Settings

__all__ = ["{cls}", "{cls}Settings"]
'''

SETTINGS = '''"""Settings of a {title} connection (`[connections.NAME]` with `provider = "{name}"`)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from connector.plugin import ProviderSettings


class {cls}Settings(ProviderSettings):
    """Everything a {title} connection needs. Secrets are SecretStr: never printed or logged.
    For OAuth2 use client_id, client_secret (SecretStr), refresh_token (SecretStr), token_url
    and connector.plugin.OAuthTokenManager instead of an API key."""

    base_url: str = Field(default="https://api.{name}.example", min_length=1)
    api_key: SecretStr
    page_size: int = Field(default=100, ge=1, le=1000)
    requests_per_second: int = Field(default=10, ge=1)
'''

PROVIDER_HEAD = '''"""The {title} provider. Fill in each method; the conformance kit checks them
(run `pytest tests/` in this package; docs/plugins.md in the connector says what each must do).
Import from the connector only what `connector.plugin` exports: everything else is internal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from connector.plugin import (
    Action,
    ActionResult,
    BearerAuth,
    Page,
    Provider,
    ProviderHttp,
    ProviderSettings,
    RateLimiter,
    RetryPolicy,
    TokenStore,
)
from {package}.settings import {cls}Settings


class {cls}(Provider):
    name = "{name}"
    kind = "{kind}"
    settings_model = {cls}Settings
    mapping_file = "{package}:mapping.toml"
    streams = {streams!r}
    actions = {actions!r}

    settings: {cls}Settings

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        connection: str | None = None,
        token_store: TokenStore | None = None,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        super().__init__(settings, connection=connection, token_store=token_store)
        s = self.settings
        # All HTTP goes through ProviderHttp: retries (429/5xx, Retry-After), rate limits,
        # typed errors, secrets kept out of logs.
        self.http = ProviderHttp(
            self.name,
            base_url=s.base_url,
            auth=BearerAuth(s.api_key),
            rate_limiter=rate_limiter
            or RateLimiter.from_spec({{"default": [(s.requests_per_second, 1)]}}, provider=self.name),
            retry=retry,
            timeout=s.timeout_seconds,
        )

    def close(self) -> None:
        self.http.close()
'''

READ = '''
    def read_{stream}(self, cursor: str | None) -> Iterator[Page]:
        """Pages of {stream} changed since `cursor` (all when None), oldest change first.
        Each Page carries the cursor that is safe to save once it is stored; raise
        PaginationLoopError on a repeated page token (connector.plugin.iter_pages does)."""
        raise NotImplementedError("read_{stream}: fetch the {stream} changed since `cursor` and yield Pages")
'''

APPLY = '''
    def apply_{action}(self, action: Action) -> ActionResult:
        """Send one {action} with `action.idempotency_key`, so that sending it twice has one
        effect (ProviderHttp.request(..., idempotency_key=action.idempotency_key))."""
        raise NotImplementedError("apply_{action}: send the write with its idempotency key and return an ActionResult")
'''

MAPPING_HEAD = """# How raw {title} objects become canonical records (`connector mappings check` validates it).
# Field paths are dotted paths in the raw JSON; transforms are the connector's (docs/plugins.md
# lists them) or your own, registered with connector.plugin.transform in a module you name
# here as `imports = ["{package}.transforms"]`.
provider = "{name}"

"""

CONFORMANCE = """from connector.plugin_testing import provider_test_class
from {package} import {cls}, {cls}Settings

Test{cls} = provider_test_class(
    {cls},
    settings={cls}Settings(base_url="https://api.{name}.example", api_key="kit-test-key-0000"),
    fixtures="tests/fixtures",
)
"""

CONFTEST = """import os
from pathlib import Path

# The conformance test names its fixtures relative to the package root.
os.chdir(Path(__file__).resolve().parents[1])
"""

FIXTURES_README = """# Recorded fixtures for the conformance kit

Record real answers of the {title} API (a sandbox account) and list them in `kit.toml`:
each `[[routes]]` entry says which request it answers (method, path, and the query `params` or
`headers` that tell pages apart) and the file with the body. Record at least two pages of
every stream (use a small page size), with two records changed in the same second on either
side of a page boundary (three saved together, page size 2: the kit skips its cursor's-moment
check without such a pair), the read that resumes from each page's cursor, and one answer per
write. If your provider puts the current time into a request, pin its clock to the recording
moment through `provider_kwargs` in `tests/test_conformance.py`. Add `[[money]]` cases (a JPY
and a KWD record), `[[void]]` cases (a voided invoice, a deleted record) and `[actions.KIND]`
(target and payload of one write per action). See docs/plugins.md of the connector for every
key. Remove secrets before committing.
"""

KIT_TOML = """# The conformance kit's view of the {title} API: recorded answers and cases.
# [[routes]]
# method = "GET"
# path = "/invoices"
# params = {{ page = "1" }}
# response = "invoices/page1.json"
#
# [[money]]
# stream = "invoices"
# record = "invoices/jpy.json"
# field = "total"
# amount = "1500"
# currency = "JPY"
#
# [[void]]
# stream = "invoices"
# record = "invoices/voided.json"
# expect = "void"
#
# [actions.{action}]
# target = {{ object_type = "invoice", remote_id = "INV-1" }}
# payload = {{ amount = "10.00", currency = "USD", date = "2026-03-01" }}
"""

README = """# connector-{name}

{title} provider ({kind}) for the AR connector.

    pip install -e ".[test]"             # [test]: the kit's pytest and respx, for the tests only
    connector providers list             # {name} ... ok
    pytest tests/                        # the conformance kit (fails "not implemented" until filled in)

Fill in `{package}/provider.py` (each method says what it must do), `{package}/mapping.toml`
and `{package}/settings.py`; record fixtures as `tests/fixtures/README.md` says. Import
from the connector only `connector.plugin` (the tests also `connector.plugin_testing`).
"""


def render_files(name: str, kind: str) -> dict[str, str]:
    spec = KINDS[kind]
    package = f"{name}_connector"
    cls = (
        "".join(part.capitalize() for part in name.split("_"))
        + {"ledger": "Ledger", "crm": "Crm", "gateway": "Gateway"}[kind]
    )
    title = " ".join(part.capitalize() for part in name.split("_"))
    values = {
        "name": name,
        "package": package,
        "cls": cls,
        "title": title,
        "kind": kind,
        "streams": tuple(spec.streams),
        "actions": spec.actions,
        "action": spec.actions[0],
    }
    provider = PROVIDER_HEAD.format(**values)
    provider += "".join(READ.format(stream=s) for s in spec.streams)
    provider += "".join(APPLY.format(action=a) for a in spec.actions)
    provider = provider.replace("from typing import Any\n\nimport httpx\n\n", "\n")
    mapping = MAPPING_HEAD.format(**values) + "\n".join(spec.streams.values()) + _STATUS_MAP
    return {
        "pyproject.toml": PYPROJECT.format(**values),
        "README.md": README.format(**values),
        f"{package}/__init__.py": INIT.format(**values),
        f"{package}/settings.py": SETTINGS.format(**values),
        f"{package}/provider.py": provider,
        f"{package}/mapping.toml": mapping,
        "tests/conftest.py": CONFTEST,
        "tests/test_conformance.py": CONFORMANCE.format(**values),
        "tests/fixtures/README.md": FIXTURES_README.format(**values),
        "tests/fixtures/kit.toml": KIT_TOML.format(**values),
    }
