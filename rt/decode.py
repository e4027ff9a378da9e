"""Batch decoding: datagrams of one packet kind → numpy columns (or packed rows).

A thin layer over the compiled :mod:`rt_ext.decode`: :class:`Decoder` turns a layout's field table
into a copy plan once, then each call copies a whole batch with the GIL released. Input is any
read-only buffer (``bytes``, ``memoryview``, ring slot memory) plus the byte offset of each
packet in it, so the same call serves ring batches, raw files and tests.

Decode in chunks of a few thousand packets (:data:`CHUNK`): the working set then stays in cache.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rt_ext.decode import DecodePlan, classify, slot_offsets
from rt_ext.wire import parse_batch

from .protocols import VARIABLE_MAX
from .protocols.canonical import CanonicalMapper
from .protocols.layout import PacketLayout

if TYPE_CHECKING:
    from .protocols import Protocols
    from .protocols.wire import Message

#: Packets per decode call that keep input and output in the CPU caches.
CHUNK = 4096


def _as_u8(buf) -> np.ndarray:
    arr = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf
    if arr.dtype != np.uint8 or arr.ndim != 1:
        arr = arr.reshape(-1).view(np.uint8)
    return arr


class Decoder:
    """Decodes datagrams of one :class:`PacketLayout`."""

    def __init__(self, layout: PacketLayout) -> None:
        self.layout = layout
        self.plan = DecodePlan(
            layout.size,
            [f.offset for f in layout.fields],
            [f.element_bytes for f in layout.fields],
            [f.records for f in layout.fields],
            [f.stride or f.element_bytes for f in layout.fields],
        )
        self.row_dtype = layout.dtype
        if self.row_dtype.itemsize != self.plan.row_bytes:
            raise AssertionError(f"{layout.name}: dtype {self.row_dtype.itemsize} B != plan {self.plan.row_bytes} B")
        # (name, dtype, shape) per field: Field.dtype builds a new dtype object on every access.
        self._specs = [(f.name, f.dtype, f.shape, f.nbytes) for f in layout.fields]
        self._views_key: tuple[int, int] | None = None
        self._views_block: np.ndarray | None = None
        self._views: dict[str, np.ndarray] = {}

    def output_bytes(self, n: int) -> int:
        """Bytes of the column block that :meth:`columns` needs for ``n`` packets."""
        return self.plan.output_bytes(n, False)

    def columns(self, buf, offsets: np.ndarray, out: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Decode the packets at byte ``offsets`` of ``buf`` into one contiguous array per field.

        Each array has shape ``(n, *field.shape)`` and the field's little-endian dtype. ``out``
        (uint8, at least :meth:`output_bytes` long) is reused for the columns instead of a new
        allocation: a consumer that writes each batch away before decoding the next saves the
        allocation and the view construction. The columns are then views of ``out``, valid until
        the next call with the same ``out``.
        """
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        n = offsets.shape[0]
        block = np.empty(self.plan.output_bytes(n, False), dtype=np.uint8) if out is None else out
        self.plan.decode_into(_as_u8(buf), offsets, block, False)
        # Building 40-odd views costs more than decoding a small batch: reuse them with the block.
        key = (id(block), n)
        if self._views_key == key and self._views_block is block:
            return self._views
        views = {
            name: np.ndarray((n, *shape), dtype=dtype, buffer=block, offset=start)
            for (name, dtype, shape, _), start in zip(self._specs, self.plan.column_starts(n))
        }
        if out is not None:
            self._views_key, self._views_block, self._views = key, block, views
        return views

    def rows(self, buf, offsets: np.ndarray) -> np.ndarray:
        """Decode into a packed structured array (dtype ``layout.dtype``), one row per packet."""
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        out = np.empty(offsets.shape[0], dtype=self.row_dtype)
        self.plan.decode_into(_as_u8(buf), offsets, out.view(np.uint8), True)
        return out

    def one(self, payload: bytes) -> dict[str, object]:
        """Decode a single datagram into Python values (for handshakes and tools, not the hot path)."""
        if len(payload) != self.layout.size:
            from .errors import DecodeError

            raise DecodeError(f"{self.layout.name}: {len(payload)} bytes, expected {self.layout.size}")
        cols = self.columns(payload, np.zeros(1, dtype=np.int64))
        return {name: col[0].tolist() if col.ndim > 1 else col[0].item() for name, col in cols.items()}


