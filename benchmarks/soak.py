"""A soak run: the server records 3 feeds at a high rate while clients poll and start/stop runs.

Used by the short soak test (seconds) and the long soak benchmark (``python -m benchmarks.soak
--seconds 660 --rate 5000``): the same invariants, at two lengths. It drives a real
``rusty-telemetry serve`` process over real UDP and HTTP and reports, as JSON:

* datagrams sent, received and recorded per feed (loss must be 0),
* the server's resident memory over time (must stay flat) and its least-squares slope after the
  first minute and over the second half, its CPU time, the files' sizes,
* /api/live latencies while ingesting,
* runs started, stopped and deleted: one client starts a run every 0.75 s, stops it after 0.5 s and
  deletes it (a kept run is ~3 KB of session state the user asked for; deleting it keeps the
  memory series about the recorder),
* memory by cause (``by_cause``): the server logs its figures every ``seconds / 360`` (at least
  5 s; ``RUSTY_TELEMETRY_MEMORY_LOG_S``): resident memory, the C heap in use and free, HDF5's free
  lists and metadata cache, Python's allocated blocks, Sanic's route cache, the sessions' runs and
  bookkeeping, and its counts of syncs and consumer passes. Over the second half the report gives
  each figure's growth (its least-squares trend), and that growth per 1000 /api/live requests, per
  100 runs and per 100 syncs, so a regression points at what grows and with which activity.

Senders are Python ``sendto`` loops paced in 2 ms steps, one per feed in its own process, with
datagrams built by the simulator's packet builders (AC RTCarInfo to a simulated AC that the
server handshakes with, Telemetry Tool structs, PCARS 1 telemetry).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, s) a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sender(game: str, port: int, rate: float, seconds: float, seed: int, result) -> None:
    """Send ``game`` datagrams at ``rate``/s for ``seconds`` (own process); puts the count sent."""
    from rt.sim.driver import Simulation
    from rt.sim.game import AcServer, PushSender, sim_source

    sim = Simulation("gt_coupe", "test_ring", rate_hz=rate, seed=seed)
    if game == "ac":
        sender = AcServer(sim_source("ac", sim, rate_hz=rate), "127.0.0.1", port)
    else:
        sender = PushSender(sim_source(game, sim, rate_hz=rate), "127.0.0.1", port)
    sender.start()
    time.sleep(seconds)
    sender.stop()
    result.put((game, sender.sent))


def _slope_per_min(samples: list[tuple[float, float]], after_s: float = 60.0) -> float | None:
    """Least-squares growth of resident memory (MB per minute) after ``after_s`` seconds, or over
    the second half of a shorter run: the rings and buffers fill at the start, by design."""
    fit = _slope_fit(samples, after_s)
    return None if fit is None else fit[0]


def _slope_fit(samples: list[tuple[float, float]], after_s: float) -> tuple[float, float] | None:
    """(slope, its standard error), MB per minute, of the samples from ``after_s`` (or the second
    half of a shorter run) on. Resident memory swings ±1.5 MB within seconds as decoded batches
    and raw pieces come and go, so a slope of 0.01 MB/min over 30 minutes is only told from
    noise with samples every few seconds: the error says how far the figure can be trusted."""
    if not samples:
        return None
    start = min(after_s, samples[-1][0] / 2)
    t, mb = zip(*[(t, mb) for t, mb in samples if t >= start])  # the last sample is always in
    if len(t) < 3:
        return None
    minutes, mb = np.asarray(t) / 60.0, np.asarray(mb)
    (slope, intercept), cov = np.polyfit(minutes, mb, 1, cov="unscaled")
    residual = mb - (slope * minutes + intercept)
    stderr = float(np.sqrt(cov[0, 0] * residual @ residual / (len(mb) - 2)))
    return round(float(slope), 4), round(stderr, 4)


def _get(url: str, method: str = "GET", body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


#: Feed name in the server for each sender's game.
FEED_NAMES = {"ac": "ksudp", "tt": "telemetry_tool", "pcars1": "pcars"}
#: Length (bytes) of each game's car datagram: the ksudp file holds the handshake answer too.
CAR_DATAGRAM_BYTES = {"ac": 328, "tt": 357, "pcars1": 1367}


def _start_server(tmp: str, ksudp_port: int, log, memory_log_s: float = 0.0) -> subprocess.Popen:
    """Start ``rusty-telemetry serve`` on free ports with its data in ``tmp``/data, stderr to ``log``,
    logging its memory figures every ``memory_log_s`` (0: never)."""
    env = dict(os.environ, RUSTY_TELEMETRY_API_PORT="0", RUSTY_TELEMETRY_TT_PORT="0", RUSTY_TELEMETRY_PCARS_PORT="0",
               RUSTY_TELEMETRY_LISTEN="127.0.0.1", RUSTY_TELEMETRY_DATA_DIR=str(Path(tmp) / "data"),
               RUSTY_TELEMETRY_KSUDP_PORT=str(ksudp_port), RUSTY_TELEMETRY_MIN_FREE_MB="0",
               RUSTY_TELEMETRY_MEMORY_LOG_S=str(memory_log_s))
    return subprocess.Popen([sys.executable, "-m", "rt", "serve", "--plain"], env=env, stdout=subprocess.PIPE,
                            stderr=log, text=True)


def _server_url(server: subprocess.Popen) -> str:
    """The base URL the server prints once it listens (it picked its own API port)."""
    for line in server.stdout:
        if "listening on" in line:
            return line.rsplit(" ", 1)[1].strip()
    raise RuntimeError("server did not start")


def _start_senders(ksudp_port: int, feeds: dict, rate: float, seconds: float) -> tuple[list, mp.Queue]:
    """One sender process per game (see :func:`_sender`); each puts (game, datagrams sent) on the
    returned queue when it is done."""
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue()
    procs = [
        ctx.Process(target=_sender, args=("ac", ksudp_port, rate, seconds, 1, results)),
        ctx.Process(target=_sender, args=("tt", feeds["telemetry_tool"]["port"], rate, seconds, 2, results)),
        ctx.Process(target=_sender, args=("pcars1", feeds["pcars"]["port"], rate, seconds, 3, results)),
    ]
    for p in procs:
        p.start()
    return procs, results


#: Lines of the server's memory log per soak (every 10 s in an hour, at least 5 s apart).
MEMORY_LOG_LINES = 360
#: Resident memory samples per soak (one every 5 s in an hour; see :func:`_slope_fit`).
RSS_SAMPLES = 720


class _Clients:
    """The server's other load while it records: /api/live polled ``poll_hz`` times a second, a
    client churning runs, and resident memory sampled (:data:`RSS_SAMPLES` per run, at least 1 s
    apart), each in its own thread until :meth:`stop`."""

    def __init__(self, url: str, server_pid: int, seconds: float, poll_hz: float) -> None:
        self.url = url
        self.server_pid = server_pid
        self.seconds = seconds
        self.poll_hz = poll_hz
        self.latencies: list[float] = []  # /api/live round trips, s
        self.live_at: list[float] = []  # when each answered, s since start
        self.churn_spans: list[tuple[float, float]] = []  # each run request's (sent, answered), s since start
        self.runs_at: list[float] = []  # when each run was deleted, s since start
        self.memory: list[tuple[float, float]] = []  # (s since start, RSS MB)
        self.runs = {"started": 0, "stopped": 0, "deleted": 0}
        self.errors: list[str] = []
        self.t0 = time.monotonic()
        self.t0_epoch = time.time()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._poll, self._churn, self._sample_memory)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _poll(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            try:
                _get(f"{self.url}/api/live")
                self.latencies.append(time.perf_counter() - start)
                self.live_at.append(time.monotonic() - self.t0)
            except Exception as exc:  # noqa: BLE001 - counted and reported, not hidden
                self.errors.append(f"live: {exc}")
            self._stop.wait(1.0 / self.poll_hz)

    def _churn(self) -> None:
        url, stop = self.url, self._stop
        session = _get(f"{url}/api/sessions", "POST", {"use_case": "general", "label": "soak"})

        def timed(*args):
            sent = time.monotonic() - self.t0
            try:
                return _get(*args)
            finally:
                self.churn_spans.append((sent, time.monotonic() - self.t0))

        while not stop.is_set():
            try:
                run = timed(f"{url}/api/sessions/{session['id']}/runs", "POST", {"feed_name": "ksudp"})
                self.runs["started"] += 1
                stop.wait(0.5)
                timed(f"{url}/api/sessions/{session['id']}/runs/{run['id']}/stop", "POST")
                self.runs["stopped"] += 1
                timed(f"{url}/api/sessions/{session['id']}/runs/{run['id']}", "DELETE")
                self.runs["deleted"] += 1
                self.runs_at.append(time.monotonic() - self.t0)
            except Exception as exc:  # noqa: BLE001
                self.errors.append(f"runs: {exc}")
            stop.wait(0.25)

    def _sample_memory(self) -> None:
        while not self._stop.is_set():
            self.memory.append((round(time.monotonic() - self.t0, 1), round(_rss_mb(self.server_pid), 1)))
            self._stop.wait(max(1.0, self.seconds / RSS_SAMPLES))


def _wait_until_received(url: str, sent: dict[str, int], timeout_s: float = 10.0) -> None:
    """Give the last datagrams up to ``timeout_s`` to reach the rings and the disk: the senders
    are done before the server has drained its sockets."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        live = _get(f"{url}/api/live")["feeds"]
        if all(live[FEED_NAMES[g]]["packets"] >= n for g, n in sent.items()):
            return
        time.sleep(0.2)


