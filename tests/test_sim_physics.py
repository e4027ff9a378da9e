"""The simulator's physics core: track geometry, car model, optimal shift points, the lap solution.

The simulator is the test rig with known true answers for the analyses, so these tests check the
answers themselves: exact geometry, the analytic shift optimum, consistency of every sampled
channel with the car model and with kinematics, and the exactness of the lap/sector truth.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from rt.sim import CARS, CHANNELS, G, TRACKS, Simulation
from rt.sim.car import CarSpec
from rt.sim.game import PACE_S
from rt.sim.track import Track

RATE = 333.0
GT = CARS["gt_coupe"]
HATCH = CARS["club_hatch"]
RING = TRACKS["test_ring"]


# ---------------------------------------------------------------------------------------- fixtures
def _run(sim: Simulation, seconds: float) -> dict[str, np.ndarray]:
    return sim.step_block(int(seconds * sim.rate_hz))


@pytest.fixture(scope="module")
def gt_race():
    sim = Simulation(GT, RING, seed=7)
    return sim, _run(sim, 190.0)  # two complete laps and a bit


@pytest.fixture(scope="module")
def hatch_race():
    sim = Simulation(HATCH, RING, seed=7)
    return sim, _run(sim, 110.0)


@pytest.fixture(scope="module")
def gt_pulls():
    sim = Simulation(GT, RING, mode="pulls", seed=1)
    return sim, _run(sim, 105.0)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges where ``mask`` is True."""
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(m))
    return list(zip(edges[::2], edges[1::2]))


# ---------------------------------------------------------------------------------------- track
def test_track_closes_exactly():
    t = RING
    assert t.closure_error_m < 1e-6
    # Heading changes add up to one full left-hand turn.
    turn = sum(seg.angle_rad for seg in t.segments)
    assert turn == pytest.approx(2 * math.pi, abs=1e-12)
    # Walking up to the line from behind arrives at the start point with the start heading.
    x_end, z_end = t.xz(t.length_m - 1e-9)
    x0, z0 = t.xz(0.0)
    assert math.hypot(x_end - x0, z_end - z0) < 1e-6
    assert t.heading(t.length_m - 1e-9) - t.heading(0.0) == pytest.approx(2 * math.pi, abs=1e-9)


def test_track_length_is_sum_of_segments_and_about_3_to_4_km():
    t = RING
    assert t.length_m == pytest.approx(sum(seg.length_m for seg in t.segments), rel=1e-15)
    assert 3000.0 <= t.length_m <= 4000.0
    a, b = t.sector_bounds_m
    assert 0 < a < b < t.length_m
    # Sector lines sit on straights (a timing line in a corner would be odd).
    assert t.curvature(np.array([a, b])).tolist() == [0.0, 0.0]


def test_geometry_is_continuous_and_self_consistent():
    t = RING
    # Continuity at every segment joint.
    for s_b in t.segment_starts_m[1:-1]:
        xa, za = t.xz(s_b - 1e-7)
        xb, zb = t.xz(s_b + 1e-7)
        assert math.hypot(xb - xa, zb - za) < 1e-5
        assert abs(t.heading(s_b + 1e-7) - t.heading(s_b - 1e-7)) < 1e-6
    s = np.linspace(0.5, t.length_m - 0.5, 4001)
    h = 1e-3
    x1, z1 = t.xz(s - h)
    x2, z2 = t.xz(s + h)
    tx, tz = t.tangent(s)
    # Position derivative is the unit tangent (arc-length parametrisation).
    np.testing.assert_allclose((x2 - x1) / (2 * h), tx, atol=1e-6)
    np.testing.assert_allclose((z2 - z1) / (2 * h), tz, atol=1e-6)
    # Normal is unit, perpendicular, and a positive curvature turns the tangent towards it.
    nx, nz = t.normal(s)
    np.testing.assert_allclose(nx * nx + nz * nz, 1.0, atol=1e-12)
    np.testing.assert_allclose(nx * tx + nz * tz, 0.0, atol=1e-12)
    tx1, tz1 = t.tangent(s - h)
    tx2, tz2 = t.tangent(s + h)
    k = t.curvature(s)
    inside = np.abs(np.diff(np.searchsorted(t.segment_starts_m, np.stack([s - h, s + h])), axis=0))[0] == 0
    np.testing.assert_allclose(((tx2 - tx1) / (2 * h))[inside], (k * nx)[inside], atol=1e-6)
    np.testing.assert_allclose(((tz2 - tz1) / (2 * h))[inside], (k * nz)[inside], atol=1e-6)
    # Elevation: small, smooth and periodic, with grade as its derivative.
    y = t.y(s)
    assert np.ptp(y) < 15.0 and np.max(np.abs(t.grade(s))) < 0.02
    np.testing.assert_allclose((t.y(s + h) - t.y(s - h)) / (2 * h), t.grade(s), atol=1e-8)
    assert t.y(0.0) == pytest.approx(t.y(t.length_m), abs=1e-9)


