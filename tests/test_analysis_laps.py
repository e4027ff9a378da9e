"""Lap times and sectors (rt/analysis/laps.py) against the simulator's truth and a real AC capture.

The expected values never come from the code under test: lap and sector times from
``Simulation.truth`` (exact, not sampled), thirds-of-the-lap crossings bracketed directly from the
simulator's own state arrays, and the real capture's lap time from its README.
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from conftest import is_plain, merged_with_a_second_feed, monza_frames
from rt.sim.frames import frames_from_sim

from rt.analysis.frames import Frames
from rt.analysis.laps import analyze_lap_times, analyze_sectors, find_laps
from rt.protocols.canonical import empty
from rt.sim.driver import Simulation

AC_HZ = 333.0
PC_HZ = 60.0
RUN_S = 370.0  # four whole laps of ≈ 88 s and part of a fifth


def make_sim(rate_hz: float, variation: float = 0.02, seed: int = 3) -> Simulation:
    return Simulation(car="gt_coupe", track="test_ring", rate_hz=rate_hz, seed=seed, lap_variation=variation,
                      mode="race")


def truth_ms(sim: Simulation) -> list[int]:
    return [round(t * 1000.0) for t in sim.truth.lap_times_s]


def without(fr: Frames, *names: str) -> Frames:
    """The same frames with the given channels unknown (-1 ints, NaN floats)."""
    ch = dict(fr.channels)
    for name in names:
        ch[name] = np.full_like(ch[name], np.nan if ch[name].dtype.kind == "f" else -1)
    return Frames(ch, dict(fr.extras), dict(fr.meta))


def retimed(fr: Frames, rate_hz: float) -> Frames:
    """Frames with evenly spaced receive times again (after splicing)."""
    ch = dict(fr.channels)
    t0 = int(ch["t_ns"][0])
    ch["t_ns"] = t0 + np.rint(np.arange(len(fr)) * (1e9 / rate_hz)).astype(np.int64)
    return Frames(ch, dict(fr.extras), dict(fr.meta))


@pytest.fixture(scope="module")
def ac_run():
    sim = make_sim(AC_HZ)
    fr, state = frames_from_sim(sim, int(AC_HZ * RUN_S), "ac", meta={"run_id": "ac-1"})
    return fr, state, sim


@pytest.fixture(scope="module")
def pcars1_runs():
    out = {}
    for variation in (0.0, 0.02):
        sim = make_sim(PC_HZ, variation)
        fr, state = frames_from_sim(sim, int(PC_HZ * RUN_S), "pcars1", meta={"run_id": f"pc1-{variation}"})
        out[variation] = (fr, state, sim)
    return out


# ---------------------------------------------------------------------------------------- game laps
def test_ac_game_laps_equal_truth(ac_run):
    fr, _, sim = ac_run
    expected = truth_ms(sim)
    assert len(expected) == 4 and len(set(expected)) == 4  # lap_variation makes every lap differ
    res = analyze_lap_times([fr])
    assert is_plain(res)  # plain JSON types only
    laps = res["laps"]
    assert [lap["lap"] for lap in laps] == [1, 2, 3, 4, 5]
    for lap, t in zip(laps[:4], expected):
        assert lap["complete"] and lap["valid"] and lap["source"] == "game"
        assert lap["run_id"] == "ac-1"
        assert abs(lap["time_ms"] - t) <= 1
    # The simulator starts on the line with a flying lap: lap 1 is a whole, valid lap.
    assert laps[0]["complete"] and laps[0]["valid"]
    # The last lap was not finished in the run: no time, not complete, not valid.
    assert laps[4]["time_ms"] is None and not laps[4]["complete"] and not laps[4]["valid"]
    assert abs(res["best_lap_ms"] - min(expected)) <= 1
    assert abs(res["mean_lap_ms"] - statistics.mean(expected)) <= 1
    assert abs(res["stddev_ms"] - statistics.stdev(expected)) <= 1
    assert res["summary"]["laps"] == 5 and res["summary"]["valid_laps"] == 4
    assert res["summary"]["best_lap_ms"] == res["best_lap_ms"]


def test_lap_dataclass_frames_and_crossings(ac_run):
    fr, state, sim = ac_run
    laps = find_laps(fr)
    starts = sim.truth.lap_start_times_s
    for k, lap in enumerate(laps[:4]):
        # Frame slices follow the simulator's lap counter …
        assert np.all(state["lap_count"][lap.start:lap.end] == k)
        # … and the line crossings are placed to the ms.
        assert abs(lap.start_s - starts[k]) < 0.0015
        assert abs(lap.end_s - starts[k + 1]) < 0.0015
    assert laps[-1].end == len(fr)


def test_run_starting_mid_lap_is_an_invalid_out_lap():
    sim = make_sim(AC_HZ)
    sim.step_block(int(AC_HZ * 20))  # the run starts 20 s into lap 1
    fr, _ = frames_from_sim(sim, int(AC_HZ * 160), "ac", meta={"run_id": "late"})
    expected = truth_ms(sim)
    laps = analyze_lap_times([fr])["laps"]
    first = laps[0]
    assert first["lap"] == 1 and not first["complete"] and not first["valid"]
    assert first["invalid_reason"] == "out_lap"
    # The game still tells the time of the lap it finished.
    assert abs(first["time_ms"] - expected[0]) <= 1
    assert laps[1]["complete"] and laps[1]["valid"] and abs(laps[1]["time_ms"] - expected[1]) <= 1

    # Without the game's lap fields the first lap's start is unknown: no time at all.
    derived = analyze_lap_times([without(fr, "lap_count", "last_lap_ms", "lap_time_ms")])["laps"]
    assert not derived[0]["complete"] and not derived[0]["valid"] and derived[0]["time_ms"] is None
    assert derived[1]["complete"] and abs(derived[1]["time_ms"] - expected[1]) <= 1000.0 / AC_HZ


def test_laps_never_span_runs():
    sim = make_sim(AC_HZ)
    a, _ = frames_from_sim(sim, int(AC_HZ * 130), "ac", meta={"run_id": "a"})
    sim.step_block(int(AC_HZ * 5))  # the recording was off for 5 s
    b, _ = frames_from_sim(sim, int(AC_HZ * 150), "ac", meta={"run_id": "b"})
    expected = truth_ms(sim)
    laps = analyze_lap_times([a, b])["laps"]
    by_run = {rid: [lap for lap in laps if lap["run_id"] == rid] for rid in ("a", "b")}
    # Run a: lap 1 whole, lap 2 cut by the end of the run.
    assert [(x["lap"], x["complete"]) for x in by_run["a"]] == [(1, True), (2, False)]
    assert by_run["a"][1]["time_ms"] is None
    # Run b starts inside lap 2: an out-lap (its time still comes from the game), then lap 3 whole.
    assert [(x["lap"], x["complete"]) for x in by_run["b"]][:2] == [(2, False), (3, True)]
    assert abs(by_run["b"][0]["time_ms"] - expected[1]) <= 1
    assert abs(by_run["b"][1]["time_ms"] - expected[2]) <= 1
    assert [x["valid"] for x in laps].count(True) == 2


def test_rewind_makes_the_lap_invalid(ac_run):
    fr, _, sim = ac_run
    starts = sim.truth.lap_start_times_s
    cut = int((starts[1] + 40.0) * AC_HZ)  # 40 s into lap 2 …
    back = cut - int(8.0 * AC_HZ)  # … the game rewinds 8 s and the driver goes on from there
    idx = np.concatenate((np.arange(0, cut), np.arange(back, len(fr))))
    spliced = retimed(fr.take(idx), AC_HZ)
    laps = analyze_lap_times([spliced])["laps"]
    assert not laps[1]["valid"] and laps[1]["invalid_reason"] == "rewind"
    assert laps[0]["valid"] and laps[2]["valid"] and laps[3]["valid"]

    # Also seen from norm_pos alone (no lap timer), on derived laps.
    laps = analyze_lap_times([without(spliced, "lap_count", "last_lap_ms", "lap_time_ms")])["laps"]
    assert not laps[1]["valid"] and laps[1]["invalid_reason"] == "rewind"
    assert laps[0]["valid"] and laps[2]["valid"]


def test_small_jitter_backwards_is_not_a_rewind(ac_run):
    fr, _, _ = ac_run
    ch = dict(fr.channels)
    norm = ch["norm_pos"].copy()
    norm[5000:5010] -= np.float32(0.002)  # 8 m of position noise, not a rewind
    ch["norm_pos"] = norm
    laps = analyze_lap_times([Frames(ch, {}, dict(fr.meta))])["laps"]
    assert all(lap["valid"] for lap in laps[:4])


def test_frames_arriving_late_in_a_burst_are_no_hole(ac_run):
    # A stalled network or a busy PC: 1.5 s with nothing received, then all of it at once. Every
    # frame is there and the game's timer ran on, so the lap was seen whole.
    fr, _, sim = ac_run
    a = int((sim.truth.lap_start_times_s[1] + 40) * AC_HZ)
    k = int(1.5 * AC_HZ)
    ch = dict(fr.channels)
    t = ch["t_ns"].copy()
    t[a : a + k] = t[a + k]
    ch["t_ns"] = t
    laps = analyze_lap_times([Frames(ch, {}, dict(fr.meta))])["laps"]
    assert all(lap["valid"] for lap in laps[:4]), laps[:4]
    # So it is with a coarse timer (PCARS 2's comes in its timings packet, every third frame),
    # whichever frame the stall falls on.
    coarse = ch["lap_time_ms"][np.arange(len(fr)) // 3 * 3]
    for shift in range(3):
        t = fr.channels["t_ns"].copy()
        t[a + shift : a + shift + k] = t[a + shift + k]
        laps = analyze_lap_times([Frames({**ch, "t_ns": t, "lap_time_ms": coarse}, {}, dict(fr.meta))])["laps"]
        assert all(lap["valid"] for lap in laps[:4]), (shift, laps[:4])
    # And right at the line: the stall falls on the step where the lap counter goes up.
    line = int(np.flatnonzero(np.diff(ch["lap_count"]) == 1)[1]) + 1
    t = fr.channels["t_ns"].copy()
    t[line : line + k] = t[line + k]
    laps = analyze_lap_times([Frames({**ch, "t_ns": t}, {}, dict(fr.meta))])["laps"]
    assert all(lap["valid"] for lap in laps[:4]), laps[:4]
    # The same 1.5 s never received is a hole.
    laps = analyze_lap_times([fr.take(np.r_[0:a, a + k : len(fr)])])["laps"]
    assert not laps[1]["valid"] and laps[1]["invalid_reason"] == "gap"


def test_lost_frames_inside_a_lap_or_a_lap_counter_jump(ac_run):
    fr, _, sim = ac_run
    starts = sim.truth.lap_start_times_s
    expected = truth_ms(sim)
    # Frames missing from 40 s into lap 2 to 40 s into lap 3 (a +1 step of the counter across
    # the hole): neither lap was seen whole, but the game still timed lap 2.
    a, b = int((starts[1] + 40) * AC_HZ), int((starts[2] + 40) * AC_HZ)
    laps = analyze_lap_times([fr.take(np.r_[0:a, b:len(fr)])])["laps"]
    assert [lap["lap"] for lap in laps] == [1, 2, 3, 4, 5]
    assert laps[0]["valid"] and laps[3]["valid"]
    assert not laps[1]["complete"] and not laps[1]["valid"] and laps[1]["invalid_reason"] == "gap"
    assert abs(laps[1]["time_ms"] - expected[1]) <= 1
    assert not laps[2]["complete"] and not laps[2]["valid"]
    # From lap 2 straight into lap 4: the counter jumps by 2, so lap 2 is not finished.
    a, b = int((starts[1] + 40) * AC_HZ), int((starts[3] + 40) * AC_HZ)
    laps = analyze_lap_times([fr.take(np.r_[0:a, b:len(fr)])])["laps"]
    assert [lap["lap"] for lap in laps] == [1, 2, 4, 5]
    assert laps[1]["time_ms"] is None and not laps[1]["complete"]
    assert not laps[2]["complete"] and not laps[2]["valid"]
    assert abs(laps[2]["time_ms"] - expected[3]) <= 1  # the game timed lap 4


@pytest.mark.parametrize("lap_timer", [True, False])
def test_last_lap_time_shown_late_is_still_found(ac_run, lap_timer):
    fr, _, sim = ac_run
    ch = dict(fr.channels)
    late = ch["last_lap_ms"].copy()
    late[3:] = late[:-3]  # the game shows the new last-lap time 3 frames after its lap counter
    ch["last_lap_ms"] = late
    if not lap_timer:  # nothing to check the shown value against: the changed one is the new one
        ch["lap_time_ms"] = np.full(len(fr), -1, np.int32)
    laps = analyze_lap_times([Frames(ch, {}, dict(fr.meta))])["laps"]
    for lap, t in zip(laps[:4], truth_ms(sim)):
        assert abs(lap["time_ms"] - t) <= 1


def test_rewind_seen_by_the_lap_timer_alone(ac_run):
    fr, _, sim = ac_run
    starts = sim.truth.lap_start_times_s
    cut = int((starts[2] + 30.0) * AC_HZ)
    back = cut - int(5.0 * AC_HZ)
    idx = np.concatenate((np.arange(0, cut), np.arange(back, len(fr))))
    spliced = retimed(without(fr.take(idx), "norm_pos", "pos_x", "pos_z"), AC_HZ)
    laps = analyze_lap_times([spliced])["laps"]
    assert [lap["valid"] for lap in laps[:4]] == [True, True, False, True]
    assert laps[2]["invalid_reason"] == "rewind"


@pytest.mark.parametrize("game", ["ac_no_lap_fields", "pcars2"])
def test_backing_over_the_line_counts_one_lap(game):
    rate = AC_HZ if game.startswith("ac") else PC_HZ
    sim = make_sim(rate)
    fr, _ = frames_from_sim(sim, int(rate * 200), "ac" if game.startswith("ac") else game)
    if game.startswith("ac"):
        fr = without(fr, "lap_count", "last_lap_ms", "lap_time_ms")
    line = sim.truth.lap_start_times_s[1]
    # 1 s past the line the game rewinds to 1 s before it, and the car crosses it again.
    cut, back = int((line + 1.0) * rate), int((line - 1.0) * rate)
    spliced = retimed(fr.take(np.r_[0:cut, back:len(fr)]), rate)
    laps = analyze_lap_times([spliced])["laps"]
    assert len(laps) == 3  # lap 1, lap 2 (with the rewind), the unfinished lap 3
    assert laps[0]["valid"] and abs(laps[0]["time_ms"] - sim.truth.lap_times_s[0] * 1000) <= 2
    assert laps[1]["time_ms"] > 80_000
    assert not laps[1]["valid"] and laps[1]["invalid_reason"] == "rewind"


def test_game_invalid_flag_hook(ac_run):
    fr, state, _ = ac_run
    flag = (state["lap_count"] == 2).astype(np.int8)  # the game says lap 3 was invalid
    marked = Frames(dict(fr.channels), {"lap_invalid": flag}, dict(fr.meta))
    laps = analyze_lap_times([marked])["laps"]
    assert [lap["valid"] for lap in laps[:4]] == [True, True, False, True]
    assert laps[2]["invalid_reason"] == "game"


# ---------------------------------------------------------------------------------------- derived laps
def test_pcars2_laps_from_positions_within_one_sample_period():
    sim = make_sim(PC_HZ)
    fr, _ = frames_from_sim(sim, int(PC_HZ * RUN_S), "pcars2", meta={"run_id": "pc2"})
    assert (fr["lap_count"] == -1).all() and np.isnan(fr["norm_pos"]).all()  # PC2 has no lap data
    exact = [t * 1000.0 for t in sim.truth.lap_times_s]
    res = analyze_lap_times([fr])
    laps = res["laps"]
    assert len(laps) == 5 and all(lap["source"] == "derived" for lap in laps)
    for lap, t in zip(laps[:4], exact):
        assert lap["complete"] and lap["valid"]
        assert abs(lap["time_ms"] - t) <= 1000.0 / PC_HZ
        # Interpolated between the samples around the line, not the nearest sample: much closer.
        assert abs(lap["time_ms"] - t) <= 2.0
    assert laps[4]["time_ms"] is None and not laps[4]["complete"]
    assert abs(res["best_lap_ms"] - min(exact)) <= 1000.0 / PC_HZ


def test_laps_from_norm_pos_when_the_feed_has_no_lap_fields(ac_run):
    fr, _, sim = ac_run
    exact = [t * 1000.0 for t in sim.truth.lap_times_s]
    laps = analyze_lap_times([without(fr, "lap_count", "last_lap_ms")])["laps"]
    assert len(laps) == 5
    for lap, t in zip(laps[:4], exact):
        assert lap["source"] == "derived" and lap["complete"] and lap["valid"]
        assert abs(lap["time_ms"] - t) <= 1000.0 / AC_HZ
        assert abs(lap["time_ms"] - t) <= 1.0  # interpolated, not the nearest sample


def test_slow_crossings_are_not_laps(ac_run):
    fr, _, _ = ac_run
    ch = dict(without(fr, "lap_count", "last_lap_ms").channels)
    ch["speed_kmh"] = np.full(len(fr), 10.0, np.float32)  # crawling: under MIN_SPEED_KMH
    laps = find_laps(Frames(ch, {}, {"run_id": "slow"}))
    assert len(laps) == 1 and laps[0].time_ms is None


# ---------------------------------------------------------------------------------------- sectors
@pytest.mark.parametrize("variation", [0.0, 0.02])
def test_pcars1_game_splits_equal_truth(pcars1_runs, variation):
    fr, _, sim = pcars1_runs[variation]
    truth = sim.truth.sector_times_s
    assert len(truth) == 4
    res = analyze_sectors([fr])
    assert is_plain(res)
    assert res["sector_count"] == 3
    assert [lap["lap"] for lap in res["laps"]] == [1, 2, 3, 4]
    for lap, secs in zip(res["laps"], truth):
        assert lap["source"] == "game" and lap["consistent"] and lap["valid"]
        for got, want in zip(lap["sectors_ms"], secs):
            assert abs(got - want * 1000.0) <= 1.5
    best = [min(s[j] for s in truth) * 1000.0 for j in range(3)]
    for got, want in zip(res["best_sectors_ms"], best):
        assert abs(got - want) <= 1.5
    assert abs(res["theoretical_best_ms"] - sum(best)) <= 3
    assert abs(res["best_lap_ms"] - min(truth_ms(sim))) <= 1


def test_splits_that_do_not_add_up_are_flagged(pcars1_runs):
    fr, _, sim = pcars1_runs[0.02]
    truth = sim.truth.sector_times_s
    bad = int(np.argmin([s[0] for s in truth[:3]]))  # the lap with the best first sector
    bad_ms = truth_ms(sim)[bad]
    ch = dict(fr.channels)
    last = ch["last_lap_ms"].copy()
    last[last == bad_ms] += 10  # the game's lap time disagrees with its own splits by 10 ms
    ch["last_lap_ms"] = last
    res = analyze_sectors([Frames(ch, dict(fr.extras), dict(fr.meta))])
    assert [lap["consistent"] for lap in res["laps"]] == [k != bad for k in range(4)]
    # An inconsistent lap does not set a best sector.
    best = [min(s[j] for k, s in enumerate(truth) if k != bad) * 1000.0 for j in range(3)]
    assert best[0] > truth[bad][0] * 1000.0 + 1.5
    for got, want in zip(res["best_sectors_ms"], best):
        assert abs(got - want) <= 1.5


def _bracket(t: np.ndarray, norm: np.ndarray, level: float) -> tuple[float, float]:
    """The two sample times around the first crossing of ``level`` (the truth lies between)."""
    i = int(np.argmax(norm >= level))
    assert i > 0
    return float(t[i - 1]), float(t[i])


def _crossing(t: np.ndarray, norm: np.ndarray, level: float) -> float:
    lo, hi = _bracket(t, norm, level)
    i = int(np.argmax(norm >= level))
    return lo + (level - norm[i - 1]) / (norm[i] - norm[i - 1]) * (hi - lo)


def test_ac_sectors_at_thirds_of_norm_pos(ac_run):
    fr, state, sim = ac_run
    t = (state["t_ns"] - state["t_ns"][0]) / 1e9
    starts = sim.truth.lap_start_times_s
    res = analyze_sectors([fr])
    assert len(res["laps"]) == 4
    period_ms = 1000.0 / AC_HZ
    slack = 1.0  # ms: rounding to whole ms
    for k, lap in enumerate(res["laps"]):
        assert lap["source"] == "derived" and lap["consistent"]
        s1, s2, s3 = lap["sectors_ms"]
        assert abs(s1 + s2 + s3 - lap["time_ms"]) <= period_ms
        # The simulator's own lap distance (not the decoded frames) brackets the crossings.
        inlap = state["lap_count"] == k
        lo1, hi1 = _bracket(t[inlap], state["norm_pos"][inlap], 1 / 3)
        lo2, hi2 = _bracket(t[inlap], state["norm_pos"][inlap], 2 / 3)
        t0, t1 = starts[k], starts[k + 1]
        assert (lo1 - t0) * 1000 - slack <= s1 <= (hi1 - t0) * 1000 + slack
        assert (lo2 - hi1) * 1000 - slack <= s2 <= (hi2 - lo1) * 1000 + slack
        assert (t1 - hi2) * 1000 - slack <= s3 <= (t1 - lo2) * 1000 + slack
        # Tighter: within one 3 ms sample interval the simulator's acceleration is constant, so
        # the float64 lap distance is linear in time to micrometres: interpolating the truth
        # state gives the crossing to the µs, and the analysis (float32 frames) must match it.
        c1 = _crossing(t[inlap], state["norm_pos"][inlap], 1 / 3)
        c2 = _crossing(t[inlap], state["norm_pos"][inlap], 2 / 3)
        for got, want in zip((s1, s2, s3), (c1 - t0, c2 - c1, t1 - c2)):
            assert abs(got - want * 1000) <= slack
    # The simulator's sector lines are not at thirds: game splits would differ by seconds.
    assert abs(res["laps"][0]["sectors_ms"][1] - sim.truth.sector_times_s[0][1] * 1000) > 500


def test_pcars2_sectors_from_distance_add_up():
    sim = make_sim(PC_HZ)
    fr, _ = frames_from_sim(sim, int(PC_HZ * 200), "pcars2", meta={"run_id": "pc2"})
    res = analyze_sectors([fr])
    assert len(res["laps"]) == 2
    for lap in res["laps"]:
        assert lap["source"] == "derived" and lap["consistent"]
        assert all(s > 10_000 for s in lap["sectors_ms"])


# ---------------------------------------------------------------------------------------- a lap in progress
@pytest.fixture(scope="module")
def pcars1_long():
    """Three whole laps and a bit: long enough for the truth of lap 3's sectors."""
    sim = make_sim(PC_HZ, 0.02)
    fr, _ = frames_from_sim(sim, int(PC_HZ * 280.0), "pcars1", meta={"run_id": "pc1-long"})
    assert len(sim.truth.sector_times_s) == 3
    return fr, sim


