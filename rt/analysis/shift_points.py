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

Gears: only held gears count
----------------------------
Project CARS reports one-sample gear values while a shift is under way: the next-but-one gear
or the previous one between neutral samples (real Spa sequences: ``5,5,3,0,0,3,4,4`` is 5 → 4,
``3,3,1,0,0,0,4,4`` is 3 → 4 at 116 km/h, ``4,4,2,0,0,3,5,5`` is 4 → 5). A run of one reported
forward gear is *held* when it has ≥ ``HOLD_MIN_SAMPLES`` samples, lasts ≥ ``HOLD_MIN_S``
(both, so a one-sample value never counts, at any rate) and, where gear n's ratio is known, at
least ``HOLD_MIN_SAMPLES`` of its samples have rpm within ``HOLD_RATIO_TOL`` of kₙ·speed (a
value with another gear's rpm is a label, not the gearbox; runs with nothing to check, e.g.
standing still, pass on length). An upshift n → n+1 is a held gear n whose next held gear is
n+1, less than ``SHIFT_MAX_S`` later; whatever lies between is the shift. Ratios are measured
on runs long enough to be held, held is then confirmed with those ratios, and the ratios are
measured again on the confirmed runs. See :func:`held_mask` and :func:`upshift_events`.

Limiter
-------
When a run's meta carries the game's own ``max_rpm`` (PCARS sMaxRpm), that is the limiter and
the reported ``max_rpm``: a downshift over-rev above it is not the limiter, and samples above it
are not clean. Without it, the limiter is the highest rpm of *drive* samples: held gear, throttle
≥ 0.98, clutch engaged, rpm within 3 % of kₙ·speed, outside the shift guard. The limiter is
reached under power in gear; an over-rev happens on a downshift, off throttle or clutch in.

