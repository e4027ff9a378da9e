"""Shared helpers for the lap-geometry analyses (braking, track map, racing line).

Three groups, all vectorised with numpy (loops run per lap or per corner, never per frame):

* **Laps** — :func:`split_laps` cuts each run into laps at ``lap_count`` steps (or, where
  ``lap_count`` is unknown, where ``norm_pos`` wraps from > 0.9 to < 0.1) and says which laps are
  complete (seen from line to line) and which were rewound. Each :class:`Lap` carries its
  lap-relative position ``p`` (``norm_pos`` unwrapped so it runs from ≈0 to ≈1 within the lap,
  even when the game's position wraps a frame before or after its lap counter steps).
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
from dataclasses import dataclass, field

import numpy as np

from .frames import Frames

#: A lap-relative position within this far of the line (laps) counts as "on the line" at the
#: first frame of a run (the simulator starts a run exactly on the line with a flying lap).
START_ON_LINE_LAPS = 0.002
#: A backwards step of ``norm_pos`` larger than this (laps, ≈ 10–30 m) is a rewind, not noise.
REWIND_STEP_LAPS = 0.005
#: A drop of the game's current-lap timer larger than this within one lap is a rewind, ms.
REWIND_LAP_TIME_MS = 1000
#: A norm_pos wrap this close (laps) to a lap_count step is the same line crossing.
COUNTER_NEAR_WRAP_LAPS = 0.1
#: A complete lap must have positions from below this to above 1 − this (laps).
COVER_EDGE_LAPS = 0.05
#: The game's last-lap time is looked for within this long after the line, s …
GAME_TIME_WINDOW_S = 2.0
#: … and accepted when it agrees with the measured crossing-to-crossing time to within this, ms.
GAME_TIME_AGREE_MS = 250.0


# ---------------------------------------------------------------------------------------- laps
@dataclass
class Lap:
    """One lap of one run: frames ``start:stop`` of ``runs[run]``.

    Attributes:
        run: index of the run in the list given to :func:`split_laps`.
        run_id: ``meta["run_id"]`` of the run (else its index as a string).
        lap: lap number, 1-based: ``lap_count + 1`` where the game counts laps, else the
            position of the lap in its run.
        start, stop: frame slice of the lap in its run.
        complete: seen from line to line, with positions covering the whole lap.
        rewind: the position or the lap timer jumped backwards inside the lap.
        time_ms: lap time, ms (complete laps only, else None): the game's ``last_lap_ms`` when it
            agrees with the measured time, else the measured line-to-line time.
        time_source: ``'game'`` or ``'measured'`` (None when there is no time).
        whole: the run's unwrapped position (:func:`unwrapped_position`) minus ``whole`` is ``p``.
        p: lap-relative position, laps (≈0 at the start line, ≈1 at the finish; may go a hair
            below 0 or above 1 around the line; NaN where ``norm_pos`` is unknown).
        t: time of each frame, s since the run's first frame.
        frames: the run the lap belongs to.
    """

    run: int
    run_id: str
    lap: int
    start: int
    stop: int
    complete: bool
    rewind: bool
    time_ms: float | None
    time_source: str | None
    whole: int
    p: np.ndarray = field(repr=False)
    t: np.ndarray = field(repr=False)
    frames: Frames = field(repr=False)

    @property
    def good(self) -> bool:
        """A complete lap without a rewind: the only kind used as a reference or for the map."""
        return self.complete and not self.rewind

    def channel(self, name: str) -> np.ndarray:
        """The lap's slice of a run channel (a view)."""
        return self.frames[name][self.start : self.stop]

    def __len__(self) -> int:
        return self.stop - self.start


def run_id_of(frames: Frames, index: int) -> str:
    """``meta["run_id"]`` of a run, else its index in the analyzed list (as a string)."""
    rid = frames.meta.get("run_id")
    return str(index) if rid is None else str(rid)


def unwrapped_position(norm_pos: np.ndarray) -> np.ndarray:
    """``norm_pos`` (laps, 0..1) made continuous over a run, laps (NaN where unknown).

    Every step from > 0.9 to < 0.1 adds a lap, every step from < 0.1 to > 0.9 takes one away
    (reversing over the line); other steps are kept as they are, so a rewind stays visible as a
    backwards jump instead of being mistaken for a wrap.
    """
    norm = np.asarray(norm_pos, dtype=np.float64)
    out = np.full(norm.shape, np.nan)
    fin = np.isfinite(norm)
    v = norm[fin]
    if len(v) == 0:
        return out
    fwd = (v[:-1] > 0.9) & (v[1:] < 0.1)
    back = (v[:-1] < 0.1) & (v[1:] > 0.9)
    turns = np.concatenate(([0], np.cumsum(fwd.astype(np.int64) - back.astype(np.int64))))
    out[fin] = v + turns
    return out


