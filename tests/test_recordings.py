"""Recordings through the running server: raw files byte for byte, HDF5 in agreement, crash safety."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import h5py
import numpy as np

from conftest import PCARS1, need
from rigs import ScriptedSim, synced_packets, wait_until
from rt.protocols import default_protocols
from rt.sim.game import AcServer, PushSender, pcars2_telemetry, sim_source, tt_driver
from rt.store import rawfile
from rt.store.h5store import agrees_with_raw
from rt.decode import Decoder, RowColumns
from rt.feeds.feed import Feed
from rt.protocols.canonical import to_canonical
from rt.errors import StoreError
from rt.store.recordings import SYNC_S, RecordingManager

P = default_protocols()


def live_feeds(srv):
    return srv.get("/api/live")[1]["feeds"]


def send(port: int, payloads: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for p in payloads:
            out.sendto(p, ("127.0.0.1", port))


def download(srv, rec_id: str, feed: str, headers=None):
    return srv.request("GET", f"/api/recordings/{rec_id}/data/{feed}", headers=headers)


def test_recording_holds_every_datagram_byte_for_byte_and_decoded(server_factory, tmp_path):
    ac = AcServer(sim_source("ac", ScriptedSim(), rate_hz=300), "127.0.0.1", 0).start()
    try:
        srv = server_factory(RUSTY_TELEMETRY_KSUDP_PORT=str(ac.port))
        wait_until(lambda: live_feeds(srv)["ksudp"]["health"] == "healthy", timeout=10)
        status, rec = srv.call("POST", "/api/recordings", {"name": "byte for byte", "game": "assetto_corsa",
                                                             "use_case": "general", "unknown_field": 1})
        assert status == 201 and rec["status"] == "recording" and rec["use_case"] == "general"
        assert srv.get("/api/live")[1]["recording"] == {"id": rec["id"], "name": "byte for byte", "status": "recording"}
        feeds = live_feeds(srv)
        tt = [row.tobytes() for row in tt_driver(ScriptedSim().step_block(500), 7)]
        rng = np.random.default_rng(5)
        junk = [rng.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in rng.integers(1, 900, 40)]
        tt_sent = tt[:250] + junk[:20] + tt[250:] + junk[20:]
        pc = [need(PCARS1 / "jamesremuscat_packet_0.bin").read_bytes(), need(PCARS1 / "jamesremuscat_packet_1.bin").read_bytes()]
        pc += [row.tobytes() for row in pcars2_telemetry(ScriptedSim().step_block(30), 0)]
        base = {name: f["packets"] for name, f in live_feeds(srv).items()}
        send(feeds["telemetry_tool"]["port"], tt_sent)
        send(feeds["pcars"]["port"], pc)
        wait_until(lambda: (f := live_feeds(srv))["telemetry_tool"]["packets"] - base["telemetry_tool"] == len(tt_sent)
                   and f["pcars"]["packets"] - base["pcars"] == len(pc), timeout=10)
        # AC streams on its own clock: on a busy machine its 300/s can lag the blasts above.
        wait_until(lambda: srv.get(f"/api/recordings/{rec['id']}")[1]["feeds"]["ksudp"]["packets"] > 20, timeout=20)
        # downloadable while it is being written
        status, headers, live_raw = download(srv, rec["id"], "telemetry_tool")
        assert status == 200 and int(headers["Content-Length"]) == len(live_raw)
        status, stopped = srv.call("POST", "/api/recordings/stop")
        assert status == 200 and stopped["status"] == "stopped" and stopped["stopped_at"]
    finally:
        ac.stop()

    rec_id = rec["id"]
    got = {}
    for feed in ("ksudp", "telemetry_tool", "pcars"):
        status, headers, body = download(srv, rec_id, feed)
        assert status == 200 and headers["Content-Type"] == "application/octet-stream"
        assert headers["Content-Disposition"].startswith("attachment")
        assert int(headers["Content-Length"]) == len(body)
        t_ns, offsets, lengths, end = rawfile.parse(body)
        assert end == len(body) and (np.diff(t_ns) >= 0).all()
        got[feed] = [body[o : o + n] for o, n in zip(offsets.tolist(), lengths.tolist())]
    assert got["telemetry_tool"] == tt_sent  # every datagram, in order, with its length, junk included
    assert got["pcars"] == pc
    assert len(got["ksudp"]) > 20 and all(len(p) == 328 for p in got["ksudp"])  # AC streamed throughout

    m = stopped["feeds"]
    assert m["telemetry_tool"]["packets"] == len(tt_sent) and m["telemetry_tool"]["malformed"] == 40
    assert m["telemetry_tool"]["bytes"] == sum(map(len, tt_sent))
    assert m["pcars"]["packets"] == len(pc) and m["ksudp"]["packets"] == len(got["ksudp"])

    h5_path = tmp_path / "data" / rec_id / "data.h5"
    with h5py.File(h5_path, "r") as f:
        assert f["telemetry_tool/tt_driver/t_ns"].shape == (500,)
        assert f["telemetry_tool/tt_driver/rows"]["packet_id"].tolist() == list(range(7, 507))
        assert json.loads(f["telemetry_tool/tt_driver/rows"].attrs["units"])["speed_kmh"] == "km/h"
        assert f["pcars/pcars1_telemetry/rows"]["sBuildVersionNumber"].tolist() == [1122]
        assert f["pcars/pcars1_participant_strings/t_ns"].shape == (1,)
        assert f["pcars/pcars2_telemetry_559/t_ns"].shape == (30,)
        assert f["pcars/canonical/gear"].shape == (31,)
        assert f["ksudp/ac_car_info/t_ns"].shape[0] == sum(len(p) == 328 for p in got["ksudp"])
        assert np.allclose(f["ksudp/canonical/speed_kmh"][:], 108.0)
        assert (np.diff(f["pcars/canonical/t_ns"][:]) >= 0).all()
    assert agrees_with_raw(h5_path.parent, P)

    # a range of the raw file, and the list / get / delete round
    status, headers, part = download(srv, rec_id, "pcars", {"Range": "bytes=8-19"})
    assert status == 206 and headers["Content-Range"].startswith("bytes 8-19/") and len(part) == 12
    status, _, part = download(srv, rec_id, "pcars", {"Range": "bytes=-5"})
    assert status == 206 and part == pc[-1][-5:]
    status, body = srv.call("GET", f"/api/recordings/{rec_id}/data/pcars", headers={"Range": "bytes=999999999-"})
    assert status == 416 and body["error"]["code"] == "range_not_satisfiable"
    assert [r["id"] for r in srv.get("/api/recordings")[1]] == [rec_id]
    assert srv.get(f"/api/recordings/{rec_id}")[1]["feeds"] == stopped["feeds"]
    assert srv.call("DELETE", f"/api/recordings/{rec_id}") == (204, None)
    assert not h5_path.parent.exists()
    assert srv.get(f"/api/recordings/{rec_id}")[0] == 404


def test_recordings_take_game_track_and_car_from_the_feeds_unless_the_client_named_them(server_factory):
    ac = AcServer(sim_source("ac", ScriptedSim(), rate_hz=300), "127.0.0.1", 0).start()
    try:
        srv = server_factory(RUSTY_TELEMETRY_KSUDP_PORT=str(ac.port))
        wait_until(lambda: live_feeds(srv)["ksudp"]["health"] == "healthy", timeout=10)
        named = lambda rec_id: (m := srv.get(f"/api/recordings/{rec_id}")[1])["car"] and m  # noqa: E731
        status, rec = srv.call("POST", "/api/recordings", {"name": "unnamed"})
        assert status == 201 and (rec["game"], rec["track"], rec["car"]) == (None, None, None)
        # The handshake named them before the recording started; the manifest is rewritten at syncs.
        got = wait_until(lambda: named(rec["id"]), timeout=5)
        assert (got["game"], got["track"], got["car"]) == ("assetto_corsa", "rt_test_ring", "rt_sim_gt")
        srv.call("POST", "/api/recordings/stop")
        status, rec = srv.call("POST", "/api/recordings", {"name": "mine", "car": "my own car", "game": "assetto_corsa"})
        assert status == 201
        got = wait_until(lambda: (m := srv.get(f"/api/recordings/{rec['id']}")[1])["track"] and m, timeout=5)
        assert (got["game"], got["track"], got["car"]) == ("assetto_corsa", "rt_test_ring", "my own car")
        status, stopped = srv.call("POST", "/api/recordings/stop")
        assert stopped["car"] == "my own car" and stopped["track"] == "rt_test_ring"
    finally:
        ac.stop()


def test_recording_api_errors(server_factory):
    srv = server_factory()
    status, body = srv.call("POST", "/api/recordings", {"game": "gran_turismo"})
    assert status == 422 and body["error"]["code"] == "unknown_game" and "assetto_corsa" in body["error"]["message"]
    assert srv.call("POST", "/api/recordings", {"use_case": "drifting"})[1]["error"]["code"] == "unknown_use_case"
    assert srv.call("POST", "/api/recordings", {"name": 5})[0] == 400
    status, _, data = srv.request("POST", "/api/recordings", raw=b"{not json")
    assert status == 400 and b"malformed_json" in data
    assert srv.call("POST", "/api/recordings", [1, 2])[0] == 400
    assert srv.call("POST", "/api/recordings/stop")[0] == 409
    status, rec = srv.call("POST", "/api/recordings", None)  # empty body: every field is optional
    assert status == 201 and rec["name"]
    status, body = srv.call("POST", "/api/recordings", {})
    assert status == 409 and body["error"]["code"] == "recording_conflict"
    assert srv.call("DELETE", f"/api/recordings/{rec['id']}")[0] == 409  # still being written
    for bad in ("../../etc/passwd", "..%2F..%2Fetc", "not-a-uuid", str(uuid.uuid4())):
        assert srv.get(f"/api/recordings/{bad}")[0] == 404
    for feed in ("..%2Fmanifest.json", "manifest.json", "data.h5", "iracing", "%00"):
        status, body = srv.call("GET", f"/api/recordings/{rec['id']}/data/{feed}")
        assert status == 404 and body["error"]["code"] in ("feed_not_found", "not_found"), feed
    assert srv.call("POST", f"/api/recordings/{uuid.uuid4()}/stop")[0] == 404
    assert srv.call("POST", f"/api/recordings/{rec['id']}/stop")[0] == 200
    assert srv.call("POST", f"/api/recordings/{rec['id']}/stop")[0] == 409


def test_sigkill_mid_recording_leaves_an_interrupted_readable_recording(server_factory, tmp_path):
    srv = server_factory()
    port = live_feeds(srv)["telemetry_tool"]["port"]
    status, rec = srv.call("POST", "/api/recordings", {"name": "crash"})
    rec_dir = tmp_path / "data" / rec["id"]
    sender = PushSender(sim_source("tt", ScriptedSim(), rate_hz=4000), "127.0.0.1", port).start()
    try:
        # Killed mid-stream, once a sync has made a few thousand datagrams durable (awaited, so a
        # slow machine only takes longer).
        wait_until(lambda: synced_packets(rec_dir, "telemetry_tool") > 3000, timeout=30)
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
    finally:
        sender.stop()
    synced = synced_packets(rec_dir, "telemetry_tool")  # the last sync before the kill
    assert rawfile.read(rec_dir / "telemetry_tool.bin")  # readable as it was left
    srv2 = server_factory()  # same data directory
    status, m = srv2.get(f"/api/recordings/{rec['id']}")
    assert status == 200 and m["status"] == "interrupted" and m["stopped_at"]
    status, _, body = download(srv2, rec["id"], "telemetry_tool")
    t_ns, offsets, lengths, end = rawfile.parse(body)
    assert end == len(body) and (lengths == 357).all()
    ids = np.array([int.from_bytes(body[o + 1 : o + 5], "little") for o in offsets.tolist()])
    assert (np.diff(ids) == 1).all()  # nothing missing in the middle, nothing torn
    # Everything the last sync counted survived, and the repaired manifest counts what is there.
    assert m["feeds"]["telemetry_tool"]["packets"] == len(t_ns) >= synced > 3000
    assert agrees_with_raw(rec_dir, P)
    with h5py.File(rec_dir / "data.h5", "r") as f:
        assert f["telemetry_tool/tt_driver/rows"]["packet_id"].tolist() == ids.tolist()


def _recording(tmp_path, name: str, **options):
    """A recording started on a RecordingManager of its own (no server), and a Telemetry Tool feed."""
    mgr = RecordingManager(tmp_path, P, min_free_mb=0, **options)
    mgr.open()
    rec = mgr.start({"name": name})
    return mgr, tmp_path / rec["id"], Feed("telemetry_tool", 0, P, None)


def _tt_batch(first: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` Telemetry Tool datagrams numbered from ``first`` as the receive path hands them to a
    sink: receive times (ns), lengths, and one slot per datagram."""
    rows = tt_driver(ScriptedSim().step_block(n), first)
    slots = np.frombuffer(rows.tobytes(), dtype=np.uint8).reshape(n, 357).copy()
    return np.arange(first, first + n, dtype=np.int64) * 3_000_000 + 10**9, np.full(n, 357, dtype=np.uint32), slots