def test_corners_match_the_curvature():
    t = RING
    corners = t.corners()
    assert 6 <= len(corners) <= 9
    assert {c.direction for c in corners} == {"left", "right"}
    assert len({c.radius_m for c in corners}) >= 5  # different radii
    prev_end = corners[-1].end_m - t.length_m
    for c in corners:
        inside = np.linspace(c.start_m + 1e-6, c.end_m - 1e-6, 101)
        sign = 1.0 if c.direction == "left" else -1.0
        np.testing.assert_allclose(t.curvature(inside), sign / c.radius_m, rtol=1e-12)
        assert c.start_m < c.apex_m < c.end_m
        assert c.apex_m == pytest.approx(0.5 * (c.start_m + c.end_m))
        assert c.angle_deg == pytest.approx(math.degrees((c.end_m - c.start_m) / c.radius_m))
        # Clearly separated: a straight of ≥ 100 m before every corner, with zero curvature.
        gap = np.linspace(prev_end + 1e-6, c.start_m - 1e-6, 101)
        assert c.start_m - prev_end >= 100.0
        assert np.all(t.curvature(np.mod(gap, t.length_m)) == 0.0)
        prev_end = c.end_m
    # Every arc of the track is a corner, and nothing else is.
    n_arcs = sum(1 for seg in t.segments if not seg.is_straight)
    assert n_arcs == len(corners)
    assert [c.number for c in corners] == list(range(1, len(corners) + 1))


def test_from_layout_closes_any_reasonable_layout():
    square = Track.from_layout(
        "sq",
        [("S", 100.0), ("L", 90, 20.0), ("S", 110.0), ("L", 90, 20.0), ("S", 90.0), ("L", 90, 20.0),
         ("S", 100.0), ("L", 90, 20.0)],
        close_with=(4, 6),
    )  # fmt: skip
    assert square.closure_error_m < 1e-9
    with pytest.raises(ValueError):
        Track.from_layout("bad", [("S", 100.0), ("L", 180, 20.0), ("S", 100.0)], close_with=(0, 2))


# ---------------------------------------------------------------------------------------- car
def test_car_model_formulas():
    c = GT
    rpm = np.array([500.0, 1000.0, 4500.0, 4750.0, 7500.0, 9000.0])
    tq = c.engine_torque_nm(rpm)
    assert isinstance(tq, np.ndarray) and tq.shape == rpm.shape
    np.testing.assert_allclose(tq, [300.0, 300.0, 550.0, 550.0, 255.0, 255.0])
    assert isinstance(c.engine_torque_nm(4500.0), float)
    for g in range(1, c.num_gears + 1):
        v = c.speed_at_rpm_ms(5000.0, g)
        assert c.rpm_at(v, g) == pytest.approx(5000.0)
        expect = 550.0 * c.overall_ratio(g) * c.drivetrain_efficiency / c.wheel_radius_m
        assert c.wheel_force_n(v, g) == pytest.approx(expect)
        assert c.wheel_force_n(c.max_gear_speed_ms(g) * 1.001, g) == 0.0  # fuel cut
    v = np.array([0.0, 30.0, 60.0])
    np.testing.assert_allclose(
        c.resistance_n(v), 0.5 * c.air_density * c.cda_m2 * v**2 + c.rolling_coeff * c.mass_kg * G
    )
    speeds = c.max_gear_speeds_ms()
    assert len(speeds) == 6 and all(b > a for a, b in zip(speeds, speeds[1:]))
    # Realistic numbers: top gear tops out around 300 km/h for the GT, ~210-240 for the hatch.
    assert 270 < speeds[-1] * 3.6 < 330
    assert 200 < HATCH.max_gear_speeds_ms()[-1] * 3.6 < 260


