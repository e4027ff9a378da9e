"""Variable-length messages declared as data: a grammar, compiled to a fixed row and a parse program.

ACC's broadcasting messages (``acc.py``) have no fixed offsets: strings are a u16 byte count plus
UTF-8, lap records carry n splits, lists carry their count. Each message kind is declared once as a
sequence of grammar items (:class:`Num`, :class:`Text`, :class:`Repeat`, :class:`When`,
:class:`Version`), and :func:`compile_message` turns that one declaration into

* a :class:`~rt.protocols.layout.PacketLayout` of the *normalised row*: every item at a fixed
  offset, texts cut to a declared size, repeats padded to a declared maximum (so the batch decoder,
  the HDF5 schema, the docs and the tests use it like any fixed packet);
* the parse program that ``rt_ext.wire`` runs, datagram by datagram, to check a message and write
  its normalised row (:data:`OP_COLUMNS`);
* a template row holding each field's fill value (unused splits read "none", not 0);
* :func:`encode_message`, the inverse, for the client's requests and the simulator.

A message is malformed when anything runs past its end, a text is not UTF-8, or bytes are left
over; a repeat longer than its maximum is parsed whole and stored up to the maximum.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Mapping, Sequence, Union

import numpy as np

from .layout import Field, PacketLayout

_WIRE = {"u8": ("<B", 1), "u16": ("<H", 2), "s32": ("<i", 4), "f32": ("<f", 4)}

#: Opcodes of a parse program; one program row is (op, a, b, c, d, e).
OP_NUM, OP_TEXT, OP_REPEAT, OP_WHEN, OP_CONST = 1, 2, 3, 4, 5
OP_COLUMNS = 6


@dataclass(frozen=True)
class Num:
    """A number on the wire (``u8``, ``u16``, ``s32``, ``f32``), stored as is."""

    name: str
    wtype: str
    unit: str = ""
    doc: str = ""
    fill: float = 0


@dataclass(frozen=True)
class Text:
    """A string: u16 byte count + UTF-8. Stored in ``size`` bytes (cut at a character boundary,
    NUL-padded); ``size`` 0 parses and checks it but stores nothing."""

    name: str
    size: int
    doc: str = ""


@dataclass(frozen=True)
class Repeat:
    """A count (``u8``/``u16``, stored as ``name.count`` or ``count_name``) and that many records of
    ``items``. The first ``max`` records are stored as struct-array columns ``name.member`` (or
    ``name`` itself for a single number); ``max`` 0 parses and checks them but stores nothing."""

    name: str
    count_type: str
    max: int
    items: tuple
    count_name: str = ""
    doc: str = ""


@dataclass(frozen=True)
class When:
    """A u8 flag (stored as ``flag``), then ``items`` only when it is non-zero."""

    flag: str
    items: tuple
    doc: str = ""


@dataclass(frozen=True)
class Version:
    """Items present only from protocol ``since`` on. The message is parsed as the newest version
    first, then each older one; the version that fits is stored in ``field`` (u8)."""

    since: int
    items: tuple


Item = Union[Num, Text, Repeat, When, Version]


@dataclass(frozen=True)
class Message:
    """One message kind: its type byte, name, grammar (after the type byte), and compiled forms."""

    type_byte: int
    layout: PacketLayout
    programs: tuple[np.ndarray, ...]  # newest protocol version first
    versions: tuple[int, ...]
    template: np.ndarray  # uint8, one normalised row with every fill value
    items: tuple


class _Builder:
    def __init__(self) -> None:
        self.fields: list[Field] = []
        self.fills: list[tuple[int, str, float, int, int]] = []  # (offset, wtype, value, count, stride)
        self.size = 0

    def take(self, nbytes: int) -> int:
        at = self.size
        self.size += nbytes
        return at


def _count_field(rep: Repeat) -> str:
    return rep.count_name or f"{rep.name}.count"


def _layout_items(b: _Builder, items: Sequence[Item], version_field: str) -> None:
    """Lay out the normalised row: fields in declaration order, packed."""
    for item in items:
        if isinstance(item, Num):
            at = b.take(_WIRE[item.wtype][1])
            b.fields.append(Field(item.name, at, item.wtype, (), item.unit, item.doc))
            if item.fill:
                b.fills.append((at, item.wtype, item.fill, 1, 0))
        elif isinstance(item, Text):
            if item.size:
                at = b.take(item.size)
                b.fields.append(Field(item.name, at, "char", (), "", item.doc, 0, item.size))
        elif isinstance(item, When):
            at = b.take(1)
            b.fields.append(Field(item.flag, at, "u8", (), "", item.doc))
            _layout_items(b, item.items, version_field)
        elif isinstance(item, Version):
            _layout_items(b, item.items, version_field)
        elif isinstance(item, Repeat):
            at = b.take(_WIRE[item.count_type][1])
            b.fields.append(Field(_count_field(item), at, item.count_type, (), "", item.doc))
            if not item.max:
                continue
            record = _record(item)
            base = b.take(record.size * item.max)
            single = len(item.items) == 1
            for f in record.fields:
                name = item.name if single else f"{item.name}.{f.name}"
                b.fields.append(Field(name, base + f.offset, f.wtype, (item.max,), f.unit, f.doc, record.size, f.strlen))
            for off, wtype, value, _count, _stride in record.fills:
                b.fills.append((base + off, wtype, value, item.max, record.size))
        else:  # pragma: no cover - a declaration error
            raise TypeError(f"not a grammar item: {item!r}")


def _record(rep: Repeat) -> _Builder:
    rec = _Builder()
    for item in rep.items:
        if isinstance(item, (Repeat, When)):
            raise ValueError(f"{rep.name}: a stored repeat holds numbers, texts and versions only")
    _layout_items(rec, rep.items, "")
    return rec


def _program(items: Sequence[Item], offsets: dict[str, int], version: int, record: dict[str, int] | None = None) -> list[list[int]]:
    """Parse program rows for ``items`` as protocol ``version`` speaks them. ``offsets``: field name
    → offset in the row (or in the record, inside a stored repeat); -1 stores nothing."""
    rows: list[list[int]] = []
    names = record if record is not None else offsets
    for item in items:
        if isinstance(item, Num):
            rows.append([OP_NUM, _WIRE[item.wtype][1], names.get(item.name, -1), 0, 0, 0])
        elif isinstance(item, Text):
            rows.append([OP_TEXT, item.size, names.get(item.name, -1) if item.size else -1, 0, 0, 0])
        elif isinstance(item, When):
            body = _program(item.items, offsets, version, record)
            rows.append([OP_WHEN, names.get(item.flag, -1), len(body), 0, 0, 0])
            rows += body
        elif isinstance(item, Version):
            if version >= item.since:
                rows += _program(item.items, offsets, version, record)
        elif isinstance(item, Repeat):
            if item.max:
                rec = _record(item)
                single = len(item.items) == 1
                base = names[item.name if single else f"{item.name}.{rec.fields[0].name}"] - rec.fields[0].offset
                inner = {(item.items[0].name if single else f.name): base + f.offset for f in rec.fields}
                body = _program(item.items, offsets, version, inner)
                stride = rec.size
            else:
                body = _program(item.items, offsets, version, {})
                stride = 0
            rows.append([OP_REPEAT, _WIRE[item.count_type][1], names.get(_count_field(item), -1), item.max,
                         stride, len(body)])
            rows += body
    return rows


def _versions(items: Sequence[Item]) -> set[int]:
    out: set[int] = set()
    for item in items:
        if isinstance(item, Version):
            out.add(item.since)
            out |= _versions(item.items)
        elif isinstance(item, (When, Repeat)):
            out |= _versions(item.items)
    return out


def compile_message(name: str, type_byte: int, items: Sequence[Item], *, game: str = "", doc: str = "",
                    oldest_version: int | None = None, version_field: str = "protocol_version",
                    names: dict[str, str] | None = None, sectors: tuple[str, ...] = (),
                    facts: dict[str, str] | None = None) -> Message:
    """Compile one message kind (see the module docstring). ``oldest_version``: the oldest protocol
    version whose form is accepted, for kinds whose grammar has :class:`Version` items."""
    items = tuple(items)
    b = _Builder()
    since = sorted(_versions(items), reverse=True)
    if since:
        at = b.take(1)
        b.fields.append(Field(version_field, at, "u8", (), "", "the protocol version this message parsed as"))
    _layout_items(b, items, version_field)
    layout = PacketLayout(name=name, size=max(b.size, 1), fields=tuple(b.fields), doc=doc, game=game,
                          names=names or {}, sectors=sectors, facts=facts or {}, wire=describe(items))
    offsets = {f.name: f.offset for f in b.fields}
    if since:
        versions = tuple(since) + ((oldest_version,) if oldest_version is not None and oldest_version < since[-1] else ())
    else:
        versions = (0,)
    programs = []
    for v in versions:
        rows = _program(items, offsets, v)
        if since:
            rows.insert(0, [OP_CONST, offsets[version_field], v, 0, 0, 0])
        programs.append(np.array(rows or [[OP_CONST, -1, 0, 0, 0, 0]], dtype=np.int64).reshape(-1, OP_COLUMNS))
    template = np.zeros(layout.size, dtype=np.uint8)
    for off, wtype, value, count, stride in b.fills:
        code, nbytes = _WIRE[wtype]
        for k in range(count):
            template[off + k * stride: off + k * stride + nbytes] = np.frombuffer(struct.pack(code, value), np.uint8)
    return Message(type_byte, layout, tuple(programs), versions, template, items)


def describe(items: Sequence[Item]) -> str:
    """The wire order of ``items`` in one line, for the docs: ``name:type``, ``text`` a u16 byte
    count + UTF-8, ``count × {…}`` a repeat, ``[if flag: …]``, ``[v4: …]``."""
    parts = []
    for item in items:
        if isinstance(item, Num):
            parts.append(f"{item.name}:{item.wtype}")
        elif isinstance(item, Text):
            parts.append(f"{item.name}:text")
        elif isinstance(item, When):
            parts.append(f"{item.flag}:u8 [if {item.flag}: {describe(item.items)}]")
        elif isinstance(item, Version):
            parts.append(f"[v{item.since}: {describe(item.items)}]")
        elif isinstance(item, Repeat):
            parts.append(f"{_count_field(item)}:{item.count_type} × {{{describe(item.items)}}}")
    return ", ".join(parts)


# ---- encoding (client requests, the simulator) -----------------------------------------------------

def _encode_items(items: Sequence[Item], values: Mapping[str, object], version: int, out: bytearray) -> None:
    for item in items:
        if isinstance(item, Num):
            out += struct.pack(_WIRE[item.wtype][0], values.get(item.name, item.fill))
        elif isinstance(item, Text):
            data = str(values.get(item.name, "")).encode("utf-8")
            out += struct.pack("<H", len(data)) + data
        elif isinstance(item, When):
            flag = int(bool(values.get(item.flag, 0)))
            out.append(flag)
            if flag:
                _encode_items(item.items, values, version, out)
        elif isinstance(item, Version):
            if version >= item.since:
                _encode_items(item.items, values, version, out)
        elif isinstance(item, Repeat):
            records = list(values.get(item.name, ()))  # type: ignore[call-overload]
            out += struct.pack(_WIRE[item.count_type][0], len(records))
            for rec in records:
                if len(item.items) == 1 and not isinstance(rec, Mapping):
                    rec = {item.items[0].name: rec}
                _encode_items(item.items, rec, version, out)


def encode_message(type_byte: int, items: Sequence[Item], values: Mapping[str, object], version: int = 99) -> bytes:
    """One message: its type byte, then ``items`` from ``values`` (names as declared; a repeat
    takes a list of records, or of numbers for a one-number record; absent numbers are their fill,
    absent texts empty)."""
    out = bytearray([type_byte])
    _encode_items(items, values, version, out)
    return bytes(out)


def rules_rows(messages: Sequence[Message]) -> list[tuple[PacketLayout, int, int, int]]:
    """Classifier rules (see :class:`rt.protocols.Protocols`): any length, the type byte decides;
    the parse that follows decides whether the message is well formed."""
    return [(m.layout, 0, 0xFF, m.type_byte) for m in messages]


__all__ = ["Message", "Num", "Text", "Repeat", "When", "Version", "compile_message", "encode_message"]
