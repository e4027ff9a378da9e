"""The run's clock: time of each frame for rates and durations, and the steps that are a pause.

Receive times come in bursts and stalls, and a game paused in a menu keeps re-sending one frozen
state while receive time runs on; :func:`run_clock` follows the game's own lap timer where it runs
and leaves pauses (:func:`paused_steps`) out. Units: seconds, speeds km/h, the lap timer in ms.
"""

from __future__ import annotations

import numpy as np

from .frames import Frames

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
