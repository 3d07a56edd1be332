"""Logging set-up for the CLI and the service: text or JSON lines, secrets always masked."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from connector.redaction import RedactingFilter

# Context fields the engine attaches with `extra=` and the JSON format carries through.
CONTEXT_FIELDS = ("company", "run_id", "connection", "stream", "action_id", "provider")

# The company whose work this thread does (`company_context`), and the company of each
# connection (`name_companies`): a line that names neither `company` nor a known connection
# gets the company of the work in hand.
_company: ContextVar[str | None] = ContextVar("connector_log_company", default=None)
_connection_companies: dict[str, str] = {}


@contextmanager
def company_context(company: str) -> Iterator[None]:
    """While the block runs, this thread's log lines carry `company` (unless they name their
    own). Threads started inside do not inherit it: their lines name a connection instead."""
    token = _company.set(company)
    try:
        yield
    finally:
        _company.reset(token)


def name_companies(companies: Mapping[str, str]) -> Callable[[], None]:
    """Say which company each connection belongs to (connection -> company), so that a line
    naming a connection names its company too, from whichever thread it comes (the sync's
    worker threads). Returns a function that puts back what was named before."""
    previous = dict(_connection_companies)
    _connection_companies.clear()
    _connection_companies.update(companies)

    def restore() -> None:
        _connection_companies.clear()
        _connection_companies.update(previous)

    return restore


def company_of_record(record: logging.LogRecord) -> str | None:
    """The company a log line is about: its own `company`, the company of the work in hand,
    else the company of the connection it names."""
    named = getattr(record, "company", None)
    if named is not None:
        return str(named)
    return _company.get() or _connection_companies.get(str(getattr(record, "connection", None)))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = company_of_record(record) if name == "company" else getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str)


def configure_logging(*, verbosity: int = 0, log_format: str = "text") -> None:
    """Route the `connector`, `providers`, `mappings` and `state` loggers to stderr."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_connector", False):
            root.removeHandler(existing)
    handler._connector = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request line at INFO, with URLs; keep it for -vv only.
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    # uvicorn (the service's listener, started with log_config=None) logs through this handler,
    # so `--log-format json` stays JSON: no handler of its own, in case one was installed. Its
    # access line for every request (health probes, scrapes) is the listener's side of httpx's
    # request lines: -vv only too.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.INFO if verbosity >= 2 else logging.WARNING)
