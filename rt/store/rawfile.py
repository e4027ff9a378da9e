"""Raw feed files: every datagram exactly as received, with its receive time.

Format (little-endian)::

    magic   8 bytes   b"RTFEED1\\n"
    record  repeated: u64 receive time (ns since the Unix epoch) | u32 payload length | payload

The raw file is the source of truth of a recording; the HDF5 file can always be rebuilt from it.
A datagram longer than its feed's ring slot (never a well-formed one) keeps the slot's bytes.
A file cut short by a crash ends in a partial record, which readers ignore and recovery trims.

Once a recording has stopped, its raw files may be replaced by a **compressed container** of the
same bytes (:func:`compress`, run by ``rt.store.compact``)::

    magic   8 bytes   b"RTFEEDZ\n"
    blocks  repeated: one zlib stream per block of ~1 MiB of the original file (whole records)
    index   per block, 4 × u64: original offset, original length, offset in this file, length
    footer  u64 index offset | u64 blocks | u64 original size | b"RTFEEDZ\n"

Inside a block the records are byte-transposed before deflate: the 12-byte headers side by side
(the n-th byte of every header together), then the payloads of each length as a matrix read
column by column. A game's datagrams of one kind share their layout, so the n-th bytes of 512 of
them are alike where the datagrams themselves are noise: deflate then saves 2.2× on the real AC
capture instead of 1.34×. The original bytes come back exactly (:class:`RawFile`, :func:`load`);
downloads serve them, with ``Range``, by decompressing only the blocks a range covers.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from concurrent.futures import Executor, Future
from pathlib import Path

import numpy as np

from ..errors import StoreError
from ..rawpack import pack, packed_size, scan

MAGIC = b"RTFEED1\n"
HEADER = struct.Struct("<QI")
#: The compressed container (see the module docstring).
ZMAGIC = b"RTFEEDZ\n"
_ZFOOTER = struct.Struct("<QQQ8s")
_ZBLOCK_HEAD = struct.Struct("<II")  # bytes before the first record (the magic, block 0), records
#: Original bytes per compressed block (whole records): what a ``Range`` read decompresses at most.
ZBLOCK_BYTES = 1 << 20
#: Deflate level of the container (level 1 compresses 2 % less on real AC, 40 % faster).
ZLEVEL = 6


class RawFormatError(ValueError):
    """Not a raw feed file."""


def parse(data) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Index the records of a raw file's bytes: ``(t_ns, payload offsets, lengths, end)``.

    ``end`` is where the last whole record ends: a torn tail starts there.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf[: len(MAGIC)].tobytes() != MAGIC:
        raise RawFormatError("not a raw feed file (bad magic)")
    return scan(buf, len(MAGIC))


def read(path: str | Path) -> tuple[np.ndarray, list[bytes]]:
    """Receive times and payloads of a raw feed file (ignoring a torn last record)."""
    data = load(path).tobytes()
    t_ns, offsets, lengths, _ = parse(data)
    return t_ns, [data[o : o + n] for o, n in zip(offsets.tolist(), lengths.tolist())]


def load(path: str | Path) -> np.ndarray:
    """The bytes of a raw feed file as recorded (uint8), whether or not it was compressed."""
    with RawFile(path) as raw:
        return raw.load()


def is_compressed(path: str | Path) -> bool:
    """Whether ``path`` is a compressed container (see the module docstring)."""
    with open(path, "rb") as fh:
        return fh.read(len(ZMAGIC)) == ZMAGIC


def trim(path: str | Path) -> int:
    """Cut a torn last record off a raw file; returns the bytes removed (0 if it was whole).
    A compressed container holds the file as it was when compressed: it is left as it is."""
    path = Path(path)
    if path.stat().st_size >= len(ZMAGIC) and is_compressed(path):
        return 0
    data = path.read_bytes()
    if len(data) < len(MAGIC):
        with path.open("wb") as fh:
            fh.write(MAGIC)
            os.fsync(fh.fileno())
        return len(data)
    _, _, _, end = parse(data)
    cut = len(data) - end
    if cut:
        with path.open("r+b") as fh:
            fh.truncate(end)
            os.fsync(fh.fileno())
    return cut


class RawWriter:
    """Appends ring batches to one raw feed file; a ``write`` per piece of up to 1 MiB, ``fsync`` on :meth:`sync`.

    Keeps ``size``: the bytes known to end on a whole record. If a write fails (disk full, I/O
    error), the file is cut back to ``size`` so it still ends on a whole record, and
    :class:`~rt.errors.StoreError` is raised.

    With a ``writer`` (a one-thread executor), :meth:`append` only packs the batch into a buffer
    and the ``write`` runs on that thread: the kernel's share of a write (page cache, file
    system; half of all recording time at 100 000 PCARS datagrams/s) then overlaps the consumer's
    decoding instead of adding to it. A failed background write is raised by the next
    :meth:`append`, :meth:`sync` or :meth:`close`, and nothing is written after it, so the file
    still ends on the last whole record. ``size`` counts only bytes written.
    """

    #: Bytes of packing buffers waiting for the writer thread before :meth:`append` waits for it
    #: (~0.3 s of PCARS at 150 000 datagrams/s; the disk guard counts them as written).
    MAX_QUEUED_BYTES = 64 << 20
    #: A batch is packed and written in pieces of at most this many bytes; pieces of at least half
    #: that go into pooled buffers of this one size. Buffers sized to each batch grew to the
    #: largest batch ever seen (a full ring take is up to 8 MiB) and kept those pages: resident
    #: memory crept up for as long as a recording ran.
    PIECE_BYTES = 1 << 20
    #: Packing buffers kept for reuse (a fresh one costs page faults); more are made while the
    #: writer lags and freed when they come back. Bounds what a feed keeps to ~8 MiB, and
    #: :meth:`release_idle` gives back what a lag left behind.
    POOL_BUFFERS = 8

    def __init__(self, path: str | Path, writer: Executor | None = None) -> None:
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.size = os.fstat(self.fd).st_size
        self.dirty = False
        self._writer = writer
        self._free: list[np.ndarray] = []  # packing buffers to reuse, all ``_buffer_bytes`` long
        self._buffer_bytes = self.PIECE_BYTES
        self._idle_low = 0  # fewest buffers in ``_free`` since the last release_idle
        self._queued: deque[tuple[Future, int, int]] = deque()  # (write, bytes, buffer bytes) not known to be done
        self._queued_bytes = 0
        self._pinned_bytes = 0  # the size of their buffers: what the queue holds in memory
        self._error: StoreError | None = None
        if self.size == 0:
            self._write(MAGIC)

    def _write(self, data) -> None:
        view = memoryview(data)
        done = 0
        try:
            while done < len(view):
                done += os.write(self.fd, view[done:])
        except OSError as exc:
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                pass
            raise StoreError(f"{self.path.name}: {exc.strerror or exc}") from exc
        self.size += done
        self.dirty = True

    def _write_in_background(self, buf: np.ndarray, used: int) -> None:
        try:
            if self._error is None:  # after a failed write, writing on would leave a hole
                self._write(buf[:used])
        except StoreError as exc:
            self._error = exc
        finally:
            self._recycle(buf)

    def _recycle(self, buf: np.ndarray) -> None:
        if len(self._free) < self.POOL_BUFFERS and buf.shape[0] == self._buffer_bytes:
            self._free.append(buf)

    def release_idle(self) -> int:
        """Free the packing buffers that stayed in the pool, unused, since the last call; returns
        their bytes. Call it now and then from the appending thread: after a lag the pool holds
        up to :data:`POOL_BUFFERS`, where steady recording reuses one or two (measured: a 10 MB
        step of resident memory after each stall of the disk, kept for the rest of the recording)."""
        idle = self._idle_low
        # The writer thread only appends to the list, so the oldest ``idle`` entries are still
        # the buffers that were there all along.
        del self._free[:idle]
        self._idle_low = len(self._free)
        return idle * self._buffer_bytes

    @property
    def queued_bytes(self) -> int:
        """Bytes appended but not yet known to be written."""
        return self._queued_bytes

    @property
    def failed(self) -> bool:
        """A write failed: the file ends at ``size``, later batches were not written."""
        return self._error is not None

    def _raise_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _settle(self, keep_bytes: int) -> None:
        """Wait for queued writes until their buffers hold at most ``keep_bytes``."""
        while self._queued and (self._pinned_bytes > keep_bytes or self._queued[0][0].done()):
            future, used, pinned = self._queued.popleft()
            future.result()
            self._queued_bytes -= used
            self._pinned_bytes -= pinned

    def _pieces(self, lengths: np.ndarray, slot: int) -> list[tuple[int, int]]:
        """Row ranges of a batch, each of records taking at most :data:`PIECE_BYTES` together: split
        by the bytes the records take, not by slot width (an AC packet fills a sixth of its slot)."""
        n = lengths.shape[0]
        if n * (HEADER.size + slot) <= self.PIECE_BYTES:
            return [(0, n)]
        ends = np.cumsum(np.minimum(lengths, slot).astype(np.int64) + HEADER.size)
        pieces = []
        start, base = 0, 0
        while start < n:
            end = max(start + 1, int(np.searchsorted(ends, base + self.PIECE_BYTES, side="right")))
            pieces.append((start, end))
            base, start = int(ends[end - 1]), end
        return pieces

    def append(self, t_ns: np.ndarray, lengths: np.ndarray, data: np.ndarray) -> int:
        """Append a batch: receive times (int64 ns), true lengths (uint32), slot rows (uint8 n × slot).

        Returns the bytes appended."""
        self._raise_failed()
        slot = data.shape[1]
        total = 0
        for start, end in self._pieces(lengths, slot):
            need = packed_size(lengths[start:end], slot)
            if need >= self._buffer_bytes // 2:
                buf = self._free.pop() if self._free else np.empty(self._buffer_bytes, dtype=np.uint8)
                self._idle_low = min(self._idle_low, len(self._free))
            else:
                # A small batch (a few ms of traffic) gets a buffer of its own size: in a pooled
                # one it pinned a whole piece until written, and while the disk lagged thousands
                # of them held ~30x the bytes queued.
                buf = np.empty(need, dtype=np.uint8)
            used = pack(t_ns[start:end], lengths[start:end], data[start:end], buf)
            total += used
            if self._writer is None:
                try:
                    self._write(buf[:used])
                finally:
                    self._recycle(buf)
                continue
            self._settle(self.MAX_QUEUED_BYTES - buf.shape[0])
            self._queued.append((self._writer.submit(self._write_in_background, buf, used), used, buf.shape[0]))
            self._queued_bytes += used
            self._pinned_bytes += buf.shape[0]
        return total

    def flush(self) -> None:
        """Wait until every appended batch is written; raise if a write failed."""
        self._settle(0)
        self._raise_failed()

    def sync(self) -> None:
        """Make everything written so far durable. Batches still queued are not waited for: the
        recorder puts a barrier on the writer thread first (see ``RecordingManager.sync``)."""
        self._raise_failed()
        if self.dirty:
            self.dirty = False  # before the fsync: a write landing meanwhile marks the file again
            try:
                os.fsync(self.fd)
            except OSError as exc:
                self.dirty = True
                raise StoreError(f"{self.path.name}: fsync failed: {exc.strerror or exc}") from exc

    def close(self) -> None:
        """Write what is queued, fsync, close. After a failed write the file still ends on a whole
        record (``size``): that part is fsynced too, and the failure raised."""
        if self.fd >= 0:
            try:
                self.flush()
            finally:
                try:
                    self._settle(0)
                    if self.dirty:
                        os.fsync(self.fd)
                        self.dirty = False
                except OSError as exc:
                    raise StoreError(f"{self.path.name}: fsync failed: {exc.strerror or exc}") from exc
                finally:
                    os.close(self.fd)
                    self.fd = -1


# ---- the compressed container ---------------------------------------------------------------


def _gather(buf: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Rows of ``width`` bytes of ``buf`` at ``starts`` (n × width)."""
    return buf[starts[:, None] + np.arange(width)]


