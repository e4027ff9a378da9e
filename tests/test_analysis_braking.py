"""Braking analysis against the simulator's truth, synthetic pedals and the real AC capture.

The simulated driver brakes at known lap distances (``truth.braking_onsets_m``) at a known
deceleration; the recording is decoded exactly as the game's packets would be.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import monza_frames
from rt.sim.frames import frames_from_sim

from rt.analysis import braking
from rt.analysis.braking import braking_events, cluster_positions, zone_metrics
from rt.analysis.frames import Frames
from rt.analysis.geometry import run_clock, unwrapped_position
from rt.protocols.canonical import empty
from rt.sim.driver import Simulation

LAP_S = 87.25  # the GT coupe's lap of the test ring, s (a little over)
ONSET_TOL_M = 1.5  # the README: onsets within 1.5 m of the simulator's
PEAK_TOL_G = 0.05  # the README: peak deceleration equal to the truth within 0.05 g
# The README, real data: one-frame speed glitches move a zone's peak by under 0.02 g. A step
# down that lasts (every later frame lower) is no one-frame glitch; the README states 0.03 g for it.
GLITCH_TOL_G = 0.02
LASTING_STEP_TOL_G = 0.03


def with_channels(fr: Frames, **channels) -> Frames:
    """A copy of a run with some channels replaced (the rest shared)."""
    return Frames({**fr.channels, **channels}, fr.extras, fr.meta)


def without_accelerometer(fr: Frames) -> Frames:
    """The run as a feed without an accelerometer would record it: g_long unknown."""
    return with_channels(fr, g_long=np.full(len(fr), np.nan, dtype=fr["g_long"].dtype))


def sim_run(
    rate_hz: float, laps: float, game: str = "ac", seed: int = 0, car: str = "gt_coupe", **kw
):
    sim = Simulation(car, "test_ring", rate_hz=rate_hz, seed=seed, **kw)
    frames, state = frames_from_sim(
        sim, int(rate_hz * (LAP_S * laps + 0.5)), game, meta={"run_id": f"s{seed}"}
    )
    return sim, frames, state


def true_zones(state: dict, onsets_m: tuple[float, ...]) -> list[dict]:
    """The sim's own speed at each onset of lap 1 and its peak deceleration in that zone."""
    lap0 = state["lap_count"] == 0
    d, v = state["lap_distance_m"][lap0], state["speed_ms"][lap0] * 3.6
    brk, gl = state["brake"][lap0], state["g_long"][lap0]
    out = []
    for on in onsets_m:
        after = np.flatnonzero(d >= on)
        a = after[0]
        b = a + int(np.argmax(brk[a:] <= 0.0))  # the sim's pedal is exactly 0 when released
        out.append(
            {
                "onset_m": on,
                "entry_kmh": float(np.interp(on, d, v)),
                "peak_decel_g": float(-gl[a:b].min()),
            }
        )
    return out


def check_against_truth(res: dict, sim: Simulation, state: dict, n_laps: int) -> None:
    truth = sim.truth
    zones = res["zones"]
    # One zone per real zone, numbered in driving order.
    assert len(zones) == len(truth.braking_onsets_m)
    assert [z["number"] for z in zones] == list(range(1, len(zones) + 1))
    assert [z["norm_pos"] for z in zones] == sorted(z["norm_pos"] for z in zones)
    for z, t in zip(zones, true_zones(state, truth.braking_onsets_m)):
        assert z["distance_m"] == pytest.approx(t["onset_m"], abs=ONSET_TOL_M)
        assert z["norm_pos"] * truth.track_length_m == pytest.approx(t["onset_m"], abs=ONSET_TOL_M)
        # Matched across laps: every lap once.
        assert len(z["laps"]) == n_laps
        assert len({(lap["run_id"], lap["lap"]) for lap in z["laps"]}) == n_laps
        for lap in z["laps"]:
            assert lap["distance_m"] == pytest.approx(t["onset_m"], abs=ONSET_TOL_M)
        assert z["entry_speed_kmh"] == pytest.approx(t["entry_kmh"], abs=1.0)
        assert z["peak_decel_g"] == pytest.approx(t["peak_decel_g"], abs=PEAK_TOL_G)
        assert z["min_speed_kmh"] < z["entry_speed_kmh"]
        assert z["peak_brake"] > 0.5 and z["duration_s"] > 0.3
        # Braking distance ≈ mean speed × time.
        mean_v = 0.5 * (z["entry_speed_kmh"] + z["min_speed_kmh"]) / 3.6
        assert z["distance_braking_m"] == pytest.approx(mean_v * z["duration_s"], rel=0.1)
        assert z["trail_braking_share"] == 0.0  # the simulated driver brakes in a straight line
        assert z["spread"]["onset_m"] < 2.0
    json.dumps(res, allow_nan=False)


