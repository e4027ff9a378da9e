"""Compaction of a finished recording: ``data.h5`` rewritten with shuffle + deflate, raw files compressed.

While recording, packet rows go into ``data.h5`` as they came (compressing them then would cost
about a core-percent at game rates, more than all the rest of recording), next to the same bytes
in the raw files. Once a recording has stopped nothing appends to it any more, and its rows are
rewritten once with the two filters every HDF5 build has: byte shuffle (the n-th bytes of all
values side by side) and deflate. Measured on the real Assetto Corsa capture (Monza, 8641
datagrams): decoded rows 2.1× smaller; simulator data 14×. ``data.h5`` stays a plain HDF5 file
(h5py, HDFView, MATLAB read it without plugins); the file says ``compacted`` in its attributes.
The raw files are then replaced by compressed containers of the same bytes (``rawfile.compress``:
records byte-transposed, then deflate; 2.35× on the real AC capture), which readers and downloads
open through ``rawfile.RawFile``.

A recording is compacted ``COMPACT_AFTER_S`` after it stopped (60 s by default): the files a racer
downloads or analyses right after a run are read as they were written.

It runs in a child process at the lowest CPU priority (``python -m rt.store.compact DIR``): h5py
keeps the GIL while HDF5 filters run, and the server's feeds must not wait for a minute of
deflate. The new file is written beside the old one, fsynced, then renamed over it: a crash or a
kill at any moment leaves the old file or the new one, and the next start-up compacts again what
is not yet compacted (:func:`needs_compaction`).
"""

from __future__ import annotations

import heapq
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from . import rawfile

#: Filters of a compacted dataset: shuffle + deflate level 4 (levels 1–6 differ by 3 % in size
#: on real AC rows; 4 is the usual balance of speed and size).
FILTERS: dict = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
#: Bytes per chunk of a compacted dataset: larger chunks compress better; a read of a few frames
#: decompresses one chunk per dataset.
CHUNK_BYTES = 256 << 10
#: Rows copied at a time (bounds memory for an hour of PCARS rows, ~2 GB uncompressed).
COPY_BYTES = 16 << 20
TMP_NAME = ".data.h5.compact"
TMP_SUFFIX = ".compact"

log = logging.getLogger(__name__)


