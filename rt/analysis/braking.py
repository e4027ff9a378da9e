"""Braking analysis: where each braking zone starts, how hard and how long, lap by lap.

How it is made
--------------
1. Braking events come from the brake pedal (0..1): an event starts where the pedal rises above
   :data:`BRAKE_ON` and ends where it falls back below it. The onset time is interpolated between
   the two frames either side of the crossing (sub-sample), and its lap position is read off the
   run's unwrapped ``norm_pos`` at that time. Events less than :data:`MERGE_GAP_S` apart are one
   (pedal chatter around the threshold); events shorter than :data:`MIN_DURATION_S` or starting
   slower than :data:`MIN_ENTRY_KMH` are ignored (brushing the pedal, the pit box). Events cut off
   by the start or the end of a recording are ignored (their onset or release was not seen).
   A run without a brake channel (ACC's broadcasting has none) takes its events from the speed
   alone (:func:`speed_events`): the deceleration, the same glitch-proof windowed fit of the
   speed as for the peak below, over :data:`DECEL_ON_MS2` m/s² for at least
   :data:`SPEED_MIN_DURATION_S` s with a speed drop of at least :data:`SPEED_MIN_DROP_KMH`; the
   onset is the kink of the speed, where the straight-line fits of the speed just before and
   just after the threshold crossing meet (a centred fit's crossing alone would lead or lag the
   onset by up to half its window, depending on how hard the car brakes). Lifting off at speed
   (drag, engine braking: well under ``DECEL_ON_MS2``) is no braking zone. Such events have no
   ``peak_brake`` (null) and the summary says ``brake_source: "speed"`` with a ``note``. Checked
   against the pedal of the same frames (tests/test_analysis_acc.py): on the simulator every zone
   is found and each lap's onset from the speed lies within :data:`SPEED_ONSET_TOL_M` of the
   pedal's at 10 Hz (ACC's rate; 3 m at 60 Hz and up), always a little after it (the
   deceleration builds as the pedal goes down); on the real AC Monza capture all 8 zones are found,
   within :data:`SPEED_ONSET_TOL_REAL_M` (at Ascari and Parabolica the driver lifts before braking
   and the speed's kink is the lift, up to 13 m before the pedal).
2. Each event belongs to the lap its onset lies in; laps that were rewound are left out.
3. Events are matched across laps by clustering their onsets along the lap (single linkage with
   a tolerance of :data:`CLUSTER_TOL_M` m, round the start line too); two events of one lap in
   one cluster are one zone of that lap (a dab and the real stop). Zones are numbered in driving
   order from the start line.
4. Metres: ``norm_pos × track length``, with ``meta["track_length_m"]`` when the game reports it,
   else the length of the track map made from the same runs (:mod:`rt.analysis.track_map`).

Per event: ``entry_speed_kmh`` (at the onset, interpolated), ``min_speed_kmh`` (lowest while
braking), ``peak_brake`` (pedal 0..1), ``peak_decel_g``, ``decel_source``, ``duration_s``,
``distance_braking_m`` (onset to release along the lap) and ``trail_braking_share`` (share of the
braking time with |steer| > :data:`TRAIL_STEER`). A zone's own values are the medians over its laps
(its ``decel_source`` is its laps' source, or ``"mixed"``).

Peak deceleration (g, positive = slowing)
-----------------------------------------
Never a difference of two neighbouring frames, nor a fit that one bad frame can sway: a single
glitched packet (a stale or jumped speed) turns either into several g that no car pulls. The rule:

* Speed: a frame further than :data:`GLITCH_KMH` from the running median of the
  :data:`DESPIKE_FRAMES` frames around it is a glitch and is left out (a slowing car's speed falls
  monotonically and equals its running median, whatever the frame spacing; a glitch of one or
  two frames is outvoted). A change between two kept frames faster than :data:`MAX_STEP_G`
  (a jump that lasts, a reset) is no deceleration: no fit reaches across it.
* The deceleration at a frame is the least-squares slope of the kept speeds over
  ±:data:`DECEL_HALF_WINDOW_S` s (widened to hold :data:`DECEL_MIN_FRAMES` frames at the run's
  typical frame interval); a window with fewer than :data:`DECEL_MIN_FRAMES` frames, or whose
  frames span less than :data:`DECEL_MIN_SPAN_FRAC` of its width (packet loss, a burst after a
  stall), gives no value.
* Where the game has an accelerometer (``g_long`` known on every frame of the event), the
  reported peak is the accelerometer's (``decel_source`` ``"accelerometer"``): its running median
  (outvoting a one-frame kerb strike) is integrated over time and put through the same windowed
  fit, which makes it the accelerometer's average over the same frames with the weights the
  speed's slope gives them; nothing in the speed channel can touch it. Elsewhere the peak is the
  speed's (``"speed"``). On the real AC Monza capture the two agree to ≤ 0.03 g wherever the car
  brakes in a straight line or nearly; braking while turning all the way into Ascari's exit, the
  car slides and its speed falls 0.15 g faster than the accelerometer (which measures along the
  car) reads.
* The peak is the largest value over the frames between the onset and the release; NaN (None in
  the result) when no window there qualifies.
* Not undone here: a receive clock that stalls and then catches up (no game timer) compresses
  time for every frame of a window alike; :func:`rt.analysis.geometry.run_clock` uses the game's
  timer where there is one.
"""

