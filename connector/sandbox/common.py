"""What the three provider faces share: requests and answers, exact JSON, time, rate windows,
idempotency records and the journal.

A face (`StripeFace`, `XeroFace`, `HubSpotFace`) turns a `Request` into a `Response` under the
sandbox's lock; the HTTP server (`server.py`) only moves bytes, sleeps and injects faults.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

Clock = Callable[[], float]
# A compiled filter: whether one stored record passes it.
RecordCheck = Callable[[dict[str, Any]], bool]


# ---------------------------------------------------------------- requests and answers


@dataclass
class Request:
    method: str
    path: str  # the provider's own path, without our /stripe, /xero or /hubspot prefix
    query: dict[str, list[str]]
    headers: dict[str, str]  # keys lower-cased
    body: bytes = b""
    request_id: str = ""
    # What the face's arrival check (`begin`) settled: the key, token or tenant it admitted
    # and counted against the rate windows. None: `handle` checks and counts itself.
    admitted: Any = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)

    def json(self) -> Any:
        if not self.body.strip():
            return None
        return loads(self.body)

    @property
    def is_write(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class Response:
    """One answer. A list's body may hold the face's live records rather than copies: the
    sandbox encodes it under its lock, before any write can change them (`encoded` keeps the
    bytes), so the answer is the state as it was when the request was handled."""

    status: int
    body: Any = None  # JSON-able (Decimals allowed); None: no body
    headers: dict[str, str] = field(default_factory=dict)
    # What a write did, for the journal ("created payment ...", "rejected: ...").
    effect: str | None = None
    # What the journal keeps of the request body when not the body itself (secrets).
    journal_payload: Any = None
    redacted: bool = False
    _payload: bytes | None = field(default=None, repr=False, compare=False)

    def encoded(self) -> bytes:
        """The body as JSON bytes, encoded once (the first call fixes them)."""
        if self._payload is None:
            self._payload = b"" if self.body is None else dumps(self.body).encode()
        return self._payload


class Refusal(Exception):
    """Raised inside a face to answer at once with `response`."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


# ---------------------------------------------------------------- exact JSON


def loads(raw: bytes | str) -> Any:
    """JSON with every non-integer number as a Decimal (amounts never pass through float)."""
    return json.loads(raw, parse_float=Decimal)


# A Decimal goes through the C encoder as a marked string and then loses its quotes: one pass
# in C instead of two Python walks over the body (exact() and a float check), which cost
# ten times the encoding itself on a page of 1,000 Xero invoices.
# The C encoder writes the two control characters as \u0001 and \u0002: a marked Decimal
# becomes "\u0001D12.50\u0002" and loses its quotes and marks by two plain replaces.
_OPEN, _CLOSE = "\u0001D", "\u0002"
_OPEN_TEXT, _CLOSE_TEXT = '"\\u0001D', '\\u0002"'


def _mark(value: Any) -> str:
    if isinstance(value, Decimal) and value.is_finite():
        return _OPEN + format(value, "f") + _CLOSE
    raise TypeError(f"{type(value).__name__} ({value!r}) is not JSON")


