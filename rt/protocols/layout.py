"""Packet layouts declared as data.

Every packet kind the recorder understands is one :class:`PacketLayout`: an ordered table of
:class:`Field` rows (name, byte offset, wire type, shape, unit). That one table drives

* the compiled batch decoder (:mod:`rt.decode` turns it into a copy plan for ``rt_ext.decode``),
* the numpy column dtypes and so the HDF5 schema (one dataset column per field, unit as attribute),
* the generated protocol docs (:func:`markdown_table`),
* the size checks of the classifier.

All wire data is little-endian. Arrays of structs (e.g. the 56 participant records of a PCARS 1
telemetry packet) are flattened into one column per struct member, named ``array.member``, so
that a plain h5py or pandas user sees ordinary numeric columns, never a nested compound type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

#: Wire type name → numpy little-endian scalar type. ``char``/``wchar`` are byte strings.
SCALAR_TYPES: dict[str, str] = {
    "u8": "<u1",
    "s8": "<i1",
    "bool": "<u1",
    "u16": "<u2",
    "s16": "<i2",
    "u32": "<u4",
    "s32": "<i4",
    "f32": "<f4",
}


@dataclass(frozen=True)
class Field:
    """One decoded column of a packet.

    ``offset`` is the byte offset of the first element in the datagram. ``shape`` is the array
    shape of one packet's value (``()`` for a scalar). For a flattened array of structs the first
    dimension walks the records, ``stride`` bytes apart; the remaining dimensions are contiguous.
    ``wtype`` is a key of :data:`SCALAR_TYPES`, or ``char`` (8-bit text, ``strlen`` bytes) or
    ``wchar`` (UTF-16LE text, ``strlen`` code units).
    """

    name: str
    offset: int
    wtype: str
    shape: tuple[int, ...] = ()
    unit: str = ""
    doc: str = ""
    stride: int = 0  # bytes between records of a flattened struct array; 0 = contiguous
    strlen: int = 0  # characters of a char/wchar field

    @property
    def dtype(self) -> np.dtype:
        """numpy dtype of one element (little-endian)."""
        if self.wtype == "char":
            return np.dtype(f"S{self.strlen}")
        if self.wtype == "wchar":
            return np.dtype(f"S{2 * self.strlen}")
        return np.dtype(SCALAR_TYPES[self.wtype])

    @property
    def element_bytes(self) -> int:
        """Bytes of one record of this field: the whole value unless it is a strided struct array."""
        n = self.dtype.itemsize
        inner = self.shape[1:] if self.stride else self.shape
        for d in inner:
            n *= d
        return n

    @property
    def records(self) -> int:
        """Number of strided records (1 for an ordinary field)."""
        return self.shape[0] if self.stride else 1

    @property
    def nbytes(self) -> int:
        """Bytes this field occupies in one decoded row."""
        return self.element_bytes * self.records

    @property
    def end(self) -> int:
        """First byte after the field in the datagram."""
        if self.stride:
            return self.offset + (self.records - 1) * self.stride + self.element_bytes
        return self.offset + self.nbytes


@dataclass(frozen=True)
class SequenceCounter:
    """How a packet kind numbers its packets, for loss by sequence gaps.

    The counter is ``(field >> shift) % modulo``. Kinds that name the same ``counter`` are numbered
    together (in arrival order, across kinds); a kind that only repeats another kind's number
    (PCARS 1 strings carry the telemetry packet's) declares none. A forward step of ``reset`` or
    more is a restart of the game, not loss.
    """

    field: str
    counter: str
    modulo: int
    shift: int = 0
    reset: int | None = None

    def values(self, column: np.ndarray) -> np.ndarray:
        """The counter of each packet, from its decoded ``field`` column (int64)."""
        return (column.astype(np.int64) >> self.shift) % self.modulo


@dataclass(frozen=True)
class PacketLayout:
    """A packet kind: its name, feed, exact on-wire size and field table.

    ``sequence`` declares the kind's packet counter, if it has its own (see :class:`SequenceCounter`);
    ``names`` which text fields name what (``car``, ``driver``, ``track``, ``track_config`` → field);
    ``facts`` which numeric fields state a fact of the car or track that analyses use
    (``max_rpm``: the engine's maximum, rpm; ``track_length_m``: the lap length, m → field);
    ``sectors`` which fields carry the current lap's sector times, in order (s; the game's own
    splits, kept beside the canonical frames for the sector analysis).
    """

    name: str
    size: int
    fields: tuple[Field, ...]
    doc: str = ""
    game: str = ""
    provisional: bool = False
    sequence: SequenceCounter | None = None
    names: dict[str, str] = field(default_factory=dict, compare=False)
    facts: dict[str, str] = field(default_factory=dict, compare=False)
    sectors: tuple[str, ...] = ()
    #: The wire form has no fixed offsets (ACC): ``size`` and offsets are those of the normalised row
    #: its grammar parses it into (:mod:`rt.protocols.wire`); this says the wire order instead.
    wire: str = ""
    _by_name: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        seen: dict[str, Field] = {}
        for f in self.fields:
            if f.name in seen:
                raise ValueError(f"{self.name}: field {f.name!r} declared twice")
            if f.offset < 0 or f.end > self.size:
                raise ValueError(
                    f"{self.name}: field {f.name!r} spans bytes {f.offset}..{f.end} "
                    f"outside the {self.size}-byte packet"
                )
            seen[f.name] = f
        if self.sequence is not None and self.sequence.field not in seen:
            raise ValueError(f"{self.name}: sequence field {self.sequence.field!r} is not declared")
        for key, name in self.facts.items():
            if name not in seen or seen[name].strlen or seen[name].shape:
                raise ValueError(f"{self.name}: fact {key} is field {name!r}, which is not a declared scalar field")
        for name in self.sectors:
            if name not in seen or seen[name].strlen or seen[name].shape or seen[name].unit != "s":
                raise ValueError(f"{self.name}: sector time {name!r} is not a declared scalar field in s")
        for key, name in self.names.items():
            if name not in seen or not seen[name].strlen:
                raise ValueError(f"{self.name}: {key} names field {name!r}, which is not a declared text field")
        self._by_name.update(seen)

    def __getitem__(self, name: str) -> Field:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def dtype(self) -> np.dtype:
        """Packed row dtype of the decoded columns (one row per packet, no padding)."""
        return np.dtype([(f.name, f.dtype, f.shape) for f in self.fields])

    def units(self) -> dict[str, str]:
        return {f.name: f.unit for f in self.fields}


def struct_array(
    prefix: str,
    base: int,
    count: int,
    record_size: int,
    members: Iterable[tuple],
) -> list[Field]:
    """Flatten ``count`` records of a C struct into one :class:`Field` per member.

    ``members`` rows are ``(name, offset_in_record, wtype[, inner_shape[, unit[, doc]]])``; a char
    member uses ``("char", n)`` as its wtype. Each resulting column has shape
    ``(count, *inner_shape)``.
    """
    out = []
    for row in members:
        name, off, wtype, *rest = row
        inner = tuple(rest[0]) if rest else ()
        unit = rest[1] if len(rest) > 1 else ""
        rest = rest[2:]
        strlen = 0
        if isinstance(wtype, tuple):
            wtype, strlen = wtype
        out.append(
            Field(
                name=f"{prefix}.{name}",
                offset=base + off,
                wtype=wtype,
                shape=(count, *inner),
                unit=unit,
                doc=rest[0] if rest else "",
                stride=record_size,
                strlen=strlen,
            )
        )
    return out


def fields_from_rows(rows: Sequence[tuple]) -> list[Field]:
    """Build fields from compact rows ``(offset, wtype, name[, shape[, unit[, doc]]])``.

    ``wtype`` may be ``("char", n)`` or ``("wchar", n)`` for text.
    """
    out = []
    for row in rows:
        off, wtype, name, *rest = row
        shape = tuple(rest[0]) if len(rest) > 0 and rest[0] else ()
        unit = rest[1] if len(rest) > 1 else ""
        doc = rest[2] if len(rest) > 2 else ""
        strlen = 0
        if isinstance(wtype, tuple):
            wtype, strlen = wtype
        out.append(Field(name, off, wtype, shape, unit, doc, 0, strlen))
    return out


def truncate(fields: Sequence[Field], size: int) -> tuple[Field, ...]:
    """The fields that lie wholly within the first ``size`` bytes (for versions that only append)."""
    return tuple(f for f in fields if f.end <= size)


def markdown_table(layout: PacketLayout) -> str:
    """A Markdown table of a layout, for the generated protocol docs."""
    if layout.wire:
        head = [f"### `{layout.name}` — variable length, stored as a {layout.size}-byte row (offsets below)", "",
                f"On the wire, after the type byte: {layout.wire}", ""]
    else:
        head = [f"### `{layout.name}` — {layout.size} bytes" + (" (provisional)" if layout.provisional else ""), ""]
    lines = [
        *head,
        "| offset | type | shape | field | unit |",
        "|---:|---|---|---|---|",
    ]
    for f in layout.fields:
        t = f"{f.wtype}[{f.strlen}]" if f.strlen else f.wtype
        shape = "×".join(map(str, f.shape)) if f.shape else ""
        stride = f" (every {f.stride} B)" if f.stride else ""
        lines.append(f"| {f.offset} | {t} | {shape}{stride} | `{f.name}` | {f.unit} |")
    seq = layout.sequence
    if seq is not None:
        bits = f" >> {seq.shift}" if seq.shift else ""
        lines += ["", f"Sequence counter: `{seq.field}`{bits} modulo {seq.modulo}, counter `{seq.counter}`."]
    return "\n".join(lines)


def decode_text(raw: bytes, wide: bool) -> str:
    """Decode a fixed-size game string: UTF-16LE (``wide``) or 8-bit, cut at NUL and at ``%``.

    AC terminates its strings with ``%`` and leaves garbage after it; PCARS pads with NUL and
    may leave stale bytes after the NUL. 8-bit strings are decoded as UTF-8 when valid, else as
    latin-1 (PCARS 1 names are latin-1).
    """
    if wide:
        n = len(raw) // 2 * 2
        text = raw[:n].decode("utf-16-le", errors="replace")
        text = text.split("\x00", 1)[0]
        return text.split("%", 1)[0]
    raw = raw.split(b"\x00", 1)[0]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
