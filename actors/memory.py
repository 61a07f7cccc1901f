"""glibc malloc housekeeping: give freed memory back, and keep few arenas.

glibc keeps freed memory in the arena of the thread that allocated it, and every incarnation of
an actor is a new thread: the speech actor's decoders (their models, in C) freed at a restart
stayed resident, 6 to 7 MB per restart (found by an outside probe: 276 -> 347 MB after eight
kills). ``malloc_trim(0)`` returns the free pages of every arena. Elsewhere than glibc it is
not there, and this does nothing.

Every thread that allocates gets an arena of its own, up to eight per core, and the daemon runs
two dozen threads (actors, executors, the pools of aiohttp and Numba): under a day of swarm
churn each arena kept its own fragments, and RSS rose in steps of about 4 MB (+1.9 to +2.1 %
from minute 5 to minute 20 of the churn soak, from a base of 375 MB). :func:`limit_arenas`
caps them at start (``M_ARENA_MAX``; ``MALLOC_ARENA_MAX`` or a ``glibc.malloc.arena_max``
tunable in the environment, when set, wins): the daemon then starts at 275 MB instead of 375
(the soak's growth, about 7 MB, is still there: docs/reliability.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable

__all__ = ["ARENAS", "limit_arenas", "release_freed_memory"]

# glibc malloc arenas the daemon may use: two (one per core of the smallest machine it runs on)
# keep the allocations of its many threads in few heaps; measured by the churn soak (above).
ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    libc = _libc()
    trim: Callable[[int], int] | None = getattr(libc, "malloc_trim", None)  # not glibc: None
    return trim


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas (before the threads start: an arena, once made, stays).
    Whether the cap was set: not where glibc is absent, nor where ``MALLOC_ARENA_MAX`` or the
    ``glibc.malloc.arena_max`` tunable is set (the operator chose)."""
    libc = _libc()
    chosen = os.environ.get("MALLOC_ARENA_MAX") or "arena_max" in os.environ.get(
        "GLIBC_TUNABLES", "")
    if libc is None or chosen or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, arenas))


def release_freed_memory() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