def cut(fr: Frames, t_s: float) -> Frames:
    """The run as recorded if it had ended at ``t_s`` (s since its first frame)."""
    return fr.take(fr.t_s <= t_s)


def test_lap_in_progress_shows_the_sectors_the_game_has_timed(pcars1_long):
    fr, sim = pcars1_long
    truth = [[x * 1000.0 for x in lap] for lap in sim.truth.sector_times_s]
    start3 = sim.truth.lap_start_times_s[2]
    s1, s2, _ = truth[2]
    # Lap 3 has the best first and second sectors of the run: counted only once completed.
    assert s1 < min(truth[0][0], truth[1][0]) and s2 < min(truth[0][1], truth[1][1])

    res = analyze_sectors([cut(fr, start3 + s1 / 1000.0 + 5.0)])  # 5 s into sector 2 of lap 3
    assert is_plain(res)
    assert [lap["lap"] for lap in res["laps"]] == [1, 2, 3]
    assert [lap["complete"] for lap in res["laps"]] == [True, True, False]
    now = res["laps"][2]
    assert now["time_ms"] is None and not now["valid"] and not now["consistent"] and now["source"] == "game"
    assert abs(now["sectors_ms"][0] - s1) <= 1.5 and now["sectors_ms"][1:] == [None, None]
    # The completed sector counts for the best; the one in progress does not.
    want = [s1, min(truth[0][1], truth[1][1]), min(truth[0][2], truth[1][2])]
    for got, w in zip(res["best_sectors_ms"], want):
        assert abs(got - w) <= 1.5
    assert abs(res["theoretical_best_ms"] - sum(want)) <= 3
    assert res["summary"]["valid_laps"] == 2

    res = analyze_sectors([cut(fr, start3 + (s1 + s2) / 1000.0 + 5.0)])  # in sector 3
    now = res["laps"][2]
    assert abs(now["sectors_ms"][0] - s1) <= 1.5 and abs(now["sectors_ms"][1] - s2) <= 1.5
    assert now["sectors_ms"][2] is None
    assert abs(res["best_sectors_ms"][1] - s2) <= 1.5
    assert abs(res["best_sectors_ms"][2] - min(truth[0][2], truth[1][2])) <= 1.5

    # A hole of 2 s in the frames during sector 2: sector 2 was not seen whole.
    t = fr.t_s
    hole = (t > start3 + s1 / 1000.0 + 5.0) & (t < start3 + s1 / 1000.0 + 7.0)
    res = analyze_sectors([cut(fr.take(~hole), start3 + (s1 + s2) / 1000.0 + 5.0)])
    assert abs(res["laps"][2]["sectors_ms"][0] - s1) <= 1.5 and res["laps"][2]["sectors_ms"][1:] == [None, None]

    # Still in sector 1: nothing timed yet, nothing listed; not even just past a third of the lap
    # (the simulator's sector-1 line lies 3 m beyond it), where thirds would time a "sector 1".
    res = analyze_sectors([cut(fr, start3 + s1 / 2000.0)])
    assert [lap["lap"] for lap in res["laps"]] == [1, 2]
    past_third = int(np.flatnonzero((t > start3) & (fr["norm_pos"] > 1 / 3))[0])
    assert t[past_third] < start3 + s1 / 1000.0
    res = analyze_sectors([cut(fr, t[past_third])])
    assert [lap["lap"] for lap in res["laps"]] == [1, 2]


