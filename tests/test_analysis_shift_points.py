"""Shift-point analysis against the simulator's truth, and its pure core on synthetic arrays.

The simulated driver in ``mode="pulls"`` pulls flat out through the gears and always shifts at
the limiter, so the data never shows gear n+1 at the speeds where the torque curves of n and
n+1 cross. The analysis must still find the true optimum (``CarSpec.optimal_upshift_rpm``) by
rebuilding the engine's torque curve from all gears. The car model has no wheel slip, so every
gear sees exactly the same engine.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from rt.sim.frames import frames_from_sim

from rt.analysis import shift_points
from rt.analysis.frames import Frames
from rt.analysis.shift_points import (
    accel_windows,
    analyze,
    fit_torque,
    recommend_upshift,
    upshift_crossing_rpm,
    upshift_events,
)
from rt.sim.car import CARS, RPM_PER_RAD_S
from rt.sim.driver import Simulation

GT = CARS["gt_coupe"]
HATCH = CARS["club_hatch"]
RATE = 100.0
PULLS_S = 200.0  # two laps of pulls: each gear 1→5 pulled four times (two straights per lap)
TOL = 0.003  # the README: within 0.3 % of the true optimum (the issue asked for 2 %)
# A driver who already shifts at the optimum leaves no data of gear n above it, so its crossing
# is extrapolated: the README states 0.5 % for that case, and it is held to that.
TOL_AT_OPTIMUM = 0.005
GT_GEARS = (1, 2, 3, 4)  # the GT's pulls reach 5th but never 6th, so 5→6 has no entry
HATCH_GEARS = (1, 2, 3, 4, 5)  # the hatch reaches 6th on the main straight
WINDOWS_TIMER_NS = 15_625_000  # 1/64 s: the receive clock of the real AC capture


def pulls(car: str, game: str = "ac", seconds: float = PULLS_S, rate_hz: float = RATE, seed: int = 1, **kw):
    sim = Simulation(car, "test_ring", rate_hz=rate_hz, seed=seed, mode="pulls", **kw)
    frames, _ = frames_from_sim(sim, int(rate_hz * seconds), game, meta={"run_id": f"{car}-{game}"})
    return sim, frames


def with_t_ns(frames: Frames, t_ns: np.ndarray) -> Frames:
    channels = dict(frames.channels)
    channels["t_ns"] = t_ns
    return Frames(channels, dict(frames.extras), dict(frames.meta))


def timer_quantised(frames: Frames, phase_ns: int = 7_000_000) -> Frames:
    """Receive times as a 64 Hz Windows timer stamps them: the next 15.625 ms tick after arrival.

    At 100 Hz that is one or two packets per tick: duplicated timestamps, then 15.6 or 31.3 ms
    steps, like the real AC capture's index."""
    t = frames["t_ns"]
    return with_t_ns(frames, ((t + phase_ns) // WINDOWS_TIMER_NS + 1) * WINDOWS_TIMER_NS)


def noisy(frames: Frames, seed: int = 3) -> Frames:
    """Receive times with uniform ±3 ms jitter (kept in order, as a receiver would see them)."""
    t = frames["t_ns"]
    jitter = np.random.default_rng(seed).integers(-3_000_000, 3_000_001, len(t))
    return with_t_ns(frames, np.maximum.accumulate(t + jitter))


def by_gear(result: dict) -> dict[int, dict]:
    return {g["gear"]: g for g in result["gears"]}


def assert_within(result: dict, car, gears, tol: float = TOL) -> None:
    found = by_gear(result)
    assert set(gears) <= set(found), f"missing gears: {sorted(set(gears) - set(found))}"
    for g in gears:
        truth = car.optimal_upshift_rpm(g)
        got = found[g]["recommended_rpm"]
        assert abs(got / truth - 1.0) <= tol, f"gear {g}: {got:.0f} rpm vs true {truth:.0f} rpm"


# ---------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def gt_ac():
    return pulls("gt_coupe", "ac")


@pytest.fixture(scope="module")
def gt_pcars1():
    return pulls("gt_coupe", "pcars1")


@pytest.fixture(scope="module")
def hatch_ac():
    return pulls("club_hatch", "ac")


# ---------------------------------------------------------------------------------------- against the truth
def test_gt_pulls_only_shift_at_the_limiter(gt_ac):
    """The premise: the data has upshifts at the limiter only, far above the optimum."""
    sim, _ = gt_ac
    ups = [e for e in sim.truth.shifts if e.to_gear == e.from_gear + 1]
    assert {e.from_gear for e in ups} == {1, 2, 3, 4}
    assert min(e.rpm for e in ups) > 0.99 * GT.limiter_rpm
    assert max(GT.optimal_upshift_rpm(g) for g in GT_GEARS) < 0.96 * GT.limiter_rpm


@pytest.mark.parametrize("fixture", ["gt_ac", "gt_pcars1"])
def test_gt_recommended_within_0_3pct_of_the_true_optimum(fixture, request):
    _, frames = request.getfixturevalue(fixture)
    result = analyze([frames])
    assert_within(result, GT, GT_GEARS)
    found = by_gear(result)
    assert 5 not in found  # no 6th-gear data at all: no ratio for it
    for g in GT_GEARS:
        assert found[g]["basis"] == "crossing"
        # Not the limiter in disguise: clearly below where the driver actually shifted.
        assert found[g]["recommended_rpm"] < found[g]["observed_rpm"]["mean"] - 250.0
        assert found[g]["recommended_speed_kmh"] == pytest.approx(
            GT.speed_at_rpm_ms(found[g]["recommended_rpm"], g) * 3.6, rel=1e-3
        )


def test_hatch_recommends_the_limiter(hatch_ac):
    _, frames = hatch_ac
    result = analyze([frames])
    assert_within(result, HATCH, HATCH_GEARS)
    for g in HATCH_GEARS:
        assert by_gear(result)[g]["basis"] == "limiter"
        assert HATCH.optimal_upshift_rpm(g) == HATCH.limiter_rpm
    assert result["max_rpm"] == pytest.approx(HATCH.limiter_rpm, rel=0.005)


@pytest.mark.parametrize("jitter", [timer_quantised, noisy], ids=["timer-15.6ms", "noise-3ms"])
@pytest.mark.parametrize("fixture", ["gt_ac", "gt_pcars1"])
def test_gt_with_jittered_receive_times(fixture, jitter, request):
    _, frames = request.getfixturevalue(fixture)
    jittered = jitter(frames)
    if jitter is timer_quantised:
        steps = np.diff(jittered["t_ns"])
        assert (steps == 0).mean() > 0.2 and set(np.unique(steps)) <= {0, WINDOWS_TIMER_NS, 2 * WINDOWS_TIMER_NS}
    assert_within(analyze([jittered]), GT, GT_GEARS)


@pytest.mark.parametrize("jitter", [timer_quantised, noisy], ids=["timer-15.6ms", "noise-3ms"])
def test_hatch_with_jittered_receive_times(hatch_ac, jitter):
    _, frames = hatch_ac
    assert_within(analyze([jitter(frames)]), HATCH, HATCH_GEARS)


def test_timer_quantised_64hz_feed_of_a_60hz_game():
    """Closer to the real capture: ~60 packets/s onto 64 timer ticks/s, one lap only."""
    _, frames = pulls("gt_coupe", "ac", seconds=100.0, rate_hz=60.0, seed=2)
    assert_within(analyze([timer_quantised(frames)]), GT, GT_GEARS)


def test_flat_shifts_without_a_clutch_channel(gt_ac):
    """A feed without clutch, pedal held down through the shift (the game cuts the ignition):
    only the gear channel tells that the 0.18 s after a gear change are not drive."""
    _, frames = gt_ac
    channels = dict(frames.channels)
    shifting = channels["clutch"] < 0.5
    assert shifting.sum() > 100
    channels["throttle"] = np.where(shifting, np.float32(1.0), channels["throttle"])
    channels["clutch"] = np.full(len(frames), np.nan, dtype=np.float32)
    flat = analyze([Frames(channels)])
    assert_within(flat, GT, GT_GEARS)
    # The same answer as with the clutch channel: the shifts' coasting stays out of the fit
    # (let in, it moves the answers by ~1 %).
    with_clutch = by_gear(analyze([frames]))
    for g in GT_GEARS:
        assert by_gear(flat)[g]["recommended_rpm"] == pytest.approx(with_clutch[g]["recommended_rpm"], rel=0.003)


def test_observed_upshifts_are_the_drivers_limiter_shifts(gt_ac):
    sim, frames = gt_ac
    result = analyze([frames])
    for g in GT_GEARS:
        entry = by_gear(result)[g]
        true_ups = [e.rpm for e in sim.truth.shifts if e.from_gear == g and e.to_gear == g + 1]
        assert entry["upshifts"] == entry["observed_rpm"]["count"] == len(true_ups)
        # The last sample before the shift is at most one 10 ms sample below the shift point.
        assert entry["observed_rpm"]["mean"] == pytest.approx(np.mean(true_ups), abs=35.0)
        assert entry["observed_rpm"]["mean"] == pytest.approx(GT.limiter_rpm, rel=0.01)
        assert entry["observed_rpm"]["spread"] < 30.0
    assert result["max_rpm"] == pytest.approx(GT.limiter_rpm, rel=0.005)


def test_confidence_grows_with_data():
    _, short = pulls("gt_coupe", "ac", seconds=100.0)
    _, long = pulls("gt_coupe", "ac", seconds=400.0)
    few, many = by_gear(analyze([short])), by_gear(analyze([long]))
    for g in GT_GEARS:
        assert 0.0 < few[g]["confidence"] < many[g]["confidence"] <= 1.0
        assert few[g]["clean_s"] < many[g]["clean_s"]


def test_several_runs_pool_like_one(gt_ac):
    _, frames = gt_ac
    n = len(frames)
    one = by_gear(analyze([frames]))
    two = by_gear(analyze([frames.take(slice(0, n // 2)), frames.take(slice(n // 2, None))]))
    for g in GT_GEARS:
        assert two[g]["recommended_rpm"] == pytest.approx(one[g]["recommended_rpm"], rel=0.005)
        assert two[g]["upshifts"] + 1 >= one[g]["upshifts"]  # a shift may straddle the cut


def test_driver_at_the_optimum_is_told_the_optimum():
    """Data of a driver who already shifts at the optimum: no gear n above it at all."""
    _, frames = pulls("gt_coupe", "ac", shift_rpm="optimal")
    assert_within(analyze([frames]), GT, GT_GEARS, tol=TOL_AT_OPTIMUM)


# ---------------------------------------------------------------------------------------- output shape
def test_result_is_plain_json_with_the_api_keys(gt_ac):
    _, frames = gt_ac
    before = {k: v.copy() for k, v in frames.channels.items()}
    result = analyze([frames])
    for k, v in before.items():  # pure: the input is untouched
        np.testing.assert_array_equal(frames.channels[k], v)
    json.dumps(result, allow_nan=False)
    assert shift_points.VERSION == 1
    assert {"gears", "max_rpm", "curves", "summary"} <= set(result)
    for g in result["gears"]:
        assert {"gear", "upshifts", "observed_rpm", "recommended_rpm", "recommended_speed_kmh", "confidence"} <= set(g)
        assert {"mean", "spread", "count"} <= set(g["observed_rpm"])
        assert 0.0 <= g["confidence"] <= 1.0
    assert [g["gear"] for g in result["gears"]] == list(GT_GEARS)
    curves = result["curves"]
    assert curves["accel_unit"] == "m/s²" and curves["speed_unit"] == "km/h"
    assert len(curves["torque"]["rpm"]) == len(curves["torque"]["rel"]) <= 200
    assert max(curves["torque"]["rel"]) == pytest.approx(1.0)
    for c in curves["gears"]:
        for key in ("speed_kmh", "accel_ms2", "measured_speed_kmh", "measured_accel_ms2", "torque_rpm", "torque_rel"):
            assert isinstance(c[key], list) and 0 < len(c[key]) <= 200
        assert len(c["speed_kmh"]) == len(c["accel_ms2"])
    summary = result["summary"]
    assert summary["line"].startswith("1→2 ")
    assert set(summary["recommended_rpm"]) == {str(g) for g in GT_GEARS}
    assert 0.0 < summary["confidence"] <= 1.0


def test_fitted_curves_match_the_car(gt_ac):
    """The chart's acceleration curves are the car's own (grade left aside: ±0.15 m/s²)."""
    _, frames = gt_ac
    for c in analyze([frames])["curves"]["gears"]:
        v = np.asarray(c["speed_kmh"]) / 3.6
        true = GT.wheel_force_n(v, c["gear"]) / GT.mass_kg - GT.resistance_n(v) / GT.mass_kg
        np.testing.assert_allclose(c["accel_ms2"], true, atol=0.2)


# ---------------------------------------------------------------------------------------- errors
def test_empty_input_is_a_clear_error():
    with pytest.raises(ValueError, match="no frames"):
        analyze([])
    with pytest.raises(ValueError, match="no frames"):
        analyze([Frames({"t_ns": np.zeros(0, np.int64)})])


def test_no_full_throttle_is_a_clear_error(gt_ac):
    _, frames = gt_ac
    channels = dict(frames.channels)
    channels["throttle"] = np.minimum(channels["throttle"], np.float32(0.9))
    with pytest.raises(ValueError, match="full-throttle"):
        analyze([Frames(channels)])


def test_one_gear_only_is_a_clear_error(gt_ac):
    _, frames = gt_ac
    third = frames.take(frames["gear"] == 3)
    with pytest.raises(ValueError, match="gear"):
        analyze([third])


# ---------------------------------------------------------------------------------------- pure core
def overall_k(car, gear: int) -> float:
    """rpm per m/s in ``gear``."""
    return car.rpm_at(1.0, gear)


def test_crossing_is_exact_on_the_true_torque_curve():
    for car in (GT, HATCH):
        for g in range(1, car.num_gears):
            got = upshift_crossing_rpm(car.torque_rpm, car.torque_nm, overall_k(car, g), overall_k(car, g + 1),
                                       car.idle_rpm * 2, car.limiter_rpm)
            if car.optimal_upshift_rpm(g) == car.limiter_rpm:
                assert got is None
            else:
                assert got == pytest.approx(car.optimal_upshift_rpm(g), abs=1e-6)


def test_recommend_upshift_bases():
    knots = np.array([1000.0, 5000.0, 8000.0])
    falling = np.array([500.0, 500.0, 100.0])  # flat, then a straight fall to 8000 rpm
    # Gear ratio 0.7: the crossing is where T(r) = 0.7·500 while r·0.7 is still on the flat part,
    # r = 5000 + (500 − 350)/(400/3000) = 6125 rpm.
    assert recommend_upshift(knots, falling, 100.0, 70.0, 2000.0, 7500.0, 8000.0) == pytest.approx((6125.0, "crossing"))
    # Data ends at 6000 rpm, below the crossing: the margin is straight there, so the trend is exact.
    rpm, basis = recommend_upshift(knots, falling, 100.0, 70.0, 2000.0, 6000.0, 8000.0)
    assert basis == "trend" and rpm == pytest.approx(6125.0)
    # A flat curve: gear n always stronger, shift at the limiter.
    assert recommend_upshift(knots, np.full(3, 300.0), 100.0, 70.0, 2000.0, 7900.0, 8000.0) == (8000.0, "limiter")
    # Gear n+1 stronger already at the lowest rpm.
    assert recommend_upshift(knots, falling, 100.0, 70.0, 7000.0, 7900.0, 8000.0) == (7000.0, "lowest_rpm")


def test_window_slope_is_the_quadrature_operator_applied_to_the_acceleration():
    """Each window's speed slope equals Σ cᵢ·a(tᵢ): the identity the joint fit is built on."""
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0.0, 10.0, 800))  # irregular receive times
    t[::7] = t[1::7][: len(t[::7])]  # and duplicated ones
    t = np.sort(t)
    a = 3.0 - 0.4 * t  # linear acceleration: trapezoid integration is exact
    v = 5.0 + 3.0 * t - 0.2 * t * t
    gear = np.where(t < 5.0, 2, 3)
    win = accel_windows(t, v, 1000.0 + 100.0 * v, gear, np.ones(len(t), dtype=bool))
    assert len(win.accel_ms2) > 50
    model = np.bincount(win.window, win.weight * a[win.sample], minlength=len(win.accel_ms2))
    np.testing.assert_allclose(win.accel_ms2, model, atol=1e-9)
    np.testing.assert_allclose(np.bincount(win.window, win.weight), 1.0, atol=1e-9)
    # No window mixes gears or spans more than WINDOW_S.
    for w in range(0, len(win.accel_ms2), 17):
        idx = win.sample[win.window == w]
        assert len(set(gear[idx])) == 1 and np.ptp(t[idx]) <= shift_points.WINDOW_S


def synthetic_pulls(rate_hz: float = 100.0):
    """Exact full-throttle pulls through three gears of a known engine: (t, v, rpm, gear, truth).

    a = k·T(k·v)·c − c0 − c2·v², integrated with RK4 at 1 ms and sampled at ``rate_hz``; a 0.2 s
    coast (clutch out) at each shift, at the limiter, as the sim's driver does."""
    knots = np.arange(1000.0, 8001.0, 500.0)
    torque = np.interp(knots, [1000, 3000, 5000, 6000, 7000, 8000], [300, 480, 540, 520, 400, 150])
    k = {1: 300.0, 2: 210.0, 3: 155.0}  # rpm per m/s
    c, c0, c2 = 1.0e-4, 0.12, 3.0e-4
    limiter = 7900.0

    def acc(v, g, engaged):
        drive = k[g] * np.interp(k[g] * v, knots, torque) * c if engaged else 0.0
        return drive - c0 - c2 * v * v

    dt, t, v, g, coast = 1e-3, 0.0, 4.0, 1, 0.0
    ts, vs, gs, cl = [], [], [], []
    while g <= 3 and t < 60.0:
        engaged = coast <= 0.0
        ts.append(t), vs.append(v), gs.append(g), cl.append(1.0 if engaged else 0.0)
        k1 = acc(v, g, engaged)
        k2 = acc(v + 0.5 * dt * k1, g, engaged)
        k3 = acc(v + 0.5 * dt * k2, g, engaged)
        k4 = acc(v + dt * k3, g, engaged)
        v += dt * (k1 + 2 * k2 + 2 * k3 + k4) / 6.0
        t += dt
        coast -= dt
        if engaged and k[g] * v >= limiter:
            g, coast = g + 1, 0.2
    ts, vs, gs, cl = map(np.asarray, (ts, vs, gs, cl))
    pick = np.arange(0, len(ts), round(1000.0 / rate_hz))
    t, v, gear, clutch = ts[pick], vs[pick], gs[pick], cl[pick]
    rpm = v * np.array([0.0, k[1], k[2], k[3]])[gear]
    return t, v, rpm, gear, clutch, {"knots": knots, "torque": torque * c, "k": k, "c0": c0, "c2": c2}


def test_joint_fit_recovers_a_known_engine_from_limiter_shifts_only():
    t, v, rpm, gear, clutch, truth = synthetic_pulls()
    clean = (clutch == 1.0) & (gear >= 1)
    k = truth["k"]
    win = accel_windows(t, v, rpm, gear, clean)
    fit = fit_torque(win, v, rpm, k)
    inside = (fit.knots_rpm >= 2500) & (fit.knots_rpm <= fit.rpm_hi)
    np.testing.assert_allclose(fit.torque_at(fit.knots_rpm[inside]),
                               np.interp(fit.knots_rpm[inside], truth["knots"], truth["torque"]), rtol=0.01)
    assert fit.c0 == pytest.approx(truth["c0"], abs=0.02)
    assert fit.c2 == pytest.approx(truth["c2"], rel=0.1)
    for g in (1, 2):
        exact = upshift_crossing_rpm(truth["knots"], truth["torque"], k[g], k[g + 1], 3000.0, 7900.0)
        assert exact is not None and exact < 7500.0  # well below the limiter shifts in the data
        got, basis = recommend_upshift(fit.knots_rpm, fit.torque, k[g], k[g + 1], 3000.0, fit.rpm_hi, 7900.0)
        assert basis == "crossing" and got == pytest.approx(exact, rel=0.003)


def test_upshift_events_read_forward_gears_through_neutral():
    t = np.arange(12) * 0.1
    gear = np.array([1, 1, 1, 0, 2, 2, 3, 3, 2, 2, 3, 3])
    rpm = np.array([5000, 6000, 7000, 900, 5000, 6500, 5200, 5000, 6000, 6400, 5100, 5000], dtype=float)
    from_gear, before = upshift_events(t, rpm, gear)
    np.testing.assert_array_equal(from_gear, [1, 2, 2])
    np.testing.assert_array_equal(before, [7000, 6500, 6400])


def test_kmh_ratio_is_the_cars_gearing(gt_ac):
    _, frames = gt_ac
    for g in by_gear(analyze([frames])).values():
        assert g["ratio_rpm_per_kmh"] == pytest.approx(
            GT.overall_ratio(g["gear"]) * RPM_PER_RAD_S / GT.wheel_radius_m / 3.6, rel=1e-3
        )


# ---------------------------------------------------------------------------------------- held gears, limiter
SYNTH_LIMITER = 7900.0  # synthetic_pulls shifts here


def pulls_then_braking(over_rev_rpm: float = 8400.0, meta: dict | None = None) -> Frames:
    """synthetic_pulls (full throttle, 1st to 3rd, shifts at 7900 rpm), then a stop from 3rd with
    downshifts that over-rev: each lower gear goes in when it puts the engine at ``over_rev_rpm``,
    off throttle, braking, clutch engaged (the wheels spin the engine above its limiter)."""
    t, v, rpm, gear, clutch, truth = synthetic_pulls()
    k = truth["k"]
    dt, decel = t[1] - t[0], 12.0  # s, m/s²
    bt, bv, bg, bc = [], [], [], []
    tt, vv, g, neutral = t[-1], v[-1], 3, 0
    while vv > 12.0:
        tt, vv = tt + dt, vv - decel * dt
        if neutral:  # three samples in neutral, clutch pressed, per downshift
            neutral -= 1
            bt.append(tt), bv.append(vv), bg.append(0), bc.append(0.0)
            continue
        if g > 1 and k[g - 1] * vv <= over_rev_rpm:
            g, neutral = g - 1, 3
        bt.append(tt), bv.append(vv), bg.append(g), bc.append(1.0)
    bt, bv, bg, bc = map(np.asarray, (bt, bv, bg, bc))
    brpm = np.where(bg >= 1, bv * np.array([900.0, k[1], k[2], k[3]])[bg], 900.0)
    n, m = len(t), len(bt)
    channels = {
        "t_ns": np.rint(np.concatenate([t, bt]) * 1e9).astype(np.int64),
        "speed_kmh": (np.concatenate([v, bv]) * 3.6).astype(np.float32),
        "rpm": np.concatenate([rpm, brpm]).astype(np.float32),
        "gear": np.concatenate([gear, bg]).astype(np.int8),
        "throttle": np.concatenate([np.ones(n), np.zeros(m)]).astype(np.float32),
        "brake": np.concatenate([np.zeros(n), np.ones(m)]).astype(np.float32),
        "clutch": np.concatenate([clutch, bc]).astype(np.float32),
    }
    frames = Frames(channels, meta=dict(meta or {}))
    assert frames["rpm"].max() == pytest.approx(over_rev_rpm, abs=30.0)  # the over-rev is in the data
    assert frames["rpm"][:n].max() <= SYNTH_LIMITER
    return frames


def test_game_max_rpm_is_the_limiter_despite_downshift_over_revs():
    """The issue's car: game maximum 6800, a downshift over-rev to 7448 became max_rpm 7448."""
    result = analyze([pulls_then_braking(meta={"max_rpm": SYNTH_LIMITER})])
    assert result["max_rpm"] == SYNTH_LIMITER


def test_without_a_game_max_rpm_over_revs_are_not_the_limiter():
    """No meta: the limiter is the top of the full-throttle, in-gear data (7900 rpm), not the
    8400 rpm the engine is spun to off throttle on the way down."""
    result = analyze([pulls_then_braking()])
    assert 0.995 * SYNTH_LIMITER <= result["max_rpm"] <= SYNTH_LIMITER


def test_samples_above_the_game_max_rpm_are_not_clean():
    """The game's maximum is the limiter even where the data runs above it: the fit stops below
    LIMITER_FRAC of it (the torque chart's rpm axis is the fit's data range)."""
    game_max = 7000.0
    result = analyze([pulls_then_braking(meta={"max_rpm": game_max})])
    assert result["max_rpm"] == game_max
    assert max(result["curves"]["torque"]["rpm"]) < shift_points.LIMITER_FRAC * game_max
    assert all(g["recommended_rpm"] <= game_max for g in result["gears"])


# The five real Project CARS 1 sequences of the issue (Spa capture, ~50 Hz), with the held gears
# on either side stretched to 0.4 s: (sequence, upshifts from). Blips carry an rpm spike so that
# a blip taken for the old gear would show in the shift rpm too.
PCARS_SHIFTS = [
    ([5, 3, 0, 0, 3, 4], []),  # 5 → 4, blips of 3
    ([3, 1, 0, 0, 0, 4], [3]),  # 3 → 4 at 116 km/h, blip of 1
    ([4, 0, 1, 3], []),  # 4 → 3, blip of 1
    ([4, 2, 0, 0, 3, 5], [4]),  # 4 → 5 at 167 km/h, blips of 2 and 3
    ([5, 0, 0, 0, 5, 6], [5]),  # 5 → 6 at 220 km/h, the old gear again for one sample
]


@pytest.mark.parametrize("seq, ups", PCARS_SHIFTS, ids=["5-4", "3-4", "4-3", "4-5", "5-6"])
def test_one_sample_gear_blips_are_no_upshifts(seq, ups):
    hold = 20  # samples at 50 Hz
    gear = np.array([seq[0]] * hold + seq[1:-1] + [seq[-1]] * hold)
    t = np.arange(len(gear)) / 50.0
    rpm = np.concatenate([np.linspace(5000.0, 6000.0, hold), np.full(len(seq) - 2, 9000.0), np.full(hold, 5000.0)])
    from_gear, before = upshift_events(t, rpm, gear)
    np.testing.assert_array_equal(from_gear, ups)
    np.testing.assert_array_equal(before, [6000.0] * len(ups))


def test_a_gear_value_with_another_gears_rpm_is_not_held():
    """The issue's "upshift from 1st at 124 km/h": a wrong gear value that lasts long enough to
    pass the run-length rule is still not the gearbox if its rpm/speed is another gear's."""
    k = {1: 300.0, 2: 210.0, 3: 155.0, 4: 125.0}  # rpm per m/s
    rate = 50.0
    gear = np.array([3] * 50 + [1] * 8 + [0] * 3 + [4] * 50)  # the "1" lasts 0.16 s
    t = np.arange(len(gear)) / rate
    v = np.linspace(124.0, 128.0, len(gear)) / 3.6
    engine_gear = np.where(np.arange(len(gear)) < 58, 3, 4)  # the gearbox: 3rd, then 4th
    rpm = v * np.array([0.0, *k.values()])[engine_gear]
    held = shift_points.held_mask(t, gear, v, rpm, k)
    assert not held[50:58].any() and held[:50].all() and held[61:].all()
    from_gear, before = upshift_events(t, rpm, gear, held)
    np.testing.assert_array_equal(from_gear, [3])
    assert before[0] == pytest.approx(rpm[49])
    # On run length alone the "1" is held, and 3 → 1 → 4 has no upshift at all.
    assert upshift_events(t, rpm, gear)[0].size == 0