def _count_recorded(rec_dir: Path) -> dict[str, int]:
    """Car datagrams per game in the recording's raw files."""
    from rt.store import rawfile

    recorded = {}
    for game, feed in FEED_NAMES.items():
        _, _, lengths, _ = rawfile.parse(rawfile.load(rec_dir / f"{feed}.bin"))
        recorded[game] = int((lengths == CAR_DATAGRAM_BYTES[game]).sum())
    return recorded


#: Figures of the server's memory log that are sizes (the others are counts of activity).
CAUSE_FIGURES = ("rss_mb", "c_heap_in_use_mb", "c_heap_free_mb", "c_heap_mapped_mb", "hdf5_free_lists_mb",
                 "hdf5_metadata_cache_mb", "python_blocks", "threads", "router_cache_entries", "runs_kept",
                 "run_bookkeeping", "recordings")


def _memory_log(log_path: Path, t0_epoch: float) -> list[dict]:
    """The server's memory lines (``rt.memory.MemoryLog``), each with ``t``: s since the clients started."""
    out = []
    for line in log_path.read_text().splitlines():
        head, sep, body = line.partition(" rt.memory: memory ")
        if sep:
            figures = json.loads(body)
            figures["t"] = round(figures.pop("at") - t0_epoch, 1)
            out.append(figures)
    return out