def test_a_sync_every_interval_makes_what_was_recorded_durable(tmp_path):
    # The promise behind the kill tests: the consumer syncs once sync_s has passed since the last
    # sync (not before), and a sync fsyncs the raw file and then rewrites the manifest to count it.
    # (A second here rather than the default SYNC_S: the interval is the same code at any length.)
    mgr, rec_dir, feed = _recording(tmp_path, "sync", sync_s=1.0)
    assert RecordingManager(tmp_path, P).sync_s == SYNC_S
    t_ns, lengths, slots = _tt_batch(1, 500)
    act = mgr.active
    started = act.last_sync  # the interval counts from the start
    mgr.on_raw(feed, t_ns, lengths, slots, 0)
    mgr.tick()
    if time.monotonic() - started < mgr.sync_s:  # (unless this thread was paused for that long)
        assert act.last_sync == started  # the interval is not up: no sync yet
    time.sleep(max(0.0, mgr.sync_s - (time.monotonic() - started)))  # the interval itself is under test
    mgr.tick()
    assert act.last_sync > started
    wait_until(lambda: synced_packets(rec_dir, "telemetry_tool") == 500)
    assert rawfile.read(rec_dir / "telemetry_tool.bin")[0].size == 500
    mgr.stop()


def test_syncs_make_the_raw_files_durable_and_leave_hdf5_to_its_long_interval(tmp_path):
    # A sync fsyncs the raw files and rewrites the manifest; flushing data.h5 (all its datasets'
    # metadata) waits for H5_FLUSH_S or the stop: a crash before it is repaired from the raw files.
    mgr, rec_dir, feed = _recording(tmp_path, "h5 interval")
    layout = P["tt_driver"]
    decoder = Decoder(layout)
    h5_size = (rec_dir / "data.h5").stat().st_size
    sent = 0
    for batch in range(3):
        t_ns, lengths, slots = _tt_batch(sent, 200)
        mgr.on_raw(feed, t_ns, lengths, slots, 0)
        columns = RowColumns(decoder.rows(slots.reshape(-1), np.arange(200, dtype=np.int64) * 357))
        mgr.on_decoded(feed, layout, columns, t_ns, to_canonical(layout.name, columns, t_ns))
        sent += 200
        act = mgr.active
        wait_until(lambda: act.durable is None or act.durable.done())  # one fsync at a time
        mgr.sync()
        wait_until(lambda: synced_packets(rec_dir, "telemetry_tool") == sent)
    assert rawfile.read(rec_dir / "telemetry_tool.bin")[0].size == sent
    assert (rec_dir / "data.h5").stat().st_size == h5_size  # not flushed by the syncs
    frames, _ = mgr.read_frames(rec_dir.name, "telemetry_tool", 0, None)  # a reader sees it all
    assert len(frames) == sent
    mgr.stop()
    assert agrees_with_raw(rec_dir, P)
    with h5py.File(rec_dir / "data.h5", "r") as f:
        assert f["telemetry_tool/tt_driver/rows"].shape[0] == sent