def _groups(lengths: np.ndarray) -> list[int]:
    """The payload lengths of a block in order of first appearance (how payloads are grouped)."""
    values, first = np.unique(lengths, return_index=True)
    return values[np.argsort(first)].tolist()


def _encode_block(block: np.ndarray, prefix: int) -> bytes:
    """One block's original bytes (records from ``prefix`` on, maybe a torn tail), transposed, deflated."""
    _, offsets, lengths, end = scan(block, prefix)
    offsets = offsets.astype(np.int64)
    lengths = lengths.astype(np.int64)
    parts = [_ZBLOCK_HEAD.pack(prefix, len(offsets)), block[:prefix].tobytes(),
             _gather(block, offsets - HEADER.size, HEADER.size).T.tobytes()]
    for width in _groups(lengths):
        if width:
            parts.append(_gather(block, offsets[lengths == width], width).T.tobytes())
    tail = block[end:].tobytes()
    parts += [struct.pack("<I", len(tail)), tail]
    return zlib.compress(b"".join(parts), ZLEVEL)


def _decode_block(data: bytes, size: int) -> np.ndarray:
    """The original ``size`` bytes of a block (inverse of :func:`_encode_block`)."""
    plain = zlib.decompress(data)  # struct reads the bytes, numpy a zero-copy view of them
    raw = np.frombuffer(plain, dtype=np.uint8)
    out = np.empty(size, dtype=np.uint8)
    prefix, n = _ZBLOCK_HEAD.unpack_from(plain, 0)
    pos = _ZBLOCK_HEAD.size
    out[:prefix] = raw[pos : pos + prefix]
    pos += prefix
    headers = raw[pos : pos + n * HEADER.size].reshape(HEADER.size, n).T
    pos += n * HEADER.size
    lengths = np.ascontiguousarray(headers[:, 8:12]).view("<u4").ravel().astype(np.int64)
    starts = prefix + np.concatenate(([0], np.cumsum(HEADER.size + lengths)[:-1])).astype(np.int64)
    out[starts[:, None] + np.arange(HEADER.size)] = headers
    for width in _groups(lengths):
        if not width:
            continue
        sel = np.flatnonzero(lengths == width)
        out[(starts[sel] + HEADER.size)[:, None] + np.arange(width)] = raw[pos : pos + width * len(sel)].reshape(width, len(sel)).T
        pos += width * len(sel)
    (tail,) = struct.unpack_from("<I", plain, pos)
    out[size - tail :] = raw[pos + 4 : pos + 4 + tail]
    return out