def test_gt_optimal_upshift_is_below_the_limiter_and_solves_the_force_equation():
    c = GT
    for g in range(1, c.num_gears):
        r = c.optimal_upshift_rpm(g)
        assert 0.88 * c.limiter_rpm < r < 0.96 * c.limiter_rpm, (g, r)
        gn, gn1 = c.overall_ratio(g), c.overall_ratio(g + 1)
        lhs = c.engine_torque_nm(r) * gn
        rhs = c.engine_torque_nm(r * gn1 / gn) * gn1
        assert lhs == pytest.approx(rhs, rel=1e-9)
        # It is a crossing: below it gear n pulls harder, above it gear n+1 does (same road speed).
        v = c.speed_at_rpm_ms(r, g)
        assert c.wheel_force_n(v * 0.99, g) > c.wheel_force_n(v * 0.99, g + 1)
        assert c.wheel_force_n(v * 1.01, g) < c.wheel_force_n(v * 1.01, g + 1)
    # Brute force over road speed agrees: the first speed where gear n+1 out-pulls gear n.
    g = 3
    v = np.linspace(c.speed_at_rpm_ms(3000.0, g), c.max_gear_speed_ms(g) * 0.9999, 200_001)
    first = v[np.argmax(c.wheel_force_n(v, g + 1) > c.wheel_force_n(v, g))]
    assert c.rpm_at(first, g) == pytest.approx(c.optimal_upshift_rpm(g), abs=0.2)
    assert c.optimal_upshift_rpm(c.num_gears) == c.limiter_rpm


def test_hatch_optimal_upshift_is_the_limiter():
    c = HATCH
    for g in range(1, c.num_gears):
        assert c.optimal_upshift_rpm(g) == c.limiter_rpm
        v = c.max_gear_speed_ms(g) * 0.999
        assert c.wheel_force_n(v, g) > c.wheel_force_n(v, g + 1)


def test_carspec_validates():
    with pytest.raises(ValueError):
        CarSpec("x", 1000, 0.3, (1.0, 2.0), 3.0, (1000.0, 2000.0), (100.0, 100.0), 800.0, 6000.0, 0.6)


# ---------------------------------------------------------------------------------------- simulation
def test_step_block_channels(gt_race):
    sim, d = gt_race
    n = len(d["t_ns"])
    assert set(d) == set(CHANNELS)
    for key in CHANNELS:
        assert len(d[key]) == n, key
    assert d["last_sector_times_s"].shape == (n, 3)
    assert d["t_ns"].dtype == np.int64 and d["gear"].dtype == np.int8
    steps = np.diff(d["t_ns"])
    assert steps.min() >= 3_003_002 and steps.max() <= 3_003_004  # 333 Hz
    assert d["t_ns"][0] == sim.start_time_ns
    assert np.all(d["in_pit"] == 0) and np.all(d["num_gears"] == 6) and np.all(d["max_rpm"] == 7500.0)
    assert np.all((d["throttle"] >= 0) & (d["throttle"] <= 1) & (d["brake"] >= 0) & (d["brake"] <= 1))
    assert np.all((d["clutch"] == 0) | (d["clutch"] == 1))
    assert np.all(np.abs(d["steer"]) <= 1) and np.all((d["norm_pos"] >= 0) & (d["norm_pos"] < 1))
    assert set(np.unique(d["sector"])) == {1, 2, 3}
    assert sim.step_block(0)["speed_ms"].shape == (0,)


def test_deterministic_per_seed_and_independent_of_block_split(gt_race):
    sim, d = gt_race
    other = Simulation(GT, RING, seed=7)
    parts = [other.step_block(n) for n in (1, 999, 20_000, 12_345)]
    n = sum(len(p["t_ns"]) for p in parts)
    for key in CHANNELS:
        np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), d[key][:n], err_msg=key)
    # Another seed only changes the input noise; the truth and the motion are the same.
    third = Simulation(GT, RING, seed=8)
    e = third.step_block(n)
    assert not np.array_equal(e["steer"], d["steer"][:n])
    np.testing.assert_array_equal(e["speed_ms"], d["speed_ms"][:n])
    np.testing.assert_array_equal(e["x"], d["x"][:n])
    assert third.truth.lap_times_s == other.truth.lap_times_s


