"""The guided-analysis workflow end to end: a running server fed by the simulator, driven over HTTP.

The simulator runs 40× faster than real time so laps take seconds; the lap and sector times the
games report are the simulation's own, so they must match its truth to the millisecond.
"""

from __future__ import annotations

import numpy as np
import pytest

from rigs import free_udp_port, gated, wait_until
from rt.sim.driver import Simulation
from rt.sim.game import AcServer, PushSender, pcars1_extra, sim_source
from rt.sim.quirks import Quirks

SPEED = 40.0
#: Only against a hang: laps take seconds at 40×, and longer on a loaded machine (the gated
#: senders slow the game down there rather than lose datagrams).
LAPS_TIMEOUT_S = 240
RATE_AC = 100.0  # the AC sim's sample rate (×SPEED on the wire)
RATE_PC = 60.0


@pytest.fixture
def rig(server_factory):
    """A server with AC (ksudp), the Telemetry Tool app and PCARS 1 all driven by the simulator."""
    ksudp_port = free_udp_port()
    srv = server_factory(RUSTY_TELEMETRY_KSUDP_PORT=str(ksudp_port), RUSTY_TELEMETRY_MERGE_TOLERANCE_MS="0.5")
    # The games as they really are: AC's lap timer at 0 on an out-lap, a pause after 45 s, PCARS
    # starting in its menus (empty names), gear blips and strings packets sharing the counter.
    real = Quirks.real()
    sims = {
        "ac": Simulation("gt_coupe", "test_ring", rate_hz=RATE_AC, seed=1, lap_variation=0.02, out_lap_m=real.out_lap_m),
        "tt": Simulation("gt_coupe", "test_ring", rate_hz=RATE_PC, seed=1, lap_variation=0.02),
        "pcars1": Simulation("gt_coupe", "test_ring", rate_hz=RATE_PC, seed=2, lap_variation=0.02),
    }
    feeds = srv.get("/api/live")[1]["feeds"]
    pcars = sim_source("pcars1", sims["pcars1"], speed=SPEED, quirks=real)
    # Gated (rigs.keeps_up): on a loaded machine the games slow down rather than lose datagrams,
    # so the zero loss asserted below does not depend on the machine keeping up with 40×.
    senders = [
        gated(AcServer(sim_source("ac", sims["ac"], speed=SPEED, quirks=real), "127.0.0.1", ksudp_port), srv, "ksudp").start(),
        gated(PushSender(sim_source("tt", sims["tt"], speed=SPEED, quirks=real), "127.0.0.1",
                         feeds["telemetry_tool"]["port"]), srv, "telemetry_tool").start(),
        gated(PushSender(pcars, "127.0.0.1", feeds["pcars"]["port"], extra=pcars1_extra(pcars)), srv, "pcars").start(),
    ]
    played = ("ksudp", "telemetry_tool", "pcars")  # ACC's sessions are tests/test_analyses_acc_e2e.py's
    try:
        wait_until(lambda: all(srv.get("/api/live")[1]["feeds"][f]["health"] == "healthy" for f in played), timeout=15)
        yield srv, sims, senders
    finally:  # a failed start too: a sender left running would warn in some later test
        for s in senders:
            s.stop()


def laps_done(srv) -> dict:
    return {name: f["lap_count"] or 0 for name, f in srv.get("/api/live")[1]["feeds"].items()}


