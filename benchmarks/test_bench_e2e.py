"""End to end: the highest rate recorded with zero loss, into raw + HDF5, per feed, against peers.

Three receivers get the same traffic from the same C sender (``c/udp_blast.c``, real packets
from a template, a sequence number in each):

* ``rt``: ``rusty-telemetry serve`` recording (raw file + decoded HDF5, fsync every 0.5 s); what
  counts is what the recording holds afterwards;
* ``python``: what a competent Python telemetry tool does: a blocking ``recv_into`` one datagram
  at a time into a socket with the same 8 MiB buffer, ``struct.unpack_from`` of the whole packet
  (the reference decoder's struct, every field its own type), append the rows to h5py every 1000
  datagrams; its CPU counts from the end of its imports and set-up, as rt's counts over the round;
* ``c``: a C ``recvmmsg`` sink writing every batch to a file (the machine's limit).

Rates rise through :data:`RATES` until a round loses a datagram, then bisect between the last
clean rate and the first lossy one (:data:`BISECT` steps); the figure is the highest rate actually
achieved by the sender with nothing lost. Each round lasts :data:`ROUND_S`: long enough that the
buffers (the socket's 8 MiB, rt's rings) cannot hide a receiver that is slower than the sender.
The sender sleeps between batches rather than spinning, so it leaves the receivers the CPU it does
not use. One C sender process on loopback tops out around 330 000/s here.
Also: /api/live requests per second and p99 latency while rt ingests at game rates.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from benchmarks.test_bench_ingest import RCVBUF
from benchmarks.soak import cpu_seconds
from rt.store import h5store, rawfile

from captures import CAPTURES  # noqa: E402  (benchmarks/conftest.py puts tests/ on the path)
from reference_decoder import STRUCTS  # noqa: E402
RATES = (25_000, 50_000, 100_000, 150_000, 200_000, 300_000, 400_000)
BISECT = 3
#: The rate at which each receiver's CPU per datagram is compared (every receiver keeps up with it).
CPU_RATE = 50_000
ROUND_S = 3.0
FEEDS = {
    # feed: (template bytes, size, offset of the sequence number)
    "telemetry_tool": (None, 357, 1),
    "pcars": (CAPTURES / "pcars1" / "jamesremuscat_packet_0.bin", 1367, 16),
}
#: The Python peer's decode: the whole packet, every field with its own type, from the
#: independent reference decoder (tests/reference_decoder.py).
PEER_STRUCT = {"telemetry_tool": STRUCTS["tt_driver"].format, "pcars": STRUCTS["pcars1_telemetry"].format}

PY_PEER = r'''
import socket, struct, sys, time, h5py, numpy as np
port, fmt, out = int(sys.argv[1]), struct.Struct(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 8 << 20)
except OSError:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("127.0.0.1", port))
f = h5py.File(out, "w"); rows = []; n = 0
ds = f.create_dataset("rows", shape=(0, len(fmt.unpack_from(bytes(fmt.size)))), maxshape=(None, None), dtype="f8", chunks=True)
buf = bytearray(2048); unpack = fmt.unpack_from; recv_into = s.recv_into
cpu0 = time.process_time()  # its imports and set-up are not part of the round
print("ready", flush=True)
while recv_into(buf):  # blocking, no timeout; an empty datagram ends the round
    rows.append(unpack(buf)); n += 1
    if len(rows) >= 1000:
        a = np.array(rows, dtype="f8"); m = ds.shape[0]; ds.resize(m + len(a), axis=0); ds[m:] = a; rows = []
if rows:
    a = np.array(rows, dtype="f8"); m = ds.shape[0]; ds.resize(m + len(a), axis=0); ds[m:] = a
f.close(); print(n, time.process_time() - cpu0, flush=True)
'''


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _template(tmp: Path, feed: str) -> tuple[Path, int, int]:
    path, size, offset = FEEDS[feed]
    if path is None:
        path = tmp / f"{feed}.tmpl"
        path.write_bytes(bytes([1]) + bytes(size - 1))
    return path, size, offset


def _blast(cbin: Path, port: int, count: int, rate: float, template: tuple[Path, int, int]) -> tuple[int, float]:
    path, size, offset = template
    out = subprocess.run([str(cbin / "udp_blast"), "127.0.0.1", str(port), str(count), str(size), str(rate),
                          str(path), str(offset)], capture_output=True, text=True, check=True)
    sent, seconds = out.stdout.split()
    return int(sent), int(sent) / max(float(seconds), 1e-9)


def _get(url: str, method: str = "GET", body=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


class RtServer:
    """``rusty-telemetry serve`` in its own process on ephemeral ports; ``env`` adds configuration."""

    def __init__(self, tmp: Path, **env: str) -> None:
        env = dict(os.environ, RUSTY_TELEMETRY_API_PORT="0", RUSTY_TELEMETRY_TT_PORT="0", RUSTY_TELEMETRY_PCARS_PORT="0",
                   RUSTY_TELEMETRY_LISTEN="127.0.0.1", RUSTY_TELEMETRY_DATA_DIR=str(tmp / "rt-data"),
                   RUSTY_TELEMETRY_MIN_FREE_MB="0", **env)
        self.proc = subprocess.Popen([sys.executable, "-m", "rt", "serve", "--plain"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in self.proc.stdout:
            if "listening on" in line:
                self.url = line.rsplit(" ", 1)[1].strip()
                break
        self.data = tmp / "rt-data"
        self.ports = {f: v["port"] for f, v in _get(f"{self.url}/api/live")["feeds"].items()}

    def record_round(self, feed: str, blast) -> tuple[int, int, float, float]:
        rec = _get(f"{self.url}/api/recordings", "POST", {"name": "bench"})
        cpu0 = cpu_seconds(self.proc.pid)
        sent, achieved = blast(self.ports[feed])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _get(f"{self.url}/api/live")["feeds"][feed]["packets"] < self.base + sent:
            time.sleep(0.1)
        _get(f"{self.url}/api/recordings/stop", "POST")  # the stop's final flush counts too
        cpu = cpu_seconds(self.proc.pid) - cpu0
        self.base = _get(f"{self.url}/api/live")["feeds"][feed]["packets"]
        rec_dir = self.data / rec["id"]
        t_ns, _, _, _ = rawfile.parse((rec_dir / f"{feed}.bin").read_bytes())
        decoded = sum(n for (f, kind), n in h5store.kind_counts(rec_dir / "data.h5").items()
                      if f == feed and kind != "canonical")
        shutil.rmtree(rec_dir)  # rounds at 400 MB/s fill a disk
        return sent, min(len(t_ns), decoded), achieved, cpu

    base = 0

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


def _search(round_fn) -> tuple[int, list, float]:
    """(highest clean rate, rounds as (achieved rate, sent, stored), µs of receiver CPU per datagram
    at :data:`CPU_RATE`)."""
    best, rounds, cpu_us = 0, [], {}

    def clean(rate: int) -> bool:
        nonlocal best
        sent, got, achieved, cpu_s = round_fn(rate, int(rate * ROUND_S))
        rounds.append((int(achieved), sent, got))
        cpu_us[rate] = cpu_s / max(got, 1) * 1e6
        if got == sent:
            best = max(best, int(achieved))
        return got == sent

    low, high = 0, None
    for rate in RATES:
        if not clean(rate):
            high = rate
            break
        low = rate
    for _ in range(BISECT if high is not None else 0):
        mid = (low + high) // 2
        if clean(mid):
            low = mid
        else:
            high = mid
    return best, rounds, round(cpu_us.get(CPU_RATE, float("nan")), 2)


#: (receiver, feed) pairs. ``rt_forward_dead`` and ``rt_forward_live`` are ``rt`` forwarding every
#: datagram (RUSTY_TELEMETRY_FORWARD) to a port nobody listens on (ICMP refusals), or to a C sink
#: that reads it like SimHub would (restarted each round on the same port): what forwarding costs
#: the recording, in the same run as ``rt`` alone.
RECEIVERS = [(r, f) for f in sorted(FEEDS) for r in ("rt", "python", "c")] + [
    ("rt_forward_dead", "telemetry_tool"), ("rt_forward_live", "telemetry_tool")]


@pytest.mark.benchmark(group="e2e: highest zero-loss rate into storage")
@pytest.mark.parametrize("receiver, feed", RECEIVERS)
def test_zero_loss_into_storage(benchmark, cbin, tmp_path, receiver, feed):
    template = _template(tmp_path, feed)
    result = {}

    def run():
        if receiver.startswith("rt"):
            target = _free_port()
            env = {} if receiver == "rt" else {"RUSTY_TELEMETRY_FORWARD": f"{feed}=127.0.0.1:{target}"}
            srv = RtServer(tmp_path, **env)
            srv.base = 0
            forwarded: list[int] = []

            def blast(port, n, rate):
                if receiver != "rt_forward_live":
                    return _blast(cbin, port, n, rate, template)
                sink = subprocess.Popen([str(cbin / "recvmmsg_sink"), str(target), str(RCVBUF), "500"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                assert sink.stderr.readline().strip() == "ready"
                out = _blast(cbin, port, n, rate, template)
                forwarded.append(int(sink.communicate(timeout=60)[0].split()[0]))
                return out

            try:
                result["best"], result["rounds"], result["cpu_us"] = _search(
                    lambda rate, n: srv.record_round(feed, lambda port: blast(port, n, rate)))
                if forwarded:
                    result["target_received"] = forwarded
            finally:
                srv.close()
        elif receiver == "python":
            def round_fn(rate, n):
                port = _free_port()
                peer = subprocess.Popen([sys.executable, "-c", PY_PEER, str(port), PEER_STRUCT[feed], str(tmp_path / "py.h5")],
                                        stdout=subprocess.PIPE, text=True)
                assert peer.stdout.readline().strip() == "ready"
                sent, achieved = _blast(cbin, port, n, rate, template)
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as poke:
                    while peer.poll() is None:  # the end marker may meet a full buffer: repeat it
                        poke.sendto(b"", ("127.0.0.1", port))
                        try:
                            peer.wait(0.2)
                        except subprocess.TimeoutExpired:
                            pass
                got, cpu_s = peer.communicate(timeout=120)[0].split()[-2:]
                return sent, int(got), achieved, float(cpu_s)
            result["best"], result["rounds"], result["cpu_us"] = _search(round_fn)
        else:
            def round_fn(rate, n):
                port = _free_port()
                sink = subprocess.Popen([str(cbin / "recvmmsg_sink"), str(port), str(RCVBUF), "500", str(tmp_path / "c.bin")],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                assert sink.stderr.readline().strip() == "ready"
                sent, achieved = _blast(cbin, port, n, rate, template)
                got, cpu_s = sink.communicate(timeout=60)[0].split()[:2]
                return sent, int(got), achieved, float(cpu_s)
            result["best"], result["rounds"], result["cpu_us"] = _search(round_fn)

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info["zero_loss_rate_per_s"] = result["best"]
    benchmark.extra_info["rounds (achieved rate, sent, stored)"] = result["rounds"]
    benchmark.extra_info[f"cpu_us_per_datagram_at_{CPU_RATE}_per_s"] = result["cpu_us"]
    if "target_received" in result:  # per round, what the forward target read
        benchmark.extra_info["target_received"] = result["target_received"]
    print(f"\n{receiver} {feed}: zero loss up to {result['best']:,}/s; CPU {result['cpu_us']} us per datagram at "
          f"{CPU_RATE:,}/s ({result['cpu_us'] / 10:.2f} % of a core per 1000 datagrams/s); rounds {result['rounds']}")


@pytest.mark.benchmark(group="e2e: /api/live while ingesting 3 x 333 Hz")
def test_live_requests_while_ingesting(benchmark, cbin, tmp_path):
    srv = RtServer(tmp_path)
    senders = [subprocess.Popen([str(cbin / "udp_blast"), "127.0.0.1", str(srv.ports[f]), "100000", str(t[1]), "333",
                                 str(t[0]), str(t[2])], stdout=subprocess.DEVNULL)
               for f, t in ((f, _template(tmp_path, f)) for f in FEEDS)]
    latencies: list[float] = []

    def client(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.perf_counter()
            _get(f"{srv.url}/api/live")
            latencies.append(time.perf_counter() - t0)

    def run():
        threads = [threading.Thread(target=client, args=(5.0,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    try:
        benchmark.pedantic(run, rounds=1, iterations=1)
    finally:
        for s in senders:
            s.kill()
            s.wait()
        srv.close()
    lat = sorted(latencies)
    benchmark.extra_info.update(requests_per_s=round(len(lat) / 5.0), p50_ms=round(lat[len(lat) // 2] * 1e3, 2),
                                p99_ms=round(lat[int(len(lat) * 0.99)] * 1e3, 2))
    print(f"\n/api/live: {len(lat) / 5.0:,.0f} req/s, p50 {lat[len(lat) // 2] * 1e3:.2f} ms, p99 {lat[int(len(lat) * 0.99)] * 1e3:.2f} ms")
