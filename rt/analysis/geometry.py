"""Shared helpers for the lap-geometry analyses (braking, track map, racing line).

Helpers, all vectorised with numpy (loops run per lap or per corner, never per frame):

* **Laps** — live in :mod:`rt.analysis.laps` (the one lap model); :func:`run_laps`,
  :func:`best_lap`, :func:`unwrapped_position` and :class:`Lap` are re-exported here, as are
  :func:`run_clock` and :func:`paused_steps` from :mod:`rt.analysis.clock`.
* **Closed curves** — :func:`closed_line_from_positions` (the mean line of many laps, binned by
  ``norm_pos``), :func:`polyline_length`, :func:`resample_closed`, :func:`curvature_closed` and
  :func:`find_corners` (stretches of curvature above a threshold).
* **Signals** — :func:`windowed_slope`, a least-squares derivative over a time window (robust to
  receive-time jitter, unlike neighbour differences).

Units: positions and lengths in metres, curvature in 1/m (+ = left), times in seconds,
``norm_pos``/``p`` in laps (0..1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The lap model and the run clock have their own modules; callers and tests still import them here.
from .clock import paused_steps, run_clock  # noqa: F401
from .laps import Lap, best_lap, run_id_of, run_laps, unwrapped_position  # noqa: F401


# ---------------------------------------------------------------------------------------- closed curves
def closed_line_from_positions(
    norm: np.ndarray,
    x: np.ndarray,
    z: np.ndarray,
    bins: int = 1000,
    max_gap_laps: float = 0.02,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A closed line through world positions, averaged per ``norm_pos`` bin.

    Args:
        norm: position along the lap of each sample, laps (taken modulo 1).
        x, z: world position of each sample, m.
        bins: number of ``norm_pos`` bins (and of points of the returned line, before closing).
        max_gap_laps: longest stretch without samples that is bridged by interpolation, laps.

    Returns:
        ``(g, lx, lz, coverage)``: ``g`` the grid 0, 1/bins, …, 1 (bins + 1 points, the last
        repeats the first so the line is closed), ``lx``/``lz`` the line, m, and ``coverage`` the
        fraction of bins that held samples.

    Each bin's mean position is placed at the bin's mean ``norm_pos`` (not its centre), then the
    line is interpolated periodically onto the grid, so binning adds no along-track bias and empty
    bins (packet loss) are bridged. Raises ValueError when the samples do not go round the lap.
    """
    norm = np.mod(np.asarray(norm, dtype=np.float64), 1.0)
    x = np.asarray(x, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    ok = np.isfinite(norm) & np.isfinite(x) & np.isfinite(z)
    norm, x, z = norm[ok], x[ok], z[ok]
    if len(norm) < 3:
        raise ValueError("no positions with a known norm_pos to draw the track from")
    b = np.minimum((norm * bins).astype(np.int64), bins - 1)
    cnt = np.bincount(b, minlength=bins).astype(np.float64)
    filled = cnt > 0
    c = cnt[filled]
    u = np.bincount(b, norm, bins)[filled] / c
    mx = np.bincount(b, x, bins)[filled] / c
    mz = np.bincount(b, z, bins)[filled] / c
    coverage = float(filled.mean())
    gaps = np.diff(np.concatenate((u, [u[0] + 1.0])))
    if gaps.max() > max_gap_laps:
        k = int(np.argmax(gaps))
        raise ValueError(
            f"positions do not go round the lap: nothing between norm_pos {u[k]:.3f} and "
            f"{(u[k] + gaps[k]) % 1.0:.3f} (coverage {coverage:.0%})"
        )
    g = np.arange(bins + 1) / bins
    lx = np.interp(g, u, mx, period=1.0)
    lz = np.interp(g, u, mz, period=1.0)
    lx[-1], lz[-1] = lx[0], lz[0]
    return g, lx, lz, coverage


def polyline_length(x: np.ndarray, z: np.ndarray) -> float:
    """Length of the polyline through (x, z), m (close it by repeating the first point)."""
    return float(np.hypot(np.diff(x), np.diff(z)).sum())


def cumulative_length(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Distance along the polyline at each point, m (0 at the first point)."""
    return np.concatenate(([0.0], np.cumsum(np.hypot(np.diff(x), np.diff(z)))))


def resample_closed(
    x: np.ndarray, z: np.ndarray, step_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A closed polyline (first point repeated last) resampled at equal arc-length steps.

    Returns ``(s, rx, rz, length)``: arc length of each new point (m, 0 .. length − step, not
    closed), the points, and the polyline length, m. The step is adjusted so a whole number fits.
    """
    s_in = cumulative_length(x, z)
    length = float(s_in[-1])
    n = max(8, round(length / step_m))
    s = np.arange(n) * (length / n)
    return s, np.interp(s, s_in, x), np.interp(s, s_in, z), length


def smooth_periodic(values: np.ndarray, sigma_samples: float) -> np.ndarray:
    """Gaussian smoothing of a periodic sequence (σ in samples; 0 returns a copy)."""
    v = np.asarray(values, dtype=np.float64)
    if sigma_samples <= 0:
        return v.copy()
    half = math.ceil(4.0 * sigma_samples)
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma_samples) ** 2)
    k /= k.sum()
    n = len(v)
    reps = half // n + 1  # a kernel longer than the sequence wraps round more than once
    padded = np.concatenate([v] * (2 * reps + 1))
    out = np.convolve(padded, k, mode="same")
    return out[reps * n : reps * n + n]