def test_lap_sector_and_general_sessions_through_the_api(rig, server_factory):
    srv, sims, senders = rig
    made = {}
    for use_case in ("lap_times", "sector_analysis", "general"):
        status, session = srv.call("POST", "/api/sessions", {"use_case": use_case, "label": f"e2e {use_case}"})
        assert status == 201 and session["status"] == "active" and session["guidance"] and session["runs"] == []
        made[use_case] = session
    assert srv.call("POST", "/api/sessions", {"use_case": "drifting"})[0] == 422
    assert srv.call("POST", "/api/sessions", {"label": "no use case"})[0] == 400

    # runs: lap times on ksudp merged with the Telemetry Tool; sectors on PCARS 1; general on ksudp
    s_lap, s_sec, s_gen = made["lap_times"], made["sector_analysis"], made["general"]
    status, run_lap = srv.call("POST", f"/api/sessions/{s_lap['id']}/runs",
                               {"feed_name": "ksudp", "label": "merged", "merge_feeds": ["telemetry_tool"]})
    assert status == 201 and run_lap["status"] == "recording" and run_lap["end_marker"] is None
    assert srv.call("POST", f"/api/sessions/{s_lap['id']}/runs", {"feed_name": "ksudp"})[0] == 409  # one at a time
    assert srv.call("POST", f"/api/sessions/{s_sec['id']}/runs", {"feed_name": "gt7"})[0] == 422
    status, ignored = srv.call("POST", f"/api/sessions/{s_sec['id']}/runs", {"feed_name": "pcars", "merge_feeds": ["pcars"]})
    assert status == 201 and ignored["merge_feeds"] == []  # merging a feed with itself adds nothing
    assert srv.call("DELETE", f"/api/sessions/{s_sec['id']}/runs/{ignored['id']}") == (204, None)
    status, run_sec = srv.call("POST", f"/api/sessions/{s_sec['id']}/runs", {"feed_name": "pcars"})
    status, run_gen = srv.call("POST", f"/api/sessions/{s_gen['id']}/runs", {"feed_name": "ksudp", "label": "all"})
    assert status == 201
    rec_id = srv.get(f"/api/sessions/{s_lap['id']}")[1]["recording_id"]
    assert rec_id and srv.get("/api/live")[1]["recording"]["id"] == rec_id  # the first run started a recording

    start_laps = laps_done(srv)
    wait_until(lambda: all(laps_done(srv)[f] >= start_laps[f] + 3 for f in ("ksudp", "pcars")), timeout=LAPS_TIMEOUT_S)
    end_laps = laps_done(srv)
    for session, run in ((s_lap, run_lap), (s_sec, run_sec), (s_gen, run_gen)):
        status, stopped = srv.call("POST", f"/api/sessions/{session['id']}/runs/{run['id']}/stop")
        assert status == 200 and stopped["status"] == "stopped" and not stopped["data_truncated"]
        assert stopped["end_marker"] == stopped["start_marker"] + stopped["frame_count"] > 0
    assert srv.call("POST", f"/api/sessions/{s_lap['id']}/runs/{run_lap['id']}/stop")[0] == 409
    pcars = srv.get("/api/live")[1]["feeds"]["pcars"]
    # The menus' empty names did not stay, and strings packets repeating the counter are no gaps.
    assert pcars["car"] == "RT Sim GT" and pcars["track"] == "RT Test Ring"
    assert pcars["sequence_gaps"] == 0 and pcars["dropped"] == 0 and pcars["kernel_dropped"] == 0

    # lap_times: the game's own lap times, equal to the simulation's truth to the ms
    status, done = srv.call("POST", f"/api/sessions/{s_lap['id']}/complete")
    assert status == 200 and done["status"] == "completed" and done["completed_at"]
    analysis = done["analysis"]
    assert analysis["use_case"] == "lap_times" and analysis["version"] >= 1 and analysis["runs"] == [run_lap["id"]]
    truth_ms = [round(t * 1000) for t in sims["ac"].truth.lap_times_s]
    complete = [lap for lap in analysis["laps"] if lap["complete"]]
    assert len(complete) >= 2
    for lap in complete:
        assert lap["source"] == "game"
        assert any(abs(lap["time_ms"] - t) <= 1 for t in truth_ms), (lap, truth_ms)
    assert srv.get(f"/api/sessions/{s_lap['id']}/analysis") == (200, analysis)

    # sector_analysis on PCARS 1: the game's splits, equal to the truth to the ms
    status, done = srv.call("POST", f"/api/sessions/{s_sec['id']}/complete")
    assert status == 200
    sec = done["analysis"]
    assert sec["sector_count"] == 3
    truth_sectors = [[round(x * 1000) for x in lap] for lap in sims["pcars1"].truth.sector_times_s]
    full = [lap for lap in sec["laps"] if lap["sectors_ms"] and all(s is not None for s in lap["sectors_ms"])]
    assert full
    for lap in full:
        assert any(np.allclose(lap["sectors_ms"], t, atol=2) for t in truth_sectors), (lap, truth_sectors[:3])
    assert sec["best_lap_ms"] is not None, [(l["lap"], l["valid"], l.get("invalid_reason"), l["sectors_ms"], l.get("time_ms")) for l in sec["laps"]]
    assert sec["theoretical_best_ms"] <= sec["best_lap_ms"] + 3

    # general: the distance covers the laps driven (≥ 3 laps ran; on the game's clock, so the
    # simulator running 40× faster than real time does not shrink it)
    status, done = srv.call("POST", f"/api/sessions/{s_gen['id']}/complete")
    gen = done["analysis"]
    run_frames = srv.get(f"/api/sessions/{s_gen['id']}")[1]["runs"][0]["frame_count"]
    assert status == 200 and gen["frames"] == run_frames > 0
    track_km = sims["ac"].truth.track_length_m / 1000
    ac_laps = end_laps["ksudp"] - start_laps["ksudp"]  # the general run lay between these counts, ± a lap
    assert (ac_laps - 1) * track_km < gen["distance_km"] < (ac_laps + 1.5) * track_km
    assert 250 < gen["max_speed_kmh"] < 320 and abs(sum(gen["gear_time_pct"].values()) - 100) < 0.1

    # reopen → delete a run → re-analyze (a completed session again) → restart → still there
    status, reopened = srv.call("POST", f"/api/sessions/{s_gen['id']}/reopen")
    assert status == 200 and reopened["status"] == "active" and reopened["analysis"] is None
    assert srv.get(f"/api/sessions/{s_gen['id']}/analysis")[0] == 409
    assert srv.call("POST", f"/api/sessions/{s_gen['id']}/analyze")[0] == 409  # not completed
    status, extra = srv.call("POST", f"/api/sessions/{s_gen['id']}/runs", {"feed_name": "ksudp", "label": "short"})
    assert status == 201
    wait_until(lambda: srv.get(f"/api/sessions/{s_gen['id']}")[1]["runs"][-1]["frame_count"] > 50, timeout=20)
    srv.call("POST", f"/api/sessions/{s_gen['id']}/runs/{extra['id']}/stop")
    assert srv.call("DELETE", f"/api/sessions/{s_gen['id']}/runs/{run_gen['id']}") == (204, None)
    status, done = srv.call("POST", f"/api/sessions/{s_gen['id']}/complete")
    assert status == 200 and done["analysis"]["runs"] == [extra["id"]]
    status, again = srv.call("POST", f"/api/sessions/{s_gen['id']}/analyze")
    assert status == 200 and again["analysis"]["frames"] == done["analysis"]["frames"]

    before = {s["id"]: s for s in srv.get("/api/sessions")[1]}
    assert list(before) == [s_gen["id"], s_sec["id"], s_lap["id"]]  # newest first
    for s in senders:
        s.stop()
    assert srv.stop()[0] == 0
    srv2 = server_factory()
    after = {s["id"]: s for s in srv2.get("/api/sessions")[1]}
    assert after == before
    status, again = srv2.call("POST", f"/api/sessions/{s_lap['id']}/analyze")
    assert status == 200 and again["analysis"]["laps"] == analysis["laps"]  # the frames are read back from disk


