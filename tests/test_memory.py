"""The allocator's arenas: the CLI lets a process's threads share two (a sync's twelve streams
each filled one of their own with its pages), unless the operator's `MALLOC_ARENA_MAX` says
otherwise. Counted from glibc's own report (`malloc_stats`), in a fresh process each."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from connector.cli import main as connector_main

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's arenas"
)

# Eight threads allocating at once, then glibc's statistics of each arena on stderr.
THREADS = """
import ctypes, sys, threading
from connector import memory
if sys.argv[1] == "cli":
    memory.limit_arenas()  # what `connector ...` does first
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    held = [bytearray(4096) for _ in range(2000)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(None).malloc_stats()
"""


def arenas(mode: str, **env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    done = subprocess.run([sys.executable, "-c", THREADS, mode], env=clean, capture_output=True, text=True, check=True)
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


def test_the_cli_lets_its_threads_share_two_arenas():
    assert arenas("plain") > 2  # threads allocating together each get an arena of their own
    assert arenas("cli") == 2


def test_the_operators_malloc_arena_max_stands():
    assert arenas("cli", MALLOC_ARENA_MAX="4") == 4


def test_the_main_entry_limits_the_arenas_before_any_command(monkeypatch):
    called: list[int] = []
    monkeypatch.setattr(sys.modules["connector.cli.main"], "limit_arenas", lambda: called.append(1))
    with pytest.raises(SystemExit):
        connector_main(["--version"])
    assert called == [1]
