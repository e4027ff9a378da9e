"""The system clock stepping while the recorder runs (an NTP step, someone setting the time).

The step is real: the test sets CLOCK_REALTIME (root, as CI runs) a minute forward, then back to
where it belongs (a step backward), and puts it right in any case. Recorded times follow the
recorder's own clock, CLOCK_MONOTONIC anchored to the epoch when the server started, so neither
step may show in them: no jump, no going backwards, no gap, health ``healthy`` throughout.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

from rigs import ScriptedSim, wait_until
from rt.sim.game import PushSender, sim_source
from rt.store import rawfile
from rt.store.h5store import kind_counts

STEP_S = 60
RATE_HZ = 500


@contextmanager
def wall_clock_restored():
    """Undo any step of CLOCK_REALTIME made inside, to within microseconds (monotonic never steps)."""
    offset = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.monotonic_ns()
    try:
        yield
    finally:
        time.clock_settime_ns(time.CLOCK_REALTIME, time.monotonic_ns() + offset)


def step_wall_clock(seconds: float) -> None:
    time.clock_settime_ns(time.CLOCK_REALTIME, time.clock_gettime_ns(time.CLOCK_REALTIME) + int(seconds * 1e9))


def test_clock_steps_forward_and_back_do_not_show_in_recordings_or_health(server_factory, tmp_path):
    srv = server_factory()
    feed = srv.get("/api/live")[1]["feeds"]["telemetry_tool"]
    status, rec = srv.call("POST", "/api/recordings", {"name": "clock steps"})
    assert status == 201, rec
    sender = PushSender(sim_source("tt", ScriptedSim(), rate_hz=RATE_HZ), "127.0.0.1", feed["port"]).start()
    seen = []  # (health, last_packet_age_ms) after each step

    def healthy_and_moving(after: int) -> bool:
        live = srv.get("/api/live")[1]["feeds"]["telemetry_tool"]
        return live["packets"] > after + RATE_HZ // 4 and live["health"] == "healthy"

    t_start = time.monotonic()
    try:
        with wall_clock_restored():
            wait_until(lambda: healthy_and_moving(0))
            for step in (STEP_S, -STEP_S):
                before = srv.get("/api/live")[1]["feeds"]["telemetry_tool"]["packets"]
                step_wall_clock(step)
                wait_until(lambda: healthy_and_moving(before))
                live = srv.get("/api/live")[1]["feeds"]["telemetry_tool"]
                seen.append((live["health"], live["last_packet_age_ms"]))
    finally:
        sender.stop()
    elapsed_s = time.monotonic() - t_start
    wait_until(lambda: srv.get("/api/live")[1]["feeds"]["telemetry_tool"]["packets"] >= sender.sent)
    status, stopped = srv.call("POST", "/api/recordings/stop")
    assert status == 200, stopped

    for health, age_ms in seen:
        assert health == "healthy" and 0 <= age_ms < 1000, seen
    rec_dir = tmp_path / "data" / rec["id"]
    t_ns, _, _, _ = rawfile.parse((rec_dir / "telemetry_tool.bin").read_bytes())
    assert len(t_ns) == sender.sent
    steps_s = np.diff(t_ns) / 1e9
    # 500 Hz from a Python sender: steps of a few ms, never a minute, never backwards.
    assert steps_s.min() >= 0 and steps_s.max() < 0.5, (steps_s.min(), steps_s.max())
    assert (t_ns[-1] - t_ns[0]) / 1e9 < elapsed_s + 0.5
    assert kind_counts(rec_dir / "data.h5")[("telemetry_tool", "canonical")] == sender.sent
    assert abs(stopped["feeds"]["telemetry_tool"]["packets"] - sender.sent) == 0
