"""``rusty-telemetry serve`` as a whole process at game rates: CPU receiving and recording.

What a racer's PC pays beside the game: the server process's own CPU time (``/proc``), user and
system, while three simulators (``rusty-telemetry simulate``: AC with its handshake, the Telemetry
Tool app, PCARS 1, each at :data:`GAME_RATE` datagrams/s, in their own processes) feed it, over
:data:`WINDOW_S` seconds: first receiving only, then recording (raw files + ``data.h5``): its first
window and the one after it.

The peer, measured in the same run: three C ``recvmmsg`` sinks (``c/recvmmsg_sink.c``), each
writing every datagram of one stream of the same rate to a file (a recorder with nothing on top:
no decoding, no HDF5, no API). The figures and the ratio to the peer go into the report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from benchmarks.test_bench_e2e import RtServer, _free_port, _get, _template
from benchmarks.test_bench_ingest import RCVBUF
from benchmarks.soak import cpu_seconds

#: Datagrams per second of each of the three streams (AC's physics rate).
GAME_RATE = 333
#: Length of each measured window, s.
WINDOW_S = 30.0
#: Before a window: the server settles (handshake done, recording's files created).
SETTLE_S = 3.0


def _simulators(srv: RtServer, ksudp_port: int) -> list[subprocess.Popen]:
    games = (("ac", ksudp_port), ("tt", srv.ports["telemetry_tool"]), ("pcars1", srv.ports["pcars"]))
    return [subprocess.Popen([sys.executable, "-m", "rt", "simulate", "--game", game, "--port", str(port),
                              "--rate", str(GAME_RATE), "--host", "127.0.0.1"],
                             env=dict(os.environ, RUSTY_TELEMETRY_GAME_HOST="127.0.0.1"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for game, port in games]


def _window(pid: int) -> float:
    """Percent of one core that process ``pid`` used over :data:`WINDOW_S`."""
    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    time.sleep(WINDOW_S)  # the measurement is of a stretch of time
    return (cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0) * 100


def _c_sinks(cbin, tmp_path) -> float:
    """Percent of one core used by three C sinks writing three streams at GAME_RATE to files."""
    ports = [_free_port() for _ in range(3)]
    sinks = []
    for i, port in enumerate(ports):
        sink = subprocess.Popen([str(cbin / "recvmmsg_sink"), str(port), str(RCVBUF), "500", str(tmp_path / f"c{i}.bin")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert sink.stderr.readline().strip() == "ready"
        sinks.append(sink)
    path, size, offset = _template(tmp_path, "telemetry_tool")
    count = int(GAME_RATE * WINDOW_S)
    wall0 = time.monotonic()
    senders = [subprocess.Popen([str(cbin / "udp_blast"), "127.0.0.1", str(p), str(count), str(size), str(GAME_RATE),
                                 str(path), str(offset)], stdout=subprocess.DEVNULL) for p in ports]
    for s in senders:
        s.wait()
    wall = time.monotonic() - wall0
    cpu = 0.0
    for sink in sinks:
        got, cpu_s = sink.communicate(timeout=60)[0].split()[:2]
        assert int(got) == count, (got, count)
        cpu += float(cpu_s)
    return cpu / wall * 100


@pytest.mark.benchmark(group="serve: whole process, 3 feeds x 333 Hz")
def test_serve_cpu_receiving_and_recording_against_c_sinks(benchmark, cbin, tmp_path):
    result = {}

    def run():
        ksudp_port = _free_port()
        srv = RtServer(tmp_path, RUSTY_TELEMETRY_KSUDP_PORT=str(ksudp_port), RUSTY_TELEMETRY_GAME_HOST="127.0.0.1")
        sims = _simulators(srv, ksudp_port)
        try:
            deadline = time.monotonic() + 30
            # No ACC here: its feed asks for one every second meanwhile, as for a user without ACC.
            while time.monotonic() < deadline:
                feeds = {name: f for name, f in _get(f"{srv.url}/api/live")["feeds"].items() if name != "acc"}
                if all(f["health"] == "healthy" for f in feeds.values()):
                    break
                time.sleep(0.2)
            assert all(f["health"] == "healthy" for f in feeds.values()), feeds
            time.sleep(SETTLE_S)
            result["receiving"] = _window(srv.proc.pid)
            rec = _get(f"{srv.url}/api/recordings", "POST", {"name": "game rates"})
            time.sleep(SETTLE_S)
            result["recording"] = _window(srv.proc.pid)
            # The next window: what every further half-minute of a long recording costs (the first
            # one also creates data.h5's ~70 datasets, ~60 ms of CPU once).
            result["recording_on"] = _window(srv.proc.pid)
            _get(f"{srv.url}/api/recordings/stop", "POST")
            feeds = _get(f"{srv.url}/api/live")["feeds"]
            result["lost"] = sum(f["dropped"] + f["kernel_dropped"] for f in feeds.values())
            result["recording_bytes"] = sum(p.stat().st_size for p in (srv.data / rec["id"]).iterdir())
        finally:
            for s in sims:
                s.terminate()
                s.wait(timeout=30)
            srv.close()
        result["c"] = _c_sinks(cbin, tmp_path)

    benchmark.pedantic(run, rounds=1, iterations=1)
    c = result["c"]
    benchmark.extra_info.update(
        serve_receiving_cpu_percent=round(result["receiving"], 2),
        serve_recording_cpu_percent=round(result["recording"], 2),
        serve_recording_on_cpu_percent=round(result["recording_on"], 2),
        c_sinks_cpu_percent=round(c, 2),
        receiving_vs_c=round(result["receiving"] / c, 1) if c else None,
        recording_vs_c=round(result["recording"] / c, 1) if c else None,
        recording_on_vs_c=round(result["recording_on"] / c, 1) if c else None,
        datagrams_lost=result["lost"],
    )
    print(f"\nserve at 3 x {GAME_RATE}/s: receiving {result['receiving']:.2f} %, recording {result['recording']:.2f} % "
          f"(first {WINDOW_S:.0f} s), {result['recording_on']:.2f} % (the next {WINDOW_S:.0f} s) of one core; "
          f"C sinks {c:.2f} %; lost {result['lost']}")
