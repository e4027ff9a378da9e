"""The four driving analyses end to end: simulator → UDP → server → session → analysis, over HTTP.

The simulator runs 40× faster than real time; the analyses take their time base from the games'
lap timers where they have one, so the results must still match the simulation's truth, to the
README's figures (the "checked on the simulator" column: they hold on simulator frames and end to
end over UDP alike, so the same tolerances are asserted here as in the unit tests).
"""

from __future__ import annotations

import numpy as np

from rigs import free_udp_port, gated, wait_until
from rt.sim.car import CARS
from rt.sim.driver import Simulation
from rt.sim.game import AcServer, PushSender, pcars1_extra, push_sender, sim_source
from rt.sim.quirks import Quirks

SPEED = 40.0
#: Only against a hang: laps take seconds at 40×, and longer on a loaded machine (the gated
#: senders slow the game down there rather than lose datagrams).
LAPS_TIMEOUT_S = 240
REAL = Quirks.real()
# The README's figures ("## Sessions, runs and analyses"), asserted here end to end as stated.
TRACK_LENGTH_REL = 1e-4  # track_map: length within 0.01 % of the simulator's track
ONSET_TOL_M = 1.5  # braking_analysis: onsets within 1.5 m of the simulator's
SHIFT_REL = 0.003  # shift_points: within 0.3 % of the true optimum
LINE_TOL_M = 5e-4  # racing_line: 1.5 m "measures 1.500 m", i.e. to the mm the result is rounded to


def live(srv):
    return srv.get("/api/live")[1]["feeds"]


def start(srv, use_case: str, feed: str) -> tuple[dict, dict]:
    status, session = srv.call("POST", "/api/sessions", {"use_case": use_case})
    assert status == 201
    status, run = srv.call("POST", f"/api/sessions/{session['id']}/runs", {"feed_name": feed})
    assert status == 201, run
    return session, run


def laps_on(srv, feed: str) -> int:
    return live(srv)[feed]["lap_count"] or 0


def stop_and_complete(srv, session: dict, run: dict) -> dict:
    assert srv.call("POST", f"/api/sessions/{session['id']}/runs/{run['id']}/stop")[0] == 200
    status, done = srv.call("POST", f"/api/sessions/{session['id']}/complete")
    assert status == 200, done
    return done["analysis"]


def test_shift_points_braking_track_map_and_racing_line_through_the_api(server_factory):
    ksudp_port = free_udp_port()
    srv = server_factory(RUSTY_TELEMETRY_KSUDP_PORT=str(ksudp_port))
    feeds = live(srv)
    # The games as they really are (rt.sim.quirks): an out-lap with AC's timer at 0, a pause,
    # PCARS's menus and its gear blips during every shift.
    race = Simulation("gt_coupe", "test_ring", rate_hz=100.0, seed=4, out_lap_m=REAL.out_lap_m)
    pulls = Simulation("gt_coupe", "test_ring", rate_hz=100.0, seed=5, mode="pulls")
    pcars = sim_source("pcars1", pulls, speed=SPEED, quirks=REAL)
    senders = [
        gated(AcServer(sim_source("ac", race, speed=SPEED, quirks=REAL), "127.0.0.1", ksudp_port), srv, "ksudp").start(),
        gated(PushSender(pcars, "127.0.0.1", feeds["pcars"]["port"], extra=pcars1_extra(pcars)), srv, "pcars").start(),
    ]
    try:
        wait_until(lambda: all(live(srv)[f]["health"] == "healthy" for f in ("ksudp", "pcars")), timeout=15)
        braking, braking_run = start(srv, "braking_analysis", "ksudp")
        track, track_run = start(srv, "track_map", "ksudp")
        shift, shift_run = start(srv, "shift_points", "pcars")
        first = {f: laps_on(srv, f) for f in ("ksudp", "pcars")}
        wait_until(lambda: laps_on(srv, "ksudp") >= first["ksudp"] + 3 and laps_on(srv, "pcars") >= first["pcars"] + 2,
                   timeout=LAPS_TIMEOUT_S)
        results = {name: stop_and_complete(srv, s, r)
                   for name, (s, r) in {"braking": (braking, braking_run), "track": (track, track_run),
                                        "shift": (shift, shift_run)}.items()}
    finally:
        for s in senders:
            s.stop()

    truth = race.truth
    track_map = results["track"]
    assert abs(track_map["length_m"] - truth.track_length_m) <= TRACK_LENGTH_REL * truth.track_length_m, (
        track_map["length_m"], truth.track_length_m)
    assert [c["direction"] for c in track_map["corners"]] == [c.direction for c in truth.corners]

    # The best lap is timed on the game's clock, not the compressed receive clock (40×).
    best = results["braking"]["summary"]["best_lap"]
    assert any(abs(best["time_ms"] - round(t * 1000)) <= 1 for t in truth.lap_times_s), (best, truth.lap_times_s)
    zones = results["braking"]["zones"]
    assert len(zones) == len(truth.braking_onsets_m)
    for zone, onset in zip(sorted(zones, key=lambda z: z["distance_m"]), sorted(truth.braking_onsets_m)):
        assert abs(zone["distance_m"] - onset) <= ONSET_TOL_M, (zone["distance_m"], onset)
        # Every lap's own onset too, not only the zone's average: the laps are identical.
        for lap in zone["laps"]:
            assert abs(lap["distance_m"] - onset) <= ONSET_TOL_M, (lap, onset)

    car = CARS["gt_coupe"]
    gears = {g["gear"]: g for g in results["shift"]["gears"]}
    assert {1, 2, 3, 4} <= set(gears)
    for gear in (1, 2, 3, 4):
        true_rpm = car.optimal_upshift_rpm(gear)
        assert abs(gears[gear]["recommended_rpm"] - true_rpm) <= SHIFT_REL * true_rpm, (gear, gears[gear], true_rpm)


