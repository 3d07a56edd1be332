"""The process's memory as the C allocator keeps it (glibc's malloc; nothing elsewhere).

glibc gives each thread that allocates while another holds the main arena an arena of its
own, up to eight per core. A sync's twelve streams (three connections, four streams each) side
by side filled a dozen arenas with their pages, and the memory a page freed stayed in its
thread's arena for that thread's next page: the large book's first sync reached 508-517 MiB
in the pull alone, against 395 MiB with two arenas (docs/benchmarks.md, "The first sync's
pull in two arenas"). The streams wait on the network most of the time, so sharing two
arenas costs them nothing measurable.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

# mallopt's parameter for the most arenas (malloc.h: M_ARENA_MAX)
_M_ARENA_MAX = -8
# The arenas a process of ours allocates from: the main one and one more for its threads.
ARENAS = 2


def _libc_call(name: str) -> Any | None:
    """The C library's function `name`; None where there is none (or no C library to ask:
    Windows refuses `CDLL(None)`)."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (AttributeError, OSError, TypeError):
        return None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Let the allocator make at most `arenas` arenas (glibc's `mallopt(M_ARENA_MAX)`, what
    the `MALLOC_ARENA_MAX` environment variable sets); whether it took it. Call it before the
    process starts its threads: glibc settles its limit when threads first ask for an arena.
    An explicit `MALLOC_ARENA_MAX` in the environment is left as the operator set it."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    mallopt = _libc_call("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))


def release_freed_memory() -> None:
    """Hand the memory the C allocator holds free back to the system (glibc's `malloc_trim`):
    freed blocks stay the process's otherwise, scattered over its arenas (a sync's pages, the
    connections' page caches). Nothing where the C library has no such call."""
    trim = _libc_call("malloc_trim")
    if trim is not None:
        trim(0)
