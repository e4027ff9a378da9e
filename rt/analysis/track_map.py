"""Track map: the closed centre line of the circuit, its length and its corners, from positions.

How it is made
--------------
1. Positions (``pos_x``, ``pos_z``, m; y is up and ignored) of every good lap (complete, no
   rewind, positions covering the lap: :attr:`rt.analysis.laps.Lap.good`) are binned by
   ``norm_pos`` (:data:`BINS` bins) and averaged per bin; each bin's mean is placed at the bin's
   mean ``norm_pos`` and the line is interpolated periodically onto a uniform grid and closed
   (:func:`rt.analysis.geometry.closed_line_from_positions`). More laps average out line
   differences and noise. When no lap is complete, the frames of all (partial, not rewound) laps
   are used together, as long as their union goes round the whole lap — a recording that starts
   mid-lap and ends early in the next still gives a map. A run that starts at a standstill (the
   pit box) then counts only from the first frame above :data:`PIT_EXIT_KMH`, so the pit lane
   beside the track is not averaged into it.
2. ``length_m`` is the polyline length of the closed line.
3. Curvature (1/m, + = left) is the change of heading per metre of the line resampled every
   :data:`CURVATURE_STEP_M` m and smoothed with a Gaussian of σ = :data:`SMOOTH_M` m. A corner is
   a stretch with |κ| > :data:`CORNER_KAPPA` (radius under 400 m), stretches of one sign less than
   :data:`MERGE_GAP_M` apart are one corner, and stretches turning less than
   :data:`MIN_TURN_DEG` are ignored (kinks). The apex is where half the corner's heading change is
   done (the middle of a constant-radius arc); corners are numbered from the start line.

Direction: the heading is measured from +x towards +z, so with x to the right and z forward (the
y-up frame of AC and PCARS seen from above) a heading that grows is a counter-clockwise turn: a
left-hander. This matches :mod:`rt.sim.track` (positive curvature = left).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .frames import MAX_PLOT_POINTS, Frames, downsample, json_num
from .geometry import closed_line_from_positions, cumulative_length, curvature_closed, find_corners
from .laps import Lap, run_laps

VERSION = 1
#: norm_pos bins of the averaged line (≈ 2 m on a 4 km track; the outline returned is downsampled).
BINS = 2000
#: Arc-length step of the curvature computation, m.
CURVATURE_STEP_M = 2.0
#: σ of the Gaussian smoothing before differentiating, m: removes position noise of a few cm
#: (PCARS quantises to 0.25 m) while keeping a 25 m hairpin's full curvature.
SMOOTH_M = 8.0
#: |curvature| above which the line is in a corner, 1/m (radius < 400 m).
CORNER_KAPPA = 1.0 / 400.0
#: Same-direction curvature stretches closer than this are one corner, m.
MERGE_GAP_M = 30.0
#: A stretch turning less than this in all is a kink, not a corner, degrees.
MIN_TURN_DEG = 10.0
#: Largest hole in norm_pos coverage that is bridged by interpolation, laps.
MAX_GAP_LAPS = 0.02
#: A run whose first frame is slower than this (km/h) starts at a standstill (pit box or grid) …
STANDSTILL_KMH = 5.0
#: … and, when the map is made of partial laps, counts from the first frame faster than this
#: (km/h): above the pit-lane speed limit of any series (60–80 km/h), so surely on the track.
PIT_EXIT_KMH = 100.0


@dataclass(frozen=True)
class TrackLine:
    """The closed centre line: ``norm_pos`` grid (0..1, closed), ``x``/``z`` (m), ``length_m``,
    the fraction of bins that had samples, which laps were used and how."""

    norm_pos: np.ndarray
    x: np.ndarray
    z: np.ndarray
    length_m: float
    coverage: float
    source: str
    laps_used: int
    frames_used: int
    pit_frames_skipped: int = 0


def line_from_laps(laps: list[Lap], bins: int = BINS) -> TrackLine:
    """The closed line from good laps, else from the union of all laps that were not rewound.

    Raises ValueError when there is no lap, no position, or the positions do not go round."""
    if not laps:
        raise ValueError("no laps: the runs hold no frames with a known norm_pos")
    good = [lap for lap in laps if lap.good]
    source = "complete laps"
    use = good
    if not use:
        use = [lap for lap in laps if not lap.rewind]
        source = "partial laps"
        if not use:
            raise ValueError("no usable laps: every lap was rewound")
    if not all("pos_x" in lap.frames and "pos_z" in lap.frames for lap in use):
        raise ValueError("no world positions (pos_x, pos_z) in the runs: a track map needs them")
    firsts = [_first_on_track(lap) if source == "partial laps" else 0 for lap in use]
    attempts = [firsts, [0] * len(use)] if any(firsts) else [firsts]
    for k, first in enumerate(attempts):
        norm = np.concatenate([lap.p[f:] for lap, f in zip(use, first)])
        x = np.concatenate([lap.channel("pos_x")[f:] for lap, f in zip(use, first)])
        z = np.concatenate([lap.channel("pos_z")[f:] for lap, f in zip(use, first)])
        ok = np.isfinite(norm) & np.isfinite(x) & np.isfinite(z)
        if not ok.any():
            raise ValueError("no world positions (pos_x, pos_z) with a known norm_pos in the runs")
        try:
            g, lx, lz, cov = closed_line_from_positions(norm, x, z, bins, MAX_GAP_LAPS)
        except ValueError as exc:
            if k + 1 < len(attempts):
                continue  # without the pit-lane frames there is a hole: keep them after all
            raise ValueError(f"cannot close the track from {source}: {exc}") from None
        length = float(np.hypot(np.diff(lx), np.diff(lz)).sum())
        return TrackLine(g, lx, lz, length, cov, source, len(use), int(ok.sum()), int(sum(first)))
    raise AssertionError("unreachable")


def _first_on_track(lap: Lap) -> int:
    """Index (within the lap) of the first frame that surely is on the track.

    A run that starts at a standstill usually starts in the pit box: the pit lane runs beside the
    track with the same norm_pos, and averaging it with the track (or joining it to the track where
    partial laps meet) would draw a phantom chicane. Such a lap's frames count only from the first
    one faster than any pit-lane limit (:data:`PIT_EXIT_KMH`). Other laps start at frame 0."""
    if lap.start != 0 or "speed_kmh" not in lap.frames:
        return 0
    v = np.asarray(lap.channel("speed_kmh"), dtype=np.float64)
    if not (len(v) and v[0] < STANDSTILL_KMH):
        return 0
    fast = np.flatnonzero(v >= PIT_EXIT_KMH)
    return int(fast[0]) if len(fast) else 0


def corners_of_line(norm_pos: np.ndarray, x: np.ndarray, z: np.ndarray) -> list[dict]:
    """Corners of a closed line (``norm_pos`` grid 0..1 and x/z in m, first point repeated last).

    Each corner: ``number`` (from the start line), ``norm_pos``/``x``/``z`` of the apex,
    ``direction`` ('left'/'right'), ``radius_m``, ``angle_deg`` (heading change),
    ``start_norm_pos``/``end_norm_pos`` (where |κ| crosses the threshold)."""
    s, sx, sz, kappa, length = curvature_closed(x, z, CURVATURE_STEP_M, SMOOTH_M)
    ds = length / len(s)
    found = find_corners(kappa, ds, CORNER_KAPPA, MERGE_GAP_M, MIN_TURN_DEG)
    s_line = cumulative_length(x, z)  # arc length at each grid point: maps s back to norm_pos
    out = []
    for c in found:
        np_apex = float(np.interp(s[c.apex], s_line, norm_pos))
        out.append(
            {
                "norm_pos": np_apex,
                "x": float(sx[c.apex]),
                "z": float(sz[c.apex]),
                "direction": "left" if c.turn_rad > 0 else "right",
                "radius_m": c.radius_m,
                "angle_deg": math.degrees(abs(c.turn_rad)),
                "start_norm_pos": float(np.interp(s[c.first], s_line, norm_pos)),
                "end_norm_pos": float(np.interp(s[c.last], s_line, norm_pos)),
            }
        )
    out.sort(key=lambda c: c["norm_pos"])
    for i, c in enumerate(out):
        c["number"] = i + 1
    return out


def total_turn_deg(x: np.ndarray, z: np.ndarray) -> float:
    """Signed heading change round a closed line, degrees (+360 counter-clockwise = a left-handed
    lap, −360 clockwise)."""
    s, _, _, kappa, length = curvature_closed(x, z, CURVATURE_STEP_M, SMOOTH_M)
    return math.degrees(float(kappa.sum()) * length / len(s))


def analyze(runs: list[Frames]) -> dict:
    """The track map of the runs' laps (see the module docstring).

    Returns a JSON-ready dict: ``x``, ``z`` (m) and ``norm_pos`` (laps) of the closed outline
    (≤ 2000 points, first point repeated last), ``length_m``, ``corners`` (see
    :func:`corners_of_line`) and ``summary``. Raises ValueError for no runs, no usable laps, no
    positions, or positions that do not go round the lap.
    """
    if not runs or not any(len(fr) for fr in runs):
        raise ValueError("track_map needs at least one run with frames")
    laps = run_laps(runs).pick_placed()
    line = line_from_laps(laps)
    corners = corners_of_line(line.norm_pos, line.x, line.z)
    idx = downsample(len(line.x), MAX_PLOT_POINTS)  # keeps the first and the (closing) last point
    turn = total_turn_deg(line.x, line.z)
    return {
        "x": json_num(line.x[idx]),
        "z": json_num(line.z[idx]),
        "norm_pos": json_num(line.norm_pos[idx]),
        "length_m": json_num(line.length_m, 2),
        "corners": [
            {
                "number": c["number"],
                "norm_pos": json_num(c["norm_pos"], 5),
                "x": json_num(c["x"], 2),
                "z": json_num(c["z"], 2),
                "direction": c["direction"],
                "radius_m": json_num(c["radius_m"], 1),
                "angle_deg": json_num(c["angle_deg"], 1),
                "start_norm_pos": json_num(c["start_norm_pos"], 5),
                "end_norm_pos": json_num(c["end_norm_pos"], 5),
            }
            for c in corners
        ],
        "summary": {
            "length_m": json_num(line.length_m, 2),
            "corners": len(corners),
            "left_corners": sum(c["direction"] == "left" for c in corners),
            "right_corners": sum(c["direction"] == "right" for c in corners),
            "rotation": "counter-clockwise" if turn > 0 else "clockwise",
            "total_turn_deg": json_num(turn, 1),
            "source": line.source,
            "laps_used": line.laps_used,
            "laps_complete": sum(lap.good for lap in laps),
            "frames_used": line.frames_used,
            "pit_frames_skipped": line.pit_frames_skipped,
            "coverage": json_num(line.coverage, 3),
            "bins": BINS,
            "corner_threshold_per_m": json_num(CORNER_KAPPA, 6),
        },
    }
