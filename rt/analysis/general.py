"""General driving summary of a session: time, distance, speeds, pedals and gears.

Every share and mean is *time-weighted*: each frame counts for the time until the next frame of
its run on the run's clock (:func:`rt.analysis.geometry.run_clock`: the game's lap timer where it
runs, else receive time), capped at :data:`MAX_FRAME_S` so that a gap in the recording (feed
lost, the game not sending) is not counted as driving; the last frame of a run counts for
nothing. A pause the game keeps sending (the same frozen state re-sent while receive time runs
on: :func:`rt.analysis.geometry.paused_steps`) counts for nothing either, neither time nor
distance; it is reported as ``paused_s``. Frame rates differ between games and jitter on
receive, so counting frames would weight whichever stretch happened to arrive faster.

Units: seconds, km, km/h, percent (0..100).
"""

from __future__ import annotations

import numpy as np

from .frames import Frames, json_num, missing_channels
from .clock import paused_steps, run_clock

VERSION = 1

#: Longest time one frame may stand for, s: a longer gap is counted as this much (not driving).
MAX_FRAME_S = 0.5
#: Full throttle: the pedal at or above this (0..1).
FULL_THROTTLE = 0.98
#: Braking: the pedal above this (0..1); below it is a foot resting on the pedal or noise.
BRAKING = 0.05
#: Moving: road speed above this, km/h. ``mean_speed_kmh`` is over moving time only, so time
#: standing in the pits or on the grid does not drag the mean down.
MOVING_KMH = 5.0


def frame_durations(t_ns: np.ndarray, cap_s: float = MAX_FRAME_S) -> np.ndarray:
    """Time each frame stands for, s: until the next frame, capped at ``cap_s``; 0 for the last.

    Negative steps (out-of-order receive times) count as 0.
    """
    t = np.asarray(t_ns, dtype=np.int64)
    out = np.zeros(len(t))
    if len(t) > 1:
        out[:-1] = np.clip(np.diff(t) / 1e9, 0.0, cap_s)
    return out