def test_lap_in_progress_marked_invalid_shows_but_sets_no_best(pcars1_long):
    fr, sim = pcars1_long
    truth = [[x * 1000.0 for x in lap] for lap in sim.truth.sector_times_s]
    start3 = sim.truth.lap_start_times_s[2]
    flag = ((fr.t_s > start3 + 2.0) & (fr.t_s < start3 + 3.0)).astype(np.int8)  # the game: lap 3 invalid
    marked = cut(Frames(dict(fr.channels), {**fr.extras, "lap_invalid": flag}, dict(fr.meta)),
                 start3 + sum(truth[2][:2]) / 1000.0 + 5.0)
    res = analyze_sectors([marked])
    assert abs(res["laps"][2]["sectors_ms"][0] - truth[2][0]) <= 1.5
    for j in range(3):
        assert abs(res["best_sectors_ms"][j] - min(truth[0][j], truth[1][j])) <= 1.5


def test_lap_in_progress_derived_first_third(ac_run):
    fr, state, sim = ac_run
    starts = sim.truth.lap_start_times_s
    t = (state["t_ns"] - state["t_ns"][0]) / 1e9
    res = analyze_sectors([cut(fr, starts[3] + 0.5 * (starts[3] - starts[2]))])  # half of lap 4
    assert [lap["lap"] for lap in res["laps"]] == [1, 2, 3, 4]
    now = res["laps"][3]
    assert now["source"] == "derived" and not now["complete"] and now["sectors_ms"][1:] == [None, None]
    inlap = state["lap_count"] == 3
    want = (_crossing(t[inlap], state["norm_pos"][inlap], 1 / 3) - starts[3]) * 1000.0
    assert abs(now["sectors_ms"][0] - want) <= 1.0


