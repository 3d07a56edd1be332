"""Sync progress: one live line on a terminal, plain lines otherwise.

On a terminal the line is redrawn in place (at most every `interval` seconds). Otherwise (a
file, a pipe, a CI log) progress is written as plain lines to stderr whatever the log level:
one when a stream stores its first page, then at most one every `every` seconds per stream,
and one per stream when the run ends. With `--log-format json` each line is a JSON log entry
instead, so stderr stays machine-readable; stdout is never touched (`--json` stays pure).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from connector.logs import JsonFormatter
from connector.sync import StreamReport, SyncReport

logger = logging.getLogger("connector.sync")


class SyncProgress:
    """Called after every stored page (from several threads)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        interval: float = 0.2,
        every: float = 5.0,
        log_format: str = "text",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = stream or sys.stderr
        self.live = bool(getattr(self.out, "isatty", lambda: False)())
        self.interval = interval
        self.every = every
        self.log_format = log_format
        self.clock = clock
        self._lock = threading.Lock()
        self._state: dict[tuple[str, str], int] = {}
        self._written: dict[tuple[str, str], float] = {}  # plain mode: when a stream's last line went out
        self._shown = 0.0
        self._width = 0

    def __call__(self, report: StreamReport) -> None:
        key = (report.connection, report.stream)
        with self._lock:
            self._state[key] = report.stored
            now = self.clock()
            if not self.live:
                last = self._written.get(key)
                if last is not None and now - last < self.every:
                    return
                self._written[key] = now
                state = "reading" if last is None else "still reading"
                self._line(
                    f"{report.connection}/{report.stream}: {state}, {_stored(report)}", report.connection, report.stream
                )
                return
            if now - self._shown < self.interval:
                return
            self._shown = now
            total = sum(self._state.values())
            busiest = sorted(self._state.items(), key=lambda item: -item[1])[:3]
            detail = ", ".join(f"{c}/{s} {n:,}" for (c, s), n in busiest)
            line = f"syncing: {total:,} records stored ({detail})"
            self.out.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self.out.flush()

    def finish(self, report: SyncReport | None = None) -> None:
        """Clear the live line; in plain mode, one closing line per stream of `report`."""
        with self._lock:
            if self.live:
                if self._width:
                    self.out.write("\r" + " " * self._width + "\r")
                    self.out.flush()
                return
            for s in report.streams if report is not None else []:
                self._line(
                    f"{s.connection}/{s.stream}: {s.status}, {_stored(s)} in {s.seconds:.1f} s", s.connection, s.stream
                )

    def _line(self, text: str, connection: str, stream: str) -> None:
        if self.log_format == "json":
            record = logger.makeRecord(
                logger.name,
                logging.INFO,
                __file__,
                0,
                "%s",
                (text,),
                None,
                extra={"connection": connection, "stream": stream},
            )
            self.out.write(JsonFormatter().format(record) + "\n")
        else:
            self.out.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} sync {text}\n")
        self.out.flush()


def _stored(report: StreamReport) -> str:
    records = "record" if report.stored == 1 else "records"
    pages = "page" if report.pages == 1 else "pages"
    return f"{report.stored:,} {records} stored ({report.pages:,} {pages})"
