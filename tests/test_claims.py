"""README claims that had no test of their own: CORS from the environment, Range while recording,
``complete`` and the session's own recording, runs after a crash, a corrected Telemetry Tool table
with ``redecode``, the legacy BIND fallback, and ``stale`` feed health."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import h5py
import pytest

from rigs import ScriptedSim, wait_until
from rt.config import load
from rt.errors import ConfigError
from rt.sim.game import tt_driver
from rt.store import rawfile


def live(srv) -> dict:
    return srv.get("/api/live")[1]


def tt_payloads(n: int, first_id: int = 0) -> list[bytes]:
    return [row.tobytes() for row in tt_driver(ScriptedSim().step_block(n), first_id)]


def send_tt(srv, payloads: list[bytes], host: str = "127.0.0.1") -> None:
    port = live(srv)["feeds"]["telemetry_tool"]["port"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for p in payloads:
            out.sendto(p, (host, port))


def tt_packets(srv) -> int:
    return live(srv)["feeds"]["telemetry_tool"]["packets"]


# ---- 1. CORS origins from the environment, and * ------------------------------------------------

def preflight(srv, origin: str):
    return srv.request("OPTIONS", "/api/recordings", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})


def test_cors_origins_come_from_the_environment(server_factory):
    mine, other = "http://racecraft.example:3000", "https://pit.example"
    srv = server_factory(RUSTY_TELEMETRY_CORS_ORIGINS=f"{mine}, {other}")
    for origin in (mine, other):
        status, headers, _ = preflight(srv, origin)
        assert status == 204 and headers["Access-Control-Allow-Origin"] == origin
        assert "POST" in headers["Access-Control-Allow-Methods"]
        status, headers, _ = srv.request("GET", "/api/live", headers={"Origin": origin})
        assert status == 200 and headers["Access-Control-Allow-Origin"] == origin
    # The default origins are replaced, not added to; any other origin gets no CORS headers at all.
    for stranger in ("http://localhost:5173", "http://evil.example", "http://racecraft.example:3001"):
        status, headers, _ = preflight(srv, stranger)
        assert not [h for h in headers if h.lower().startswith("access-control-")], (stranger, dict(headers))
        status, headers, _ = srv.request("GET", "/api/live", headers={"Origin": stranger})
        assert status == 200
        assert not [h for h in headers if h.lower().startswith("access-control-")], (stranger, dict(headers))


def test_cors_star_allows_any_origin(server_factory):
    srv = server_factory(RUSTY_TELEMETRY_CORS_ORIGINS="*")
    for origin in ("http://anything.example:1234", "https://racecraft.example", "http://10.0.0.7:5173"):
        status, headers, _ = preflight(srv, origin)
        assert status == 204 and headers["Access-Control-Allow-Origin"] in (origin, "*")
        assert "POST" in headers["Access-Control-Allow-Methods"]
        assert "Content-Type" in headers["Access-Control-Allow-Headers"]
        status, headers, _ = srv.request("GET", "/api/recordings", headers={"Origin": origin})
        assert status == 200 and headers["Access-Control-Allow-Origin"] in (origin, "*")


# ---- 2. Range on the raw download while the recording is being written -------------------------

def test_range_download_while_the_recording_is_being_written(server_factory):
    srv = server_factory()
    status, rec = srv.call("POST", "/api/recordings", {"name": "range while recording"})
    assert status == 201 and rec["status"] == "recording"
    sent = tt_payloads(300, 11)
    send_tt(srv, sent)
    size = len(rawfile.MAGIC) + sum(8 + 4 + len(p) for p in sent)  # magic, then u64 time | u32 length | payload
    path = f"/api/recordings/{rec['id']}/data/telemetry_tool"

    def written():
        status, headers, body = srv.request("GET", path)
        return status == 200 and len(body) == size and body

    during = wait_until(written, timeout=10)
    assert srv.get(f"/api/recordings/{rec['id']}")[1]["status"] == "recording"  # still being written
    status, headers, part = srv.request("GET", path, headers={"Range": "bytes=8-19"})
    assert status == 206 and headers["Content-Range"] == f"bytes 8-19/{size}" and part == during[8:20]
    status, headers, part = srv.request("GET", path, headers={"Range": "bytes=100-"})
    assert status == 206 and headers["Content-Range"] == f"bytes 100-{size - 1}/{size}" and part == during[100:]
    status, headers, part = srv.request("GET", path, headers={"Range": "bytes=-5"})
    assert status == 206 and part == sent[-1][-5:]
    status, headers, body = srv.request("GET", path, headers={"Range": f"bytes={size}-"})
    assert status == 416 and json.loads(body)["error"]["code"] == "range_not_satisfiable"
    assert headers["Content-Range"] == f"bytes */{size}"
    assert srv.get(f"/api/recordings/{rec['id']}")[1]["status"] == "recording"

    status, stopped = srv.call("POST", "/api/recordings/stop")
    assert status == 200 and stopped["status"] == "stopped"
    status, _, full = srv.request("GET", path)
    assert status == 200 and full == during  # the live bytes are the final file's
    t_ns, offsets, lengths, end = rawfile.parse(full)
    assert end == len(full) and [full[o:o + n] for o, n in zip(offsets.tolist(), lengths.tolist())] == sent


# ---- 3. complete stops the recording the session started (if nobody else records into it) ------

def test_complete_stops_the_recording_the_session_started_unless_another_run_records_into_it(server_factory):
    srv = server_factory()
    a = srv.call("POST", "/api/sessions", {"use_case": "general", "label": "a"})[1]
    b = srv.call("POST", "/api/sessions", {"use_case": "general", "label": "b"})[1]
    status, run_a = srv.call("POST", f"/api/sessions/{a['id']}/runs", {"feed_name": "telemetry_tool"})
    assert status == 201 and run_a["status"] == "recording"
    rec_id = run_a["recording_id"]
    assert live(srv)["recording"]["id"] == rec_id  # the run started it
    status, run_b = srv.call("POST", f"/api/sessions/{b['id']}/runs", {"feed_name": "telemetry_tool"})
    assert status == 201 and run_b["recording_id"] == rec_id  # joins the active recording
    send_tt(srv, tt_payloads(200))
    wait_until(lambda: srv.get(f"/api/sessions/{a['id']}")[1]["runs"][0]["frame_count"] == 200, timeout=10)

    # b's run still records into it: completing a leaves it recording
    status, done = srv.call("POST", f"/api/sessions/{a['id']}/complete")
    assert status == 200 and done["status"] == "completed" and done["runs"][0]["status"] == "stopped"
    assert srv.get(f"/api/recordings/{rec_id}")[1]["status"] == "recording"
    assert live(srv)["recording"]["id"] == rec_id

    # b did not start it: completing b leaves it recording too; a no longer holds it either, but
    # nobody records into it now, so reopening and completing a stops it
    status, done = srv.call("POST", f"/api/sessions/{b['id']}/complete")
    assert status == 200 and done["runs"][0]["status"] == "stopped"
    assert srv.get(f"/api/recordings/{rec_id}")[1]["status"] == "recording"
    assert srv.call("POST", f"/api/sessions/{a['id']}/reopen")[0] == 200
    status, done = srv.call("POST", f"/api/sessions/{a['id']}/complete")
    assert status == 200
    rec = srv.get(f"/api/recordings/{rec_id}")[1]
    assert rec["status"] == "stopped" and rec["stopped_at"]
    assert live(srv)["recording"] is None


def test_complete_stops_the_recording_its_run_started(server_factory):
    srv = server_factory()
    s = srv.call("POST", "/api/sessions", {"use_case": "general"})[1]
    status, run = srv.call("POST", f"/api/sessions/{s['id']}/runs", {"feed_name": "telemetry_tool"})
    assert status == 201
    assert srv.get(f"/api/recordings/{run['recording_id']}")[1]["status"] == "recording"
    send_tt(srv, tt_payloads(150))
    wait_until(lambda: srv.get(f"/api/sessions/{s['id']}")[1]["runs"][0]["frame_count"] == 150, timeout=10)
    status, done = srv.call("POST", f"/api/sessions/{s['id']}/complete")
    assert status == 200 and done["status"] == "completed" and done["analysis"]["frames"] == 150
    rec = srv.get(f"/api/recordings/{run['recording_id']}")[1]
    assert rec["status"] == "stopped" and rec["feeds"]["telemetry_tool"]["packets"] == 150
    assert live(srv)["recording"] is None


def test_complete_leaves_a_recording_the_session_did_not_start(server_factory):
    srv = server_factory()
    rec = srv.call("POST", "/api/recordings", {"name": "the client's own"})[1]
    s = srv.call("POST", "/api/sessions", {"use_case": "general"})[1]
    run = srv.call("POST", f"/api/sessions/{s['id']}/runs", {"feed_name": "telemetry_tool"})[1]
    assert run["recording_id"] == rec["id"]
    send_tt(srv, tt_payloads(100))
    wait_until(lambda: srv.get(f"/api/sessions/{s['id']}")[1]["runs"][0]["frame_count"] == 100, timeout=10)
    assert srv.call("POST", f"/api/sessions/{s['id']}/complete")[0] == 200
    assert srv.get(f"/api/recordings/{rec['id']}")[1]["status"] == "recording"


# ---- 4. a run recording when the process died comes back stopped at the last sync --------------

def test_run_recording_when_the_process_died_comes_back_stopped(server_factory, tmp_path):
    srv = server_factory()
    s = srv.call("POST", "/api/sessions", {"use_case": "general", "label": "crash"})[1]
    status, run = srv.call("POST", f"/api/sessions/{s['id']}/runs", {"feed_name": "telemetry_tool"})
    assert status == 201 and run["status"] == "recording" and run["start_marker"] == 0
    rec_id = run["recording_id"]
    send_tt(srv, tt_payloads(250))
    manifest = tmp_path / "data" / rec_id / "manifest.json"

    def synced():  # a sync wrote the manifest with every datagram in it
        try:
            doc = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return False
        return doc.get("feeds", {}).get("telemetry_tool", {}).get("packets") == 250

    wait_until(synced, timeout=10)
    session_file = tmp_path / "data" / "sessions" / f"{s['id']}.json"
    assert json.loads(session_file.read_text())["runs"][0]["status"] == "recording"
    srv.proc.kill()
    srv.proc.wait()

    srv2 = server_factory(RUSTY_TELEMETRY_DATA_DIR=str(tmp_path / "data"))
    status, session = srv2.get(f"/api/sessions/{s['id']}")
    assert status == 200
    (back,) = session["runs"]
    assert back["id"] == run["id"] and back["status"] == "stopped" and back["stopped_at"]
    assert back["start_marker"] == 0 and back["end_marker"] == 250 and back["frame_count"] == 250
    assert back["data_truncated"] is True  # the recording stopped under it
    rec = srv2.get(f"/api/recordings/{rec_id}")[1]
    assert rec["status"] == "interrupted" and rec["feeds"]["telemetry_tool"]["packets"] == 250
    assert live(srv2)["recording"] is None
    with h5py.File(tmp_path / "data" / rec_id / "data.h5", "r") as f:
        assert f["telemetry_tool/canonical/t_ns"].shape == (250,)
    # and it is written back that way
    assert json.loads(session_file.read_text())["runs"][0]["status"] == "stopped"
    status, done = srv2.call("POST", f"/api/sessions/{s['id']}/complete")
    assert status == 200 and done["analysis"]["frames"] == 250


# ---- 5. RUSTY_TELEMETRY_TT_LAYOUT + rusty-telemetry redecode ID --------------------------------

def test_redecode_with_a_corrected_telemetry_tool_layout(server_factory, tmp_path):
    srv = server_factory()
    rec = srv.call("POST", "/api/recordings", {"name": "provisional table"})[1]
    sent = tt_payloads(120, 5)
    send_tt(srv, sent)
    wait_until(lambda: tt_packets(srv) == 120, timeout=10)
    assert srv.call("POST", "/api/recordings/stop")[1]["status"] == "stopped"
    assert srv.stop()[0] == 0
    h5_path = tmp_path / "data" / rec["id"] / "data.h5"
    with h5py.File(h5_path, "r") as f:
        rows = f["telemetry_tool/tt_driver/rows"]
        assert "tyre_wear" in rows.dtype.names and "tyre_wear_pct" not in rows.dtype.names
        wear_before = rows["tyre_wear"][:]
        speed_before = rows["speed_kmh"][:]
        assert json.loads(rows.attrs["units"])["tyre_wear"] == "0..100"

    from importlib import resources

    spec = json.loads(resources.files("rt.protocols").joinpath("data", "telemetry_tool_v1.json").read_text("utf-8"))
    renamed = 0
    for row in spec["fields"]:
        if row[2] == "tyre_wear":
            row[2] = "tyre_wear_pct"
            row[4] = "%"
            renamed += 1
    assert renamed == 1
    corrected = tmp_path / "tt_corrected.json"
    corrected.write_text(json.dumps(spec))

    env = dict(os.environ, RUSTY_TELEMETRY_DATA_DIR=str(tmp_path / "data"), RUSTY_TELEMETRY_TT_LAYOUT=str(corrected))
    out = subprocess.run([sys.executable, "-m", "rt", "redecode", rec["id"]], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "rebuilt" in out.stdout
    with h5py.File(h5_path, "r") as f:
        rows = f["telemetry_tool/tt_driver/rows"]
        assert "tyre_wear_pct" in rows.dtype.names and "tyre_wear" not in rows.dtype.names
        assert rows.shape == (120,)
        assert (rows["tyre_wear_pct"][:] == wear_before).all()
        assert (rows["speed_kmh"][:] == speed_before).all()
        assert json.loads(rows.attrs["units"])["tyre_wear_pct"] == "%"
        assert f["telemetry_tool/tt_driver/t_ns"].shape == (120,)

    # and a server started with it decodes live datagrams with the corrected table
    srv2 = server_factory(RUSTY_TELEMETRY_TT_LAYOUT=str(corrected))
    rec2 = srv2.call("POST", "/api/recordings", {"name": "corrected table"})[1]
    send_tt(srv2, sent[:10])
    wait_until(lambda: tt_packets(srv2) == 10, timeout=10)
    srv2.call("POST", "/api/recordings/stop")
    with h5py.File(tmp_path / "data" / rec2["id"] / "data.h5", "r") as f:
        assert "tyre_wear_pct" in f["telemetry_tool/tt_driver/rows"].dtype.names


# ---- 6. the legacy RUSTY_TELEMETRY_BIND fallback -----------------------------------------------

def test_bind_is_the_fallback_for_game_host_and_listen():
    cfg = load({"RUSTY_TELEMETRY_BIND": "192.168.1.50"})
    assert cfg.game_host == "192.168.1.50" and cfg.listen == "192.168.1.50"
    cfg = load({"RUSTY_TELEMETRY_BIND": "192.168.1.50", "RUSTY_TELEMETRY_GAME_HOST": "10.0.0.2"})
    assert cfg.game_host == "10.0.0.2" and cfg.listen == "192.168.1.50"
    cfg = load({"RUSTY_TELEMETRY_BIND": "192.168.1.50", "RUSTY_TELEMETRY_LISTEN": "127.0.0.1"})
    assert cfg.game_host == "192.168.1.50" and cfg.listen == "127.0.0.1"
    cfg = load({"RUSTY_TELEMETRY_BIND": "192.168.1.50", "RUSTY_TELEMETRY_GAME_HOST": "10.0.0.2",
                "RUSTY_TELEMETRY_LISTEN": "127.0.0.1"})
    assert cfg.game_host == "10.0.0.2" and cfg.listen == "127.0.0.1"
    cfg = load({})
    assert cfg.game_host == "127.0.0.1" and cfg.listen == "0.0.0.0"
    with pytest.raises(ConfigError, match="RUSTY_TELEMETRY_BIND"):
        load({"RUSTY_TELEMETRY_BIND": "not a host!"})


def test_bind_decides_where_a_real_server_listens(server_factory):
    # LISTEN empty = unset: the feeds bind to BIND's address.
    srv = server_factory(RUSTY_TELEMETRY_LISTEN="", RUSTY_TELEMETRY_BIND="127.0.0.2")
    send_tt(srv, tt_payloads(20), host="127.0.0.2")
    wait_until(lambda: tt_packets(srv) == 20, timeout=10)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # not bound on 127.0.0.1 as well
        probe.bind(("127.0.0.1", live(srv)["feeds"]["telemetry_tool"]["port"]))


# ---- 7. stale health ---------------------------------------------------------------------------

def test_a_feed_that_goes_quiet_is_stale_then_lost(server_factory):
    srv = server_factory()
    assert live(srv)["feeds"]["telemetry_tool"]["health"] == "waiting"
    send_tt(srv, tt_payloads(30))
    wait_until(lambda: tt_packets(srv) == 30, timeout=10)
    # Every answer's health agrees with the age it reports (both taken at the request), so how
    # fast this machine answers does not matter; quiet, the feed goes healthy → stale → lost.
    seen = []

    def observe(state: str):
        feed = live(srv)["feeds"]["telemetry_tool"]
        age = feed["last_packet_age_ms"]
        expected = "healthy" if age <= 500 else "stale" if age <= 3000 else "lost"
        assert feed["health"] == expected, feed
        if not seen or seen[-1] != feed["health"]:
            seen.append(feed["health"])
        return feed["health"] == state and feed

    wait_until(lambda: observe("stale"), timeout=20)
    wait_until(lambda: observe("lost"), timeout=20)
    assert seen[-2:] == ["stale", "lost"] and "healthy" not in seen[seen.index("stale"):], seen
    send_tt(srv, tt_payloads(1, 30))
    wait_until(lambda: live(srv)["feeds"]["telemetry_tool"]["health"] == "healthy", timeout=5)
