"""Handing the C heap's free pages back to the system while the server runs (glibc).

Under load the recorder's large transient buffers (packed raw pieces while the disk lags, decoded
batches) come from the heap once glibc has raised its mmap threshold, and their pages stay with
the process when they are freed (after a lagging disk, resident memory stayed hundreds of MB
higher). ``malloc_trim`` returns every whole free page of every arena to the system
(``madvise``), in the middle of the heap too.

Elsewhere (musl, macOS, Windows) there is nothing to call and :func:`release_free_memory` is a
no-op.

:class:`MemoryLog` (``RUSTY_TELEMETRY_MEMORY_LOG_S``) logs what holds memory, by cause, for soaks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import logging
import sys
import threading
import time
from typing import Callable, Iterable

log = logging.getLogger(__name__)

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
    """Return the heap's free pages to the system; False where the C library has no way to.

    HDF5's free lists go back to the heap first (``H5garbage_collect``, ~1.5 ms): HDF5 keeps
    the blocks it frees for reuse, and the chunk index's blocks of a growing dataset come in ever
    new sizes, so its "factory" lists grew for a recording's whole length (0.3 MB per hour of
    three feeds at game rates, still rising after 4 h; flat from the second hour with this)."""
    _hdf5_garbage_collect()
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


class CollectorWatch:
    """Python's cyclic garbage collector while the server runs, for the memory log: collections
    and the milliseconds they held the GIL, per generation, since :meth:`start`. A full
    collection walks every object (~16 ms for the ~50 000 a fresh server holds); a game-rate
    soak showed none in two minutes, with or without the start-up objects frozen out of its
    sight (``gc.freeze``), so they are left where Python puts them and only counted."""

    def __init__(self) -> None:
        self.runs = [0, 0, 0]
        self.ms = [0.0, 0.0, 0.0]
        self._began: float | None = None

    def start(self) -> None:
        gc.callbacks.append(self._on_collect)

    def stop(self) -> None:
        if self._on_collect in gc.callbacks:
            gc.callbacks.remove(self._on_collect)

    def _on_collect(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        elif self._began is not None:
            generation = info["generation"]
            self.runs[generation] += 1
            self.ms[generation] += (time.perf_counter() - self._began) * 1000
            self._began = None

    def figures(self) -> dict[str, float]:
        return {"gc_full_runs": self.runs[2], "gc_full_ms": round(self.ms[2], 1), "gc_ms": round(sum(self.ms), 1)}


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _load_mallinfo2():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallinfo2 = libc.mallinfo2  # glibc ≥ 2.33
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    mallinfo2.argtypes = []
    return mallinfo2


_mallinfo2 = _load_mallinfo2()
_hdf5 = None


def _hdf5_library():
    """The HDF5 library h5py loaded (its own copy in a wheel), found among the process's mapped
    files (Linux); None elsewhere or before h5py is imported."""
    global _hdf5
    if _hdf5 is None:
        try:
            with open("/proc/self/maps") as fh:
                paths = {line.split()[-1] for line in fh if "/libhdf5" in line}
        except OSError:
            return None
        for path in sorted(paths):
            if "libhdf5_hl" not in path and "libhdf5" in path.rsplit("/", 1)[-1]:
                try:
                    _hdf5 = ctypes.CDLL(path)
                    break
                except OSError:
                    continue
    return _hdf5


def _hdf5_garbage_collect() -> None:
    lib = _hdf5_library()
    if lib is not None:
        # Under h5py's lock: HDF5 is not thread-safe, and the writer thread may be inside it.
        with _h5py_lock():
            lib.H5garbage_collect()


def _h5py_lock():
    from h5py._objects import phil  # h5py's own lock around every call into HDF5

    return phil


def heap_stats() -> dict[str, float]:
    """What the C side holds, MB: the C heap in use and free in glibc's arenas (mmapped blocks
    count as in use, and are also given alone: the feeds' rings are most of them), and HDF5's
    free lists (blocks it keeps for reuse instead of freeing). A key is missing where it cannot be
    known (another C library, no HDF5 loaded yet)."""
    out: dict[str, float] = {}
    if _mallinfo2 is not None:
        info = _mallinfo2()
        out["c_heap_in_use_mb"] = round((info.uordblks + info.hblkhd) / 2**20, 3)
        out["c_heap_free_mb"] = round(info.fordblks / 2**20, 3)
        # Blocks glibc mapped on their own (over its mmap threshold): a step in the heap is then
        # either one large buffer kept (here) or the arena grown (in use + free, less this).
        out["c_heap_mapped_mb"] = round(info.hblkhd / 2**20, 3)
    lib = _hdf5_library()
    if lib is not None:
        sizes = [ctypes.c_size_t() for _ in range(4)]
        with _h5py_lock():
            status = lib.H5get_free_list_sizes(*[ctypes.byref(s) for s in sizes])
        if status >= 0:
            out["hdf5_free_lists_mb"] = round(sum(s.value for s in sizes) / 2**20, 3)
    return out


def rss_mb() -> float:
    """Resident memory of this process, MB (Linux; 0.0 elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024
    except (OSError, StopIteration):
        return 0.0


class MemoryLog:
    """Logs one line ``memory {json}`` every ``interval_s`` from :meth:`tick` (the consumer's
    tick): resident memory, :func:`heap_stats`, the memory blocks Python has allocated,
    and what each of ``sources`` (name → callable returning a number or a dict of numbers) says:
    the structures that grow per request, per run or per sync, with the counts of those. A soak
    reads these lines to say which cause a growth belongs to (``RUSTY_TELEMETRY_MEMORY_LOG_S``)."""

    def __init__(self, interval_s: float, sources: dict[str, Callable[[], object]]) -> None:
        self.interval_s = interval_s
        self.sources = sources
        self._last = time.monotonic()

    def figures(self) -> dict:
        # Python's allocated blocks: O(1) to read, where counting the collector's objects holds
        # the GIL for milliseconds (an /api/live answer waits for it).
        out: dict = {"at": round(time.time(), 3), "rss_mb": round(rss_mb(), 2), **heap_stats(),
                     "python_blocks": sys.getallocatedblocks(), "threads": threading.active_count()}
        for name, source in self.sources.items():
            try:
                value = source()
            except Exception as exc:  # noqa: BLE001 - a figure missing must not stop the consumer
                value = f"unknown: {exc}"
            if isinstance(value, dict):
                out.update(value)
            else:
                out[name] = value
        return out

    def tick(self) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            log.info("memory %s", json.dumps(self.figures()))
