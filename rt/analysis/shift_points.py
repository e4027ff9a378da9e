"""Shift points: the time-optimal upshift rpm per gear, rebuilt from full-throttle pulls.

The question
------------
At a given road speed, gear n+1 gives more drive than gear n as soon as the wheel torque in
n+1 exceeds the one in n. With engine torque T(rpm) and overall ratio gₙ that is where
``T(r)·gₙ = T(r·gₙ₊₁/gₙ)·gₙ₊₁`` — r the engine speed in gear n just before the shift. Resistance
(drag, rolling, grade) is the same in both gears at the same speed, so it cancels.

The data does not answer it directly: a driver who shifts at the limiter leaves no samples of
gear n+1 at the speeds where gear n is still running, so the two acceleration curves never
overlap. But every gear sees the *same engine*, and the gears' rpm ranges overlap heavily. So
the engine's torque shape is rebuilt from all gears at once and the crossing is found on it.

Method (all in "acceleration units", because the car's mass is unknown)
-----------------------------------------------------------------------
1. Ratios. Per gear, kₙ = median(rpm / speed) in rpm per m/s (engaged, > 3 m/s). Wheel torque
   is proportional to the overall ratio and so to kₙ (no tyre slip assumed).
2. Clean samples: throttle ≥ 0.98, brake ≤ 0.02, clutch ≥ 0.98 (engaged), |steer| ≤ 0.1,
   |g_lat| ≤ 0.15 g, a forward gear, speed ≥ 2 m/s, rpm within 3 % of kₙ·speed (no clutch slip
   or wheelspin) and below 99.7 % of the highest rpm (no limiter bounce). Consecutive clean
   samples of one gear without a receive gap > 0.1 s form a stretch; ``SETTLE_S`` is cut off
   both ends (a shift's transient).
3. Accelerations: each stretch is cut into windows of ``WINDOW_S`` (twice, offset by half a
   window); a(window) is the least-squares slope of speed against receive time over the window
   (never a difference of neighbouring samples, so receive-time jitter averages out).
4. Joint fit, linear least squares over all windows of all gears:
   ``a + c0 + c2·v² = kₙ·T̃(rpm)`` with T̃ piecewise linear on an rpm grid (shared by all gears),
   c0 [m/s²] and c2 [1/m] the resistance deceleration. A window's slope is a kernel-weighted
   average of the acceleration along it (in first gear a 0.2 s window spans ~500 rpm), so the
   model side of each row is the *same* linear operator applied to the model's acceleration at
   every sample of the window (trapezoid quadrature): no smoothing bias at torque kinks.
   Huber reweighting (3 rounds) makes it robust to odd windows; a tiny second-difference
   penalty keeps T̃ defined between sparse rpm.
5. Crossing: the margin ``kₙ·T̃(r) − kₙ₊₁·T̃(r·kₙ₊₁/kₙ)`` is piecewise linear in r, so its first
   + → − sign change over gear n's observed rpm range is found exactly at the breakpoints. If
   gear n stays stronger up to its highest observed rpm, the recommendation is the limiter.

Confidence (0..1, per gear) = ``(1 − exp(−sₙ/τ))·(1 − exp(−sₙ₊₁/τ))·exp(−ε/ε₀)`` with sₙ the
seconds of clean full-throttle data in gear n (τ = ``CONFIDENCE_TAU_S``), ε the robust RMS
residual of the joint fit relative to the RMS acceleration (ε₀ = ``CONFIDENCE_RESID_REF``), and
a factor 0.5 when the answer needs the torque curve outside the rpm range the data covers.
Gear n+1 only needs a ratio (from any engaged samples), so a top gear with no clean pulls still
gets an entry, with low confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .frames import Frames, downsample, plain

VERSION = 1

#: Pedal thresholds for "full throttle, no brake, clutch engaged" (0..1).
FULL_THROTTLE = 0.98
NO_BRAKE = 0.02
CLUTCH_ENGAGED = 0.98
#: Straight-line limits: steering (−1..1) and lateral acceleration (g).
MAX_STEER = 0.1
MAX_G_LAT = 0.15
#: Below this speed (m/s) the clutch may still slip (1st gear pull-away).
MIN_SPEED_MS = 2.0
#: rpm must match kₙ·speed within this fraction (no clutch slip, no wheelspin).
RATIO_TOL = 0.03
#: Samples at or above this fraction of the highest rpm are limiter territory (fuel cut).
LIMITER_FRAC = 0.997
#: A receive gap longer than this (s) ends a clean stretch.
MAX_GAP_S = 0.1
#: Cut from both ends of a clean stretch (s): shift transients, pedal lag.
SETTLE_S = 0.05
#: Regression window (s) for the acceleration.
WINDOW_S = 0.2
#: Number of partitions of each stretch into windows, offset by WINDOW_S / WINDOW_OFFSETS: more
#: (overlapping) equations, so the torque shape is resolved finer than one window's rpm span.
WINDOW_OFFSETS = 4
#: Minimum samples in a window, and minimum covered fraction of WINDOW_S.
MIN_WINDOW_SAMPLES = 4
MIN_WINDOW_SPAN = 0.6
#: Upshift rpm = highest rpm in this many seconds before the gear change (the driver may lift).
UPSHIFT_LOOKBACK_S = 0.25
#: Confidence scales (see the module docstring).
CONFIDENCE_TAU_S = 5.0
CONFIDENCE_RESID_REF = 0.05
#: Relative weight of the second-difference smoothness penalty on T̃.
SMOOTHNESS = 1e-2
#: Points per plotted curve.
CURVE_POINTS = 200

_NICE_STEPS_RPM = (50.0, 100.0, 125.0, 200.0, 250.0, 500.0, 1000.0)
_MAX_KNOTS = 60
KMH = 3.6


# ---------------------------------------------------------------------------------------- data
@dataclass
class _Samples:
    """All runs concatenated. ``t`` is seconds on one axis (runs separated by a large gap)."""

    t: np.ndarray
    v: np.ndarray  # m/s
    rpm: np.ndarray
    gear: np.ndarray  # int64
    throttle: np.ndarray
    brake: np.ndarray
    clutch: np.ndarray
    steer: np.ndarray
    g_lat: np.ndarray
    meta_max_rpm: float


def _channel(fr: Frames, name: str, n: int) -> np.ndarray:
    if name in fr.channels:
        return np.asarray(fr.channels[name], dtype=np.float64)
    return np.full(n, np.nan)


def _collect(runs: list[Frames]) -> _Samples:
    parts: dict[str, list[np.ndarray]] = {k: [] for k in
                                          ("t", "v", "rpm", "gear", "throttle", "brake", "clutch", "steer", "g_lat")}
    offset = 0.0
    meta_max = 0.0
    for fr in runs:
        n = len(fr)
        if n == 0:
            continue
        t_ns = np.asarray(fr.channels["t_ns"], dtype=np.int64)
        t = (t_ns - t_ns[0]) / 1e9
        parts["t"].append(t + offset)
        # Runs never share a stretch: the next run starts far beyond any gap limit.
        offset += float(t[-1]) + 1000.0
        parts["v"].append(_channel(fr, "speed_kmh", n) / KMH)
        parts["rpm"].append(_channel(fr, "rpm", n))
        g = fr.channels.get("gear")
        parts["gear"].append(np.asarray(g, dtype=np.int64) if g is not None else np.full(n, -1, np.int64))
        for name in ("throttle", "brake", "clutch", "steer", "g_lat"):
            parts[name].append(_channel(fr, name, n))
        m = fr.meta.get("max_rpm") if fr.meta else None
        if isinstance(m, (int, float)) and np.isfinite(m) and m > 0:
            meta_max = max(meta_max, float(m))
    if not parts["t"]:
        raise ValueError("no frames: shift points need at least one run with full-throttle pulls")
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return _Samples(meta_max_rpm=meta_max, **cat)


def _ok_or_unknown(x: np.ndarray, test) -> np.ndarray:
    """``test(x)`` where x is known; True where it is NaN (a feed without that channel)."""
    with np.errstate(invalid="ignore"):
        return test(x) | np.isnan(x)


# ---------------------------------------------------------------------------------------- ratios, events
def gear_ratios(speed_ms: np.ndarray, rpm: np.ndarray, gear: np.ndarray, clutch: np.ndarray) -> dict[int, float]:
    """Per forward gear, rpm per m/s of road speed: the robust median of rpm/speed.

    Uses engaged samples (clutch ≥ 0.98 or unknown) above 3 m/s; gears with fewer than 5 such
    samples are left out.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (gear >= 1) & (speed_ms > 3.0) & (rpm > 0) & np.isfinite(rpm)
        ok &= _ok_or_unknown(clutch, lambda c: c >= CLUTCH_ENGAGED)
        q = rpm / speed_ms
    out: dict[int, float] = {}
    for g in np.unique(gear[ok]):
        sel = q[ok & (gear == g)]
        if sel.size >= 5:
            out[int(g)] = float(np.median(sel))
    return out


