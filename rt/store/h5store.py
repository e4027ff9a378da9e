"""The HDF5 file of a recording: decoded datagrams, one compound dataset per packet kind.

Schema of ``data.h5`` (documented in the README)::

    /                               attrs: format, recording_id, created_at
    /<feed>/<packet kind>/t_ns      int64 (n,)         receive time, ns since the Unix epoch
    /<feed>/<packet kind>/rows      compound (n,)      every decoded field, one member per field
                                                       (attrs units, docs, offsets: JSON by field)
    /<feed>/canonical/<channel>     (n,)               the canonical channels (rt.protocols.canonical)
    /<feed>/canonical/kind          uint8 (n,)         which packet kind a frame came from
                                                       (attr kinds: the names, by index)

Rows of one packet kind are in arrival order; a feed's canonical frames are its driving packets of
every kind in receive-time order, and a run's frame markers index them. Plain h5py or pandas
reads it: ``pd.DataFrame({k: v[:] for k, v in f["ksudp/canonical"].items()})``, and
``f["ksudp/ac_car_info/rows"]["speed_Kmh"]`` reads one field of the game's own packets.

Each packet kind is one compound dataset, not one dataset per field: measured on PCARS 1
telemetry (110 fields) in 1500-row appends, 253 000 rows/s against 46 000 for per-field datasets
(each append costs a resize and a write per dataset). Datasets are chunked along time (~64 KiB a
chunk) and resizable; packet rows are stored uncompressed, canonical channels gzip-compressed
(:data:`PACKET_FILTERS`, :data:`CANONICAL_FILTERS`). Appends happen in slices as rows queue up
(:data:`APPEND_BYTES`, :data:`CANONICAL_APPEND_BYTES`), on a writer thread while recording, and at
each sync.

The file is derived: after a crash it is checked against the raw files, value for value
(:func:`disagreement`), and rebuilt from them (:func:`rebuild`) where it differs. Readers other
than the writer open it after the recording stops; the server's
own analysis reads through the writer's handle after a flush, so no SWMR is needed (SWMR would
forbid creating the datasets of a packet kind that first appears mid-recording).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np

from ..decode import CHUNK, BatchDecoder, RowColumns, classify_batch
from ..errors import StoreError
from ..protocols import FEEDS, Protocols
from ..protocols.canonical import CANONICAL_DTYPE, CANONICAL_UNITS, MAPPERS
from ..protocols.layout import PacketLayout
from . import rawfile
from .manifest import iso

log = logging.getLogger(__name__)

FORMAT = "rusty-telemetry/1"
#: Filters per kind of dataset (h5py ``create_dataset`` keywords) while recording. Packet rows are
#: stored as they came, like the raw file beside them, which already holds the same bytes:
#: compressing that copy (lzf saved 31% of it on a real AC capture) took half of the consumer's
#: time at high rates. Once stopped, :mod:`rt.store.compact` rewrites them with shuffle + deflate.
#: Canonical rows are small and read often; gzip (deflate, level 1) halves them and, unlike lzf,
#: every HDF5 reader has it (MATLAB, HDFView, h5py, pandas).
PACKET_FILTERS: dict = {}
CANONICAL_FILTERS: dict = {"compression": "gzip", "compression_opts": 1, "shuffle": False}
#: Queued packet-row bytes that trigger an append before the next flush (a few ms of work):
#: one sync's worth at once would stall the consumer long enough for the rings to overflow.
APPEND_BYTES = 2 << 20
#: The same for canonical rows, smaller because they are compressed (gzip, ~1 µs per row): 512 KiB
#: is 7 000 rows, ~7 ms. At 150 000 PCARS datagrams/s half a second of them took 75 ms at the
#: sync, longer than a ring holds at that rate.
CANONICAL_APPEND_BYTES = 512 << 10
CHUNK_BYTES = 64 * 1024
#: The smallest freed piece of the file that HDF5 keeps track of for reuse. Offline over 18 M
#: datagrams: tracking every piece (HDF5's default) held 1.27 MB of them, still growing, and the
#: heap grew 0.6 MB more than with 2 KiB, where 0.35 MB were tracked and the file was 0.05 %
#: larger; tracking nothing made the file 6.5 % larger.
FREE_SPACE_MIN_BYTES = 2048
#: The metadata cache's fixed size. Offline, three feeds' datasets filled 512 KiB after ~9 M
#: datagrams and the C heap stayed flat from then on; appends ran as fast as with a 2 MiB cache
#: (HDF5's default starting size, which it may grow to 32 MiB, still filling at 20 M datagrams).
METADATA_CACHE_BYTES = 512 << 10


def _short(exc: Exception) -> str:
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


def _concat_rows(parts: list[np.ndarray]) -> np.ndarray:
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([_as_bytes(p) for p in parts]).view(parts[0].dtype)


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
            # A small chunk cache that evicts whole chunks first: each (compressed) chunk is written
            # as it fills, spread over the appends, instead of all together at the next flush (a
            # 50 ms stall of the consumer at 150 000 datagrams/s, longer than the rings hold).
            # Free space in the file: HDF5 frees a compressed chunk's old place each time it is
            # rewritten larger (a sync wrote it partly filled) and by default tracks every freed
            # piece in memory until the file closes, a recording's whole length. Pieces under
            # FREE_SPACE_MIN_BYTES are mostly too small to be reused and are let go instead.
            self.file = h5py.File(self.path, "w", libver="latest", fs_strategy="fsm",
                                  fs_threshold=FREE_SPACE_MIN_BYTES,
                                  rdcc_nbytes=4 * CHUNK_BYTES, rdcc_w0=1.0)
            _bound_metadata_cache(self.file)
            self.file.attrs["format"] = FORMAT
            self.file.attrs["recording_id"] = recording_id
            self.file.attrs["created_at"] = created_at or iso()
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.path.name}: cannot create: {exc}") from exc
        self._pending: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}  # (t_ns, rows)
        self._layouts: dict[str, PacketLayout] = {}
        self._canonical: dict[str, list[tuple[np.ndarray, str]]] = {}
        self.pending_bytes = 0  # their decoded size
        self.pending_canonical = 0  # queued canonical rows
        self._datasets: dict[str, _Appending] = {}
        self._groups: dict[str, h5py.Group] = {}
        self._kinds: dict[str, list[str]] = {}  # per feed: the canonical group's "kinds" attribute
        self._writer = writer
        #: A write failed: the file is not to be trusted, nor the HDF5 library's shutdown at exit
        #: (it crashed there after a failed write, h5py 3.16 on a full disk).
        self.failed = False
        self._in_flight: Future | None = None  # the append running on the writer thread
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
            dataset = group.get(name)
            if dataset is None:
                shape = values.shape[1:]
                dataset = group.create_dataset(
                    name,
                    shape=(0, *shape),
                    maxshape=(None, *shape),
                    dtype=values.dtype,
                    chunks=(_chunk_rows(shape, values.dtype.itemsize), *shape),
                    **filters,
                )
                for attr, value in (attrs() if attrs else {}).items():
                    dataset.attrs[attr] = value
            entry = self._datasets[key] = _Appending(dataset.id, values.dtype, h5py.h5t.py_create(values.dtype),
                                                     dataset.shape[0])
        values = np.ascontiguousarray(values)
        # The low-level calls: h5py's Dataset.shape and resize() cost twice the write itself for
        # the few hundred rows of an append at game rates.
        n, m = entry.rows, values.shape[0]
        entry.id.set_extent((n + m, *values.shape[1:]))
        file_space = entry.id.get_space()
        file_space.select_hyperslab((n, *(0,) * (values.ndim - 1)), values.shape)
        entry.id.write(h5py.h5s.create_simple(values.shape), file_space, values, entry.memory_type)
        entry.rows = n + m

    def _group(self, path: str) -> h5py.Group:
        group = self._groups.get(path)
        if group is None:
            group = self._groups[path] = self.file.require_group(path)
        return group

    def add(self, feed: str, layout: PacketLayout, columns, t_ns: np.ndarray, canonical: np.ndarray | None) -> None:
        """Queue one decoded group (``columns``: a :class:`~rt.decode.RowColumns` or a dict of
        columns). The arrays are kept, not copied: the feed hands every sink fresh ones."""
        self._layouts[layout.name] = layout
        rows = getattr(columns, "rows", None)
        if rows is None:
            rows = np.empty(len(t_ns), dtype=layout.dtype)
            for name, values in columns.items():
                rows[name] = values
        self._pending.setdefault((feed, layout.name), []).append((np.asarray(t_ns, dtype=np.int64), rows))
        self.pending_bytes += rows.nbytes
        if canonical is not None:
            self._canonical.setdefault(feed, []).append((canonical, layout.name))
            self.pending_canonical += len(canonical)

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
            raise StoreError(f"{self.path.name}: write failed: {_short(exc)}") from exc

    def append_pending(self, rows: bool = True, canonical: bool = True) -> None:
        """Append the queued packet rows and/or the queued canonical rows to the datasets (no
        file flush), after the append on the writer thread, if one runs."""
        self._wait_in_flight()
        self._write_parts(*self._take(rows, canonical))

    def _take(self, rows: bool, canonical: bool) -> tuple[dict, dict]:
        """Detach the queued rows and/or canonical rows (the caller's side) for appending."""
        pending: dict = {}
        canonical_parts: dict = {}
        if rows:
            pending, self._pending, self.pending_bytes = self._pending, {}, 0
        if canonical:
            canonical_parts, self._canonical, self.pending_canonical = self._canonical, {}, 0
        return pending, canonical_parts

    def _write_parts(self, pending: dict, canonical_parts: dict) -> None:
        try:
            with self._append_lock:
                for (feed, kind), parts in pending.items():
                    layout = self._layouts[kind]
                    path = f"{feed}/{kind}"
                    fresh = path not in self._groups
                    group = self._group(path)
                    if fresh and "doc" not in group.attrs:
                        group.attrs["doc"] = layout.doc
                        group.attrs["packet_size"] = layout.size
                        group.attrs["provisional"] = layout.provisional
                    self._append(group, "t_ns", np.concatenate([p[0] for p in parts]),
                                 lambda: {"unit": "ns since Unix epoch"})
                    self._append(group, "rows", _concat_rows([p[1] for p in parts]), lambda: {
                        "units": json.dumps({f.name: f.unit for f in layout.fields}),
                        "docs": json.dumps({f.name: f.doc for f in layout.fields}),
                        "offsets": json.dumps({f.name: f.offset for f in layout.fields}),
                    })
                for feed, parts in canonical_parts.items():
                    self._append_canonical(feed, parts)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            self.failed = True
            raise StoreError(f"{self.path.name}: write failed: {_short(exc)}") from exc

    def _append_canonical(self, feed: str, parts: list[tuple[np.ndarray, str]]) -> None:
        group = self._group(f"{feed}/canonical")
        kinds = self._kinds.get(feed)
        if kinds is None:
            kinds = self._kinds[feed] = list(group.attrs.get("kinds", []))
        known = len(kinds)
        rows = _concat_rows([p[0] for p in parts])
        kind_ids = []
        for canon, kind in parts:
            if kind not in kinds:
                kinds.append(kind)
            kind_ids.append(np.full(len(canon), kinds.index(kind), dtype=np.uint8))
        if len(kinds) != known:
            group.attrs["kinds"] = kinds
        ids = np.concatenate(kind_ids)
        order = np.argsort(rows["t_ns"], kind="stable")  # kinds of one batch come grouped, not in time order
        rows, ids = _as_bytes(rows)[order].view(rows.dtype), ids[order]
        for name in CANONICAL_DTYPE.names:
            self._append(group, name, np.ascontiguousarray(rows[name]), lambda name=name: {"unit": CANONICAL_UNITS[name]},
                         CANONICAL_FILTERS)
        self._append(group, "kind", ids, lambda: {"unit": "index into the group's 'kinds' attribute"}, CANONICAL_FILTERS)

    def close(self) -> None:
        try:
            self._wait_in_flight()  # even after a failure: the file must not close under it
            if not self.failed:
                self.flush()
        finally:
            try:
                self.file.close()
            except Exception:  # noqa: BLE001 - a broken file must still let go of its handle
                self.failed = True


# ---- reading, checking and rebuilding ---------------------------------------------------------


def read_canonical(f: h5py.File, feed: str, start: int, end: int | None,
                   protocols: Protocols) -> tuple[np.ndarray, np.ndarray]:
    """Canonical rows ``start:end`` of ``feed`` and the game's sector splits of those frames
    (n × 3 s, NaN where a frame's kind has none: see ``PacketLayout.sectors``)."""
    group = f.get(f"{feed}/canonical")
    if group is None:
        return np.zeros(0, dtype=CANONICAL_DTYPE), np.zeros((0, 3))
    total = group["t_ns"].shape[0]
    end = total if end is None else min(end, total)
    start = max(0, min(start, end))
    rows = np.zeros(end - start, dtype=CANONICAL_DTYPE)
    for name in CANONICAL_DTYPE.names:
        rows[name] = group[name][start:end]
    sectors = np.full((end - start, 3), np.nan)
    kinds = [k.decode() if isinstance(k, bytes) else str(k) for k in group.attrs.get("kinds", [])]
    stored = group["kind"][:end] if kinds else None
    for kind_id, kind in enumerate(kinds):
        names = list(protocols[kind].sectors) if kind in protocols.kind_id else []
        if not names or f"{feed}/{kind}" not in f:
            continue
        # Rows of one kind keep their order in the canonical group: the k-th frame of a kind there
        # is row k of that kind's datasets.
        is_kind = stored == kind_id
        mine = is_kind[start:end]
        kind_rows = (np.cumsum(is_kind) - 1)[start:end][mine]
        if kind_rows.size:
            lo, hi = int(kind_rows[0]), int(kind_rows[-1]) + 1
            block = f[f"{feed}/{kind}/rows"].fields(names)[lo:hi][kind_rows - lo]
            for k, name in enumerate(names[:3]):
                sectors[mine, k] = block[name]
    return rows, sectors


def read_facts(f: h5py.File, feed: str, t0_ns: int, t1_ns: int, protocols: Protocols) -> dict[str, float]:
    """The game's own facts (``max_rpm``, ``track_length_m``: see ``PacketLayout.facts``) for the
    packets of ``feed`` received in ``t0_ns..t1_ns``, or before it when none fall inside.

    A fact is the median of the packets' positive values (menus send 0); absent when no packet
    states it.
    """
    facts: dict[str, list[float]] = {}
    group = f.get(feed)
    if group is None:
        return {}
    for kind in group:
        if kind == "canonical" or kind not in protocols.kind_id:
            continue
        layout = protocols[kind]
        if not layout.facts:
            continue
        t = group[kind]["t_ns"]
        total = t.shape[0]
        lo, hi = (int(np.searchsorted(t[:], v, side=side)) for v, side in ((t0_ns, "left"), (t1_ns, "right")))
        if lo >= hi:  # nothing inside the span: the last packets before it speak for it
            lo, hi = max(0, min(lo, total) - 64), min(lo, total)
        if lo >= hi:
            continue
        block = group[kind]["rows"].fields(list(layout.facts.values()))[lo:hi]
        for fact, name in layout.facts.items():
            values = block[name].astype(np.float64)
            values = values[np.isfinite(values) & (values > 0)]
            if values.size:
                facts.setdefault(fact, []).append(float(np.median(values)))
    return {fact: max(values) for fact, values in facts.items()}


def read_canonical_file(path: str | Path, feed: str, start: int, end: int | None,
                        protocols: Protocols) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_canonical` from a closed recording's file."""
    try:
        with h5py.File(path, "r") as f:
            return read_canonical(f, feed, start, end, protocols)
    except (OSError, KeyError, ValueError) as exc:
        raise StoreError(f"{Path(path).name}: unreadable: {exc}") from exc


def kind_counts(path: str | Path) -> dict[tuple[str, str], int]:
    """Rows per (feed, packet kind or "canonical") in an HDF5 file; StoreError if unreadable."""
    counts: dict[tuple[str, str], int] = {}
    try:
        with h5py.File(path, "r") as f:
            for feed in f:
                for kind in f[feed]:
                    counts[(feed, kind)] = int(f[feed][kind]["t_ns"].shape[0])
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise StoreError(f"{Path(path).name}: unreadable: {exc}") from exc
    return counts


@dataclass
class ClassifiedRaw:
    """A raw feed file's bytes and its whole records, classified: ``t_ns`` (ns), payload
    ``offsets`` into ``data``, true ``lengths``, packet ``kinds`` (−1 malformed) and the number
    of ``malformed`` datagrams."""

    data: np.ndarray
    t_ns: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    kinds: np.ndarray
    malformed: int


def classified_raw(raw_path: str | Path, feed: str, protocols: Protocols) -> ClassifiedRaw:
    """Read and classify a raw feed file (compressed or not). A torn last record is left out, as
    every reader of raw files leaves it out."""
    data = rawfile.load(raw_path)
    t_ns, offsets, lengths, _ = rawfile.parse(data)
    kinds, bad = classify_batch(protocols.feed_rules[feed].rules, data, offsets, lengths)
    return ClassifiedRaw(data, t_ns, offsets, lengths, kinds, int(bad))


def _counts_of(feed: str, kinds: np.ndarray, protocols: Protocols) -> dict[tuple[str, str], int]:
    """Datagrams per (feed, packet kind) from their kind ids, and the feed's canonical frames."""
    counts: dict[tuple[str, str], int] = {}
    ids, n = np.unique(kinds[kinds >= 0], return_counts=True)
    for kind_id, count in zip(ids.tolist(), n.tolist()):
        counts[(feed, protocols.kinds[kind_id].name)] = count
    frames = sum(c for (_, kind), c in counts.items() if kind in MAPPERS)
    if frames:
        counts[(feed, "canonical")] = frames
    return counts


def raw_kind_counts(raw_path: str | Path, feed: str, protocols: Protocols) -> dict[tuple[str, str], int]:
    """Well-formed datagrams per (feed, packet kind) in a raw feed file, and its canonical frames."""
    return _counts_of(feed, classified_raw(raw_path, feed, protocols).kinds, protocols)


def agrees_with_raw(recording_dir: str | Path, protocols: Protocols) -> bool:
    """True when ``data.h5`` is readable and holds exactly what the raw files decode to: the same
    rows, receive times and canonical frames, value for value (see :func:`disagreement`)."""
    found = disagreement(recording_dir, protocols)
    if found is not None:
        log.info("recording %s: data.h5 disagrees with the raw files: %s", Path(recording_dir).name, found)
    return found is None


def disagreement(recording_dir: str | Path, protocols: Protocols) -> str | None:
    """Where ``data.h5`` first differs from its raw files, in words, or ``None`` if it does not.

    Counts first (rows per packet kind, canonical frames per kind: what a crash before the last
    appends leaves short), then content: every raw file is decoded again the way :func:`rebuild`
    decodes it (:func:`_decoded_groups`) and each group is compared with the stored rows, receive
    times and canonical frames at its place. Values compare equal when they are equal or both NaN
    (canonical channels hold NaN for unknown). A feed's canonical frames are compared kind by kind
    in stored order: the writer sorts them by receive time one append at a time, so frames of
    different kinds received in the same nanosecond may stand either way round.

    Costs one decode of the raw files and one read of data.h5, without a rebuild's HDF5 writes
    and compression. Measured on 1 h of 333 Hz Assetto Corsa frames (1.2 M datagrams, 408 MB raw,
    439 MB data.h5, on a busy 2-core machine): 1.8-2.9 s and 635 MB peak resident (the raw file
    is read whole, as :func:`rebuild` reads it), against 0.4-0.6 s for the counts alone and 4-8 s
    for a rebuild. Start-up runs it only for recordings a dead process left open; counts are
    compared first, so a file cut short is found before anything is decoded. A raw file that is
    not one raises :class:`~rt.store.rawfile.RawFormatError`, as :func:`rebuild` would.
    """
    recording_dir = Path(recording_dir)
    raws = {feed: path for feed in FEEDS
            if (path := recording_dir / f"{feed}.bin").exists() and path.stat().st_size > len(rawfile.MAGIC)}
    try:
        f = h5py.File(recording_dir / "data.h5", "r")
    except (OSError, ValueError) as exc:
        return f"unreadable: {_short(exc)}"
    try:
        with f:
            stored = _stored_counts(f)
            if isinstance(stored, str):
                return stored
            extra = sorted({feed for feed, _ in stored} - set(raws))
            if extra:
                return f"{extra[0]}: stored, but there is no raw file of it"
            for feed, path in raws.items():
                found = _feed_disagreement(f, feed, path, stored, protocols)
                if found is not None:
                    return found
    except rawfile.RawFormatError:
        raise  # the raw file is broken, not data.h5: rebuilding would not help
    except (OSError, KeyError, ValueError, RuntimeError, TypeError, IndexError) as exc:
        return f"unreadable: {_short(exc)}"
    return None


def _stored_counts(f: h5py.File) -> dict[tuple[str, str], int] | str:
    """Rows per (feed, kind or "canonical") in an open data.h5, or what is wrong with its layout
    (a dataset missing, datasets of one group of different lengths: an append cut short)."""
    counts: dict[tuple[str, str], int] = {}
    for feed in f:
        for kind in f[feed]:
            group = f[feed][kind]
            names = (*CANONICAL_DTYPE.names, "kind") if kind == "canonical" else ("t_ns", "rows")
            missing = [name for name in names if not isinstance(group.get(name), h5py.Dataset)]
            if missing:
                return f"{feed}/{kind}: no {missing[0]} dataset"
            lengths = {name: int(group[name].shape[0]) for name in names}
            if len(set(lengths.values())) != 1:
                return f"{feed}/{kind}: datasets of different lengths {lengths}"
            counts[(feed, kind)] = lengths[names[0]]
    return counts


def _feed_disagreement(f: h5py.File, feed: str, raw_path: Path, stored: dict, protocols: Protocols) -> str | None:
    """Where one feed's stored data first differs from its raw file (see :func:`disagreement`)."""
    classified = classified_raw(raw_path, feed, protocols)
    t_ns = classified.t_ns
    raw = _counts_of(feed, classified.kinds, protocols)
    mine = {key: n for key, n in stored.items() if key[0] == feed}
    if mine != raw:
        key = sorted(set(mine) | set(raw))
        key = next(k for k in key if mine.get(k, 0) != raw.get(k, 0))
        return f"{'/'.join(key)}: {mine.get(key, 0)} rows stored, the raw file has {raw.get(key, 0)}"
    frames = _StoredFrames(f[f"{feed}/canonical"]) if (feed, "canonical") in mine else None
    if frames is not None:
        per_kind = {name: n for (_, name), n in raw.items() if name in MAPPERS}
        if frames.per_kind() != per_kind:
            return f"{feed}/canonical: frames per kind {frames.per_kind()}, the raw file has {per_kind}"
    # Receive times that go backwards do not come from the recorder (its clock is monotonic), but
    # a file made otherwise may have them: the writer's sort then moved frames of one kind past
    # each other within each append, so those are compared in (time, kind) order at the end.
    in_order = t_ns.size < 2 or bool((np.diff(t_ns) >= 0).all())
    unordered: list[tuple[str, np.ndarray]] = []
    done: dict[str, int] = {}  # rows of each packet kind compared so far
    datasets: dict[str, tuple[h5py.Dataset, h5py.Dataset]] = {}
    for layout, cols, group_t, canon in _decoded_groups(classified, feed, protocols):
        path = f"{feed}/{layout.name}"
        if layout.name not in datasets:
            datasets[layout.name] = (f[path]["t_ns"], f[path]["rows"])
        stored_t, stored_rows = datasets[layout.name]
        lo = done.get(layout.name, 0)
        hi = done[layout.name] = lo + len(group_t)
        at = _first_unequal(stored_t[lo:hi], group_t)
        if at is not None:
            return f"{path}/t_ns: row {lo + at} differs"
        at = _first_unequal(stored_rows[lo:hi], cols.rows)
        if at is not None:
            return f"{path}/rows: row {lo + at} differs"
        if canon is None:
            continue
        if frames is None:  # counted frames agree, so only a kind that maps differently gets here
            return f"{feed}/canonical: none stored, the raw file has {layout.name} frames"
        if not in_order:
            unordered.append((layout.name, canon))
            continue
        at = _first_unequal(frames.take(layout.name, len(canon)), canon)
        if at is not None:
            return f"{feed}/canonical: {layout.name} frame {frames.taken[layout.name] - len(canon) + at} differs"
    if frames is not None and in_order and frames.backwards is not None:
        return f"{feed}/canonical: frame {frames.backwards} goes back in time"
    if unordered:
        return _unordered_disagreement(feed, frames.all(), unordered)
    return None


def _unordered_disagreement(feed: str, stored: tuple[np.ndarray, list[str]],
                            fresh: list[tuple[str, np.ndarray]]) -> str | None:
    """Canonical frames compared in (receive time, kind) order: frames of one kind received at the
    same time keep their arrival order on both sides (every sort on the way is stable)."""
    rows, names = stored
    fresh_rows = np.concatenate([canon for _, canon in fresh])
    fresh_names = [kind for kind, canon in fresh for _ in range(len(canon))]
    index = {name: i for i, name in enumerate(sorted(set(names) | set(fresh_names)))}
    a = rows[np.lexsort((np.array([index[n] for n in names], dtype=np.int64), rows["t_ns"]))]
    b = fresh_rows[np.lexsort((np.array([index[n] for n in fresh_names], dtype=np.int64), fresh_rows["t_ns"]))]
    at = _first_unequal(a, b)
    return None if at is None else f"{feed}/canonical: frame {at} in time order differs"


class _StoredFrames:
    """A feed's canonical frames in data.h5, read in blocks and handed out kind by kind in stored order."""

    #: Frames read at a time (~4.5 MB decoded); a block is gzip chunks of every channel.
    BLOCK = 1 << 16

    def __init__(self, group: h5py.Group) -> None:
        self.channels = {name: group[name] for name in CANONICAL_DTYPE.names}
        self.kind = group["kind"]
        self.names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("kinds", [])]
        self.total = int(self.kind.shape[0])
        self.read_to = 0
        self.pending: dict[str, np.ndarray] = {}  # per kind: frames read, not yet taken
        self.taken: dict[str, int] = {}
        self.last_t: int | None = None
        self.backwards: int | None = None  # the first frame received before the one stored ahead of it

    def _name(self, kind_id: int) -> str:
        return self.names[kind_id] if kind_id < len(self.names) else f"unknown kind #{kind_id}"

    def per_kind(self) -> dict[str, int]:
        """Frames per kind name, from the whole ``kind`` dataset (1 byte a frame)."""
        counts = np.bincount(self.kind[:], minlength=1) if self.total else np.zeros(0, dtype=np.int64)
        return {self._name(i): int(n) for i, n in enumerate(counts.tolist()) if n}

    def _read_block(self) -> None:
        lo, hi = self.read_to, min(self.read_to + self.BLOCK, self.total)
        rows = np.empty(hi - lo, dtype=CANONICAL_DTYPE)
        for name, dataset in self.channels.items():
            rows[name] = dataset[lo:hi]
        ids = self.kind[lo:hi]
        t = rows["t_ns"]
        if self.backwards is None and len(t):
            steps = np.diff(t, prepend=t[0] if self.last_t is None else self.last_t)
            back = np.flatnonzero(steps < 0)
            if back.size:
                self.backwards = lo + int(back[0])
            self.last_t = int(t[-1])
        for kind_id in np.unique(ids).tolist():
            name = self._name(kind_id)
            part = rows[ids == kind_id]
            before = self.pending.get(name)
            self.pending[name] = part if before is None or not len(before) else np.concatenate((before, part))
        self.read_to = hi

    def take(self, kind: str, n: int) -> np.ndarray:
        """The next ``n`` stored frames of ``kind`` (fewer if the file has no more)."""
        while len(self.pending.get(kind, ())) < n and self.read_to < self.total:
            self._read_block()
        got = self.pending.get(kind, np.zeros(0, dtype=CANONICAL_DTYPE))
        out, self.pending[kind] = got[:n], got[n:]
        self.taken[kind] = self.taken.get(kind, 0) + len(out)
        return out

    def all(self) -> tuple[np.ndarray, list[str]]:
        """Every frame and its kind name, in stored order."""
        rows = np.empty(self.total, dtype=CANONICAL_DTYPE)
        for name, dataset in self.channels.items():
            rows[name] = dataset[:]
        return rows, [self._name(i) for i in self.kind[:].tolist()]


def _first_unequal(stored: np.ndarray, fresh: np.ndarray) -> int | None:
    """Index of the first row where ``stored`` and ``fresh`` differ in value (NaN equals NaN), or None.

    The bytes are compared first, one pass over memory: rows reach HDF5 and come back unconverted,
    so equal rows are equal bytes. Only rows whose bytes differ are compared value by value, field
    by field, which lets a NaN of another bit pattern (or -0.0 against 0.0) pass.
    """
    if len(stored) != len(fresh):
        return min(len(stored), len(fresh))
    if stored.dtype.names != fresh.dtype.names:
        return 0
    if not len(stored):
        return None
    stored, fresh = np.ascontiguousarray(stored), np.ascontiguousarray(fresh)
    if stored.dtype == fresh.dtype:
        a = stored.view(np.uint8).reshape(len(stored), -1)
        b = fresh.view(np.uint8).reshape(len(fresh), -1)
        if np.array_equal(a, b):
            return None
        suspects = np.flatnonzero((a != b).any(axis=1))
    else:
        suspects = np.arange(len(stored))
    if stored.dtype.names is None:
        same = _same_values(stored[suspects], fresh[suspects])
    else:
        same = np.ones(len(suspects), dtype=bool)
        for name in stored.dtype.names:
            same &= _same_values(stored[name][suspects], fresh[name][suspects])
    return None if same.all() else int(suspects[np.argmin(same)])


def _same_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row (axis 0): all elements equal, NaN counted equal to NaN."""
    with np.errstate(invalid="ignore"):
        eq = a == b
        if a.dtype.kind in "fc" and b.dtype.kind in "fc":
            eq |= np.isnan(a) & np.isnan(b)
    return eq.reshape(len(a), -1).all(axis=1) if eq.ndim > 1 else eq


def _decoded_groups(raw: "ClassifiedRaw", feed: str,
                    protocols: Protocols) -> Iterable[tuple[PacketLayout, RowColumns, np.ndarray, np.ndarray | None]]:
    """Decoded groups of a classified raw file, chunk by chunk, in file order:
    (layout, columns, t_ns, canonical), as the live feed decodes its batches."""
    batch = BatchDecoder(protocols, feed)
    step = CHUNK * 4
    for start in range(0, len(raw.t_ns), step):
        sl = slice(start, start + step)
        for group in batch.groups(raw.data, raw.offsets[sl], raw.t_ns[sl], raw.kinds[sl]):
            yield group.layout, group.columns, group.t_ns, group.canonical


def _raw_groups(raw_path, feed: str,
                protocols: Protocols) -> Iterable[tuple[PacketLayout, RowColumns, np.ndarray, np.ndarray | None]]:
    """Decoded groups of a raw file, chunk by chunk, in file order: (layout, columns, t_ns, canonical)."""
    return _decoded_groups(classified_raw(raw_path, feed, protocols), feed, protocols)


def rebuild(recording_dir: str | Path, recording_id: str, protocols: Protocols, created_at: str | None = None) -> Path:
    """Write ``data.h5`` anew from the recording's raw files (temp file, then an atomic rename)."""
    recording_dir = Path(recording_dir)
    target = recording_dir / "data.h5"
    tmp = recording_dir / ".data.h5.rebuild"
    writer = H5Writer(tmp, recording_id, created_at)
    try:
        for feed in FEEDS:
            raw = recording_dir / f"{feed}.bin"
            if not raw.exists() or raw.stat().st_size <= len(rawfile.MAGIC):
                continue
            for layout, cols, t_ns, canon in _raw_groups(raw, feed, protocols):
                writer.add(feed, layout, cols, t_ns, canon)
                writer.append_due()
        writer.close()
        os.replace(tmp, target)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return target