def _by_cause(samples: list[dict], clients: "_Clients", wall: float) -> dict:
    """Growth of each memory figure over the second half, per 1000 /api/live requests, per 100
    runs and per 100 syncs in the same span (see the module doc)."""
    half = [s for s in samples if s["t"] >= wall / 2]
    if len(half) < 2:
        return {"samples": len(samples), "note": "fewer than two memory samples in the second half"}
    first, last = half[0], half[-1]
    span = (first["t"], last["t"])
    requests = sum(1 for t in clients.live_at if span[0] <= t < span[1])
    runs = sum(1 for t in clients.runs_at if span[0] <= t < span[1])
    syncs = last.get("syncs", 0) - first.get("syncs", 0)
    # Each figure's least-squares trend over the half, not last less first: the C heap in use
    # swings within seconds with the batches in flight (±0.3 MB at game rates, ±1.5 MB before the
    # HDF5 writer kept its queues).
    growth = {}
    for k in CAUSE_FIGURES:
        points = [(s["t"], s[k]) for s in half if isinstance(s.get(k), (int, float))]
        if len(points) >= 2:
            t, v = np.asarray(points, dtype=float).T
            growth[k] = round(float(np.polyfit(t, v, 1)[0]) * (span[1] - span[0]), 3) if np.ptp(t) > 0 else 0.0

    def per(count: int, unit: int) -> dict | None:
        return {k: round(v / count * unit, 4) for k, v in growth.items()} if count else None

    return {
        "samples": len(samples),
        "second_half": {"from_s": span[0], "to_s": span[1], "live_requests": requests, "runs": runs, "syncs": syncs,
                        **{k: round(last.get(k, 0) - first.get(k, 0), 1)
                           for k in ("decoding_passes", "gc_full_runs", "gc_full_ms", "gc_ms")}},
        "first": {k: first.get(k) for k in CAUSE_FIGURES}, "last": {k: last.get(k) for k in CAUSE_FIGURES},
        "growth": growth,
        "per_1000_requests": per(requests, 1000),
        "per_100_runs": per(runs, 100),
        "per_100_syncs": per(syncs, 100),
    }


