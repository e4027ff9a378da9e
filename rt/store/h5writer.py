"""Writing ``data.h5`` (its schema: :mod:`rt.store.h5store`) while a recording runs.

Each packet kind is one compound dataset, not one dataset per field: an append costs a resize and
a write per dataset, so per-field datasets of a 110-field packet append 5x slower (the
``-k store`` benchmark). Datasets are chunked along time (~64 KiB a
chunk) and resizable, and nothing is compressed while recording (:data:`PACKET_FILTERS`,
:data:`CANONICAL_FILTERS`): :mod:`rt.store.compact` deflates it all once the recording stops. Appends happen in slices as rows queue up
(:data:`APPEND_BYTES`, :data:`CANONICAL_APPEND_BYTES`), on a writer thread while recording, and at
each sync.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import StoreError
from ..protocols.canonical import CANONICAL_DTYPE, CANONICAL_NAMES, CANONICAL_UNITS
from ..protocols.layout import PacketLayout
from .manifest import iso

log = logging.getLogger(__name__)

FORMAT = "rusty-telemetry/1"
#: Filters per kind of dataset while recording: none. Packet rows are the raw file's bytes again;
#: canonical rows were gzip level 1, a tenth of recording's CPU at game rates (3 x 333 Hz, serve
#: recording ~0.95 -> ~0.8 % of a core), and h5py holds the GIL while a filter runs (~7 ms per
#: append) while /api/live waits. :mod:`rt.store.compact` deflates both once the recording stops.
PACKET_FILTERS: dict = {}
CANONICAL_FILTERS: dict = {}
#: Queued packet-row bytes that trigger an append: a few ms of work, never a stall long enough
#: for the rings to overflow at high rates.
APPEND_BYTES = 2 << 20
#: The same for canonical rows: 7 s of three feeds at game rates.
CANONICAL_APPEND_BYTES = 512 << 10
CHUNK_BYTES = 64 * 1024
#: The smallest freed piece of the file that HDF5 tracks for reuse: tracking every piece (its
#: default) grows memory for a recording's whole length; tracking none grows the file.
FREE_SPACE_MIN_BYTES = 2048
#: The metadata cache's fixed size: enough for three feeds' datasets, and full within the first
#: ~10 minutes at a game's rates, so memory stays flat after them (HDF5's own cache grows up to
#: 32 MiB over a long recording; at 512 KiB it filled for 77 minutes). Appends ran as fast at
#: 64 KiB to 512 KiB: 2 simulated hours of three feeds in 27-36 s for each.
METADATA_CACHE_BYTES = 128 << 10


_TEXT = h5py.string_dtype()
_TEXT_TYPE = h5py.h5t.py_create(_TEXT, logical=True)
_SCALAR = h5py.h5s.create(h5py.h5s.SCALAR)


def short_error(exc: Exception) -> str:
    """The first line of an HDF5 error (they carry a long low-level trace)."""
    return str(exc).split("(", 1)[0].strip() or type(exc).__name__


def _bound_metadata_cache(f: h5py.File) -> None:
    """Fix the file's metadata cache at :data:`METADATA_CACHE_BYTES`. HDF5 keeps every metadata
    block it touched (the chunk index's blocks, a few per dataset and second) until the cache is
    full, and by default may grow it up to 32 MiB: resident memory that rose with the length of
    the recording. The writer only appends, so the blocks of older chunks are never needed again."""
    config = f.id.get_mdc_config()
    config.set_initial_size = True
    config.initial_size = config.min_size = config.max_size = METADATA_CACHE_BYTES
    config.incr_mode = config.flash_incr_mode = config.decr_mode = 0  # H5C_*_off: no resizing
    f.id.set_mdc_config(config)


def _chunk_rows(row_shape: tuple[int, ...], itemsize: int) -> int:
    row_bytes = itemsize * int(np.prod(row_shape, dtype=np.int64))
    return int(min(16384, max(64, CHUNK_BYTES // max(row_bytes, 1))))


def _as_bytes(rows: np.ndarray) -> np.ndarray:
    """Packed rows seen as opaque records: numpy copies and indexes them as plain bytes, where a
    compound dtype goes field by field (10-20x slower for our 40-100 field packets)."""
    return rows.view(np.dtype((np.void, rows.dtype.itemsize)))


class _Queue:
    """Rows queued for one group between two appends, copied into arrays kept for the recording's
    whole length (grown, never shrunk) instead of held as the decoded batches themselves.

    Held batches came and went from the C heap by the megabyte, an append's worth every few
    seconds, interleaved with everything long-lived allocated meanwhile: the heap's arena grew in
    steps of 0.2-1 MB at moments set by the data, still in the second half of a 1-hour game-rate
    soak. Two queues per group take turns (:meth:`H5Writer._take`): one fills while the writer
    thread appends the other."""

    def __init__(self, dtype: np.dtype, rows: int = 0) -> None:
        self.t_ns = np.empty(rows, dtype=np.int64)
        self.rows = np.empty(rows, dtype=dtype)
        self.n = 0
        #: (end row, packet kind) per part, for canonical rows (their kind is stored per row)
        self.kinds: list[tuple[int, str]] = []

    def room(self, m: int) -> tuple[int, int]:
        """Make room for ``m`` more rows; returns their slice bounds."""
        start, end = self.n, self.n + m
        if end > len(self.rows):
            size = max(end, 2 * len(self.rows), 64)
            t_ns, rows = np.empty(size, dtype=np.int64), np.empty(size, dtype=self.rows.dtype)
            t_ns[:start], _as_bytes(rows)[:start] = self.t_ns[:start], _as_bytes(self.rows)[:start]
            self.t_ns, self.rows = t_ns, rows
        self.n = end
        return start, end

    def queued(self) -> tuple[np.ndarray, np.ndarray]:
        """The queued times (ns) and rows (views: valid until the queue is reused)."""
        return self.t_ns[:self.n], self.rows[:self.n]

    def reset(self) -> None:
        self.n = 0
        self.kinds.clear()


@dataclass
class _Appending:
    """A dataset the writer appends to: its handle, dtype, HDF5 memory type and row count."""

    id: h5py.h5d.DatasetID
    dtype: np.dtype
    memory_type: h5py.h5t.TypeID
    rows: int


class H5Writer:
    """Buffers decoded batches and appends them to ``data.h5`` (see :meth:`append_due`, :meth:`flush`).

    With a ``writer`` (a one-thread executor) the appends that :meth:`append_due` finds due run on
    that thread, one at a time, while the caller goes on decoding: h5py lets go of the GIL while
    HDF5 writes, and writing the rows (mostly the kernel's page-cache work) was 40 % of the
    consumer's time per PCARS datagram. An append that fails there is raised by the next
    :meth:`append_due`, :meth:`flush` or :meth:`close`. Everything else (:meth:`add`,
    :meth:`flush`, reading :attr:`file` after a flush) stays on the caller's side, one caller at a
    time (the recorder's lock).
    """

    def __init__(self, path: str | Path, recording_id: str, created_at: str | None = None,
                 writer: Executor | None = None) -> None:
        self.path = Path(path)
        try:
            # A chunk cache of one chunk per dataset (CHUNK_BYTES) that evicts whole chunks first:
            # each (compressed) chunk is written as soon as the next one starts, spread over the
            # appends, instead of all together at the next flush (a stall longer than the rings
            # hold at high rates); full chunks kept beside it would hold memory for as long as a
            # rare packet kind takes to fill its next one (hours at a game's rates).
            # Free space in the file: HDF5 frees a compressed chunk's old place each time it is
            # rewritten larger (a sync wrote it partly filled) and by default tracks every freed
            # piece in memory until the file closes, a recording's whole length. Pieces under
            # FREE_SPACE_MIN_BYTES are mostly too small to be reused and are let go instead.
            self.file = h5py.File(self.path, "w", libver="latest", fs_strategy="fsm",
                                  fs_threshold=FREE_SPACE_MIN_BYTES,
                                  rdcc_nbytes=CHUNK_BYTES, rdcc_w0=1.0)
            _bound_metadata_cache(self.file)
            self.file.attrs["format"] = FORMAT
            self.file.attrs["recording_id"] = recording_id
            self.file.attrs["created_at"] = created_at or iso()
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.path.name}: cannot create: {exc}") from exc
        self._pending: dict[tuple[str, str], _Queue] = {}  # packet rows queued per (feed, kind)
        self._layouts: dict[str, PacketLayout] = {}
        self._canonical: dict[tuple[str, None], _Queue] = {}  # canonical rows queued per (feed, None)
        # The other queue of each pair (see _Queue), and the queues the last _take handed over.
        self._spare: dict[tuple[str, str | None], _Queue] = {}
        self._taken: dict[tuple[str, str | None], _Queue] = {}
        self.pending_bytes = 0  # their decoded size
        self.pending_canonical = 0  # queued canonical rows
        self._datasets: dict[str, _Appending] = {}
        self._dcpls: dict[tuple, h5py.h5p.PropDCID] = {}  # creation property lists to reuse (_create)
        self._groups: dict[str, h5py.Group] = {}
        self._kinds: dict[str, list[str]] = {}  # per feed: the canonical group's "kinds" attribute
        self._writer = writer
        #: A write failed: the file is not to be trusted, nor the HDF5 library's shutdown at exit
        #: (it crashed there after a failed write, h5py 3.16 on a full disk).
        self.failed = False
        self._in_flight: Future | None = None  # the append running on the writer thread
        self._abandoned = False  # see _abandon
        # Held by whichever thread appends: the datasets and groups above belong to it meanwhile.
        self._append_lock = threading.Lock()

    def _append(self, group: h5py.Group, name: str, values: np.ndarray, attrs=None, filters: dict = PACKET_FILTERS) -> None:
        """Append ``values`` along axis 0 of ``group/name``, creating it (chunked, with ``filters``)
        with ``attrs()`` on first use.

        Datasets stay open: closing one flushes its chunk cache, which compressed every partial
        chunk on every append and decompressed it again on the next (half of all recording time
        before they were kept). The HDF5 memory type is built once per dataset too: h5py builds it
        from the numpy dtype on every write, which for a 100-field compound cost as much as
        compressing the rows."""
        key = f"{group.name}/{name}"
        entry = self._datasets.get(key)
        if entry is None or entry.dtype != values.dtype:
            # The writer made the file: a dataset it has no entry for is new, unless the rows'
            # dtype changed under an entry (then the dataset is there, with its rows).
            dataset = group.get(name) if entry is not None else None
            if dataset is None:
                dataset_id, rows = self._create(group, name, values, attrs, filters), 0
            else:
                dataset_id, rows = dataset.id, dataset.shape[0]
            entry = self._datasets[key] = _Appending(dataset_id, values.dtype, h5py.h5t.py_create(values.dtype), rows)
        values = np.ascontiguousarray(values)
        # The low-level calls: h5py's Dataset.shape and resize() cost twice the write itself for
        # the few hundred rows of an append at game rates.
        n, m = entry.rows, values.shape[0]
        entry.id.set_extent((n + m, *values.shape[1:]))
        file_space = entry.id.get_space()
        file_space.select_hyperslab((n, *(0,) * (values.ndim - 1)), values.shape)
        entry.id.write(h5py.h5s.create_simple(values.shape), file_space, values, entry.memory_type)
        entry.rows = n + m

    def _create(self, group: h5py.Group, name: str, values: np.ndarray, attrs, filters: dict) -> h5py.h5d.DatasetID:
        """Create ``group/name`` for rows like ``values`` (empty, growing along axis 0, chunked,
        with ``filters``) and its text ``attrs()``.

        h5py creates the first dataset of each dtype, chunk shape and filters; the others reuse
        its creation property list through the low-level calls, and their attributes too, at a
        third of the cost: creating data.h5's ~70 datasets is most of what starting a recording
        costs."""
        shape = values.shape[1:]
        chunks = (_chunk_rows(shape, values.dtype.itemsize), *shape)
        like = (values.dtype.str, chunks, tuple(sorted(filters.items())))
        dcpl = self._dcpls.get(like) if values.dtype.fields is None else None
        if dcpl is None:
            dataset = group.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=values.dtype,
                                           chunks=chunks, **filters)
            self._dcpls[like] = dataset.id.get_create_plist()
            dataset_id = dataset.id
        else:
            space = h5py.h5s.create_simple((0, *shape), (h5py.h5s.UNLIMITED, *shape))
            dataset_id = h5py.h5d.create(group.id, name.encode(), h5py.h5t.py_create(values.dtype, logical=True),
                                         space, dcpl=dcpl)
        for attr, text in (attrs() if attrs else {}).items():
            attribute = h5py.h5a.create(dataset_id, attr.encode(), _TEXT_TYPE, _SCALAR)
            attribute.write(np.array(text, dtype=_TEXT))  # as h5py writes a str: variable-length UTF-8
        return dataset_id

    def _group(self, path: str) -> h5py.Group:
        group = self._groups.get(path)
        if group is None:
            group = self._groups[path] = self.file.require_group(path)
        return group

    def add(self, feed: str, layout: PacketLayout, columns, t_ns: np.ndarray, canonical: np.ndarray | None) -> None:
        """Queue one decoded group (``columns``: a :class:`~rt.decode.RowColumns` or a dict of
        columns; ``t_ns``: receive times, ns since the Unix epoch). The rows are copied into the
        writer's queues (:class:`_Queue`): the caller's arrays are not kept."""
        self._layouts[layout.name] = layout
        queue = self._queue(self._pending, (feed, layout.name), layout.dtype)
        start, end = queue.room(len(t_ns))
        queue.t_ns[start:end] = t_ns
        target = queue.rows[start:end]
        rows = getattr(columns, "rows", None)
        if rows is not None and rows.dtype == target.dtype:
            _as_bytes(target)[:] = _as_bytes(rows)
        else:
            for name in columns:
                target[name] = columns[name]
        self.pending_bytes += target.nbytes
        if canonical is not None:
            queue = self._queue(self._canonical, (feed, None), CANONICAL_DTYPE)
            start, end = queue.room(len(canonical))
            _as_bytes(queue.rows)[start:end] = _as_bytes(canonical)
            queue.kinds.append((end, layout.name))
            self.pending_canonical += len(canonical)

    def _queue(self, queues: dict, key: tuple[str, str | None], dtype: np.dtype) -> _Queue:
        """The queue filling for ``key``: the one written before last, once the other is handed
        over (:meth:`_take`)."""
        queue = queues.get(key)
        if queue is None:
            queue = self._spare.pop(key, None) or _Queue(dtype)
            queues[key] = queue
        return queue

    def append_due(self) -> None:
        """Append what is queued once there is enough of it (:data:`APPEND_BYTES`,
        :data:`CANONICAL_APPEND_BYTES`): often enough that no single append or flush stalls the
        caller for long, rarely enough that each one moves a lot. Call after :meth:`add`.

        With a writer thread the append is handed to it; the caller waits only for the one
        before it (so at most one append is ever behind)."""
        rows = self.pending_bytes >= APPEND_BYTES
        canonical = self.pending_canonical * CANONICAL_DTYPE.itemsize >= CANONICAL_APPEND_BYTES
        if not (rows or canonical):
            return
        if self._writer is None:
            self.append_pending(rows=rows, canonical=canonical)
            return
        self._wait_in_flight()
        pending, canonical_parts = self._take(rows, canonical)
        self._in_flight = self._writer.submit(self._write_parts, pending, canonical_parts)

    def _wait_in_flight(self) -> None:
        future, self._in_flight = self._in_flight, None
        if future is not None:
            future.result()  # a failed append raises its StoreError here

    def flush(self) -> None:
        """Append everything queued and flush the file."""
        self.append_pending()
        try:
            with self._append_lock:
                self.file.flush()
        except (OSError, ValueError, RuntimeError) as exc:
            self.failed = True
            raise StoreError(f"{self.path.name}: write failed: {short_error(exc)}") from exc

    def append_pending(self, rows: bool = True, canonical: bool = True) -> None:
        """Append the queued packet rows and/or the queued canonical rows to the datasets (no
        file flush), after the append on the writer thread, if one runs."""
        self._wait_in_flight()
        self._write_parts(*self._take(rows, canonical))

    def _take(self, rows: bool, canonical: bool) -> tuple[dict, dict]:
        """Detach the queued rows and/or canonical rows (the caller's side) for appending. Called
        with no append in flight: the queues the last call handed over are written, and become
        the spares that the next rows go to."""
        for key, queue in self._taken.items():
            queue.reset()
            self._spare.setdefault(key, queue)
        pending: dict = {}
        canonical_parts: dict = {}
        if rows:
            pending, self._pending, self.pending_bytes = self._pending, {}, 0
        if canonical:
            canonical_parts, self._canonical, self.pending_canonical = self._canonical, {}, 0
        self._taken = {**pending, **canonical_parts}
        return pending, canonical_parts

    def _write_parts(self, pending: dict, canonical_parts: dict) -> None:
        try:
            with self._append_lock:
                for (feed, kind), queue in pending.items():
                    layout = self._layouts[kind]
                    path = f"{feed}/{kind}"
                    fresh = path not in self._groups
                    group = self._group(path)
                    if fresh and "doc" not in group.attrs:
                        group.attrs["doc"] = layout.doc
                        group.attrs["packet_size"] = layout.size
                        group.attrs["provisional"] = layout.provisional
                    t_ns, rows = queue.queued()
                    self._append(group, "t_ns", t_ns, lambda: {"unit": "ns since Unix epoch"})
                    self._append(group, "rows", rows, lambda: {
                        "units": json.dumps({f.name: f.unit for f in layout.fields}),
                        "docs": json.dumps({f.name: f.doc for f in layout.fields}),
                        "offsets": json.dumps({f.name: f.offset for f in layout.fields}),
                    })
                for (feed, _), queue in canonical_parts.items():
                    self._append_canonical(feed, queue)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            self.failed = True
            raise StoreError(f"{self.path.name}: write failed: {short_error(exc)}") from exc

    def _append_canonical(self, feed: str, queue: _Queue) -> None:
        group = self._group(f"{feed}/canonical")
        kinds = self._kinds.get(feed)
        if kinds is None:
            kinds = self._kinds[feed] = list(group.attrs.get("kinds", []))
        known = len(kinds)
        _, rows = queue.queued()
        ids = np.empty(len(rows), dtype=np.uint8)
        start = 0
        for end, kind in queue.kinds:
            if kind not in kinds:
                kinds.append(kind)
            ids[start:end] = kinds.index(kind)
            start = end
        if len(kinds) != known:
            group.attrs["kinds"] = kinds
        order = np.argsort(rows["t_ns"], kind="stable")  # kinds of one batch come grouped, not in time order
        rows, ids = _as_bytes(rows)[order].view(rows.dtype), ids[order]
        for name in CANONICAL_NAMES:
            self._append(group, name, np.ascontiguousarray(rows[name]), lambda name=name: {"unit": CANONICAL_UNITS[name]},
                         CANONICAL_FILTERS)
        self._append(group, "kind", ids, lambda: {"unit": "index into the group's 'kinds' attribute"}, CANONICAL_FILTERS)

    def close(self) -> None:
        if self._abandoned:
            return  # h5py's File.close decrements every open identifier, locked or not
        try:
            self._wait_in_flight()  # even after a failure: the file must not close under it
            if not self.failed:
                self.flush()
        finally:
            try:
                self.file.close()
            except Exception:  # noqa: BLE001 - a broken file must still let go of its handle
                self.failed = True
            if self.failed:
                self._abandon()

    def _abandon(self) -> None:
        """Stop every HDF5 identifier this writer holds from ever being closed again.

        After a failed write HDF5 cannot close the file (each close flushes, and the flush fails
        again), and a dataset whose close failed stays registered, half torn down: the next
        close of that identifier, when Python collects the writer, segfaulted the server
        (HDF5 2.0, in H5D_close). Locked identifiers are left alone by h5py; the file keeps its
        descriptor until the process exits, and the CLI skips HDF5's shutdown then
        (:attr:`RecordingManager.hdf5_failed`)."""
        held = [entry.id for entry in self._datasets.values()]
        held += [group.id for group in self._groups.values()]
        held.append(self.file.id)
        for identifier in held:
            identifier.locked = True
        self._abandoned = True
