"""Who is working: a worker's name (host:pid), which claims belong to processes that are gone,
and the operating-system lock that makes one `connector serve` the only worker of a SQLite file."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from filelock import FileLock, Timeout


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


def sole_worker_lock_path(database: str) -> Path:
    """The lock file beside a SQLite database file: `state.db` -> `state.db.serve.lock`."""
    return Path(f"{database}.serve.lock")


class SoleWorkerLock:
    """An exclusive lock on a file beside the SQLite database (`flock` on POSIX, `LockFileEx`
    on Windows, through `filelock`). The kernel lets go of it when the process ends, however it
    ends, so a restart after a crash or a SIGKILL starts at once, under any hostname or PID;
    while the holder runs, every other process (or a second holder in the same process) is
    refused at once."""

    def __init__(self, database: str) -> None:
        self.path = sole_worker_lock_path(database)
        # thread_local=False: taken by `connector serve`'s main thread, let go by whichever stops it
        self._lock = FileLock(self.path, timeout=0, mode=0o600, thread_local=False)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(self) -> bool:
        """True when taken (or already held here); False when another holder has it."""
        if self._lock.is_locked:
            return True
        try:
            self._lock.acquire()
        except Timeout:
            return False
        return True

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)
