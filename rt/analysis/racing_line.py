"""Racing line: every lap's line on one grid, and how far each strays from the best lap's.

How it is made
--------------
1. Good laps (complete, no rewind) of all runs are resampled on one grid of :data:`GRID_POINTS`
   lap positions (``norm_pos`` 0 .. 1 − 1/n): x, z (m) and speed (km/h) are interpolated
   linearly in each lap's own lap-relative position. The game's ``norm_pos`` is the projection
   onto its track spline, so points of two laps at the same grid position lie side by side
   across the track.
2. The reference is the best lap: the fastest valid good lap (ties → the first; the first good lap
   when the game marked them all invalid).
3. The signed lateral deviation of a lap at a grid point is its offset from the reference point
   along the reference line's left normal (m, + = left of the reference, as the simulator's
   ``line_offset_m``). The normal comes from the reference line's tangent over ±
   :data:`TANGENT_HALF_SPAN` grid points (a few metres, so position noise does not turn it).
4. Per lap: ``deviation_m`` = {``mean_abs``, ``max`` (largest |deviation|), ``signed_mean``}.
5. ``hotspots``: the grid points where some lap strays furthest from the reference (the
   largest |deviation| over all laps), at least :data:`HOTSPOT_SEPARATION` of a lap apart,
   :data:`HOTSPOTS` of them at most.

Arrays in the result are downsampled so the JSON stays reasonable with many laps (at most
:data:`OUTPUT_POINTS` points per array, fewer when there are many laps).
"""

from __future__ import annotations

import numpy as np

from .frames import Frames, json_num
from .laps import Lap, Laps, run_laps

VERSION = 1
#: Grid points per lap on which lines are compared.
GRID_POINTS = 1000
#: Most points per returned array (the grid is downsampled for the JSON) …
OUTPUT_POINTS = 1000
#: … and about the most numbers per result in all laps' arrays together (x, z, speed, lateral).
OUTPUT_BUDGET = 100_000
#: Half span of the central difference giving the reference line's tangent, grid points.
TANGENT_HALF_SPAN = 2
#: Number of hotspots returned.
HOTSPOTS = 5
#: Minimum distance between two hotspots, laps.
HOTSPOT_SEPARATION = 0.02


def grid(n: int = GRID_POINTS) -> np.ndarray:
    """The comparison grid: n lap positions 0, 1/n, …, 1 − 1/n (laps)."""
    return np.arange(n) / n


def resample_lap(p: np.ndarray, values: list[np.ndarray], g: np.ndarray) -> list[np.ndarray]:
    """Each of ``values`` (per frame) interpolated at lap positions ``g`` from the frames' lap
    positions ``p`` (laps; NaN skipped). Frames are ordered by ``p`` first, so a frame that
    arrives late does not fold the line back. The lap is closed: grid positions before its first
    frame or after its last are interpolated across the line between the two (at 10 Hz, ACC's
    rate, a lap's first frame can lie a whole grid step or more past the line, and held end values
    would leave no tangent there)."""
    p = np.asarray(p, dtype=np.float64)
    out = []
    for v in values:
        v = np.asarray(v, dtype=np.float64)
        ok = np.isfinite(p) & np.isfinite(v)
        if ok.sum() < 2:
            out.append(np.full(len(g), np.nan))
            continue
        order = np.argsort(p[ok], kind="stable")
        out.append(np.interp(g, p[ok][order], v[ok][order], period=1.0))
    return out


def left_normals(
    x: np.ndarray, z: np.ndarray, half_span: int = TANGENT_HALF_SPAN
) -> tuple[np.ndarray, np.ndarray]:
    """Unit left normals (nx, nz) of a closed line sampled at points (x, z) (not repeated at the
    end): the tangent (tx, tz) is the chord from point i − half_span to i + half_span, and the
    left normal is (−tz, tx) — the driver's left with the heading measured from +x towards +z."""
    tx = np.roll(x, -half_span) - np.roll(x, half_span)
    tz = np.roll(z, -half_span) - np.roll(z, half_span)
    norm = np.hypot(tx, tz)
    norm[norm == 0] = np.nan
    return -tz / norm, tx / norm