def curvature_closed(x: np.ndarray, z: np.ndarray, step_m: float = 2.0, smooth_m: float = 8.0):
    """Signed curvature of a closed line, 1/m (+ = left: heading turning from +x towards +z).

    The line (first point repeated last) is resampled every ``step_m`` m, smoothed with a
    Gaussian of σ = ``smooth_m`` m (so position noise of a few cm does not become curvature),
    then the heading θ = atan2(dz, dx) is differentiated centrally: κ = dθ/ds.

    Returns ``(s, rx, rz, kappa, length)``: arc length (m) of each resampled point, the smoothed
    points, the curvature there, and the polyline length of the input, m.
    """
    s, rx, rz, length = resample_closed(x, z, step_m)
    ds = length / len(s)
    sx = smooth_periodic(rx, smooth_m / ds)
    sz = smooth_periodic(rz, smooth_m / ds)
    dx = np.roll(sx, -1) - np.roll(sx, 1)
    dz = np.roll(sz, -1) - np.roll(sz, 1)
    theta = np.arctan2(dz, dx)
    dth = np.roll(theta, -1) - np.roll(theta, 1)
    dth = (dth + math.pi) % (2.0 * math.pi) - math.pi  # the heading difference, wrapped to ±π
    kappa = dth / (2.0 * ds)
    return s, sx, sz, kappa, length


@dataclass(frozen=True)
class CornerStretch:
    """A corner found on a closed line: points ``first..last`` (inclusive, may wrap round).

    ``apex`` is the point where half of the corner's heading change is done (the middle of a
    constant-radius arc; robust where the curvature is a flat plateau). ``turn_rad`` is the
    signed heading change (+ = left), ``radius_m`` 1/|κ| averaged over the part of the stretch
    within 80 % of its peak curvature.
    """

    first: int
    last: int
    apex: int
    turn_rad: float
    radius_m: float
    peak_kappa: float