# ---------------------------------------------------------------------------------------- merged runs
def test_merged_run_sectors_are_those_of_its_primary_feed(pcars1_long):
    # Laps are timed on the primary feed's frames; their sectors must be read from those frames
    # too, not from the merged run (whose frame indices are others: twice as many frames).
    fr, sim = pcars1_long
    merged = merged_with_a_second_feed(fr, int(0.5e9 / PC_HZ))
    assert len(merged) == 2 * len(fr)
    res = analyze_sectors([merged])
    assert [lap["lap"] for lap in res["laps"]] == [1, 2, 3]
    for lap, truth in zip(res["laps"], sim.truth.sector_times_s):
        assert lap["complete"] and lap["consistent"] and lap["source"] == "game"
        for got, want in zip(lap["sectors_ms"], truth):
            assert abs(got - want * 1000.0) <= 1.5
    assert res == analyze_sectors([fr])


# ---------------------------------------------------------------------------------------- real capture
def test_real_ac_capture_one_finished_lap():
    res = analyze_lap_times([monza_frames()])
    finished = [lap for lap in res["laps"] if lap["time_ms"] is not None]
    assert len(finished) == 1
    lap = finished[0]
    assert lap["time_ms"] == 344_684 and lap["source"] == "game"
    assert not lap["complete"] and not lap["valid"]  # the capture starts mid-lap
    assert res["best_lap_ms"] is None and res["mean_lap_ms"] is None and res["stddev_ms"] is None
    assert analyze_sectors([monza_frames()])["laps"] == []


# ---------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("fn", [analyze_lap_times, analyze_sectors])
def test_no_frames_raises(fn):
    with pytest.raises(ValueError, match="no frames"):
        fn([])
    with pytest.raises(ValueError, match="no frames"):
        fn([Frames.from_rows(empty(0), meta={"run_id": "x"})])


def test_frames_without_any_lap_information_raise():
    rows = empty(100)
    rows["t_ns"] = np.arange(100) * 10_000_000
    rows["speed_kmh"] = 100.0
    with pytest.raises(ValueError, match="lap"):
        analyze_lap_times([Frames.from_rows(rows)])