@pytest.mark.parametrize("accelerometer", [True, False], ids=["g_long", "no_g_long"])
@pytest.mark.parametrize("rate_hz", [100.0, 333.0])
def test_braking_zones_match_the_truth(rate_hz, accelerometer):
    sim, frames, state = sim_run(rate_hz, 3.0)
    # Without g_long the peak comes from the speed alone: it must meet the same truth.
    res = braking.analyze([frames if accelerometer else without_accelerometer(frames)])
    check_against_truth(res, sim, state, n_laps=3)
    source = "accelerometer" if accelerometer else "speed"
    assert res["summary"]["peak_decel_source"] == source
    assert {z["decel_source"] for z in res["zones"]} == {source}
    assert {lap["decel_source"] for z in res["zones"] for lap in z["laps"]} == {source}
    summ = res["summary"]
    assert summ["track_length_source"] == "track_map"
    assert summ["track_length_m"] == pytest.approx(sim.truth.track_length_m, rel=1e-4)  # track_map's 0.01 %
    assert summ["laps_complete"] == 3 and summ["best_lap"]["lap"] == 1  # identical laps: the first


def test_braking_with_pcars_track_length_from_the_game():
    sim, frames, state = sim_run(60.0, 2.0, game="pcars1", seed=4)
    res = braking.analyze([frames])
    assert res["summary"]["track_length_source"] == "meta"
    check_against_truth(res, sim, state, n_laps=2)


def test_braking_matches_varying_laps_and_measures_delta_to_best():
    # Each lap at a different grip level: braking points move by metres, still one zone each.
    sim, frames, _ = sim_run(150.0, 5.2, seed=5, lap_variation=0.05)
    res = braking.analyze([frames])
    zones = res["zones"]
    assert len(zones) == len(sim.truth.braking_onsets_m)
    best = res["summary"]["best_lap"]
    times = sim.truth.lap_times_s
    assert best["lap"] == 1 + int(np.argmin(times))
    for z, on in zip(zones, sim.truth.braking_onsets_m):
        numbers = [lap["lap"] for lap in z["laps"]]
        assert numbers[:5] == [1, 2, 3, 4, 5] and numbers[5:] in (
            [],
            [6],
        )  # + the sixth's start
        first = next(lap for lap in z["laps"] if lap["lap"] == 1)
        assert first["distance_m"] == pytest.approx(on, abs=ONSET_TOL_M)  # the truth is lap 1's
        ref = next(lap for lap in z["laps"] if lap["lap"] == best["lap"])
        assert ref["delta_to_best_m"] == 0.0
        for lap, delta in zip(z["laps"], z["delta_to_best_m"]):
            assert lap["delta_to_best_m"] == delta
            assert delta == pytest.approx(lap["distance_m"] - ref["distance_m"], abs=0.05)
        onsets = [lap["distance_m"] for lap in z["laps"]]
        assert z["spread"]["onset_m"] == pytest.approx(np.std(onsets), abs=0.05)


