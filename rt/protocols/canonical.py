"""Canonical channels: one vocabulary for every feed.

Each game encodes the same quantities differently (gear numbering, pedal ranges, speed units,
lap times in ms or s). Live view, merging and analysis only ever see these channels:

======================  =======  ==============================================================
channel                 dtype    meaning (unit)
======================  =======  ==============================================================
``t_ns``                int64    receive time, ns since the Unix epoch (one clock for all feeds)
``speed_kmh``           float32  road speed, km/h
``rpm``                 float32  engine speed, rpm
``gear``                int8     -1 reverse, 0 neutral, 1.. forward
``throttle``            float32  0..1 pedal
``brake``               float32  0..1 pedal
``clutch``              float32  0..1 engagement: 1 = pedal released (drive engaged), 0 = pressed
``steer``               float32  -1..1, positive = left (AC: −degrees of wheel / :data:`AC_STEER_LOCK_DEG`, clipped)
``lap_count``           int32    completed laps (-1 unknown)
``lap_time_ms``         int32    current lap time, ms (-1 unknown)
``last_lap_ms``         int32    last lap time, ms (-1 unknown or none yet)
``best_lap_ms``         int32    best lap time, ms (-1 unknown or none yet)
``norm_pos``            float32  0..1 along the lap (NaN unknown)
``pos_x/pos_y/pos_z``   float32  world position, m, right-handed with y up (NaN unknown)
``g_lat``               float32  lateral acceleration, g
``g_long``              float32  longitudinal acceleration, g (positive = speeding up)
======================  =======  ==============================================================

The game's own fields are all kept beside these in the HDF5 file; the mapping of each packet kind
lives in :data:`MAPPERS`, next to nothing else.

Handedness: Assetto Corsa's world is left-handed (seen from above its x and z turn the other way
round), and its steering angle is positive to the right. Checked on the real Monza capture: with
AC's raw x/z the clockwise circuit comes out counter-clockwise, and the raw steer sign agrees with
right turns. The canonical frame flips z and the steer sign for AC (and for the Telemetry Tool app,
which reads the same engine), so left and right mean what a driver means in every feed.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

#: AC reports the steering wheel angle in degrees; half of a common 900° wheel maps it to -1..1.
AC_STEER_LOCK_DEG = 450.0
STANDARD_GRAVITY = 9.80665

CANONICAL_DTYPE = np.dtype(
    [
        ("t_ns", "<i8"),
        ("speed_kmh", "<f4"),
        ("rpm", "<f4"),
        ("gear", "<i1"),
        ("throttle", "<f4"),
        ("brake", "<f4"),
        ("clutch", "<f4"),
        ("steer", "<f4"),
        ("lap_count", "<i4"),
        ("lap_time_ms", "<i4"),
        ("last_lap_ms", "<i4"),
        ("best_lap_ms", "<i4"),
        ("norm_pos", "<f4"),
        ("pos_x", "<f4"),
        ("pos_y", "<f4"),
        ("pos_z", "<f4"),
        ("g_lat", "<f4"),
        ("g_long", "<f4"),
    ]
)

CANONICAL_UNITS = {
    "t_ns": "ns since Unix epoch",
    "speed_kmh": "km/h",
    "rpm": "rpm",
    "gear": "-1 R, 0 N, 1.. forward",
    "throttle": "0..1",
    "brake": "0..1",
    "clutch": "0..1 engaged",
    "steer": "-1..1",
    "lap_count": "laps",
    "lap_time_ms": "ms",
    "last_lap_ms": "ms",
    "best_lap_ms": "ms",
    "norm_pos": "0..1",
    "pos_x": "m",
    "pos_y": "m",
    "pos_z": "m",
    "g_lat": "g",
    "g_long": "g",
}

Columns = Mapping[str, np.ndarray]


def empty(n: int) -> np.ndarray:
    """``n`` canonical rows with every channel unknown (NaN / -1)."""
    out = np.zeros(n, dtype=CANONICAL_DTYPE)
    for name in CANONICAL_DTYPE.names:
        kind = CANONICAL_DTYPE[name].kind
        if kind == "f":
            out[name] = np.nan
        elif name not in ("t_ns", "gear"):
            out[name] = -1
    return out


def _ac_gear(raw: np.ndarray) -> np.ndarray:
    # AC: 0 = reverse, 1 = neutral, 2 = first.
    return (raw.astype(np.int32) - 1).clip(-1, 127)


def _pcars_gear(gear_num_gears: np.ndarray) -> np.ndarray:
    # PCARS: low nibble is the gear, 15 = reverse, 0 = neutral.
    g = (gear_num_gears & 0x0F).astype(np.int8)
    g[g == 15] = -1
    return g


def _seconds_to_ms(s: np.ndarray) -> np.ndarray:
    # PCARS uses -1 (or other negatives) for "no time".
    ms = np.rint(s.astype(np.float64) * 1000.0)
    ms[~(s >= 0)] = -1
    return ms.clip(-1, np.iinfo(np.int32).max).astype(np.int32)


def _ac_car_info(c: Columns, out: np.ndarray) -> None:
    out["speed_kmh"] = c["speed_Kmh"]
    out["rpm"] = c["engineRPM"]
    out["gear"] = _ac_gear(c["gear"])
    out["throttle"] = c["gas"]
    out["brake"] = c["brake"]
    out["clutch"] = c["clutch"]
    out["steer"] = np.clip(-c["steer"] / AC_STEER_LOCK_DEG, -1.0, 1.0)
    out["lap_count"] = c["lapCount"]
    out["lap_time_ms"] = c["lapTime"]
    out["last_lap_ms"] = np.where(c["lastLap"] > 0, c["lastLap"], -1)
    out["best_lap_ms"] = np.where(c["bestLap"] > 0, c["bestLap"], -1)
    out["norm_pos"] = c["carPositionNormalized"]
    pos = c["carCoordinates"]
    out["pos_x"], out["pos_y"], out["pos_z"] = pos[:, 0], pos[:, 1], -pos[:, 2]
    out["g_lat"] = c["accG_horizontal"]
    out["g_long"] = c["accG_frontal"]


def _tt_driver(c: Columns, out: np.ndarray) -> None:
    # The Telemetry Tool table is provisional and user-replaceable: map what it has.
    def put(channel: str, field: str, fn: Callable[[np.ndarray], np.ndarray] = lambda v: v) -> None:
        if field in c:
            out[channel] = fn(c[field])

    put("speed_kmh", "speed_kmh")
    put("rpm", "rpm")
    put("gear", "gear", _ac_gear)
    put("throttle", "gas")
    put("brake", "brake")
    put("clutch", "clutch")
    put("steer", "steer", lambda v: np.clip(-v / AC_STEER_LOCK_DEG, -1.0, 1.0))
    put("lap_count", "lap_count")
    put("lap_time_ms", "lap_time_ms")
    put("last_lap_ms", "last_lap_ms", lambda v: np.where(v > 0, v, -1))
    put("best_lap_ms", "best_lap_ms", lambda v: np.where(v > 0, v, -1))
    put("norm_pos", "spline_position")
    if "world_position" in c:
        pos = c["world_position"]
        out["pos_x"], out["pos_y"], out["pos_z"] = pos[:, 0], pos[:, 1], -pos[:, 2]
    if "acc_g" in c:
        out["g_lat"] = c["acc_g"][:, 0]
        out["g_long"] = c["acc_g"][:, 2]


def _pcars_common(c: Columns, out: np.ndarray) -> None:
    out["speed_kmh"] = c["sSpeed"] * np.float32(3.6)
    out["rpm"] = c["sRpm"]
    out["gear"] = _pcars_gear(c["sGearNumGears"])
    out["throttle"] = c["sThrottle"] / np.float32(255.0)
    out["brake"] = c["sBrake"] / np.float32(255.0)
    out["clutch"] = 1.0 - c["sClutch"] / np.float32(255.0)
    out["steer"] = np.clip(c["sSteering"] / np.float32(127.0), -1.0, 1.0)
    # PCARS local frame: x to the side, z points backwards, so forward acceleration is -z.
    acc = c["sLocalAcceleration"]
    out["g_lat"] = acc[:, 0] / STANDARD_GRAVITY
    out["g_long"] = -acc[:, 2] / STANDARD_GRAVITY


def _pcars1_telemetry(c: Columns, out: np.ndarray) -> None:
    _pcars_common(c, out)
    out["lap_time_ms"] = _seconds_to_ms(c["sCurrentTime"])
    out["last_lap_ms"] = _seconds_to_ms(c["sLastLapTime"])
    out["best_lap_ms"] = _seconds_to_ms(c["sBestLapTime"])
    viewed = c["sViewedParticipantIndex"].astype(np.int64)
    known = (viewed >= 0) & (viewed < 56)
    idx = np.where(known, viewed, 0)
    rows = np.arange(idx.shape[0])
    laps = (c["sParticipantInfo.sLapsCompleted"][rows, idx] & 0x7F).astype(np.int32)
    out["lap_count"] = np.where(known, laps, -1)
    track = c["sTrackLength"].astype(np.float64)
    dist = c["sParticipantInfo.sCurrentLapDistance"][rows, idx].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.where(known & (track > 0), dist / track, np.nan)
    out["norm_pos"] = norm
    pos = c["sParticipantInfo.sWorldPosition"][rows, idx].astype(np.float32)
    sector = c["sParticipantInfo.sSector"][rows, idx]
    # Two extra quarter-metre bits of x and z ride in the sector byte.
    pos[:, 0] += ((sector >> 6) & 3) * np.float32(0.25)
    pos[:, 2] += ((sector >> 4) & 3) * np.float32(0.25)
    pos[~known] = np.nan
    out["pos_x"], out["pos_y"], out["pos_z"] = pos[:, 0], pos[:, 1], pos[:, 2]


def _pcars2_telemetry(c: Columns, out: np.ndarray) -> None:
    # PC2 telemetry carries no lap data (that comes in the timings packet).
    _pcars_common(c, out)
    if "sFullPosition" in c:
        pos = c["sFullPosition"]
        out["pos_x"], out["pos_y"], out["pos_z"] = pos[:, 0], pos[:, 1], pos[:, 2]


#: Packet kind name → function filling canonical rows from that kind's decoded columns.
MAPPERS: dict[str, Callable[[Columns, np.ndarray], None]] = {
    "ac_car_info": _ac_car_info,
    "tt_driver": _tt_driver,
    "pcars1_telemetry": _pcars1_telemetry,
    **{f"pcars2_telemetry_{s}": _pcars2_telemetry for s in (538, 555, 556, 559)},
}


def to_canonical(kind: str, columns: Columns, t_ns: np.ndarray) -> np.ndarray | None:
    """Canonical rows for a decoded batch of ``kind``, or ``None`` if the kind has no driving data."""
    mapper = MAPPERS.get(kind)
    if mapper is None:
        return None
    out = empty(len(t_ns))
    out["t_ns"] = t_ns
    # A well-formed packet can still carry any float (3e38, a signalling NaN): arithmetic on it
    # may overflow. Such a value is not a measurement; it becomes NaN (unknown, null in the API)
    # rather than a warning out of the consumer or an infinite speed in a recording.
    with np.errstate(all="ignore"):
        mapper(columns, out)
    for name in _FLOAT_CHANNELS:
        values = out[name]
        values[np.isinf(values)] = np.nan
    return out


_FLOAT_CHANNELS = tuple(name for name in CANONICAL_DTYPE.names if CANONICAL_DTYPE[name].kind == "f")
