"""Lap traces for comparison: one lap's channels on a common grid along the lap, and the time it
gains or loses against a reference lap (what the racecraft client plots, lap over lap).

Everything here is a pure function of the laps :func:`rt.analysis.laps.find_laps` found (the one lap
model: its line crossings ``start_s``/``end_s``, its frames and positions), so a trace agrees with
the lap table to the sample.

Position along a lap (:func:`lap_axis`), per frame of the lap and the frame either side of it (so
both line crossings are interpolated, not extrapolated):

* **time** ``t_s``: seconds since the lap's start line crossing, on the run's clock
  (:func:`rt.analysis.clock.run_clock`: the game's lap timer where it runs, pauses left out), so a
  trace ends at the lap's own time.
* **distance** ``x_m``: metres from the start line. Where the game states the track length
  (``meta["track_length_m"]``, PCARS) and the feed has ``norm_pos``: the lap position ``p`` × that
  length, so every lap's grid ends exactly at the track length (``x_source: "track_length"``).
  Otherwise the distance driven: speed integrated over the run's clock from the start crossing
  (``x_source: "distance_driven"``); each lap then has its own length (its line, its wheelspin),
  and a reference lap is compared at the same *fraction* of its own length.

Positions that go backwards (a rewind, jitter at a standstill) are held at their running maximum:
the grid follows progress along the lap, never a position twice.

Time slip against a reference lap M (``delta_s``): at each grid point, the time lap n took to get
there minus the time lap M took to get to the same place (``t_n(x) − t_M(x · L_M / L_n)``; with
the track length ``L_M = L_n``). Positive: lap n is slower so far. At the end of the lap it is the
difference of the two lap times; against the lap itself it is zero everywhere.

Sizes are bounded: at most :data:`MAX_POINTS` grid points (a finer step is clamped up to
``length / (MAX_POINTS − 1)``, and the answer says so), channels from :data:`TRACE_CHANNELS` only.

Units: metres, seconds, and each channel's own unit (:data:`rt.protocols.canonical.CANONICAL_UNITS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..protocols.canonical import CANONICAL_DTYPE, CANONICAL_NAMES, CANONICAL_UNITS
from .clock import run_clock
from .frames import Frames, json_num
from .laps import Lap, Laps, lap_sectors, unwrapped_position

#: Channels a trace may carry: every canonical channel but the receive time.
TRACE_CHANNELS: tuple[str, ...] = tuple(name for name in CANONICAL_NAMES if name != "t_ns")
#: Most grid points of one trace (one lap of the Nordschleife at 2 m is ~10 400: clamped to 4.2 m).
MAX_POINTS = 5000
#: Default grid steps: metres (x = distance) and seconds (x = time).
DEFAULT_STEP_M = 2.0
DEFAULT_STEP_S = 0.05
#: Integer channels whose -1 means "unknown" (gear's -1 is reverse).
_UNKNOWN_IS_MINUS_ONE = {"lap_count", "lap_time_ms", "last_lap_ms", "best_lap_ms"}


class NotTraceable(ValueError):
    """The lap has no whole line-to-line span to put on a grid (an out-lap, an unfinished lap)."""


@dataclass
class LapAxis:
    """Where a lap's frames lie along the lap: ``x_m`` and ``t_s`` per frame (the lap's frames and
    the one either side), non-decreasing; ``index`` the frames (indices into ``lap.frames``).
    ``x_line``/``t_line``: the lap's own frames between the two line crossings themselves, (0, 0)
    first and (``length_m``, ``duration_s``) last: time ↔ distance, exact at both lines even where
    the game's position is coarse (PCARS: whole metres, up to 45 ms at 80 km/h).

    Attributes:
        length_m: the lap's length, m (the track length, or the distance driven line to line).
        duration_s: line to line on the run's clock, s.
        x_source: ``"track_length"`` (p × the game's track length) or ``"distance_driven"``.
    """

    index: np.ndarray
    x_m: np.ndarray
    t_s: np.ndarray
    length_m: float
    duration_s: float
    x_source: str
    x_line: np.ndarray
    t_line: np.ndarray


def _clock_and_distance(fr: Frames) -> tuple[np.ndarray, np.ndarray]:
    """The run's clock (s since its first frame) and the distance driven along it (m), per frame."""
    clock, _source = run_clock(fr)
    if "speed_kmh" in fr and len(fr) > 1:
        v = np.asarray(fr["speed_kmh"], dtype=np.float64) / 3.6
        inc = 0.5 * (v[1:] + v[:-1]) * np.diff(clock)
        # An unknown speed adds nothing: it holds the distance, it does not end it.
        dist = np.concatenate(([0.0], np.cumsum(np.where(np.isfinite(inc), inc, 0.0))))
    else:
        dist = np.full(len(fr), np.nan)
    return clock, dist


def _crossings_on_clock(lap: Lap, fr: Frames, clock: np.ndarray) -> tuple[float, float]:
    """The lap's two line crossings on the run's clock, s.

    Where the game times the lap (its lap timer runs through the lap and the time is the game's),
    the start is ``clock − lap timer`` on the lap's frames (the same on every frame while the
    clock follows the timer; the median outvotes a hitch) and the end the start plus the game's
    lap time: exact to the ms. The finder's crossings (``start_s``/``end_s``) are on the receive
    clock, which runs at another pace wherever data arrives in bursts or faster than real time
    (a replay, the simulator at 40×): they are mapped onto the run's clock only for derived laps,
    whose run clock is the receive clock without its pauses.
    """
    if lap.time_source == "game" and lap.time_ms is not None and "lap_time_ms" in fr:
        lt = np.asarray(fr["lap_time_ms"][lap.start : lap.end], dtype=np.float64)
        known = lt >= 0
        if known.sum() >= max(2, len(lt) // 2):
            t0 = float(np.median(clock[lap.start : lap.end][known] - lt[known] / 1000.0))
            return t0, t0 + float(lap.time_ms) / 1000.0
    t0, t1 = np.interp([lap.start_s, lap.end_s], fr.t_s, clock)
    return float(t0), float(t1)


def lap_axis(lap: Lap, cache: dict | None = None) -> LapAxis:
    """Position along ``lap`` of its frames (see the module doc); raises :class:`NotTraceable`
    for a lap whose start or end crossing the run did not see. ``cache`` (a dict) keeps the run's
    clock between laps of one run."""
    fr = lap.frames
    if fr is None or lap.start_s is None or lap.end_s is None or not lap.complete:
        raise NotTraceable(f"lap {lap.lap} was not seen from line to line ({lap.invalid_reason or 'incomplete'})")
    key = id(fr)
    if cache is not None and key in cache:
        clock, dist, p_run = cache[key]
    else:
        clock, dist = _clock_and_distance(fr)
        p_run = unwrapped_position(fr["norm_pos"]) if "norm_pos" in fr else np.full(len(fr), np.nan)
        if cache is not None:
            cache[key] = (clock, dist, p_run)
    t0, t1 = _crossings_on_clock(lap, fr, clock)
    index = np.arange(max(0, lap.start - 1), min(len(fr), lap.end + 1))
    t = clock[index] - t0
    length = fr.meta.get("track_length_m")
    placed = lap.p is not None and length is not None and math.isfinite(float(length)) and float(length) > 0
    if placed:
        p = p_run[index] - lap.whole
        keep = np.isfinite(p)
        index, t, x = index[keep], t[keep], p[keep] * float(length)
        length_m, source = float(length), "track_length"
    else:
        d0, d1 = np.interp([t0, t1], clock, dist)
        x, length_m, source = dist[index] - d0, float(d1 - d0), "distance_driven"
        if not math.isfinite(length_m) or length_m <= 0:
            raise NotTraceable(f"lap {lap.lap}: no position along the lap (no norm_pos with a track length, no speed)")
    if len(index) < 2:
        raise NotTraceable(f"lap {lap.lap}: fewer than two frames with a position")
    x, t, duration = np.maximum.accumulate(x), np.maximum.accumulate(t), float(t1 - t0)
    # Frames at or past a line (a coarse position stands on it for a while) would make the line
    # ambiguous: only those strictly between the two crossings join them.
    inner = (index >= lap.start) & (index < lap.end) & (x > 0) & (x < length_m) & (t > 0) & (t < duration)
    x_line = np.concatenate(([0.0], x[inner], [length_m]))
    t_line = np.concatenate(([0.0], t[inner], [duration]))
    return LapAxis(index, x, t, length_m, duration, source, x_line, t_line)


def grid(length: float, step: float) -> tuple[np.ndarray, float, bool]:
    """Grid points ``0, step, 2·step, …`` and ``length`` itself last (units of ``length``), the step
    used and whether it was clamped up to keep at most :data:`MAX_POINTS` points."""
    clamped = False
    if length / step > MAX_POINTS - 2:
        step, clamped = length / (MAX_POINTS - 2), True
    pts = np.arange(0.0, length, step)
    if len(pts) and length - pts[-1] < step * 1e-6:
        pts = pts[:-1]  # length lands on the grid: it is added once below
    return np.append(pts, length), step, clamped


def _at(ax_x: np.ndarray, fr: Frames, index: np.ndarray, name: str, where: np.ndarray) -> np.ndarray:
    """Channel ``name`` at positions ``where`` (same axis as ``ax_x``): linear between frames for
    floats, the last frame's value at or before the point for integers (a gear is never 3.4);
    NaN outside the lap and where unknown."""
    values = np.asarray(fr[name])[index]
    out: np.ndarray
    if CANONICAL_DTYPE[name].kind == "f":
        out = np.interp(where, ax_x, values.astype(np.float64))
    else:
        k = np.clip(np.searchsorted(ax_x, where, side="right") - 1, 0, len(ax_x) - 1)
        out = values[k].astype(np.float64)
        if name in _UNKNOWN_IS_MINUS_ONE:
            out[out < 0] = np.nan
    out[(where < ax_x[0]) | (where > ax_x[-1])] = np.nan
    return out


def _values(name: str, v: np.ndarray) -> list:
    if CANONICAL_DTYPE[name].kind != "f":
        return [None if not math.isfinite(x) else int(x) for x in v.tolist()]
    return json_num(v)


def lap_record(lap: Lap) -> dict:
    """A lap's row of the lap table (JSON-ready): ``number``, ``time_ms``, ``valid``, ``complete``,
    ``invalid_reason``, ``source``, ``start_s``/``end_s`` (line crossings, s since the feed's first
    frame in the recording; null when not seen), ``sectors_ms`` (null when not timed)."""
    return {
        "number": lap.lap,
        "time_ms": None if lap.time_ms is None else int(lap.time_ms),
        "valid": bool(lap.valid),
        "complete": bool(lap.complete),
        "invalid_reason": lap.invalid_reason,
        "source": lap.source,
        "start_s": json_num(lap.start_s, 3),
        "end_s": json_num(lap.end_s, 3),
        "sectors_ms": lap.sectors_ms,
    }


def lap_table(laps: Laps) -> list[dict]:
    """The lap table of one run's laps (:func:`lap_record` each), sector times filled in."""
    lap_sectors(laps)
    return [lap_record(lap) for lap in laps]


def pick_lap(laps: Laps, number: int) -> Lap | None:
    """Lap ``number`` of a run (the first of that number, should a restarted counter repeat it)."""
    return next((lap for lap in laps if lap.lap == number), None)


def lap_trace(lap: Lap, channels: tuple[str, ...] = ("speed_kmh", "throttle", "brake"), x: str = "distance",
              step: float | None = None, ref: Lap | None = None, ref_channels: bool = False) -> dict:
    """The trace of ``lap``: ``channels`` on a grid along it, and the time slip against ``ref``.

    Args:
        lap, ref: laps of :func:`find_laps` (may be the same lap, or of different runs).
        channels: names from :data:`TRACE_CHANNELS` (ValueError otherwise).
        x: ``"distance"`` (grid in m from the start line) or ``"time"`` (s from the start crossing).
        step: grid step in the unit of ``x`` (default :data:`DEFAULT_STEP_M` / :data:`DEFAULT_STEP_S`);
            clamped up to at most :data:`MAX_POINTS` points.
        ref_channels: also the reference lap's channels on the same grid (at the same place, or
            with ``x="time"`` the same time since its start).

    Returns a JSON-ready dict: ``lap`` (its record), ``x``, ``x_source``, ``length_m``,
    ``duration_s``, ``step`` (used), ``step_requested``, ``step_clamped``, ``points``,
    ``distance_m`` and ``time_s`` (both at every grid point, whichever is the axis), ``channels``
    ({name: values}, null where unknown), ``units``, and ``ref`` (null without one: else its
    ``lap``, ``length_m``, ``duration_s``, ``delta_s`` (s, + = lap slower so far) and, if asked,
    ``channels``). Raises :class:`NotTraceable` for a lap without both line crossings.
    """
    unknown = [c for c in channels if c not in TRACE_CHANNELS]
    if unknown:
        raise ValueError(f"unknown channels {unknown}: a trace takes {', '.join(TRACE_CHANNELS)}")
    if x not in ("distance", "time"):
        raise ValueError(f"x must be 'distance' or 'time', not {x!r}")
    cache: dict = {}
    ax = lap_axis(lap, cache)
    requested = step if step is not None else (DEFAULT_STEP_M if x == "distance" else DEFAULT_STEP_S)
    if not (math.isfinite(requested) and requested > 0):
        raise ValueError(f"step must be a positive number, not {requested!r}")
    span = ax.length_m if x == "distance" else ax.duration_s
    pts, used, clamped = grid(span, requested)
    if x == "distance":
        dist, time = pts, np.interp(pts, ax.x_line, ax.t_line)
        along, own = ax.x_m, pts
    else:
        dist, time = np.interp(pts, ax.t_line, ax.x_line), pts
        along, own = ax.t_s, pts
    fr = lap.frames
    assert fr is not None  # lap_axis checked
    out = {
        "lap": lap_record(lap),
        "x": x,
        "x_source": ax.x_source,
        "length_m": json_num(ax.length_m, 3),
        "duration_s": json_num(ax.duration_s, 4),
        "step": json_num(used, 6),
        "step_requested": json_num(requested, 6),
        "step_clamped": clamped,
        "points": len(pts),
        "distance_m": json_num(dist, 3),
        "time_s": json_num(time, 4),
        "channels": {c: _values(c, _at(along, fr, ax.index, c, own)) for c in channels},
        "units": {c: CANONICAL_UNITS[c] for c in channels},
        "ref": None,
    }
    if ref is not None:
        rax = ax if ref is lap else lap_axis(ref, cache)
        scale = rax.length_m / ax.length_m  # 1 with the track length: both laps share it
        ref_x = dist * scale
        delta = time - np.interp(ref_x, rax.x_line, rax.t_line)
        ref_out: dict = {"lap": lap_record(ref), "length_m": json_num(rax.length_m, 3),
                         "duration_s": json_num(rax.duration_s, 4), "delta_s": json_num(delta, 4)}
        if ref_channels:
            rfr = ref.frames
            assert rfr is not None
            r_along, r_at = (rax.x_m, ref_x) if x == "distance" else (rax.t_s, pts)
            ref_out["channels"] = {c: _values(c, _at(r_along, rfr, rax.index, c, r_at)) for c in channels}
        out["ref"] = ref_out
    return out
