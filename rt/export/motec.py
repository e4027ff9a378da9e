"""MoTeC i2 export: one ``.ld`` log (header, event/venue/vehicle blocks, channels) and its ``.ldx``
sidecar (lap beacons), laid out as /work/shared/MOTEC.md describes MoTeC's own ``Sample1.ld``.

Choices, each from MOTEC.md:

* Channels are scaled integers (int16 type 3, int32 type 5, never 3 for int32), ``dec`` = decimal
  places, offset 0, mul 1, scale 1: physical = raw × 10^−dec. MoTeC's own channels look like this,
  while float32 channels show 0 decimal places in i2.
* Names follow i2's standard workspaces ("Ground Speed", "G Force Lat" …), which key features on them.
* Every channel has the same rate and sample count (i2 places sample i at i / rate seconds).
* Blocks at MoTeC's offsets and sizes, zero-filled: header 0x000, event 0x6E2, venue 0x1336,
  vehicle 0x1F54, (weather slot 0x2C48, pointer 0: none), records from 0x3448, then the sample
  arrays back to back in list order.

Unknown values: a channel that is NaN throughout is left out; NaN samples inside a channel take the
last known value before them (leading NaNs the first known value). Values beyond the integer range
are clipped to it.
"""

from __future__ import annotations

import struct
from datetime import datetime
from pathlib import Path
from typing import NamedTuple
from xml.sax.saxutils import quoteattr

import numpy as np


class MotecChannel(NamedTuple):
    """How one canonical channel is written: i2 name, short name, unit, factor from the canonical
    unit to i2's, decimal places kept, stored integer type, and whether it is discrete (held, not
    interpolated, when resampled)."""

    name: str
    short: str
    unit: str
    factor: float
    dec: int
    dtype: str
    discrete: bool


#: canonical name → i2 channel. Signs are the canonical ones (steer and G lat + left, G long + speeding up).
#: Steering is % of the game's lock: the canonical channel has no angle in degrees.
CHANNELS: dict[str, MotecChannel] = {
    "speed_kmh": MotecChannel("Ground Speed", "Speed", "km/h", 1.0, 1, "<i2", False),
    "rpm": MotecChannel("Engine RPM", "RPM", "rpm", 1.0, 0, "<i2", False),
    "gear": MotecChannel("Gear", "Gear", "", 1.0, 0, "<i2", True),
    "throttle": MotecChannel("Throttle Pos", "Thr", "%", 100.0, 1, "<i2", False),
    "brake": MotecChannel("Brake Pos", "Brk", "%", 100.0, 1, "<i2", False),
    "clutch": MotecChannel("Clutch Pos", "Clu", "%", 100.0, 1, "<i2", False),
    "steer": MotecChannel("Steering Angle", "Steer", "%", 100.0, 1, "<i2", False),
    "g_lat": MotecChannel("G Force Lat", "GLat", "G", 1.0, 3, "<i2", False),
    "g_long": MotecChannel("G Force Long", "GLong", "G", 1.0, 3, "<i2", False),
    "distance_m": MotecChannel("Lap Distance", "LapDist", "m", 1.0, 1, "<i4", False),
    "norm_pos": MotecChannel("Lap Fraction", "LapFrac", "%", 100.0, 2, "<i2", False),
    "lap_count": MotecChannel("Lap Number", "Lap", "", 1.0, 0, "<i2", True),
    "lap_time_ms": MotecChannel("Lap Time", "LapTime", "s", 1e-3, 3, "<i4", False),
    "last_lap_ms": MotecChannel("Lap Time Last", "LastLap", "s", 1e-3, 3, "<i4", True),
    "best_lap_ms": MotecChannel("Lap Time Best", "BestLap", "s", 1e-3, 3, "<i4", True),
    "pos_x": MotecChannel("Car Pos X", "PosX", "m", 1.0, 2, "<i4", False),
    "pos_y": MotecChannel("Car Pos Y", "PosY", "m", 1.0, 2, "<i4", False),
    "pos_z": MotecChannel("Car Pos Z", "PosZ", "m", 1.0, 2, "<i4", False),
}

#: numpy dtype → (.ld type code, bytes per sample); int32 is type 5 (MOTEC.md pitfall 1).
TYPE_CODES = {"<i2": (3, 2), "<i4": (5, 4)}

HEADER_SIZE = 0x6E2
EVENT_AT, VENUE_AT, VEHICLE_AT, RECORDS_AT = 0x6E2, 0x1336, 0x1F54, 0x3448
RECORD_SIZE = 124
PRO_MAGIC = 0xC81A4  # ldparser's value, in files known to open in i2 (MotecLogGenerator)


def _put(buf: bytearray, at: int, text: object, width: int) -> None:
    """A fixed-width, NUL-padded cp1252 string (truncated; unmappable characters become '?')."""
    raw = ("" if text is None else str(text)).encode("cp1252", "replace")[:width]
    buf[at:at + len(raw)] = raw