def test_braking_over_several_runs():
    runs = [sim_run(100.0, 1.0, seed=s)[1] for s in (6, 7)]
    res = braking.analyze(runs)
    assert len(res["zones"]) == 7
    for z in res["zones"]:
        assert sorted(lap["run_id"] for lap in z["laps"]) == ["s6", "s7"]


# ---------------------------------------------------------------------------------------- synthetic core
def test_braking_events_merge_chatter_and_drop_cut_events():
    t = np.arange(0, 20, 0.01)
    b = np.zeros_like(t)
    b[:50] = 0.8  # braking when the recording starts: onset unseen
    b[200:400] = 1.0
    b[410:420] = 0.0  # a 0.1 s release: chatter, one event
    b[500:505] = 1.0  # a 0.05 s brush: ignored
    b[800:900] = np.nan  # unknown pedal: not braking
    b[1000:1100] = 0.6
    b[1950:] = 0.7  # still braking at the end: release unseen
    b[410:420] = 0.0
    b[420:450] = 1.0
    on, off = braking_events(t, b)
    assert on.tolist() == [200, 1000] and off.tolist() == [450, 1100]


def test_zone_metrics_sub_sample_onset_and_decel():
    dt = 0.02
    t = np.arange(0, 6, dt)
    t_on = 1.0  # the pedal ramps 0 → 1 over 0.1 s from here: crosses 0.05 between two frames
    b = np.clip((t - t_on) / 0.1, 0, 1) * (t < 4.0)
    v = np.where(t < t_on, 250.0, 250.0 - 1.5 * 9.80665 * 3.6 * (t - t_on))  # 1.5 g
    p = 0.2 + t / 100.0  # laps
    steer = np.where(t > 3.0, 0.3, 0.0)  # turning in for the last of the 3 s of braking
    on, off = braking_events(t, b)
    m = zone_metrics(t, b, v, p, steer, on, off)
    t_cross = t_on + 0.05 * 0.1  # where the pedal passes 0.05
    assert m["t_on"][0] == pytest.approx(t_cross, abs=1e-9)
    assert m["p_on"][0] == pytest.approx(0.2 + t_cross / 100.0, abs=1e-9)
    assert m["entry_speed_kmh"][0] == pytest.approx(250.0 - 1.5 * 9.80665 * 3.6 * 0.005, abs=0.5)
    assert m["peak_decel_g"][0] == pytest.approx(1.5, abs=0.01)
    assert m["duration_s"][0] == pytest.approx(4.0 - t_cross, abs=dt)
    assert m["trail_braking_share"][0] == pytest.approx(1.0 / (4.0 - t_cross), abs=0.02)
    assert m["min_speed_kmh"][0] == pytest.approx(v[t < 4.0].min())
    assert m["peak_brake"][0] == 1.0


def test_zone_metrics_never_takes_the_slope_of_a_few_bunched_frames():
    # A game that sends whole km/h and loses packets while the car brakes at 1.5 g. Two frames
    # 5 ms apart alone in a gap differ by 1 km/h: as a slope that is 200 km/h/s, 5.7 g. Six frames
    # within 10 ms after a stall (a burst) likewise. A fit needs frames spread over its window.
    rate = 1.5 * 9.80665 * 3.6  # km/h per s

    def v_true(t):
        return 250.0 - rate * np.clip(t - 1.0, 0.0, None)

    def just_above_whole_kmh(t_near, above):
        return 1.0 + (250.0 - (np.floor(v_true(t_near)) + above)) / rate

    t = np.arange(0, 6, 1 / 60)
    lost = ((t > 2.0) & (t < 2.6)) | ((t > 3.2) & (t < 3.8))
    pair = just_above_whole_kmh(2.3, 0.1) + np.array([0.0, 0.005])
    burst = just_above_whole_kmh(3.5, 0.2) + np.arange(6) * 0.002
    t = np.sort(np.concatenate((t[~lost], pair, burst)))
    v = np.floor(v_true(t))
    assert np.ptp(v[np.isin(t, pair)]) == 1.0 and np.ptp(v[np.isin(t, burst)]) == 1.0
    b = ((t > 1.0) & (t < 5.0)).astype(float)
    on, off = braking_events(t, b)
    m = zone_metrics(t, b, v, t / 100.0, None, on, off)
    # Whole km/h alone, read over the 0.3 s window, can be off by 1 km/h / 0.3 s ≈ 0.09 g.
    assert m["peak_decel_g"][0] == pytest.approx(1.5, abs=0.1)
    assert m["decel_source"][0] == "speed"