class MessageParser:
    """Datagrams of one variable-length kind (:mod:`rt.protocols.wire`) → their normalised rows,
    which :class:`Decoder` then reads like fixed packets."""

    def __init__(self, message: Message) -> None:
        self.message = message
        self.row_size = message.layout.size

    def parse(self, buf, offsets: np.ndarray, lengths: np.ndarray, rows: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(normalised rows laid end to end as bytes, whether each datagram parsed). Without
        ``rows`` only the check is made (the classifier's need) and the rows are empty."""
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        lengths = np.ascontiguousarray(lengths, dtype=np.int64)
        n = offsets.shape[0]
        out = np.empty(n * self.row_size if rows else 0, dtype=np.uint8)
        ok = np.empty(n, dtype=np.uint8)
        parse_batch(_as_u8(buf), offsets, lengths, self.message.programs, self.message.template, out, ok)
        ok = ok.view(bool)
        ok &= lengths <= VARIABLE_MAX  # its slot kept only that much: the rest was never there to parse
        return out, ok

    def rows(self, decoder: Decoder, buf, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The datagrams decoded into ``decoder``'s packed rows (all must parse: classified ones do)."""
        normalised, ok = self.parse(buf, offsets, lengths)
        if not ok.all():
            raise ValueError(f"{self.message.layout.name}: {int((~ok).sum())} datagrams do not parse")
        return decoder.rows(normalised, concatenated_offsets(len(offsets), self.row_size))


class RowColumns(Mapping):
    """Decoded packets as packed rows, read like columns: ``rc["speed_Kmh"]`` is a (strided) view.

    The feed decodes into rows because the HDF5 store appends a whole packet kind as one compound
    dataset (5× faster than one dataset per field); analysis-side code keeps reading columns.
    """

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def __getitem__(self, name: str) -> np.ndarray:
        return self.rows[name]

    def __contains__(self, name: object) -> bool:
        return name in (self.rows.dtype.names or ())

    def __iter__(self):
        return iter(self.rows.dtype.names or ())

    def __len__(self) -> int:
        return len(self.rows.dtype.names or ())


def concatenated_offsets(count: int, size: int) -> np.ndarray:
    """Offsets of ``count`` packets of ``size`` bytes laid end to end (e.g. a capture file)."""
    return slot_offsets(0, count, size)


def classify_batch(rules: np.ndarray, buf, offsets: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, int]:
    """Kind id per datagram (−1 = malformed) and the number of malformed ones."""
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    out = np.empty(offsets.shape[0], dtype=np.int16)
    bad = classify(_as_u8(buf), offsets, lengths, rules, out)
    return out, bad


def classify_datagram(protocols: Protocols, feed: str, payload: bytes | bytearray | memoryview) -> PacketLayout | None:
    """The packet kind of one datagram on ``feed``, or ``None`` when it is malformed (the batch
    classifier on a batch of one: tools and tests, never the ingest path)."""
    data = np.frombuffer(payload, dtype=np.uint8)
    kinds, _ = BatchDecoder(protocols, feed).classify(data, np.zeros(1, dtype=np.int64),
                                                      np.array([len(data)], dtype=np.int64))
    return None if kinds[0] < 0 else protocols.kinds[int(kinds[0])]


@dataclass
class DecodedGroup:
    """The datagrams of one packet kind in a batch: ``selected`` marks them in the batch, ``columns``
    their decoded fields, ``t_ns`` their receive times (ns), ``canonical`` their canonical rows
    (None for kinds without driving data; only the newest row when mapped ``tail_only``)."""

    layout: PacketLayout
    selected: np.ndarray
    columns: RowColumns
    t_ns: np.ndarray
    canonical: np.ndarray | None


class BatchDecoder:
    """classify → group by kind → decode → canonical, for the datagrams of one feed.

    The one path from datagrams to frames: the live feed runs it on ring batches, the rebuild and
    the agreement check on raw files, so the frames of a recording are the same whichever made
    them. It keeps what the canonical mapping carries from batch to batch (PCARS 2 lap data), so
    one instance serves one stream of batches in arrival order.
    """

    def __init__(self, protocols: Protocols, feed: str) -> None:
        self.kinds = protocols.kinds
        self.rules = protocols.feed_rules[feed].rules
        kind_ids = set(self.rules[:, 4].tolist())
        self._parsers: dict[int, MessageParser] = {
            protocols.kind_id[name]: MessageParser(m) for name, m in protocols.messages.items()
            if protocols.kind_id[name] in kind_ids}
        self._decoders: dict[str, Decoder] = {}
        self._mapper = CanonicalMapper()

    def restart(self) -> None:
        """Forget what the mapping carried over (a recording starts: its frames follow from its own
        raw file)."""
        self._mapper = CanonicalMapper()

    def decoder(self, layout: PacketLayout) -> Decoder:
        dec = self._decoders.get(layout.name)
        if dec is None:
            dec = self._decoders[layout.name] = Decoder(layout)
        return dec

    def classify(self, buf, offsets: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, int]:
        """Kind id per datagram (−1 = malformed) and how many are malformed. A message of variable
        length is malformed unless its kind's grammar parses it exactly."""
        kinds, bad = classify_batch(self.rules, buf, offsets, lengths)
        if self._parsers and kinds.size:
            for kind_id in np.flatnonzero(np.bincount(kinds[kinds >= 0])).tolist():
                parser = self._parsers.get(kind_id)
                if parser is None:
                    continue
                selected = np.flatnonzero(kinds == kind_id)
                _, ok = parser.parse(buf, offsets[selected], lengths[selected], rows=False)
                kinds[selected[~ok]] = -1
                bad += int((~ok).sum())
        return kinds, bad

    def groups(self, buf, offsets: np.ndarray, t_ns: np.ndarray, kinds: np.ndarray,
               tail_only: bool = False, lengths: np.ndarray | None = None) -> Iterator[DecodedGroup]:
        """Each packet kind of a classified batch, decoded and mapped, carriers of other kinds'
        data first. ``tail_only``: map only each kind's newest frame (the live view's need).
        ``lengths`` (bytes per datagram) is needed for kinds of variable length."""
        # Kind ids are small and dense: counting is a fraction of np.unique's sort.
        present = np.flatnonzero(np.bincount(kinds[kinds >= 0])).tolist() if kinds.size else []
        for kind_id in CanonicalMapper.order(present, self.kinds):
            layout = self.kinds[kind_id]
            selected = kinds == kind_id
            group_t = t_ns[selected]
            parser = self._parsers.get(kind_id)
            if parser is not None:
                if lengths is None:
                    raise ValueError(f"{layout.name}: messages of variable length need their lengths")
                rows = parser.rows(self.decoder(layout), buf, offsets[selected], lengths[selected])
            else:
                rows = self.decoder(layout).rows(buf, offsets[selected])
            cols = RowColumns(rows)
            if (tail_only and len(group_t) > 1 and not CanonicalMapper.carries(layout.name)
                    and not CanonicalMapper.selects(layout.name)):
                canon = self._mapper.map(layout.name, RowColumns(cols.rows[-1:]), group_t[-1:])
            else:
                canon = self._mapper.map(layout.name, cols, group_t)
            yield DecodedGroup(layout, selected, cols, group_t, canon)