def lateral_deviation(ref_x: np.ndarray, ref_z: np.ndarray, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Signed lateral deviation of the points (x, z) from the reference points (ref_x, ref_z) at
    the same grid positions, along the reference's left normal, m (+ = left of the reference)."""
    nx, nz = left_normals(ref_x, ref_z)
    return (x - ref_x) * nx + (z - ref_z) * nz


def _output_indices(n_grid: int, n_laps: int) -> np.ndarray:
    """Grid indices kept in the JSON: ≤ OUTPUT_POINTS and within OUTPUT_BUDGET numbers overall."""
    per_lap = max(100, min(OUTPUT_POINTS, OUTPUT_BUDGET // max(1, 4 * n_laps)))
    if n_grid <= per_lap:
        return np.arange(n_grid)
    return np.unique(np.linspace(0, n_grid - 1, per_lap).round().astype(np.int64))


def hotspots(
    dev: np.ndarray,
    g: np.ndarray,
    count: int = HOTSPOTS,
    separation: float = HOTSPOT_SEPARATION,
):
    """The grid indices and lap rows of the largest |deviation| in ``dev`` (laps × grid), each at
    least ``separation`` (laps, round the line) from those before: list of (grid index, row)."""
    if dev.size == 0:
        return []
    a = np.abs(dev)
    a = np.where(np.isfinite(a), a, -1.0)
    row = np.argmax(a, axis=0)
    peak = a[row, np.arange(a.shape[1])]
    out = []
    alive = peak >= 0
    for _ in range(count):
        if not alive.any():
            break
        i = int(np.argmax(np.where(alive, peak, -np.inf)))
        out.append((i, int(row[i])))
        d = np.abs(g - g[i])
        alive &= np.minimum(d, 1.0 - d) >= separation
    return out


def _resampled_lines(laps: list[Lap], g: np.ndarray) -> list[tuple[Lap, np.ndarray, np.ndarray, np.ndarray]]:
    """(lap, x m, z m, speed km/h) of each lap on the grid ``g`` (laps); laps with a hole in their
    positions the grid cannot bridge are left out."""
    lines = []
    for lap in laps:
        x, z, v = resample_lap(lap.p, [lap.channel("pos_x"), lap.channel("pos_z"), lap.channel("speed_kmh")], g)
        if np.isfinite(x).all() and np.isfinite(z).all():
            lines.append((lap, x, z, v))
    return lines


def _lap_out(lap: Lap, x, z, v, d, idx: np.ndarray, reference: bool) -> dict:
    """One entry of ``laps``: the lap's line (m), speed (km/h) and lateral deviation ``d`` (m) at
    the output indices ``idx``, and its deviation statistics over the full grid, m."""
    return {
        "lap": lap.lap,
        "run_id": lap.run_id,
        "lap_time_ms": json_num(lap.time_ms, 1),
        "reference": reference,
        "x": json_num(x[idx]),
        "z": json_num(z[idx]),
        "speed_kmh": json_num(v[idx]),
        "lateral_m": json_num(d[idx]),
        "deviation_m": {
            "mean_abs": json_num(np.mean(np.abs(d)), 3),
            "max": json_num(np.max(np.abs(d)), 3),
            "signed_mean": json_num(np.mean(d), 3),
        },
    }


def _hotspots_out(others: np.ndarray, other_laps: list[Lap], g, rx, rz) -> list[dict]:
    """The ``hotspots`` entries: where (grid ``g`` in laps, reference line ``rx``/``rz`` in m) the
    other laps' deviations ``others`` (m, one row per lap) are largest."""
    return [
        {
            "norm_pos": json_num(g[gi], 4),
            "x": json_num(rx[gi], 2),
            "z": json_num(rz[gi], 2),
            "deviation_m": json_num(others[row, gi], 3),
            "lap": other_laps[row].lap,
            "run_id": other_laps[row].run_id,
        }
        for gi, row in hotspots(others, g)
    ]


def analyze(runs: list[Frames]) -> dict:
    """Racing lines of the runs' good laps against the best lap (see the module docstring).

    Returns a JSON-ready dict: ``reference_lap`` {``lap``, ``run_id``, ``time_ms``},
    ``norm_pos`` (the output grid, laps), ``laps`` [{``lap``, ``run_id``, ``lap_time_ms``,
    ``reference``, ``x``, ``z`` (m), ``speed_kmh``, ``lateral_m`` (signed deviation, m, + = left),
    ``deviation_m`` {``mean_abs``, ``max``, ``signed_mean``} (m, over the full grid)}],
    ``hotspots`` [{``norm_pos``, ``x``, ``z`` (reference line, m), ``deviation_m`` (signed),
    ``lap``, ``run_id``}] and ``summary``. Raises ValueError without a good lap with positions.
    """
    if not runs or not any(len(fr) for fr in runs):
        raise ValueError("racing_line needs at least one run with frames")
    laps = run_laps(runs).pick_placed()
    good = [lap for lap in laps if lap.good and "pos_x" in lap.frames and "pos_z" in lap.frames]
    if not good:
        raise ValueError(
            f"racing_line needs a complete lap (line to line, no rewind) with positions; "
            f"the runs hold {len(laps)} lap(s), none complete"
        )
    g = grid()
    lines = _resampled_lines(good, g)
    if not lines:
        raise ValueError("racing_line needs positions (pos_x, pos_z) in a complete lap, and none has them")
    # The fastest valid lap; the first good one when none is valid (all marked by the game).
    ref = Laps(lap for lap, *_ in lines).pick_fastest() or lines[0][0]
    ref_i = next(i for i, (lap, *_) in enumerate(lines) if lap is ref)
    _, rx, rz, _ = lines[ref_i]
    dev = np.vstack([lateral_deviation(rx, rz, x, z) for _, x, z, _ in lines])

    idx = _output_indices(len(g), len(lines))
    laps_out = [_lap_out(lap, x, z, v, dev[i], idx, i == ref_i) for i, (lap, x, z, v) in enumerate(lines)]
    others = np.delete(dev, ref_i, axis=0)
    other_laps = [lap for i, (lap, *_) in enumerate(lines) if i != ref_i]
    spots = _hotspots_out(others, other_laps, g, rx, rz)
    mean_abs = float(np.mean(np.abs(others))) if others.size else 0.0
    return {
        "reference_lap": {
            "lap": ref.lap,
            "run_id": ref.run_id,
            "time_ms": json_num(ref.time_ms, 1),
        },
        "norm_pos": json_num(g[idx]),
        "laps": laps_out,
        "hotspots": spots,
        "summary": {
            "laps": len(lines),
            "laps_skipped": len(laps) - len(lines),
            "reference_lap": ref.lap,
            "reference_run_id": ref.run_id,
            "reference_time_ms": json_num(ref.time_ms, 1),
            "grid_points": len(g),
            "output_points": len(idx),
            "mean_abs_deviation_m": json_num(mean_abs, 3),
            "max_deviation_m": json_num(float(np.max(np.abs(others))) if others.size else 0.0, 3),
            "most_different_lap": (
                None
                if not other_laps
                else {
                    "lap": other_laps[int(np.argmax(np.mean(np.abs(others), axis=1)))].lap,
                    "run_id": other_laps[int(np.argmax(np.mean(np.abs(others), axis=1)))].run_id,
                }
            ),
        },
    }
