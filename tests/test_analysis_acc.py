"""The analyses on ACC runs: ACC's own lap records (times, flags, splits), the field's best laps,
braking from the speed alone, and what cannot be computed without rpm and pedals.

ACC runs here are real recordings made offline from the fake ACC (tests/fake_acc.py): its
datagrams, tick by tick at 10 Hz of session time, written to a raw feed file by the recorder's own
writer and turned into ``data.h5`` by the same code as live recording (``h5store.rebuild``), then
read back as the session manager reads a run. The fake's ``completed_laps`` are the ground truth.
Braking from the speed is checked against the pedal of the same frames: the simulator and the
real AC Monza capture, with the brake taken away.
"""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import is_plain, monza_frames
from test_analysis_braking import sim_run, with_channels
from test_store_agreement import T0_NS, write_raw

import fake_acc as fa
from rt.analysis import braking, general, laps, racing_line, registry, shift_points, track_map
from rt.analysis.frames import Frames
from rt.errors import MissingChannels
from rt.protocols import default_protocols
from rt.protocols.acc import car_model_name
from rt.protocols.canonical import empty
from rt.store import h5store
from rt.store.manifest import iso, write_atomic

P = default_protocols()
TICK_NS = 100_000_000  # one update every 100 ms, as ACC at the feed's default interval


def acc_recording(data_dir: Path, ticks: int, **kw) -> tuple[Path, fa.FakeAcc]:
    """A stopped recording of ``ticks`` updates of a fake ACC (the entry list first), received
    ``TICK_NS`` apart (a µs between the datagrams of one tick); the fake, with its ground truth."""
    kw.setdefault("session_ms_per_tick", 100)
    acc = fa.FakeAcc(**kw)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        acc.client = sink.getsockname()  # registered: the fake streams there when ticked
        acc._send_entry_list(acc.client)
        tick_of = [0] * len(acc.sent)
        for k in range(1, ticks + 1):
            n = len(acc.sent)
            acc._tick()
            tick_of += [k] * (len(acc.sent) - n)
    acc.sock.close()
    rec_id = str(uuid.uuid4())
    rec = data_dir / rec_id
    rec.mkdir(parents=True)
    write_raw(rec / "acc.bin", T0_NS + np.asarray(tick_of) * TICK_NS + np.arange(len(tick_of)) * 1000, acc.sent)
    write_atomic(rec / "manifest.json", {"id": rec_id, "name": "acc", "created_at": iso(T0_NS),
                                         "status": "stopped", "feeds": {}})
    h5store.rebuild(rec, rec_id, P, iso(T0_NS))
    return rec, acc


def acc_run(rec: Path, start: int = 0, end: int | None = None, run_id: str = "r") -> Frames:
    """Frames ``start:end`` of the recording's acc feed, with the field, as SessionManager.run_frames."""
    with h5py.File(rec / "data.h5", "r") as f:
        rows, extras = h5store.read_canonical(f, "acc", start, end, P)
        field = h5store.read_field(f, "acc", int(rows["t_ns"][0]), int(rows["t_ns"][-1]))
    return Frames.from_rows(rows, extras, {"run_id": run_id, "feed_name": "acc", "field": field})


def truth_of(acc: fa.FakeAcc, slot: int) -> dict[int, fa.CompletedLap]:
    return {lap.lap: lap for lap in acc.completed_laps if lap.slot == slot}


EXPECTED_REASON = {"out": "out_lap", "in": "in_lap", "invalid": "game", "valid": None}


@pytest.fixture(scope="module")
def slot1(tmp_path_factory):
    """Slot 1 in focus (its lap 3 invalid, lap 1 an out-lap), recorded from the session's start."""
    return acc_recording(tmp_path_factory.mktemp("acc1"), 330, cars=4, focused_slot=1, lap_ms=3000)


@pytest.fixture(scope="module")
def slot2(tmp_path_factory):
    """Slot 2 in focus: lap 3 an in-lap, lap 4 an out-lap from the pits."""
    return acc_recording(tmp_path_factory.mktemp("acc2"), 450, cars=3, focused_slot=2, lap_ms=3000)


# ---------------------------------------------------------------------------------------- lap times
@pytest.mark.parametrize("which", ["slot1", "slot2"])
def test_lap_times_are_accs_own_to_the_ms_with_its_flags(which, request):
    rec, acc = request.getfixturevalue(which)
    slot = 1 if which == "slot1" else 2
    truth = truth_of(acc, slot)
    res = laps.analyze_lap_times([acc_run(rec)])
    finished = [lap for lap in res["laps"] if lap["time_ms"] is not None]
    assert [lap["lap"] for lap in finished] == sorted(truth)  # every lap the fake completed
    for lap in finished:
        t = truth[lap["lap"]]
        assert lap["time_ms"] == t.lap_time_ms and lap["source"] == "game"
        # The run saw every lap whole, lap 1 included: only ACC's flags make the out-lap one.
        assert lap["complete"]
        assert lap["invalid_reason"] == EXPECTED_REASON[t.kind], (lap, t.kind)
        assert lap["valid"] == (t.kind == "valid")
    kinds = {t.kind for t in truth.values()}
    assert {"out", "invalid"} <= kinds if slot == 1 else {"out", "in"} <= kinds
    assert res["best_lap_ms"] == min(t.lap_time_ms for t in truth.values() if t.kind == "valid")
    json.dumps(res, allow_nan=False)
    assert is_plain(res)


