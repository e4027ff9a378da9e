"""Exports (rt/export): real recordings made by the real recorder from simulator datagrams, exported
to Parquet and CSV by the CLI and the API, read back with pyarrow, pandas and DuckDB."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest

from rt.analysis.laps import analyze_lap_times, find_laps
from rt.decode import Decoder, RowColumns
from rt.errors import Invalid, NotFound
from rt.export.table import Exporter, hive_path, motec_arguments, parse_laps
from rt.protocols import default_protocols
from rt.protocols.canonical import CANONICAL_NAMES, CANONICAL_UNITS, to_canonical
from rt.sim.driver import Simulation
from rt.sim.frames import packets
from rt.sim.track import TRACKS
from rt.sessions.manager import SessionManager
from rt.store.recordings import RecordingManager

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pd = pytest.importorskip("pandas")

P = default_protocols()
RATE_HZ = 50.0
#: Enough for an out-lap-free first lap, two more whole laps and a lap in progress (test_ring: ~90 s a lap).
SECONDS = 330


class _Feed:
    """What the recorder reads of a feed: its name and what the game named."""

    name = "ksudp"
    info = {"game": "assetto_corsa"}


class _PcarsFeed:
    name = "pcars"
    info = {"game": "project_cars_1"}


def record(data_dir: Path, car: str, track: str, seed: int, seconds: float = SECONDS, run_blocks=None,
           game: str = "ac", handshakes: tuple[bytes, ...] = (), named: bool = True) -> str:
    """One recording of the ksudp feed, by the recorder's sink path (raw + data.h5) from AC datagrams;
    with ``run_blocks`` (first, last) a session's run from before block ``first`` to after ``last``;
    ``handshakes``: AC handshake responses stored first; ``named``: the client names car and track."""
    mgr = RecordingManager(data_dir, P, min_free_mb=0)
    mgr.open()
    sessions = SessionManager(data_dir, mgr)
    sessions.open()
    session = sessions.create("lap_times", "export") if run_blocks else None
    feed = _Feed() if game == "ac" else _PcarsFeed()
    rec = mgr.start({"name": f"{car} at {track}", "game": feed.info["game"], **({"track": track, "car": car} if named else {})})
    if handshakes:
        hs = P["ac_handshake_response"]
        data = np.frombuffer(b"".join(handshakes), dtype=np.uint8).reshape(len(handshakes), hs.size)
        t_hs = np.arange(len(handshakes), dtype=np.int64) + 1_780_000_000 * 10**9 - 10**9
        mgr.on_raw(feed, t_hs, np.full(len(handshakes), hs.size, dtype=np.uint32), data, 0)
        mgr.on_decoded(feed, hs, RowColumns(Decoder(hs).rows(data.reshape(-1), np.arange(len(handshakes)) * hs.size)),
                       t_hs, None)
    sim = Simulation(car, "test_ring", rate_hz=RATE_HZ, seed=seed, lap_variation=0.01)
    layout = P[{"ac": "ac_car_info", "pcars1": "pcars1_telemetry"}[game]]
    dec = Decoder(layout)
    t_base = 1_780_000_000 * 10**9
    n, block = int(seconds * RATE_HZ), 2000
    run = None
    for b, lo in enumerate(range(0, n, block)):
        if session is not None and b == run_blocks[0]:
            run = sessions.start_run(session["id"], feed.name, "middle", [])
        rows, t_ns, _ = packets(sim, min(block, n - lo), game)
        t_ns = np.asarray(t_ns, dtype=np.int64) + t_base
        data = np.ascontiguousarray(rows).view(np.uint8).reshape(len(rows), layout.size)
        lengths = np.full(len(rows), layout.size, dtype=np.uint32)
        mgr.on_raw(feed, t_ns, lengths, data, 0)
        cols = RowColumns(dec.rows(data.reshape(-1), np.arange(len(rows), dtype=np.int64) * layout.size))
        mgr.on_decoded(feed, layout, cols, t_ns, to_canonical(layout.name, cols, t_ns))
        if run is not None and b == run_blocks[1]:
            sessions.stop_run(session["id"], run["id"])
    mgr.stop()
    mgr.close()
    return rec["id"]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    ids = [record(data_dir, "gt_coupe", "test_ring", 1, run_blocks=(2, 5)), record(data_dir, "club_hatch", "test_ring", 2),
           record(data_dir, "gt_coupe", "test_ring", 3)]
    return data_dir, ids


def canonical(data_dir: Path, rec_id: str, feed: str = "ksudp") -> dict[str, np.ndarray]:
    with h5py.File(data_dir / rec_id / "data.h5", "r") as f:
        return {name: f[f"{feed}/canonical/{name}"][:] for name in CANONICAL_NAMES}


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"RUSTY_TELEMETRY_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "rt", "export", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_laps_syntax():
    assert parse_laps("3,5-7") == [3, 5, 6, 7]
    assert parse_laps(" 2 , 2-3 ") == [2, 3] and parse_laps("7-5") == [5, 6, 7]
    assert parse_laps(None) is None and parse_laps("") is None
    for bad in ("x", "3-", "0", "1;2", "-1", "10000", "1,,2"):
        with pytest.raises(Invalid):
            parse_laps(bad)


def test_parquet_holds_every_channel_units_game_fields_and_metadata(recordings, tmp_path):
    data_dir, ids = recordings
    out = tmp_path / "one.parquet"
    done = cli(data_dir, ids[0], "--feed", "ksudp", "--format", "parquet", "-o", str(out))
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out)
    truth = canonical(data_dir, ids[0])
    assert table.num_rows == len(truth["t_ns"])
    for name in CANONICAL_NAMES:
        got = table.column(name).to_numpy()
        assert np.array_equal(got, truth[name], equal_nan=True), name
        assert table.schema.field(name).metadata[b"unit"] == CANONICAL_UNITS[name].encode()
    # the game's own fields, flattened, with their units; canonical names win, the game's are prefixed
    with h5py.File(data_dir / ids[0] / "data.h5", "r") as f:
        rows = f["ksudp/ac_car_info/rows"][:]
    assert np.array_equal(table.column("wheelAngularSpeed[3]").to_numpy(), rows["wheelAngularSpeed"][:, 3])
    assert np.array_equal(table.column("game.brake").to_numpy(), rows["brake"])
    assert table.schema.field("wheelAngularSpeed[0]").metadata[b"unit"] == b"rad/s"
    assert table.schema.field("identifier").type == pa.string()
    meta = table.schema.metadata
    assert meta[b"recording_id"].decode() == ids[0] and meta[b"car"] == b"gt_coupe" and meta[b"feed"] == b"ksudp"
    assert meta[b"distance_source"] == b"speed" and meta[b"export_version"] == b"1"
    frame = pd.read_parquet(out)
    assert np.array_equal(frame["speed_kmh"].to_numpy(), truth["speed_kmh"], equal_nan=True)
    t = frame["time_s"].to_numpy()
    assert t[0] == 0 and np.allclose(t, (truth["t_ns"] - truth["t_ns"][0]) / 1e9)


def test_csv_reads_plainly_with_pandas(recordings, tmp_path):
    data_dir, ids = recordings
    out = tmp_path / "one.csv"
    assert cli(data_dir, ids[1], "--feed", "ksudp", "--format", "csv", "-o", str(out)).returncode == 0
    frame = pd.read_csv(out)
    truth = canonical(data_dir, ids[1])
    for name in CANONICAL_NAMES:
        header = f"{name} [{CANONICAL_UNITS[name]}]"
        got = frame[header].to_numpy()
        want = truth[name]
        if want.dtype.kind == "f":  # CSV keeps a float32's shortest repr: equal as float32
            assert np.array_equal(got.astype(np.float32), want, equal_nan=True), name
        else:
            assert np.array_equal(got, want), name
    assert "lap" in frame and "distance_m [m]" in frame and "wheelAngularSpeed[2] [rad/s]" in frame


def test_laps_filter_gives_exactly_those_laps(recordings, tmp_path):
    data_dir, ids = recordings
    ex = Exporter(data_dir, P)
    whole = ex.select(ids[0], "ksudp")
    found = {lap.lap: lap for lap in find_laps(whole.frames)}
    assert len(found) >= 3
    pick = sorted(found)[1:3]
    out = tmp_path / "laps.parquet"
    done = cli(data_dir, ids[0], "--feed", "ksudp", "--laps", f"{pick[0]}-{pick[1]}", "--format", "parquet",
               "-o", str(out))
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out)
    t_ns = table.column("t_ns").to_numpy()
    want = np.concatenate([whole.frames["t_ns"][found[n].start:found[n].end] for n in pick])
    assert np.array_equal(t_ns, want)
    assert set(table.column("lap").to_numpy().tolist()) == set(pick)
    assert table.schema.metadata[b"laps"] == str(pick).encode()
    with pytest.raises(NotFound):
        ex.select(ids[0], "ksudp", laps=[999])
    with pytest.raises(NotFound):
        ex.select(ids[0], "pcars")
    args = motec_arguments(ex.select(ids[0], "ksudp", laps=pick))
    assert len(args["laps"]) == 2 and args["times_s"][0] == 0
    (s1, e1), (s2, e2) = args["laps"]
    # back to back, one line crossing between, each line where the lap model puts it: within a sample
    # of the first and last exported frames (the line is crossed between two frames)
    assert abs(s1) < 1 / RATE_HZ and e1 == s2 and abs(e2 - args["times_s"][-1]) < 1 / RATE_HZ
    assert abs((e1 - s1) - found[pick[0]].time_ms / 1000) < 0.002
    assert set(args["channels"]) == set(CANONICAL_NAMES) - {"t_ns"} | {"distance_m"}
    assert args["meta"]["vehicle"] == "gt_coupe"


def run_of(data_dir: Path, rec_id: str) -> dict:
    ex = Exporter(data_dir, P)
    for path in (data_dir / "sessions").glob("*.json"):
        for run in __import__("json").loads(path.read_text())["runs"]:
            if run["recording_id"] == rec_id:
                return ex.find_run(run["id"])
    raise AssertionError("no run")


def test_a_run_exports_its_own_frames(recordings, tmp_path):
    data_dir, ids = recordings
    run = run_of(data_dir, ids[0])
    out = tmp_path / "run.parquet"
    done = cli(data_dir, ids[0], "--feed", "ksudp", "--run", run["id"], "--format", "parquet", "-o", str(out))
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out)
    truth = canonical(data_dir, ids[0])
    assert run["end_marker"] - run["start_marker"] == 8000 == table.num_rows
    assert np.array_equal(table.column("t_ns").to_numpy(), truth["t_ns"][run["start_marker"]:run["end_marker"]])
    assert table.schema.metadata[b"run_id"].decode() == run["id"]
    with h5py.File(data_dir / ids[0] / "data.h5", "r") as f:
        rows = f["ksudp/ac_car_info/rows"][run["start_marker"]:run["end_marker"]]
    assert np.array_equal(table.column("engineRPM").to_numpy(), rows["engineRPM"])
    # a run of another recording, or of another feed, is not found
    assert cli(data_dir, ids[1], "--feed", "ksudp", "--run", run["id"], "--format", "csv",
               "-o", str(tmp_path / "x.csv")).returncode == 2


def test_api_download_equals_cli_export(recordings, tmp_path, server_factory):
    data_dir, ids = recordings
    srv = server_factory(RUSTY_TELEMETRY_DATA_DIR=str(data_dir))
    for fmt in ("parquet", "csv"):
        out = tmp_path / f"cli.{fmt}"
        assert cli(data_dir, ids[2], "--feed", "ksudp", "--laps", "2", "--format", fmt, "-o", str(out)).returncode == 0
        status, headers, body = srv.request("GET", f"/api/recordings/{ids[2]}/export/ksudp.{fmt}?laps=2")
        assert status == 200 and "attachment" in headers["Content-Disposition"]
        if fmt == "csv":
            assert body == out.read_bytes()
        else:
            assert pq.read_table(pa.BufferReader(body)).equals(pq.read_table(out))
    run = run_of(data_dir, ids[0])
    out = tmp_path / "run.csv"
    assert cli(data_dir, ids[0], "--feed", "ksudp", "--run", run["id"], "--format", "csv", "-o", str(out)).returncode == 0
    status, _, body = srv.request("GET", f"/api/recordings/{ids[0]}/export/ksudp.csv?run={run['id']}")
    assert status == 200 and body == out.read_bytes()
    status, _, body = srv.request("GET", f"/api/recordings/{ids[2]}/export/ksudp.csv?laps=2-x")
    assert status == 422 and b"bad_laps" in body
    assert srv.request("GET", f"/api/recordings/{ids[2]}/export/ksudp.csv?laps=999")[0] == 404
    assert srv.request("GET", f"/api/recordings/{ids[2]}/export/pcars.csv")[0] == 404
    assert srv.request("GET", f"/api/recordings/{ids[2]}/export/ksudp.csv?run=nope")[0] == 404
    assert srv.request("GET", f"/api/recordings/{ids[2]}/export/ksudp.xls")[0] == 404
    status, active = srv.call("POST", "/api/recordings", {"name": "being written"})
    assert status == 201
    status, _, body = srv.request("GET", f"/api/recordings/{active['id']}/export/ksudp.csv")
    assert status == 409 and b"recording_active" in body
    assert srv.call("POST", "/api/recordings/stop")[0] == 200
    assert cli(data_dir, ids[2], "--feed", "ksudp", "--laps", "2", "--format", "motec",
               "-o", str(tmp_path / "cli.ld")).returncode == 0
    for suffix in ("ld", "ldx"):
        status, headers, body = srv.request("GET", f"/api/recordings/{ids[2]}/export/ksudp.{suffix}?laps=2")
        assert status == 200 and body == (tmp_path / f"cli.{suffix}").read_bytes(), suffix


def test_duckdb_best_valid_lap_per_car_and_track_over_hive_exports(recordings, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    data_dir, ids = recordings
    out = tmp_path / "exports"
    expected: dict[tuple[str, str], tuple[int, str]] = {}
    for rec_id in ids:
        done = cli(data_dir, rec_id, "--feed", "ksudp", "--format", "parquet", "-o", str(out), "--hive")
        assert done.returncode == 0, done.stderr
        sel = Exporter(data_dir, P).select(rec_id, "ksudp")
        assert hive_path(out, sel).exists()
        best = analyze_lap_times([sel.frames])["best_lap_ms"]
        key = (sel.meta["track"], sel.meta["car"])
        assert best is not None
        expected[key] = min(expected.get(key, (best, rec_id)), (best, rec_id))
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    query = readme.split("```sql\n", 1)[1].split("```", 1)[0].replace("'exports/", f"'{out}/")
    got = duckdb.sql(query).fetchall()
    assert {(t, c): (ms, str(rec)) for t, c, ms, rec in got} == expected
    assert len(expected) == 2


def test_acc_frames_carry_the_focused_car_s_own_fields(tmp_path):
    """ACC sends every car; only the focused car's updates make frames, and an export's game fields
    are that car's, row for row (tests/test_analysis_acc.py makes the recording from the fake ACC)."""
    from test_analysis_acc import acc_recording

    from rt.protocols.canonical import ACC_CAR_KIND, ACC_FOCUS_KIND

    rec, _ = acc_recording(tmp_path, 120, cars=4, focused_slot=1, lap_ms=3000)
    sel = Exporter(tmp_path, P).select(rec.name, "acc")
    with h5py.File(rec / "data.h5", "r") as f:
        focused = np.unique(f[f"acc/{ACC_FOCUS_KIND}/rows"]["focusedCarIndex"])
        cars = f[f"acc/{ACC_CAR_KIND}/rows"]["carIndex"]
    assert len(focused) == 1 and len(sel) == 120
    car_index = sel.columns["carIndex"]
    assert car_index.valid is None and (car_index.values == focused[0]).all()
    assert len(cars) == 4 * len(sel)  # the other three cars' rows made no frames
    assert np.array_equal(sel.columns["kmh"].values.astype(np.float32), sel.columns["speed_kmh"].values)
    assert "game.gear" in sel.columns  # named like a canonical channel: prefixed