def compress(src: str | Path, dst: str | Path) -> int:
    """Write the compressed container of raw file ``src`` to ``dst`` (fsynced); returns its size.

    Checks that the container gives back ``src`` byte for byte before it returns."""
    data = np.fromfile(src, dtype=np.uint8)
    if data[: len(MAGIC)].tobytes() != MAGIC:
        raise RawFormatError(f"{Path(src).name}: not a raw feed file (bad magic)")
    _, offsets, _, _ = scan(data, len(MAGIC))
    starts = offsets.astype(np.int64) - HEADER.size
    cuts = starts[np.unique(np.searchsorted(starts, np.arange(ZBLOCK_BYTES, len(data), ZBLOCK_BYTES)))
                  .clip(0, max(len(starts) - 1, 0))] if len(starts) else np.empty(0, np.int64)
    bounds = [0, *sorted(set(cuts.tolist()) - {0}), len(data)]
    index = []
    with open(dst, "wb") as fh:
        fh.write(ZMAGIC)
        for first, last in zip(bounds[:-1], bounds[1:]):
            encoded = _encode_block(data[first:last], len(MAGIC) if first == 0 else 0)
            index.append((first, last - first, fh.tell(), len(encoded)))
            fh.write(encoded)
        index_at = fh.tell()
        fh.write(np.asarray(index, dtype="<u8").tobytes())
        fh.write(_ZFOOTER.pack(index_at, len(index), len(data), ZMAGIC))
        fh.flush()
        os.fsync(fh.fileno())
    if not np.array_equal(load(dst), data):
        raise StoreError(f"{Path(src).name}: the compressed copy does not give back the file")  # never seen
    return Path(dst).stat().st_size