def test_cluster_positions_round_the_line():
    p = np.array([0.998, 0.3, 0.001, 0.302, 0.6, 1.0005, 0.9999])
    lab = cluster_positions(p, tol=0.005)
    assert lab[0] == lab[2] == lab[5] == lab[6]
    assert lab[1] == lab[3] != lab[4] != lab[0]


def test_braking_empty_and_no_brake():
    with pytest.raises(ValueError):
        braking.analyze([])
    rows = empty(100)
    rows["t_ns"] = np.arange(100) * 10_000_000
    rows["norm_pos"] = np.linspace(0, 0.1, 100)
    with pytest.raises(ValueError, match="brake"):
        braking.analyze([Frames.from_rows(rows)])  # the pedal is unknown
    rows["brake"] = 0.0
    rows["norm_pos"] = np.nan
    with pytest.raises(ValueError, match="laps"):
        braking.analyze([Frames.from_rows(rows)])  # no position along the lap


def test_a_lap_without_braking_gives_no_zones():
    rows = empty(500)
    rows["t_ns"] = np.arange(500) * 20_000_000
    rows["norm_pos"] = np.linspace(0.1, 0.6, 500)
    rows["brake"] = 0.0
    rows["speed_kmh"] = 150.0
    res = braking.analyze([Frames.from_rows(rows)])
    assert res["zones"] == [] and res["summary"]["zones"] == 0


# ---------------------------------------------------------------------------------------- real capture
def test_braking_on_monza():
    # The end of a lap from the pit box (norm_pos 0.043) to the line, and the start of the next.
    res = braking.analyze([monza_frames()])
    summ = res["summary"]
    assert summ["clock"] == "game"  # the receive times come in bursts; the game's timer does not
    assert summ["track_length_m"] == pytest.approx(5793.0, rel=0.05)
    zones = res["zones"]

    def zone_in(lo, hi):
        found = [z for z in zones if lo <= z["norm_pos"] <= hi]
        assert len(found) == 1, (lo, hi, [z["norm_pos"] for z in zones])
        return found[0]

    # What the capture shows: Rettifilo at 0.148 (reached from the pit exit, so "only" 201 km/h),
    # Roggia at 0.357 after a dab at 0.345 from 243 km/h, Lesmo 1 and 2, Ascari at 0.660 from
    # 240 km/h and again at 0.681, Parabolica at 0.855 from 251 km/h.
    rettifilo = zone_in(0.14, 0.16)
    roggia_dab = zone_in(0.34, 0.35)
    roggia = zone_in(0.35, 0.365)
    ascari = zone_in(0.65, 0.67)
    parabolica = zone_in(0.84, 0.87)
    assert rettifilo["entry_speed_kmh"] > 195 and rettifilo["min_speed_kmh"] < 80
    assert roggia_dab["entry_speed_kmh"] > 240 and roggia_dab["duration_s"] < 1.0
    assert roggia["min_speed_kmh"] < 70
    assert ascari["entry_speed_kmh"] > 235
    assert parabolica["entry_speed_kmh"] > 248 and parabolica["min_speed_kmh"] < 150
    assert [z["number"] for z in zones] == list(range(1, len(zones) + 1))
    assert len(zones) == 8  # + Lesmo 1 (0.422), Lesmo 2 (0.483), Ascari's second part (0.681)
    # Hard braking: about 1.9 g from the speed on the game's clock, as the game's own g_long says.
    fr = monza_frames()
    t = fr.t_s
    for z in (rettifilo, roggia, ascari, parabolica):
        assert 1.7 < z["peak_decel_g"] < 2.2
        assert z["peak_brake"] == 1.0
    g_long_peak = -np.min(fr["g_long"][(fr["brake"] > 0.5) & (t > 20) & (t < 26)])
    assert rettifilo["peak_decel_g"] == pytest.approx(g_long_peak, abs=0.1)
    json.dumps(res, allow_nan=False)


