"""The worker's native (glibc) heap: fewer arenas, and freed memory given back.

Python objects, RocksDB, torch and aiokafka all allocate through glibc's malloc. glibc
gives each thread that allocates an arena of its own (up to 8 per core) and keeps freed
memory for reuse instead of returning it: after a burst (a batch closing thousands of
windows, an expiry wave, a compaction pass) the RSS stays at the burst's peak. A worker
caps the arenas before its threads start and trims the heap on a timer.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

M_ARENA_MAX = -8  # glibc's mallopt parameter


def _libc_function(name: str) -> Callable[..., int] | None:
    """`name` from the C library, or None where it has none (not glibc)."""
    return getattr(ctypes.CDLL(None), name, None)


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas (before the worker starts its threads); False where the
    C library has no `mallopt` (not glibc) or `arenas` is 0 (glibc's default kept).

    Measured with 20,000 assets and the RUL model active: peak RSS 1,264 MiB with
    glibc's default, 872 MiB with 2 arenas.
    """
    if arenas <= 0:
        return False
    mallopt = _libc_function("mallopt")
    return mallopt is not None and mallopt(M_ARENA_MAX, arenas) == 1


def trim_native_heap() -> bool:
    """Return the free memory at the top and inside glibc's heaps to the system
    (`malloc_trim(0)`); False where the C library has no `malloc_trim`."""
    malloc_trim = _libc_function("malloc_trim")
    if malloc_trim is None:
        return False
    malloc_trim(0)
    return True