def dumps(value: Any) -> str:
    """Compact JSON in which a Decimal is written digit for digit as a JSON number. A float
    (the journal's times) is written as its repr, which is the same number; NaN and infinity
    are refused."""
    text = json.dumps(value, default=_mark, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if _OPEN_TEXT not in text:
        return text
    return text.replace(_OPEN_TEXT, "").replace(_CLOSE_TEXT, "")


def exact(value: Any) -> Any:
    """A deep copy of loaded data in which floats become Decimals (as they were written)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exact(v) for v in value]
    return value


def copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (faster than copy.deepcopy for plain trees)."""
    if isinstance(value, dict):
        return {k: copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy(v) for v in value]
    return value


# ---------------------------------------------------------------- time and ids


def dotnet_date(epoch_seconds: float) -> str:
    """Xero's `/Date(1573755038314+0000)/`."""
    return f"/Date({round(epoch_seconds * 1000)}+0000)/"


def parse_dotnet_date(text: str) -> float:
    """Epoch seconds of `/Date(ms)/` or `/Date(ms+0000)/` (the offset is informative only:
    the milliseconds are UTC)."""
    inner = text.strip()[len("/Date(") : -len(")/")]
    digits = inner
    for sign in ("+", "-"):
        cut = inner.find(sign, 1)
        if cut > 0:
            digits = inner[:cut]
            break
    return int(digits) / 1000


def iso_ms(epoch_seconds: float) -> str:
    """HubSpot's `2024-03-10T10:00:00.000Z`."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float | None:
    """Epoch seconds of an ISO 8601 date-time that carries a zone (None without one)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def new_uuid() -> str:
    return str(uuid.uuid4())


def token(prefix: str = "", nbytes: int = 16) -> str:
    return prefix + secrets.token_hex(nbytes)


# ---------------------------------------------------------------- rate windows


class Window:
    """At most `requests` arrivals in any `seconds`-second window (sliding).

    A client limiter counts a request when it sends it; we count it when it arrives, a little
    later and with jitter, so two requests exactly one window apart at the client can land a
    hair closer here. `grace` shortens our window by that much (5 % of it, at most 100 ms):
    a client that honours the limit never sees a 429, one that ignores it soon does.
    """

    def __init__(self, requests: int, seconds: float, clock: Clock) -> None:
        self.requests = requests
        self.seconds = seconds
        self.grace = min(seconds * 0.05, 0.1)
        self.clock = clock
        self.arrivals: deque[float] = deque()

    def _trim(self, now: float) -> None:
        horizon = now - (self.seconds - self.grace)
        while self.arrivals and self.arrivals[0] <= horizon:
            self.arrivals.popleft()

    def retry_after(self) -> float:
        """0 when one more request fits now, otherwise the seconds until it does."""
        now = self.clock()
        self._trim(now)
        if len(self.arrivals) < self.requests:
            return 0.0
        return self.arrivals[0] + (self.seconds - self.grace) - now

    def count(self) -> None:
        self.arrivals.append(self.clock())

    def remaining(self) -> int:
        self._trim(self.clock())
        return max(0, self.requests - len(self.arrivals))


def retry_after_header(seconds: float) -> str:
    """Whole seconds, at least 1 (HTTP's Retry-After has no fractions)."""
    return str(max(1, int(seconds + 0.999)))


# ---------------------------------------------------------------- idempotency


@dataclass
class StoredAnswer:
    fingerprint: str
    response: Response


class IdempotencyStore:
    """First answers by idempotency key, per provider (and per account/tenant inside it)."""

    def __init__(self) -> None:
        self._answers: dict[tuple[str, str], StoredAnswer] = {}

    def get(self, scope: str, key: str) -> StoredAnswer | None:
        return self._answers.get((scope, key))

    def put(self, scope: str, key: str, fingerprint: str, response: Response) -> None:
        self._answers[(scope, key)] = StoredAnswer(fingerprint, response)


def fingerprint(request: Request) -> str:
    """What "the same parameters" means: method, path and the body's content."""
    body: Any
    content_type = request.header("content-type") or ""
    if "json" in content_type:
        try:
            body = dumps(request.json())
        except ValueError:
            body = request.body.decode("utf-8", "replace")
    else:
        body = sorted((k, sorted(v)) for k, v in request.form().items())
    return json.dumps([request.method, request.path, body], default=str)


# ---------------------------------------------------------------- journal


@dataclass
class JournalEntry:
    provider: str
    method: str
    path: str
    idempotency_key: str | None
    payload: Any
    effect: str
    status: int
    at: float
    request_id: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "method": self.method,
            "path": self.path,
            "idempotency_key": self.idempotency_key,
            "payload": self.payload,
            "effect": self.effect,
            "status": self.status,
            "at": self.at,
            "request_id": self.request_id,
        }


def payload_of(request: Request) -> Any:
    """The body of a write as the journal keeps it (form fields flattened, JSON as is)."""
    content_type = request.header("content-type") or ""
    if not request.body:
        return None
    if "json" in content_type:
        try:
            return request.json()
        except ValueError:
            return request.body.decode("utf-8", "replace")
    form = request.form()
    return {k: v[0] if len(v) == 1 else v for k, v in form.items()}


def now_clock() -> float:
    return time.time()