# ---------------------------------------------------------------------------------------- glitches
def glitched(fr: Frames, kind: str, drop_kmh: float = 15.0) -> np.ndarray:
    """The run's speed with one glitch in every braking event of at least 0.5 s, a third of
    the way in (braking hard): ``spike`` one frame ``drop_kmh`` lower, ``two`` two frames lower,
    ``stale`` one frame repeating the speed of 20 frames before, ``lasting`` a step down that
    stays (every later frame lower)."""
    t, _ = run_clock(fr)
    on, off = braking_events(t, fr["brake"])
    v = fr["speed_kmh"].astype(np.float64)
    hit = 0
    for a, b in zip(on.tolist(), off.tolist()):
        if t[b - 1] - t[a] < 0.5 or v[a] < braking.MIN_ENTRY_KMH:
            continue
        j = a + (b - a) // 3
        if kind == "spike":
            v[j] -= drop_kmh
        elif kind == "two":
            v[j : j + 2] -= drop_kmh
        elif kind == "stale":
            v[j] = v[j - 20]
        elif kind == "lasting":
            v[j:] -= drop_kmh
        hit += 1
    assert hit >= 4
    return v


def peaks(res: dict) -> list[float]:
    return [z["peak_decel_g"] for z in res["zones"]]


def test_monza_peak_deceleration_agrees_with_the_accelerometer():
    # The real capture: the car's own accelerometer (accG_frontal) is the reference. Its frames
    # scatter by σ ≈ 0.15 g while braking (measured below), so a 0.3 s average of its ≈ 19 frames
    # is known to σ/√19 ≈ 0.035 g, and two weightings of the same frames (the plain average here,
    # the analysis's fit weights) may differ by about that: 0.05 g.
    fr = monza_frames()
    res = braking.analyze([fr])
    t, clock = run_clock(fr)
    assert clock == "game"
    g = fr["g_long"].astype(np.float64)
    lo = np.searchsorted(t, t - braking.DECEL_HALF_WINDOW_S, side="left")
    hi = np.searchsorted(t, t + braking.DECEL_HALF_WINDOW_S, side="right")
    csum = np.concatenate(([0.0], np.cumsum(g)))
    g_avg = (csum[hi] - csum[lo]) / (hi - lo)  # −decel averaged over ±0.15 s
    braking_hard = fr["brake"] > 0.5
    scatter = float(np.std((g - g_avg)[braking_hard]))
    print(f"g_long scatter while braking: {scatter:.3f} g")
    assert 0.05 < scatter < 0.2  # the tolerance above rests on it

    on, off = braking_events(t, fr["brake"])
    p_on = np.mod(zone_metrics(t, fr["brake"], fr["speed_kmh"], unwrapped_position(fr["norm_pos"]),
                               None, on, off)["p_on"], 1.0)
    speed_only = braking.analyze([without_accelerometer(fr)])
    assert [z["norm_pos"] for z in speed_only["zones"]] == [z["norm_pos"] for z in res["zones"]]
    assert len(res["zones"]) == 8
    ref, raw = [], []
    for z, zs in zip(res["zones"], speed_only["zones"]):
        (i,) = np.flatnonzero(np.abs(p_on - z["norm_pos"]) < 1e-5)
        ref.append(-float(g_avg[on[i] : off[i]].min()))
        raw.append(-float(g[on[i] : off[i]].min()))
        print(f"zone {z['number']} at {z['norm_pos']:.3f}: reported {z['peak_decel_g']:.3f} "
              f"({z.get('decel_source')}), speed only {zs['peak_decel_g']:.3f}, "
              f"accelerometer 0.3 s average {ref[-1]:.3f}, single frame {raw[-1]:.3f}")
    assert peaks(res) == pytest.approx(ref, abs=PEAK_TOL_G)
    assert all(p <= r for p, r in zip(peaks(res), raw))  # an average never exceeds its largest frame
    # Without the accelerometer, the speed alone says the same where the car brakes in a straight
    # line or nearly. At Ascari's exit (0.681), braked while turning all the way (trail share
    # 1.0), the car slides and its speed falls ≈ 0.15 g faster than the accelerometer, which
    # measures along the car: why the accelerometer is preferred where the game has one.
    ascari_exit = [abs(z["norm_pos"] - 0.681) < 0.003 for z in res["zones"]]
    assert sum(ascari_exit) == 1
    for z, zs, r, turning in zip(res["zones"], speed_only["zones"], ref, ascari_exit):
        if turning:
            assert z["trail_braking_share"] == 1.0
            assert r + 0.05 < zs["peak_decel_g"] < r + 0.25
        else:
            assert zs["peak_decel_g"] == pytest.approx(r, abs=PEAK_TOL_G)
    assert {z["decel_source"] for z in res["zones"]} == {"accelerometer"}
    assert {z["decel_source"] for z in speed_only["zones"]} == {"speed"}


