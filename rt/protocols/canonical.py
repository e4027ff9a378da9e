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
``steer``               float32  -1..1, + = left (AC: −degrees / :data:`AC_STEER_LOCK_DEG`, clipped; PCARS: −sSteering/127)
``lap_count``           int32    completed laps (-1 unknown)
``lap_time_ms``         int32    current lap time, ms (-1 unknown)
``last_lap_ms``         int32    last lap time, ms (-1 unknown or none yet)
``best_lap_ms``         int32    best lap time, ms (-1 unknown or none yet)
``norm_pos``            float32  0..1 along the lap (NaN unknown)
``pos_x/pos_y/pos_z``   float32  world position, m, y up; a left turn turns the heading from +x towards +z (NaN unknown)
``g_lat``               float32  lateral acceleration, g, + = towards the left (a left turn)
``g_long``              float32  longitudinal acceleration, g, + = speeding up
======================  =======  ==============================================================

The game's own fields are all kept beside these in the HDF5 file; the mapping of each packet kind
lives in :data:`MAPPERS`, next to nothing else.

Sign conventions, the same on every feed, and each checked against physics on the real captures
(``tests/test_physics_real.py``: AC Monza and the Project CARS 1 Spa stream):

* Ground plane: a left turn turns the heading from +x towards +z (seen from above with x to the
  right, z points up the page). Assetto Corsa's z runs the other way, so AC's z is flipped;
  Project CARS positions are taken as they are. Checked: Spa's Rivage hairpin comes out as a
  right-hander, and the 5.8 km of clockwise Monza in the AC capture turn right on the whole.
* ``steer`` + = left. AC's wheel angle and PCARS's ``sSteering`` are both + to the right.
* ``g_lat`` + = accelerating to the left, so in a corner it has the sign of ``steer`` and follows
  v² × the path's curvature. AC's RTCarInfo names its axes wrongly: the field at offset 28
  (``accG_vertical``) is the lateral one (correlation 0.99 with v² × curvature on Monza), and
  ``accG_horizontal`` follows neither. PCARS's local x is + to the left.
* ``g_long`` + = speeding up: AC ``accG_frontal``, PCARS −local z (its z points backwards).
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

#: The channel names of CANONICAL_DTYPE, in order (typed: numpy's ``dtype.names`` may be None).
assert CANONICAL_DTYPE.names is not None  # a structured dtype always has names
CANONICAL_NAMES: tuple[str, ...] = CANONICAL_DTYPE.names

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


def _unknown_row() -> np.ndarray:
    row = np.zeros(1, dtype=CANONICAL_DTYPE)
    for name in CANONICAL_DTYPE.names:
        kind = CANONICAL_DTYPE[name].kind
        if kind == "f":
            row[name] = np.nan
        elif name not in ("t_ns", "gear"):
            row[name] = -1
    return row


_UNKNOWN = _unknown_row()


def empty(n: int) -> np.ndarray:
    """``n`` canonical rows with every channel unknown (NaN / -1)."""
    # One copy of a prepared row, not one strided fill per channel (this runs for every batch).
    return np.repeat(_UNKNOWN, n)


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
    # Not the struct's names: offset 28 ("accG_vertical") is the lateral axis (see ac.CAR_INFO).
    out["g_lat"] = c["accG_vertical"]
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
    # PCARS steers + to the right, like a joystick axis; canonical steer is + to the left.
    out["steer"] = np.clip(-c["sSteering"] / np.float32(127.0), -1.0, 1.0)
    # PCARS local frame: x to the left, z points backwards, so forward acceleration is -z.
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


# ---- ACC: the field's car updates, and the focused car -----------------------------------------------
#
# ACC sends one car update per car of the field; the canonical frames follow the car the realtime
# update says is focused (the player's own unless they move the camera to another car). ACC's
# broadcasting carries no engine, pedals or steering, nor a height: those channels stay unknown.
#
# Handedness: ACC runs on Unreal Engine (left-handed, z up): seen from above with its x to the
# right, its y points down the page. So canonical pos_x = worldPosX and pos_z = -worldPosY, which
# makes a left turn turn the heading from +x towards +z as on every other feed. No real ACC capture
# was at hand to check this against a corner's direction; the simulator sends ACC's frame as stated.

ACC_FOCUS_KIND = "acc_realtime_update"
ACC_CAR_KIND = "acc_car_update"
ACC_NO_TIME = 2**31 - 1


def _acc_ms(ms: np.ndarray) -> np.ndarray:
    return np.where((ms >= 0) & (ms != ACC_NO_TIME), ms, -1).astype(np.int32)


def focused_rows(focus_t_ns: np.ndarray, focus_car: np.ndarray, t_ns: np.ndarray, car_index: np.ndarray) -> np.ndarray:
    """Which car updates (times ``t_ns``, cars ``car_index``) are of the car focused at their time:
    the newest realtime update at or before each (times ``focus_t_ns``, focused cars ``focus_car``).
    None before the first realtime update. The feed and the readers of a recording use this one rule."""
    at = np.searchsorted(focus_t_ns, t_ns, side="right") - 1
    focus = np.where(at >= 0, np.asarray(focus_car)[np.maximum(at, 0)] if len(focus_car) else -1, -1)
    return (at >= 0) & (np.asarray(car_index).astype(np.int64) == focus)


