"""Faults: repeated kills mid-recording, and a read-only data disk."""

from __future__ import annotations

import os
import random
import signal
import time

import numpy as np

from rigs import ScriptedSim, synced_packets, wait_until
from rt.protocols import default_protocols
from rt.sim.game import PushSender, sim_source
from rt.store import rawfile
from rt.store.h5store import agrees_with_raw

P = default_protocols()


def test_repeated_sigkill_at_random_moments_leaves_every_recording_readable(server_factory, tmp_path):
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"seed {seed}")  # shown with a failure: random.Random(seed) replays its kill moments
    rng = random.Random(seed)
    kills = []
    for cycle in range(3):
        # Syncs every half second, so the random moments below fall after some of them: what
        # they made durable is what the kill must not lose.
        srv = server_factory(RUSTY_TELEMETRY_SYNC_S="0.5")
        port = srv.get("/api/live")[1]["feeds"]["telemetry_tool"]["port"]
        status, rec = srv.call("POST", "/api/recordings", {"name": f"kill {cycle}"})
        assert status == 201, (seed, rec)
        sender = PushSender(sim_source("tt", ScriptedSim(), rate_hz=3000), "127.0.0.1", port).start()
        try:
            time.sleep(rng.uniform(0.3, 2.0))  # a random moment is the point of this test
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait()
        finally:
            sender.stop()
        # What the last sync before the kill made durable (its manifest is the newest on disk).
        kills.append((rec["id"], synced_packets(tmp_path / "data" / rec["id"], "telemetry_tool")))
    srv = server_factory()  # the next start repairs all three
    listed = {r["id"]: r for r in srv.get("/api/recordings")[1]}
    for rec_id, synced in kills:
        m = listed[rec_id]
        assert m["status"] == "interrupted", (seed, m)
        rec_dir = tmp_path / "data" / rec_id
        data = (rec_dir / "telemetry_tool.bin").read_bytes()
        t_ns, offsets, lengths, end = rawfile.parse(data)
        assert end == len(data) and (lengths == 357).all(), seed
        ids = np.array([int.from_bytes(data[o + 1 : o + 5], "little") for o in offsets.tolist()])
        assert len(ids) == 0 or (np.diff(ids) == 1).all(), seed
        # Whatever the moment, nothing the last sync counted is lost (the README's promise: a
        # sync every sync_s, checked in test_recordings.py, so at most what came after it).
        assert len(t_ns) >= synced, (seed, len(t_ns), synced)
        assert agrees_with_raw(rec_dir, P), seed
        assert m["feeds"]["telemetry_tool"]["packets"] == len(t_ns)


def test_read_only_data_disk_gets_clear_errors_and_ingest_goes_on(server_factory, tmp_path):
    ro = tmp_path / "ro"  # a read-only disk of the server's own (rigs.Server: no root needed)
    srv = server_factory(tmpfs=(ro, "ro,size=1m"), RUSTY_TELEMETRY_DATA_DIR=str(ro), RUSTY_TELEMETRY_MIN_FREE_MB="0")
    status, body = srv.call("POST", "/api/recordings", {"name": "nowhere"})
    assert status == 507 and body["error"]["code"] == "storage_error" and "Read-only" in body["error"]["message"]
    status, body = srv.call("POST", "/api/sessions", {"use_case": "general"})
    assert status == 507 and body["error"]["code"] == "storage_error"
    assert srv.get("/api/sessions") == (200, [])
    port = srv.get("/api/live")[1]["feeds"]["telemetry_tool"]["port"]
    sender = PushSender(sim_source("tt", ScriptedSim(), rate_hz=200), "127.0.0.1", port).start()
    try:
        wait_until(lambda: srv.get("/api/live")[1]["feeds"]["telemetry_tool"]["health"] == "healthy")
    finally:
        sender.stop()
    code, log = srv.stop()
    assert code == 0 and "Traceback" not in log
