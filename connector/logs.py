"""Logging set-up for the CLI and the service: text or JSON lines, secrets always masked."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from connector.redaction import RedactingFilter

# Context fields the engine attaches with `extra=` and the JSON format carries through.
CONTEXT_FIELDS = ("run_id", "connection", "stream", "action_id", "provider")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
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
