"""Lap tables and lap traces (rt/analysis/traces.py, GET /api/recordings/{id}/laps…) against the
simulator's truth.

Expected values come from the simulation, never from the code under test: lap times from
``Simulation.truth`` (exact), positions and channels from the simulator's own state arrays
(``lap_distance_m``: metres along the centre line).
"""

from __future__ import annotations

import numpy as np
import pytest

from rigs import gated, wait_until
from rt.analysis.laps import find_laps
from rt.analysis.traces import MAX_POINTS, TRACE_CHANNELS, lap_axis, lap_table, lap_trace
from rt.sim.driver import Simulation
from rt.sim.frames import frames_from_sim
from rt.sim.game import PushSender, pcars1_extra, sim_source
from rt.sim.quirks import Quirks

RUN_S = 280.0  # three whole laps of ≈ 88 s and part of a fourth
RATES = {"pcars1": 60.0, "ac": 100.0}


def make_sim(rate_hz: float, seed: int = 3) -> Simulation:
    return Simulation(car="gt_coupe", track="test_ring", rate_hz=rate_hz, seed=seed, lap_variation=0.02, mode="race")


@pytest.fixture(scope="module", params=["pcars1", "ac"])
def run(request):
    """(game, frames, sim state, sim, laps): PCARS states the track length; AC does not."""
    game = request.param
    sim = make_sim(RATES[game])
    fr, state = frames_from_sim(sim, int(RATES[game] * RUN_S), game, meta={"run_id": game}, quirks=False)
    return game, fr, state, sim, find_laps(fr)


def truth_ms(sim) -> list[int]:
    return [round(t * 1000.0) for t in sim.truth.lap_times_s]


def test_lap_table_is_the_lap_model_with_sectors(run):
    game, _, _, sim, laps = run
    table = lap_table(laps)
    assert [r["number"] for r in table] == [1, 2, 3, 4]
    assert [r["time_ms"] for r in table[:3]] == truth_ms(sim) and table[3]["time_ms"] is None
    assert all(r["valid"] and r["source"] == "game" and len(r["sectors_ms"]) == 3 for r in table[:3])
    assert table[3]["invalid_reason"] == "unfinished"
    for r, start in zip(table[:3], sim.truth.lap_start_times_s):
        assert r["start_s"] == pytest.approx(start, abs=1e-3) and r["end_s"] - r["start_s"] == pytest.approx(r["time_ms"] / 1000, abs=2e-3)


def test_delta_ends_at_the_lap_time_difference_and_is_zero_against_itself(run):
    game, _, _, sim, laps = run
    period = 1.0 / RATES[game]
    truth = sim.truth.lap_times_s
    assert len(set(truth)) == 3  # lap_variation: every lap differs
    for n in range(3):
        for m in range(3):
            tr = lap_trace(laps[n], ("speed_kmh",), "distance", 2.0, laps[m])
            delta = tr["ref"]["delta_s"]
            assert delta[0] == 0.0
            assert abs(delta[-1] - (truth[n] - truth[m])) <= period, (game, n, m, delta[-1])
            if n == m:
                assert all(d == 0.0 for d in delta)
    # on a time grid too: the slip at the end of lap n is the same difference
    tr = lap_trace(laps[1], (), "time", 0.1, laps[2])
    assert abs(tr["ref"]["delta_s"][-1] - (truth[1] - truth[2])) <= period
    assert tr["time_s"][-1] == pytest.approx(truth[1], abs=period)


def test_distance_grid_ends_at_the_track_length(run):
    game, fr, _, sim, laps = run
    tr = lap_trace(laps[0], ("speed_kmh",), "distance", 2.0)
    x = np.asarray(tr["distance_m"])
    assert x[0] == 0.0 and np.all(np.diff(x) > 0) and np.allclose(np.diff(x)[:-1], 2.0)
    if game == "pcars1":  # the game states the length: p × that length, exactly
        assert tr["x_source"] == "track_length" and x[-1] == pytest.approx(fr.meta["track_length_m"], abs=1e-3)
        assert fr.meta["track_length_m"] == pytest.approx(sim.truth.track_length_m, abs=1e-3)
    else:  # AC does not: the distance driven, speed over the game's clock
        assert tr["x_source"] == "distance_driven"
        assert x[-1] == pytest.approx(sim.truth.track_length_m, rel=1e-4)
    assert tr["time_s"][0] == 0.0 and tr["time_s"][-1] == pytest.approx(sim.truth.lap_times_s[0], abs=2e-3)


