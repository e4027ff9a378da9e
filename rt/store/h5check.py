"""``data.h5`` against the raw files: agreement value for value, and the rebuild from them.

The file is derived: after a crash it is checked against the raw files, value for value
(:func:`disagreement`), and rebuilt from them (:func:`rebuild`) where it differs. Readers other
than the writer open it after the recording stops; the server's
own analysis reads through the writer's handle after a flush, so no SWMR is needed (SWMR would
forbid creating the datasets of a packet kind that first appears mid-recording).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np

from ..decode import CHUNK, BatchDecoder, RowColumns
from ..protocols import FEEDS, Protocols
from ..protocols.canonical import CANONICAL_DTYPE, CANONICAL_NAMES, MAPPERS, CanonicalMapper
from ..protocols.layout import PacketLayout
from . import rawfile
from .h5writer import H5Writer, short_error

log = logging.getLogger(__name__)

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
    kinds, bad = BatchDecoder(protocols, feed).classify(data, offsets, lengths)
    return ClassifiedRaw(data, t_ns, offsets, lengths, kinds, int(bad))


def _counts_of(feed: str, raw: ClassifiedRaw, protocols: Protocols) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """Datagrams per (feed, packet kind) of a classified raw file, and its canonical frames: in
    all, and per kind. A kind whose every datagram is a frame is counted from the kind ids alone;
    one that makes frames of some (ACC's focused car) is decoded to count them."""
    counts: dict[tuple[str, str], int] = {}
    ids, n = np.unique(raw.kinds[raw.kinds >= 0], return_counts=True)
    for kind_id, count in zip(ids.tolist(), n.tolist()):
        counts[(feed, protocols.kinds[kind_id].name)] = count
    per_kind = {kind: c for (_, kind), c in counts.items() if kind in MAPPERS}
    if any(CanonicalMapper.selects(kind) for kind in per_kind):
        per_kind = _selected_frames(raw, feed, protocols, per_kind)
    per_kind = {kind: c for kind, c in per_kind.items() if c}
    if per_kind:
        counts[(feed, "canonical")] = sum(per_kind.values())
    return counts, per_kind


def _selected_frames(raw: ClassifiedRaw, feed: str, protocols: Protocols, per_kind: dict[str, int]) -> dict[str, int]:
    """``per_kind`` with the frames of selecting kinds counted from their decoded groups."""
    out = {kind: (0 if CanonicalMapper.selects(kind) else c) for kind, c in per_kind.items()}
    for layout, _, _, canon in _decoded_groups(raw, feed, protocols):
        if CanonicalMapper.selects(layout.name) and canon is not None:
            out[layout.name] += len(canon)
    return out


def raw_kind_counts(raw_path: str | Path, feed: str, protocols: Protocols) -> dict[tuple[str, str], int]:
    """Well-formed datagrams per (feed, packet kind) in a raw feed file, and its canonical frames."""
    return _counts_of(feed, classified_raw(raw_path, feed, protocols), protocols)[0]


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
        return f"unreadable: {short_error(exc)}"
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
        return f"unreadable: {short_error(exc)}"
    return None


def _stored_counts(f: h5py.File) -> dict[tuple[str, str], int] | str:
    """Rows per (feed, kind or "canonical") in an open data.h5, or what is wrong with its layout
    (a dataset missing, datasets of one group of different lengths: an append cut short)."""
    counts: dict[tuple[str, str], int] = {}
    for feed in f:
        for kind in f[feed]:
            group = f[feed][kind]
            names = (*CANONICAL_NAMES, "kind") if kind == "canonical" else ("t_ns", "rows")
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
    raw, per_kind = _counts_of(feed, classified, protocols)
    mine = {key: n for key, n in stored.items() if key[0] == feed}
    if mine != raw:
        keys = sorted(set(mine) | set(raw))
        key = next(k for k in keys if mine.get(k, 0) != raw.get(k, 0))
        return f"{'/'.join(key)}: {mine.get(key, 0)} rows stored, the raw file has {raw.get(key, 0)}"
    frames = _StoredFrames(f[f"{feed}/canonical"]) if (feed, "canonical") in mine else None
    if frames is not None:
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
        assert frames is not None  # frames are set aside only past the `frames is None` return above
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

    #: Frames read at a time (~4.5 MB decoded); a block is whole chunks of every channel (deflated once compacted).
    BLOCK = 1 << 16

    def __init__(self, group: h5py.Group) -> None:
        self.channels = {name: group[name] for name in CANONICAL_NAMES}
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
        for group in batch.groups(raw.data, raw.offsets[sl], raw.t_ns[sl], raw.kinds[sl], lengths=raw.lengths[sl]):
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