def test_a_run_begun_mid_lap_judges_each_finished_lap_by_its_own_record(slot2):
    # Frames from the middle of lap 2: the in-lap (3) is followed straight away by an out-lap (4),
    # so the current record just after lap 3's step already carries lap 4's out-lap flag.
    rec, acc = slot2
    truth = truth_of(acc, 2)
    fr_all = acc_run(rec)
    start = int(np.flatnonzero(fr_all["lap_count"] == 1)[len(fr_all) // 40])
    res = laps.analyze_lap_times([acc_run(rec, start)])
    by_lap = {lap["lap"]: lap for lap in res["laps"]}
    assert by_lap[2]["invalid_reason"] == "out_lap" and not by_lap[2]["complete"]  # begun before the run
    assert by_lap[2]["time_ms"] == truth[2].lap_time_ms  # ACC still says how long it took
    assert by_lap[3]["invalid_reason"] == "in_lap" and by_lap[4]["invalid_reason"] == "out_lap"
    after = [n for n, t in truth.items() if t.kind == "valid" and n > 4]
    assert after and all(by_lap[n]["valid"] and by_lap[n]["time_ms"] == truth[n].lap_time_ms for n in after)


# ---------------------------------------------------------------------------------------- the field
def test_the_field_table_lists_every_car_with_accs_best_valid_lap(slot1):
    rec, acc = slot1
    res = laps.analyze_lap_times([acc_run(rec)])
    table = res["field_best_laps"]
    assert [c["car_index"] for c in table] == sorted(
        (c.index for c in acc.cars), key=lambda i: acc.best_lap_of(i).lap_time_ms)
    for row in table:
        car = next(c for c in acc.cars if c.index == row["car_index"])
        mine = [lap for lap in acc.completed_laps if lap.car_index == car.index]
        driver = car.entry.drivers[car.entry.current_driver_index]
        assert row == {"car_index": car.index, "race_number": car.entry.race_number, "team": car.entry.team_name,
                       "driver": f"{driver.first_name} {driver.last_name}",
                       "car_model": car_model_name(car.entry.car_model_type),
                       "best_lap_ms": acc.best_lap_of(car.index).lap_time_ms, "laps": len(mine)}


def test_the_field_of_a_short_run_is_its_own_and_none_without_a_best_lap(tmp_path):
    # Five seconds in, nobody has finished a lap: every car is listed, with no best lap yet.
    rec, acc = acc_recording(tmp_path, 50, cars=3, lap_ms=3000)
    table = laps.analyze_lap_times([acc_run(rec)])["field_best_laps"]
    assert {c["car_index"] for c in table} == {c.index for c in acc.cars}
    assert all(c["best_lap_ms"] is None and c["laps"] == 0 for c in table)
    # A feed that is not ACC's carries no field, and the lap times have no table.
    plain = acc_run(rec)
    plain.meta.pop("field")
    assert "field_best_laps" not in laps.analyze_lap_times([plain])


# ---------------------------------------------------------------------------------------- sectors
def test_sectors_are_accs_splits_to_the_ms(slot1):
    rec, acc = slot1
    truth = truth_of(acc, 1)
    res = laps.analyze_sectors([acc_run(rec)])
    done = [lap for lap in res["laps"] if lap["complete"]]
    assert [lap["lap"] for lap in done] == sorted(truth)
    for lap in done:
        assert lap["sectors_ms"] == list(truth[lap["lap"]].splits_ms)
        assert lap["source"] == "game" and lap["consistent"] and sum(lap["sectors_ms"]) == lap["time_ms"]
    valid = [t for t in truth.values() if t.kind == "valid"]
    in_progress = [lap for lap in res["laps"] if not lap["complete"]]
    # The lap in progress shows the splits ACC has given it so far (the fake: its planned sectors).
    if in_progress:
        (cur,) = in_progress
        planned = fa.sector_times_ms(1, cur["lap"], acc.lap_ms)
        done_splits = [s for s in cur["sectors_ms"] if s is not None]
        assert done_splits == list(planned[: len(done_splits)]) and cur["sectors_ms"][2] is None
        valid_sectors = [[t.splits_ms[j] for t in valid] + done_splits[j:j + 1] for j in range(3)]
    else:
        valid_sectors = [[t.splits_ms[j] for t in valid] for j in range(3)]
    assert res["best_sectors_ms"] == [min(v) for v in valid_sectors]
    assert res["summary"]["sector_source"] == "game"


# ---------------------------------------------------------------------------------------- braking from speed
def without_pedals(fr: Frames) -> Frames:
    """The run as ACC's broadcasting would have it: no brake, throttle, rpm or accelerometer."""
    nan = np.full(len(fr), np.nan, dtype=np.float32)
    return with_channels(fr, brake=nan, throttle=nan, rpm=nan, g_long=nan, g_lat=nan)


def onset_gaps(pedal: dict, speed: dict) -> list[float]:
    """Per zone and lap, the speed's onset minus the pedal's, m (the zones must pair up)."""
    assert len(speed["zones"]) == len(pedal["zones"]) > 0
    gaps = []
    for zp, zs in zip(pedal["zones"], speed["zones"]):
        at = {(lap["run_id"], lap["lap"]): lap["distance_m"] for lap in zp["laps"]}
        assert {(lap["run_id"], lap["lap"]) for lap in zs["laps"]} == set(at)
        gaps += [lap["distance_m"] - at[(lap["run_id"], lap["lap"])] for lap in zs["laps"]]
    return gaps


@pytest.mark.parametrize("rate_hz, tol_m, tol_kmh", [(10.0, braking.SPEED_ONSET_TOL_M, 5.0), (100.0, 3.0, 0.5)])
def test_braking_from_speed_finds_the_pedal_s_zones_on_the_simulator(rate_hz, tol_m, tol_kmh):
    _sim, fr, _ = sim_run(rate_hz, 3, seed=3, lap_variation=0.02)
    pedal = braking.analyze([fr])
    speed = braking.analyze([without_pedals(fr)])
    gaps = onset_gaps(pedal, speed)
    assert max(abs(g) for g in gaps) <= tol_m, gaps
    assert min(gaps) > 0  # the deceleration builds as the pedal goes down: never before it
    summary = speed["summary"]
    assert summary["brake_source"] == "speed" and "no brake channel" in summary["note"]
    assert pedal["summary"]["brake_source"] == "pedal" and "note" not in pedal["summary"]
    assert all(z["peak_brake"] is None and z["decel_source"] == "speed" for z in speed["zones"])
    # The speed's release lags the pedal's by a little (the deceleration fit's half window), so
    # at 10 Hz the lowest speed is taken a frame or two later: a few km/h lower.
    for zp, zs in zip(pedal["zones"], speed["zones"]):
        assert zs["min_speed_kmh"] == pytest.approx(zp["min_speed_kmh"], abs=tol_kmh)
        assert zs["entry_speed_kmh"] == pytest.approx(zp["entry_speed_kmh"], abs=1.0)
        assert zs["peak_decel_g"] == pytest.approx(zp["peak_decel_g"], abs=0.05)


def test_braking_from_speed_finds_every_zone_of_the_real_monza_lap():
    fr = monza_frames()
    gaps = onset_gaps(braking.analyze([fr]), braking.analyze([without_pedals(fr)]))
    assert max(abs(g) for g in gaps) <= braking.SPEED_ONSET_TOL_REAL_M, gaps


def test_lifting_off_and_cruising_are_no_braking():
    # 250 km/h, lifting (3 m/s², drag and engine braking) down to 200 km/h, then cruising.
    t = np.arange(0, 30, 0.1)
    v_ms = np.where(t < 10, 250 / 3.6, np.maximum(200 / 3.6, 250 / 3.6 - 3.0 * (t - 10)))
    d = np.concatenate(([0.0], np.cumsum(v_ms[1:] * 0.1)))
    rows = empty(len(t))
    rows["t_ns"] = (t * 1e9).astype(np.int64)
    rows["speed_kmh"] = v_ms * 3.6
    rows["norm_pos"] = (d / 5000.0) % 1.0
    res = braking.analyze([Frames.from_rows(rows)])
    assert res["zones"] == [] and res["summary"]["brake_source"] == "speed"


# ---------------------------------------------------------------------------------------- no rpm, no pedals
def test_shift_points_names_the_channels_acc_lacks(slot1):
    rec, _ = slot1
    with pytest.raises(MissingChannels) as err:
        shift_points.analyze([acc_run(rec)])
    assert err.value.channels == ["rpm", "throttle"] and err.value.feeds == ["acc"]
    assert "rpm" in str(err.value) and "throttle" in str(err.value) and "acc" in str(err.value)


def test_track_map_racing_line_and_general_work_on_acc_frames_and_say_what_is_missing(slot1):
    rec, acc = slot1
    fr = acc_run(rec)
    tm = track_map.analyze([fr])
    assert tm["length_m"] == pytest.approx(acc.track_meters, rel=1e-3)  # a circle of 3000 m
    line = racing_line.analyze([fr])
    assert line["summary"]["mean_abs_deviation_m"] is not None  # every lap drives the same circle
    assert line["summary"]["mean_abs_deviation_m"] < 1.0
    gen = general.analyze([fr])
    assert gen["full_throttle_pct"] is None and gen["braking_pct"] is None
    assert set(gen["summary"]["unavailable"]) == {"full_throttle_pct", "braking_pct"}
    assert gen["max_speed_kmh"] == max(float(v) for v in fr["speed_kmh"])
    for use_case in ("track_map", "racing_line", "general", "lap_times", "sector_analysis", "braking_analysis"):
        out = registry.analyze(use_case, [fr])
        json.dumps(out, allow_nan=False)