def _acc_lap_flags(c: Columns, prefix: str) -> np.ndarray:
    return np.stack([c[f"{prefix}.{flag}"] for flag in ("isInvalid", "isValidForBest", "isOutlap", "isInlap")],
                    axis=1).astype(np.uint8)


def _acc_extras(c: Columns) -> dict[str, np.ndarray]:
    """Per-frame lap records of the focused car, for the lap analyses: ACC's own lap times, splits
    and flags (see :data:`FRAME_EXTRAS`)."""
    return {
        "lap_invalid": c["currentLap.isInvalid"].astype(bool),
        "current_lap_flags": _acc_lap_flags(c, "currentLap"),
        "current_lap_splits_ms": _acc_ms(c["currentLap.splits"][:, :3]),
        "last_lap_flags": _acc_lap_flags(c, "lastLap"),
        "last_lap_splits_ms": _acc_ms(c["lastLap.splits"][:, :3]),
    }


def _acc_car_update(c: Columns, out: np.ndarray) -> None:
    out["speed_kmh"] = c["kmh"]
    out["gear"] = (c["gear"].astype(np.int32) - 2).clip(-1, 127)  # raw: R = 1, N = 2, 1st = 3
    out["lap_count"] = c["laps"]
    out["lap_time_ms"] = _acc_ms(c["currentLap.laptimeMs"])
    out["last_lap_ms"] = _acc_ms(c["lastLap.laptimeMs"])
    out["best_lap_ms"] = _acc_ms(c["bestSessionLap.laptimeMs"])
    out["norm_pos"] = c["splinePosition"]
    out["pos_x"] = c["worldPosX"]
    out["pos_z"] = -c["worldPosY"]


#: Packet kind → per-frame channels beyond the canonical ones, from the rows that made its frames
#: (``Frames.extras``; the canonical file has no room for them, the packet rows keep them):
#: flags (``lap_invalid``: bool; ``*_flags``: u8 n × 4 — invalid, valid for best, out-lap, in-lap) and
#: splits (``*_splits_ms``: int n × 3, −1 none). Frames of other kinds get the fill of the dtype
#: (False, 0, −1).
FRAME_EXTRAS: dict[str, Callable[[Columns], dict[str, np.ndarray]]] = {ACC_CAR_KIND: _acc_extras}


#: Packet kind name → function filling canonical rows from that kind's decoded columns.
MAPPERS: dict[str, Callable[[Columns, np.ndarray], None]] = {
    "ac_car_info": _ac_car_info,
    "tt_driver": _tt_driver,
    "pcars1_telemetry": _pcars1_telemetry,
    ACC_CAR_KIND: _acc_car_update,
    **{f"pcars2_telemetry_{s}": _pcars2_telemetry for s in (538, 555, 556, 559)},
}


# ---- Project CARS 2: lap data from other packets -------------------------------------------------
#
# PC2's telemetry packet carries no lap data. The timings packet (about every 0.1 s) has every
# participant's current lap time, lap number and lap distance; the time-stats packet their last
# and fastest laps; the race packet the lap length. :class:`CanonicalMapper` keeps the latest of
# each and fills the telemetry frames after them from the viewed participant's record.

_PC2_CARRIED = {
    # carrier kind prefix → (canonical channel, field) pairs it carries, per participant
    "pcars2_timings_": (("lap_time_ms", "sParticipants.sCurrentTime"), ("lap_count", "sParticipants.sCurrentLap"),
                        ("lap_distance_m", "sParticipants.sCurrentLapDistance")),
    "pcars2_time_stats_": (("last_lap_ms", "sStats.sLastLapTime"), ("best_lap_ms", "sStats.sFastestLapTime")),
    "pcars2_race_": (("track_length_m", "sTrackLength"),),
}


def _carrier(kind: str) -> str | None:
    if kind == ACC_FOCUS_KIND:
        return kind
    return next((prefix for prefix in _PC2_CARRIED if kind.startswith(prefix)), None)