def test_channels_are_the_laps_frames_interpolated(run):
    game, fr, state, sim, laps = run
    lap = laps[1]
    tr = lap_trace(lap, ("speed_kmh", "gear", "throttle"), "distance", 5.0)
    x = np.asarray(tr["distance_m"])
    # The frames' positions are the simulator's own, to the game's resolution (PCARS: whole metres).
    ax = lap_axis(lap)
    inside = ax.index[(ax.index >= lap.start) & (ax.index < lap.end)]
    truth_x = state["lap_distance_m"][inside]
    ours = ax.x_m[(ax.index >= lap.start) & (ax.index < lap.end)]
    assert np.abs(ours - truth_x).max() <= (1.0 if game == "pcars1" else 0.05)
    # … and each channel is the frames' values interpolated there (floats linear, gears held).
    speed = np.interp(x, ax.x_m, fr["speed_kmh"][ax.index].astype(np.float64))
    assert np.allclose(tr["channels"]["speed_kmh"], speed, atol=1e-3)
    throttle = np.interp(x, ax.x_m, fr["throttle"][ax.index].astype(np.float64))
    assert np.allclose(tr["channels"]["throttle"], throttle, atol=1e-4)
    held = fr["gear"][ax.index][np.searchsorted(ax.x_m, x, side="right") - 1]
    assert tr["channels"]["gear"] == held.tolist()
    # and against the simulator's state, by its own positions: speed within 1 km/h (PCARS: 1 m steps)
    sim_speed = np.interp(x, state["lap_distance_m"][inside], state["speed_ms"][inside] * 3.6)
    assert np.median(np.abs(np.asarray(tr["channels"]["speed_kmh"]) - sim_speed)) < 1.0
    assert tr["units"] == {"speed_kmh": "km/h", "gear": "-1 R, 0 N, 1.. forward", "throttle": "0..1"}


def test_sizes_are_bounded_and_the_reference_channels_follow(run):
    _, _, _, _, laps = run
    tr = lap_trace(laps[0], ("speed_kmh",), "distance", 0.01, laps[1], ref_channels=True)
    assert tr["step_clamped"] and tr["points"] == len(tr["distance_m"]) <= MAX_POINTS
    assert tr["step"] > 0.01 and tr["step_requested"] == 0.01
    assert len(tr["ref"]["channels"]["speed_kmh"]) == tr["points"]
    same = lap_trace(laps[1], ("speed_kmh",), "distance", tr["step"])
    # the reference's channels on lap n's grid are lap M's own trace where the lengths agree
    assert np.allclose(tr["ref"]["channels"]["speed_kmh"][:-1], same["channels"]["speed_kmh"][:-1], atol=0.05)
    with pytest.raises(ValueError):
        lap_trace(laps[0], ("t_ns",))
    assert "t_ns" not in TRACE_CHANNELS and "speed_kmh" in TRACE_CHANNELS


def test_the_api_lists_the_analysis_channels_and_limits():
    from rt.api.openapi import DOCUMENT, TRACE_CHANNELS as documented
    from rt.api.recordings import TRACE_CHANNELS as accepted

    assert tuple(documented) == tuple(accepted) == TRACE_CHANNELS
    trace = DOCUMENT["components"]["schemas"]["LapTrace"]["properties"]
    assert trace["points"]["maximum"] == trace["distance_m"]["maxItems"] == MAX_POINTS


# ---------------------------------------------------------------------------------------- end to end
SPEED = 40.0
LAPS_TIMEOUT_S = 240  # only against a hang: laps take seconds at 40×