def test_flying_start_and_exact_lap_truth(gt_race):
    sim, d = gt_race
    truth = sim.truth
    # Flying lap: at s = 0 at racing speed, so lap 1 is a normal complete lap like the others.
    assert d["lap_distance_m"][0] == 0.0 and d["lap_count"][0] == 0 and d["speed_ms"][0] > 40.0
    assert len(truth.lap_times_s) == 2
    assert truth.lap_times_s[0] == pytest.approx(truth.lap_times_s[1], abs=1e-9)
    assert 60.0 < truth.lap_times_s[0] < 120.0
    crossings = np.flatnonzero(np.diff(d["lap_count"])) + 1
    assert len(crossings) == 2
    assert np.all(np.diff(d["lap_count"]) >= 0)
    period = 1.0 / RATE
    for k, i in enumerate(crossings):
        lap = truth.lap_times_s[k]
        assert d["last_lap_s"][i] == lap  # what the game reports is the truth, exactly
        # Sub-sample: the crossing lies between the two samples around it.
        t_before = truth.lap_start_times_s[k] + d["lap_time_s"][i - 1]
        t_after = (i) * period
        assert t_before < truth.lap_start_times_s[k + 1] <= t_after + 1e-12
        assert d["lap_time_s"][i] < period and d["lap_distance_m"][i] < 100.0
        assert d["lap_distance_m"][i - 1] > RING.length_m - 100.0
        assert sum(truth.sector_times_s[k]) == pytest.approx(lap, abs=1e-9)
        np.testing.assert_allclose(d["last_sector_times_s"][i], truth.sector_times_s[k])
        assert d["best_lap_s"][i] == min(truth.lap_times_s[: k + 1])
    assert np.all(d["last_lap_s"][: crossings[0]] == -1.0)
    assert np.all(d["last_sector_times_s"][: crossings[0]] == -1.0)
    # Sector clock restarts at each sector line, and the lap clock equals the time since the line.
    i1 = np.flatnonzero(np.diff(d["sector"].astype(int)) == 1)[0] + 1
    assert d["sector_time_s"][i1] < period and d["sector_time_s"][i1 - 1] == pytest.approx(
        truth.sector_times_s[0][0], abs=period
    )
    assert d["lap_time_s"][crossings[0] + 1000] == pytest.approx(
        (crossings[0] + 1000) * period - truth.lap_start_times_s[1], abs=1e-9
    )


def test_lap_variation_gives_different_laps_and_the_truth_follows():
    sim = Simulation(GT, RING, seed=3, lap_variation=0.03)
    d = _run(sim, 450.0)
    truth = sim.truth
    laps = truth.lap_times_s
    assert len(laps) >= 4 and len(set(laps)) == len(laps)
    crossings = np.flatnonzero(np.diff(d["lap_count"])) + 1
    np.testing.assert_array_equal(d["last_lap_s"][crossings], laps[: len(crossings)])
    np.testing.assert_array_equal(d["best_lap_s"][crossings], np.minimum.accumulate(laps[: len(crossings)]))
    # The driver only ever uses less grip than the car has.
    assert np.all(d["speed_ms"] <= sim.corner_speed_limit_ms(d["lap_distance_m"]) + 1e-9)


@pytest.mark.parametrize("which", ["gt_race", "hatch_race", "gt_pulls"])
def test_speed_never_exceeds_the_corner_limit_and_rpm_stays_in_range(which, request):
    sim, d = request.getfixturevalue(which)
    car = sim.car
    limit = sim.corner_speed_limit_ms(d["lap_distance_m"])
    assert np.all(d["speed_ms"] <= limit * (1 + 1e-9))
    assert np.max(np.abs(d["g_lat"])) <= car.max_lat_g + 1e-9
    # The car does use the grip: at the corner limit somewhere in every corner.
    for c in sim.truth.corners:
        inside = (d["lap_distance_m"] > c.start_m) & (d["lap_distance_m"] < c.end_m)
        if which != "gt_pulls":
            assert np.max(d["speed_ms"][inside] / limit[inside]) > 0.999, c
    assert np.all(d["rpm"] <= car.limiter_rpm) and np.all(d["rpm"] >= car.idle_rpm)
    assert d["gear"].min() >= 1 and d["gear"].max() <= car.num_gears
    np.testing.assert_allclose(
        d["rpm"], np.clip([car.rpm_at(v, int(g)) for v, g in zip(d["speed_ms"], d["gear"])], car.idle_rpm, None)
    )


