"""Sync progress: one live line on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

from connector.sync import StreamReport

logger = logging.getLogger("connector.sync")


class SyncProgress:
    """Called after every stored page (from several threads)."""

    def __init__(self, stream: TextIO | None = None, *, interval: float = 0.2) -> None:
        self.out = stream or sys.stderr
        self.live = bool(getattr(self.out, "isatty", lambda: False)())
        self.interval = interval
        self._lock = threading.Lock()
        self._state: dict[tuple[str, str], int] = {}
        self._shown = 0.0
        self._width = 0

    def __call__(self, report: StreamReport) -> None:
        with self._lock:
            self._state[(report.connection, report.stream)] = report.stored
            if not self.live:
                logger.info("%s/%s: %d records stored (%d pages)", report.connection, report.stream,
                            report.stored, report.pages, extra={"connection": report.connection, "stream": report.stream})
                return
            now = time.monotonic()
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

    def finish(self) -> None:
        if self.live and self._width:
            self.out.write("\r" + " " * self._width + "\r")
            self.out.flush()