Method (all in "acceleration units", because the car's mass is unknown)
-----------------------------------------------------------------------
1. Ratios. Per gear, kₙ = median(rpm / speed) in rpm per m/s (engaged samples of held gears
   above 3 m/s). Wheel torque is proportional to the overall ratio and so to kₙ (no tyre slip
   assumed).
2. Clean samples: throttle ≥ 0.98, brake ≤ 0.02, clutch ≥ 0.98 (engaged), |steer| ≤ 0.1,
   |g_lat| ≤ 0.15 g (unknown channels pass), a held forward gear, speed ≥ 2 m/s, rpm within 3 %
   of kₙ·speed (no clutch slip or wheelspin), below 99.7 % of the limiter (no fuel cut) and at
   least ``SHIFT_GUARD_S`` after the reported gear last changed. Consecutive clean samples of
   one gear without a receive gap > ``MAX_GAP_S`` form a stretch; ``SETTLE_START_S`` /
   ``SETTLE_END_S`` are cut off.
3. Accelerations: every stretch is cut into windows of ``WINDOW_S`` several times (offset
   partitions, and one counted back from the stretch's end, so the top rpm of a fast first-gear
   sweep is in a full window). a(window) is the least-squares slope of speed against receive
   time over the window: never a difference of neighbouring samples, so receive-time jitter
   (15.6 ms Windows timer steps, duplicated timestamps) averages out.
4. Joint fit, linear least squares over all windows of all gears:
   ``a + c0 + c2·v² = kₙ·T̃(rpm)``, with T̃ piecewise linear on a round-rpm grid and shared by
   all gears, and the resistance deceleration r(v) = c0 [m/s²] + c2 [1/m]·v². A window's slope
   is a kernel-weighted average of the acceleration along it (in first gear a 0.3 s window spans
   ~800 rpm), so the model side of each row is the *same* linear operator applied to the model's
   acceleration at every sample of the window (trapezoid quadrature): long windows damp the
   jitter without blurring the torque curve's kinks. Huber reweighting (3 rounds) makes it
   robust to odd windows; a second-difference penalty (``SMOOTHNESS``, relative to the data's
   weight) keeps T̃ tame where only one fast sweep covers the rpm.
5. Crossing: the margin ``kₙ·T̃(r) − kₙ₊₁·T̃(r·kₙ₊₁/kₙ)`` is piecewise linear in r, so its first
   + → − sign change is found exactly at the breakpoints, over the rpm of gear n where both
   gears' rpm are backed by data (resistance cancels at equal speed). No crossing: if the
   margin's trend over the top ``TREND_FRAC`` of the data reaches zero below the limiter, there
   ("trend", for a driver who already shifts at the optimum); otherwise the limiter.

Confidence, 0..1 per gear, is the product of
  * data: ``(1 − exp(−sₙ/τ))·(1 − exp(−sₙ₊₁/τ))``, sₙ the seconds of clean full-throttle data
    in gear n, τ = ``CONFIDENCE_TAU_S``;
  * fit: ``exp(−ε/ε₀)``, ε the robust RMS window residual over the RMS acceleration,
    ε₀ = ``CONFIDENCE_RESID_REF``;
  * precision: at a crossing ``1/(1 + (δr/(0.01·r))²)`` with δr the rpm standard error (the
    margin's standard error from the fit's covariance over its slope; also reported as
    ``uncertainty_rpm``); for "limiter" ``1 − exp(−z²/2)`` with z the margin at the top of the
    data in standard errors;
  * 0.5 when the answer lies above the rpm the data covers ("trend", or a limiter well above it).
Gear n+1 only needs a ratio (from any engaged samples of a held gear), so a top gear without clean pulls still
gives gear n an entry, with low confidence.

Limits: grade is not modelled (on the test ring it is the bulk of the fit residual); all runs
are taken to be the same car (with several meta ``max_rpm`` values the highest is used); adjacent
gears' ratios are assumed ≥ 2·``HOLD_RATIO_TOL`` apart; a skip-shift (n → n+2) is no observed
n → n+1 upshift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .clock import paused_steps, run_clock
from .frames import Frames, downsample, json_num, require_channels

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
#: Samples this soon after a gear change (s) are part of the shift, whatever the pedals say.
SHIFT_GUARD_S = 0.2
#: A gear value counts only when held (see held_mask): at least this many consecutive samples …
HOLD_MIN_SAMPLES = 2
#: … lasting at least this long (s) …
HOLD_MIN_S = 0.1
#: … with at least HOLD_MIN_SAMPLES of them within this fraction of the gear's rpm per speed.
#: Looser than RATIO_TOL: it only has to tell gears apart (adjacent ratios differ by ≥ ~10 %),
#: while the clutch is still slipping in the first samples after a shift.
HOLD_RATIO_TOL = 0.05
#: Held gears n and n+1 further apart than this (s) are no upshift (a stop, a pause, another run).
SHIFT_MAX_S = 1.0
#: A receive gap longer than this (s) ends a clean stretch.
MAX_GAP_S = 0.1
#: Cut from the start of a clean stretch (s): the drivetrain settles after a shift or pedal move.
SETTLE_START_S = 0.05
#: Cut from its end (s): what ends a stretch (lift, clutch, shift) shows in the channels at once.
SETTLE_END_S = 0.02
#: Regression window (s) for the acceleration.
WINDOW_S = 0.3
#: Number of partitions of each stretch into windows, offset by WINDOW_S / WINDOW_OFFSETS: more
#: (overlapping) equations, so the torque shape is resolved finer than one window's rpm span.
WINDOW_OFFSETS = 4
#: Above this many clean samples, fewer offset partitions are used (see accel_windows).
OFFSET_BUDGET = 100_000
#: Minimum samples in a window, and minimum covered fraction of WINDOW_S.
MIN_WINDOW_SAMPLES = 4
MIN_WINDOW_SPAN = 0.6
#: Upshift rpm = highest rpm in this many seconds before the gear change (the driver may lift).
UPSHIFT_LOOKBACK_S = 0.25
#: Top fraction of the data's rpm range whose margin trend is continued above it (see recommend_upshift).
TREND_FRAC = 0.03
#: Confidence scales (see the module docstring).
CONFIDENCE_TAU_S = 5.0
CONFIDENCE_RESID_REF = 0.05
PRECISION_REF = 0.01
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
        if len(fr) > 1:
            # A pause re-sends one frozen state for seconds: those copies are no samples.
            fr = fr.take(~np.concatenate(([False], paused_steps(fr))))
        n = len(fr)
        if n == 0:
            continue
        # The game's own clock where it has one: receive times come in bursts (timer ticks, a
        # replay, a busy machine) that no window can undo; the lap timer advances with game time.
        t, _source = run_clock(fr)
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
def held_mask(t_s: np.ndarray, gear: np.ndarray, speed_ms: np.ndarray | None = None,
              rpm: np.ndarray | None = None, ratios: dict[int, float] | None = None) -> np.ndarray:
    """True for the samples of forward-gear runs that are *held* (see "Gears" in the module docstring).

    A run is a stretch of consecutive samples reporting one gear value. It is held when it has
    at least ``HOLD_MIN_SAMPLES`` samples, lasts at least ``HOLD_MIN_S`` (each sample counts
    until the next one, at most ``MAX_GAP_S``), and — where ``ratios`` (rpm per m/s) knows the
    gear — at least ``HOLD_MIN_SAMPLES`` of its samples have rpm within ``HOLD_RATIO_TOL`` of
    kₙ·speed, unless none of them can be checked (speed ≤ 3 m/s or rpm/speed unknown).
    ``t_s`` s, ``speed_ms`` m/s. Pure.
    """
    n = len(gear)
    if n == 0:
        return np.zeros(0, dtype=bool)
    t = np.asarray(t_s, dtype=np.float64)
    gear = np.asarray(gear)
    new = np.ones(n, dtype=bool)
    new[1:] = gear[1:] != gear[:-1]
    starts = np.flatnonzero(new)
    rid = np.cumsum(new) - 1
    step = np.diff(t)
    dwell = np.minimum(np.append(step, np.median(step) if step.size else 0.0), MAX_GAP_S)
    ok = (np.add.reduceat(dwell, starts) >= HOLD_MIN_S - 1e-9) & (np.diff(np.append(starts, n)) >= HOLD_MIN_SAMPLES)
    ok &= gear[starts] >= 1
    if ratios and speed_ms is not None and rpm is not None:
        kmap = np.zeros(max(int(gear.max()), max(ratios)) + 1)
        for g, k in ratios.items():
            kmap[g] = k
        k = kmap[np.clip(gear, 0, None)]
        with np.errstate(invalid="ignore", divide="ignore"):
            checkable = (k > 0) & (speed_ms > 3.0) & np.isfinite(rpm) & np.isfinite(speed_ms)
            agree = checkable & (np.abs(rpm / (k * speed_ms) - 1.0) <= HOLD_RATIO_TOL)
        n_check = np.add.reduceat(checkable.astype(np.int64), starts)
        n_agree = np.add.reduceat(agree.astype(np.int64), starts)
        ok &= (n_check == 0) | (n_agree >= HOLD_MIN_SAMPLES)
    return ok[rid]


def gear_ratios(speed_ms: np.ndarray, rpm: np.ndarray, gear: np.ndarray, clutch: np.ndarray,
                held: np.ndarray | None = None) -> dict[int, float]:
    """Per forward gear, rpm per m/s of road speed: the robust median of rpm/speed.

    Uses engaged samples (clutch ≥ 0.98 or unknown) above 3 m/s, of held gears only when
    ``held`` (see :func:`held_mask`) is given; gears with fewer than 5 such samples are left out.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (gear >= 1) & (speed_ms > 3.0) & (rpm > 0) & np.isfinite(rpm)
        ok &= _ok_or_unknown(clutch, lambda c: c >= CLUTCH_ENGAGED)
        q = rpm / speed_ms
    if held is not None:
        ok &= held
    out: dict[int, float] = {}
    for g in np.unique(gear[ok]):
        sel = q[ok & (gear == g)]
        if sel.size >= 5:
            out[int(g)] = float(np.median(sel))
    return out


def upshift_events(t_s: np.ndarray, rpm: np.ndarray, gear: np.ndarray,
                   held: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Observed upshifts n → n+1: (from_gear, rpm before the shift) per event.

    Only held gears count (``held`` from :func:`held_mask`; by default the run-length rule alone):
    an upshift is a held gear n followed by the next held gear, n+1, less than
    ``SHIFT_MAX_S`` later. Whatever lies between (neutral, one-sample values of other gears, the
    old gear again for a sample) is the shift itself. A skip-shift (n → n+2) is no n → n+1 event.
    The rpm is the highest in the last ``UPSHIFT_LOOKBACK_S`` of the held run of gear n: the
    shift point, even if the driver lifted first.
    """
    gear = np.asarray(gear)
    if held is None:
        held = held_mask(t_s, gear)
    none = np.zeros(0, np.int64), np.zeros(0)
    n = len(gear)
    new = np.ones(n, dtype=bool)
    new[1:] = gear[1:] != gear[:-1]
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n) - 1  # inclusive
    keep = held[starts]
    hs, he, hg = starts[keep], ends[keep], gear[starts][keep]
    if hs.size < 2:
        return none
    step = (hg[1:] == hg[:-1] + 1) & (t_s[hs[1:]] - t_s[he[:-1]] < SHIFT_MAX_S)
    if not step.any():
        return none
    last, first = he[:-1][step], hs[:-1][step]
    start = np.maximum(first, np.searchsorted(t_s, t_s[last] - UPSHIFT_LOOKBACK_S))
    r = np.where(np.isfinite(rpm), rpm, -np.inf)
    bounds = np.empty(2 * last.size, dtype=np.int64)
    bounds[0::2], bounds[1::2] = start, last + 1
    # reduceat over interleaved (start, end) pairs; the odd slots are junk and dropped. The
    # final end may equal len(r): reduceat needs indices < len, so pad one element.
    peak = np.maximum.reduceat(np.append(r, -np.inf), bounds)[0::2]
    return hg[:-1][step].astype(np.int64), np.where(np.isfinite(peak), peak, np.nan)


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
    weight: np.ndarray  # cᵢ, dimensionless (Σ per window = 1: the slope of t itself)
    window: np.ndarray  # window index of each (sample, weight)
    overlap: int = 1  # number of partitions: every sample sits in this many windows


