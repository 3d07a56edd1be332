"""The plugin base: what every provider, built-in or a partner's, declares and implements.

A provider is a class registered under the entry-point group `connector.providers`. It declares
itself with class attributes, checked when the registry loads it:

    class AcmeLedger(Provider):
        name = "acme"
        kind = "ledger"
        settings_model = AcmeSettings          # a ProviderSettings subclass
        mapping_file = "acme_connector:mapping.toml"
        streams = ("customers", "invoices")     # each needs a read_<stream>(cursor) method
        actions = ("record_payment",)           # each needs an apply_<action>(action) method

Reading yields `Page`s of raw provider objects with the cursor to save once the page is
stored; the provider's mapping (in `mappings/`) turns raw objects into canonical records.
A provider never touches the state store: durable things it needs (rotated OAuth tokens) go
through the `TokenStore` it is given.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connector.errors import ConnectorError
from connector.http.tokens import TokenStore
from connector.model import Action

ProviderKind = Literal["crm", "ledger", "gateway"]
PROVIDER_KINDS: tuple[ProviderKind, ...] = ("crm", "ledger", "gateway")
DEFAULT_SOURCE_PRIORITY: dict[str, int] = {"ledger": 3, "gateway": 2, "crm": 1}


class ProviderSettings(BaseModel):
    """Settings every provider takes. Subclass it; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(min_length=1)
    timeout_seconds: float = Field(default=30.0, gt=0)
    # Overrides merged over the provider's mapping file (`[connections.NAME.mapping]`).
    mapping: dict[str, Any] = Field(default_factory=dict)
    # How far this connection is trusted for the facts of records several systems share
    # (amounts, status). Default by kind: ledger 3, gateway 2, crm 1 (the ledger wins).
    source_priority: int | None = Field(default=None, ge=0)
    # `connector serve`: a cron expression for this connection's pulls (else --every), and
    # the secret its webhooks are signed with (an `env:` reference; none refuses them all).
    schedule: str | None = None
    webhook_secret: SecretStr | None = None

    @field_validator("base_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        """An address the HTTP client can call: `https://host[:port][/path]` (http for a local
        sandbox). Without a scheme every request would fail at run time, far from the file."""
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL (write it as https://host/...)")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron_expression(cls, value: str | None) -> str | None:
        """Five cron fields (`*/15 * * * *`), checked here so a typo fails at load, not at 3 am."""
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (five fields, e.g. '*/15 * * * *')")
        return value


@dataclass
class Page:
    """One page of raw records from a stream, and the cursor that is safe to save after it."""

    stream: str
    records: list[dict[str, Any]]
    cursor: str | None = None  # None: do not move the saved cursor after this page
    notes: list[str] = field(default_factory=list)  # things to tell the operator (a fallback taken)


@dataclass
class ActionResult:
    """What the provider answered to a write: its id for the effect and the raw answer."""

    remote_id: str | None
    response: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False  # the provider (or our look-up) found the effect already done


class Provider:
    """Base class of all providers. See the module docstring for the contract."""

    name: ClassVar[str]
    kind: ClassVar[ProviderKind]
    settings_model: ClassVar[type[ProviderSettings]]
    streams: ClassVar[tuple[str, ...]] = ()
    actions: ClassVar[tuple[str, ...]] = ()
    # Where the provider's mapping file is, as "package:file.toml" (read by `mappings`).
    mapping_file: ClassVar[str | None] = None
    # Action kinds the provider sends several of in one request, and how many at most in one
    # batch (each needs a batch_<action>(actions, key) method). Kinds not named go one by one.
    batch_limits: ClassVar[dict[str, int]] = {}

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        connection: str | None = None,
        token_store: TokenStore | None = None,
    ) -> None:
        if not isinstance(settings, self.settings_model):
            raise TypeError(f"{self.name} needs {self.settings_model.__name__}")
        self.settings = settings
        self.connection = connection or self.name
        self.token_store = token_store

    def read(self, stream: str, cursor: str | None) -> Iterator[Page]:
        """Pages of `stream` changed since `cursor` (everything when None)."""
        if stream not in self.streams:
            raise ValueError(f"{self.name} has no stream {stream!r}; it has {', '.join(self.streams)}")
        reader = getattr(self, f"read_{stream}")
        result: Iterator[Page] = reader(cursor)
        return result

    def apply(self, action: Action) -> ActionResult:
        """Send one planned write, with its idempotency key."""
        if action.kind not in self.actions:
            raise ValueError(
                f"{self.name} cannot apply {action.kind!r}; it applies {', '.join(self.actions) or 'nothing'}"
            )
        result: ActionResult = getattr(self, f"apply_{action.kind}")(action)
        return result

    def batch_limit(self, kind: str) -> int:
        """How many actions of `kind` go in one batch: 1 where the provider has no batch write."""
        return max(1, self.batch_limits.get(kind, 1))

    def apply_batch(self, actions: Sequence[Action], key: str) -> list[ActionResult | ConnectorError]:
        """Send several planned writes of one kind (at most `batch_limit(kind)`) in one request,
        or in as few as the provider needs, with `key` as the whole request's idempotency key:
        a resend of the same batch (after a crash, or a request that got no answer) carries the
        same actions, in the same order, with the same key, so the provider can replay its first
        answer.

        Returns one entry per action, in the order given: its result, or the error that refused
        that action alone (it fails alone; the others are done). Raises, as `apply` does, when
        the request as a whole failed: then no action of the batch is known to be done."""
        kinds = {action.kind for action in actions}
        if len(kinds) != 1:
            raise ValueError(f"a batch holds actions of one kind, not {', '.join(sorted(kinds)) or 'none'}")
        [kind] = kinds
        if kind not in self.actions or kind not in self.batch_limits:
            raise ValueError(f"{self.name} cannot send {kind!r} in batches")
        if len(actions) > self.batch_limit(kind):
            raise ValueError(f"{self.name} takes at most {self.batch_limit(kind)} {kind!r} in one batch")
        results: list[ActionResult | ConnectorError] = getattr(self, f"batch_{kind}")(list(actions), key)
        if len(results) != len(actions):
            raise ValueError(f"{self.name}.batch_{kind} answered {len(results)} results for {len(actions)} actions")
        return results

    def probe(self) -> str:
        """A cheap authenticated read, for `connector doctor --online`: the first page of the
        first stream (a provider may override it with a lighter call). Raises what a read
        raises (a refused credential, an unreachable host); says what it read."""
        if not self.streams:
            return "no stream to read"
        stream = self.streams[0]
        pages = self.read(stream, None)
        try:
            page = next(iter(pages), None)
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()
        count = len(page.records) if page is not None else 0
        return f"read the first page of {stream} ({count} record{'' if count == 1 else 's'})"

    def close(self) -> None:
        """Release connections; the default has none."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.connection!r}>"


def secret_fields(settings_model: type[BaseModel]) -> list[str]:
    """Names of the settings that hold secrets (typed SecretStr)."""
    found = []
    for name, info in settings_model.model_fields.items():
        annotation = info.annotation
        if annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ()):
            found.append(name)
    return found