def _fill_until_stopped(srv, rate_hz: float) -> tuple[dict, dict]:
    """Record Telemetry Tool datagrams at ``rate_hz`` until the server stops the recording itself."""
    status, rec = srv.call("POST", "/api/recordings", {"name": "fills the disk"})
    assert status == 201
    return _fill_until_stopped_again(srv, rec, rate_hz)


def _fill_until_stopped_again(srv, rec: dict, rate_hz: float) -> tuple[dict, dict]:
    port = live_feeds(srv)["telemetry_tool"]["port"]
    sender = PushSender(sim_source("tt", ScriptedSim(), rate_hz=rate_hz), "127.0.0.1", port).start()
    try:
        live = wait_until(lambda: (b := srv.get("/api/live")[1])["recording"] is None and b, timeout=40)
    finally:
        sender.stop()
    return rec, live


def _check_clean_stop(srv, rec: dict, live: dict, words: tuple[str, ...]) -> None:
    err = live["recording_error"]
    assert err["id"] == rec["id"] and err["status"] == "stopped"
    assert any(w in err["error"].lower() for w in words), err["error"]
    assert live["feeds"]["telemetry_tool"]["health"] in ("healthy", "stale")  # the feed lives on
    status, m = srv.get(f"/api/recordings/{rec['id']}")
    # (after a raw write error a recount may add a hint to the error meanwhile)
    assert status == 200 and m["status"] == "stopped" and m["error"].startswith(err["error"])
    status, _, body = download(srv, rec["id"], "telemetry_tool")
    t_ns, offsets, lengths, end = rawfile.parse(body)
    assert status == 200 and end == len(body) and len(t_ns) > 1000 and (lengths == 357).all()
    ids = np.array([int.from_bytes(body[o + 1 : o + 5], "little") for o in offsets.tolist()])
    assert (np.diff(ids) == 1).all()  # everything written is intact and in order
    assert srv.get("/api/recordings")[0] == 200