def _stretches(t_s: np.ndarray, mask: np.ndarray, gear: np.ndarray) -> tuple[np.ndarray, ...]:
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
                  window_s: float | None = None) -> Windows:
    """Windowed accelerations from clean samples (pure; vectorised, no per-sample loop).

    ``t_s`` receive time (s, non-decreasing), ``speed_ms`` m/s, ``rpm``, ``gear`` per sample,
    ``clean`` the usable samples. Stretches of consecutive clean samples (same gear, no gap >
    MAX_GAP_S) lose SETTLE_START_S / SETTLE_END_S at their ends and are cut into windows of
    ``window_s`` (default WINDOW_S) WINDOW_OFFSETS times, each partition starting WINDOW_S /
    WINDOW_OFFSETS later, plus once counted back from the stretch's end, so the last samples of
    a fast sweep (the top rpm of first gear) always sit in a full window.
    """
    window_s = WINDOW_S if window_s is None else window_s
    idx, sid, t0, t1 = _stretches(t_s, clean, gear)
    t = t_s[idx]
    keep = (t - t0 >= SETTLE_START_S) & (t1 - t >= SETTLE_END_S)
    idx, sid, t0, t1, t = idx[keep], sid[keep], t0[keep] + SETTLE_START_S, t1[keep] - SETTLE_END_S, t[keep]
    # Overlapping partitions add equations where data is scarce; with plenty (long sessions at
    # high rates) fewer suffice, and the work stays proportional to ~OFFSET_BUDGET samples.
    offsets = int(np.clip(round(WINDOW_OFFSETS * OFFSET_BUDGET / max(idx.size, 1)), 1, WINDOW_OFFSETS))
    blocks = [np.floor((t - t0 - off) / window_s) for off in np.arange(offsets) * (window_s / offsets)]
    blocks.append(np.floor((t1 - t) / window_s))
    parts = []
    nwin = 0
    for block in blocks:
        inside = block >= 0  # the offset partitions skip the head of each stretch
        w = _partition(t_s, speed_ms, rpm, gear, idx[inside], sid[inside], block[inside].astype(np.int64), window_s)
        parts.append(w[:6] + (w[6] + nwin,))
        nwin += len(w[0])
    return Windows(*[np.concatenate([p[i] for p in parts]) for i in range(7)], overlap=len(blocks))


