"""Handing the C heap's free pages back to the system while the server runs (glibc).

Under load the recorder's large transient buffers (packed raw pieces while the disk lags, decoded
batches) come from the heap once glibc has raised its mmap threshold, and their pages stay with
the process when they are freed (after a lagging disk, resident memory stayed hundreds of MB
higher). ``malloc_trim`` returns every whole free page of every arena to the system
(``madvise``), in the middle of the heap too.

Elsewhere (musl, macOS, Windows) there is nothing to call and :func:`release_free_memory` is a
no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from typing import Callable, Iterable

#: Seconds between trims: often enough that a stall's buffers go back within a minute, rarely
#: enough that the walk over the heap costs nothing measurable.
TRIM_INTERVAL_S = 30.0


def _load_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _load_trim()


def release_free_memory() -> bool:
    """Return the heap's free pages to the system; False where the C library has no way to."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True


class Trimmer:
    """Calls :func:`release_free_memory` at most every ``interval_s`` seconds from :meth:`tick`
    (the feed consumer's tick, so no thread of its own), after ``release`` (callables that free
    caches gone idle, so that their pages go back in the same trim)."""

    def __init__(self, interval_s: float = TRIM_INTERVAL_S, release: Iterable[Callable[[], object]] = ()) -> None:
        self.interval_s = interval_s
        self.release = list(release)
        self._last = time.monotonic()

    def tick(self) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            for release in self.release:
                release()
            release_free_memory()