class CanonicalMapper:
    """Canonical rows of one feed's packets, in arrival order, across batches (stateful).

    :func:`to_canonical` maps one packet kind on its own; this adds what a game sends in other
    packets (PCARS 2 lap data, see above). Decode a batch's packets that only carry such data
    first (:meth:`carries`), then the telemetry: a frame takes the newest carried values received
    at or before it.
    """

    def __init__(self) -> None:
        # carrier prefix → (receive times, {channel: values}) of its latest packets; the last one
        # of the group before stays in front, for frames between two groups.
        self._carried: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}

    @staticmethod
    def carries(kind: str) -> bool:
        """Whether packets of ``kind`` carry data for other kinds' frames (map them first)."""
        return _carrier(kind) is not None

    @staticmethod
    def selects(kind: str) -> bool:
        """Whether only some packets of ``kind`` become frames (ACC: the focused car's among the
        field's), so its newest frame is not simply its newest packet's."""
        return kind == ACC_CAR_KIND

    @classmethod
    def order(cls, kind_ids: list[int], kinds) -> list[int]:
        """The kind ids of a batch in the order to map them: carriers first (``kinds``: id → layout)."""
        return sorted(kind_ids, key=lambda k: not cls.carries(kinds[k].name))

    def map(self, kind: str, columns: Columns, t_ns: np.ndarray) -> np.ndarray | None:
        """Canonical rows for a decoded group of ``kind`` (``None`` for kinds without driving data)."""
        prefix = _carrier(kind)
        if prefix == ACC_FOCUS_KIND:
            self._remember_focus(columns, t_ns)
            return None
        if prefix is not None:
            self._remember(prefix, columns, t_ns)
            return None
        if kind == ACC_CAR_KIND:
            columns, t_ns = self._focused(columns, t_ns)
        out = to_canonical(kind, columns, t_ns)
        if out is not None and kind.startswith("pcars2_telemetry_") and self._carried:
            with np.errstate(all="ignore"):
                self._fill_pcars2(columns, t_ns, out)
        return out

    def _remember_focus(self, columns: Columns, t_ns: np.ndarray) -> None:
        times, cars = np.asarray(t_ns), np.asarray(columns["focusedCarIndex"])
        before = self._carried.get(ACC_FOCUS_KIND)
        if before is not None and len(before[0]):  # for the next batch's car updates before its first one
            times, cars = np.concatenate((before[0][-1:], times)), np.concatenate((before[1]["car"][-1:], cars))
        self._carried[ACC_FOCUS_KIND] = (times, {"car": cars})

    def _focused(self, columns: Columns, t_ns: np.ndarray) -> tuple[Columns, np.ndarray]:
        """The car updates of the car focused at their time (by the newest realtime update before
        them; this batch's or the last one before it). None before the first realtime update."""
        got = self._carried.get(ACC_FOCUS_KIND)
        if got is None:
            keep = np.zeros(len(t_ns), dtype=bool)
        else:
            keep = focused_rows(got[0], got[1]["car"], t_ns, columns["carIndex"])
        if keep.all():
            return columns, t_ns
        return {name: columns[name][keep] for name in columns}, t_ns[keep]

    def _remember(self, prefix: str, columns: Columns, t_ns: np.ndarray) -> None:
        values = {channel: np.asarray(columns[field]) for channel, field in _PC2_CARRIED[prefix] if field in columns}
        before = self._carried.get(prefix)
        if before is not None and len(before[0]) and all(c in before[1] for c in values):
            t_ns = np.concatenate((before[0][-1:], t_ns))
            values = {c: np.concatenate((before[1][c][-1:], v)) for c, v in values.items()}
        self._carried[prefix] = (np.asarray(t_ns), values)

    def _latest(self, prefix: str, t_ns: np.ndarray):
        """Index of the newest carried packet at or before each frame (-1: none yet), and the values."""
        got = self._carried.get(prefix)
        if got is None:
            return None, None
        times, values = got
        return np.searchsorted(times, t_ns, side="right") - 1, values

    def _fill_pcars2(self, c: Columns, t_ns: np.ndarray, out: np.ndarray) -> None:
        viewed = c["sViewedParticipantIndex"].astype(np.int64)

        def per_participant(values: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            ok = (at >= 0) & (viewed >= 0) & (viewed < values.shape[1])
            return values[np.where(ok, at, 0), np.where(ok, viewed, 0)], ok

        at, v = self._latest("pcars2_timings_", t_ns)
        if at is not None:
            lap_time, ok = per_participant(v["lap_time_ms"], at)
            out["lap_time_ms"] = np.where(ok, _seconds_to_ms(lap_time), -1)
            lap, ok = per_participant(v["lap_count"], at)
            # sCurrentLap is the lap being driven, from 1: laps completed are one fewer.
            out["lap_count"] = np.where(ok & (lap >= 1), lap.astype(np.int32) - 1, -1)
            dist, ok_d = per_participant(v["lap_distance_m"], at)
            at_r, race = self._latest("pcars2_race_", t_ns)
            if at_r is not None:
                length = np.where(at_r >= 0, race["track_length_m"][np.maximum(at_r, 0)], np.nan).astype(np.float64)
                out["norm_pos"] = np.where(ok_d & (length > 0), dist / length, np.nan)
        at, v = self._latest("pcars2_time_stats_", t_ns)
        if at is not None:
            for channel in ("last_lap_ms", "best_lap_ms"):
                if channel in v:
                    value, ok = per_participant(v[channel], at)
                    out[channel] = np.where(ok & (value > 0), _seconds_to_ms(value), -1)  # 0: no lap yet


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