def _partition(t_s, speed_ms, rpm, gear, idx, sid, block, window_s):
    """One partition of the stretches into windows (consecutive samples with one (sid, block))."""
    if idx.size == 0:
        return (np.zeros(0),) * 3 + (np.zeros(0, np.int64),) * 2 + (np.zeros(0), np.zeros(0, np.int64))
    new = np.ones(idx.size, dtype=bool)
    new[1:] = (sid[1:] != sid[:-1]) | (block[1:] != block[:-1])
    wid = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], idx.size)  # exclusive
    n = (ends - starts).astype(np.float64)
    # Time and speed relative to each window's first sample: an hour of cumsums stays exact.
    t = t_s[idx]
    tc = t - t[starts][wid]
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
        # with q_seg = dt_seg·W_seg. Zero for bad windows: cs runs across windows, keep it finite.
        w = np.where(good[wid], (tc - tbar[wid]) / sxx[wid], 0.0)
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
    cov: np.ndarray  # covariance of (torque…, c0, c2), inflated for the overlap of the windows

    def torque_at(self, rpm) -> np.ndarray:
        """T̃ at ``rpm`` (held flat outside the knots)."""
        return np.interp(rpm, self.knots_rpm, self.torque)

    def margin(self, rpm, ratio_n: float, ratio_next: float) -> tuple[np.ndarray, np.ndarray]:
        """``kₙ·T̃(r) − kₙ₊₁·T̃(r·kₙ₊₁/kₙ)`` at ``rpm`` (in gear n) and its standard error."""
        r = np.atleast_1d(np.asarray(rpm, dtype=np.float64))
        g = ratio_n * _hat(self.knots_rpm, r) - ratio_next * _hat(self.knots_rpm, r * ratio_next / ratio_n)
        nk = len(self.knots_rpm)
        var = np.einsum("ij,jk,ik->i", g, self.cov[:nk, :nk], g)
        return g @ self.torque, np.sqrt(np.maximum(var, 0.0))

    def accel_ms2(self, speed_ms, ratio: float) -> np.ndarray:
        """Fitted full-throttle acceleration, m/s², at ``speed_ms`` in a gear of ``ratio`` rpm per m/s."""
        v = np.asarray(speed_ms, dtype=np.float64)
        return ratio * self.torque_at(v * ratio) - self.c0 - self.c2 * v * v