def test_lap_routes_through_a_real_server(server_factory):
    srv = server_factory()
    port = srv.get("/api/live")[1]["feeds"]["pcars"]["port"]
    sim = Simulation("gt_coupe", "test_ring", rate_hz=RATES["pcars1"], seed=2, lap_variation=0.02)
    source = sim_source("pcars1", sim, speed=SPEED, quirks=Quirks.real())
    status, rec = srv.call("POST", "/api/recordings", {"name": "laps"})
    assert status == 201
    sender = gated(PushSender(source, "127.0.0.1", port, extra=pcars1_extra(source)), srv, "pcars").start()
    try:
        wait_until(lambda: (srv.get("/api/live")[1]["feeds"]["pcars"]["lap_count"] or 0) >= 3, timeout=LAPS_TIMEOUT_S)
    finally:
        sender.stop()
    assert srv.call("POST", f"/api/recordings/{rec['id']}/stop")[0] == 200
    base = f"/api/recordings/{rec['id']}/laps"

    status, table = srv.get(f"{base}?feed=pcars")
    assert status == 200 and table["feed"] == "pcars" and table["recording_id"] == rec["id"]
    truth = [round(t * 1000) for t in sim.truth.lap_times_s]
    whole = [lap for lap in table["laps"] if lap["complete"]]
    assert len(whole) >= 2
    for lap in whole:  # the game's own times, equal to the simulation's truth to the ms
        assert lap["source"] == "game" and lap["time_ms"] == truth[lap["number"] - 1], (lap, truth)
        assert len(lap["sectors_ms"]) == 3
    a, b = whole[0]["number"], whole[1]["number"]

    status, tr = srv.get(f"{base}/{a}/trace?feed=pcars&channels=speed_kmh,throttle,brake,gear&x=distance&step_m=2"
                         f"&ref={b}&ref_channels=1")
    assert status == 200, tr
    assert tr["x_source"] == "track_length" and tr["distance_m"][-1] == pytest.approx(sim.truth.track_length_m, abs=1e-2)
    assert abs(tr["ref"]["delta_s"][-1] - (truth[a - 1] - truth[b - 1]) / 1000) <= 1 / RATES["pcars1"]
    assert set(tr["channels"]) == set(tr["ref"]["channels"]) == {"speed_kmh", "throttle", "brake", "gear"}
    assert all(len(v) == tr["points"] for v in tr["channels"].values())
    status, same = srv.get(f"{base}/{a}/trace?feed=pcars&ref={a}")
    assert status == 200 and set(same["ref"]["delta_s"]) == {0.0} and "channels" not in same["ref"]
    status, fine = srv.get(f"{base}/{a}/trace?feed=pcars&x=time&step_s=0.001")
    assert status == 200 and fine["step_clamped"] and fine["points"] <= MAX_POINTS and fine["x"] == "time"

    def error(path: str, status: int, code: str) -> None:
        got, body = srv.get(path)
        assert got == status and body["error"]["status"] == status and body["error"]["code"] == code, (path, body)
        assert body["error"]["message"]

    error(f"{base}/{a}/trace?feed=pcars&channels=speed_kmh,warp_factor", 422, "unknown_channel")
    error(f"{base}/{a}/trace?feed=pcars&channels=t_ns", 422, "unknown_channel")
    error(f"{base}/{a}/trace?feed=pcars&x=sideways", 422, "invalid_parameter")
    error(f"{base}/{a}/trace?feed=pcars&step_m=0", 422, "invalid_parameter")
    error(f"{base}/{a}/trace?feed=pcars&step_m=fast", 400, "invalid_parameter")
    error(f"{base}/{a}/trace?feed=pcars&ref=first", 400, "invalid_parameter")
    error(f"{base}/999/trace?feed=pcars", 404, "lap_not_found")
    error(f"{base}/{a}/trace?feed=pcars&ref=999", 404, "lap_not_found")
    error(f"{base}/{a}/trace?feed=gt7", 404, "feed_not_found")
    error(f"{base}?feed=gt7", 404, "feed_not_found")
    error(f"{base}?x=1", 400, "missing_parameter")
    error("/api/recordings/00000000-0000-4000-8000-000000000000/laps?feed=pcars", 404, "recording_not_found")
    error("/api/recordings/00000000-0000-4000-8000-000000000000/laps/1/trace?feed=pcars", 404, "recording_not_found")
    unfinished = [lap for lap in table["laps"] if not lap["complete"]]
    assert unfinished  # the lap in progress when the recording stopped (or the first, begun in the menus)
    error(f"{base}/{unfinished[-1]['number']}/trace?feed=pcars", 409, "lap_incomplete")
    status, empty = srv.get(f"{base}?feed=ksudp")  # a feed the recording has no frames of: no laps
    assert status == 200 and empty["laps"] == []
    code, log = srv.stop()
    assert code == 0 and "Traceback" not in log


def test_kept_laps_are_let_go_once_unused():
    # an hour of frames is ~100 MB: a recorder left running must not hold them after a look at laps
    import time

    from rt.analysis.laps import Laps
    from rt.sessions.laps import KEEP_S, RecordingLaps

    kept = RecordingLaps(recordings=None)
    kept._kept, kept._used = (("rec", "pcars"), Laps()), time.monotonic()
    kept.release_idle(now=kept._used + KEEP_S / 2)
    assert kept._kept is not None
    kept.release_idle(now=kept._used + KEEP_S)
    assert kept._kept is None