def test_gt_reaches_top_gears_and_brakes_hard_twice(gt_race):
    sim, d = gt_race
    assert d["gear"].max() == GT.num_gears
    assert d["speed_ms"].max() * 3.6 > 250.0
    # Heavy braking zones: ≥ 100 km/h lost under the brakes, after straights ≥ 700 m.
    lap = d["lap_count"] == 1
    zones = [(a, b) for a, b in _runs((d["brake"] > 0) & lap)]
    heavy = [(a, b) for a, b in zones if (d["speed_ms"][a] - d["speed_ms"][b - 1]) * 3.6 > 100.0]
    assert len(heavy) >= 2
    straights = [length for _, length in RING.straights()]
    assert sum(length >= 700 for length in straights) >= 2
    # Braking never asks for more than the car can do, and the decelerations are realistic.
    assert d["brake"].max() <= 1.0
    assert -d["g_long"].min() < GT.max_brake_g + 0.15
    assert d["g_long"].max() < 1.3  # no traction limit: 1st gear pulls ~1.2 g (see CarSpec)


def test_upshifts_at_the_limiter_downshifts_in_band(gt_race):
    sim, d = gt_race
    car = sim.car
    ups = [e for e in sim.truth.shifts if e.to_gear == e.from_gear + 1]
    downs = [e for e in sim.truth.shifts if e.to_gear == e.from_gear - 1]
    assert len(ups) >= 5 and len(downs) >= 5
    for e in ups:
        assert e.rpm == pytest.approx(car.limiter_rpm * (1 - 0.002), abs=1e-6)
        assert e.rpm <= car.limiter_rpm
    for e in downs:
        after = car.rpm_at(e.speed_ms, e.to_gear)
        assert after <= 0.8 * sim.shift_rpm[e.to_gear] + 1e-6 and after > 0.45 * car.limiter_rpm
    # From the samples: the last sample before each upshift is within one sample of the shift rpm,
    # the clutch is out and there is no throttle for shift_time_s.
    i = np.flatnonzero(np.diff(d["gear"].astype(int)) == 1) + 1
    assert len(i) >= 5
    assert np.all(d["rpm"][i - 1] > car.limiter_rpm * 0.996)
    n_shift = int(car.shift_time_s * RATE)
    for k in i:
        assert np.all(d["clutch"][k : k + n_shift - 1] == 0.0)
        assert np.all(d["throttle"][k : k + n_shift - 1] == 0.0)
        assert d["clutch"][k + n_shift + 2] == 1.0


def test_shift_rpm_options_are_respected():
    sim = Simulation(GT, RING, shift_rpm={2: 6000.0, 3: 6500.0})
    sim.step_block(int(90 * RATE))
    for e in sim.truth.shifts:
        if e.to_gear == e.from_gear + 1:
            want = {2: 6000.0, 3: 6500.0}.get(e.from_gear, GT.limiter_rpm * (1 - 0.002))
            assert e.rpm == pytest.approx(want, abs=1e-6)
    assert Simulation(GT, RING, shift_rpm=7000.0).shift_rpm[4] == 7000.0
    assert Simulation(GT, RING, shift_rpm=9999.0).shift_rpm[1] == GT.limiter_rpm
    with pytest.raises(ValueError):
        Simulation(GT, RING, shift_rpm="late")
    with pytest.raises(ValueError):
        Simulation(GT, RING, mode="qualifying")


def test_optimal_shifting_is_faster_only_where_the_optimum_is_below_the_limiter(gt_race, hatch_race):
    gt_default = gt_race[0].truth.lap_times_s[0]
    gt_opt = Simulation(GT, RING, shift_rpm="optimal")
    gt_opt.step_block(int(100 * RATE))
    ups = [e for e in gt_opt.truth.shifts if e.to_gear == e.from_gear + 1]
    for e in ups:
        assert e.rpm == pytest.approx(GT.optimal_upshift_rpm(e.from_gear), abs=1e-6)
    assert gt_opt.truth.lap_times_s[0] < gt_default - 0.3  # the shift analysis has time to find
    hatch_default = hatch_race[0].truth.lap_times_s[0]
    hatch_opt = Simulation(HATCH, RING, shift_rpm="optimal")
    hatch_opt.step_block(int(110 * RATE))
    assert abs(hatch_opt.truth.lap_times_s[0] - hatch_default) < 0.1