from __future__ import annotations

import math

import numpy as np

from .frames import Frames, json_num
from .clock import run_clock
from .geometry import windowed_slope
from .laps import Lap, Laps, run_laps, unwrapped_position
from .track_map import line_from_laps

#: 2: peak_decel_g from the accelerometer where the game has one, glitch-proof from the speed
#: elsewhere, with decel_source.
VERSION = 2
#: Pedal position (0..1) above which the driver is braking.
BRAKE_ON = 0.05
#: Braking events separated by less than this are one event, s.
MERGE_GAP_S = 0.25
#: Shorter braking events are ignored, s.
MIN_DURATION_S = 0.1
#: Events starting slower than this are ignored (manoeuvring, pit box), km/h.
MIN_ENTRY_KMH = 30.0
#: Onsets closer than this along the lap are the same braking zone (in different laps), m.
CLUSTER_TOL_M = 30.0
#: The same, as a fraction of the lap, when the track length is unknown.
CLUSTER_TOL_LAPS = 0.006
#: |steer| (−1..1) above which braking counts as trail braking (braking while turning).
TRAIL_STEER = 0.1
#: Half width of the least-squares window for the deceleration, s.
DECEL_HALF_WINDOW_S = 0.15
#: A deceleration comes from a fit over at least this many frames (wider windows for slow feeds).
DECEL_MIN_FRAMES = 5
#: … whose frames span at least this fraction of the window's width (not a burst after a stall).
DECEL_MIN_SPAN_FRAC = 2.0 / 3.0
#: Width of the running median that finds glitches (of one or two frames), frames.
DESPIKE_FRAMES = 5
#: A frame whose speed is further than this from that running median is a glitch, left out, km/h.
GLITCH_KMH = 0.5
#: A change of speed between two frames faster than this is a jump (a glitch that lasts, a reset),
#: not a deceleration: no fit reaches across it, g. Above any car's braking (F1: ≈ 6 g).
MAX_STEP_G = 8.0
#: Frame intervals longer than this (packet loss) count only this long in time shares, s.
MAX_DT_S = 0.1
G = 9.80665
#: Runs without a brake channel: slowing harder than this is braking, m/s² (≈ 0.4 g; a GT car
#: lifting at 250 km/h slows ≈ 3 m/s² from drag and engine braking) …
DECEL_ON_MS2 = 4.0
#: … for at least this long, s …
SPEED_MIN_DURATION_S = 0.15
#: … losing at least this much speed, km/h.
SPEED_MIN_DROP_KMH = 10.0
#: Measured (tests/test_analysis_acc.py): the speed's onsets lie within this of the pedal's on
#: the simulator at 10 Hz, m …
SPEED_ONSET_TOL_M = 7.0
#: … and on the real AC Monza capture, m.
SPEED_ONSET_TOL_REAL_M = 13.0
#: Frames per block of the run-long deceleration fit (its cumulative sums stay precise per block).
SLOPE_BLOCK_FRAMES = 4096


def braking_events(
    t: np.ndarray,
    brake: np.ndarray,
    threshold: float = BRAKE_ON,
    merge_gap_s: float = MERGE_GAP_S,
    min_duration_s: float = MIN_DURATION_S,
):
    """Braking events of one run: ``(on, off)`` frame indices (int arrays).

    ``on`` is the first frame above ``threshold``, ``off`` the first frame below it again (so the
    event holds frames ``on..off-1``). ``t`` in s, ``brake`` 0..1 (NaN = not braking). Events
    whose onset or release lies outside the recording are dropped.
    """
    b = np.asarray(brake, dtype=np.float64)
    above = b > threshold  # NaN compares False: unknown = not braking
    if len(above) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    d = np.diff(above.astype(np.int8))
    on = np.flatnonzero(d == 1) + 1
    off = np.flatnonzero(d == -1) + 1
    if above[0]:
        off = off[1:]  # braking when the recording starts: the onset was not seen
    on = on[: len(off)]  # still braking at the end: the release was not seen
    if len(on) == 0:
        return on, off
    t = np.asarray(t, dtype=np.float64)
    # Merge events separated by a short release (chatter around the threshold).
    gap = t[on[1:]] - t[off[:-1] - 1]
    keep_on = np.concatenate(([True], gap >= merge_gap_s))
    keep_off = np.concatenate((gap >= merge_gap_s, [True]))
    on, off = on[keep_on], off[keep_off]
    long_enough = t[off - 1] - t[on - 1] >= min_duration_s
    return on[long_enough], off[long_enough]