@pytest.mark.parametrize("accelerometer", [True, False], ids=["g_long", "no_g_long"])
@pytest.mark.parametrize("kind", ["spike", "two", "stale", "lasting"])
def test_monza_one_frame_speed_glitches_do_not_make_the_peak(kind, accelerometer):
    fr = monza_frames()
    if not accelerometer:
        fr = without_accelerometer(fr)
    clean = peaks(braking.analyze([fr]))
    bad = peaks(braking.analyze([with_channels(fr, speed_kmh=glitched(fr, kind))]))
    print(kind, "clean", clean, "\nglitched", bad)
    assert len(bad) == len(clean) == 8
    # The glitch-free run's peaks within 0.02 g (the README's figure, under a seventh of the
    # accelerometer's frame scatter of ≈ 0.15 g); a lasting step within 0.03 g, stated apart.
    # (Before, a fit over the glitch read 2.0–2.7 g for these 1.9 g, and 4 g for a lasting step.)
    tol = LASTING_STEP_TOL_G if kind == "lasting" else GLITCH_TOL_G
    assert max(abs(b - c) for b, c in zip(bad, clean)) < tol


@pytest.mark.parametrize("accelerometer", [True, False], ids=["g_long", "no_g_long"])
def test_road_car_speed_spikes_at_20_hz_are_no_deceleration(accelerometer):
    # The user's case: a road car braking at ≈ 1.1 g (its accelerometer says so) read 2.4 g. A
    # 20 Hz feed with one packet per zone whose speed is 15 km/h low did it: a fit over the
    # 7 frames of a ±0.15 s window takes the glitch for 1.2 g more.
    sim, fr, state = sim_run(20.0, 1.0, car="club_hatch")
    if not accelerometer:
        fr = without_accelerometer(fr)
    truth = max(-state["g_long"][state["brake"] > 0])
    clean = peaks(braking.analyze([fr]))
    bad = peaks(braking.analyze([with_channels(fr, speed_kmh=glitched(fr, "spike"))]))
    print(f"truth {truth:.3f} clean {clean} glitched {bad}")
    assert truth == pytest.approx(1.13, abs=0.03)
    assert max(bad) <= truth + PEAK_TOL_G
    assert max(abs(b - c) for b, c in zip(bad, clean)) < GLITCH_TOL_G  # a one-frame glitch