def _h5_needs_compaction(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with h5py.File(path, "r") as f:
            return not f.attrs.get("compacted", False)
    except OSError:
        return False  # damaged: recover rebuilds it first


def _plain_raw_files(recording_dir: Path) -> list[Path]:
    """The recording's raw files that hold records and are not compressed yet."""
    return [p for p in sorted(recording_dir.glob("*.bin"))
            if p.stat().st_size > len(rawfile.MAGIC) and not rawfile.is_compressed(p)]


def needs_compaction(recording_dir: str | Path) -> bool:
    """Whether the recording's ``data.h5`` or one of its raw files is not compacted yet."""
    recording_dir = Path(recording_dir)
    return _h5_needs_compaction(recording_dir / "data.h5") or bool(_plain_raw_files(recording_dir))


def compact(recording_dir: str | Path) -> tuple[int, int]:
    """Compact a stopped recording; returns the bytes of its files before and after.

    ``data.h5``: every group, dataset and attribute is kept, values bit for bit; a dataset's
    chunks become :data:`CHUNK_BYTES` and its filters :data:`FILTERS`. Each raw file: replaced by
    its compressed container, which gives its bytes back exactly. What is compacted already is
    left alone, so a compaction cut short is finished by the next one.
    """
    recording_dir = Path(recording_dir)
    before = _files_size(recording_dir)
    _compact_h5(recording_dir)
    for raw in _plain_raw_files(recording_dir):
        tmp = raw.with_name(f".{raw.name}{TMP_SUFFIX}")
        try:
            rawfile.compress(raw, tmp)
            os.replace(tmp, raw)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    _fsync_dir(recording_dir)
    return before, _files_size(recording_dir)


def _files_size(recording_dir: Path) -> int:
    return sum(p.stat().st_size for p in [recording_dir / "data.h5", *recording_dir.glob("*.bin")] if p.exists())


def _fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _compact_h5(recording_dir: Path) -> None:
    path = recording_dir / "data.h5"
    tmp = recording_dir / TMP_NAME
    if not _h5_needs_compaction(path):
        return
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
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def leftovers(recording_dir: str | Path) -> list[Path]:
    """Temp files a compaction cut short left behind (removed at start-up)."""
    recording_dir = Path(recording_dir)
    return [recording_dir / TMP_NAME, *recording_dir.glob(f".*{TMP_SUFFIX}")]


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
    # The child lowers its own priority (main): a preexec_fn may deadlock in a threaded server.
    return subprocess.Popen([sys.executable, "-m", "rt.store.compact", str(recording_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


class Compactor:
    """Compacts recordings one at a time, each in a child process (:func:`compact_in_child`), each
    once its due time (``time.monotonic()``) has come; ``on_done(recording_id)`` is called (on its
    thread) after each success."""

    def __init__(self, on_done: Callable[[str], None]) -> None:
        self._on_done = on_done
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._due: list[tuple[float, int, Path]] = []  # a heap
        self._seq = 0
        self._running: tuple[Path, subprocess.Popen] | None = None
        self._cancelled: set[Path] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="rt-compact", daemon=True)
        self._thread.start()

    def submit(self, recording_dir: str | Path, due: float = 0.0) -> None:
        """Compact a recording at ``due`` (monotonic s; 0: now); one that needs no compaction
        (see :func:`needs_compaction`) is skipped."""
        with self._changed:
            self._cancelled.discard(Path(recording_dir))
            self._seq += 1
            heapq.heappush(self._due, (due, self._seq, Path(recording_dir)))
            self._changed.notify_all()

    def cancel(self, recording_dir: str | Path) -> None:
        """Forget a recording and stop its compaction if it runs (before a delete); returns once
        its child process has exited."""
        path = Path(recording_dir)
        with self._lock:
            self._cancelled.add(path)
            running = self._running
        if running is not None and running[0] == path:
            running[1].kill()
            running[1].wait()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is due or running (tests); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._due and self._running is None, timeout)

    def close(self) -> None:
        """Stop: a compaction under way is killed (its temp files go at the next start-up)."""
        with self._changed:
            self._closed = True
            running = self._running
            self._changed.notify_all()
        if running is not None:
            running[1].kill()
        self._thread.join(timeout=10)

    def _next(self) -> Path | None:
        with self._changed:
            while not self._closed:
                if self._due:
                    wait = self._due[0][0] - time.monotonic()
                    if wait <= 0:
                        path = heapq.heappop(self._due)[2]
                        if path in self._cancelled or not needs_compaction(path):
                            self._changed.notify_all()
                            continue
                        return path
                    self._changed.wait(wait)
                else:
                    self._changed.wait()
            return None

    def _run(self) -> None:
        while (path := self._next()) is not None:
            try:
                self._compact(path)
            except Exception:  # noqa: BLE001 - a failed compaction leaves the files as they were
                log.exception("compaction of %s failed", path.name)

    def _compact(self, path: Path) -> None:
        with self._changed:
            if self._closed:
                return
            child = compact_in_child(path)
            self._running = (path, child)
        try:
            _, err = child.communicate()
        finally:
            with self._changed:
                self._running = None
                self._changed.notify_all()
        if child.returncode == 0:
            self._on_done(path.name)
        elif path not in self._cancelled and child.returncode > 0:
            log.warning("compaction of %s failed: %s", path.name, err.strip())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if hasattr(os, "nice"):
        os.nice(19)  # beside a game: only idle CPU
    if len(args) != 1:
        print("usage: python -m rt.store.compact RECORDING_DIR", file=sys.stderr)
        return 2
    try:
        before, after = compact(args[0])
    except (OSError, KeyError, ValueError, rawfile.StoreError) as exc:
        print(f"compaction of {args[0]} failed: {exc}", file=sys.stderr)
        return 1
    print(f"{args[0]}: {before} -> {after} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