def split_laps(runs: list[Frames]) -> list[Lap]:
    """All laps of all runs, in run order then time order (see :class:`Lap`).

    A new lap starts at the first frame of a run and wherever ``lap_count`` changes between two
    frames that both know it; where ``lap_count`` is unknown (-1) on either side, or does not
    step near the wrap (a stuck counter), wherever ``norm_pos`` wraps from > 0.9 to < 0.1. A lap starts "at the line" if its start is such a
    step of +1 lap (a jump of ``lap_count`` by anything else — a restart — does not count) or if
    it is the first lap of a run and its first position is within :data:`START_ON_LINE_LAPS` of
    the line; it is complete if it starts and ends at the line and its positions cover the lap.
    """
    laps: list[Lap] = []
    for r, fr in enumerate(runs):
        n = len(fr)
        if n == 0 or "norm_pos" not in fr:
            continue
        rid = run_id_of(fr, r)
        # The run's clock (the game's timer where it runs): receive times come in bursts and
        # stalls, and a simulator or replay faster than real time compresses them.
        t, _clock = run_clock(fr)
        p_run = unwrapped_position(fr["norm_pos"])
        lc = np.asarray(fr["lap_count"], dtype=np.int64) if "lap_count" in fr else np.full(n, -1, np.int64)
        known = lc >= 0

        # Lap boundaries: index of the first frame of each new lap, and whether it is a line crossing.
        both = known[1:] & known[:-1]
        step_lc = both & (lc[1:] != lc[:-1])
        line_lc = both & (lc[1:] == lc[:-1] + 1)
        fin_idx = np.flatnonzero(np.isfinite(p_run))
        pf = p_run[fin_idx]
        # Frames where the unwrapped position passes a whole lap (a wrap of norm_pos).
        wrap_at = fin_idx[1:][np.floor(pf[1:]) > np.floor(pf[:-1])] if len(pf) > 1 else np.zeros(0, np.int64)
        # A wrap is a boundary where lap_count can't say, or where the counter does not step
        # within COUNTER_NEAR_WRAP_LAPS of it (a counter stuck at one value, as in some practice
        # sessions); near a counter step it is the same line crossing, told once by the counter.
        step_at = np.flatnonzero(step_lc) + 1
        unsure = ~(known[wrap_at] & known[wrap_at - 1])
        if len(step_at) and len(wrap_at):
            # The counter steps just before and just after each wrap (in frame order), and how
            # far along the lap each is from the wrap.
            p_step = _ffill(p_run)[step_at]
            after = np.minimum(np.searchsorted(step_at, wrap_at), len(step_at) - 1)
            before = np.maximum(after - 1, 0)
            near = np.minimum(np.abs(p_step[after] - p_run[wrap_at]), np.abs(p_step[before] - p_run[wrap_at]))
            lonely = ~(near < COUNTER_NEAR_WRAP_LAPS)
        else:
            lonely = np.ones(len(wrap_at), bool)
        counter_stuck = bool((lonely & ~unsure).any())
        wrap_at = wrap_at[unsure | lonely]
        bounds = np.concatenate((np.flatnonzero(step_lc) + 1, wrap_at))
        is_line = np.concatenate((line_lc[step_lc], np.ones(len(wrap_at), bool)))
        order = np.argsort(bounds, kind="stable")
        bounds, is_line = bounds[order], is_line[order]
        if len(bounds) > 1:  # a wrap and a lap_count step on the same frame: one boundary
            keep = np.concatenate(([True], np.diff(bounds) > 0))
            bounds, is_line = bounds[keep], is_line[keep]

        # Rewinds, marked on the frame after the backwards step (cumulative count → O(1) per lap).
        rew = np.zeros(n, np.int64)
        if len(pf) > 1:
            rew[fin_idx[1:][np.diff(pf) < -REWIND_STEP_LAPS]] = 1
        if "lap_time_ms" in fr:
            lt = np.asarray(fr["lap_time_ms"], dtype=np.int64)
            drop = (lt[1:] >= 0) & (lt[:-1] >= 0) & (lt[:-1] - lt[1:] > REWIND_LAP_TIME_MS)
            # The timer resets to ≈0 at the line (maybe a frame before or after the lap counter
            # steps): that is no rewind; a rewind puts it back to an earlier, non-zero time.
            drop &= lt[1:] > REWIND_LAP_TIME_MS
            if known.any():
                drop &= lc[1:] == lc[:-1]
            rew[1:][drop] = 1
        rew_cum = np.concatenate(([0], np.cumsum(rew)))

        starts = np.concatenate(([0], bounds))
        stops = np.concatenate((bounds, [n]))
        start_line = np.concatenate(([False], is_line))
        end_line = np.concatenate((is_line, [False]))
        counter = 0
        for i, (a, b) in enumerate(zip(starts.tolist(), stops.tolist())):
            counter += 1
            ps = p_run[a:b]
            fin = np.isfinite(ps)
            if not fin.any():
                continue
            whole = math.floor(float(np.median(ps[fin])))
            p = ps - whole
            pmin, pmax = float(p[fin].min()), float(p[fin].max())
            at_line_start = bool(start_line[i]) or (i == 0 and float(p[fin][0]) <= START_ON_LINE_LAPS)
            complete = (
                at_line_start
                and bool(end_line[i])
                and pmin <= COVER_EDGE_LAPS
                and pmax >= 1 - COVER_EDGE_LAPS
            )
            rewind = bool(rew_cum[b] - rew_cum[a + 1] > 0) if b > a + 1 else False
            mid = (a + b) // 2
            number = int(lc[mid]) + 1 if known[mid] and not counter_stuck else counter
            time_ms, source = None, None
            if complete:
                time_ms, source = _lap_time_ms(fr, t, p_run, a, b, whole)
            laps.append(
                Lap(
                    r,
                    rid,
                    number,
                    a,
                    b,
                    complete,
                    rewind,
                    time_ms,
                    source,
                    whole,
                    p,
                    t[a:b],
                    fr,
                )
            )
    return laps