def test_full_throttle_acceleration_is_the_car_model(gt_race, hatch_race):
    for sim, d in (gt_race, hatch_race):
        car = sim.car
        m = (d["throttle"] == 1.0) & (d["clutch"] == 1.0)
        idx = np.flatnonzero(m)[::7]
        v, gear = d["speed_ms"][idx], d["gear"][idx]
        force = np.array([car.wheel_force_n(vv, int(g)) for vv, g in zip(v, gear)])
        grade = d["vy"][idx] / v
        expect = (force - car.resistance_n(v)) / car.mass_kg / G - grade
        got = d["g_long"][idx]
        assert np.all(np.abs(got - expect) <= 0.03 * np.abs(expect) + 2e-3)
        # While the clutch is out (upshift), only drag, rolling resistance and grade act.
        c = np.flatnonzero((d["clutch"] == 0) & (d["brake"] == 0))[::5]
        v = d["speed_ms"][c]
        coast = -car.resistance_n(v) / car.mass_kg / G - d["vy"][c] / v
        np.testing.assert_allclose(d["g_long"][c], coast, atol=2e-3)


def test_kinematics_are_consistent(gt_race):
    sim, d = gt_race
    t = (d["t_ns"] - d["t_ns"][0]) * 1e-9
    dt = np.diff(t)
    mid = lambda a: 0.5 * (a[1:] + a[:-1])  # noqa: E731
    np.testing.assert_allclose(np.diff(d["x"]) / dt, mid(d["vx"]), atol=0.02)
    np.testing.assert_allclose(np.diff(d["z"]) / dt, mid(d["vz"]), atol=0.02)
    np.testing.assert_allclose(np.diff(d["y"]) / dt, mid(d["vy"]), atol=1e-3)
    np.testing.assert_allclose(np.diff(d["odometer_m"]), mid(d["speed_ms"]) * dt, atol=1e-4)
    speed = np.sqrt(d["vx"] ** 2 + d["vz"] ** 2)
    np.testing.assert_allclose(speed, d["speed_ms"], rtol=1e-12)
    # Speed is continuous; g_long is its derivative.
    acc = np.diff(d["speed_ms"]) / dt / G
    assert np.median(np.abs(acc - mid(d["g_long"]))) < 1e-6
    # g_lat = v²κ/g with + for left turns; steer follows the sign of the curvature.
    k = RING.curvature(d["lap_distance_m"])
    np.testing.assert_allclose(d["g_lat"], d["speed_ms"] ** 2 * k / G, atol=1e-9)
    turning = np.abs(k) > 0
    assert np.all(np.sign(d["steer"][turning]) == np.sign(k[turning]))
    # Heading is the track heading, wrapped to [-π, π).
    th = np.mod(RING.heading(d["lap_distance_m"]) + np.pi, 2 * np.pi) - np.pi
    np.testing.assert_allclose(d["heading_rad"], th, atol=1e-12)
    assert np.all(np.abs(d["y"] - RING.y(d["lap_distance_m"])) < 1e-12)


def test_braking_onsets_and_the_pedal_ramp(gt_race):
    sim, d = gt_race
    truth = sim.truth
    onsets = truth.braking_onsets_m
    corners = truth.corners
    assert len(onsets) == len(corners)  # every corner of this track needs the brakes
    for onset, c in zip(onsets, corners):
        assert 0.0 < c.start_m - onset < 400.0
    lap = np.flatnonzero(d["lap_count"] == 1)
    brake, s = d["brake"][lap], d["lap_distance_m"][lap]
    starts = [a for a, _ in _runs(brake > 0)]
    assert len(starts) == len(onsets)
    step = d["speed_ms"].max() / RATE
    for a, onset in zip(starts, onsets):
        assert onset - 1e-9 <= s[a] <= onset + step  # the pedal rises at the truth onset
        assert brake[a] < 0.3  # ... and it ramps, it does not jump
        ramp = brake[a : a + int(0.2 * RATE)]
        assert ramp.max() > 0.85


