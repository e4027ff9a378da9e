"""The analyses of ACC runs end to end: fake ACC → UDP → server → sessions → analyses, over HTTP.

The fake ACC (tests/fake_acc.py) laps a small field with laps of known times, splits and flags;
the server registers with it as with ACC and records the focused car's frames and the whole
field. Its ``completed_laps`` are the truth every result is held to, to the millisecond.
"""

from __future__ import annotations

import fake_acc as fa
import pytest

from rigs import wait_until
from rt.protocols.acc import car_model_name

#: Laps of the focused car to wait for: its out-lap (1), its invalid lap (3) and valid ones.
LAPS = 6
#: Only against a hang: the fake's laps take 5-9 s of real time each.
LAPS_TIMEOUT_S = 240
FOCUSED_SLOT = 1  # the fake's slot 1: every lap 5k + 3 invalid (lap 3 here)


def start(srv, use_case: str) -> tuple[dict, dict]:
    status, session = srv.call("POST", "/api/sessions", {"use_case": use_case})
    assert status == 201, session
    status, run = srv.call("POST", f"/api/sessions/{session['id']}/runs", {"feed_name": "acc"})
    assert status == 201, run
    return session, run


def test_acc_laps_sectors_field_braking_and_shift_points_through_the_api(server_factory):
    # Not started yet: ACC is not running when the runs begin, so they see every lap whole, the
    # out-lap included (only ACC's own flag can tell that one).
    acc = fa.FakeAcc(cars=4, focused_slot=FOCUSED_SLOT, lap_ms=3000, session_ms_per_tick=100)
    try:
        srv = server_factory(RUSTY_TELEMETRY_ACC_PORT=str(acc.port))
        made = {uc: start(srv, uc) for uc in ("lap_times", "sector_analysis", "braking_analysis", "general",
                                               "shift_points")}
        acc.start()
        focus = acc.focused_car_index
        assert acc.wait_for(lambda: sum(lap.car_index == focus for lap in acc.completed_laps) >= LAPS,
                            timeout=LAPS_TIMEOUT_S)
        acc.go_quiet()  # frozen: acc.sent and the truth are final
        wait_until(lambda: srv.get("/api/live")[1]["feeds"]["acc"]["packets"] == len(acc.sent), timeout=30)
        results = {}
        for uc, (session, run) in made.items():
            assert srv.call("POST", f"/api/sessions/{session['id']}/runs/{run['id']}/stop")[0] == 200
            results[uc] = srv.call("POST", f"/api/sessions/{session['id']}/complete")
    finally:
        acc.stop()

    truth = {lap.lap: lap for lap in acc.completed_laps if lap.car_index == focus}
    expected_reason = {"out": "out_lap", "in": "in_lap", "invalid": "game", "valid": None}

    # the recording's lap table and traces (what racecraft plots): ACC's laps, a trace against another
    rec_id = results["lap_times"][1]["runs"][0]["recording_id"]
    status, table = srv.get(f"/api/recordings/{rec_id}/laps?feed=acc")
    assert status == 200
    whole = [lap for lap in table["laps"] if lap["complete"] and lap["time_ms"] is not None]
    assert {lap["number"]: lap["time_ms"] for lap in whole} == {n: truth[n].lap_time_ms for n in
                                                                  (lap["number"] for lap in whole)}
    assert len(whole) >= 2 and all(lap["source"] == "game" for lap in whole)
    a, b = whole[-1]["number"], whole[-2]["number"]
    status, tr = srv.get(f"/api/recordings/{rec_id}/laps/{a}/trace?feed=acc&channels=speed_kmh,throttle&ref={b}")
    assert status == 200, tr
    # on ACC's own track length (its TRACK_DATA), spline position × length: the grid ends at the line
    assert tr["x_source"] == "track_length" and tr["distance_m"][-1] == pytest.approx(acc.track_meters, abs=1e-6)
    # the time slip ends at the lap-time difference, within one update interval
    assert abs(tr["ref"]["delta_s"][-1] - (truth[a].lap_time_ms - truth[b].lap_time_ms) / 1000) <= acc.interval_ms / 1000
    assert set(tr["channels"]["throttle"]) == {None} and None not in tr["channels"]["speed_kmh"]  # ACC sends no pedals
    status, same = srv.get(f"/api/recordings/{rec_id}/laps/{a}/trace?feed=acc&ref={a}")
    assert status == 200 and set(same["ref"]["delta_s"]) == {0.0}

    # lap_times: ACC's own times to the ms, judged by ACC's flags
    status, done = results["lap_times"]
    assert status == 200, done
    lap_times = done["analysis"]
    finished = {lap["lap"]: lap for lap in lap_times["laps"] if lap["time_ms"] is not None}
    assert sorted(finished) == sorted(truth)
    for n, lap in finished.items():
        assert lap["time_ms"] == truth[n].lap_time_ms and lap["source"] == "game", (lap, truth[n])
        assert lap["invalid_reason"] == expected_reason[truth[n].kind], (lap, truth[n].kind)
        assert lap["valid"] == (truth[n].kind == "valid")
    assert finished[1]["invalid_reason"] == "out_lap" and finished[1]["complete"]
    assert finished[3]["invalid_reason"] == "game"
    assert lap_times["best_lap_ms"] == min(t.lap_time_ms for t in truth.values() if t.kind == "valid")

    # the field's best laps: every car, ACC's best valid lap, its names
    table = lap_times["field_best_laps"]
    assert [c["car_index"] for c in table] == sorted((c.index for c in acc.cars),
                                                     key=lambda i: acc.best_lap_of(i).lap_time_ms)
    for row in table:
        car = next(c for c in acc.cars if c.index == row["car_index"])
        driver = car.entry.drivers[car.entry.current_driver_index]
        assert row["best_lap_ms"] == acc.best_lap_of(car.index).lap_time_ms
        assert row["laps"] == sum(lap.car_index == car.index for lap in acc.completed_laps)
        assert (row["race_number"], row["team"], row["driver"], row["car_model"]) == (
            car.entry.race_number, car.entry.team_name, f"{driver.first_name} {driver.last_name}",
            car_model_name(car.entry.car_model_type))

    # sector_analysis: ACC's splits to the ms
    status, done = results["sector_analysis"]
    assert status == 200, done
    sectors = done["analysis"]
    complete = {lap["lap"]: lap for lap in sectors["laps"] if lap["complete"]}
    assert sorted(complete) == sorted(truth)
    for n, lap in complete.items():
        assert lap["sectors_ms"] == list(truth[n].splits_ms) and lap["source"] == "game" and lap["consistent"]
    assert sectors["summary"]["sector_source"] == "game"

    # braking_analysis: from the speed, and it says so (the fake's speed only steps between its
    # sectors, faster than any car brakes: there is no zone to find, and none is made up)
    status, done = results["braking_analysis"]
    assert status == 200, done
    summary = done["analysis"]["summary"]
    assert summary["brake_source"] == "speed" and "no brake channel" in summary["note"]
    assert done["analysis"]["zones"] == []

    # general: what ACC does not send is null, and named
    status, done = results["general"]
    assert status == 200, done
    assert set(done["analysis"]["summary"]["unavailable"]) == {"full_throttle_pct", "braking_pct"}

    # shift_points: a clear 409 naming what ACC's broadcasting lacks
    status, body = results["shift_points"]
    assert status == 409, body
    assert body["error"]["code"] == "missing_channels"
    assert "rpm" in body["error"]["message"] and "throttle" in body["error"]["message"]
    assert "acc" in body["error"]["message"]