def upshift_events(t_s: np.ndarray, rpm: np.ndarray, gear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observed upshifts n → n+1: (from_gear, rpm before the shift) per event.

    Gear steps are read on the forward-gear samples only, so a neutral blip between two gears
    (H-pattern) still counts, if it lasts < 1 s. The rpm is the highest in the last
    ``UPSHIFT_LOOKBACK_S`` of the old gear: the shift point, even if the driver lifted first.
    """
    fwd = np.flatnonzero(gear >= 1)
    if fwd.size < 2:
        return np.zeros(0, np.int64), np.zeros(0)
    g = gear[fwd]
    step = (g[1:] == g[:-1] + 1) & (t_s[fwd[1:]] - t_s[fwd[:-1]] < 1.0)
    last = fwd[:-1][step]  # index of the last sample in the old gear
    if last.size == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    # Start of the constant-gear run that each event's last sample belongs to.
    change = np.ones(len(gear), dtype=bool)
    change[1:] = gear[1:] != gear[:-1]
    run_start = np.maximum.accumulate(np.where(change, np.arange(len(gear)), 0))
    start = np.maximum(run_start[last], np.searchsorted(t_s, t_s[last] - UPSHIFT_LOOKBACK_S))
    r = np.where(np.isfinite(rpm), rpm, -np.inf)
    bounds = np.empty(2 * last.size, dtype=np.int64)
    bounds[0::2], bounds[1::2] = start, last + 1
    # reduceat over interleaved (start, end) pairs; the odd slots are junk and dropped. The
    # final end may equal len(r): reduceat needs indices < len, so pad one element.
    peak = np.maximum.reduceat(np.append(r, -np.inf), bounds)[0::2]
    return g[:-1][step], np.where(np.isfinite(peak), peak, np.nan)


# ---------------------------------------------------------------------------------------- windows
@dataclass
class Windows:
    """Acceleration windows and the linear operator that maps the model onto them.

    ``accel_ms2[w]`` is the least-squares slope of speed vs time of window w (m/s²).
    Each window's slope equals Σᵢ cᵢ·a(tᵢ) over its samples for any acceleration a(t) that is
    trapezoid-integrated into speed; ``sample``/``weight``/``window`` hold those (i, cᵢ, w).
    """

    accel_ms2: np.ndarray
    speed_ms: np.ndarray  # mean speed of the window
    rpm: np.ndarray  # mean rpm of the window
    gear: np.ndarray
    sample: np.ndarray  # index into the sample arrays
    weight: np.ndarray  # cᵢ, 1/s·s = dimensionless per sample (Σ per window = 1)
    window: np.ndarray  # window index of each (sample, weight)


def _stretches(t_s: np.ndarray, mask: np.ndarray, gear: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of masked samples, their stretch id, and stretch start/end time per sample."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        e = np.zeros(0)
        return idx, e.astype(np.int64), e, e
    new = np.ones(idx.size, dtype=bool)
    new[1:] = (idx[1:] != idx[:-1] + 1) | (gear[idx[1:]] != gear[idx[:-1]]) | (
        t_s[idx[1:]] - t_s[idx[:-1]] > MAX_GAP_S)
    sid = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, idx.size - 1)
    t = t_s[idx]
    return idx, sid, t[first][sid], t[last][sid]


def accel_windows(t_s: np.ndarray, speed_ms: np.ndarray, rpm: np.ndarray, gear: np.ndarray, clean: np.ndarray,
                  window_s: float = WINDOW_S, settle_s: float = SETTLE_S) -> Windows:
    """Windowed accelerations from clean samples (pure; vectorised, no per-sample loop).

    ``t_s`` receive time (s, non-decreasing), ``speed_ms`` m/s, ``clean`` the usable samples.
    Stretches of consecutive clean samples (same gear, no gap > MAX_GAP_S) lose ``settle_s`` at
    both ends and are cut into windows of ``window_s`` twice (offset by half a window).
    """
    idx, sid, t0, t1 = _stretches(t_s, clean, gear)
    keep = (t_s[idx] - t0 >= settle_s) & (t1 - t_s[idx] >= settle_s)
    idx, sid, t0 = idx[keep], sid[keep], t0[keep]
    out = [_partition(t_s, speed_ms, rpm, gear, idx, sid, t0 + settle_s + off, window_s)
           for off in np.arange(WINDOW_OFFSETS) * (window_s / WINDOW_OFFSETS)]
    nwin = 0
    parts = []
    for w in out:
        parts.append((w[0], w[1], w[2], w[3], w[4], w[5], w[6] + nwin))
        nwin += len(w[0])
    cat = [np.concatenate([p[i] for p in parts]) for i in range(7)]
    return Windows(*cat)


def _partition(t_s, speed_ms, rpm, gear, idx, sid, origin, window_s):
    """One partition of the stretches into windows: see :func:`accel_windows`."""
    empty = (np.zeros(0),) * 3 + (np.zeros(0, np.int64),) * 2 + (np.zeros(0), np.zeros(0, np.int64))
    tau_all = t_s[idx] - origin  # s since the partition's origin in this stretch
    inside = tau_all >= 0.0
    idx, sid, tau = idx[inside], sid[inside], tau_all[inside]
    if idx.size == 0:
        return empty
    block = np.floor(tau / window_s).astype(np.int64)
    new = np.ones(idx.size, dtype=bool)
    new[1:] = (sid[1:] != sid[:-1]) | (block[1:] != block[:-1])
    wid = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], idx.size)  # exclusive
    n = (ends - starts).astype(np.float64)
    # Centre time and speed per window for numerical safety (an hour of cumsums otherwise).
    tc = tau - tau[starts][wid]
    v = speed_ms[idx]
    vc = v - v[starts][wid]
    st = np.add.reduceat(tc, starts)
    sv = np.add.reduceat(vc, starts)
    stt = np.add.reduceat(tc * tc, starts)
    stv = np.add.reduceat(tc * vc, starts)
    sxx = stt - st * st / n
    span = tc[ends - 1]
    good = (n >= MIN_WINDOW_SAMPLES) & (span >= MIN_WINDOW_SPAN * window_s) & (sxx > 1e-12 * window_s ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (stv - st * sv / n) / sxx
        tbar = st / n
    # Regression weights wᵢ = (tᵢ − t̄)/Sxx; the slope of any trapezoid-integrated speed is
    # Σ_seg I_seg·W_seg with W_seg the sum of wᵢ after the segment, so cᵢ = ½(q_{i−1} + qᵢ)
    # with q_seg = dt_seg·W_seg.
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(good[wid], (tc - tbar[wid]) / sxx[wid], 0.0)  # NaN-free: cs runs across windows
    cs = np.cumsum(w)
    tail = cs[ends - 1][wid] - cs  # Σ of w after sample i within its window
    dt = np.zeros(idx.size)
    dt[:-1] = tc[1:] - tc[:-1]
    last_in_win = np.zeros(idx.size, dtype=bool)
    last_in_win[ends - 1] = True
    q = np.where(last_in_win, 0.0, dt * tail)
    c = 0.5 * q
    c[1:] += 0.5 * np.where(new[1:], 0.0, q[:-1])
    # Keep the good windows only, renumbered.
    gw = good[wid]
    remap = np.cumsum(good) - 1
    mean_v = sv / n + v[starts]
    mean_rpm = np.add.reduceat(rpm[idx], starts) / n
    return (slope[good], mean_v[good], mean_rpm[good], gear[idx[starts]][good], idx[gw], c[gw], remap[wid[gw]])


# ---------------------------------------------------------------------------------------- joint fit
@dataclass
class TorqueFit:
    """Result of :func:`fit_torque`.

    ``torque`` is T̃ at ``knots_rpm`` in m/s² per (rpm per m/s): drive acceleration in gear n is
    kₙ·T̃(rpm). Resistance deceleration r(v) = c0 + c2·v² (m/s², v in m/s).
    """

    knots_rpm: np.ndarray
    torque: np.ndarray
    c0: float
    c2: float
    residual_rms: float  # robust RMS of the window residuals, m/s²
    accel_rms: float  # RMS of the window accelerations, m/s²
    residuals: np.ndarray  # per window, m/s²
    rpm_lo: float  # rpm range the windows cover
    rpm_hi: float

    def torque_at(self, rpm) -> np.ndarray:
        """T̃ at ``rpm`` (held flat outside the knots)."""
        return np.interp(rpm, self.knots_rpm, self.torque)

    def accel_ms2(self, speed_ms, ratio: float) -> np.ndarray:
        """Fitted full-throttle acceleration, m/s², at ``speed_ms`` in a gear of ``ratio`` rpm per m/s."""
        v = np.asarray(speed_ms, dtype=np.float64)
        return ratio * self.torque_at(v * ratio) - self.c0 - self.c2 * v * v


def _knots(lo: float, hi: float) -> np.ndarray:
    """A grid at a round rpm step (so kinks at round rpm fall on knots), ≤ _MAX_KNOTS points."""
    span = max(hi - lo, 1.0)
    step = next((s for s in _NICE_STEPS_RPM if span / s <= _MAX_KNOTS - 2), _NICE_STEPS_RPM[-1])
    a = np.floor(lo / step) * step
    b = np.ceil(hi / step) * step
    return np.arange(a, b + 0.5 * step, step)


def fit_torque(win: Windows, speed_ms: np.ndarray, rpm: np.ndarray, ratios: dict[int, float],
               iterations: int = 3) -> TorqueFit:
    """Joint least squares ``a + c0 + c2·v² = kₙ·T̃(rpm)`` over all windows (pure).

    ``speed_ms``/``rpm`` are the per-sample arrays that ``win.sample`` indexes. The torque shape
    is piecewise linear on a round-rpm grid; rows use the windows' exact quadrature operator.
    """
    nwin = len(win.accel_ms2)
    r_s = rpm[win.sample]
    v_s = speed_ms[win.sample]
    kmap = np.zeros(int(win.gear.max()) + 1)
    for g, k in ratios.items():
        if g < len(kmap):
            kmap[g] = k
    k_s = kmap[win.gear[win.window]]
    lo, hi = float(np.min(r_s)), float(np.max(r_s))
    knots = _knots(lo, hi)
    nk = len(knots)
    step = knots[1] - knots[0]
    u = np.clip((r_s - knots[0]) / step, 0.0, nk - 1.0)
    j = np.minimum(np.floor(u).astype(np.int64), nk - 2)
    f = u - j
    wk = win.weight * k_s
    ncol = nk + 2
    base = win.window * ncol
    A = (np.bincount(base + j, wk * (1.0 - f), minlength=nwin * ncol)
         + np.bincount(base + j + 1, wk * f, minlength=nwin * ncol)).reshape(nwin, ncol)
    # Resistance columns: −Σcᵢ (= −1) for c0 and −Σcᵢ·vᵢ² for c2.
    A[:, nk] = -np.bincount(win.window, win.weight, minlength=nwin)
    A[:, nk + 1] = -np.bincount(win.window, win.weight * v_s * v_s, minlength=nwin)
    y = win.accel_ms2
    # Smoothness: second differences of T̃, scaled to the data's own column norms.
    D = np.zeros((max(nk - 2, 0), ncol))
    if nk > 2:
        i = np.arange(nk - 2)
        D[i, i], D[i, i + 1], D[i, i + 2] = 1.0, -2.0, 1.0
    lam = np.sqrt(SMOOTHNESS * float(np.sum(A[:, :nk] ** 2)) / max(nk, 1))
    weights = np.ones(nwin)
    for _ in range(iterations + 1):
        sw = np.sqrt(weights)
        M = np.vstack([A * sw[:, None], lam * D])
        rhs = np.concatenate([y * sw, np.zeros(D.shape[0])])
        theta = np.linalg.lstsq(M, rhs, rcond=None)[0]
        res = y - A @ theta
        scale = 1.4826 * float(np.median(np.abs(res - np.median(res)))) + 1e-9
        # Huber weights: full weight within 1.345 robust sigmas, 1/|r| beyond.
        weights = np.minimum(1.0, 1.345 * scale / np.maximum(np.abs(res), 1e-12))
    robust_rms = float(np.sqrt(np.sum(weights * res ** 2) / np.sum(weights)))
    return TorqueFit(knots, theta[:nk], float(theta[nk]), float(theta[nk + 1]), robust_rms,
                     float(np.sqrt(np.mean(y ** 2))), res, lo, hi)


# ---------------------------------------------------------------------------------------- crossing
def upshift_crossing_rpm(knots_rpm, torque, ratio_n: float, ratio_next: float, rpm_lo: float,
                         rpm_hi: float) -> float | None:
    """The rpm in gear n where gear n+1 starts to give more wheel torque at the same speed (pure).

    Solves ``T(r)·kₙ = T(r·kₙ₊₁/kₙ)·kₙ₊₁`` with T piecewise linear through (knots_rpm, torque),
    held flat outside, for the first + → − sign change of the margin on [rpm_lo, rpm_hi].
    Exact: the margin is piecewise linear with breakpoints at the knots and at knots·kₙ/kₙ₊₁.
    Returns None if gear n is at least as strong over the whole range; rpm_lo if gear n+1 is
    stronger already there.
    """
    kr = np.asarray(knots_rpm, dtype=np.float64)
    tq = np.asarray(torque, dtype=np.float64)
    rho = ratio_next / ratio_n
    pts = np.concatenate([[rpm_lo, rpm_hi], kr, kr / rho])
    pts = np.unique(pts[(pts >= rpm_lo) & (pts <= rpm_hi)])
    m = ratio_n * np.interp(pts, kr, tq) - ratio_next * np.interp(pts * rho, kr, tq)
    if m[0] < 0.0:
        return float(rpm_lo)
    cross = np.flatnonzero((m[:-1] >= 0.0) & (m[1:] < 0.0))
    if cross.size == 0:
        return None
    i = int(cross[0])
    return float(pts[i] + (pts[i + 1] - pts[i]) * m[i] / (m[i] - m[i + 1]))


# ---------------------------------------------------------------------------------------- analysis
def _clean_mask(s: _Samples, ratios: dict[int, float], limiter: float) -> np.ndarray:
    kmap = np.zeros(max(int(s.gear.max()), 0) + 2)
    for g, k in ratios.items():
        kmap[g] = k
    gi = np.clip(s.gear, 0, len(kmap) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (s.gear >= 1) & (kmap[gi] > 0) & (s.throttle >= FULL_THROTTLE) & (s.v >= MIN_SPEED_MS)
        ok &= np.isfinite(s.v) & np.isfinite(s.rpm) & (s.rpm < LIMITER_FRAC * limiter)
        ok &= _ok_or_unknown(s.brake, lambda b: b <= NO_BRAKE)
        ok &= _ok_or_unknown(s.clutch, lambda c: c >= CLUTCH_ENGAGED)
        ok &= _ok_or_unknown(s.steer, lambda x: np.abs(x) <= MAX_STEER)
        ok &= _ok_or_unknown(s.g_lat, lambda x: np.abs(x) <= MAX_G_LAT)
        ok &= np.abs(s.rpm / (s.v * kmap[gi]) - 1.0) <= RATIO_TOL
    return ok


def analyze(runs: list[Frames]) -> dict:
    """Shift points of one car from a list of runs (pure, JSON-ready).

    Returns ``gears`` (one entry per gear n whose next gear was seen: ``gear``, ``upshifts``
    (count of observed n → n+1), ``observed_rpm`` {mean, spread (std), count} of the rpm at those
    upshifts, ``recommended_rpm``, ``recommended_speed_kmh``, ``confidence`` 0..1, plus
    ``ratio_rpm_per_kmh``, ``clean_s``, ``basis`` ("crossing" | "limiter" | "lowest_rpm")),
    ``max_rpm`` (highest rpm seen, or the game's reported maximum if higher), ``curves`` (fitted
    acceleration in m/s² against speed in km/h per gear; the rebuilt torque curve, relative to
    its peak, against rpm, both as one fit and per gear) and ``summary``.

    Raises ValueError when there is no input or no usable full-throttle data.
    """
    if not runs or all(len(fr) == 0 for fr in runs):
        raise ValueError("no frames: shift points need at least one run with full-throttle pulls")
    s = _collect(runs)
    fwd_rpm = s.rpm[(s.gear >= 1) & np.isfinite(s.rpm)]
    if fwd_rpm.size == 0:
        raise ValueError("no samples in a forward gear with a known rpm")
    max_seen = float(fwd_rpm.max())
    limiter = max(max_seen, s.meta_max_rpm)
    ratios = gear_ratios(s.v, s.rpm, s.gear, s.clutch)
    if not ratios:
        raise ValueError("no engaged samples above 3 m/s with speed and rpm: cannot measure the gear ratios")
    clean = _clean_mask(s, ratios, max_seen)
    if not clean.any():
        raise ValueError("no full-throttle, straight-line, clutch-engaged samples: drive full-throttle pulls "
                         "through the gears (throttle ≥ 98 %, brake off, wheel straight)")
    win = accel_windows(s.t, s.v, s.rpm, s.gear, clean)
    win_gears = np.unique(win.gear)
    if len(win.accel_ms2) < 10 or win_gears.size < 2:
        raise ValueError(f"too little full-throttle data: {len(win.accel_ms2)} clean {WINDOW_S:g} s windows in "
                         f"{win_gears.size} gear(s); need pulls through at least two gears")
    fit = fit_torque(win, s.v, s.rpm, ratios)

    # Clean seconds per gear: every partition covers the clean time once.
    clean_s = {int(g): WINDOW_S / WINDOW_OFFSETS * int(np.sum(win.gear == g)) for g in win_gears}
    ev_gear, ev_rpm = upshift_events(s.t, s.rpm, s.gear)
    resid_rel = fit.residual_rms / max(fit.accel_rms, 1e-9)
    fit_factor = float(np.exp(-resid_rel / CONFIDENCE_RESID_REF))

    gears = []
    notes: list[str] = []
    for g in sorted(clean_s):
        if g + 1 not in ratios:
            continue
        kn, kn1 = ratios[g], ratios[g + 1]
        sel = clean & (s.gear == g)
        lo_n, hi_n = float(s.rpm[sel].min()), float(s.rpm[(s.gear == g) & np.isfinite(s.rpm)].max())
        hi_n = min(hi_n, limiter)
        # Search only where gear n+1's rpm is inside the data (T̃ is flat-extrapolated below).
        lo_search = min(max(lo_n, fit.rpm_lo * kn / kn1), hi_n)
        cross = upshift_crossing_rpm(fit.knots_rpm, fit.torque, kn, kn1, lo_search, hi_n)
        if cross is None:
            rec, basis = limiter, "limiter"
        elif cross <= lo_search:
            rec, basis = lo_search, "lowest_rpm"
        else:
            rec, basis = cross, "crossing"
        s1 = clean_s.get(g, 0.0)
        s2 = clean_s.get(g + 1, 0.0)
        conf = (1.0 - np.exp(-s1 / CONFIDENCE_TAU_S)) * (1.0 - np.exp(-s2 / CONFIDENCE_TAU_S)) * fit_factor
        # Extrapolated: gear n+1's rpm at the answer lies below what the data covers.
        if rec * kn1 / kn < fit.rpm_lo - 1.0 or (basis == "limiter" and hi_n < 0.98 * limiter):
            conf *= 0.5
            notes.append(f"gear {g}: answer relies on the torque curve outside the observed rpm range")
        if basis == "lowest_rpm":
            notes.append(f"gear {g}: gear {g + 1} already pulls harder at the lowest observed rpm")
        ups = ev_rpm[(ev_gear == g) & np.isfinite(ev_rpm)]
        gears.append({
            "gear": g,
            "upshifts": int(ups.size),
            "observed_rpm": {
                "mean": float(ups.mean()) if ups.size else None,
                "spread": float(ups.std()) if ups.size else None,
                "count": int(ups.size),
            },
            "recommended_rpm": float(rec),
            "recommended_speed_kmh": float(rec / kn * KMH),
            "confidence": float(np.clip(conf, 0.0, 1.0)),
            "basis": basis,
            "ratio_rpm_per_kmh": float(kn / KMH),
            "clean_s": float(s1),
        })
    if not gears:
        raise ValueError("full-throttle data in one gear only: shift points need a next gear with data")

    curves = _curves(fit, win, s, ratios, sorted(clean_s))
    for g in gears:
        for key in ("recommended_rpm", "recommended_speed_kmh", "confidence", "ratio_rpm_per_kmh", "clean_s"):
            g[key] = plain([g[key]])[0]
        for key in ("mean", "spread"):
            if g["observed_rpm"][key] is not None:
                g["observed_rpm"][key] = plain([g["observed_rpm"][key]])[0]
    line = ", ".join(f"{g['gear']}→{g['gear'] + 1} {g['recommended_rpm']:.0f} rpm" for g in gears)
    overall = min(g["confidence"] for g in gears)
    return {
        "gears": gears,
        "max_rpm": plain([limiter])[0],
        "curves": curves,
        "summary": {
            "line": line,
            "recommended_rpm": {str(g["gear"]): g["recommended_rpm"] for g in gears},
            "confidence": plain([overall])[0],
            "windows": int(len(win.accel_ms2)),
            "fit_residual_ms2": plain([fit.residual_rms])[0],
            "resistance": {"c0_ms2": plain([fit.c0])[0], "c2_per_m": plain([fit.c2])[0]},
            "notes": notes,
        },
    }


def _curves(fit: TorqueFit, win: Windows, s: _Samples, ratios: dict[int, float], gears: list[int]) -> dict:
    """Chart data: ≤ CURVE_POINTS points per list."""
    peak = float(np.max(fit.torque)) or 1.0
    rpm_grid = np.linspace(fit.rpm_lo, fit.rpm_hi, CURVE_POINTS)
    per_gear = []
    for g in gears:
        k = ratios[g]
        sel = win.gear == g
        v_lo, v_hi = float(win.speed_ms[sel].min()), float(win.speed_ms[sel].max())
        vg = np.linspace(v_lo, v_hi, CURVE_POINTS)
        # Each window's own torque estimate: (a + r(v)) / kₙ, what this gear says about the engine.
        pts = np.flatnonzero(sel)[downsample(int(sel.sum()), CURVE_POINTS)]
        tq = (win.accel_ms2[pts] + fit.c0 + fit.c2 * win.speed_ms[pts] ** 2) / k / peak
        per_gear.append({
            "gear": g,
            "speed_kmh": plain(vg * KMH),
            "accel_ms2": plain(fit.accel_ms2(vg, k)),
            "measured_speed_kmh": plain(win.speed_ms[pts] * KMH),
            "measured_accel_ms2": plain(win.accel_ms2[pts]),
            "torque_rpm": plain(win.rpm[pts]),
            "torque_rel": plain(tq),
        })
    return {
        "accel_unit": "m/s²",
        "speed_unit": "km/h",
        "torque_unit": "relative to the fitted peak (1 = peak wheel torque per ratio)",
        "torque": {"rpm": plain(rpm_grid), "rel": plain(fit.torque_at(rpm_grid) / peak)},
        "gears": per_gear,
    }
