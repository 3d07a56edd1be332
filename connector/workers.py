"""Who is working: a worker's name (host:pid) and which claims belong to processes that are gone."""

from __future__ import annotations

import os
import socket


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def dead_local_workers(workers: list[str]) -> list[str]:
    """Claims of processes on this host that no longer exist: safe to take over at once."""
    host = socket.gethostname()
    dead = []
    for worker in workers:
        name, _, pid = worker.rpartition(":")
        if name != host or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            dead.append(worker)
        except PermissionError:
            pass
    return dead