def test_distance_comes_from_the_game_s_track_length_where_it_states_one(tmp_path):
    rec_id = record(tmp_path, "gt_coupe", "test_ring", 4, seconds=200, game="pcars1")
    sel = Exporter(tmp_path, P).select(rec_id, "pcars")
    assert sel.meta["distance_source"] == "track_length"
    length = sel.meta["track_length_m"]
    assert abs(length - TRACKS["test_ring"].length_m) < 1
    lap, distance = sel.columns["lap"].values, sel.columns["distance_m"].values
    whole = [n.lap for n in sel.laps if n.complete]
    assert whole
    for n in whole:  # 0 at the line, the track's length at the next one (a sample's travel either side)
        d = distance[lap == n]
        assert abs(d[0]) < 2 and abs(d[-1] - length) < 2


def test_motec_export_holds_the_recordings_channels_and_its_laps_where_the_analysis_puts_them(recordings, tmp_path):
    # read with tests/reference_motec.py, written from MOTEC.md alone (never from the writer)
    from reference_motec import read_ld, read_ldx

    data_dir, ids = recordings
    ex = Exporter(data_dir, P)
    selection = ex.select(ids[1], "ksudp")
    ld, ldx = tmp_path / "all.ld", tmp_path / "all.ldx"
    ex.write(selection, "motec", ld)
    got = read_ld(ld)
    frames = canonical(data_dir, ids[1])
    times = (frames["t_ns"] - frames["t_ns"][0]) / 1e9
    speed = next(c for c in got.channels if c.name == "Ground Speed")
    grid = np.arange(speed.count) / speed.rate
    assert speed.unit == "km/h" and abs(grid[-1] - times[-1]) <= 1 / speed.rate
    # within the channel's resolution (0.1 km/h stored: 0.05) of the recording's frames on the grid
    assert np.abs(speed.values - np.interp(grid, times, frames["speed_kmh"])).max() <= 0.05 + 1e-6
    gear = next(c for c in got.channels if c.name == "Gear")
    held = frames["gear"][np.searchsorted(times, grid, side="right") - 1]
    assert (gear.values == held).all()
    # lap beacons at the lap model's line crossings, within one sample
    laps = [lap for lap in find_laps(selection.frames) if lap.start_s is not None]
    crossings = sorted({lap.start_s for lap in laps} | {lap.end_s for lap in laps if lap.end_s is not None})
    inside = [c for c in crossings if 0 < c < times[-1]]
    beacons = np.array(read_ldx(ldx).beacons_us) / 1e6
    assert len(beacons) == len(inside) >= 2
    assert np.abs(beacons - np.array(inside)).max() <= 1 / speed.rate