def test_racing_line_of_an_offset_run_through_the_api(server_factory):
    srv = server_factory()
    port = live(srv)["telemetry_tool"]["port"]
    status, session = srv.call("POST", "/api/sessions", {"use_case": "racing_line"})
    assert status == 201, session
    run_ids = []
    for offset in (0.0, 1.5):
        sim = Simulation("gt_coupe", "test_ring", rate_hz=60.0, seed=6, line_offset_m=offset)
        sender = gated(PushSender(sim_source("tt", sim, speed=SPEED), "127.0.0.1", port), srv, "telemetry_tool").start()
        try:
            wait_until(lambda: live(srv)["telemetry_tool"]["health"] == "healthy", timeout=15)
            status, run = srv.call("POST", f"/api/sessions/{session['id']}/runs", {"feed_name": "telemetry_tool"})
            assert status == 201, run
            first = laps_on(srv, "telemetry_tool")
            wait_until(lambda: laps_on(srv, "telemetry_tool") >= first + 2, timeout=LAPS_TIMEOUT_S)
            assert srv.call("POST", f"/api/sessions/{session['id']}/runs/{run['id']}/stop")[0] == 200
            run_ids.append(run["id"])
        finally:
            sender.stop()
    status, done = srv.call("POST", f"/api/sessions/{session['id']}/complete")
    assert status == 200, done
    line = done["analysis"]
    by_run = {}
    for lap in line["laps"]:
        by_run.setdefault(lap["run_id"], []).append(lap["deviation_m"]["signed_mean"])
    # The lines are parallel, so every lap of a run measures the same; the README says 1.500 m.
    assert by_run.get(run_ids[0]) and by_run.get(run_ids[1]), by_run  # a lap of each run was measured
    for centre in by_run[run_ids[0]]:
        for offset in by_run[run_ids[1]]:
            assert abs((offset - centre) - 1.5) <= LINE_TOL_M, (centre, offset)


def test_runs_carry_the_game_s_own_max_rpm_and_track_length(server_factory):
    # PCARS 1 states the engine's maximum (sMaxRpm) and the lap length (sTrackLength) in every
    # telemetry packet: a run made by the server hands them to the analyses.
    srv = server_factory()
    race = Simulation("gt_coupe", "test_ring", rate_hz=60.0, seed=7)
    sender = gated(PushSender(sim_source("pcars1", race, speed=SPEED, quirks=REAL), "127.0.0.1",
                              live(srv)["pcars"]["port"]), srv, "pcars").start()
    try:
        wait_until(lambda: live(srv)["pcars"]["health"] == "healthy", timeout=15)
        braking, braking_run = start(srv, "braking_analysis", "pcars")
        shift, shift_run = start(srv, "shift_points", "pcars")
        first = laps_on(srv, "pcars")
        wait_until(lambda: laps_on(srv, "pcars") >= first + 1, timeout=LAPS_TIMEOUT_S)
        braking_result = stop_and_complete(srv, braking, braking_run)
        shift_result = stop_and_complete(srv, shift, shift_run)
    finally:
        sender.stop()
    summary = braking_result["summary"]
    assert summary["track_length_source"] == "meta"
    assert summary["track_length_m"] == np.float32(race.truth.track_length_m).round(2)
    assert all(z["distance_m"] is not None for z in braking_result["zones"])
    assert shift_result["max_rpm"] == CARS["gt_coupe"].limiter_rpm


def test_pcars2_laps_are_the_game_s_own_from_its_timings_packets(server_factory):
    # PC2 sends lap data only in its timings, time-stats and race packets: the laps of a run on
    # the pcars feed are still the game's own (source "game"), equal to the simulator's to 1 ms.
    srv = server_factory()
    race = Simulation("gt_coupe", "test_ring", rate_hz=60.0, seed=8, lap_variation=0.02)
    sender = push_sender("pcars2", sim_source("pcars2", race, speed=SPEED, quirks=REAL), "127.0.0.1",
                         live(srv)["pcars"]["port"])
    sender = gated(sender, srv, "pcars").start()
    try:
        wait_until(lambda: live(srv)["pcars"]["health"] == "healthy", timeout=15)
        session, run = start(srv, "lap_times", "pcars")
        first = laps_on(srv, "pcars")
        wait_until(lambda: laps_on(srv, "pcars") >= first + 3, timeout=LAPS_TIMEOUT_S)
        result = stop_and_complete(srv, session, run)
        feed = live(srv)["pcars"]
    finally:
        sender.stop()
    assert feed["track"] == "RT Test Ring" and feed["best_lap_ms"] is not None
    truth_ms = [round(t * 1000) for t in race.truth.lap_times_s]
    complete = [lap for lap in result["laps"] if lap["complete"]]
    assert len(complete) >= 2, [(l["lap"], l["invalid_reason"]) for l in result["laps"]]
    for lap in complete:
        assert lap["source"] == "game"
        assert any(abs(lap["time_ms"] - t) <= 1 for t in truth_ms), (lap, truth_ms)