def test_disk_running_full_stops_the_recording_before_it_is_full(server_factory, tmp_path):
    small = tmp_path / "small"  # an 8 MiB disk of the server's own (rigs.Server: no root needed)
    srv = server_factory(tmpfs=(small, "size=8m"), RUSTY_TELEMETRY_DATA_DIR=str(small / "data"),
                         RUSTY_TELEMETRY_MIN_FREE_MB="2")
    rec, live = _fill_until_stopped(srv, 6000)
    _check_clean_stop(srv, rec, live, ("disk nearly full",))
    with h5py.File(srv.outside(small / "data" / rec["id"] / "data.h5"), "r") as f:  # closed cleanly, readable
        assert f.attrs["recording_id"] == rec["id"]
    # a new recording starts while MIN_FREE_MB is still free, and its guard stops it again in time
    status, body = srv.call("POST", "/api/recordings", {"name": "again"})
    assert status == 201
    rec2, live2 = _fill_until_stopped_again(srv, body, 6000)
    assert "disk nearly full" in live2["recording_error"]["error"]
    code, log = srv.stop()
    assert code == 0 and "Traceback" not in log


def test_write_error_stops_the_recording_and_keeps_what_was_written(server_factory, tmp_path):
    # The server's files are capped at 3 MiB (RLIMIT_FSIZE): the raw file's next write fails with
    # EFBIG, as a failing disk would fail it.
    srv = server_factory(RT_TEST_FSIZE_LIMIT=str(3 << 20))
    rec, live = _fill_until_stopped(srv, 6000)
    _check_clean_stop(srv, rec, live, ("too large",))
    # Raw batches queued behind the failed write were counted (and decoded): the server recounts
    # them from the raw file in the background, and says that `recover` rebuilds data.h5.
    raw = tmp_path / "data" / rec["id"] / "telemetry_tool.bin"
    t_ns, _, _, _ = rawfile.parse(raw.read_bytes())
    m = wait_until(lambda: (m := srv.get(f"/api/recordings/{rec['id']}")[1])["feeds"]["telemetry_tool"]["packets"]
                   == len(t_ns) and m)
    assert "too large" in m["error"] and f"rusty-telemetry recover {rec['id']}" in m["error"]
    status, _ = srv.call("POST", "/api/recordings", {"name": "again"})
    assert status == 201  # a new recording starts in new files
    code, log = srv.stop()
    assert code == 0
    env = dict(os.environ, RUSTY_TELEMETRY_DATA_DIR=str(tmp_path / "data"))
    out = subprocess.run([sys.executable, "-m", "rt", "recover", rec["id"]], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert agrees_with_raw(raw.parent, P)


def test_recover_and_redecode_commands(server_factory, tmp_path):
    srv = server_factory()
    port = live_feeds(srv)["telemetry_tool"]["port"]
    _, rec = srv.call("POST", "/api/recordings", {})
    send(port, [row.tobytes() for row in tt_driver(ScriptedSim().step_block(100), 0)])
    wait_until(lambda: srv.get(f"/api/recordings/{rec['id']}")[1]["feeds"]["telemetry_tool"]["packets"] == 100)
    srv.call("POST", "/api/recordings/stop")
    srv.stop()
    rec_dir = tmp_path / "data" / rec["id"]
    (rec_dir / "data.h5").write_bytes(b"broken")  # e.g. a half-written file
    with open(rec_dir / "telemetry_tool.bin", "ab") as fh:
        fh.write(b"\x01\x02\x03")  # a torn record
    env = dict(os.environ, RUSTY_TELEMETRY_DATA_DIR=str(tmp_path / "data"))
    out = subprocess.run([sys.executable, "-m", "rt", "recover", rec["id"]], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "telemetry_tool 100 datagrams" in out.stdout
    assert agrees_with_raw(rec_dir, P)
    out = subprocess.run([sys.executable, "-m", "rt", "redecode", rec["id"]], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "rebuilt" in out.stdout
    with h5py.File(rec_dir / "data.h5", "r") as f:
        assert f["telemetry_tool/tt_driver/rows"]["packet_id"].tolist() == list(range(100))
    out = subprocess.run([sys.executable, "-m", "rt", "redecode", "../etc"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "not a recording id" in out.stderr


def test_stop_decodes_what_raw_passes_took_and_takes_nothing_after(tmp_path):
    # Raw passes hand the recorder raw batches it has not had decoded yet (the consumer decodes
    # every PASS_S or so). A stop stops taking raw batches, then lets the consumer decode the ones
    # taken (``settle``) before closing: data.h5 holds every datagram of the raw file, and what
    # arrived after the stop is in neither.
    feed = Feed("telemetry_tool", 0, P, None)
    late = 0

    def settle() -> bool:
        nonlocal late
        t_ns, lengths, slots = _tt_batch(600, 50)  # arrives while the stop waits
        for t, row in zip(t_ns.tolist(), slots):
            feed.ring.push_bytes(t, row)
        late = feed.take_raw(sinks)
        feed.consume(sinks)
        return True

    mgr = RecordingManager(tmp_path, P, min_free_mb=0, settle=settle)
    sinks = [mgr]
    mgr.open()
    rec_dir = tmp_path / mgr.start({"name": "settled"})["id"]
    for first in (0, 200, 400):  # three raw passes, no decoding pass
        t_ns, lengths, slots = _tt_batch(first, 200)
        for t, row in zip(t_ns.tolist(), slots):
            feed.ring.push_bytes(t, row)
        assert feed.take_raw(sinks) == 200
    mgr.stop()
    assert late == 50
    t_raw, _ = rawfile.read(rec_dir / "telemetry_tool.bin")
    assert t_raw.tolist() == _tt_batch(0, 600)[0].tolist()
    assert agrees_with_raw(rec_dir, P)
    with h5py.File(rec_dir / "data.h5", "r") as f:
        assert f["telemetry_tool/tt_driver/t_ns"][:].tolist() == t_raw.tolist()


def test_a_recording_stopped_by_an_error_never_lends_its_raw_batches_to_the_next(tmp_path):
    # A write error stops a recording on the consumer thread, which cannot wait for itself to
    # decode what it took raw for it. Those batches must not be decoded into the next recording's
    # data.h5 (its raw files do not have them): the next start lets the consumer settle first.
    feed = Feed("telemetry_tool", 0, P, None)

    def push_and_take(first: int, n: int) -> None:
        t_ns, _, slots = _tt_batch(first, n)
        for t, row in zip(t_ns.tolist(), slots):
            feed.ring.push_bytes(t, row)
        assert feed.take_raw([mgr]) == n

    mgr = RecordingManager(tmp_path, P, min_free_mb=0, settle=lambda: feed.consume([mgr]) >= 0)
    mgr.open()
    first = tmp_path / mgr.start({"name": "fails"})["id"]
    push_and_take(0, 100)
    with mgr.lock:
        mgr._fail(StoreError("disk on fire"))  # as a failed write does, under the lock
    assert mgr.get(first.name)["error"] == "disk on fire"
    second = tmp_path / mgr.start({"name": "next"})["id"]
    push_and_take(100, 100)
    mgr.stop()
    t_raw, _ = rawfile.read(second / "telemetry_tool.bin")
    assert t_raw.tolist() == _tt_batch(100, 100)[0].tolist()
    assert agrees_with_raw(second, P)
    with h5py.File(second / "data.h5", "r") as f:
        assert f["telemetry_tool/tt_driver/t_ns"][:].tolist() == t_raw.tolist()


def test_the_live_summary_answers_while_the_recorder_is_busy(tmp_path):
    # The consumer holds the recorder's lock while it waits for an HDF5 append (10-20 ms at game
    # rates); /api/live's recording summary waited with it, and made its p99.
    mgr, rec_dir, _ = _recording(tmp_path, "busy")
    held, release = threading.Event(), threading.Event()

    def busy_recorder() -> None:
        with mgr.lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=busy_recorder)
    holder.start()
    try:
        assert held.wait(10)
        answers = []
        reader = threading.Thread(target=lambda: answers.append(mgr.live_summary()))
        reader.start()
        reader.join(10)  # a guard against hanging the suite, not a timing
        assert answers == [{"id": rec_dir.name, "name": "busy", "status": "recording"}]
    finally:
        release.set()
        holder.join()
    assert mgr.summary() == answers[0]  # the same, once the recorder lets go
    mgr.stop()
    assert mgr.live_summary() is None and mgr.summary() is None