class RawFile:
    """A raw feed file opened for reading its original bytes, plain or compressed.

    ``size`` is the original size (a plain file: its size when opened, or ``limit`` if smaller,
    as a file still being written has a partial record after its last whole one)."""

    def __init__(self, path: str | Path, limit: int | None = None) -> None:
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_RDONLY)
        try:
            self.index: np.ndarray | None = None
            self._cached: tuple[int, np.ndarray] | None = None  # (block, its bytes)
            end = os.fstat(self.fd).st_size
            if end >= len(ZMAGIC) + _ZFOOTER.size and os.pread(self.fd, len(ZMAGIC), 0) == ZMAGIC:
                index_at, blocks, self.size, magic = _ZFOOTER.unpack(os.pread(self.fd, _ZFOOTER.size, end - _ZFOOTER.size))
                if magic != ZMAGIC:
                    raise RawFormatError(f"{self.path.name}: compressed raw file without its footer")
                self.index = np.frombuffer(os.pread(self.fd, blocks * 32, index_at), dtype="<u8").reshape(-1, 4).astype(np.int64)
            else:
                self.size = end if limit is None else min(end, limit)
        except BaseException:
            os.close(self.fd)
            raise

    def __enter__(self) -> "RawFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _block(self, k: int) -> np.ndarray:
        cached = self._cached
        if cached is None or cached[0] != k:
            assert self.index is not None  # blocks exist only in a compressed file, which has an index
            _, size, at, length = self.index[k].tolist()
            cached = (k, _decode_block(os.pread(self.fd, length, at), size))
            self._cached = cached
        return cached[1]

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to ``n`` original bytes from ``offset`` (fewer at the end of the file)."""
        n = max(0, min(n, self.size - offset))
        if self.index is None:
            return os.pread(self.fd, n, offset)
        out = []
        while n > 0:
            k = int(np.searchsorted(self.index[:, 0], offset, side="right")) - 1
            block = self._block(k)
            start = offset - int(self.index[k, 0])
            piece = block[start : start + n].tobytes()
            out.append(piece)
            offset += len(piece)
            n -= len(piece)
        return b"".join(out)

    def load(self) -> np.ndarray:
        """All original bytes (uint8)."""
        if self.index is None:
            with os.fdopen(os.dup(self.fd), "rb") as fh:  # this file, even if renamed over since
                return np.fromfile(fh, dtype=np.uint8, count=self.size)
        return np.concatenate([self._block(k) for k in range(len(self.index))]) if len(self.index) else np.empty(0, np.uint8)