def test_completing_a_session_without_frames_is_a_conflict(server_factory):
    srv = server_factory()
    _, session = srv.call("POST", "/api/sessions", {"use_case": "lap_times"})
    status, body = srv.call("POST", f"/api/sessions/{session['id']}/complete")
    assert status == 409 and body["error"]["code"] == "no_data"
    assert srv.get(f"/api/sessions/{session['id']}")[1]["status"] == "active"
    assert srv.call("DELETE", f"/api/sessions/{session['id']}") == (204, None)
    assert srv.get(f"/api/sessions/{session['id']}")[0] == 404


def test_monza_capture_replayed_into_a_run_gives_the_games_lap(server_factory):
    from conftest import AC_MONZA, need
    from rt.replay import load
    from rt.sim.game import ReplaySource

    port = free_udp_port()
    srv = server_factory(RUSTY_TELEMETRY_KSUDP_PORT=str(port))
    _, session = srv.call("POST", "/api/sessions", {"use_case": "lap_times", "label": "Monza"})
    status, run = srv.call("POST", f"/api/sessions/{session['id']}/runs", {"feed_name": "ksudp"})
    assert status == 201
    times, payloads = load(need(AC_MONZA))  # the capture with its original timing, 20× faster
    ac = gated(AcServer(ReplaySource(times, payloads, speed=20), "127.0.0.1", port), srv, "ksudp").start()
    try:
        wait_until(lambda: srv.get("/api/live")[1]["feeds"]["ksudp"]["packets"] >= len(payloads), timeout=LAPS_TIMEOUT_S)
    finally:
        ac.stop()
    status, done = srv.call("POST", f"/api/sessions/{session['id']}/complete")
    assert status == 200
    laps = done["analysis"]["laps"]
    timed = [lap for lap in laps if lap["time_ms"] is not None]
    assert [lap["time_ms"] for lap in timed] == [344684]
    assert timed[0]["source"] == "game" and timed[0]["complete"] is False  # the run saw only its end
    assert done["runs"][0]["frame_count"] == len(payloads)
    # the run's recording's lap table says the same; the capture holds no whole lap, so no trace
    rec = {"id": done["runs"][0]["recording_id"]}
    status, table = srv.get(f"/api/recordings/{rec['id']}/laps?feed=ksudp")
    assert status == 200
    timed = [lap for lap in table["laps"] if lap["time_ms"] is not None]
    assert [(lap["time_ms"], lap["source"], lap["complete"]) for lap in timed] == [(344684, "game", False)]
    status, body = srv.get(f"/api/recordings/{rec['id']}/laps/{timed[0]['number']}/trace?feed=ksudp")
    assert status == 409 and body["error"]["code"] == "lap_incomplete"