def test_progress_bar_shows_on_a_terminal_and_counts_every_frame(recordings, tmp_path):
    # stderr on a real pseudo-terminal, as a person at a console sees it (a pipe gets no bar)
    import os
    import pty
    import re
    import select

    data_dir, ids = recordings
    frames = len(canonical(data_dir, ids[0])["t_ns"])
    out = tmp_path / "bar.csv"
    controller, terminal = pty.openpty()
    env = {"RUSTY_TELEMETRY_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin", "COLUMNS": "120", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "rt", "export", ids[0], "--feed", "ksudp", "--format", "csv",
                             "-o", str(out)], stdout=subprocess.PIPE, stderr=terminal, env=env, text=True)
    os.close(terminal)
    seen = b""
    while True:  # read the terminal until the process closes it
        ready, _, _ = select.select([controller], [], [], 120)
        assert ready, "the export went quiet"
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: every writer of the terminal has gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))  # colours and cursor moves
    assert proc.wait(timeout=60) == 0, screen
    assert "writing csv" in screen
    # the bar's last count is every frame written, as the summary line says
    assert f"{frames}/{frames} frames" in screen
    assert proc.stdout.read().startswith(f"{frames:,} frames")
    proc.stdout.close()


def test_the_game_s_names_fill_what_the_recording_left_unnamed(tmp_path, monkeypatch):
    # AC names car, driver and track in its handshake answer; a later answer from the menus names
    # nothing, and says nothing. Exports carry them: MoTeC's header, Parquet's metadata.
    from reference_motec import read_ld
    from rt.sim.game import DRIVER_NAME, ac_handshake_response

    empty = ac_handshake_response(car="", track="", config="")
    rec_id = record(tmp_path, "gt_coupe", "test_ring", 4, seconds=20,
                    handshakes=(ac_handshake_response(car="ks_audi_r8_lms", track="monza"), empty), named=False)
    ex = Exporter(tmp_path, P)
    selection = ex.select(rec_id, "ksudp")
    assert (selection.meta["car"], selection.meta["track"], selection.meta["driver"]) == (
        "ks_audi_r8_lms", "monza", DRIVER_NAME)
    ld = tmp_path / "named.ld"
    ex.write(selection, "motec", ld)
    head = read_ld(ld)
    assert (head.driver, head.vehicle, head.venue) == (DRIVER_NAME, "ks_audi_r8_lms", "monza")
    # no lap done in 20 s: the last and best lap times are 0 (i2's "none"), not our -1 ms
    last = next(c for c in head.channels if c.name == "Lap Time Last")
    assert (selection.frames["last_lap_ms"] == -1).all() and set(last.values) == {0.0}
    # the log's date and time are the first frame's in this machine's time zone (as a logger's are)
    import time

    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30: no machine's default, so UTC cannot pass
    time.tzset()
    try:
        ex.write(selection, "motec", ld)
        head = read_ld(ld)
        first = datetime.fromtimestamp(int(selection.frames["t_ns"][0]) / 1e9)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert (head.date, head.time) == (first.strftime("%d/%m/%Y"), first.strftime("%H:%M:%S"))
    out = tmp_path / "named.parquet"
    ex.write(selection, "parquet", out)
    meta = pq.read_schema(out).metadata
    assert meta[b"driver"] == DRIVER_NAME.encode() and meta[b"car"] == b"ks_audi_r8_lms"