def find_corners(
    kappa: np.ndarray,
    ds: float,
    threshold: float = 1.0 / 400.0,
    merge_gap_m: float = 30.0,
    min_turn_deg: float = 10.0,
) -> list[CornerStretch]:
    """Corners of a closed line from its curvature (1/m, sampled every ``ds`` m), in order of points.

    A corner is a contiguous stretch where |κ| > ``threshold`` with one sign; stretches of the
    same sign less than ``merge_gap_m`` apart are one corner (a double apex, or a dip of the
    curvature below the threshold mid-corner); stretches turning less than ``min_turn_deg`` in
    all are kinks, not corners.
    """
    kappa = np.asarray(kappa, dtype=np.float64)
    n = len(kappa)
    sign = np.where(kappa > threshold, 1, np.where(kappa < -threshold, -1, 0))
    if not sign.any():
        return []
    if (sign == sign[0]).all():
        # Curved everywhere the same way (a circle): one corner round the whole lap.
        stretches = [(0, n - 1, int(sign[0]))]
    else:
        # Rotate so the sequence starts on a change of sign: no stretch then crosses the end.
        change = np.flatnonzero(sign != np.roll(sign, 1))
        shift = int(change[0])
        rs = np.roll(sign, -shift)
        edges = np.flatnonzero(np.diff(rs) != 0) + 1
        starts = np.concatenate(([0], edges))
        ends = np.concatenate((edges, [n])) - 1
        stretches = [
            ((a + shift) % n, (e + shift) % n, int(rs[a]))
            for a, e in zip(starts.tolist(), ends.tolist())
            if rs[a] != 0
        ]
        # Merge same-sign neighbours separated by a short gap (in order round the lap).
        merged: list[list[int]] = []
        for a, e, sg in stretches:
            if merged and merged[-1][2] == sg and ((a - merged[-1][1]) % n) * ds <= merge_gap_m:
                merged[-1][1] = e
            else:
                merged.append([a, e, sg])
        if (
            len(merged) > 1
            and merged[0][2] == merged[-1][2]
            and ((merged[0][0] - merged[-1][1]) % n) * ds <= merge_gap_m
        ):
            merged[0][0] = merged[-1][0]
            merged.pop()
        stretches = [tuple(m) for m in merged]
    out: list[CornerStretch] = []
    for a, e, sg in stretches:
        idx = np.arange(a, a + ((e - a) % n) + 1) % n
        k = kappa[idx]
        turn = float(k.sum() * ds)
        if abs(turn) < math.radians(min_turn_deg):
            continue
        cum = np.cumsum(np.abs(k))
        apex = int(idx[int(np.searchsorted(cum, 0.5 * cum[-1]))])
        ak = np.abs(k)
        top = ak[ak >= 0.8 * ak.max()]
        out.append(CornerStretch(int(a), int(e), apex, turn, float(1.0 / top.mean()), float(kappa[apex])))
    return out


# ---------------------------------------------------------------------------------------- signals
def windowed_slope(t: np.ndarray, v: np.ndarray, half_window: float) -> np.ndarray:
    """d v/d t at every sample from a least-squares line over samples within ±``half_window`` s.

    Unlike differences of neighbours this is not thrown off by receive-time jitter or packets
    arriving in bursts: each slope is a fit over all samples in the window (at least 2). Sums are
    taken relative to the first sample so the cumulative sums keep their precision; call it on
    short stretches (a braking zone), not on an hour of frames at once. NaN where the window holds
    fewer than two distinct times or any NaN value.
    """
    t = np.asarray(t, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    n = len(t)
    if n < 2:
        return np.full(n, np.nan)
    tr = t - t[0]
    vr = v - (v[0] if math.isfinite(v[0]) else 0.0)
    lo = np.searchsorted(tr, tr - half_window, side="left")
    hi = np.searchsorted(tr, tr + half_window, side="right")

    def csum(a):
        return np.concatenate(([0.0], np.cumsum(a)))

    S1 = csum(np.ones(n))
    St, Sv, Stt, Stv = csum(tr), csum(vr), csum(tr * tr), csum(tr * vr)
    cnt = S1[hi] - S1[lo]
    st, sv = St[hi] - St[lo], Sv[hi] - Sv[lo]
    stt, stv = Stt[hi] - Stt[lo], Stv[hi] - Stv[lo]
    den = cnt * stt - st * st
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (cnt * stv - st * sv) / den
    slope[~(den > 1e-12 * np.maximum(cnt * stt, 1e-300)) | (cnt < 2)] = np.nan
    return slope