def _fill_nan(values: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """NaNs (where ``bad``) → the last known value before them; leading NaNs → the first known value."""
    idx = np.where(bad, 0, np.arange(values.size))
    np.maximum.accumulate(idx, out=idx)
    first = int(np.argmax(~bad))
    idx[:first] = first
    return values[idx]


def _default_rate(times_s: np.ndarray) -> int:
    """The feed's mean rate over the frames' span, rounded to a whole Hz (1 ..65535). Not the
    median gap: receive times come in bursts (a replay, a busy network: the AC Monza capture
    replayed gave a median gap worth 149 kHz), and the mean rate is what the frames fill."""
    span = float(times_s[-1] - times_s[0]) if times_s.size > 1 else 0.0
    return min(0xFFFF, max(1, round((times_s.size - 1) / span))) if span > 0 else 1


def _lap_string(seconds: float) -> str:
    """Seconds → "M:SS.mmm", as i2 shows lap times."""
    ms = round(seconds * 1000)
    return f"{ms // 60000}:{ms % 60000 // 1000:02d}.{ms % 1000:03d}"


def write_motec(ld_path: Path, ldx_path: Path, channels: dict[str, tuple[np.ndarray, str]],
                times_s: np.ndarray, meta: dict, laps: list[tuple[float, float]],
                rate_hz: float | None = None) -> None:
    """Write ``channels`` (canonical name → (values aligned with ``times_s``, unit)) to a MoTeC
    ``.ld`` log at ``ld_path`` and its ``.ldx`` lap beacons at ``ldx_path``.

    ``times_s``: receive times, s, increasing (irregular). Samples are resampled onto a uniform grid
    from ``times_s[0]`` at ``rate_hz`` (default: the mean rate, whole Hz): linear interpolation,
    previous-value hold for discrete channels (gear, lap counters and times). ``meta``: driver,
    vehicle, venue, datetime (log start), feed, game; optional event, session, comment, team,
    venue_length_m. ``laps``: (start_s, end_s) in ``times_s`` seconds; their boundaries become
    beacons. Unknown canonical names raise ``KeyError``.
    """
    times = np.asarray(times_s, dtype=np.float64)
    if times.size == 0:
        raise ValueError("no samples to export")
    rate = int(round(rate_hz)) if rate_hz else _default_rate(times)
    if not 1 <= rate <= 0xFFFF:
        raise ValueError(f"sample rate {rate} Hz does not fit the .ld's u16")
    t0 = float(times[0])
    count = int(np.floor((float(times[-1]) - t0) * rate + 1e-9)) + 1
    arrays = _resampled(channels, times, t0 + np.arange(count) / rate)
    head = _ld_head(arrays, count, rate, meta)
    with open(ld_path, "wb") as f:
        f.write(head)
        for _spec, raw in arrays:
            f.write(raw.data)  # already little-endian and contiguous: no copy

    _write_ldx(ldx_path, laps, t0, count / rate, rate)


def _resampled(channels: dict[str, tuple[np.ndarray, str]], times: np.ndarray,
               grid: np.ndarray) -> list[tuple[MotecChannel, np.ndarray]]:
    """Each known, not all-NaN channel on ``grid`` (s), scaled to its stored integer type."""
    held = np.clip(np.searchsorted(times, grid, side="right") - 1, 0, times.size - 1)
    arrays: list[tuple[MotecChannel, np.ndarray]] = []
    for key, (values, _unit) in channels.items():
        if key not in CHANNELS:
            raise KeyError(f"{key!r} is not a canonical channel the MoTeC export knows")
        spec = CHANNELS[key]
        v = np.asarray(values, dtype=np.float64)
        if v.shape != times.shape:
            raise ValueError(f"{key}: {v.shape[0] if v.ndim else 0} values for {times.size} times")
        bad = np.isnan(v)
        if bad.all():
            continue
        if bad.any():
            v = _fill_nan(v, bad)
        v = v[held] if spec.discrete else np.interp(grid, times, v)  # both new arrays: scaled in place
        info = np.iinfo(spec.dtype)
        np.multiply(v, spec.factor * 10.0 ** spec.dec, out=v)
        np.rint(v, out=v)
        np.clip(v, info.min, info.max, out=v)
        arrays.append((spec, v.astype(spec.dtype)))
    if not arrays:
        raise ValueError("every channel is unknown (NaN) throughout")
    return arrays


def _ld_head(arrays: list[tuple[MotecChannel, np.ndarray]], count: int, rate: int, meta: dict) -> bytearray:
    """The .ld file up to its sample data: header, event, venue, vehicle and channel records."""
    n = len(arrays)
    data_at = RECORDS_AT + n * RECORD_SIZE
    head = bytearray(data_at)
    when: datetime = meta.get("datetime") or datetime.now()
    struct.pack_into("<I", head, 0x000, 0x40)
    struct.pack_into("<II", head, 0x008, RECORDS_AT, data_at)
    struct.pack_into("<I", head, 0x024, EVENT_AT)
    struct.pack_into("<HII8sHHI", head, 0x040, 0, 1_000_000, 12007, b"ADL", 420, 0x80, n)
    _put(head, 0x05E, when.strftime("%d/%m/%Y"), 16)
    _put(head, 0x07E, when.strftime("%H:%M:%S"), 16)
    _put(head, 0x09E, meta.get("driver", ""), 64)
    _put(head, 0x0DE, meta.get("vehicle", ""), 64)
    _put(head, 0x15E, meta.get("venue", ""), 64)
    struct.pack_into("<I", head, 0x5DE, PRO_MAGIC)
    session = meta.get("session") or meta.get("feed", "")
    _put(head, 0x5E4, session, 64)
    _put(head, 0x624, meta.get("comment", "rusty-telemetry"), 64)
    _put(head, 0x694, meta.get("team", ""), 32)

    # event → venue → vehicle, each at MoTeC's offset with its reserved size zeroed (pitfalls 4, 5)
    _put(head, EVENT_AT, meta.get("event") or meta.get("game", ""), 64)
    _put(head, EVENT_AT + 0x40, session, 64)
    long_comment = "; ".join(f"{k}={v}" for k, v in meta.items() if k != "datetime")
    _put(head, EVENT_AT + 0x80, long_comment, 1024)
    struct.pack_into("<II", head, EVENT_AT + 0x480, VENUE_AT, 0)  # venue, no weather block
    _put(head, VENUE_AT, meta.get("venue", ""), 64)
    struct.pack_into("<I", head, VENUE_AT + 0x42, round(float(meta.get("venue_length_m", 0)) * 1000))
    struct.pack_into("<I", head, VENUE_AT + 0x44A, VEHICLE_AT)
    _put(head, VEHICLE_AT, meta.get("vehicle", ""), 64)
    _put(head, VEHICLE_AT + 0x40, meta.get("vehicle", ""), 64)

    at = data_at
    for i, (spec, raw) in enumerate(arrays):
        rec = RECORDS_AT + i * RECORD_SIZE
        code, width = TYPE_CODES[spec.dtype]
        nxt = rec + RECORD_SIZE if i + 1 < n else 0
        prev = rec - RECORD_SIZE if i else 0
        struct.pack_into("<IIIIHHHHhhhh32s8s12sii", head, rec, prev, nxt, at, count, 0x2EE1 + i, code,
                         width, rate, 0, 1, 1, spec.dec, spec.name.encode(), spec.short.encode(),
                         spec.unit.encode(), int(raw.max()), int(raw.min()))
        at += count * width
    return head


def _write_ldx(path: Path, laps: list[tuple[float, float]], t0: float, duration_s: float, rate: int) -> None:
    """Beacons at every lap boundary strictly inside the log (a beacon at its start or end would make
    an empty lap), µs from the first sample; Details with total laps and the fastest lap."""
    half = 0.5 / rate
    bounds = sorted({round(t - t0, 6) for lap in laps for t in lap})
    beacons: list[float] = []
    for b in bounds:
        if half < b < duration_s - half and (not beacons or b - beacons[-1] > half):
            beacons.append(b)
    markers = "".join(
        f'          <Marker Version="100" ClassName="BCN" Name="Manual.{k + 1}" Flags="77" Time="{b * 1e6:.17e}"/>\n'
        for k, b in enumerate(beacons))
    details = [("Total Laps", str(len(beacons) + 1))]
    timed = [(end - start, start) for start, end in laps if end > start]
    if timed:
        best, start = min(timed)
        # lap numbers as i2 counts them: lap 1 from the log start to the first beacon
        number = 1 + sum(1 for b in beacons if b <= start - t0 + half)
        details += [("Fastest Time", _lap_string(best)), ("Fastest Lap", str(number))]
    strings = "".join(f"      <String Id={quoteattr(k)} Value={quoteattr(v)}/>\n" for k, v in details)
    path.write_text(
        '<?xml version="1.0"?>\n'
        '<LDXFile Locale="English_United Kingdom.1252" DefaultLocale="C" Version="1.6">\n'
        "  <Layers>\n    <Layer>\n      <MarkerBlock>\n"
        '        <MarkerGroup Name="Beacons" Index="3">\n'
        f"{markers}"
        "        </MarkerGroup>\n      </MarkerBlock>\n      <RangeBlock/>\n    </Layer>\n"
        f"    <Details>\n{strings}    </Details>\n"
        "  </Layers>\n</LDXFile>\n", encoding="ascii")