def _hat(knots: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation weights (len(r) × len(knots)), flat outside the knots."""
    u = np.clip((r - knots[0]) / (knots[1] - knots[0]), 0.0, len(knots) - 1.0)
    j = np.minimum(np.floor(u).astype(np.int64), len(knots) - 2)
    out = np.zeros((len(r), len(knots)))
    rows = np.arange(len(r))
    out[rows, j] = 1.0 - (u - j)
    out[rows, j + 1] = u - j
    return out


def _knots(lo: float, hi: float) -> np.ndarray:
    """A grid at a round rpm step (so kinks at round rpm fall on knots), ≤ _MAX_KNOTS points."""
    span = max(hi - lo, 1.0)
    step = next((s for s in _NICE_STEPS_RPM if span / s <= _MAX_KNOTS - 2), _NICE_STEPS_RPM[-1])
    a = np.floor(lo / step) * step
    b = max(np.ceil(hi / step) * step, a + step)
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
    # Normal equations on scaled columns (ncol ≈ 50, so this is cheap even for 10⁵ windows).
    col = np.sqrt(np.sum(A * A, axis=0))
    # A knot no sample reaches (a gap in the rpm the data covers, as on the real Spa capture:
    # nothing clean between 3000 and 5000 rpm) has an empty column; scaled by ~0 its penalty
    # rows overflow. The smoothness penalty alone fixes such knots (a straight line across the
    # gap), so any finite scale does: take a typical data column's.
    filled = col[:nk] > 0
    col = np.where(col > 0, col, np.median(col[:nk][filled]) if filled.any() else 1.0)
    As = A / col
    Ds = lam * D / col
    P = Ds.T @ Ds
    weights = np.ones(nwin)
    # Resistance is physical only when c0, c2 ≥ 0: a coefficient that comes out negative (too
    # little speed range to separate it from the torque shape) is pinned to 0 from then on.
    active = np.ones(ncol, dtype=bool)
    for _ in range(iterations + 1):
        N = As.T @ (As * weights[:, None]) + P
        for _ in range(3):
            theta = np.zeros(ncol)
            theta[active] = _solve(N[np.ix_(active, active)], (As.T @ (weights * y))[active]) / col[active]
            neg = (theta < 0.0) & (np.arange(ncol) >= nk)
            if not neg.any():
                break
            active &= ~neg
        res = y - A @ theta
        scale = 1.4826 * float(np.median(np.abs(res - np.median(res)))) + 1e-9
        # Huber weights: full weight within 1.345 robust sigmas, 1/|r| beyond.
        weights = np.minimum(1.0, 1.345 * scale / np.maximum(np.abs(res), 1e-12))
    robust_rms = float(np.sqrt(np.sum(weights * res ** 2) / np.sum(weights)))
    # Every sample sits in win.overlap windows, so the rows are not independent: inflate.
    cov = np.zeros((ncol, ncol))
    cov[np.ix_(active, active)] = np.linalg.pinv(N[np.ix_(active, active)]) / np.outer(col[active], col[active])
    cov *= robust_rms ** 2 * win.overlap
    return TorqueFit(knots, theta[:nk], float(theta[nk]), float(theta[nk + 1]), robust_rms,
                     float(np.sqrt(np.mean(y ** 2))), res, lo, hi, cov)


def _solve(N: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(N, b)
    except np.linalg.LinAlgError:  # singular (e.g. one gear only): least-norm answer
        return np.linalg.lstsq(N, b, rcond=None)[0]


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
    if not rpm_lo <= rpm_hi:
        raise ValueError(f"empty rpm range {rpm_lo}..{rpm_hi}")
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


def recommend_upshift(knots_rpm, torque, ratio_n: float, ratio_next: float, rpm_lo: float, rpm_top: float,
                      limiter_rpm: float) -> tuple[float, str]:
    """The recommended upshift rpm out of gear n and how it was found (pure).

    ``rpm_lo``..``rpm_top`` is where the torque curve is backed by data for both gears (rpm in
    gear n). Returns (rpm, basis) with basis ``"crossing"`` (the torque crossing inside the
    data), ``"lowest_rpm"`` (gear n+1 is stronger already at rpm_lo), ``"trend"`` (gear n is
    still stronger at rpm_top, but the margin's straight-line trend over the top ``TREND_FRAC``
    of the range reaches zero below the limiter: a driver who shifts right at the optimum leaves
    no data above it) or ``"limiter"``.
    """
    top = min(rpm_top, limiter_rpm)
    lo = min(rpm_lo, top)
    cross = upshift_crossing_rpm(knots_rpm, torque, ratio_n, ratio_next, lo, top)
    if cross is not None:
        return (cross, "crossing") if cross > lo else (lo, "lowest_rpm")
    r = np.linspace(max(lo, top * (1.0 - TREND_FRAC)), top, 32)
    kr, tq = np.asarray(knots_rpm, dtype=np.float64), np.asarray(torque, dtype=np.float64)
    m = ratio_n * np.interp(r, kr, tq) - ratio_next * np.interp(r * ratio_next / ratio_n, kr, tq)
    if r[-1] > r[0]:
        slope, icept = np.polyfit(r - top, m, 1)
        if slope < 0.0:
            at = top + icept / -slope  # where the continued trend reaches zero margin
            if at < limiter_rpm:
                return float(max(at, top)), "trend"
    return float(limiter_rpm), "limiter"


# ---------------------------------------------------------------------------------------- analysis
def _drive_mask(s: _Samples, ratios: dict[int, float], held: np.ndarray) -> np.ndarray:
    """Samples of the engine driving the car under full throttle: a held forward gear with a
    ratio, throttle ≥ FULL_THROTTLE, clutch engaged (or unknown), speed ≥ MIN_SPEED_MS, rpm within
    RATIO_TOL of kₙ·speed (no clutch slip, no wheelspin) and at least SHIFT_GUARD_S after the
    reported gear last changed."""
    kmap = np.zeros(max(int(s.gear.max()), 0) + 2)
    for g, k in ratios.items():
        if g < len(kmap):
            kmap[g] = k
    gi = np.clip(s.gear, 0, len(kmap) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = held & (s.gear >= 1) & (kmap[gi] > 0) & (s.throttle >= FULL_THROTTLE) & (s.v >= MIN_SPEED_MS)
        ok &= np.isfinite(s.v) & np.isfinite(s.rpm)
        ok &= _ok_or_unknown(s.clutch, lambda c: c >= CLUTCH_ENGAGED)
        ok &= np.abs(s.rpm / (s.v * kmap[gi]) - 1.0) <= RATIO_TOL
    # Not within a shift: without a clutch channel (or with flat shifts, where the game cuts the
    # ignition and the pedal stays down) only the gear channel says a shift just happened. Any
    # change of the reported value counts (a one-sample blip is the gearbox moving), so a held
    # gear is guarded from its first sample, after the blips before it.
    change = np.flatnonzero(s.gear[1:] != s.gear[:-1]) + 1
    if change.size:
        k = np.searchsorted(change, np.arange(len(s.t)), side="right") - 1
        since = s.t - s.t[change[np.maximum(k, 0)]]
        ok &= (k < 0) | (since >= SHIFT_GUARD_S)
    return ok


def _clean_mask(s: _Samples, ratios: dict[int, float], held: np.ndarray, limiter: float) -> np.ndarray:
    """Drive samples (see _drive_mask) on a straight, brake off, below LIMITER_FRAC of the limiter."""
    ok = _drive_mask(s, ratios, held) & (s.rpm < LIMITER_FRAC * limiter)
    ok &= _ok_or_unknown(s.brake, lambda b: b <= NO_BRAKE)
    ok &= _ok_or_unknown(s.steer, lambda x: np.abs(x) <= MAX_STEER)
    ok &= _ok_or_unknown(s.g_lat, lambda x: np.abs(x) <= MAX_G_LAT)
    return ok


def limiter_rpm(s: _Samples, ratios: dict[int, float], held: np.ndarray) -> float:
    """The engine's maximum rpm: the game's own (meta ``max_rpm``) when a run reports it.

    Else the highest rpm of the drive samples (see _drive_mask): the limiter is reached under
    power in gear. A downshift over-rev (off throttle or clutch in, the engine spun by the wheels
    or free) is above the limiter and must not define it; so is the free-revving engine in
    neutral or with the clutch in. Without any drive sample, the highest forward-gear rpm seen.
    """
    if s.meta_max_rpm > 0:
        return s.meta_max_rpm
    drive = _drive_mask(s, ratios, held)
    pool = s.rpm[drive] if drive.any() else s.rpm[(s.gear >= 1) & np.isfinite(s.rpm)]
    return float(pool.max())


def _precision(fit: TorqueFit, kn: float, kn1: float, rec: float, basis: str) -> tuple[float | None, float]:
    """(standard error of the answer in rpm or None, precision factor 0..1) from the fit's covariance.

    At a crossing the margin's standard error σₘ over its slope is the rpm uncertainty δr, and the
    factor is 1 / (1 + (δr / (PRECISION_REF · r))²). For "limiter" it is how clearly gear n still
    wins at the top of the data: z = margin / σₘ there, factor 1 − exp(−z²/2).
    """
    at = min(rec, fit.rpm_hi)
    if basis == "limiter":
        m, sd = fit.margin([at], kn, kn1)
        z = float(m[0] / sd[0]) if sd[0] > 0 else np.inf
        return None, float(1.0 - np.exp(-0.5 * z * z)) if z > 0 else 0.0
    m, sd = fit.margin([at - 25.0, at, at + 25.0], kn, kn1)
    slope = abs(float(m[2] - m[0])) / 50.0
    if slope <= 0.0:
        return None, 0.0
    d_rpm = float(sd[1]) / slope
    return d_rpm, float(1.0 / (1.0 + (d_rpm / (PRECISION_REF * rec)) ** 2))


def _gear_entry(g: int, s: _Samples, clean: np.ndarray, fit: TorqueFit, ratios: dict[int, float],
                clean_s: dict[int, float], limiter: float, fit_factor: float, upshifts: np.ndarray,
                notes: list[str]) -> dict:
    """The ``gears`` entry of gear ``g`` (see :func:`analyze`; rpm, km/h, s, confidence 0..1), from
    the torque fit and the rpm of the observed upshifts g → g+1; appends what the driver should
    know about it to ``notes``."""
    kn, kn1 = ratios[g], ratios[g + 1]
    # From gear n's lowest clean rpm, but only where gear n+1's rpm is backed by data too
    # (T̃ is held flat below the data), up to the top of the data (any gear: one engine).
    lo_n = float(s.rpm[clean & (s.gear == g)].min())
    rec, basis = recommend_upshift(fit.knots_rpm, fit.torque, kn, kn1, max(lo_n, fit.rpm_lo * kn / kn1),
                                   fit.rpm_hi, limiter)
    s1 = clean_s.get(g, 0.0)
    s2 = clean_s.get(g + 1, 0.0)
    conf = (1.0 - np.exp(-s1 / CONFIDENCE_TAU_S)) * (1.0 - np.exp(-s2 / CONFIDENCE_TAU_S)) * fit_factor
    sigma_rpm, precision = _precision(fit, kn, kn1, rec, basis)
    conf *= precision
    # The answer lies above the rpm the data covers: a continued trend, not a measurement.
    if basis == "trend":
        conf *= 0.5
        notes.append(f"gear {g}: still the stronger gear at {fit.rpm_hi:.0f} rpm, the top of the data; "
                     f"{rec:.0f} rpm continues the trend of the torque curve there")
    elif basis == "limiter" and fit.rpm_hi < 0.98 * limiter:
        conf *= 0.5
        notes.append(f"gear {g}: still the stronger gear at {fit.rpm_hi:.0f} rpm, the top of the data; "
                     f"no data up to the limiter ({limiter:.0f} rpm)")
    if basis == "lowest_rpm":
        notes.append(f"gear {g}: gear {g + 1} already pulls harder at the lowest observed rpm")
    ups = upshifts
    return {
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
        "uncertainty_rpm": sigma_rpm,
        "basis": basis,
        "ratio_rpm_per_kmh": float(kn / KMH),
        "clean_s": float(s1),
    }


def _round_gears(gears: list[dict]) -> None:
    """Rounds the numbers of the ``gears`` entries for the JSON, in place (after the curves are
    built from the unrounded values)."""
    for g in gears:
        for key in ("recommended_rpm", "recommended_speed_kmh", "confidence", "ratio_rpm_per_kmh", "clean_s",
                    "uncertainty_rpm"):
            g[key] = json_num(g[key])
        for key in ("mean", "spread"):
            g["observed_rpm"][key] = json_num(g["observed_rpm"][key])


def analyze(runs: list[Frames]) -> dict:
    """Shift points of one car from a list of runs (pure, JSON-ready).

    Returns ``gears`` (one entry per gear n whose next gear was seen: ``gear``, ``upshifts``
    (count of observed n → n+1), ``observed_rpm`` {mean, spread (std), count} of the rpm at those
    upshifts, ``recommended_rpm``, ``recommended_speed_kmh``, ``confidence`` 0..1, plus
    ``uncertainty_rpm`` (standard error, None for "limiter"), ``ratio_rpm_per_kmh``, ``clean_s``
    (s of clean full-throttle data in gear n) and ``basis`` ("crossing" | "trend" | "limiter" |
    "lowest_rpm", see :func:`recommend_upshift`)),
    ``max_rpm`` (the limiter: the game's reported maximum when a run's meta has it, else the
    highest rpm under full throttle in a held gear, see the module docstring), ``curves`` (fitted
    acceleration in m/s² against speed in km/h per gear; the rebuilt torque curve, relative to
    its peak, against rpm, both as one fit and per gear) and ``summary``.

    Raises ValueError when there is no input or no usable full-throttle data.
    """
    if not runs or all(len(fr) == 0 for fr in runs):
        raise ValueError("no frames: shift points need at least one run with full-throttle pulls")
    # ACC's broadcasting sends neither: say so by name rather than "no usable data".
    require_channels("shift_points", runs, ("rpm", "throttle"))
    s = _collect(runs)
    fwd_rpm = s.rpm[(s.gear >= 1) & np.isfinite(s.rpm)]
    if fwd_rpm.size == 0:
        raise ValueError("no samples in a forward gear with a known rpm")
    # Ratios from runs long enough to be held, then held confirmed by those ratios (a one-sample
    # "1st" at 120 km/h has neither), then the ratios again from the confirmed runs only.
    held = held_mask(s.t, s.gear)
    ratios = gear_ratios(s.v, s.rpm, s.gear, s.clutch, held)
    if not ratios:
        raise ValueError("no engaged samples above 3 m/s with speed and rpm: cannot measure the gear ratios")
    held = held_mask(s.t, s.gear, s.v, s.rpm, ratios)
    ratios = gear_ratios(s.v, s.rpm, s.gear, s.clutch, held) or ratios
    limiter = limiter_rpm(s, ratios, held)
    clean = _clean_mask(s, ratios, held, limiter)
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
    clean_s = {int(g): WINDOW_S / win.overlap * int(np.sum(win.gear == g)) for g in win_gears}
    ev_gear, ev_rpm = upshift_events(s.t, s.rpm, s.gear, held)
    resid_rel = fit.residual_rms / max(fit.accel_rms, 1e-9)
    fit_factor = float(np.exp(-resid_rel / CONFIDENCE_RESID_REF))

    gears = []
    notes: list[str] = []
    for g in sorted(clean_s):
        if g + 1 in ratios:
            gears.append(_gear_entry(g, s, clean, fit, ratios, clean_s, limiter, fit_factor,
                                     upshifts=ev_rpm[(ev_gear == g) & np.isfinite(ev_rpm)], notes=notes))
    if not gears:
        raise ValueError("full-throttle data in one gear only: shift points need a next gear with data")

    curves = _curves(fit, win, s, ratios, sorted(clean_s))
    _round_gears(gears)
    return {"gears": gears, "max_rpm": json_num(limiter), "curves": curves,
            "summary": _summary(gears, win, fit, notes)}


def _summary(gears: list[dict], win: Windows, fit: TorqueFit, notes: list[str]) -> dict:
    """``summary`` of :func:`analyze`, from its rounded ``gears``."""
    line = ", ".join(f"{g['gear']}→{g['gear'] + 1} {g['recommended_rpm']:.0f} rpm"
                     + (f" ({g['basis']})" if g["basis"] != "crossing" else "") for g in gears)
    return {
        "line": line,
        "recommended_rpm": {str(g["gear"]): g["recommended_rpm"] for g in gears},
        "confidence": json_num(min(g["confidence"] for g in gears)),
        "windows": len(win.accel_ms2),
        "fit_residual_ms2": json_num(fit.residual_rms),
        # r(v) = c0 + c2·v²; c2 is tiny in SI, so give the drag part at 100 km/h instead.
        "resistance": {"c0_ms2": json_num(fit.c0),
                       "drag_at_100kmh_ms2": json_num(fit.c2 * (100.0 / KMH) ** 2)},
        "notes": notes,
        "accel_unit": "m/s²",
    }


def _curves(fit: TorqueFit, win: Windows, s: _Samples, ratios: dict[int, float], gears: list[int]) -> dict:
    """Chart data: ≤ CURVE_POINTS points per list."""
    rpm_grid = np.linspace(fit.rpm_lo, fit.rpm_hi, CURVE_POINTS)
    peak = float(np.max(fit.torque_at(rpm_grid))) or 1.0  # the peak within the data
    per_gear = []
    for g in gears:
        k = ratios[g]
        sel = win.gear == g
        v_lo, v_hi = float(win.speed_ms[sel].min()), float(win.speed_ms[sel].max())
        vg = np.linspace(v_lo, v_hi, CURVE_POINTS)
        # Each window's own torque estimate: (a + r(v)) / kₙ, what this gear says about the engine.
        pts = np.flatnonzero(sel)[downsample(int(sel.sum()), CURVE_POINTS)]
        pts = pts[np.argsort(win.speed_ms[pts], kind="stable")]
        tq = (win.accel_ms2[pts] + fit.c0 + fit.c2 * win.speed_ms[pts] ** 2) / k / peak
        per_gear.append({
            "gear": g,
            "speed_kmh": json_num(vg * KMH),
            "accel_ms2": json_num(fit.accel_ms2(vg, k)),
            "measured_speed_kmh": json_num(win.speed_ms[pts] * KMH),
            "measured_accel_ms2": json_num(win.accel_ms2[pts]),
            "torque_rpm": json_num(win.rpm[pts]),
            "torque_rel": json_num(tq),
        })
    return {
        "accel_unit": "m/s²",
        "speed_unit": "km/h",
        "torque_unit": "relative to the fitted peak (1 = peak wheel torque per ratio)",
        "torque": {"rpm": json_num(rpm_grid), "rel": json_num(fit.torque_at(rpm_grid) / peak)},
        "gears": per_gear,
    }