def _ffill(values: np.ndarray) -> np.ndarray:
    """NaNs replaced by the last finite value before them (leading NaNs by the first finite one)."""
    fin = np.isfinite(values)
    if fin.all() or not fin.any():
        return values
    idx = np.where(fin, np.arange(len(values)), 0)
    np.maximum.accumulate(idx, out=idx)
    out = values[idx]
    out[: int(np.argmax(fin))] = values[int(np.argmax(fin))]
    return out


def _crossing_time(t: np.ndarray, p: np.ndarray, lo: int, hi: int, level: float) -> float:
    """Time (s) at which the unwrapped position ``p`` reaches ``level`` within frames lo..hi,
    interpolated between the frames either side (extrapolated from the first two frames when the
    window starts past the level, e.g. a run that starts a hair after the line)."""
    lo, hi = max(lo, 0), min(hi, len(p))
    tt, pp = t[lo:hi], p[lo:hi]
    fin = np.isfinite(pp)
    tt, pp = tt[fin], pp[fin]
    if len(pp) == 0:
        return math.nan
    if len(pp) == 1:
        return float(tt[0])
    j = int(np.argmax(pp >= level)) if (pp >= level).any() else len(pp) - 1
    j = min(max(j, 1), len(pp) - 1)
    dp = pp[j] - pp[j - 1]
    if dp <= 0:
        return float(tt[j])
    return float(tt[j - 1] + (level - pp[j - 1]) / dp * (tt[j] - tt[j - 1]))


def _lap_time_ms(fr: Frames, t: np.ndarray, p_run: np.ndarray, a: int, b: int, whole: int):
    """(time_ms, source) of the complete lap in frames a..b whose positions lie in [whole, whole+1]."""
    t0 = _crossing_time(t, p_run, a - 8, a + 8, float(whole))
    t1 = _crossing_time(t, p_run, b - 8, b + 8, float(whole + 1))
    measured = (t1 - t0) * 1000.0
    if not math.isfinite(measured) or measured <= 0:
        measured = (t[b - 1] - t[a]) * 1000.0
    if "last_lap_ms" in fr and b < len(fr):
        # The game's own time: whichever last-lap value shown just after the line is closest to
        # the measured time (the value may update a frame late, so the stale one is seen too).
        end = int(np.searchsorted(t, t[b] + GAME_TIME_WINDOW_S, side="right"))
        vals = np.asarray(fr["last_lap_ms"][b:end], dtype=np.float64)
        vals = vals[vals > 0]
        if len(vals):
            best = vals[np.argmin(np.abs(vals - measured))]
            if abs(best - measured) <= GAME_TIME_AGREE_MS:
                return float(best), "game"
    return float(measured), "measured"


