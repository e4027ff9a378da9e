"""The general summary (rt/analysis/general.py) against the simulator's state and truth."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import is_plain
from rt.sim.frames import frames_from_sim

from rt.analysis.frames import Frames
from rt.analysis.general import analyze
from rt.protocols.canonical import empty
from rt.sim.driver import Simulation

RATE = 333.0


@pytest.fixture(scope="module")
def run():
    sim = Simulation(car="gt_coupe", track="test_ring", rate_hz=RATE, seed=5, lap_variation=0.02, mode="race")
    fr, state = frames_from_sim(sim, int(RATE * 200), "ac", meta={"run_id": "r1", "lost_frames": 7})
    return fr, state, sim


def synthetic(speed_kmh: np.ndarray, rate_hz: float = 100.0, **channels) -> Frames:
    rows = empty(len(speed_kmh))
    rows["t_ns"] = 1_700_000_000 * 10**9 + np.rint(np.arange(len(speed_kmh)) * 1e9 / rate_hz).astype(np.int64)
    rows["speed_kmh"] = speed_kmh
    for name, values in channels.items():
        rows[name] = values
    return Frames.from_rows(rows, meta={"run_id": "syn"})


def test_distance_time_and_speeds_match_the_simulation(run):
    fr, state, _ = run
    res = analyze([fr])
    assert is_plain(res)  # plain JSON types only
    driven_m = state["odometer_m"][-1] - state["odometer_m"][0]
    assert driven_m > 8000  # more than two laps of the 3.9 km ring
    assert abs(res["distance_km"] * 1000 - driven_m) <= 0.005 * driven_m
    assert abs(res["distance_km"] * 1000 - driven_m) <= 1.0  # in fact to the metre
    duration = (len(fr) - 1) / RATE
    assert res["duration_s"] == pytest.approx(duration, abs=0.002)
    assert res["max_speed_kmh"] == pytest.approx(state["speed_ms"].max() * 3.6, abs=0.01)
    # Always moving: the mean is distance over time.
    assert res["mean_speed_kmh"] == pytest.approx(driven_m / 1000 / (duration / 3600), rel=1e-3)
    assert res["frames"] == len(fr) and res["lost_frames"] == 7
    assert res["runs_detail"] == [
        {"run_id": "r1", "frames": len(fr), "duration_s": res["duration_s"], "distance_km": res["distance_km"]}
    ]
    assert res["summary"]["distance_km"] == res["distance_km"] and res["summary"]["runs"] == 1


def test_pedals_and_gears_match_the_simulation_state(run):
    fr, state, _ = run
    res = analyze([fr])
    # Even sampling: the time share is the share of samples (the last frame lasts nothing).
    thr = state["throttle"][:-1]
    brk = state["brake"][:-1]
    assert res["full_throttle_pct"] == pytest.approx(100 * np.mean(thr >= 0.98), abs=0.05)
    assert 30 < res["full_throttle_pct"] < 80  # a race lap: much flat out, not all of it
    assert res["braking_pct"] == pytest.approx(100 * np.mean(brk > 0.05), abs=0.05)
    pct = res["gear_time_pct"]
    assert sum(pct.values()) == pytest.approx(100.0, abs=0.01)
    assert pct["-1"] == 0.0 and pct["0"] == 0.0
    gears = state["gear"][:-1]
    for g in range(1, int(gears.max()) + 1):
        assert pct[str(g)] == pytest.approx(100 * np.mean(gears == g), abs=0.01)


def test_runs_add_up_and_a_gap_is_not_driving(run):
    fr, state, _ = run
    half = len(fr) // 2
    a = fr.take(slice(0, half))
    b = fr.take(slice(half, None))
    a.meta, b.meta = {"run_id": "a", "lost_frames": 2}, {"run_id": "b", "lost_frames": 3}
    res = analyze([a, b])
    driven_m = state["odometer_m"][-1] - state["odometer_m"][0]
    # The interval between the runs (one frame) belongs to neither.
    between_m = state["odometer_m"][half] - state["odometer_m"][half - 1]
    assert res["distance_km"] * 1000 == pytest.approx(driven_m - between_m, abs=1.0)
    assert [d["run_id"] for d in res["runs_detail"]] == ["a", "b"]
    assert sum(d["frames"] for d in res["runs_detail"]) == res["frames"] == len(fr)
    assert res["lost_frames"] == 5

    # One run with a 10-minute hole on the receive clock while the game's lap timer moved one
    # frame (the packets were late, the car was not driving): the game's step counts, not 600 s.
    ch = dict(fr.channels)
    ch["t_ns"] = ch["t_ns"].copy()
    ch["t_ns"][half:] += 600 * 10**9
    res = analyze([Frames(ch, {}, {"run_id": "late"})])
    assert res["duration_s"] == pytest.approx((len(fr) - 1) / RATE, abs=0.002)
    assert res["distance_km"] * 1000 == pytest.approx(driven_m, abs=1.0)
    # Without a lap timer the receive clock is all there is: the hole counts MAX_FRAME_S at most.
    ch["lap_time_ms"] = np.full(len(fr), -1, dtype=np.int32)
    res = analyze([Frames(ch, {}, {"run_id": "no timer"})])
    assert res["duration_s"] == pytest.approx((len(fr) - 2) / RATE + 0.5, abs=0.002)
    assert res["distance_km"] * 1000 < driven_m + 0.5 * 80  # at most half a second at < 290 km/h


def test_mean_speed_is_over_moving_time_only():
    speed = np.concatenate((np.zeros(1000), np.full(1000, 100.0)))  # 10 s parked, 10 s at 100 km/h
    res = analyze([synthetic(speed)])
    assert res["mean_speed_kmh"] == pytest.approx(100.0, abs=0.01)
    assert res["moving_time_s"] == pytest.approx(9.99, abs=0.001)
    assert res["duration_s"] == pytest.approx(19.99, abs=0.001)
    # 999 intervals at 100 km/h and the one from 0 to 100 km/h (a trapezoid: half of it), of 10 ms.
    assert res["distance_km"] == pytest.approx(100 * 9.995 / 3600, abs=1e-4)
    # Pedals unknown in this feed: no share rather than a made-up 0 %.
    assert res["full_throttle_pct"] is None and res["braking_pct"] is None


def test_parked_car_and_reverse():
    n = 500
    gear = np.where(np.arange(n) < 100, -1, 0).astype(np.int8)
    res = analyze([synthetic(np.zeros(n), gear=gear, throttle=np.zeros(n), brake=np.ones(n))])
    assert res["mean_speed_kmh"] is None and res["distance_km"] == 0.0
    # 100 frames in reverse, 400 in neutral of which the last lasts nothing.
    assert res["gear_time_pct"] == {"-1": pytest.approx(100 * 100 / 499, abs=1e-3),
                                    "0": pytest.approx(100 * 399 / 499, abs=1e-3)}
    assert res["braking_pct"] == 100.0 and res["full_throttle_pct"] == 0.0


def test_pedal_thresholds():
    # Ten equal frames (plus a last one that lasts nothing): full throttle is ≥ 0.98, braking > 0.05.
    thr = np.array([0.5, 0.9, 0.97, 0.979, 0.98, 0.99, 1.0, 1.0, 0.0, 0.0, 0.0])
    brk = np.array([0.0, 0.0, 0.01, 0.05, 0.051, 0.2, 1.0, 0.0, 0.0, 0.0, 1.0])
    res = analyze([synthetic(np.full(11, 50.0), throttle=thr, brake=brk)])
    assert res["full_throttle_pct"] == pytest.approx(40.0)
    assert res["braking_pct"] == pytest.approx(30.0)


def test_no_frames_raises():
    with pytest.raises(ValueError, match="no frames"):
        analyze([])
    with pytest.raises(ValueError, match="no frames"):
        analyze([Frames.from_rows(empty(0))])


def paused_at(fr: Frames, at: int, pause_s: float, rate_hz: float) -> Frames:
    """The run with the game paused after frame ``at``: that frame's state re-sent at the same
    rate for ``pause_s`` of receive time, then the run goes on (its receive times shifted)."""
    k = int(round(pause_s * rate_hz))
    idx = np.concatenate((np.arange(at + 1), np.full(k, at), np.arange(at + 1, len(fr))))
    out = fr.take(idx)
    t = fr["t_ns"]
    step = np.int64(round(1e9 / rate_hz))
    out.channels["t_ns"] = np.concatenate((t[: at + 1], t[at] + step * np.arange(1, k + 1), t[at + 1:] + k * step))
    return out


@pytest.mark.parametrize("game", ["ac", "pcars2"])  # with the game's lap timer, and without one
def test_a_pause_the_game_keeps_sending_is_not_driving(game):
    rate = 60.0
    sim = Simulation(car="gt_coupe", track="test_ring", rate_hz=rate, seed=5, mode="race")
    fr, state = frames_from_sim(sim, int(rate * 60), game, meta={"run_id": game})
    at = len(fr) // 2
    assert state["speed_ms"][at] * 3.6 > 50  # paused at speed: each second would add > 14 m
    paused = paused_at(fr, at, 8.0, rate)
    assert len(paused) == len(fr) + 480
    res, ref = analyze([paused]), analyze([fr])
    driven_m = state["odometer_m"][-1] - state["odometer_m"][0]
    assert res["distance_km"] * 1000 == pytest.approx(driven_m, abs=1.0)
    for key in ("duration_s", "distance_km", "mean_speed_kmh", "moving_time_s", "full_throttle_pct",
                "braking_pct", "gear_time_pct", "max_speed_kmh"):
        assert res[key] == ref[key], key
    assert res["paused_s"] == pytest.approx(8.0, abs=1e-6) and ref["paused_s"] == 0.0


def test_a_short_repeat_and_a_steady_speed_are_not_a_pause(run):
    fr, _, _ = run
    # Two repeats of one state (a re-sent packet) keep their receive time …
    twice = paused_at(fr, len(fr) // 2, 2 / RATE, RATE)
    assert analyze([twice])["duration_s"] == pytest.approx(analyze([fr])["duration_s"] + 2 / RATE, abs=1e-3)
    assert analyze([twice])["paused_s"] == 0.0
    # … and a feed that only reports a steady speed (no timer, no position) cannot tell a pause.
    assert analyze([synthetic(np.full(1000, 100.0))])["paused_s"] == 0.0
