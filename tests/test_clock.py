"""The system clock stepping while the recorder runs (an NTP step, someone setting the time).

The step is real: the test sets CLOCK_REALTIME (it needs CAP_SYS_TIME: root) a minute
forward, then back to where it belongs (a step backward), and puts it right in any case. The
clock is the whole machine's, so the test is marked ``machine`` and runs only with
RT_TEST_MACHINE=1 (``.ci/run`` sets it, in CI's throw-away machine); nothing else that minds a
step should run beside it. Recorded times follow the recorder's own clock, CLOCK_MONOTONIC anchored to the epoch when the server started, so neither
step may show in them: no jump, no going backwards, no gap, health ``healthy`` throughout.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import pytest

from rigs import ScriptedSim, wait_until
from rt.sim.game import PushSender, sim_source
from rt.store import rawfile
from rt.store.h5store import kind_counts

STEP_S = 60
RATE_HZ = 3000
#: Long receive periods: each socket holds ~150 datagrams when it is read, more than one recvmmsg
#: takes, so a step lands with stamps of both sides waiting in two sockets at once.
RECV_PERIOD_MS = 50
FEEDS = {"telemetry_tool": "tt", "pcars": "pcars1"}


@contextmanager
def wall_clock_restored():
    """Undo any step of CLOCK_REALTIME made inside, to within microseconds (monotonic never steps)."""
    offset = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.monotonic_ns()
    try:
        yield
    finally:
        time.clock_settime_ns(time.CLOCK_REALTIME, time.monotonic_ns() + offset)


def step_wall_clock(seconds: float) -> None:
    try:
        time.clock_settime_ns(time.CLOCK_REALTIME, time.clock_gettime_ns(time.CLOCK_REALTIME) + int(seconds * 1e9))
    except PermissionError:
        pytest.fail("stepping the system clock needs CAP_SYS_TIME: run the machine tests as root (CI does)")


@pytest.mark.machine
def test_clock_steps_forward_and_back_do_not_show_in_recordings_or_health(server_factory, tmp_path):
    srv = server_factory(RUSTY_TELEMETRY_RECV_PERIOD_MS=str(RECV_PERIOD_MS))
    live = srv.get("/api/live")[1]["feeds"]
    status, rec = srv.call("POST", "/api/recordings", {"name": "clock steps"})
    assert status == 201, rec
    senders = {feed: PushSender(sim_source(game, ScriptedSim(), rate_hz=RATE_HZ), "127.0.0.1", live[feed]["port"]).start()
               for feed, game in FEEDS.items()}
    seen = []  # (feed, health, last_packet_age_ms) after each step

    def healthy_and_moving(after: dict) -> bool:
        live = srv.get("/api/live")[1]["feeds"]
        return all(live[f]["packets"] > after.get(f, 0) + RATE_HZ // 4 and live[f]["health"] == "healthy" for f in FEEDS)

    t_start = time.monotonic()
    try:
        with wall_clock_restored():
            wait_until(lambda: healthy_and_moving({}))
            for step in (STEP_S, -STEP_S):
                before = {f: v["packets"] for f, v in srv.get("/api/live")[1]["feeds"].items()}
                step_wall_clock(step)
                wait_until(lambda: healthy_and_moving(before))
                live = srv.get("/api/live")[1]["feeds"]
                seen += [(f, live[f]["health"], live[f]["last_packet_age_ms"]) for f in FEEDS]
    finally:
        for sender in senders.values():
            sender.stop()
    elapsed_s = time.monotonic() - t_start
    wait_until(lambda: all(srv.get("/api/live")[1]["feeds"][f]["packets"] >= s.sent for f, s in senders.items()))
    status, stopped = srv.call("POST", "/api/recordings/stop")
    assert status == 200, stopped

    for _, health, age_ms in seen:
        assert health == "healthy" and 0 <= age_ms < 1000, seen
    rec_dir = tmp_path / "data" / rec["id"]
    counts = kind_counts(rec_dir / "data.h5")
    for feed, sender in senders.items():
        t_ns, _, _, _ = rawfile.parse((rec_dir / f"{feed}.bin").read_bytes())
        assert len(t_ns) == sender.sent == stopped["feeds"][feed]["packets"], feed
        steps_s = np.diff(t_ns) / 1e9
        # A Python sender at 3 kHz: steps of a few ms, never a minute, never backwards.
        assert steps_s.min() >= 0 and steps_s.max() < 0.5, (feed, steps_s.min(), steps_s.max())
        assert (t_ns[-1] - t_ns[0]) / 1e9 < elapsed_s + 0.5, feed
        assert counts[(feed, "canonical")] == sender.sent, feed