def best_lap(laps: list[Lap]) -> Lap | None:
    """The fastest good lap (ties → the first), or None."""
    good = [lap for lap in laps if lap.good and lap.time_ms is not None]
    if not good:
        return None
    return min(good, key=lambda lap: lap.time_ms)  # min keeps the first of equal times


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
#: A step of the game's lap timer longer than this is not trusted as elapsed time (pause, jump), s.
MAX_GAME_STEP_S = 1.0
#: Channels that all repeat, value for value, when the game re-sends one frozen state (a pause, a
#: menu): the lap timer and the car. Unknown on both sides counts as repeated.
STATE_CHANNELS = ("lap_time_ms", "speed_kmh", "rpm", "pos_x", "pos_y", "pos_z")
#: The car channels among them: at least one must be known for a repeat to mean anything.
CAR_CHANNELS = ("speed_kmh", "rpm", "pos_x", "pos_y", "pos_z")
#: Without a lap timer a repeat counts only when the car reports at least this speed, km/h, while
#: its position stands still (a car standing or cruising at a steady speed repeats its speed too).
PAUSE_NO_TIMER_KMH = 1.0
#: A stretch of repeated states is a pause only when it repeats at least this many times and lasts
#: at least PAUSE_MIN_S on the receive clock, s. A game that sends faster than it simulates repeats
#: a state once or twice, and each repeat was sent later (its receive time is real time); a pause
#: repeats one state for seconds.
PAUSE_MIN_REPEATS = 3
PAUSE_MIN_S = 0.5
#: A lap timer that stood still over some steps and then steps by at least this fraction of the
#: receive time since it last moved is a coarse timer (its step covers the wait); a smaller step
#: means it really stood still (AC's timer at 0 before the first line crossing) while time ran on.
TIMER_COVERS_FRAC = 0.5


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise a == b, unknown (NaN) equal to unknown."""
    eq = a == b
    if a.dtype.kind == "f":
        eq |= np.isnan(a) & np.isnan(b)
    return eq


def _stretches(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, stops) of the runs of True in a boolean array (``stops`` exclusive)."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _fill(n: int, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """A boolean array of length ``n``, True on the given (disjoint) stretches."""
    d = np.zeros(n + 1, np.int64)
    np.add.at(d, starts, 1)
    np.add.at(d, stops, -1)
    return np.cumsum(d[:-1]) > 0


def paused_steps(frames: Frames) -> np.ndarray:
    """Which steps between frames are a pause, bool, length ``len(frames) − 1`` (step i: frame i → i+1).

    A step repeats the state when every :data:`STATE_CHANNELS` channel the frames carry is the same
    on both frames (the lap timer stands still *and* the car is frozen: same speed, rpm, position),
    at least one car channel is known, and the timer is known on both frames — or, where it is not,
    the car reports a speed of at least :data:`PAUSE_NO_TIMER_KMH` with its position (known)
    standing still, which no driving car does. Games re-send their last state while paused or in a
    menu, and receive time runs on; no such step is time or distance driven. Only stretches of at
    least :data:`PAUSE_MIN_REPEATS` repeats lasting at least :data:`PAUSE_MIN_S` s of receive time
    count (shorter ones are duplicated packets). A car parked with its engine off and its timer
    stopped is indistinguishable from a pause, and is not driving either.
    """
    n = len(frames)
    if n < 2:
        return np.zeros(0, bool)
    car = [c for c in CAR_CHANNELS if c in frames]
    if not car:
        return np.zeros(n - 1, bool)
    rep = np.ones(n - 1, bool)
    known = np.zeros(n - 1, bool)
    for c in STATE_CHANNELS:
        if c not in frames:
            continue
        v = np.asarray(frames[c])
        rep &= _same(v[1:], v[:-1])
        if c in car:
            known |= np.isfinite(v[1:]) if v.dtype.kind == "f" else v[1:] >= 0
    rep &= known
    evidence = np.zeros(n - 1, bool)
    if "lap_time_ms" in frames:
        lt = np.asarray(frames["lap_time_ms"])
        evidence |= (lt[1:] >= 0) & (lt[:-1] >= 0)  # and the same, by `rep`
    if all(c in frames for c in ("speed_kmh", "pos_x", "pos_z")):
        with np.errstate(invalid="ignore"):
            moving = np.asarray(frames["speed_kmh"][1:]) >= PAUSE_NO_TIMER_KMH
        evidence |= moving & np.isfinite(frames["pos_x"][1:])  # and the position stands, by `rep`
    rep &= evidence
    a, b = _stretches(rep)
    t = frames.t_s
    long = ((b - a) >= PAUSE_MIN_REPEATS) & ((t[b] - t[a]) >= PAUSE_MIN_S)
    return _fill(n - 1, a[long], b[long])


def run_clock(frames: Frames) -> tuple[np.ndarray, str]:
    """Time of each frame for rates and durations, s from the run's first frame, and its source.

    Receive times come in bursts (the Monza capture has a dozen AC packets stamped within a
    millisecond after a 0.3 s stall), which no windowed fit can undo. The game's own lap timer
    (``lap_time_ms``) advances with game time, so where it runs its steps are used. Step by step
    (step i: frame i → i+1), the clock advances by

    * nothing over a pause (:func:`paused_steps`: the game re-sends a frozen state);
    * the timer's step where both frames know it, it is above 0 and at most
      :data:`MAX_GAME_STEP_S`, and the lap counter did not step between them; across the line
      (the counter one up), the rest of the lap just timed (``last_lap_ms``) plus the new timer,
      when that is as small;
    * over a stretch where the timer stands still while the state changes (AC's timer stands at 0
      before the first crossing of the line): nothing when the timer's next step covers at least
      :data:`TIMER_COVERS_FRAC` of the stretch's receive time, or of what its frames take at the
      run's mean rate if that is less (a coarse timer: that step is the elapsed time), else the
      receive-time steps (the timer had stopped, the car had not);
    * the receive-time step everywhere else (the reset on the line, a jump, an unknown timer).

    Returns ``(t, 'game')``, or ``(t, 'receive')`` when fewer than 90 % of frames have a timer
    (receive time then, still without the pauses).
    """
    t = frames.t_s
    n = len(t)
    if n < 2:
        return t, "receive"
    d_recv = np.diff(t)
    paused = paused_steps(frames)
    lt = np.asarray(frames["lap_time_ms"], dtype=np.float64) if "lap_time_ms" in frames else np.full(n, -1.0)
    valid = lt >= 0
    if valid.mean() < 0.9:
        return np.concatenate(([0.0], np.cumsum(np.where(paused, 0.0, d_recv)))), "receive"
    d_game = np.diff(lt) / 1000.0
    both = valid[1:] & valid[:-1]
    runs = both & (d_game > 0) & (d_game <= MAX_GAME_STEP_S)
    if "lap_count" in frames:
        # Across a step of the lap counter the timer's difference is no elapsed time (frames
        # lost from 40 s into one lap to 40 s into the next differ by a few ms on the timer) ...
        lc = np.asarray(frames["lap_count"], dtype=np.int64)
        runs &= lc[1:] == lc[:-1]
        if "last_lap_ms" in frames:
            # ... but across the line, what was left of the lap just timed plus the new lap's
            # timer is, when the game already shows that lap's time (a burst that arrives late
            # right at the line is then no hole either).
            last = np.asarray(frames["last_lap_ms"], dtype=np.float64)
            d_line = (last[1:] - lt[:-1] + lt[1:]) / 1000.0
            line = both & (lc[1:] == lc[:-1] + 1) & (last[1:] > 0) & (d_line > 0) & (d_line <= MAX_GAME_STEP_S)
            d_game = np.where(line, d_line, d_game)
            runs |= line
    inc = np.where(runs, d_game, d_recv)
    a, b = _stretches(both & (d_game == 0) & ~paused)
    if len(a):
        closing = np.minimum(b, n - 2)
        cum = np.concatenate(([0.0], np.cumsum(d_recv)))
        waited = cum[closing + 1] - cum[a]  # receive time of the stretch and of its closing step
        # ... but not more than its frames take at the run's mean rate: frames that arrived in a
        # burst after a stall of the network or the PC waited longer than the game did.
        waited = np.minimum(waited, (closing + 1 - a) * (cum[-1] / (n - 1)))
        covered = (b < n - 1) & runs[closing] & (d_game[closing] >= TIMER_COVERS_FRAC * waited)
        inc[_fill(n - 1, a[covered], b[covered])] = 0.0
    inc[paused] = 0.0
    return np.concatenate(([0.0], np.cumsum(inc))), "game"


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
