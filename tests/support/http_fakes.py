"""Fakes shared by the HTTP layer tests (a unique module name: `conftest` is ambiguous
once other test folders have one): a clock that only moves when slept on, and an
in-memory token store that records what it was asked to do."""

from __future__ import annotations

import threading
from typing import Any

BASE = "https://api.example.test"


class FakeClock:
    """`now()` and `sleep()` for injection: sleeping records the wait and advances time."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now_value = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.now_value

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now_value += seconds


class MemoryTokenStore:
    def __init__(self, tokens: dict[str, Any] | None = None, events: list[Any] | None = None) -> None:
        self.tokens: dict[str, dict[str, Any]] = {}
        if tokens is not None:
            self.tokens["xero"] = dict(tokens)
        self.events = events if events is not None else []
        self.saves = 0

    def load(self, connection: str) -> dict[str, Any] | None:
        stored = self.tokens.get(connection)
        return dict(stored) if stored else None

    def save(self, connection: str, tokens: dict[str, Any]) -> None:
        self.events.append(("save", tokens["refresh_token"], tokens["access_token"]))
        self.saves += 1
        self.tokens[connection] = dict(tokens)
