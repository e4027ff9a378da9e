"""An independent MoTeC i2 reader, written from /work/shared/MOTEC.md alone with ``struct`` (it never
imports rt.export.motec, so a writer bug is not copied): the .ld header, the event → venue →
vehicle chain, every channel record (following the linked list) with its samples scaled back, and
the .ldx beacons and details."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: (type code, bytes per sample) → numpy dtype, as MOTEC.md lists them (readers accept 3/4 and 5/2)
DTYPES = {(3, 2): "<i2", (3, 4): "<i4", (5, 2): "<i2", (5, 4): "<i4", (7, 4): "<f4", (7, 2): "<f2",
          (0, 2): "<i2", (0, 4): "<i4"}


def _s(raw: bytes, at: int, width: int) -> str:
    return raw[at:at + width].split(b"\0", 1)[0].decode("cp1252")


def _u32(raw: bytes, at: int) -> int:
    return struct.unpack_from("<I", raw, at)[0]


@dataclass
class Channel:
    record_at: int
    prev: int
    next: int
    data_at: int
    count: int
    type_code: int
    width: int
    rate: int
    offset: int
    mul: int
    scale: int
    dec: int
    name: str
    short: str
    unit: str
    raw_max: int
    raw_min: int
    raw: np.ndarray
    values: np.ndarray  # physical: (raw / scale × 10^−dec + offset) × mul


@dataclass
class LdFile:
    marker: int
    records_at: int
    data_at: int
    event_at: int
    count: int
    date: str
    time: str
    driver: str
    vehicle: str
    venue: str
    session: str
    short_comment: str
    team: str
    event: dict = field(default_factory=dict)
    venue_block: dict = field(default_factory=dict)
    vehicle_block: dict = field(default_factory=dict)
    channels: list[Channel] = field(default_factory=list)
    size: int = 0


def read_ld(path: Path) -> LdFile:
    raw = path.read_bytes()
    ld = LdFile(marker=_u32(raw, 0), records_at=_u32(raw, 8), data_at=_u32(raw, 0xC), event_at=_u32(raw, 0x24),
                count=_u32(raw, 0x56), date=_s(raw, 0x5E, 16), time=_s(raw, 0x7E, 16), driver=_s(raw, 0x9E, 64),
                vehicle=_s(raw, 0xDE, 64), venue=_s(raw, 0x15E, 64), session=_s(raw, 0x5E4, 64),
                short_comment=_s(raw, 0x624, 64), team=_s(raw, 0x694, 32), size=len(raw))
    e = ld.event_at
    if e:
        ld.event = dict(name=_s(raw, e, 64), session=_s(raw, e + 0x40, 64), comment=_s(raw, e + 0x80, 1024),
                        venue_at=_u32(raw, e + 0x480), weather_at=_u32(raw, e + 0x484))
        v = ld.event["venue_at"]
        if v:
            ld.venue_block = dict(name=_s(raw, v, 64), length_mm=_u32(raw, v + 0x42),
                                  vehicle_at=_u32(raw, v + 0x44A))
            c = ld.venue_block["vehicle_at"]
            if c:
                ld.vehicle_block = dict(id=_s(raw, c, 64), description=_s(raw, c + 0x40, 64))
    at, seen = ld.records_at, set()
    while at:
        if at in seen:
            raise ValueError(f"channel list loops at {at:#x}")
        seen.add(at)
        prev, nxt, data_at, count, _id, code, width, rate, off, mul, scale, dec = struct.unpack_from(
            "<IIIIHHHHhhhh", raw, at)
        raw_max, raw_min = struct.unpack_from("<ii", raw, at + 0x54)
        samples = np.frombuffer(raw, dtype=DTYPES[code, width], count=count, offset=data_at)
        values = (samples.astype(np.float64) / scale * 10.0 ** -dec + off) * mul
        ld.channels.append(Channel(at, prev, nxt, data_at, count, code, width, rate, off, mul, scale, dec,
                                   _s(raw, at + 0x20, 32), _s(raw, at + 0x40, 8), _s(raw, at + 0x48, 12),
                                   raw_max, raw_min, samples, values))
        at = nxt
    return ld


@dataclass
class LdxFile:
    beacons_us: list[float]
    marker_names: list[str]
    details: dict[str, str]


def read_ldx(path: Path) -> LdxFile:
    root = ET.parse(path).getroot()
    assert root.tag == "LDXFile"
    group = root.find("./Layers/Layer/MarkerBlock/MarkerGroup[@Name='Beacons']")
    markers = [] if group is None else group.findall("Marker")
    details = {s.get("Id"): s.get("Value") for s in root.iter("String")}
    return LdxFile([float(m.get("Time")) for m in markers], [m.get("Name") for m in markers], details)