def _pct(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole > 0 else None


def _run_stats(fr: Frames) -> dict:
    """Sums (not yet shares) over one run; see :func:`analyze` for the definitions."""
    n = len(fr)
    # The run's clock: the game's timer where it runs (receive times come in bursts and stalls;
    # on the real Monza capture receive time loses 0.7 % of the distance in six stalls), receive
    # time where it does not, nothing over a pause.
    t, _source = run_clock(fr)
    dt = np.zeros(n)
    if n > 1:
        dt[:-1] = np.clip(np.diff(t), 0.0, MAX_FRAME_S)
    # A frame followed by a re-sent frozen state stands for no driving: its receive time is pause.
    paused = np.concatenate((paused_steps(fr), [False])) if n else np.zeros(0, bool)
    paused_s = float(frame_durations(fr["t_ns"])[paused].sum())
    dt[paused] = 0.0
    speed = np.asarray(fr["speed_kmh"], dtype=np.float64) if "speed_kmh" in fr else np.full(n, np.nan)
    # Distance: trapezoids over each frame's (capped) duration; an interval with an unknown end
    # adds nothing rather than a guess.
    if n > 1:
        seg = 0.5 * (speed[:-1] + speed[1:]) * dt[:-1]
        seg_ok = np.isfinite(seg)
        dist_km = float(seg[seg_ok].sum()) / 3600.0
        moving = seg_ok & (speed[:-1] > MOVING_KMH)
        moving_km = float(seg[moving].sum()) / 3600.0
        moving_s = float(dt[:-1][moving].sum())
    else:
        dist_km = moving_km = moving_s = 0.0
    sp_fin = speed[np.isfinite(speed)]

    def share(channel: str, test, threshold: float) -> tuple[float, float]:
        # (time where the test holds, time where the channel is known), s. The threshold is
        # compared in the channel's own precision: a float32 pedal of exactly 0.05 is not > 0.05.
        if channel not in fr:
            return 0.0, 0.0
        v = np.asarray(fr[channel])
        if v.dtype.kind != "f":
            v = v.astype(np.float64)
        known = np.isfinite(v)
        return float(dt[known & test(v, v.dtype.type(threshold))].sum()), float(dt[known].sum())

    with np.errstate(invalid="ignore"):
        thr = share("throttle", np.greater_equal, FULL_THROTTLE)
        brk = share("brake", np.greater, BRAKING)
    gears: dict[int, float] = {}
    if "gear" in fr and n:
        g = np.asarray(fr["gear"], dtype=np.int64)
        low = int(g.min())
        sums = np.bincount(g - low, weights=dt)
        gears = {low + k: float(v) for k, v in enumerate(sums) if v > 0}
    return {
        "frames": n,
        "duration_s": float(dt.sum()),
        "paused_s": paused_s,
        "distance_km": dist_km,
        "moving_km": moving_km,
        "moving_s": moving_s,
        "max_speed_kmh": float(sp_fin.max()) if len(sp_fin) else None,
        "throttle": thr,
        "brake": brk,
        "gears": gears,
        "lost_frames": int(fr.meta.get("lost_frames") or 0),
    }


def _gear_time_pct(stats: list[dict]) -> dict[str, float | None]:
    """{"-1": %, "0": %, "1": %, …}: share of the runs' time in each gear, % (empty without time)."""
    gear_s: dict[int, float] = {}
    for s in stats:
        for g, v in s["gears"].items():
            gear_s[g] = gear_s.get(g, 0.0) + v
    gear_total = sum(gear_s.values())
    if gear_total <= 0:
        return {}
    # Reverse and neutral always appear (0 when unused), then every gear up to the highest used.
    top = max([g for g, v in gear_s.items() if v > 0], default=0)
    keys = sorted(set(range(-1, max(top, 0) + 1)) | set(gear_s))
    return {str(g): json_num(_pct(gear_s.get(g, 0.0), gear_total)) for g in keys}


def analyze(runs: list[Frames]) -> dict:
    """Summary of all runs.

    Keys:
        duration_s: driving time, s: the sum of frame durations (gaps capped, pauses left out;
            see the module doc).
        paused_s: time the game spent paused while still sending (frozen state re-sent), s,
            capped per frame like ``duration_s``; not in ``duration_s``, the distance or any share.
        distance_km: road speed integrated over time (trapezoids), per run, summed, km.
        max_speed_kmh: highest road speed, km/h (null when no speed is known).
        mean_speed_kmh: time-weighted mean road speed over *moving* time (speed > MOVING_KMH),
            i.e. moving distance / moving time, km/h (null when the car never moved).
        moving_time_s: the time the mean speed is taken over, s.
        full_throttle_pct: share of the time the throttle is ≥ FULL_THROTTLE, % of the time the
            throttle is known.
        braking_pct: share of the time the brake is > BRAKING, % of the time the brake is known.
        gear_time_pct: {"-1": %, "0": %, "1": %, …} share of the time in each gear (-1 reverse,
            0 neutral); sums to 100.
        frames: number of frames; lost_frames: sum of the runs' ``meta["lost_frames"]``.
        runs_detail: [{run_id, frames, duration_s, distance_km}] per run.
        summary: the headline numbers (duration, paused time, distance, max and mean speed, runs,
            frames), and ``unavailable`` {key: why} for the shares no run's channels allow
            (``full_throttle_pct`` without a throttle, ``braking_pct`` without a brake: both null).

    Raises ValueError("no frames") when there are no runs or none has a frame.
    """
    runs = [r for r in (runs or []) if len(r) > 0]
    if not runs:
        raise ValueError("no frames")
    for r in runs:
        if "t_ns" not in r:
            raise ValueError("frames have no t_ns channel")
    stats = [_run_stats(r) for r in runs]
    out = _totals(runs, stats)
    out["summary"] = _headline(runs, out)
    return out


def _totals(runs: list[Frames], stats: list[dict]) -> dict:
    """Every key of :func:`analyze` but ``summary``, from each run's :func:`_run_stats`."""
    duration = sum(s["duration_s"] for s in stats)
    paused = sum(s["paused_s"] for s in stats)
    distance = sum(s["distance_km"] for s in stats)
    moving_km = sum(s["moving_km"] for s in stats)
    moving_s = sum(s["moving_s"] for s in stats)
    speeds = [s["max_speed_kmh"] for s in stats if s["max_speed_kmh"] is not None]
    max_speed = max(speeds) if speeds else None
    mean_speed = moving_km / (moving_s / 3600.0) if moving_s > 0 else None
    thr_on, thr_known = (sum(s["throttle"][i] for s in stats) for i in (0, 1))
    brk_on, brk_known = (sum(s["brake"][i] for s in stats) for i in (0, 1))
    gear_pct = _gear_time_pct(stats)
    frames = sum(s["frames"] for s in stats)
    lost = sum(s["lost_frames"] for s in stats)
    detail = [
        {
            "run_id": r.meta.get("run_id"),
            "frames": s["frames"],
            "duration_s": json_num(s["duration_s"], 3),
            "distance_km": json_num(s["distance_km"]),
        }
        for r, s in zip(runs, stats)
    ]
    return {
        "duration_s": json_num(duration, 3),
        "paused_s": json_num(paused, 3),
        "distance_km": json_num(distance),
        "max_speed_kmh": json_num(max_speed, 2),
        "mean_speed_kmh": json_num(mean_speed, 2),
        "moving_time_s": json_num(moving_s, 3),
        "full_throttle_pct": json_num(_pct(thr_on, thr_known), 2),
        "braking_pct": json_num(_pct(brk_on, brk_known), 2),
        "gear_time_pct": gear_pct,
        "frames": frames,
        "lost_frames": lost,
        "runs_detail": detail,
    }


def _headline(runs: list[Frames], out: dict) -> dict:
    """``summary`` of :func:`analyze`: the headline numbers of ``out`` and what is unavailable."""
    summary = {
        "runs": len(runs),
        "frames": out["frames"],
        "duration_s": out["duration_s"],
        "paused_s": out["paused_s"],
        "distance_km": out["distance_km"],
        "max_speed_kmh": out["max_speed_kmh"],
        "mean_speed_kmh": out["mean_speed_kmh"],
    }
    # Null is "not measured", not zero: say which parts the feeds could not give (ACC's
    # broadcasting has neither pedal nor rpm).
    missing = {"full_throttle_pct": "throttle", "braking_pct": "brake"}
    unavailable = {key: f"no {name} channel in the runs' feeds" for key, name in missing.items()
                   if name in missing_channels(runs, (name,))}
    if unavailable:
        summary["unavailable"] = unavailable
    return summary
