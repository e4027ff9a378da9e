"""Compaction of a finished recording's ``data.h5``: every dataset rewritten with shuffle + deflate.

While recording, packet rows go into ``data.h5`` as they came (compressing them then would cost
about a core-percent at game rates, more than all the rest of recording), next to the same bytes
in the raw files. Once a recording has stopped nothing appends to it any more, and its rows are
rewritten once with the two filters every HDF5 build has: byte shuffle (the n-th bytes of all
values side by side) and deflate. Measured on the real Assetto Corsa capture (Monza, 8641
datagrams): decoded rows 2.1× smaller; simulator data 14×. ``data.h5`` stays a plain HDF5 file
(h5py, HDFView, MATLAB read it without plugins); the file says ``compacted`` in its attributes.

It runs in a child process at the lowest CPU priority (``python -m rt.store.compact DIR``): h5py
keeps the GIL while HDF5 filters run, and the server's feeds must not wait for a minute of
deflate. The new file is written beside the old one, fsynced, then renamed over it: a crash or a
kill at any moment leaves the old file or the new one, and the next start-up compacts again what
is not yet compacted (:func:`needs_compaction`).
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

#: Filters of a compacted dataset: shuffle + deflate level 4 (levels 1–6 differ by 3 % in size
#: on real AC rows; 4 is the usual balance of speed and size).
FILTERS: dict = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
#: Bytes per chunk of a compacted dataset: larger chunks compress better; a read of a few frames
#: decompresses one chunk per dataset.
CHUNK_BYTES = 256 << 10
#: Rows copied at a time (bounds memory for an hour of PCARS rows, ~2 GB uncompressed).
COPY_BYTES = 16 << 20
TMP_NAME = ".data.h5.compact"

log = logging.getLogger(__name__)


def needs_compaction(recording_dir: str | Path) -> bool:
    """Whether the recording's ``data.h5`` exists and is not compacted yet."""
    path = Path(recording_dir) / "data.h5"
    if not path.exists():
        return False
    try:
        with h5py.File(path, "r") as f:
            return not f.attrs.get("compacted", False)
    except OSError:
        return False  # damaged: recover rebuilds it first


def compact(recording_dir: str | Path) -> tuple[int, int]:
    """Rewrite ``data.h5`` of a stopped recording compressed; returns its size before and after.

    Every group, dataset and attribute is kept, values bit for bit; a dataset's chunks become
    :data:`CHUNK_BYTES` and its filters :data:`FILTERS`. Does nothing to a compacted file.
    """
    recording_dir = Path(recording_dir)
    path = recording_dir / "data.h5"
    tmp = recording_dir / TMP_NAME
    if not needs_compaction(recording_dir):
        size = path.stat().st_size if path.exists() else 0
        return size, size
    before = path.stat().st_size
    try:
        with h5py.File(path, "r") as src, h5py.File(tmp, "w", libver="latest") as dst:
            _copy_attrs(src, dst)

            def copy(name: str, obj) -> None:
                if isinstance(obj, h5py.Group):
                    _copy_attrs(obj, dst.require_group(name))
                else:
                    _copy_dataset(obj, dst, name)

            src.visititems(copy)
            dst.attrs["compacted"] = True
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(recording_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return before, path.stat().st_size


def _copy_attrs(src, dst) -> None:
    for key, value in src.attrs.items():
        dst.attrs[key] = value


def _copy_dataset(ds: h5py.Dataset, dst: h5py.File, name: str) -> None:
    if ds.shape == () or ds.size == 0 or ds.ndim == 0:
        out = dst.create_dataset(name, data=ds[()], maxshape=ds.maxshape)
    else:
        row_bytes = max(1, ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64)))
        chunk_rows = int(max(1, min(ds.shape[0], CHUNK_BYTES // row_bytes)))
        out = dst.create_dataset(name, shape=ds.shape, dtype=ds.dtype, maxshape=(None, *ds.shape[1:]),
                                 chunks=(chunk_rows, *ds.shape[1:]), **FILTERS)
        step = max(chunk_rows, COPY_BYTES // row_bytes // chunk_rows * chunk_rows)
        for start in range(0, ds.shape[0], step):
            out[start : start + step] = ds[start : start + step]
    _copy_attrs(ds, out)


def compact_in_child(recording_dir: str | Path) -> subprocess.Popen:
    """Start :func:`compact` in a child process at the lowest CPU priority (nice 19)."""
    return subprocess.Popen([sys.executable, "-m", "rt.store.compact", str(recording_dir)],
                            preexec_fn=lambda: os.nice(19) if hasattr(os, "nice") else None,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


class Compactor:
    """Compacts recordings one at a time, each in a child process (:func:`compact_in_child`), in
    the order given; ``on_done(recording_id)`` is called (on its thread) after each success."""

    def __init__(self, on_done: Callable[[str], None]) -> None:
        self._on_done = on_done
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._running: tuple[Path, subprocess.Popen] | None = None
        self._cancelled: set[Path] = set()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name="rt-compact", daemon=True)
        self._thread.start()

    def submit(self, recording_dir: str | Path) -> None:
        """Queue a recording; one that needs no compaction (see :func:`needs_compaction`) is skipped."""
        with self._lock:
            self._cancelled.discard(Path(recording_dir))
            self._pending += 1
        self._queue.put(Path(recording_dir))

    def cancel(self, recording_dir: str | Path) -> None:
        """Drop a recording from the queue and stop its compaction if it runs (before a delete);
        returns once its child process has exited."""
        path = Path(recording_dir)
        with self._lock:
            self._cancelled.add(path)
            running = self._running
        if running is not None and running[0] == path:
            running[1].kill()
            running[1].wait()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running (tests, shutdown); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        """Stop: a compaction under way is killed (its temp file is left for the next start-up)."""
        self._queue.put(None)
        with self._lock:
            running = self._running
        if running is not None:
            running[1].kill()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while (path := self._queue.get()) is not None:
            try:
                self._compact(path)
            except Exception:  # noqa: BLE001 - a failed compaction leaves data.h5 as it was
                log.exception("compaction of %s failed", path.name)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _compact(self, path: Path) -> None:
        with self._lock:
            if path in self._cancelled or not needs_compaction(path):
                return
            child = compact_in_child(path)
            self._running = (path, child)
        try:
            _, err = child.communicate()
        finally:
            with self._lock:
                self._running = None
        if child.returncode == 0:
            self._on_done(path.name)
        elif path not in self._cancelled and child.returncode > 0:
            log.warning("compaction of %s failed: %s", path.name, err.strip())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m rt.store.compact RECORDING_DIR", file=sys.stderr)
        return 2
    try:
        before, after = compact(args[0])
    except (OSError, KeyError, ValueError) as exc:
        print(f"compaction of {args[0]} failed: {exc}", file=sys.stderr)
        return 1
    print(f"{args[0]}: data.h5 {before} -> {after} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
