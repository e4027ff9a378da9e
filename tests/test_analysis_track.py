"""Track map, racing line and their shared geometry, against exact answers.

The simulator's truth (track length, corners, the driven line's offset) and closed-form shapes
(circles, the test ring's own arcs) say what the right answer is; the real AC capture of Monza
checks that a map can be assembled from partial laps.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import merged_with_a_second_feed, monza_frames
from rt.sim.frames import frames_from_sim

from rt.analysis import braking, racing_line, track_map
from rt.analysis.frames import Frames
from rt.analysis.geometry import (
    best_lap,
    closed_line_from_positions,
    curvature_closed,
    find_corners,
    polyline_length,
    run_clock,
    smooth_periodic,
    run_laps,
    unwrapped_position,
    windowed_slope,
)
from rt.protocols.canonical import empty
from rt.sim.driver import Simulation
from rt.sim.track import TRACKS

RING = TRACKS["test_ring"]
LAP_S = 87.25  # the GT coupe's lap of the test ring, s (a little over)
MONZA_LENGTH_M = 5793.0
# The README's figures ("## Sessions, runs and analyses"), asserted as stated.
TRACK_LENGTH_REL = 1e-4  # track_map: length within 0.01 % of the simulator's track
LINE_TOL_M = 5e-4  # racing_line: 1.5 m "measures 1.500 m", to the mm the result is rounded to


def sim_run(rate_hz: float, laps: float, game: str = "ac", run_id: str = "r", **kw):
    sim = Simulation("gt_coupe", "test_ring", rate_hz=rate_hz, **kw)
    frames, state = frames_from_sim(sim, int(rate_hz * (LAP_S * laps + 0.5)), game, meta={"run_id": run_id})
    return sim, frames, state


@pytest.fixture(scope="module")
def ac_one_lap():
    return sim_run(100.0, 1.0, seed=1)  # one complete lap (the sim starts on the line)


@pytest.fixture(scope="module")
def ac_three_laps():
    return sim_run(333.0, 3.2, seed=2, lap_variation=0.04)  # laps up to 4 % slower


@pytest.fixture(scope="module")
def pcars_laps():
    return sim_run(60.0, 2.0, game="pcars1", seed=3)  # positions quantised to 0.25 m


def synthetic_frames(
    norm: np.ndarray,
    lap_count: np.ndarray | None = None,
    rate_hz: float = 50.0,
    **channels,
):
    """Canonical frames with the given norm_pos (and lap_count, else unknown) at a steady rate."""
    rows = empty(len(norm))
    rows["t_ns"] = (np.arange(len(norm)) * (1e9 / rate_hz)).astype(np.int64)
    rows["norm_pos"] = norm
    if lap_count is not None:
        rows["lap_count"] = lap_count
    for name, values in channels.items():
        rows[name] = values
    return Frames.from_rows(rows)


# ---------------------------------------------------------------------------------------- geometry core
@pytest.mark.parametrize("radius", [25.0, 200.0])
@pytest.mark.parametrize("ccw", [True, False])
def test_circle_length_and_curvature(radius, ccw):
    n = 4000
    rng = np.random.default_rng(0)
    norm = rng.random(n)  # samples in any order, as several laps would give
    ang = 2 * np.pi * norm * (1 if ccw else -1)
    x, z = 50 + radius * np.cos(ang), -20 + radius * np.sin(ang)
    _, lx, lz, _ = closed_line_from_positions(norm, x, z, bins=1000)
    assert lx[0] == lx[-1] and lz[0] == lz[-1]  # closed
    assert polyline_length(lx, lz) == pytest.approx(2 * np.pi * radius, rel=2e-4)
    s, _, _, kappa, length = curvature_closed(lx, lz)  # 2 m steps, σ = 8 m
    sign = 1 if ccw else -1  # counter-clockwise (heading from +x towards +z grows) = left = +
    np.testing.assert_allclose(kappa, sign / radius, rtol=0.01)
    corners = find_corners(kappa, length / len(s))
    assert len(corners) == 1 and corners[0].turn_rad == pytest.approx(sign * 2 * np.pi, rel=1e-3)
    assert corners[0].radius_m == pytest.approx(radius, rel=0.01)


def test_closed_line_refuses_a_hole():
    norm = np.linspace(0, 0.9, 900)
    with pytest.raises(ValueError, match="do not go round"):
        closed_line_from_positions(norm, np.cos(norm), np.sin(norm))


def test_corners_of_the_exact_test_ring():
    # The ring's own centre line (closed form), through the same corner finder the map uses.
    s = np.linspace(0, RING.length_m, 20001)
    x, z = RING.xz(s)
    x[-1], z[-1] = x[0], z[0]
    corners = track_map.corners_of_line(s / RING.length_m, x, z)
    truth = RING.corners()
    assert [c["direction"] for c in corners] == [c.direction for c in truth]
    for c, t in zip(corners, truth):
        assert c["norm_pos"] * RING.length_m == pytest.approx(t.apex_m, abs=1.0)
        assert c["angle_deg"] == pytest.approx(t.angle_deg, abs=3.0)
        assert c["radius_m"] == pytest.approx(t.radius_m, rel=0.06)
    assert polyline_length(x, z) == pytest.approx(RING.length_m, rel=1e-6)
    assert track_map.total_turn_deg(x, z) == pytest.approx(360.0, abs=0.5)  # counter-clockwise


def test_find_corners_merges_a_dip_and_drops_kinks():
    ds = 1.0
    k = np.zeros(2000)
    k[100:160] = 1 / 50  # a corner …
    k[160:175] = 1 / 600  # … whose curvature dips below the threshold for 15 m …
    k[175:220] = 1 / 45  # … and tightens again: one corner
    k[600:620] = 1 / 300  # a 3.8° kink: not a corner
    k[1000:1080] = -1 / 80  # a right-hander
    found = find_corners(k, ds)
    assert [(c.turn_rad > 0) for c in found] == [True, False]
    assert found[0].first == 100 and found[0].last == 219


def test_smooth_periodic_keeps_constants_and_the_mean():
    v = np.sin(np.linspace(0, 2 * np.pi, 100, endpoint=False)) + 3
    out = smooth_periodic(v, 30.0)  # kernel longer than the sequence: wraps more than once
    assert out.mean() == pytest.approx(3.0)
    assert np.ptp(out) < np.ptp(v)
    np.testing.assert_allclose(smooth_periodic(np.full(50, 2.0), 4.0), 2.0)


def test_windowed_slope_ignores_jitter():
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.uniform(0.005, 0.025, 400))  # jittered receive times
    v = 200.0 - 30.0 * t
    slope = windowed_slope(t, v, 0.15)
    np.testing.assert_allclose(slope[np.isfinite(slope)], -30.0, rtol=1e-9)
    assert np.isfinite(slope).all()


def test_run_clock_uses_the_game_timer_over_bursty_receive_times():
    n = 300
    lap_ms = 10_000 + np.arange(n) * 16  # the game's timer: steady 16 ms steps …
    recv = np.repeat(np.arange(n // 10) * 0.16, 10)  # … received in bursts of ten
    rows = empty(n)
    rows["t_ns"] = (recv * 1e9).astype(np.int64)
    rows["lap_time_ms"] = lap_ms
    t, source = run_clock(Frames.from_rows(rows))
    assert source == "game"
    np.testing.assert_allclose(np.diff(t), 0.016)
    speed = 250 - 20 * (lap_ms - lap_ms[0]) / 1000.0
    assert np.nanmedian(windowed_slope(t, speed, 0.15)) == pytest.approx(-20.0)


# ---------------------------------------------------------------------------------------- laps
def test_unwrapped_position_and_rewind():
    norm = np.array([0.95, 0.99, 0.01, 0.05, 0.5, 0.3, 0.95, 0.02])
    p = unwrapped_position(norm)
    np.testing.assert_allclose(p, [0.95, 0.99, 1.01, 1.05, 1.5, 1.3, 1.95, 2.02])


def test_laps_by_lap_count_and_by_wrap():
    one = np.linspace(0, 1, 500, endpoint=False)
    norm = np.concatenate([one[200:], one, one, one[:100]])  # partial, two full, partial
    lc = np.concatenate([np.zeros(300), np.ones(500), np.full(500, 2), np.full(100, 3)]).astype(np.int32)
    for count in (
        lc,
        None,
    ):  # with the game's lap counter, and without (norm_pos wraps)
        laps = run_laps([synthetic_frames(norm, count)])
        assert [(lap.complete, len(lap)) for lap in laps] == [
            (False, 300),
            (True, 500),
            (True, 500),
            (False, 100),
        ]
        assert laps[1].time_ms == pytest.approx(10_000, abs=1)  # 500 frames at 50 Hz, crossing interpolated
        assert laps[1].p.min() >= 0 and laps[1].p.max() < 1
    assert [lap.lap for lap in run_laps([synthetic_frames(norm, lc)])] == [1, 2, 3, 4]


@pytest.mark.parametrize("second_step", [999, 1001])
def test_counter_and_wrap_a_frame_apart(second_step):
    # The game counts lap 1 a frame before its position wraps, lap 2 a frame before (999) or after
    # (1001) it: each lap still runs 0..1, and the counter missed no crossing (it is not stuck).
    # With the game's lap times the counter cuts the laps; without, the wrap of norm_pos does.
    one = np.linspace(0, 1, 500, endpoint=False)
    norm = np.concatenate([one, one, one[:10]])
    lc = np.zeros(len(norm), np.int32)
    lc[499:], lc[second_step:] = 1, 2
    last = np.where(np.arange(len(norm)) < 499, -1, 10_000).astype(np.int32)
    laps = run_laps([synthetic_frames(norm, lc, last_lap_ms=last)])
    assert [(lap.source, lap.start, lap.end, lap.time_ms) for lap in laps] == [
        ("game", 0, 499, 10_000), ("game", 499, second_step, 10_000), ("game", second_step, 1010, None)]
    assert [lap.good for lap in laps] == [True, True, False] and laps[1].time_source == "game"
    assert laps[1].p[0] == pytest.approx(one[-1] - 1, abs=1e-6)  # float32
    laps = run_laps([synthetic_frames(norm, lc)])
    assert [(lap.source, lap.start, lap.end) for lap in laps] == [("derived", 0, 500), ("derived", 500, 1000),
                                                                   ("derived", 1000, 1010)]
    assert laps[1].good and laps[1].p[0] == 0.0 and laps[1].time_ms == 10_000


def test_a_rewind_and_the_game_time():
    one = np.linspace(0, 1, 500, endpoint=False)
    lap2 = np.concatenate([one[:300], one[200:]])  # rewound from 0.6 back to 0.4
    norm = np.concatenate([one, lap2, one[:50]])
    lc = np.concatenate([np.zeros(500), np.ones(600), np.full(50, 2)]).astype(np.int32)
    last = np.concatenate([np.full(500, -1), np.full(600, 9_990), np.full(50, 12_003)]).astype(np.int32)
    laps = run_laps([synthetic_frames(norm, lc, last_lap_ms=last)])
    assert laps[0].good and laps[0].time_ms == 9_990 and laps[0].time_source == "game"
    assert laps[1].complete and laps[1].rewind and not laps[1].good
    assert laps[1].time_ms == 12_003 and laps[1].invalid_reason == "rewind"
    assert best_lap(laps) is laps[0]


# ---------------------------------------------------------------------------------------- track map
def check_map(res: dict, sim: Simulation, apex_tol_m: float) -> None:
    truth = sim.truth
    assert res["length_m"] == pytest.approx(truth.track_length_m, rel=TRACK_LENGTH_REL)
    corners = res["corners"]
    assert [c["number"] for c in corners] == list(range(1, len(truth.corners) + 1))
    assert [c["direction"] for c in corners] == [c.direction for c in truth.corners]
    for c, t in zip(corners, truth.corners):
        assert c["norm_pos"] * truth.track_length_m == pytest.approx(t.apex_m, abs=apex_tol_m)
        assert c["radius_m"] == pytest.approx(t.radius_m, rel=0.1)
        x, z = RING.xz(t.apex_m)
        assert math.hypot(c["x"] - x, c["z"] - z) < apex_tol_m + 1.0
    assert res["summary"]["rotation"] == "counter-clockwise"  # the ring turns left overall
    assert len(res["x"]) == len(res["z"]) == len(res["norm_pos"]) <= 2000
    assert res["x"][0] == res["x"][-1] and res["norm_pos"][-1] == 1.0
    json.dumps(res, allow_nan=False)


def test_track_map_from_one_lap(ac_one_lap):
    sim, frames, _ = ac_one_lap
    res = track_map.analyze([frames])
    assert res["summary"]["laps_used"] == 1 and res["summary"]["source"] == "complete laps"
    check_map(res, sim, apex_tol_m=3.0)


def test_track_map_from_several_laps(ac_three_laps):
    sim, frames, _ = ac_three_laps
    res = track_map.analyze([frames])
    assert res["summary"]["laps_used"] == 3
    check_map(res, sim, apex_tol_m=3.0)


def test_track_map_from_quantised_pcars_positions(pcars_laps):
    sim, frames, _ = pcars_laps
    check_map(track_map.analyze([frames]), sim, apex_tol_m=5.0)


def test_track_map_follows_the_points_on_the_track(ac_one_lap):
    _, frames, _ = ac_one_lap
    res = track_map.analyze([frames])
    s = np.asarray(res["norm_pos"][:-1]) * RING.length_m
    x, z = RING.xz(s)
    err = np.hypot(np.asarray(res["x"][:-1]) - x, np.asarray(res["z"][:-1]) - z)
    assert err.max() < 0.1  # m: the map is the centre line the car drove


def test_track_map_empty_and_unusable():
    with pytest.raises(ValueError):
        track_map.analyze([])
    with pytest.raises(ValueError):
        track_map.analyze([synthetic_frames(np.zeros(0))])
    part = synthetic_frames(np.linspace(0.1, 0.5, 200), pos_x=np.arange(200.0), pos_z=np.zeros(200))
    with pytest.raises(ValueError, match="go round"):
        track_map.analyze([part])
    no_pos = synthetic_frames(np.linspace(0, 1, 200, endpoint=False))
    with pytest.raises(ValueError, match="position"):
        track_map.analyze([no_pos])


def test_track_map_of_monza_from_partial_laps():
    # The capture starts in the pit box at norm_pos 0.043, drives out and laps to the line, then
    # goes on to norm_pos 0.05: no complete lap, but together the frames go round once.
    res = track_map.analyze([monza_frames()])
    summ = res["summary"]
    assert summ["source"] == "partial laps" and summ["laps_complete"] == 0
    assert summ["pit_frames_skipped"] > 300  # the standing start in the pit lane is left out
    assert res["length_m"] == pytest.approx(MONZA_LENGTH_M, rel=0.05)
    assert summ["total_turn_deg"] == pytest.approx(-360, abs=1)  # Monza runs clockwise
    # The shape: about 1.25 km wide and 2.2 km long, as the real circuit.
    x, z = np.asarray(res["x"]), np.asarray(res["z"])
    assert 1100 < np.ptp(x) < 1400 and 2000 < np.ptp(z) < 2300
    corners = res["corners"]

    def within(lo, hi):
        return [c for c in corners if lo <= c["norm_pos"] <= hi]

    # The real circuit's corners, as a driver names them: Rettifilo right-left, Roggia
    # left-right, the two Lesmos right, Ascari left-right-left, Parabolica one long right of ~170°.
    for lo, hi, dirs in ((0.15, 0.18, ["right", "left"]), (0.36, 0.39, ["left", "right"]),
                         (0.43, 0.51, ["right", "right"]), (0.67, 0.74, ["left", "right", "left"])):
        corner = within(lo, hi)
        assert [c["direction"] for c in corner] == dirs, (lo, hi)
    for chicane in (within(0.15, 0.18), within(0.36, 0.39), within(0.67, 0.74)):
        assert all(c["radius_m"] < 120 for c in chicane)
    parabolica = within(0.88, 0.93)
    assert len(parabolica) == 1 and parabolica[0]["angle_deg"] == pytest.approx(170, abs=15)
    assert parabolica[0]["direction"] == "right"
    json.dumps(res, allow_nan=False)


# ---------------------------------------------------------------------------------------- racing line
def test_lateral_deviation_on_concentric_circles():
    ang = np.linspace(0, 2 * np.pi, 1000, endpoint=False)
    r = 100.0
    for sign in (
        1,
        -1,
    ):  # counter-clockwise: the inside is on the left; clockwise: on the right
        ref = r * np.cos(sign * ang), r * np.sin(sign * ang)
        wide = (r + 1.5) * np.cos(sign * ang), (r + 1.5) * np.sin(sign * ang)
        d = racing_line.lateral_deviation(*ref, *wide)
        np.testing.assert_allclose(d, -1.5 * sign, atol=1e-6)


def test_hotspots_find_the_bumps():
    g = racing_line.grid(1000)
    dev = np.zeros((3, 1000))
    dev[1] = 2.0 * np.exp(-(((g - 0.30) / 0.01) ** 2))
    dev[2] = -3.0 * np.exp(-(((g - 0.70) / 0.01) ** 2))
    dev[2, 995] = 1.0  # near the line, round from 0.0
    spots = racing_line.hotspots(dev, g, count=5)
    assert [(round(g[i], 3), row) for i, row in spots[:3]] == [
        (0.7, 2),
        (0.3, 1),
        (0.995, 2),
    ]
    # All five, by what a hotspot is: at its point, the lap that differs most; the largest
    # |deviation| left once the points within the separation of the earlier spots are taken out;
    # so in falling order, and each at least the separation (round the line) from the others.
    a = np.abs(dev)
    sep = racing_line.HOTSPOT_SEPARATION
    assert len(spots) == 5
    free = np.ones(len(g), dtype=bool)
    for i, row in spots:
        assert free[i]
        assert a[row, i] == a[:, i].max()
        assert a[row, i] == a[:, free].max()
        d = np.abs(g - g[i])
        free &= np.minimum(d, 1.0 - d) >= sep
    sizes = [a[row, i] for i, row in spots]
    assert sizes == sorted(sizes, reverse=True) and sizes[3] < 1.0  # the fourth is no bump


def test_resample_lap_sorts_by_position():
    p = np.array([0.0, 0.2, 0.1, 0.3, 0.5, 0.4, 0.9])  # late frames
    x = p * 10
    (out,) = racing_line.resample_lap(p, [x], np.array([0.05, 0.35, 0.7]))
    np.testing.assert_allclose(out, [0.5, 3.5, 7.0])


@pytest.fixture(scope="module")
def offset_runs():
    runs = {}
    for i, offset in enumerate((0.0, 1.5, -2.0)):
        _, frames, _ = sim_run(100.0, 2.0, seed=10 + i, line_offset_m=offset, run_id=f"offset{offset:+.1f}")
        runs[offset] = frames
    return runs


def _signed(res: dict, run_id: str) -> list[float]:
    return [lap["deviation_m"]["signed_mean"] for lap in res["laps"] if lap["run_id"] == run_id]


@pytest.mark.parametrize("offset", [1.5, -2.0])
def test_racing_line_measures_the_line_offset(offset_runs, offset):
    centre, other = offset_runs[0.0], offset_runs[offset]
    res = racing_line.analyze([centre, other])
    ref = res["reference_lap"]
    c_id, o_id = "offset+0.0", f"offset{offset:+.1f}"
    # Laps of one run are identical: the lines are parallel, so the deviation is the same all round
    # (to the mm: max, mean |d| and |mean d| agree).
    for rid in (c_id, o_id):
        for lap in res["laps"]:
            if lap["run_id"] == rid:
                dm = lap["deviation_m"]
                assert dm["max"] - dm["mean_abs"] <= LINE_TOL_M
                assert abs(abs(dm["signed_mean"]) - dm["mean_abs"]) <= LINE_TOL_M
    # The README: a lap driven 1.5 m to the left measures 1.500 m (and 2 m to the right −2.000 m).
    rel = [o - c for o, c in zip(_signed(res, o_id), _signed(res, c_id))]
    assert len(rel) == 2 and all(r == pytest.approx(offset, abs=LINE_TOL_M) for r in rel)
    # Against the reference lap itself, sign included: whichever run holds the fastest lap.
    if ref["run_id"] == c_id:
        assert all(s == pytest.approx(offset, abs=LINE_TOL_M) for s in _signed(res, o_id))
    else:
        assert all(s == pytest.approx(-offset, abs=LINE_TOL_M) for s in _signed(res, c_id))
    json.dumps(res, allow_nan=False)


def test_racing_line_reference_is_the_fastest_lap(offset_runs):
    res = racing_line.analyze(list(offset_runs.values()))
    laps = res["laps"]
    assert len(laps) == 6 and sum(lap["reference"] for lap in laps) == 1
    fastest = min(lap["lap_time_ms"] for lap in laps)
    ref = next(lap for lap in laps if lap["reference"])
    assert ref["lap_time_ms"] == fastest
    assert laps.index(ref) == min(
        i for i, lap in enumerate(laps) if lap["lap_time_ms"] == fastest
    )  # tie → first
    assert ref["deviation_m"] == {"mean_abs": 0.0, "max": 0.0, "signed_mean": 0.0}
    n = len(res["norm_pos"])
    assert n <= 1000 and all(len(lap[k]) == n for lap in laps for k in ("x", "z", "speed_kmh", "lateral_m"))
    # The widest gap is between the +1.5 m and −2.0 m lines: 3.5 m, to the mm as the offsets.
    assert res["summary"]["max_deviation_m"] == pytest.approx(3.5, abs=LINE_TOL_M)
    assert 1 <= len(res["hotspots"]) <= 5
    for h in res["hotspots"]:
        assert abs(h["deviation_m"]) == pytest.approx(res["summary"]["max_deviation_m"], abs=LINE_TOL_M)


def test_racing_line_speed_follows_the_sim(ac_one_lap):
    _, frames, state = ac_one_lap
    res = racing_line.analyze([frames])
    lap = res["laps"][0]
    s = np.asarray(res["norm_pos"]) * RING.length_m
    lap0 = state["lap_count"] == 0
    v_true = np.interp(s, state["lap_distance_m"][lap0], state["speed_ms"][lap0] * 3.6)
    assert np.max(np.abs(np.asarray(lap["speed_kmh"]) - v_true)) < 1.0
    assert res["hotspots"] == [] and res["summary"]["laps"] == 1


def test_racing_line_empty_and_no_complete_lap():
    with pytest.raises(ValueError):
        racing_line.analyze([])
    with pytest.raises(ValueError, match="complete lap"):
        racing_line.analyze([monza_frames()])  # two partial laps


@pytest.mark.parametrize("game_times", [False, True])
def test_laps_with_a_stuck_lap_counter(game_times):
    # Some sessions report lap_count but never step it: the wraps of norm_pos split the laps,
    # also where the game reports lap times.
    one = np.linspace(0, 1, 500, endpoint=False)
    norm = np.concatenate([one, one, one[:100]])
    extra = {"last_lap_ms": np.full(len(norm), 9_000, np.int32)} if game_times else {}
    laps = run_laps([synthetic_frames(norm, np.zeros(len(norm), np.int32), **extra)])
    assert [(lap.lap, lap.complete, lap.source, len(lap)) for lap in laps] == [
        (1, True, "derived", 500),
        (2, True, "derived", 500),
        (3, False, "derived", 100),
    ]
    assert [lap.time_ms for lap in laps] == [10_000, 10_000, None]


def test_monza_with_its_lap_counter_stuck_still_cuts_at_the_line():
    # The real capture crosses the line once (norm_pos wraps into frame 7898, lap_count steps 0 → 1
    # a frame later); with the counter stuck at 0 the wrap of norm_pos cuts the laps there.
    fr = monza_frames()
    game = run_laps([fr])
    assert [(lap.lap, lap.start, lap.end, lap.source) for lap in game] == [(1, 0, 7899, "game"), (2, 7899, 8641, "game")]
    stuck = Frames({**fr.channels, "lap_count": np.zeros(len(fr), fr["lap_count"].dtype)}, {}, dict(fr.meta))
    laps = run_laps([stuck])
    assert [(lap.lap, lap.start, lap.end, lap.source) for lap in laps] == [(1, 0, 7898, "derived"), (2, 7898, 8641, "derived")]
    assert abs(laps[1].start_s - game[1].start_s) < 0.02  # the crossing, from norm_pos, within a sample
    assert [lap.whole for lap in laps] == [0, 1] and not any(lap.good for lap in laps)


def test_a_merged_run_is_mapped_from_its_primary_feed(pcars_laps):
    # The one lap model cuts a merged run on its primary feed's frames; the geometric analyses
    # read those same frames (lap.frames), so a second feed interleaved changes nothing.
    _, frames, _ = pcars_laps
    merged = merged_with_a_second_feed(frames, int(0.5e9 / 60.0))
    assert len(merged) == 2 * len(frames)
    for analyze in (track_map.analyze, racing_line.analyze, braking.analyze):
        assert analyze([merged]) == analyze([frames])
    assert track_map.analyze([merged])["summary"]["laps_complete"] == 2