def run_decel_ms2(t: np.ndarray, speed_kmh: np.ndarray) -> np.ndarray:
    """Deceleration at every frame of a run, m/s² (+ = slowing; NaN where no fit qualifies): the
    glitch-proof windowed fit of the speed (:func:`_speed_for_fit`, :func:`_window_slopes`), in
    overlapping blocks of :data:`SLOPE_BLOCK_FRAMES` frames so the fits' sums stay precise over
    an hour of frames. ``t`` s, ``speed_kmh`` km/h."""
    t = np.asarray(t, dtype=np.float64)
    n = len(t)
    out = np.full(n, np.nan)
    dt_typ = typical_interval(t)
    half = decel_half_window(dt_typ)
    dt0 = dt_typ if math.isfinite(dt_typ) else 0.0
    for a in range(0, n, SLOPE_BLOCK_FRAMES):
        b = min(n, a + SLOPE_BLOCK_FRAMES)
        lo = int(np.searchsorted(t, t[a] - 2 * half))
        hi = min(n, int(np.searchsorted(t, t[b - 1] + 2 * half, side="right")))
        ts = t[lo:hi]
        vs, cut = _speed_for_fit(ts, np.asarray(speed_kmh[lo:hi], dtype=np.float64), dt0)
        out[a:b] = -_window_slopes(ts, vs, half, cut)[a - lo : b - lo] / 3.6
    return out


def speed_events(t: np.ndarray, speed_kmh: np.ndarray, decel_ms2: np.ndarray):
    """Braking events of a run without a brake channel: ``(on, off)`` frame indices as
    :func:`braking_events` gives them, from the deceleration ``decel_ms2`` (m/s²,
    :func:`run_decel_ms2`) over :data:`DECEL_ON_MS2` for :data:`SPEED_MIN_DURATION_S` s or more,
    losing at least :data:`SPEED_MIN_DROP_KMH` km/h (``speed_kmh``) between onset and release."""
    on, off = braking_events(t, decel_ms2, DECEL_ON_MS2, MERGE_GAP_S, SPEED_MIN_DURATION_S)
    if len(on) == 0:
        return on, off
    v = np.asarray(speed_kmh, dtype=np.float64)
    drop = np.array([np.nanmax(v[a - 1 : b]) - np.nanmin(v[a - 1 : b]) for a, b in zip(on, off)])
    keep = drop >= SPEED_MIN_DROP_KMH
    return on[keep], off[keep]


def speed_onsets(t: np.ndarray, speed_kmh: np.ndarray, t_cross: np.ndarray, t_off: np.ndarray) -> np.ndarray:
    """Onset of each speed-derived event, s: the kink of the speed where the straight-line fit of
    the speed before it meets the fit after it (split at the fastest frame of the fit window
    before the threshold crossing ``t_cross``, s; the fit after ends at the release ``t_off`` at
    the latest). The crossing itself where either fit lacks frames or the lines meet outside ±2
    fit windows of it."""
    t = np.asarray(t, dtype=np.float64)
    v = np.asarray(speed_kmh, dtype=np.float64)
    half = decel_half_window(typical_interval(t))
    out = np.asarray(t_cross, dtype=np.float64).copy()
    known = np.isfinite(v)
    for i, (tc, te) in enumerate(zip(out.tolist(), np.asarray(t_off, dtype=np.float64).tolist())):
        # Split at the fastest frame shortly before the crossing: the kink is next to it (a short,
        # late-detected stop at 10 Hz leaves too few frames for fixed windows either side).
        near = np.flatnonzero((t >= tc - 2 * half) & (t <= tc) & known)
        if not len(near):
            continue
        tm = t[near[np.argmax(v[near])]]
        pre = (t >= tc - 4 * half) & (t <= tm) & known
        post = (t > tm) & (t <= min(tc + 3 * half, te)) & known
        if pre.sum() < 2 or post.sum() < 2:
            continue
        b1, a1 = np.polyfit(t[pre] - tc, v[pre], 1)
        b2, a2 = np.polyfit(t[post] - tc, v[post], 1)
        if b2 >= b1:
            continue
        x = (a2 - a1) / (b1 - b2)
        if -2 * half <= x <= 2 * half:
            out[i] = tc + x
    return out