def _percentiles(latencies: list[float]) -> dict:
    """Count, p50 and p99 (ms) of ``latencies`` (s)."""
    lat = sorted(latencies)
    if not lat:
        return {"requests": 0}
    return {"requests": len(lat), "p50_ms": round(lat[len(lat) // 2] * 1000, 2),
            "p90_ms": round(lat[int(len(lat) * 0.9)] * 1000, 2),
            "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2),
            "p999_ms": round(lat[int(len(lat) * 0.999)] * 1000, 2), "max_ms": round(lat[-1] * 1000, 2)}


def _by_tenth(latencies: list[float], answered_at: list[float], wall: float) -> list[dict]:
    """:func:`_percentiles` of the /api/live latencies (s) answered in each tenth of ``wall`` (s)."""
    tenths: list[list[float]] = [[] for _ in range(10)]
    for latency, at in zip(latencies, answered_at):
        tenths[min(9, int(at / wall * 10))].append(latency)
    return [_percentiles(part) for part in tenths]


def _live_beside_churn(clients: _Clients) -> tuple[list[float], list[float]]:
    """/api/live latencies (s) split by whether the request overlapped a run request."""
    spans = np.array(sorted(clients.churn_spans) or [(0.0, 0.0)])
    beside, alone = [], []
    for latency, answered in zip(clients.latencies, clients.live_at):
        sent = answered - latency
        # One client sends run requests one after another: only the last one sent before this
        # answer can still have been in flight.
        i = np.searchsorted(spans[:, 0], answered)
        overlaps = i > 0 and spans[i - 1, 1] > sent
        (beside if overlaps else alone).append(latency)
    return beside, alone


def _report(tmp: str, rec_dir: Path, rate: float, wall: float, cpu: float, sent: dict[str, int], stopped: dict,
            clients: _Clients) -> dict:
    """The soak's JSON report (see the module doc); ``wall`` and ``cpu`` in s."""
    recorded = _count_recorded(rec_dir)
    memory_log = _memory_log(Path(tmp) / "server.log", clients.t0_epoch)
    lat = sorted(clients.latencies)
    memory = clients.memory
    beside, alone = _live_beside_churn(clients)
    return {
        "seconds": round(wall, 1),
        "rate_per_feed": rate,
        "sent": sent,
        "recorded": recorded,
        "received": {g: stopped["feeds"][f]["packets"] for g, f in FEED_NAMES.items()},
        "lost": {g: sent[g] - recorded[g] for g in sent},
        "dropped": {f: c["dropped"] for f, c in stopped["feeds"].items()},
        "memory_mb": memory,
        "rss_slope_mb_per_min": _slope_per_min(memory),
        # HDF5's caches fill over minutes at these rates (its metadata cache reaches its fixed
        # size after ~0.5 M datagrams): the second half says whether anything grows without end.
        "rss_slope_second_half_mb_per_min": _slope_per_min(memory, after_s=wall / 2),
        "rss_slope_second_half_stderr_mb_per_min": (_slope_fit(memory, wall / 2) or (None, None))[1],
        "cpu_percent_of_one_core": round(cpu / wall * 100, 1),
        "files_mb": {p.name: round(p.stat().st_size / 1e6, 1) for p in sorted(rec_dir.iterdir())},
        "live_requests": len(lat),
        "live_p50_ms": round(lat[len(lat) // 2] * 1000, 2) if lat else None,
        "live_p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2) if lat else None,
        # Where the tail comes from: /api/live answered while a run request was in flight, or not.
        "live_beside_run_requests": _percentiles(beside),
        "live_alone": _percentiles(alone),
        # Whether the tail grows as the recording does: p99 per tenth of the run.
        "live_by_tenth": _by_tenth(clients.latencies, clients.live_at, wall),
        "runs": clients.runs,
        "by_cause": _by_cause(memory_log, clients, wall),
        "memory_log": memory_log,
        "errors": clients.errors[:20],
        "server_log_tracebacks": (Path(tmp) / "server.log").read_text().count("Traceback"),
        "data_dir": tmp,
    }


def run(seconds: float = 10.0, rate: float = 3000.0, data_dir: str | None = None, poll_hz: float = 20.0) -> dict:
    """Run one soak and return its report (see the module doc).

    ``seconds`` of sending at ``rate`` datagrams/s per feed, /api/live polled ``poll_hz`` times a
    second; the server's data goes under ``data_dir`` (a new temporary directory if None).
    """
    tmp = tempfile.mkdtemp(prefix="rt-soak-") if data_dir is None else data_dir
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        ksudp_port = probe.getsockname()[1]
    log = open(Path(tmp) / "server.log", "w")
    server = _start_server(tmp, ksudp_port, log, max(5.0, seconds / MEMORY_LOG_LINES))
    try:
        url = _server_url(server)
        feeds = _get(f"{url}/api/live")["feeds"]
        rec = _get(f"{url}/api/recordings", "POST", {"name": "soak"})
        procs, results = _start_senders(ksudp_port, feeds, rate, seconds)
        clients = _Clients(url, server.pid, seconds, poll_hz)
        clients.start()
        cpu0 = cpu_seconds(server.pid)
        for p in procs:
            p.join()
        sent = dict(results.get() for _ in procs)
        _wait_until_received(url, sent)
        clients.stop()
        cpu = cpu_seconds(server.pid) - cpu0
        wall = time.monotonic() - clients.t0
        stopped = _get(f"{url}/api/recordings/stop", "POST")
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stdout.close()
        log.close()
    return _report(tmp, Path(tmp) / "data" / rec["id"], rate, wall, cpu, sent, stopped, clients)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=660.0)
    parser.add_argument("--rate", type=float, default=5000.0, help="datagrams/s per feed")
    parser.add_argument("--keep", action="store_true",
                        help="keep the recording (an 11-minute soak writes ~14 GB) instead of deleting it")
    args = parser.parse_args(argv)
    report = run(args.seconds, args.rate)
    if not args.keep:
        shutil.rmtree(report["data_dir"], ignore_errors=True)
        report["data_dir"] = None
    print(json.dumps(report, indent=2))
    return 0 if all(v == 0 for v in report["lost"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