@pytest.mark.parametrize("offset", [-4.0, 3.0])
def test_offset_line_lies_at_the_requested_distance(offset):
    sim = Simulation(GT, RING, line_offset_m=offset, input_noise=0.0)
    d = _run(sim, 95.0)
    s = d["lap_distance_m"]
    xc, zc = RING.xz(s)
    nx, nz = RING.normal(s)
    dx, dz = d["x"] - xc, d["z"] - zc
    np.testing.assert_allclose(np.hypot(dx, dz), abs(offset), atol=1e-9)
    np.testing.assert_allclose(dx * nx + dz * nz, offset, atol=1e-9)  # + = left
    # A parallel line of a closed curve turning 2π is shorter by 2π·offset (left = inside here).
    assert sim.path_length_m == pytest.approx(RING.length_m - 2 * math.pi * offset, abs=1e-6)
    assert sim.truth.line_offset_m == offset
    assert len(sim.truth.lap_times_s) == 1 and np.all((s >= 0) & (s < RING.length_m))
    assert np.all(d["speed_ms"] <= sim.corner_speed_limit_ms(s) * (1 + 1e-9))
    # Odometer follows the driven line, lap distance the centre line.
    assert d["odometer_m"][-1] > sim.path_length_m


def test_pulls_go_through_the_gears_at_full_throttle(gt_pulls):
    sim, d = gt_pulls
    car = sim.car
    # A pull: full throttle except for the clutch-out gaps of the upshifts, starting in 1st.
    powered = (d["throttle"] == 1.0) | (d["clutch"] == 0.0) & (d["brake"] == 0.0)
    pulls = []
    for a, b in _runs(powered):
        gears = d["gear"][a:b]
        if gears[0] == 1 and gears.max() >= 4 and d["speed_ms"][a] * 3.6 < 30.0:
            pulls.append((a, b))
    assert len(pulls) >= 2  # the two longest straights of each lap
    for a, b in pulls:
        g = d["gear"][a:b].astype(int)
        assert np.all(np.diff(g) >= 0)  # only upshifts
        assert set(np.unique(g)) == set(range(1, g.max() + 1))
        ups = np.flatnonzero(np.diff(g) == 1) + a + 1
        assert len(ups) >= 3
        assert np.all(d["rpm"][ups - 1] >= car.limiter_rpm * 0.996)  # shifted at the limiter
        on = (d["clutch"][a:b] == 1.0)
        assert np.all(d["throttle"][a:b][on] == 1.0)
    for e in sim.truth.shifts:
        if e.to_gear == e.from_gear + 1:
            assert e.rpm == pytest.approx(car.limiter_rpm * (1 - 0.002), abs=1e-6)


# The end-to-end tests (test_analyses_e2e.py, test_sessions_e2e.py) play the simulator at 40× real
# time; each sender takes what is due every PACE_S, so it steps a car of up to 100 Hz in blocks of
# 20 samples, and one test (test_sessions_e2e.py's rig) runs three senders in its process.
E2E_SPEED = 40.0
E2E_SENDERS = 3


def test_step_block_is_much_faster_than_real_time():
    # "Much faster" means: fast enough for the end-to-end tests, stepped as their senders step it,
    # with room for all of one test's senders. The cost is this thread's CPU time (time.thread_time),
    # so other work on the machine does not count; the best of three runs is taken.
    rate = 100.0
    block = round(rate * E2E_SPEED * PACE_S)
    seconds = 60.0
    n = int(seconds * rate)
    cpu = []
    for _ in range(3):
        sim = Simulation(GT, RING, rate_hz=rate)
        t0 = time.thread_time()
        steps = [sim.step_block(block) for _ in range(n // block)]
        cpu.append(time.thread_time() - t0)
        assert sum(len(d["t_ns"]) for d in steps) == n
    assert seconds / min(cpu) > E2E_SPEED * E2E_SENDERS, (block, cpu)
    # And in one block, the whole of 10 minutes of 333 Hz data is what it should be: every lap run.
    sim = Simulation(GT, RING)
    d = sim.step_block(200_000)
    assert len(d["t_ns"]) == 200_000 and len(sim.truth.lap_times_s) == int(200_000 / RATE // sim.truth.lap_times_s[0])