def _cross(t, v, i, threshold):
    """Fraction of the way from frame i-1 to frame i where ``v`` crosses ``threshold`` (0..1)."""
    a, b = v[i - 1], v[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (threshold - a) / (b - a)
    return np.clip(np.nan_to_num(f, nan=1.0), 0.0, 1.0)


def _at_fraction(t, v, i, f, tq):
    """v a fraction f of the way from frame i-1 to frame i (the same fraction as the pedal
    crossing, so positions need no clock); where either frame lacks v, interpolated in time over
    the frames that have it."""
    a, b = v[i - 1], v[i]
    out = a + f * (b - a)
    bad = ~np.isfinite(out)
    if bad.any():
        out[bad] = _interp_finite(tq[bad], t, v)
    return out


def _interp_finite(tq, t, v):
    """v at times tq, interpolated over the finite samples of v (NaN if none)."""
    fin = np.isfinite(v)
    if not fin.any():
        return np.full(np.shape(tq), np.nan)
    return np.interp(tq, t[fin], v[fin])


def _running_median(v: np.ndarray, width: int = DESPIKE_FRAMES) -> np.ndarray:
    """Centred running median of ``width`` frames (odd); the ends repeat the first/last value.

    A monotonic stretch comes out unchanged (the median of sorted values is the middle one),
    whatever the frame spacing; a glitch of up to ``width // 2`` frames is outvoted by its
    neighbours. NaN where the window holds one.
    """
    if len(v) < width:
        return v.copy()
    h = width // 2
    padded = np.concatenate((np.repeat(v[:1], h), v, np.repeat(v[-1:], h)))
    win = np.lib.stride_tricks.sliding_window_view(padded, width)
    med = np.sort(win, axis=1)[:, h]  # (np.median is 3× slower on these short rows)
    med[np.isnan(win).any(axis=1)] = np.nan
    return med


def _integral(t: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running trapezoid integral of ``y`` over ``t`` (units of y × s), NaN where ``y`` is, and
    where it restarts (bool per frame: the first known frame after an unknown one).

    Its level after a restart is off by a constant: fits must not reach across one.
    """
    inc = 0.5 * (y[1:] + y[:-1]) * np.diff(t)
    u = np.concatenate(([0.0], np.cumsum(np.where(np.isfinite(inc), inc, 0.0))))
    known = np.isfinite(y)
    u[~known] = np.nan
    restart = np.concatenate(([False], known[1:] & ~known[:-1]))
    return u, restart


def _speed_for_fit(t: np.ndarray, v: np.ndarray, dt_typ: float) -> tuple[np.ndarray, np.ndarray]:
    """Speed (km/h) ready for the deceleration fit: glitch frames set to NaN (left out), and the
    frames after a jump (bool per frame: fits must not reach across it).

    A glitch is a frame more than :data:`GLITCH_KMH` from the running median of the
    :data:`DESPIKE_FRAMES` frames around it (a slowing car's speed falls monotonically and equals
    its running median). A jump is a change between two kept frames faster than
    :data:`MAX_STEP_G` over the longer of their interval and ``dt_typ`` (s; the run's typical
    frame interval, so a burst of packets received together does not make every change a jump).
    """
    v = np.asarray(v, dtype=np.float64)
    keep = np.abs(v - _running_median(v)) <= GLITCH_KMH  # NaN compares False: unknown is left out
    out = np.where(keep, v, np.nan)
    cut = np.zeros(len(v), bool)
    idx = np.flatnonzero(keep)
    if len(idx) > 1:
        step = np.abs(np.diff(v[idx]))
        limit = MAX_STEP_G * G * 3.6 * np.maximum(np.diff(t[idx]), dt_typ)
        cut[idx[1:][step > limit]] = True
    return out, cut


def _window_slopes(
    t: np.ndarray, y: np.ndarray, half: float, cut: np.ndarray | None = None
) -> np.ndarray:
    """Least-squares slope of ``y`` per s over ±``half`` s at each frame with a known ``y``.

    Unknown frames are left out of the fits; ``cut`` (bool per frame, or None) marks frames that
    start a new stretch, which no fit reaches across. NaN where the window holds fewer than
    :data:`DECEL_MIN_FRAMES` frames or its frames span less than :data:`DECEL_MIN_SPAN_FRAC` of
    ``2 × half``: too few frames, or frames bunched on one side, make a slope out of a step.
    """
    out = np.full(len(t), np.nan)
    idx = np.flatnonzero(np.isfinite(y))
    if len(idx) == 0:
        return out
    tk, yk = t[idx], y[idx]
    new = np.zeros(len(idx), bool)
    new[0] = True
    if cut is not None:
        new |= cut[idx]
    starts = np.flatnonzero(new)
    for a, b in zip(starts, np.append(starts[1:], len(idx))):
        if b - a < DECEL_MIN_FRAMES:
            continue
        tt = tk[a:b]
        slope = windowed_slope(tt, yk[a:b], half)
        lo = np.searchsorted(tt, tt - half, side="left")
        hi = np.searchsorted(tt, tt + half, side="right")
        spread = tt[hi - 1] - tt[lo] >= DECEL_MIN_SPAN_FRAC * 2.0 * half
        ok = (hi - lo >= DECEL_MIN_FRAMES) & spread
        out[idx[a:b]] = np.where(ok, slope, np.nan)
    return out


def _peak(x: np.ndarray) -> float:
    """Largest finite value, NaN if none."""
    x = x[np.isfinite(x)]
    return float(x.max()) if len(x) else math.nan


def typical_interval(t: np.ndarray) -> float:
    """The run's typical frame interval, s: the median of its positive steps of ``t`` (s); NaN
    for fewer than two distinct times. Duplicated packets (a step of 0) are not the frame rate."""
    dt = np.diff(np.asarray(t, dtype=np.float64))
    dt = dt[dt > 0]
    return float(np.median(dt)) if len(dt) else math.nan


def decel_half_window(dt_typ: float) -> float:
    """Half width of the deceleration fit, s: :data:`DECEL_HALF_WINDOW_S`, widened so a window
    holds :data:`DECEL_MIN_FRAMES` frames at the typical frame interval ``dt_typ`` (s)."""
    if not math.isfinite(dt_typ):
        return DECEL_HALF_WINDOW_S
    return max(DECEL_HALF_WINDOW_S, 0.5 * DECEL_MIN_FRAMES * dt_typ)


def zone_metrics(
    t: np.ndarray,
    brake: np.ndarray,
    speed_kmh: np.ndarray,
    p: np.ndarray,
    steer: np.ndarray | None,
    on: np.ndarray,
    off: np.ndarray,
    threshold: float = BRAKE_ON,
    g_long: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Measurements of braking events ``on``/``off`` (from :func:`braking_events`) of one run.

    Inputs per frame: ``t`` s, ``brake`` 0..1, ``speed_kmh``, ``p`` position along the lap in
    laps (continuous over the run, NaN unknown), ``steer`` −1..1 (or None), ``g_long`` the car's
    longitudinal accelerometer, g, + speeding up (or None; NaN unknown).
    Returns arrays, one value per event: ``t_on``/``t_off`` s, ``p_on``/``p_off`` laps,
    ``entry_speed_kmh``, ``min_speed_kmh``, ``peak_brake``, ``duration_s``,
    ``trail_braking_share`` (0..1, NaN without steering data), and the peak deceleration (g,
    positive = slowing; the rule is in the module docstring): ``peak_decel_speed_g`` from the
    speed, ``peak_decel_accel_g`` from the accelerometer (NaN unless ``g_long`` is known on every
    frame of the event), ``peak_decel_g`` the accelerometer's where known, else the speed's, and
    ``decel_source`` (object array: ``"accelerometer"``, ``"speed"`` or None).
    """
    t = np.asarray(t, dtype=np.float64)
    b = np.nan_to_num(np.asarray(brake, dtype=np.float64), nan=0.0)
    v = np.asarray(speed_kmh, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    fon = _cross(t, b, on, threshold)
    foff = _cross(t, b, off, threshold)
    t_on = t[on - 1] + fon * (t[on] - t[on - 1])
    t_off = t[off - 1] + foff * (t[off] - t[off - 1])
    out: dict[str, np.ndarray] = {
        "t_on": t_on,
        "t_off": t_off,
        "p_on": _at_fraction(t, p, on, fon, t_on),
        "p_off": _at_fraction(t, p, off, foff, t_off),
        "entry_speed_kmh": _at_fraction(t, v, on, fon, t_on),
        "duration_s": t_off - t_on,
    }
    k = len(on)
    if k == 0:
        for key in (
            "min_speed_kmh",
            "peak_brake",
            "peak_decel_g",
            "peak_decel_speed_g",
            "peak_decel_accel_g",
            "trail_braking_share",
        ):
            out[key] = np.zeros(0)
        out["decel_source"] = np.zeros(0, dtype=object)
        return out
    pairs = np.empty(2 * k, np.int64)
    pairs[0::2], pairs[1::2] = on, off
    vv = np.where(np.isfinite(v), v, np.inf)
    out["min_speed_kmh"] = np.minimum.reduceat(vv, pairs)[0::2]
    out["min_speed_kmh"][~np.isfinite(out["min_speed_kmh"])] = np.nan
    out["peak_brake"] = np.maximum.reduceat(b, pairs)[0::2]
    out["trail_braking_share"] = _trail_share(t, steer, pairs)
    out.update(_peak_decels(t, v, on, off, t_on, t_off, g_long))
    return out


def _trail_share(t: np.ndarray, steer: np.ndarray | None, pairs: np.ndarray) -> np.ndarray:
    """Per event (``pairs``: on, off, on, off, … frame indices), the time-weighted share (0..1) of
    its frames with the wheel turned past :data:`TRAIL_STEER`; NaN without steering data.

    Time-weighted with packet gaps capped at :data:`MAX_DT_S`, so a stalled feed does not make
    one frame's steering count for seconds."""
    k = len(pairs) // 2
    if steer is None or not np.isfinite(steer).any():
        return np.full(k, np.nan)
    dt = np.minimum(np.diff(t, append=t[-1]), MAX_DT_S)
    s = np.asarray(steer, dtype=np.float64)
    known = np.isfinite(s)
    turned = known & (np.abs(np.where(known, s, 0.0)) > TRAIL_STEER)
    tot = np.add.reduceat(dt * known, pairs)[0::2]
    trn = np.add.reduceat(dt * turned, pairs)[0::2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(tot > 0, trn / tot, np.nan)


def _peak_decels(t, v, on, off, t_on, t_off, g_long) -> dict[str, np.ndarray]:
    """Peak deceleration of each event, g (+ = slowing): ``peak_decel_speed_g`` from the speed
    (km/h), ``peak_decel_accel_g`` from the accelerometer ``g_long`` (g, NaN unless known on every
    frame of the event), ``peak_decel_g`` the accelerometer's where known else the speed's, and
    ``decel_source``.

    Fitted per event on short arrays (the event plus two windows either side) so the median and
    the fits at its ends see real neighbours, without a pass over the whole run per event."""
    k = len(on)
    dt_typ = typical_interval(t)
    half = decel_half_window(dt_typ)
    gl = None if g_long is None else np.asarray(g_long, dtype=np.float64)
    dec_v = np.full(k, np.nan)
    dec_a = np.full(k, np.nan)
    n = len(t)
    for i in range(k):
        a = int(np.searchsorted(t, t_on[i] - 2 * half))
        e = min(n, int(np.searchsorted(t, t_off[i] + 2 * half, side="right")))
        ts = t[a:e]
        inside = (ts >= t_on[i]) & (ts <= t_off[i])
        vs, cut = _speed_for_fit(ts, v[a:e], dt_typ if math.isfinite(dt_typ) else 0.0)
        dec_v[i] = _peak(-_window_slopes(ts, vs, half, cut)[inside]) / 3.6 / G
        if gl is not None and np.isfinite(gl[on[i] : off[i]]).all():
            # The accelerometer's own glitches (a kerb) are outvoted by the median; its integral
            # through the same fit is its average with the weights the speed's slope gives.
            u, restart = _integral(ts, _running_median(gl[a:e]))
            dec_a[i] = _peak(-_window_slopes(ts, u, half, restart)[inside])
    use_a = np.isfinite(dec_a)
    sources = ["accelerometer" if ua else "speed" if math.isfinite(dv) else None for ua, dv in zip(use_a, dec_v)]
    return {
        "peak_decel_speed_g": dec_v,
        "peak_decel_accel_g": dec_a,
        "peak_decel_g": np.where(use_a, dec_a, dec_v),
        "decel_source": np.array(sources, dtype=object),
    }


def cluster_positions(p: np.ndarray, tol: float) -> np.ndarray:
    """Cluster labels (0..k-1, in order of position) of positions ``p`` along a lap (laps, taken
    modulo 1): single linkage, neighbours closer than ``tol`` laps join, also across the line."""
    q = np.mod(np.asarray(p, dtype=np.float64), 1.0)
    n = len(q)
    if n == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(q, kind="stable")
    qs = q[order]
    new = np.concatenate(([True], np.diff(qs) > tol))
    lab_sorted = np.cumsum(new) - 1
    if lab_sorted[-1] > 0 and qs[0] + 1.0 - qs[-1] <= tol:
        lab_sorted[lab_sorted == lab_sorted[-1]] = 0  # the last cluster continues over the line
    labels = np.empty(n, np.int64)
    labels[order] = lab_sorted
    return labels


def _med(values) -> float:
    a = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    return float(np.median(a)) if len(a) else math.nan


def _std(values) -> float | None:
    a = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    return float(np.std(a)) if len(a) >= 2 else None


def _track_length(runs: list[Frames], laps: list[Lap]) -> tuple[float | None, str | None]:
    for fr in runs:
        length = fr.meta.get("track_length_m")
        if length is not None and math.isfinite(float(length)) and float(length) > 0:
            return float(length), "meta"
    try:
        return line_from_laps(laps).length_m, "track_map"
    except ValueError:
        return None, None


def analyze(runs: list[Frames]) -> dict:
    """Braking zones of the runs, matched across laps (see the module docstring).

    Returns a JSON-ready dict: ``zones`` (each: ``number``, ``norm_pos``, ``distance_m``, the
    medians ``entry_speed_kmh``, ``min_speed_kmh``, ``peak_brake``, ``peak_decel_g``,
    ``duration_s``, ``distance_braking_m``, ``trail_braking_share``, and ``decel_source`` (see
    the module docstring; ``"mixed"`` when its laps differ); ``laps`` with the same per
    lap plus ``lap``, ``run_id``, ``delta_to_best_m``; ``spread`` {``onset_m``,
    ``min_speed_kmh``} standard deviations over the laps; ``delta_to_best_m``, one per entry of
    ``laps``: the lap's onset minus the best lap's, m, + = braking later) and ``summary``.
    Raises ValueError for no runs, neither a brake channel nor the speed, or no usable laps.
    """
    if not runs or not any(len(fr) for fr in runs):
        raise ValueError("braking_analysis needs at least one run with frames")
    if not any(_has(fr, "brake") or _has(fr, "speed_kmh") for fr in runs):
        raise ValueError("braking_analysis needs the brake pedal or the speed, and no run has either")
    laps = run_laps(runs).pick_placed()
    usable = [lap for lap in laps if not lap.rewind]
    if not usable:
        raise ValueError("no usable laps: no frames with a known norm_pos, or every lap was rewound")
    length, length_source = _track_length(runs, laps)
    tol = CLUSTER_TOL_M / length if length else CLUSTER_TOL_LAPS
    best = laps.pick_fastest()

    ev_lap, ev, clocks, brake_sources = _collect_events(laps, tol)
    zones = _cluster_zones(ev_lap, ev, tol, length, best)
    hardest = max(zones, key=lambda z: z["peak_decel_g"] or 0.0) if zones else None
    sources = {s for s in ev.get("decel_source", []) if s is not None}
    return {
        "zones": zones,
        "summary": {
            "zones": len(zones),
            "laps": len(usable),
            "laps_complete": sum(lap.good for lap in laps),
            "events": len(ev_lap),
            "best_lap": None
            if best is None
            else {
                "lap": best.lap,
                "run_id": best.run_id,
                "time_ms": json_num(best.time_ms, 1),
            },
            "track_length_m": json_num(length, 2),
            "track_length_source": length_source,
            "hardest_zone": None if hardest is None else hardest["number"],
            "peak_decel_source": "/".join(sorted(sources)) or None,
            "brake_source": "/".join(sorted(brake_sources)) or None,
            **({"note": "braking zones derived from speed (deceleration over "
                        f"{DECEL_ON_MS2:g} m/s²): the feed has no brake channel"}
               if "speed" in brake_sources else {}),
            "clock": "/".join(sorted(clocks)) or None,
            "thresholds": {
                "brake_on": BRAKE_ON,
                "merge_gap_s": MERGE_GAP_S,
                "min_duration_s": MIN_DURATION_S,
                "min_entry_kmh": MIN_ENTRY_KMH,
                "cluster_tol_m": CLUSTER_TOL_M,
                "trail_steer": TRAIL_STEER,
                "decel_half_window_s": DECEL_HALF_WINDOW_S,
                "decel_min_frames": DECEL_MIN_FRAMES,
                **({"decel_on_ms2": DECEL_ON_MS2, "speed_min_duration_s": SPEED_MIN_DURATION_S,
                    "speed_min_drop_kmh": SPEED_MIN_DROP_KMH} if "speed" in brake_sources else {}),
            },
        },
    }


def _has(fr: Frames, name: str) -> bool:
    return name in fr and bool(np.isfinite(np.asarray(fr[name], dtype=np.float64)).any())


def _collect_events(laps: Laps, tol: float) -> tuple[list[Lap], dict[str, list], set[str], set[str]]:
    """The braking events of every run that start in a lap without a rewind, above
    :data:`MIN_ENTRY_KMH`: (the lap of each event, {metric: one value per event} with ``p_on`` /
    ``p_off`` lap-relative in laps, the run clocks used, the brake sources used: ``"pedal"``, or
    ``"speed"`` for runs without a brake channel). Events of one lap closer than ``tol``
    (laps) are joined into one first. Each run's events are found in the frames its laps were
    found in (``lap.frames``: a merged run's primary feed), whose indices the laps count."""
    ev_lap: list[Lap] = []
    ev: dict[str, list] = {}
    clocks: set[str] = set()
    brake_sources: set[str] = set()
    for r in sorted({lap.run for lap in laps}):
        run_laps = laps.pick_run(r)
        fr = run_laps[0].frames
        if fr is None or len(fr) < 2:
            continue
        t, clock = run_clock(fr)
        if _has(fr, "brake"):
            signal, threshold, source = np.asarray(fr["brake"], dtype=np.float64), BRAKE_ON, "pedal"
            on, off = braking_events(t, signal)
        elif _has(fr, "speed_kmh"):
            signal, threshold, source = run_decel_ms2(t, fr["speed_kmh"]), DECEL_ON_MS2, "speed"
            on, off = speed_events(t, fr["speed_kmh"], signal)
        else:
            continue
        clocks.add(clock)
        brake_sources.add(source)
        if len(on) == 0:
            continue
        starts = np.asarray([lap.start for lap in run_laps])
        owner = np.searchsorted(starts, on, side="right") - 1
        m, on, owner = _run_metrics(fr, t, signal, threshold, on, off, owner, tol)
        if source == "speed":
            _onsets_from_speed(m, t, fr["speed_kmh"], unwrapped_position(fr["norm_pos"]))
        ok = np.isfinite(m["p_on"]) & (m["entry_speed_kmh"] >= MIN_ENTRY_KMH)
        for i in np.flatnonzero(ok).tolist():
            if owner[i] < 0:
                continue  # before the first frame with a known position
            lap = run_laps[int(owner[i])]
            if lap.rewind or on[i] >= lap.end:
                continue
            ev_lap.append(lap)
            for key, arr in m.items():
                val = arr[i] if arr.dtype == object else float(arr[i])
                if key in ("p_on", "p_off"):
                    val -= lap.whole  # lap-relative
                ev.setdefault(key, []).append(val)
    return ev_lap, ev, clocks, brake_sources


def _onsets_from_speed(m: dict[str, np.ndarray], t: np.ndarray, speed_kmh, p_run: np.ndarray) -> None:
    """Speed-derived events (``m`` from :func:`zone_metrics` on the deceleration): the onset moved
    to the speed's kink (:func:`speed_onsets`), its position, entry speed and duration with it;
    no pedal, so no ``peak_brake``."""
    v = np.asarray(speed_kmh, dtype=np.float64)
    t_on = speed_onsets(t, v, m["t_on"], m["t_off"])
    m["t_on"] = t_on
    m["p_on"] = _interp_finite(t_on, t, p_run)
    m["entry_speed_kmh"] = _interp_finite(t_on, t, v)
    m["duration_s"] = m["t_off"] - t_on
    m["peak_brake"] = np.full(len(t_on), np.nan)


def _run_metrics(fr: Frames, t: np.ndarray, signal, threshold: float, on, off, owner, tol: float):
    """:func:`zone_metrics` of one run's events (``signal`` over ``threshold``: the pedal, or the
    deceleration for a run without one), after joining two events of one lap that start
    closer than ``tol`` laps (one zone braked in two stabs): (metrics, on, owner)."""
    p_run = unwrapped_position(fr["norm_pos"])
    steer = fr["steer"] if "steer" in fr else None  # noqa: SIM401 (Frames has no .get)
    g_long = fr["g_long"] if "g_long" in fr else None  # noqa: SIM401
    m = zone_metrics(t, signal, fr["speed_kmh"], p_run, steer, on, off, threshold, g_long=g_long)
    if len(on) > 1:
        close = (owner[1:] == owner[:-1]) & (np.diff(m["p_on"]) < tol)
        if close.any():
            keep_on = np.concatenate(([True], ~close))
            keep_off = np.concatenate((~close, [True]))
            on, off, owner = on[keep_on], off[keep_off], owner[keep_on]
            m = zone_metrics(t, signal, fr["speed_kmh"], p_run, steer, on, off, threshold, g_long=g_long)
    return m, on, owner


def _cluster_zones(ev_lap: list[Lap], ev: dict[str, list], tol: float, length: float | None,
                   best: Lap | None) -> list[dict]:
    """The zones: events clustered by onset position (``tol`` laps), one entry per lap and zone
    (its earliest event there), numbered in order round the lap."""
    zones = []
    if not ev_lap:
        return zones
    p_on = np.asarray(ev["p_on"])
    labels = cluster_positions(p_on, tol)
    for c in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == c)
        if len(members) == 0:
            continue
        # Positions of a cluster that straddles the line: continue past 1 rather than wrap to 0.
        pos = np.mod(p_on[members], 1.0)
        if pos.max() - pos.min() > 0.5:
            pos = np.where(pos < 0.5, pos + 1.0, pos)
        pos_of = dict(zip(members.tolist(), pos.tolist()))
        seen: dict[tuple[int, int], int] = {}
        for j in sorted(pos_of, key=pos_of.__getitem__):
            seen.setdefault((ev_lap[j].run, ev_lap[j].start), j)
        entries = [(ev_lap[j], j, pos_of[j]) for j in seen.values()]
        entries.sort(key=lambda e: (e[0].run, e[0].start))
        zones.append(_zone(entries, ev, length, best))
    zones.sort(key=lambda z: z["_pos"])
    for i, z in enumerate(zones):
        z["number"] = i + 1
        del z["_pos"]
    return [_order_keys(z) for z in zones]


def _zone(
    entries: list[tuple[Lap, int, float]],
    ev: dict[str, list],
    length: float | None,
    best: Lap | None,
) -> dict:
    """One zone from its laps' events (lap, event index, onset position in laps)."""

    def metres(q):
        return q * length if length else math.nan

    best_q = next((q for lap, _, q in entries if best is not None and lap is best), None)
    laps_out = []
    for lap, j, q in entries:
        span = ev["p_off"][j] - ev["p_on"][j]
        delta = (q - best_q) * length if (best_q is not None and length) else math.nan
        laps_out.append(
            {
                "lap": lap.lap,
                "run_id": lap.run_id,
                "norm_pos": json_num(q % 1.0, 6),
                "distance_m": json_num(metres(q % 1.0), 2),
                "entry_speed_kmh": json_num(ev["entry_speed_kmh"][j], 2),
                "min_speed_kmh": json_num(ev["min_speed_kmh"][j], 2),
                "peak_brake": json_num(ev["peak_brake"][j], 3),
                "peak_decel_g": json_num(ev["peak_decel_g"][j], 3),
                "decel_source": ev["decel_source"][j],
                "duration_s": json_num(ev["duration_s"][j], 3),
                "distance_braking_m": json_num(metres(span), 2),
                "trail_braking_share": json_num(ev["trail_braking_share"][j], 3),
                "delta_to_best_m": json_num(delta, 2),
            }
        )
    qs = [q for _, _, q in entries]
    q_med = _med(qs)
    spans = [ev["p_off"][j] - ev["p_on"][j] for _, j, _ in entries]
    js = [j for _, j, _ in entries]
    lap_sources = {ev["decel_source"][j] for j in js} - {None}
    source = (lap_sources.pop() if len(lap_sources) == 1 else "mixed") if lap_sources else None
    return {
        "_pos": q_med % 1.0,
        "norm_pos": json_num(q_med % 1.0, 6),
        "distance_m": json_num(metres(q_med % 1.0), 2),
        "entry_speed_kmh": json_num(_med(ev["entry_speed_kmh"][j] for j in js), 2),
        "min_speed_kmh": json_num(_med(ev["min_speed_kmh"][j] for j in js), 2),
        "peak_brake": json_num(_med(ev["peak_brake"][j] for j in js), 3),
        "peak_decel_g": json_num(_med(ev["peak_decel_g"][j] for j in js), 3),
        "decel_source": source,
        "duration_s": json_num(_med(ev["duration_s"][j] for j in js), 3),
        "distance_braking_m": json_num(metres(_med(spans)), 2),
        "trail_braking_share": json_num(_med(ev["trail_braking_share"][j] for j in js), 3),
        "laps": laps_out,
        "spread": {
            "onset_m": json_num(None if (s := _std(qs)) is None or not length else s * length, 2),
            "min_speed_kmh": json_num(_std([ev["min_speed_kmh"][j] for j in js]), 2),
        },
        "delta_to_best_m": [e["delta_to_best_m"] for e in laps_out],
    }


def _order_keys(z: dict) -> dict:
    order = [
        "number",
        "norm_pos",
        "distance_m",
        "entry_speed_kmh",
        "min_speed_kmh",
        "peak_brake",
        "peak_decel_g",
        "decel_source",
        "duration_s",
        "distance_braking_m",
        "trail_braking_share",
        "laps",
        "spread",
        "delta_to_best_m",
    ]
    return {k: z[k] for k in order}
